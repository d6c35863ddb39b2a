"""ONVIF clients as VMS poll: device information, profiles, stream and snapshot URIs, PTZ
status, and pull-point subscriptions (create, pull, unsubscribe), over raw SOAP 1.2 with a fresh
WS-Security UsernameToken or with HTTP Digest (one nonce, nc counting up, renewed when the
device says it is stale); and snapshot clients of the web port.

Every call's outcome is counted per operation; on a well-behaved camera every one must succeed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import os
import random
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from lxml import etree

from bridge.httpauth import parse_authorization
from bridge.onvif.soap import SOAP12_NS, WSSE_NS, Service
from bridge.safexml import parse_untrusted
from soak.gateway import ONVIF_CLIENT, VIEWER, User

WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
TOKEN_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
TT_NS = "http://www.onvif.org/ver10/schema"
WSNT_NS = "http://docs.oasis-open.org/wsn/b-2"
WSA_NS = "http://www.w3.org/2005/08/addressing"
CALL_TIMEOUT = 15.0  # a PullMessages waits 1 s; nothing else should take long
MAX_REPLY_BYTES = 1 << 20
EVENTS_EVERY = 3  # polling rounds per pull-point round
DIGEST_EVERY = 2  # every second round authenticates with HTTP Digest instead


@dataclass
class CallStats:
    """Outcomes per operation, for the well-behaved or the misbehaving cameras."""

    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def record(self, operation: str, error: str | None) -> None:
        if error is None:
            self.ok[operation] += 1
        else:
            self.failed[operation] += 1
            self.reasons[f"{operation}: {error}"] += 1


def security_header(user: User, nonce: bytes | None = None) -> str:
    """A wsse:Security block with a PasswordDigest UsernameToken, fresh unless told otherwise."""
    nonce = nonce or os.urandom(16)
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    digest = hashlib.sha1(nonce + created.encode() + user.password.encode()).digest()
    return (
        f'<wsse:Security xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}">'
        f"<wsse:UsernameToken><wsse:Username>{user.name}</wsse:Username>"
        f'<wsse:Password Type="{TOKEN_PROFILE}#PasswordDigest">'
        f"{base64.b64encode(digest).decode()}</wsse:Password>"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def envelope(service: Service, body: str, header: str = "") -> bytes:
    """A SOAP 1.2 envelope; ``body`` uses the prefix ``m`` for the service's namespace."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP12_NS}" '
        f'xmlns:m="{service.namespace}" xmlns:tt="{TT_NS}" xmlns:wsnt="{WSNT_NS}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


class _Digest:
    """Client side of HTTP Digest (RFC 7616, MD5, qop=auth) reusing one nonce."""

    def __init__(self, user: User) -> None:
        self._user = user
        self._params: dict[str, str] | None = None
        self._nc = 0

    def learn(self, challenge: str) -> None:
        _, self._params = parse_authorization(challenge)
        self._nc = 0

    def authorization(self, method: str, uri: str) -> str | None:
        if self._params is None:
            return None
        self._nc += 1
        p, user = self._params, self._user
        nc, cnonce = f"{self._nc:08x}", os.urandom(8).hex()

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{user.name}:{p['realm']}:{user.password}")
        response = md5(f"{ha1}:{p['nonce']}:{nc}:{cnonce}:auth:{md5(f'{method}:{uri}')}")
        fields = {
            "username": user.name,
            "realm": p["realm"],
            "nonce": p["nonce"],
            "uri": uri,
            "response": response,
            "qop": "auth",
            "nc": nc,
            "cnonce": cnonce,
            "algorithm": "MD5",
        }
        if "opaque" in p:
            fields["opaque"] = p["opaque"]
        quoted = ", ".join(
            f"{k}={v}" if k in ("qop", "nc", "algorithm") else f'{k}="{v}"'
            for k, v in fields.items()
        )
        return f"Digest {quoted}"


class _Failed(Exception):
    pass


