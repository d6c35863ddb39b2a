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
    └── CameraError                  anything that went wrong talking to a legacy camera
        ├── CameraUnreachable        connect failure, timeout, connection dropped
        ├── CameraBusy               HTTP 503 / too many clients
        ├── AuthenticationFailed     HTTP 401: wrong or missing credentials
        │   └── PermissionDenied     HTTP 403: credentials valid, rights insufficient
        ├── EndpointNotFound         HTTP 404: this camera has no such CGI
        ├── BadResponse              a reply the dialect's document does not allow
        ├── UnsupportedOperation     the dialect (or this unit) cannot do what was asked
        └── UnknownDevice            identification found no known dialect
"""

from __future__ import annotations


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
