"""The project's one exception tree.

Every error the gateway raises on purpose is a ``BridgeError``. Each boundary (camera HTTP,
stream parsers, config loading, later RTSP and SOAP) maps the foreign exceptions it meets into
this tree with ``raise X from exc``, so callers handle one vocabulary and nothing leaks a
credential-bearing URL or a library's internal message.

::

    BridgeError
    ├── ConfigError                  a config file or option is invalid
    ├── ProtocolError                bytes that break a protocol (multipart, RTSP, SOAP ...)
    │   └── MessageTooLarge          a frame/message grew past its hard cap
    ├── CameraError                  anything that went wrong talking to a legacy camera
    │   ├── CameraUnreachable        connect failure, timeout, connection dropped
    │   ├── CameraBusy               HTTP 503 / too many clients
    │   ├── AuthenticationFailed     HTTP 401: wrong or missing credentials
    │   │   └── PermissionDenied     HTTP 403: credentials valid, rights insufficient
    │   ├── EndpointNotFound         HTTP 404: this camera has no such CGI
    │   ├── BadResponse              a reply the dialect's document does not allow
    │   ├── UnsupportedOperation     the dialect (or this unit) cannot do what was asked
    │   └── UnknownDevice            identification found no known dialect
    ├── PtzRefused                   a PTZ request the head cannot take as it stands
    └── OnvifFault                   an ONVIF request answered with a SOAP Fault
        ├── SenderFault              env:Sender, HTTP 400: the request is wrong
        │   ├── WellFormed           ter:WellFormed: not XML, or XML SOAP forbids (DTDs)
        │   ├── InvalidArgs          ter:InvalidArgs: missing, extra or mistyped arguments
        │   ├── InvalidArgVal        ter:InvalidArgVal: a well-typed value that is not allowed
        │   │   ├── NoProfile        ... ter:NoProfile: no media profile with that token
        │   │   └── NoConfig         ... ter:NoConfig: no configuration with that token
        │   ├── OperationProhibited  ter:OperationProhibited
        │   ├── DeletionOfFixedProfile  ter:Action/ter:DeletionOfFixedProfile
        │   ├── NotAuthorized        ter:NotAuthorized: WS-Security credentials refused
        │   └── RequestTooLarge      HTTP 413: the body is past the size cap
        ├── ReceiverFault            env:Receiver, HTTP 500: the device cannot do it
        │   ├── ActionNotSupported   ter:ActionNotSupported: unknown or unimplemented operation
        │   └── ActionFailed         ter:Action: the operation failed (camera error ...)
        │       └── MaxNVTProfiles   ... ter:MaxNVTProfiles: no room for another profile
        ├── VersionMismatch          env:VersionMismatch: not a SOAP envelope
        └── MustUnderstand           env:MustUnderstand: a mandatory header is not understood
"""

from __future__ import annotations

from typing import ClassVar


class BridgeError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(BridgeError):
    """A config file or command-line option is invalid; the message names file and field."""


class ProtocolError(BridgeError):
    """Received bytes violate the protocol being parsed."""


class MessageTooLarge(ProtocolError):
    """A message (frame, header block, request) exceeded its hard size cap."""


class CameraError(BridgeError):
    """Talking to a legacy camera failed.

    ``camera`` is a display name (config name or host:port), never a URL with credentials.
    """

    def __init__(self, message: str, *, camera: str = "") -> None:
        self.camera = camera
        super().__init__(f"{camera}: {message}" if camera else message)


class CameraUnreachable(CameraError):
    """The camera could not be connected to, timed out, or dropped the connection."""


class CameraBusy(CameraError):
    """The camera answered 503 or refused because too many clients are connected."""


class AuthenticationFailed(CameraError):
    """The camera rejected the credentials (HTTP 401)."""


class PermissionDenied(AuthenticationFailed):
    """The credentials are valid but lack the rights for this request (HTTP 403)."""


class EndpointNotFound(CameraError):
    """The camera has no such CGI (HTTP 404)."""


class BadResponse(CameraError):
    """The camera's reply is not what its dialect's document allows."""


class UnsupportedOperation(CameraError):
    """The dialect, or this particular unit, cannot perform the requested operation."""


class UnknownDevice(CameraError):
    """Identification found no known camera dialect at the address."""


