"""RFC 2326 RTSP server: thin asyncio I/O around the sans-I/O protocol, RTP and SDP cores.

Serves live streams only: DESCRIBE, SETUP (UDP unicast or TCP interleaved), PLAY from the next
IDR, PAUSE, TEARDOWN, and GET/SET_PARAMETER as keepalives. A malformed request gets 400 and
closes its own connection only; TCP-interleaved sessions end with their connection, UDP
sessions when neither a request nor an RTCP receiver report arrived for the session timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bridge.errors import CameraError, ProtocolError
from bridge.httpauth import Authenticator
from bridge.rtsp.protocol import (
    RTSP_VERSION,
    InterleavedFrame,
    RtspConnection,
    RtspRequest,
    RtspResponse,
    TransportSpec,
    parse_session,
    parse_transport,
)
from bridge.rtsp.sdp import SessionDescription
from bridge.rtsp.session import (
    DeliveryStats,
    InterleavedOutput,
    Output,
    Session,
    State,
    TrackBinding,
    UdpOutput,
    answer_transport,
    new_sequencer,
)
from bridge.rtsp.stream import StreamSource

log = logging.getLogger(__name__)

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
DESCRIBE_TIMEOUT = 5.0
READ_SIZE = 64 * 1024
_TRACK = re.compile(r"trackID=([0-9]{1,3})")

# A path to its stream; None for no such stream, CameraError for one that cannot play now.
Resolver = Callable[[str], StreamSource | None]
Reply = tuple[RtspResponse, Callable[[], None] | None]  # the response, then what follows it


class _Status(Exception):
    """Ends a request with an error status."""

    def __init__(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = list(headers)


@dataclass(eq=False)
class _Client:
    writer: asyncio.StreamWriter
    peer_host: str
    local_host: str
    sessions: set[Session] = field(default_factory=set)  # interleaved ones, ending with us


def _split_uri(uri: str) -> tuple[str, str, int | None]:
    """(authority without credentials, stream path, track index or None) of a request URI."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("rtsp", "rtspu") or not parts.netloc:
        raise _Status(400)
    authority = parts.netloc.rpartition("@")[2]
    segments = [s for s in parts.path.split("/") if s]
    track = None
    if segments and (match := _TRACK.fullmatch(segments[-1])):
        track = int(match.group(1))
        segments.pop()
    return authority, "/".join(segments), track


