"""The HTTP side of one ONVIF device: an aiohttp application serving every service path.

Each service answers ``POST`` on its path (:class:`~bridge.onvif.soap.Service` lists them) and
on any path below it (subscription addresses). Authentication follows ONVIF Core: HTTP Digest
or a WS-Security UsernameToken (both, if both are sent); a call without credentials that needs
them gets HTTP 401 with a Digest challenge; pre-auth operations are answered anonymously even
when the credentials sent with them fail (so a client with a skewed clock can still ask for
the time). Every error is a SOAP Fault, never an HTML or plain-text body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import zeep.exceptions
from aiohttp import web
from lxml import etree

from bridge.errors import (
    ActionFailed,
    ActionNotSupported,
    NotAuthorized,
    OnvifFault,
    RequestTooLarge,
    SenderFault,
)
from bridge.httpauth import DigestAuthority, parse_authorization
from bridge.onvif.schemas import message_schema
from bridge.onvif.security import UsernameTokenVerifier, username_token
from bridge.onvif.soap import (
    MAX_REQUEST_BYTES,
    PRE_AUTH_OPERATIONS,
    WSSE_NS,
    Envelope,
    OnvifRequest,
    Operation,
    Operations,
    Service,
    SoapVersion,
    catalog,
    fault_envelope,
    parse_envelope,
)

log = logging.getLogger(__name__)

Users = Mapping[str, str] | Callable[[str], str | None]
_READ_CHUNK = 64 * 1024


class _Challenge(Exception):
    """HTTP-level authentication is needed (or failed): answer 401 with a Digest challenge."""

    def __init__(self, *, stale: bool) -> None:
        super().__init__("authentication required")
        self.stale = stale


class _MethodNotAllowed(SenderFault):
    http_status = 405
    default_reason = "Only POST is supported"


class _Endpoint:
    def __init__(
        self,
        operations: Operations,
        users: Users,
        *,
        realm: str,
        max_request_bytes: int,
        created_window: float,
        pre_auth: frozenset[tuple[Service, str]],
        validate_responses: bool,
    ) -> None:
        self._operations = operations
        self._password_of = users.get if isinstance(users, Mapping) else users
        self._digest = DigestAuthority(realm)
        self._tokens = UsernameTokenVerifier(window=created_window)
        self._max_request_bytes = max_request_bytes
        self._pre_auth = pre_auth
        self._catalog = catalog()
        self._response_schema = (
            message_schema(*(service.wsdl for service in Service)) if validate_responses else None
        )

    async def handle(self, request: web.Request) -> web.Response:
        # Until the envelope says otherwise, a text/xml request is taken to be SOAP 1.1.
        version = SoapVersion.SOAP11 if request.content_type == "text/xml" else SoapVersion.SOAP12
        try:
            if request.method != "POST":
                raise _MethodNotAllowed()
            envelope = parse_envelope(
                await self._read_body(request), max_bytes=self._max_request_bytes
            )
            version = envelope.version
            operation = self._catalog.operation(envelope.body)
            user = self._authenticate(request, envelope, operation)
            handler = self._operations.get(operation.service, operation.name)
            if handler is None:
                raise ActionNotSupported(f"{operation.name} is not implemented")
            values = await handler(
                OnvifRequest(
                    service=operation.service,
                    operation=operation.name,
                    params=operation.decode(envelope.body),
                    user=user,
                    host=request.host,
                    path=request.path,
                )
            )
            body = self._encode(operation, values, version)
        except _Challenge as challenge:
            return self._reply(
                fault_envelope(NotAuthorized(), version),
                version,
                status=401,
                headers={"WWW-Authenticate": self._digest.challenge(stale=challenge.stale)},
            )
        except OnvifFault as fault:
            return self._fault(fault, version)
        except Exception:
            log.exception("ONVIF request to %s failed", request.path)
            return self._fault(ActionFailed(), version)
        return self._reply(body, version, status=200)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise RequestTooLarge(f"Request larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"Request larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _authenticate(
        self, request: web.Request, envelope: Envelope, operation: Operation
    ) -> str | None:
        """The authenticated user, None for an anonymous pre-auth call."""
        pre_auth = (operation.service, operation.name) in self._pre_auth
        user: str | None = None
        authorization = request.headers.get("Authorization", "")
        if authorization:
            user = self._http_user(request, authorization)
            if user is None and not pre_auth:
                _, params = parse_authorization(authorization)
                stale = not self._digest.nonce_is_fresh(params.get("nonce", ""))
                raise _Challenge(stale=stale)
        try:
            token = username_token(envelope.header(f"{{{WSSE_NS}}}Security"))
            if token is not None:
                user = self._tokens.verify(token, self._password_of)
        except NotAuthorized:
            if not pre_auth:
                raise
            return None
        if user is None and not pre_auth:
            raise _Challenge(stale=False)
        return user

    def _http_user(self, request: web.Request, authorization: str) -> str | None:
        scheme, params = parse_authorization(authorization)
        # The digest covers the URI the client names; it must be the one it asked for.
        if scheme != "digest" or params.get("uri") not in (request.path_qs, request.path):
            return None
        return self._digest.verify(request.method, authorization, self._password_of)

    def _encode(
        self, operation: Operation, values: Mapping[str, Any] | None, version: SoapVersion
    ) -> bytes:
        try:
            envelope = operation.encode(values, version)
        except (zeep.exceptions.Error, TypeError, ValueError) as exc:
            # A handler returned values its response schema does not allow: a bug to log, and
            # to the client only the generic Receiver fault.
            log.error("ONVIF %s response rejected by its schema: %s", operation.name, exc)
            raise ActionFailed() from exc
        if self._response_schema is not None:
            self._validate(operation, envelope, self._response_schema)
        return envelope

    @staticmethod
    def _validate(operation: Operation, envelope: bytes, schema: etree.XMLSchema) -> None:
        """Check what zeep built against the schemas: zeep lets through what they forbid
        (a missing required element, a value outside an enumeration ...)."""
        root = etree.fromstring(envelope)
        (element,) = root.find(f"{{{etree.QName(root).namespace}}}Body")
        if not schema.validate(element):
            log.error("ONVIF %s response is not schema-valid: %s", operation.name, schema.error_log)
            raise ActionFailed(f"{operation.name} response is not schema-valid")

    def _fault(self, fault: OnvifFault, version: SoapVersion) -> web.Response:
        # SOAP 1.1 over HTTP carries every fault with 500; only HTTP-level errors keep theirs.
        status = fault.http_status
        if version is SoapVersion.SOAP11 and status in (400, 500):
            status = 500
        headers = {"Allow": "POST"} if isinstance(fault, _MethodNotAllowed) else None
        return self._reply(fault_envelope(fault, version), version, status=status, headers=headers)

    @staticmethod
    def _reply(
        body: bytes,
        version: SoapVersion,
        *,
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        return web.Response(
            body=body,
            status=status,
            headers=headers,
            content_type=version.content_type,
            charset="utf-8",
        )


def device_app(
    operations: Operations,
    users: Users,
    *,
    realm: str = "ONVIF",
    max_request_bytes: int = MAX_REQUEST_BYTES,
    created_window: float = 300.0,
    pre_auth: frozenset[tuple[Service, str]] = PRE_AUTH_OPERATIONS,
    validate_responses: bool = False,
) -> web.Application:
    """The aiohttp application of one ONVIF device.

    ``users`` maps a user name to its password (a live mapping or a lookup function, so user
    changes apply to the next request). ``created_window`` is how far (seconds) a WS-Security
    Created may be from this host's clock. ``validate_responses`` checks every response body
    against the schemas before sending it (a test and debugging aid: a response that does not
    fit is logged and answered with ter:Action instead).
    """
    endpoint = _Endpoint(
        operations,
        users,
        realm=realm,
        max_request_bytes=max_request_bytes,
        created_window=created_window,
        pre_auth=pre_auth,
        validate_responses=validate_responses,
    )
    app = web.Application(client_max_size=max_request_bytes)
    for service in Service:
        app.router.add_route("*", service.path, endpoint.handle)
        app.router.add_route("*", service.path + "/{tail:.+}", endpoint.handle)
    return app
