"""The one HTTP choke point for every request to a legacy camera.

It owns what drivers must never do themselves: authentication (Basic, Digest via aiohttp's
middleware, or Foscam-style ``user=&pwd=`` query credentials, chosen from the camera's
challenge), connect/read timeouts, a per-camera limit on concurrent requests, a cap on reply
size, and mapping of HTTP statuses and aiohttp failures into :mod:`bridge.errors`. Messages
name the camera by host:port and the request by path only, so credentials (which may sit in a
query string) never reach an error or a log line.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from bridge.cameras.fields import printable
from bridge.cameras.multipart import MultipartParser, Part, boundary_from_content_type
from bridge.errors import (
    AuthenticationFailed,
    BadResponse,
    CameraBusy,
    CameraError,
    CameraUnreachable,
    EndpointNotFound,
    PermissionDenied,
    ProtocolError,
)

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 16 * 1024 * 1024
STREAM_READ_SIZE = 64 * 1024
_FINGERPRINT_TEXT = 128  # characters kept of the Server header and the realm

Params = Mapping[str, str | int | float]


class AuthScheme(enum.StrEnum):
    AUTO = "auto"  # learn from the first 401 challenge
    NONE = "none"
    BASIC = "basic"
    DIGEST = "digest"
    QUERY = "query"  # credentials as query parameters (Foscam)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    connect: float = 5.0
    read: float = 10.0  # longest silence tolerated mid-reply (also for live streams)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def text(self) -> str:
        """The body as text; legacy firmware mixes encodings, so undecodable bytes survive
        as latin-1 rather than failing the request."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.body.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the camera's root page says about it before any credentials are sent."""

    status: int
    server: str
    realm: str
    challenge: str  # "basic", "digest" or ""
    body: bytes  # first few KiB, for title/brand sniffing