class RtspServer:
    def __init__(
        self,
        resolver: Resolver,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, str],
        realm: str = "bridge",
        session_timeout: float = 60,
    ) -> None:
        self._resolver = resolver
        self._host = host
        self._requested_port = port
        self._auth = Authenticator(users, realm)
        self.stats = DeliveryStats()
        self.session_timeout = session_timeout
        self._sessions: dict[str, Session] = {}
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._more_servers: list[asyncio.Server] = []
        self._reaper: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_client, self._host, self._requested_port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._reaper = asyncio.create_task(self._reap(), name="rtsp session reaper")

    async def listen_also(self, host: str) -> None:
        """Serve on one more address, on the same port (a camera device's own address)."""
        server = await asyncio.start_server(self._serve_client, host, self.port)
        self._more_servers.append(server)

    async def stop(self) -> None:
        servers = [s for s in (self._server, *self._more_servers) if s is not None]
        for server in servers:
            server.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for session in list(self._sessions.values()):
            await self._end(session)
        for client in list(self._clients):
            client.writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for server in servers:
            await server.wait_closed()
        self._server = None
        self._more_servers.clear()

    @property
    def sessions(self) -> Mapping[str, Session]:
        return self._sessions

    async def _reap(self) -> None:
        interval = min(1.0, self.session_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for session in [s for s in self._sessions.values() if s.expired(now)]:
                log.info("rtsp session %s timed out", session.id)
                await self._end(session)

    async def _end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        for client in self._clients:
            client.sessions.discard(session)
        await session.close()

    # -- connections ----------------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        client = _Client(
            writer, writer.get_extra_info("peername")[0], writer.get_extra_info("sockname")[0]
        )
        self._clients.add(client)
        try:
            await self._converse(reader, client)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(client)
            for session in list(client.sessions):
                await self._end(session)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)

    async def _converse(self, reader: asyncio.StreamReader, client: _Client) -> None:
        connection = RtspConnection()
        writer = client.writer
        while data := await reader.read(READ_SIZE):
            connection.receive_data(data)
            while True:
                try:
                    event = connection.next_event()
                except ProtocolError as exc:
                    log.info("rtsp: closing %s after a bad request: %s", client.peer_host, exc)
                    writer.write(RtspResponse(400).serialize())
                    return
                if event is None:
                    break
                if isinstance(event, InterleavedFrame):
                    self._on_interleaved(client, event)
                    continue
                response, then = await self._respond(client, event)
                writer.write(response.serialize())
                if then is not None:
                    then()
                if response.status == 400:
                    return
            await writer.drain()

    def _on_interleaved(self, client: _Client, frame: InterleavedFrame) -> None:
        for session in client.sessions:
            for binding in session.tracks.values():
                output = binding.output
                if isinstance(output, InterleavedOutput) and frame.channel == output.channels[1]:
                    session.on_rtcp(frame.payload)
                    return

    # -- requests -------------------------------------------------------------------------

    async def _respond(self, client: _Client, request: RtspRequest) -> Reply:
        try:
            if request.cseq is None:
                raise _Status(400)
            if request.version != RTSP_VERSION:
                raise _Status(505)
            handler = self._methods().get(request.method)
            if handler is None:
                raise _Status(501, [("Public", PUBLIC)])
            if request.method != "OPTIONS":
                self._authorize(request)
            return await handler(client, request)
        except _Status as status:
            return RtspResponse.reply(request, status.status, status.headers), None
        except Exception:
            log.exception("rtsp: %s %s failed", request.method, request.uri)
            return RtspResponse.reply(request, 500), None

    def _methods(self) -> dict[str, Callable[[_Client, RtspRequest], Awaitable[Reply]]]:
        return {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
        }

    def _authorize(self, request: RtspRequest) -> None:
        if not self._auth.users:
            return
        authorization = request.headers.get("Authorization", "")
        if self._auth.authenticate(request.method, authorization) is None:
            raise _Status(
                401, [("WWW-Authenticate", value) for value in self._auth.challenges(authorization)]
            )

    def _session(self, request: RtspRequest) -> Session:
        value = request.headers.get("Session")
        if value is None:
            raise _Status(454)
        try:
            session_id, _ = parse_session(value)
        except ProtocolError:
            raise _Status(454) from None
        session = self._sessions.get(session_id)
        if session is None:
            raise _Status(454)
        session.touch()
        return session

    def _session_header(self, session: Session) -> dict[str, str]:
        return {"Session": f"{session.id};timeout={round(session.timeout)}"}

    def _resolve(self, path: str) -> StreamSource | None:
        try:
            return self._resolver(path)
        except CameraError as exc:
            log.info("rtsp: %s is not available: %s", path, exc)
            raise _Status(503, [("Retry-After", "5")]) from None

    async def _options(self, client: _Client, request: RtspRequest) -> Reply:
        return RtspResponse.reply(request, 200, {"Public": PUBLIC}), None

    async def _describe(self, client: _Client, request: RtspRequest) -> Reply:
        authority, path, track = _split_uri(request.uri)
        source = self._resolve(path) if track is None else None
        if source is None:
            raise _Status(404)
        try:
            async with asyncio.timeout(DESCRIBE_TIMEOUT):
                await source.wait_ready()
        except TimeoutError:
            raise _Status(503) from None
        sdp = SessionDescription(
            media=tuple(t.media(f"trackID={i}") for i, t in enumerate(source.tracks)),
            host=client.local_host,
            session_id=int(time.time()),
        )
        headers = {
            "Content-Type": "application/sdp",
            "Content-Base": f"rtsp://{authority}/{path}/",
        }
        return RtspResponse.reply(request, 200, headers, sdp.serialize().encode()), None

    async def _setup(self, client: _Client, request: RtspRequest) -> Reply:
        _, path, index = _split_uri(request.uri)
        if index is None:
            raise _Status(459)  # SETUP names a track, never the presentation
        session: Session | None = None
        if "Session" in request.headers:
            session = self._session(request)
            if session.path != path:
                raise _Status(459)
            if session.state is State.PLAYING:
                raise _Status(455)  # no transport changes mid-stream
        source = session.source if session is not None else self._resolve(path)
        if source is None or not 0 <= index < len(source.tracks):
            raise _Status(404)
        transport = request.headers.get("Transport")
        if transport is None:
            raise _Status(461)
        try:
            specs = parse_transport(transport)
        except ProtocolError:
            raise _Status(461) from None
        if session is None:
            session = Session(path, source, self.session_timeout)
        track = source.tracks[index]
        sequencer = new_sequencer(track)
        chosen = await self._open_output(client, session, specs, index)
        if chosen is None:
            if not session.tracks:
                await session.close()
            raise _Status(461)
        spec, output = chosen
        old = session.tracks.pop(index, None)
        if old is not None:
            old.output.close()
        answer = answer_transport(spec, output, sequencer.ssrc)
        session.tracks[index] = TrackBinding(
            track, request.uri, answer, output, sequencer, self.stats
        )
        self._sessions[session.id] = session
        if isinstance(output, InterleavedOutput):
            client.sessions.add(session)
        headers = {"Transport": answer.serialize(), **self._session_header(session)}
        return RtspResponse.reply(request, 200, headers), None

    async def _open_output(
        self, client: _Client, session: Session, specs: list[TransportSpec], index: int
    ) -> tuple[TransportSpec, Output] | None:
        for spec in specs:
            if spec.protocol != "RTP/AVP" or spec.delivery == "multicast":
                continue
            if spec.is_tcp:
                channels = spec.interleaved or (2 * index, 2 * index + 1)
                return (
                    TransportSpec(
                        protocol=spec.protocol,
                        lower_transport="TCP",
                        interleaved=channels,
                    ),
                    InterleavedOutput(client.writer, channels),
                )
            if spec.lower_transport in (None, "UDP") and spec.client_port is not None:
                output = await UdpOutput.bind(
                    client.local_host, client.peer_host, spec.client_port, session.touch
                )
                return TransportSpec(protocol=spec.protocol, client_port=spec.client_port), output
        return None

    async def _play(self, client: _Client, request: RtspRequest) -> Reply:
        session = self._session(request)
        headers = self._session_header(session)
        if session.state is State.PLAYING:
            return RtspResponse.reply(request, 200, {**headers, "Range": "npt=now-"}), None
        try:
            positions = await session.prepare_play()
        except TimeoutError:
            raise _Status(503, headers.items()) from None
        rtp_info = ",".join(
            f"url={binding.control};seq={seq};rtptime={rtptime}"
            for binding, seq, rtptime in positions
        )
        headers |= {"Range": "npt=now-", "RTP-Info": rtp_info}
        return RtspResponse.reply(request, 200, headers), session.start

    async def _pause(self, client: _Client, request: RtspRequest) -> Reply:
        session = self._session(request)
        await session.pause()
        return RtspResponse.reply(request, 200, self._session_header(session)), None

    async def _teardown(self, client: _Client, request: RtspRequest) -> Reply:
        session = self._session(request)
        await self._end(session)
        return RtspResponse.reply(request, 200), None

    async def _keepalive(self, client: _Client, request: RtspRequest) -> Reply:
        headers: dict[str, str] = {}
        if "Session" in request.headers:
            headers = self._session_header(self._session(request))
        return RtspResponse.reply(request, 200, headers), None
