"""RTSP viewers that join and leave all the time, on every profile and transport of every camera,
counting pictures (RTP packets with the marker bit) and the longest wait for one.

A viewer's gap runs from its PLAY to its first picture, between pictures, and from its last
picture to its leaving: what someone watching would see as a frozen picture. Most leave with
TEARDOWN; some just close the connection, as a VMS that crashes or loses the network does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from helpers import RawClient, basic_authorization

from soak.gateway import VIEWER

PROFILES = ("main", "sub", "jpeg")
TRANSPORTS = ("tcp", "udp")
KEEPALIVE = 20.0  # seconds between GET_PARAMETERs (the gateway's session timeout is 60 s)
JOIN_TIMEOUT = 15.0  # DESCRIBE to PLAY answered
READ_TIMEOUT = 10.0
ABRUPT_SHARE = 0.2  # of leaves that only close the connection


@dataclass
class ViewerClass:
    """What every viewer of one (camera, profile, transport) saw, summed over its sessions."""

    camera: str
    profile: str
    transport: str
    well_behaved: bool
    sessions: int = 0
    frames: int = 0
    worst_gap: float = 0.0
    worst_join: float = 0.0  # DESCRIBE sent to first picture
    failed: int = 0  # sessions that never played
    errors: Counter[str] = field(default_factory=Counter)


class _Pictures:
    """Picture arrival times of one session, and the longest wait between them."""

    def __init__(self, since: float) -> None:
        self.count = 0
        self.last = since
        self.first: float | None = None
        self.worst_gap = 0.0

    def arrived(self, now: float) -> None:
        self.worst_gap = max(self.worst_gap, now - self.last)
        self.last = now
        self.count += 1
        if self.first is None:
            self.first = now

    def ended(self, now: float) -> None:
        self.worst_gap = max(self.worst_gap, now - self.last)


class _RtpSink(asyncio.DatagramProtocol):
    """The client's RTP port: every video packet with the marker bit ends a picture."""

    def __init__(self, pictures: _Pictures) -> None:
        self.pictures = pictures

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) >= 12 and data[1] & 0x80:
            self.pictures.arrived(time.monotonic())


class _Ignore(asyncio.DatagramProtocol):
    """The client's RTCP port: sender reports arrive here and mean nothing to the count."""


async def _udp_pair(
    host: str, pictures: _Pictures
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]:
    """An even RTP port and the odd RTCP port after it (RFC 3550), on ``host``."""
    loop = asyncio.get_running_loop()
    for _ in range(64):
        rtp, _proto = await loop.create_datagram_endpoint(
            lambda: _RtpSink(pictures), local_addr=(host, 0)
        )
        port = rtp.get_extra_info("sockname")[1]
        if port % 2 == 0:
            try:
                rtcp, _ = await loop.create_datagram_endpoint(_Ignore, local_addr=(host, port + 1))
            except OSError:
                pass
            else:
                return rtp, rtcp
        rtp.close()
    raise OSError("no free even/odd UDP port pair")


class Presence:
    """Whether a camera is being watched: someone opens its live view for a while (its viewers
    come and go meanwhile), then nobody watches it for longer than the gateway's idle grace, so
    its whole pipeline (camera connection, decoder, encoders) stops and starts again."""

    def __init__(
        self, watched: tuple[float, float], unwatched: tuple[float, float], rng: random.Random
    ) -> None:
        self._watched = watched
        self._unwatched = unwatched
        self._rng = rng
        self.here = asyncio.Event()  # viewers may join
        self.away = asyncio.Event()  # viewers leave (also once the load stops)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self.away.clear()
                self.here.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._rng.uniform(*self._watched))
                self.here.clear()
                self.away.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._rng.uniform(*self._unwatched))
        finally:
            self.here.set()
            self.away.set()