class StreamReply:
    """A reply whose body is read incrementally (multipart video, audio, event streams)."""

    def __init__(self, response: aiohttp.ClientResponse, http: CameraHttp, path: str) -> None:
        self._response = response
        self._http = http
        self._path = path
        self.status = response.status
        self.headers = response.headers

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, until the camera closes the stream."""
        try:
            async for chunk in self._response.content.iter_chunked(STREAM_READ_SIZE):
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._http.map_transport_error(exc, self._path) from exc

    async def parts(self) -> AsyncGenerator[tuple[Part, float], None]:
        """The parts of a ``multipart/*`` body, each with the ``time.monotonic()`` at which the
        chunk that completed it arrived.

        Raises :class:`BadResponse` when the reply is not multipart or cannot be parsed.
        """
        camera = self._http.display_name
        if not self.content_type.lower().startswith("multipart/"):
            raise BadResponse(
                f"{self._path} is not a multipart stream ({self.content_type or 'no type'})",
                camera=camera,
            )
        # Without a declared boundary the parser takes it from the first delimiter line.
        parser = MultipartParser(boundary_from_content_type(self.content_type))
        async for chunk in self.chunks():
            arrived = time.monotonic()
            try:
                parts = parser.feed(chunk)
            except ProtocolError as exc:
                raise BadResponse(f"{self._path}: {exc}", camera=camera) from exc
            for part in parts:
                yield part, arrived


def _challenge(headers: CIMultiDictProxy[str]) -> tuple[str, str]:
    """(scheme, realm) of the strongest WWW-Authenticate challenge offered."""
    offered: dict[str, str] = {}
    for value in headers.getall("WWW-Authenticate", []):
        scheme, _, rest = value.strip().partition(" ")
        realm = ""
        for part in rest.split(","):
            key, _, val = part.strip().partition("=")
            if key.strip().lower() == "realm":
                realm = val.strip().strip('"')
        offered[scheme.lower()] = realm
    for scheme in ("digest", "basic"):
        if scheme in offered:
            return scheme, offered[scheme]
    return "", ""


class CameraHttp:
    """HTTP access to one camera; ``display_name`` is safe to show anywhere."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        auth: AuthScheme = AuthScheme.AUTO,
        timeouts: HttpTimeouts | None = None,
        max_concurrent: int = 4,
        name: str = "",
        query_keys: tuple[str, str] = ("user", "pwd"),
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("camera URL must be http://HOST[:PORT]")
        if url.user is not None and credentials is None:
            credentials = Credentials(url.user, url.password or "")
        self.base_url = url.with_user(None).with_password(None).with_query(None)
        self.credentials = credentials
        self.auth = auth
        self.query_keys = query_keys
        self.timeouts = timeouts or HttpTimeouts()
        self.display_name = name or f"{url.host}:{url.port}"
        self._limit = asyncio.Semaphore(max_concurrent)
        self._session: aiohttp.ClientSession | None = None
        self._digest: aiohttp.DigestAuthMiddleware | None = None

    async def __aenter__(self) -> CameraHttp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read
                ),
                # Legacy cameras mishandle pipelined keep-alive and often close after one reply.
                connector=aiohttp.TCPConnector(force_close=True),
                auto_decompress=False,
            )
        return self._session

    def _apply_auth(self, params: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        """Add credentials to the query or headers; returns extra request kwargs.

        Until the scheme is known the Digest middleware rides along: it answers a Digest
        challenge by itself (no second unauthenticated round trip) and lets a Basic one through
        for ``_learn_scheme``.
        """
        creds = self.credentials
        if creds is None:
            return {}
        if self.auth is AuthScheme.BASIC:
            headers["Authorization"] = aiohttp.encode_basic_auth(
                creds.username, creds.password, encoding="latin-1"
            )
        elif self.auth in (AuthScheme.DIGEST, AuthScheme.AUTO):
            if self._digest is None:
                self._digest = aiohttp.DigestAuthMiddleware(creds.username, creds.password)
            return {"middlewares": (self._digest,)}
        elif self.auth is AuthScheme.QUERY:
            params[self.query_keys[0]] = creds.username
            params[self.query_keys[1]] = creds.password
        return {}

    def _learn_scheme(self, response: aiohttp.ClientResponse, used: AuthScheme) -> bool:
        """Record the scheme the camera turned out to use; True if a retry may now succeed.

        ``used`` is the scheme this request went out with: when concurrent first requests all
        meet the challenge, one learns the scheme and the others retry with it.
        """
        if self.credentials is None:
            return False
        if response.status != 401:
            sent = response.request_info.headers.get("Authorization", "")
            if self.auth is AuthScheme.AUTO and sent.startswith("Digest "):
                self.auth = AuthScheme.DIGEST
            return False
        if self.auth is not used:
            return True
        scheme, _ = _challenge(response.headers)
        if used is not AuthScheme.AUTO or scheme != "basic":
            return False  # refused with the right scheme (or Digest refused): wrong password
        self.auth = AuthScheme.BASIC
        log.debug("%s: camera asks for basic auth", self.display_name)
        return True

    def map_transport_error(self, exc: BaseException, path: str) -> CameraError:
        where = f"{path}"
        if isinstance(exc, TimeoutError):
            return CameraUnreachable(f"timed out on {where}", camera=self.display_name)
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError):
            return CameraUnreachable(
                f"connection failed on {where} ({type(exc).__name__})", camera=self.display_name
            )
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
            return BadResponse(
                f"malformed HTTP reply on {where} ({type(exc).__name__})", camera=self.display_name
            )
        return CameraUnreachable(
            f"connection error on {where} ({type(exc).__name__})", camera=self.display_name
        )

    def map_status(self, status: int, path: str) -> CameraError | None:
        if 200 <= status < 300:
            return None
        camera = self.display_name
        if status == 401:
            if self.credentials is None:
                return AuthenticationFailed(f"{path} needs credentials", camera=camera)
            return AuthenticationFailed(f"credentials rejected on {path}", camera=camera)
        if status == 403:
            return PermissionDenied(f"user lacks rights for {path}", camera=camera)
        if status == 404:
            return EndpointNotFound(f"no such CGI {path}", camera=camera)
        if status == 503:
            return CameraBusy(f"busy (HTTP 503) on {path}", camera=camera)
        return BadResponse(f"HTTP {status} on {path}", camera=camera)

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request with auth applied; retried once after learning the auth scheme."""
        session = self._get_session()
        url = self.base_url.with_path(path)
        for attempt in range(2):
            used = self.auth
            query = {k: str(v) for k, v in (params or {}).items()}
            all_headers = dict(headers or {})
            kwargs = self._apply_auth(query, all_headers)
            try:
                response = await session.request(
                    method,
                    url.with_query(query) if query else url,
                    data=data,
                    headers=all_headers,
                    allow_redirects=False,
                    **kwargs,
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise self.map_transport_error(exc, path) from exc
            if self._learn_scheme(response, used) and attempt == 0:
                response.release()
                continue
            try:
                yield response
            finally:
                response.release()
            return

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        accept_status: frozenset[int] = frozenset(),
    ) -> Reply:
        """Send a request and read its whole (capped) reply.

        Non-2xx statuses raise the mapped error unless listed in ``accept_status``.
        """
        async with self._limit, self._send(method, path, params, data, headers) as response:
            if response.status not in accept_status:
                error = self.map_status(response.status, path)
                if error is not None:
                    raise error
            body = bytearray()
            try:
                async for chunk in response.content.iter_chunked(STREAM_READ_SIZE):
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise BadResponse(
                            f"reply to {path} exceeds {MAX_REPLY_BYTES} bytes",
                            camera=self.display_name,
                        )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise self.map_transport_error(exc, path) from exc
            return Reply(response.status, response.headers, bytes(body))

    async def get(self, path: str, params: Params | None = None) -> Reply:
        return await self.request("GET", path, params=params)

    async def get_text(self, path: str, params: Params | None = None) -> str:
        return (await self.get(path, params)).text()

    async def post_form(self, path: str, form: Params, params: Params | None = None) -> Reply:
        body = {k: str(v) for k, v in form.items()}
        return await self.request("POST", path, params=params, data=body)

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        params: Params | None = None,
        *,
        method: str = "GET",
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[StreamReply]:
        """A long-lived reply (live video/audio/events); status already checked.

        A streamed request body cannot be resent after a 401, so with ``AuthScheme.AUTO`` a
        talk upload should follow an ordinary request that taught the scheme.
        """
        async with self._send(method, path, params, data, headers) as response:
            error = self.map_status(response.status, path)
            if error is not None:
                raise error
            yield StreamReply(response, self, path)

    async def fingerprint(self) -> Fingerprint:
        """GET / with no credentials: Server header, auth realm and the start of the page."""
        session = self._get_session()
        try:
            async with self._limit, session.get(self.base_url, allow_redirects=True) as response:
                body = await response.content.read(4096)
                scheme, realm = _challenge(response.headers)
                # Both may be shown (probe, discover, errors): camera text, so made printable.
                return Fingerprint(
                    status=response.status,
                    server=printable(response.headers.get("Server", ""), _FINGERPRINT_TEXT),
                    realm=printable(realm, _FINGERPRINT_TEXT),
                    challenge=scheme,
                    body=body,
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self.map_transport_error(exc, "/") from exc