class PtzRefused(BridgeError):
    """A PTZ request the gateway's record of the head refuses (no such preset, a preset name
    taken, no free preset slot, a preset stored while moving); ``reason`` says which, as
    :class:`bridge.ptz.Refusal` names it."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class OnvifFault(BridgeError):
    """An ONVIF request answered with a SOAP Fault.

    ``code`` is the SOAP 1.2 fault code (local name in the envelope namespace), ``subcodes`` the
    chain of ONVIF ``ter:`` subcodes (local names), ``http_status`` the status it travels with.
    The message is the fault's Reason, which the client reads: it says what was wrong with the
    request, never internals or secrets. ``subcode`` appends an operation-specific subcode
    (``InvalidArgVal(subcode="InvalidToken")``).
    """

    code: ClassVar[str] = "Receiver"
    subcodes: ClassVar[tuple[str, ...]] = ()
    http_status: ClassVar[int] = 500
    default_reason: ClassVar[str] = "Action Failed"

    def __init__(self, reason: str = "", *, subcode: str | None = None) -> None:
        self.reason = reason or self.default_reason
        self.chain = (*self.subcodes, subcode) if subcode else self.subcodes
        super().__init__(self.reason)


class SenderFault(OnvifFault):
    """env:Sender: the request itself is wrong (HTTP 400 under the SOAP 1.2 HTTP binding)."""

    code = "Sender"
    http_status = 400
    default_reason = "Invalid request"


class WellFormed(SenderFault):
    """ter:WellFormed: the body is not well-formed XML, or holds what SOAP forbids (a DTD)."""

    subcodes = ("WellFormed",)
    default_reason = "Well-formed Error"


class InvalidArgs(SenderFault):
    """ter:InvalidArgs: an argument is missing, extra or of the wrong type."""

    subcodes = ("InvalidArgs",)
    default_reason = "Invalid Args"


class InvalidArgVal(SenderFault):
    """ter:InvalidArgVal: an argument has the right type but a value the device refuses."""

    subcodes: ClassVar[tuple[str, ...]] = ("InvalidArgVal",)
    default_reason = "Argument Value Invalid"


class NoProfile(InvalidArgVal):
    """ter:InvalidArgVal/ter:NoProfile: no media profile has the given token."""

    subcodes = ("InvalidArgVal", "NoProfile")
    default_reason = "The requested profile token does not exist"


class NoConfig(InvalidArgVal):
    """ter:InvalidArgVal/ter:NoConfig: no configuration has the given token."""

    subcodes = ("InvalidArgVal", "NoConfig")
    default_reason = "The requested configuration does not exist"


class OperationProhibited(SenderFault):
    """ter:OperationProhibited: the device does not permit the requested operation."""

    subcodes = ("OperationProhibited",)
    default_reason = "Operation not Permitted"


class DeletionOfFixedProfile(SenderFault):
    """ter:Action/ter:DeletionOfFixedProfile: a fixed media profile cannot be deleted (ONVIF
    Media pairs this Action subcode with the Sender code)."""

    subcodes = ("Action", "DeletionOfFixedProfile")
    default_reason = "A fixed profile cannot be deleted"


class NotAuthorized(SenderFault):
    """ter:NotAuthorized: WS-Security credentials missing where required, wrong or replayed."""

    subcodes = ("NotAuthorized",)
    default_reason = "Sender not Authorized"


class RequestTooLarge(SenderFault):
    """The request body is larger than the endpoint accepts (HTTP 413)."""

    http_status = 413
    default_reason = "Request too large"


class ReceiverFault(OnvifFault):
    """env:Receiver: the request is fine but the device cannot carry it out (HTTP 500)."""


class ActionNotSupported(ReceiverFault):
    """ter:ActionNotSupported: an operation this device does not know or implement."""

    subcodes = ("ActionNotSupported",)
    default_reason = "Optional Action Not Implemented"


class ActionFailed(ReceiverFault):
    """ter:Action: the operation failed (the camera refused or could not be reached ...)."""

    subcodes: ClassVar[tuple[str, ...]] = ("Action",)


class MaxNVTProfiles(ActionFailed):
    """ter:Action/ter:MaxNVTProfiles: the maximum number of media profiles already exists."""

    subcodes = ("Action", "MaxNVTProfiles")
    default_reason = "The maximum number of supported profiles has been reached"


class VersionMismatch(OnvifFault):
    """env:VersionMismatch: the document is not a SOAP 1.1 or 1.2 envelope."""

    code = "VersionMismatch"
    default_reason = "SOAP version mismatch"


class MustUnderstand(OnvifFault):
    """env:MustUnderstand: a header block marked mustUnderstand is not understood."""

    code = "MustUnderstand"
    default_reason = "SOAP header blocks not understood"