class Viewer:
    """One viewer of one stream: while its camera is watched, watch for a while, leave, pause,
    and again, until stopped."""

    def __init__(
        self,
        stats: ViewerClass,
        url: str,
        presence: Presence,
        *,
        local_host: str,
        watch: tuple[float, float],
        pause: tuple[float, float],
        rng: random.Random,
    ) -> None:
        self.stats = stats
        self._url = url
        self._presence = presence
        self._local_host = local_host
        self._watch = watch
        self._pause = pause
        self._rng = rng
        self._authorization = basic_authorization(VIEWER.name, VIEWER.password)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._presence.here.wait()  # set for good once the load stops
            if stop.is_set():
                return
            await self._session(self._presence.away)
            # Leaving and coming back is the point, so the pause is a plain wait.
            pause = self._rng.uniform(*self._pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def _session(self, leave: asyncio.Event) -> None:
        stats = self.stats
        stats.sessions += 1
        udp: tuple[asyncio.DatagramTransport, asyncio.DatagramTransport] | None = None
        writer: asyncio.StreamWriter | None = None
        began = time.monotonic()
        pictures = _Pictures(began)
        try:
            host, port = self._url.split("/")[2].rsplit(":", 1)
            reader, writer = await asyncio.open_connection(
                host, int(port), local_addr=(self._local_host, 0)
            )
            client = RawClient(reader, writer, self._authorization)
            async with asyncio.timeout(JOIN_TIMEOUT):
                session, udp = await self._join(client, pictures)
            played = time.monotonic()
            pictures.last = played
            deadline = played + self._rng.uniform(*self._watch)
            if udp is None:
                await self._receive_interleaved(client, session, pictures, deadline, leave)
            else:
                await self._receive_udp(client, session, deadline, leave)
            now = time.monotonic()
            pictures.ended(now)
            if self._rng.random() >= ABRUPT_SHARE and not writer.is_closing():
                await client.request("TEARDOWN", self._url, {"Session": session})
        except (OSError, TimeoutError, asyncio.IncompleteReadError, _Refused) as exc:
            error = str(exc) if isinstance(exc, _Refused) else type(exc).__name__
            stats.errors[error] += 1
            if pictures.count == 0:
                stats.failed += 1
            else:
                pictures.ended(time.monotonic())
        finally:
            if writer is not None:
                writer.close()
            for transport in udp or ():
                transport.close()
        stats.frames += pictures.count
        if pictures.count:
            stats.worst_gap = max(stats.worst_gap, pictures.worst_gap)
            assert pictures.first is not None
            stats.worst_join = max(stats.worst_join, pictures.first - began)

    async def _join(
        self, client: RawClient, pictures: _Pictures
    ) -> tuple[str, tuple[asyncio.DatagramTransport, asyncio.DatagramTransport] | None]:
        status, headers, body = await client.request(
            "DESCRIBE", self._url, {"Accept": "application/sdp"}
        )
        _expect(status, "DESCRIBE")
        base = headers.get("Content-Base", self._url + "/")
        control = next(
            line[10:].strip()
            for line in body.decode("latin-1").splitlines()
            if line.startswith("a=control:") and line[10:].strip() != "*"
        )
        track = control if "://" in control else base.rstrip("/") + "/" + control
        udp = None
        if self.stats.transport == "udp":
            udp = await _udp_pair(self._local_host, pictures)
            rtp_port = udp[0].get_extra_info("sockname")[1]
            transport = f"RTP/AVP;unicast;client_port={rtp_port}-{rtp_port + 1}"
        else:
            transport = "RTP/AVP/TCP;unicast;interleaved=0-1"
        try:
            status, headers, _ = await client.request("SETUP", track, {"Transport": transport})
            _expect(status, "SETUP")
            session = headers["Session"].split(";")[0]
            status, _, _ = await client.request(
                "PLAY", self._url, {"Session": session, "Range": "npt=0.000-"}
            )
            _expect(status, "PLAY")
        except BaseException:
            for transport_ in udp or ():
                transport_.close()
            raise
        return session, udp

    async def _receive_interleaved(
        self,
        client: RawClient,
        session: str,
        pictures: _Pictures,
        deadline: float,
        leave: asyncio.Event,
    ) -> None:
        next_keepalive = time.monotonic() + KEEPALIVE
        while (now := time.monotonic()) < deadline and not leave.is_set():
            if now >= next_keepalive:
                await client.request("GET_PARAMETER", self._url, {"Session": session})
                next_keepalive = now + KEEPALIVE
            # Only a stall times out here (pictures come every fraction of a second); the
            # connection is mid-frame then, and closing it is all that is left.
            async with asyncio.timeout(READ_TIMEOUT):
                channel, payload = await client.frame()
            if channel == 0 and len(payload) >= 12 and payload[1] & 0x80:
                pictures.arrived(time.monotonic())
            for channel, payload in client.frames:  # stashed while awaiting a response
                if channel == 0 and len(payload) >= 12 and payload[1] & 0x80:
                    pictures.arrived(time.monotonic())
            client.frames.clear()

    async def _receive_udp(
        self, client: RawClient, session: str, deadline: float, leave: asyncio.Event
    ) -> None:
        while (now := time.monotonic()) < deadline and not leave.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leave.wait(), min(KEEPALIVE, deadline - now))
            if time.monotonic() < deadline and not leave.is_set():
                await client.request("GET_PARAMETER", self._url, {"Session": session})


class _Refused(Exception):
    """The gateway answered with an error status."""


def _expect(status: int, method: str) -> None:
    if status != 200:
        raise _Refused(f"{method} {status}")


def stream_url(rtsp_port: int, camera: str, profile: str) -> str:
    return f"rtsp://127.0.0.1:{rtsp_port}/{camera}/{profile}"
