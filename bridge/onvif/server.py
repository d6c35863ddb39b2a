"""The HTTP side of one ONVIF device: an aiohttp application serving every service path.

Each service answers ``POST`` on its path (:class:`~bridge.onvif.soap.Service` lists them) and
on any path below it (subscription addresses). Authentication follows ONVIF Core: HTTP Digest
or a WS-Security UsernameToken (both, if both are sent, HTTP first); a call without credentials
that needs them, or with a Digest answer that fails, gets HTTP 401 with a Digest challenge
(``stale=true`` when only the nonce was wrong); a refused UsernameToken gets ter:NotAuthorized.
Pre-auth operations are answered anonymously even when the credentials sent with them fail (so
a client with a skewed clock can still ask for the time). Then the access table
(:mod:`bridge.onvif.access`) decides whether this user may call the operation at all, before
any handler runs. Every error is a SOAP Fault, never an HTML or plain-text body.

Whatever the content type (application/soap+xml, text/xml, application/xml, none; any case,
with or without charset and action parameters) and SOAP version, the body's element says what
is asked (:mod:`bridge.onvif.soap`); SOAPAction, the ``action`` parameter and WS-Addressing's
Action only tell services apart when that element's namespace is off.

Replays: each device has its own Digest authority (its nonces are worthless at another device),
replay-proof (each nonce and nc once, ``qop=auth`` required, nonces short-lived); WS-Security
tokens are checked by one verifier per gateway, shared by all its devices.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, MutableMapping
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
from bridge.httpauth import DigestAuthority, DigestVerdict, parse_authorization
from bridge.onvif.access import check_access, is_pre_auth
from bridge.onvif.schemas import message_schema
from bridge.onvif.security import UsernameTokenVerifier, username_token
from bridge.onvif.soap import (
    MAX_REQUEST_BYTES,
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
from bridge.onvif.users import UserAccounts
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

# A nonce serves a client that reuses it (incrementing nc) this long, then it renews it on a
# 401 with stale=true: short, so a captured, unused header soon becomes worthless.
NONCE_LIFETIME = 60.0
_READ_CHUNK = 64 * 1024
_NO_ONE = DigestVerdict(None)
# (service, operation, fault) -> requests answered; names from the WSDL catalog and the fault
# tree only, so a client cannot make up labels. "-" for a request whose operation is unknown.
RequestCounts = Counter[tuple[str, str, str]]


class _Challenge(Exception):
    """HTTP-level authentication is needed (or failed): answer 401 with a Digest challenge."""

    def __init__(self, *, stale: bool) -> None:
        super().__init__("authentication required")
        self.stale = stale


class _ClientGone(Exception):
    """The client closed the connection before its request was complete: nobody to answer."""


class _MethodNotAllowed(SenderFault):
    http_status = 405
    default_reason = "Only POST is supported"


class _Endpoint:
    def __init__(
        self,
        operations: Operations,
        accounts: UserAccounts,
        *,
        realm: str,
        max_request_bytes: int,
        tokens: UsernameTokenVerifier,
        validate_responses: bool,
        requests: RequestCounts | None,
    ) -> None:
        self._requests = requests
        self._operations = operations
        self._accounts = accounts
        self._digest = DigestAuthority(realm, nonce_lifetime=NONCE_LIFETIME, replay_proof=True)
        self._tokens = tokens
        self._max_request_bytes = max_request_bytes
        self._refusals = ThrottledLog(log)
        self._catalog = catalog()
        self._response_schema = (
            message_schema(*(service.wsdl for service in Service)) if validate_responses else None
        )

    async def handle(self, request: web.Request) -> web.Response:
        response, operation, fault = await self._answer(request)
        if self._requests is not None:
            name = ("-", "-") if operation is None else (operation.service.name, operation.name)
            self._requests[(*name, fault)] += 1
        return response

    async def _answer(self, request: web.Request) -> tuple[web.Response, Operation | None, str]:
        """The response, the operation asked for (once known) and the fault answered ("none"
        for success): the ``ter:`` subcode, else the SOAP fault code."""
        operation: Operation | None = None
        # Until the envelope says otherwise, faults go out in the version the content type and
        # then the bytes suggest (a body cut short or not XML still names its namespace).
        version = SoapVersion.guess(request.content_type, b"")
        try:
            if request.method != "POST":
                raise _MethodNotAllowed()
            data = await self._read_body(request)
            version = SoapVersion.guess(request.content_type, data)
            envelope = parse_envelope(
                data, max_bytes=self._max_request_bytes, charset=request.charset
            )
            version = envelope.version
            actions = envelope.actions(
                request.headers.get("SOAPAction"), request.headers.get("Content-Type")
            )
            operation = self._catalog.operation(envelope.body, path=request.path, actions=actions)
            user = self._authenticate(request, envelope, operation)
            self._authorize(request, operation, user)
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
            reply = self._reply(
                fault_envelope(NotAuthorized(), version),
                version,
                status=401,
                headers={"WWW-Authenticate": self._digest.challenge(stale=challenge.stale)},
            )
            return reply, operation, _fault_name(NotAuthorized())
        except OnvifFault as fault:
            return self._fault(fault, version), operation, _fault_name(fault)
        except _ClientGone:
            log.debug(
                "ONVIF client %s left before its request to %s was complete",
                request.remote,
                request.path,
            )
            return web.Response(status=400), operation, "ClientGone"
        except Exception:
            log.exception("ONVIF request to %s failed", request.path)
            return self._fault(ActionFailed(), version), operation, _fault_name(ActionFailed())
        return self._reply(body, version, status=200), operation, "none"

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise RequestTooLarge(f"Request larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await request.content.read(_READ_CHUNK)
            except ConnectionError as exc:
                raise _ClientGone() from exc
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"Request larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _authenticate(
        self, request: web.Request, envelope: Envelope, operation: Operation
    ) -> str | None:
        """The authenticated user, None for an anonymous pre-auth call."""
        pre_auth = is_pre_auth(operation.service, operation.name)
        user: str | None = None
        authorization = request.headers.get("Authorization", "")
        if authorization:
            verdict = self._http_user(request, authorization)
            if verdict.user is None and not pre_auth:
                if not verdict.stale:
                    self._refused(request, "digest", "Digest credentials refused")
                raise _Challenge(stale=verdict.stale)
            user = verdict.user
        try:
            token = username_token(envelope.header(f"{{{WSSE_NS}}}Security"))
            if token is not None:
                user = self._tokens.verify(token, self._accounts.get)
        except NotAuthorized as exc:
            if not pre_auth:
                self._refused(request, "token", f"UsernameToken refused: {exc.reason}")
                raise
            return None
        if user is None and not pre_auth:
            raise _Challenge(stale=False)
        return user

    def _http_user(self, request: web.Request, authorization: str) -> DigestVerdict:
        scheme, params = parse_authorization(authorization)
        # The digest covers the URI the client names; it must be the one it asked for.
        if scheme != "digest" or params.get("uri") not in (request.path_qs, request.path):
            return _NO_ONE
        return self._digest.check(request.method, authorization, self._accounts.get)

    def _authorize(self, request: web.Request, operation: Operation, user: str | None) -> None:
        """ter:NotAuthorized unless the access table lets this user call the operation."""
        level = None if user is None else self._accounts.level(user)
        try:
            check_access(operation.service, operation.name, level)
        except NotAuthorized:
            self._refused(request, "access", f"{operation.name} refused to {user} ({level})")
            raise

    def _refused(self, request: web.Request, kind: str, what: str) -> None:
        """One log line per kind of refusal at most every few seconds, so a client guessing
        passwords or probing operations cannot flood the log. Never a credential: a user name
        appears only once it has authenticated."""
        self._refusals.log(logging.INFO, kind, "ONVIF %s from %s", what, request.remote)

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


def _fault_name(fault: OnvifFault) -> str:
    return fault.chain[-1] if fault.chain else fault.code


def device_app(
    operations: Operations,
    users: MutableMapping[str, str],
    *,
    realm: str = "ONVIF",
    max_request_bytes: int = MAX_REQUEST_BYTES,
    tokens: UsernameTokenVerifier | None = None,
    validate_responses: bool = False,
    requests: RequestCounts | None = None,
) -> web.Application:
    """The aiohttp application of one ONVIF device.

    ``users`` is the gateway's :class:`~bridge.onvif.users.UserAccounts` (live: user changes
    apply to the next request), or a plain name -> password mapping whose users are all
    Administrators. ``tokens`` is the gateway's WS-Security verifier, shared by all its devices
    so that no token is accepted twice anywhere; without one the device keeps its own.
    ``validate_responses`` checks every response body against the schemas before sending it (a
    test and debugging aid: a response that does not fit is logged and answered with ter:Action
    instead). ``requests`` counts every request answered (the gateway's metrics).
    """
    endpoint = _Endpoint(
        operations,
        UserAccounts.of(users),
        realm=realm,
        max_request_bytes=max_request_bytes,
        tokens=tokens or UsernameTokenVerifier(),
        validate_responses=validate_responses,
        requests=requests,
    )
    app = web.Application(client_max_size=max_request_bytes)
    for service in Service:
        app.router.add_route("*", service.path, endpoint.handle)
        app.router.add_route("*", service.path + "/{tail:.+}", endpoint.handle)
    return app