class OnvifClient:
    """One VMS polling one camera device, round after round, until stopped."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        port: int,
        stats: CallStats,
        rng: random.Random,
        *,
        pause: tuple[float, float] = (0.5, 1.5),
        user: User = ONVIF_CLIENT,
    ) -> None:
        self._session = session
        self._base = f"http://127.0.0.1:{port}"
        self._stats = stats
        self._rng = rng
        self._pause = pause
        self._user = user
        self._digest = _Digest(user)
        self._use_digest = False

    async def run(self, stop: asyncio.Event) -> None:
        rounds = 0
        while not stop.is_set():
            rounds += 1
            self._use_digest = rounds % DIGEST_EVERY == 0
            with contextlib.suppress(_Failed):
                await self._poll()
                if rounds % EVENTS_EVERY == 0:
                    await self._pull_events()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._rng.uniform(*self._pause))

    async def _poll(self) -> None:
        await self.call(Service.DEVICE, "GetDeviceInformation", "<m:GetDeviceInformation/>")
        profiles = await self.call(Service.MEDIA, "GetProfiles", "<m:GetProfiles/>")
        tokens = [p.get("token") for p in profiles.iter(f"{{{Service.MEDIA.namespace}}}Profiles")]
        if not tokens:
            self._stats.record("GetProfiles", "no profiles")
            raise _Failed
        token = self._rng.choice(tokens)
        setup = (
            "<m:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
            "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></m:StreamSetup>"
        )
        await self.call(
            Service.MEDIA,
            "GetStreamUri",
            f"<m:GetStreamUri>{setup}<m:ProfileToken>{token}</m:ProfileToken></m:GetStreamUri>",
        )
        await self.call(
            Service.MEDIA,
            "GetSnapshotUri",
            f"<m:GetSnapshotUri><m:ProfileToken>{token}</m:ProfileToken></m:GetSnapshotUri>",
        )
        await self.call(
            Service.PTZ,
            "GetStatus",
            f"<m:GetStatus><m:ProfileToken>{token}</m:ProfileToken></m:GetStatus>",
        )

    async def _pull_events(self) -> None:
        created = await self.call(
            Service.EVENTS,
            "CreatePullPointSubscription",
            "<m:CreatePullPointSubscription><m:InitialTerminationTime>PT30S"
            "</m:InitialTerminationTime></m:CreatePullPointSubscription>",
        )
        address = created.findtext(f".//{{{WSA_NS}}}Address")
        if not address or not address.startswith(self._base):
            self._stats.record("CreatePullPointSubscription", f"bad address {address!r}")
            raise _Failed
        path = address.removeprefix(self._base)
        try:
            for _ in range(2):
                await self.call(
                    Service.EVENTS,
                    "PullMessages",
                    "<m:PullMessages><m:Timeout>PT1S</m:Timeout>"
                    "<m:MessageLimit>10</m:MessageLimit></m:PullMessages>",
                    path=path,
                )
        finally:
            await self.call(Service.EVENTS, "Unsubscribe", "<wsnt:Unsubscribe/>", path=path)

    async def call(
        self, service: Service, operation: str, body: str, *, path: str | None = None
    ) -> etree._Element:
        """The reply's Body; a failure is recorded and raised as _Failed."""
        path = path or service.path
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                status, reply = await self._exchange(service, path, body)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._stats.record(operation, type(exc).__name__)
            raise _Failed from exc
        if status != 200:
            self._stats.record(operation, f"HTTP {status}{_fault_code(reply)}")
            raise _Failed
        try:
            root = parse_untrusted(reply, max_bytes=MAX_REPLY_BYTES)
        except Exception as exc:
            self._stats.record(operation, f"unparsable reply: {type(exc).__name__}")
            raise _Failed from exc
        body_element = root.find(f"{{{SOAP12_NS}}}Body")
        if body_element is None:
            self._stats.record(operation, "no Body")
            raise _Failed
        self._stats.record(operation, None)
        return body_element

    async def _exchange(self, service: Service, path: str, body: str) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        for _ in range(2):  # the second try after learning (or renewing) the Digest nonce
            header = ""
            if self._use_digest:
                authorization = self._digest.authorization("POST", path)
                if authorization is not None:
                    headers["Authorization"] = authorization
            else:
                header = security_header(self._user)
            async with self._session.post(
                self._base + path, data=envelope(service, body, header), headers=headers
            ) as reply:
                data = await reply.read()
                challenge = reply.headers.get("WWW-Authenticate", "")
                if reply.status == 401 and self._use_digest and challenge.startswith("Digest"):
                    fresh = "Authorization" not in headers or "stale=true" in challenge.lower()
                    self._digest.learn(challenge)
                    if fresh:
                        continue
                return reply.status, data
        return 401, b""


def _fault_code(reply: bytes) -> str:
    """`` (ter:NotAuthorized)``-style detail of a SOAP fault, if the reply is one."""
    try:
        root = parse_untrusted(reply, max_bytes=MAX_REPLY_BYTES)
    except Exception:
        return ""
    codes = [value.text or "" for value in root.iter(f"{{{SOAP12_NS}}}Value")]
    return f" ({codes[-1]})" if codes else ""


class SnapshotClient:
    """Someone reloading a camera's picture from the gateway's web port."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        web_port: int,
        camera: str,
        stats: CallStats,
        rng: random.Random,
        *,
        pause: tuple[float, float] = (1.0, 3.0),
    ) -> None:
        self._session = session
        self._url = f"http://127.0.0.1:{web_port}/snapshot/{camera}.jpg"
        self._stats = stats
        self._rng = rng
        self._pause = pause
        self._authorization = aiohttp.encode_basic_auth(VIEWER.name, VIEWER.password)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.fetch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._rng.uniform(*self._pause))

    async def fetch(self) -> None:
        error = None
        try:
            async with (
                asyncio.timeout(CALL_TIMEOUT),
                self._session.get(self._url, headers={"Authorization": self._authorization}) as r,
            ):
                body = await r.read()
                if r.status != 200:
                    error = f"HTTP {r.status}"
                elif not body.startswith(b"\xff\xd8"):
                    error = "not a JPEG"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        self._stats.record("snapshot", error)
