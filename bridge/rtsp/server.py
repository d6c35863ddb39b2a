"""RFC 2326 RTSP server: thin asyncio I/O around the sans-I/O protocol, RTP and SDP cores.

Serves live streams only: DESCRIBE, SETUP (UDP unicast or TCP interleaved), PLAY from the next
IDR, PAUSE, TEARDOWN, and GET/SET_PARAMETER as keepalives. A malformed request gets 400 and
closes its own connection only.

The same port takes RTSP tunnelled in HTTP (:mod:`bridge.rtsp.tunnel`): a connection that
opens with an HTTP GET carrying an ``x-sessioncookie`` becomes a tunnel, whose RTSP
conversation is that connection's as if it spoke RTSP (responses and interleaved RTP go out on
it, its sessions are released when it closes), except that the requests come from POSTs with
the same cookie from the same address, decoded from base64. RTP always rides the tunnel.

Peers are hostile and the gateway runs unattended for years, so everything a client can make
the server hold is bounded (the time limits are gortsplib's, in its ``server.go``):

- Time: a request must be complete within ``header_timeout`` of its first byte, and a
  connection with no complete request or interleaved frame for ``idle_timeout`` is closed,
  unless a session it set up is playing: it then lasts as long as that session.
- Connections: per client address and in all. One past a cap is closed before anything is
  read from it: answering would mean reading a request (a response must echo its CSeq),
  which spends the very slot the cap protects.
- Sessions: per connection, per user, and UDP sockets in all (half the process's file
  descriptors, so RTSP can never starve ONVIF, the web app or the cameras). A SETUP past
  one of them, or one whose sockets the kernel refuses (EMFILE), is answered 453 Not Enough
  Bandwidth, RFC 2326's "resource reservation failure", after trying the client's other
  transports (a UDP refusal falls through to an offered TCP alternative).
- Ownership: a session answers only to the user who set it up, and only on the connection
  that set it up; a UDP-only session also answers that user on another connection from the
  same address (RFC 2326 lets a session outlive its connection, and some clients close it
  after PLAY). Anyone else gets 454 Session Not Found, as if the id did not exist.
- Release: a connection that closes without TEARDOWN ends the sessions it set up, except
  UDP sessions that are playing (they live on the client's RTCP receiver reports), so socket
  pairs never outlive a client that merely set them up.

Talking back (the ONVIF audio back channel, :mod:`bridge.rtsp.backchannel`): a DESCRIBE that
requires it gets the extra ``a=sendonly`` section where the path's camera has a speaker and the
user may operate it, else 551 Option not supported; the camera's one speaker goes to one
session at a time (a second talker's SETUP: 453). Any other option tag a request requires is
answered 551, as RFC 2326 §12.32 asks.

Refusals are logged through :class:`~bridge.ratelimit.ThrottledLog`, and no log line holds a
request line or a header: they say what was wrong, not what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import resource
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from bridge.errors import CameraError, MessageTooLarge, ProtocolError
from bridge.httpauth import Authenticator
from bridge.ratelimit import ThrottledLog, TokenBucket
from bridge.rtsp import tunnel as http_tunnel
from bridge.rtsp.backchannel import BACKCHANNEL, Backchannel
from bridge.rtsp.protocol import (
    RTSP_VERSION,
    InterleavedFrame,
    RtspConnection,
    RtspRequest,
    RtspResponse,
    TransportSpec,
    parse_require,
    parse_session,
    parse_transport,
)
from bridge.rtsp.sdp import SessionDescription, backchannel_media, received_by_client
from bridge.rtsp.session import (
    Delivered,
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
from bridge.rtsp.stream import StreamSource, media_description
from bridge.talk import TalkLine

log = logging.getLogger(__name__)

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
DESCRIBE_TIMEOUT = 5.0
READ_SIZE = 64 * 1024
HEADER_TIMEOUT = 10.0  # from a request's first byte to its last
IDLE_TIMEOUT = 60.0  # without a request or interleaved frame, and no session playing
WRITE_TIMEOUT = 10.0  # for a client to take our responses off the socket buffer
# A VMS pulls main and sub of every camera from one address as one user: 32 cameras' worth.
MAX_CONNECTIONS = 256
MAX_CONNECTIONS_PER_HOST = 64
MAX_SESSIONS_PER_CONNECTION = 8  # clients use one; a few set up several on one connection
MAX_SESSIONS_PER_USER = 64  # on a server without users, everyone is one anonymous user
MAX_UDP_SOCKETS = 1024  # 2 per UDP track: 256 two-track sessions, and at most half the fds
# Decoded POST reads a tunnel's conversation has not taken yet: past them a POST waits (at
# most WRITE_TIMEOUT), as a plain connection's client waits on its socket buffer.
TUNNEL_BACKLOG = 8
_TRACK = re.compile(r"trackID=([0-9]{1,3})")

# A path to its stream; None for no such stream, CameraError for one that cannot play now.
Resolver = Callable[[str], StreamSource | None]
# A path to its camera's speaker, None where it has none; whether a user (None on a server
# without users) may talk.
TalkResolver = Callable[[str], TalkLine | None]
TalkPermission = Callable[[str | None], bool]
Reply = tuple[RtspResponse, Callable[[], None] | None]  # the response, then what follows it
Read = Callable[[], Awaitable[bytes]]  # the next bytes of a conversation; b"" at its end


class _Status(Exception):
    """Ends a request with an error status."""

    def __init__(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = list(headers)


class _Hangup(Exception):
    """Ends a connection that broke a time limit; the message says which."""


@dataclass(eq=False)
class _Client:
    writer: asyncio.StreamWriter
    peer_host: str
    local_host: str
    sessions: set[Session] = field(default_factory=set)  # set up here, released with us
    last_activity: float = field(default_factory=time.monotonic)
    tunnelled: bool = False  # the GET of an HTTP tunnel: its requests come from POSTs

    def idle_deadline(self, idle_timeout: float) -> float:
        """When the connection may be closed for idling: never while a session it carries
        plays, as the client may only send RTCP (over UDP, or interleaved) until it ends."""
        deadline = self.last_activity + idle_timeout
        playing = [s.expires for s in self.sessions if s.state is State.PLAYING]
        return max([deadline, *playing])


@dataclass(eq=False)
class _Tunnel:
    """An RTSP conversation tunnelled in HTTP. Its GET's connection carries it: that
    connection's client takes the responses and RTP and holds the sessions; POSTs (one at a
    time, or a new one per request as QuickTime may send them) feed it what they decode."""

    client: _Client
    inbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(TUNNEL_BACKLOG))
    posts: set[asyncio.StreamWriter] = field(default_factory=set)
    ended: bool = False

    async def feed(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.inbox.put(data)
        except TimeoutError:
            raise _Hangup("its tunnel is not taking requests") from None

    def end(self) -> None:
        """The GET closed (or its conversation ended): end the conversation and the POSTs."""
        if self.ended:
            return
        self.ended = True
        for post in self.posts:
            post.close()
        while not self.inbox.empty():  # unread requests of a client that left mean nothing
            self.inbox.get_nowait()
        self.inbox.put_nowait(b"")


def _reads(reader: asyncio.StreamReader, first: bytes) -> Read:
    """Reads of a connection from which ``first`` was read already: it comes first."""
    pending = [first]

    async def read() -> bytes:
        return pending.pop() if pending else await reader.read(READ_SIZE)

    return read


# What serves one method: (connection, request, the user it authenticated as) to the reply.
Handler = Callable[[_Client, RtspRequest, str | None], Awaitable[Reply]]


def _split_uri(uri: str) -> tuple[str, str, int | None]:
    """(authority without credentials, stream path, track index or None) of a request URI."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # a malformed IPv6 literal, say
        raise _Status(400) from None
    if parts.scheme.lower() not in ("rtsp", "rtspu") or not parts.netloc:
        raise _Status(400)
    authority = parts.netloc.rpartition("@")[2]
    segments = [s for s in parts.path.split("/") if s]
    track = None
    if segments and (match := _TRACK.fullmatch(segments[-1])):
        track = int(match.group(1))
        segments.pop()
    return authority, "/".join(segments), track


def _udp_socket_budget() -> int:
    """:data:`MAX_UDP_SOCKETS`, or half the descriptors this process may open if fewer."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_UDP_SOCKETS
    return min(MAX_UDP_SOCKETS, soft // 2)


class RtspServer:
    def __init__(
        self,
        resolver: Resolver,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, str],
        talk: TalkResolver = lambda path: None,
        may_talk: TalkPermission = lambda user: True,
        realm: str = "bridge",
        session_timeout: float = 60,
        header_timeout: float = HEADER_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_connections_per_host: int = MAX_CONNECTIONS_PER_HOST,
        max_sessions_per_connection: int = MAX_SESSIONS_PER_CONNECTION,
        max_sessions_per_user: int = MAX_SESSIONS_PER_USER,
        max_udp_sockets: int | None = None,  # None: see _udp_socket_budget
    ) -> None:
        self._resolver = resolver
        self._talk = talk
        self._may_talk = may_talk
        self._host = host
        self._requested_port = port
        self._auth = Authenticator(users, realm)
        self.stats = DeliveryStats()
        # Per stream path, for metrics; only paths the resolver accepted (configured cameras'
        # profiles), never what a client made up.
        self.delivered: dict[str, Delivered] = {}
        self.session_timeout = session_timeout
        self._header_timeout = header_timeout
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._max_connections_per_host = max_connections_per_host
        self._max_sessions_per_connection = max_sessions_per_connection
        self._max_sessions_per_user = max_sessions_per_user
        self._max_udp_sockets = _udp_socket_budget() if max_udp_sockets is None else max_udp_sockets
        self._binding_udp = 0  # sockets being bound right now, not yet in a session
        self._refusals = ThrottledLog(log)
        self._tracebacks = TokenBucket(rate=1 / 60, burst=3)  # a bug a peer can trigger at will
        self._sessions: dict[str, Session] = {}
        self._clients: set[_Client] = set()
        # HTTP tunnels by cookie; one per GET connection, so bounded by the connection caps.
        self._tunnels: dict[str, _Tunnel] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._more_servers: dict[str, asyncio.Server] = {}  # by address, from listen_also
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
        self._more_servers[host] = await asyncio.start_server(self._serve_client, host, self.port)

    def listen_no_more(self, host: str) -> None:
        """Stop taking connections on an address :meth:`listen_also` added (its camera left).
        Connections already open go on until their client or the camera's end closes them."""
        server = self._more_servers.pop(host, None)
        if server is not None:
            server.close()

    async def stop(self) -> None:
        servers = [s for s in (self._server, *self._more_servers.values()) if s is not None]
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

    @property
    def connections(self) -> int:
        return len(self._clients)

    async def _reap(self) -> None:
        interval = min(1.0, self.session_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for session in [s for s in self._sessions.values() if s.expired(now)]:
                log.info("rtsp session %s timed out", session.id)
                await self._end(session)

    async def _end(self, session: Session, *, bye: str = "") -> None:
        if self._sessions.pop(session.id, None) is not None and session.state is State.PLAYING:
            log.info("rtsp: viewer %s left %s", session.host, session.path)
        for client in self._clients:
            client.sessions.discard(session)
        await session.close(bye=bye)

    async def end_streams(self, prefix: str, reason: str) -> None:
        """End every session on the paths under ``prefix`` (``<camera>/``: a camera that was
        removed or is restarting), as if each viewer had sent TEARDOWN: an RTCP BYE giving
        ``reason``, then its connection closes unless it still carries other streams, so
        players see the end at once. The paths' delivery counts go with them."""
        ending = [s for s in self._sessions.values() if s.path.startswith(prefix)]
        carriers = [c for c in self._clients if not c.sessions.isdisjoint(ending)]
        for session in ending:
            await self._end(session, bye=reason)
        for client in carriers:
            if not client.sessions:
                client.writer.close()
        for path in [p for p in self.delivered if p.startswith(prefix)]:
            del self.delivered[path]

    def _refuse(self, kind: str, message: str, *args: object) -> None:
        self._refusals.log(logging.WARNING, kind, "rtsp: " + message, *args)

    # -- connections ----------------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        if not peer or not local:  # gone before it was accepted
            writer.close()
            return
        if not self._admit(peer[0]):
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        client = _Client(writer, peer[0], local[0])
        self._clients.add(client)
        try:
            first, since = await self._first_bytes(reader, client)
            if first and http_tunnel.speaks_http(first):
                await self._open_tunnel_half(client, _reads(reader, first), since)
            elif first:
                await self._converse(client, _reads(reader, first), since)
        except _Hangup as exc:
            self._refusals.log(
                logging.INFO,
                str(exc),
                "rtsp: closed a connection from %s: %s",
                client.peer_host,
                exc,
            )
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(client)
            await self._release(client)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)

    def _admit(self, host: str) -> bool:
        if len(self._clients) >= self._max_connections:
            self._refuse(
                "connections", "refused a connection from %s: %d connections in all",
                host, self._max_connections,
            )  # fmt: skip
            return False
        if sum(c.peer_host == host for c in self._clients) >= self._max_connections_per_host:
            self._refuse(
                "connections per host", "refused a connection from %s: %d connections from it",
                host, self._max_connections_per_host,
            )  # fmt: skip
            return False
        return True

    async def _release(self, client: _Client) -> None:
        """End the sessions a closed connection set up, but for playing UDP-only ones."""
        for session in list(client.sessions):
            if session.state is State.PLAYING and not session.interleaved:
                continue  # its receiver reports keep it, TEARDOWN may come on a new connection
            await self._end(session)
        client.sessions.clear()

    async def _first_bytes(
        self, reader: asyncio.StreamReader, client: _Client
    ) -> tuple[bytes, float]:
        """Enough of a connection's first bytes to tell RTSP from a tunnel half (b"" if it
        closed before), and when the first came."""
        read = partial(reader.read, READ_SIZE)
        data = await self._receive(read, client, None)
        since = time.monotonic()
        while data and http_tunnel.speaks_http(data) is None:
            more = await self._receive(read, client, since)
            data = data + more if more else b""
        return data, since

    async def _converse(
        self, client: _Client, read: Read, partial_since: float | None = None
    ) -> None:
        """Answer the RTSP requests ``read`` brings; ``partial_since``: when a request
        began that has still to come (its header timeout runs from then)."""
        connection = RtspConnection()
        while data := await self._receive(read, client, partial_since):
            received = time.monotonic()
            connection.receive_data(data)
            completed = False
            while True:
                try:
                    event = connection.next_event()
                except ProtocolError as exc:
                    self._refusals.log(
                        logging.INFO, "bad request",
                        "rtsp: closing a connection from %s after a bad request: %s",
                        client.peer_host, exc,
                    )  # fmt: skip
                    client.writer.write(RtspResponse(400).serialize())
                    return
                if event is None:
                    break
                completed = True
                client.last_activity = time.monotonic()
                if isinstance(event, InterleavedFrame):
                    self._on_interleaved(client, event)
                    continue
                response, then = await self._respond(client, event)
                client.writer.write(response.serialize())
                if then is not None:
                    then()
                if response.status == 400:
                    return
            if not connection.buffered:
                partial_since = None
            elif completed or partial_since is None:
                partial_since = received
            await self._drain(client)

    async def _receive(self, read: Read, client: _Client, partial_since: float | None) -> bytes:
        """The next bytes from the client; b"" at its end, _Hangup past a time limit."""
        while True:
            if partial_since is not None:
                deadline = partial_since + self._header_timeout
            else:
                deadline = client.idle_deadline(self._idle_timeout)
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    return await read()
            except TimeoutError:
                if partial_since is not None:
                    raise _Hangup("request not complete in time") from None
                if client.idle_deadline(self._idle_timeout) <= time.monotonic():
                    raise _Hangup("idle") from None
                # A session it carries was kept alive meanwhile: wait on.

    async def _drain(self, client: _Client) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await client.writer.drain()
        except TimeoutError:
            raise _Hangup("not reading its responses") from None

    # -- RTSP tunnelled in HTTP ---------------------------------------------------------------

    async def _open_tunnel_half(self, client: _Client, read: Read, since: float) -> None:
        """Serve a connection that opened with an HTTP request (its first byte came at
        ``since``, when its header timeout began): a tunnel's GET or POST."""
        receiver = http_tunnel.TunnelReceiver()
        try:
            head = await self._next_tunnel_event(receiver, read, client, since)
        except ProtocolError as exc:
            status = 431 if isinstance(exc, MessageTooLarge) else 400
            self._refuse_tunnel(client, status, "bad tunnel request", "%s", exc, level=logging.INFO)
            return
        if head is None:
            return
        assert isinstance(head, http_tunnel.TunnelHead)
        if head.half is http_tunnel.Half.GET:
            await self._serve_tunnel(client, read, head.cookie)
        else:
            await self._feed_tunnel(client, read, receiver, head.cookie)

    def _refuse_tunnel(
        self,
        client: _Client,
        status: int,
        kind: str,
        reason: str,
        *args: object,
        level: int = logging.WARNING,
    ) -> None:
        """Answer an HTTP request that opens no tunnel half with ``status`` (the connection
        closes next), logged as a refusal of ``kind``."""
        self._refusals.log(
            level, kind, "rtsp: refused an HTTP request from %s: " + reason, client.peer_host, *args
        )
        client.writer.write(http_tunnel.http_refusal(status))

    async def _next_tunnel_event(
        self,
        receiver: http_tunnel.TunnelReceiver,
        read: Read,
        client: _Client,
        partial_since: float | None,
    ) -> http_tunnel.TunnelHead | http_tunnel.TunnelData | None:
        """The receiver's next event, read as it needs (under ``client``'s time limits); None
        when the connection ends first."""
        while (event := receiver.next_event()) is None:
            data = await self._receive(read, client, partial_since)
            if not data:
                return None
            receiver.receive_data(data)
        return event

    async def _serve_tunnel(self, client: _Client, read: Read, cookie: str) -> None:
        """A tunnel's GET: its RTSP conversation, until the client closes the GET."""
        if cookie in self._tunnels:
            self._refuse_tunnel(client, 409, "tunnel cookie in use", "a GET's cookie is in use")
            return
        tunnel = self._tunnels[cookie] = _Tunnel(client)
        client.tunnelled = True
        watcher = asyncio.create_task(self._watch_get(read, tunnel), name="rtsp tunnel GET")
        try:
            client.writer.write(http_tunnel.TUNNEL_OPENED)
            await self._drain(client)
            # Until a POST brings a request the tunnel counts as an unfinished one: a GET
            # whose POST never comes is closed after the header timeout.
            await self._converse(client, tunnel.inbox.get, partial_since=time.monotonic())
        finally:
            del self._tunnels[cookie]
            tunnel.end()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_get(self, read: Read, tunnel: _Tunnel) -> None:
        """End the tunnel when its client closes the GET (what it sends there means nothing);
        cancelled when the conversation ends first."""
        with contextlib.suppress(ConnectionError):
            while await read():
                pass
        tunnel.end()

    async def _feed_tunnel(
        self, client: _Client, read: Read, receiver: http_tunnel.TunnelReceiver, cookie: str
    ) -> None:
        """A tunnel's POST: decode what it carries into its GET's conversation. It is never
        answered, and its close leaves the tunnel open for the next POST."""
        tunnel = self._tunnels.get(cookie)
        # A cookie binds only the address that opened the GET (as in gortsplib): anyone else
        # who learnt it cannot talk on another's tunnel.
        if tunnel is None or tunnel.ended or tunnel.client.peer_host != client.peer_host:
            self._refuse_tunnel(client, 404, "unknown tunnel cookie", "no GET with a POST's cookie")
            return
        tunnel.posts.add(client.writer)
        try:
            # The POST lives as long as its tunnel may idle, not longer: the GET's time limits.
            while event := await self._next_tunnel_event(receiver, read, tunnel.client, None):
                assert isinstance(event, http_tunnel.TunnelData)
                await tunnel.feed(event.data)
        except ProtocolError as exc:
            self._refusals.log(
                logging.INFO, "bad tunnel data",
                "rtsp: closed a tunnel POST from %s: %s", client.peer_host, exc,
            )  # fmt: skip
        finally:
            tunnel.posts.discard(client.writer)

    def _on_interleaved(self, client: _Client, frame: InterleavedFrame) -> None:
        for session in client.sessions:
            talk = session.backchannel
            if talk is not None and talk.channels is not None and frame.channel == talk.channels[0]:
                talk.on_rtp(frame.payload)
                return
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
            user = None if request.method == "OPTIONS" else self._authorize(request)
            self._check_required(request)
            return await handler(client, request, user)
        except _Status as status:
            return RtspResponse.reply(request, status.status, status.headers), None
        except Exception:
            if self._tracebacks.allow(time.monotonic()):
                log.exception("rtsp: %s failed", request.method)
            return RtspResponse.reply(request, 500), None

    def _methods(self) -> dict[str, Handler]:
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

    def _authorize(self, request: RtspRequest) -> str | None:
        """The user the request authenticates as; None on a server without users."""
        if not self._auth.users:
            return None
        authorization = request.headers.get("Authorization", "")
        user = self._auth.authenticate(request.method, authorization)
        if user is None:
            raise _Status(
                401, [("WWW-Authenticate", value) for value in self._auth.challenges(authorization)]
            )
        return user

    def _check_required(self, request: RtspRequest) -> None:
        """551 naming the option tags the request requires that this server does not know."""
        try:
            required = parse_require(request.headers.get_all("Require"))
        except ProtocolError:
            raise _Status(400) from None
        unknown = [tag for tag in required if tag != BACKCHANNEL]
        if unknown:
            raise _Status(551, [("Unsupported", ", ".join(unknown))])

    def _session(self, client: _Client, request: RtspRequest, user: str | None) -> Session:
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
        if not self._may_use(client, session, user):
            self._refuse(
                "foreign session",
                "refused %s from %s: the session belongs to another user or connection",
                request.method, client.peer_host,
            )  # fmt: skip
            raise _Status(454)
        session.touch()
        return session

    def _may_use(self, client: _Client, session: Session, user: str | None) -> bool:
        if session.user != user:
            return False
        if session in client.sessions:
            return True
        # Interleaved RTP rides on the connection that set it up: only that one may drive it.
        return not session.interleaved and session.host == client.peer_host

    def _session_header(self, session: Session) -> dict[str, str]:
        return {"Session": f"{session.id};timeout={round(session.timeout)}"}

    def _resolve(self, path: str) -> StreamSource | None:
        try:
            return self._resolver(path)
        except CameraError as exc:
            # Only a configured camera raises, so the path is one of ours, not the client's.
            self._refusals.log(logging.INFO, f"unavailable {path}", "rtsp: %s", exc)
            raise _Status(503, [("Retry-After", "5")]) from None

    async def _options(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        return RtspResponse.reply(request, 200, {"Public": PUBLIC}), None

    async def _describe(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        authority, path, track = _split_uri(request.uri)
        source = self._resolve(path) if track is None else None
        if source is None:
            raise _Status(404)
        try:
            async with asyncio.timeout(DESCRIBE_TIMEOUT):
                await source.wait_ready()
        except TimeoutError:
            raise _Status(503) from None
        media = [media_description(t, f"trackID={i}") for i, t in enumerate(source.tracks)]
        if BACKCHANNEL in parse_require(request.headers.get_all("Require")):
            if self._talk(path) is None or not self._may_talk(user):
                # As for a server without the feature: the client can retry without it.
                raise _Status(551, [("Unsupported", BACKCHANNEL)])
            talk = backchannel_media(control=f"trackID={len(media)}")
            media = [*map(received_by_client, media), talk]
        sdp = SessionDescription(
            media=tuple(media), host=client.local_host, session_id=int(time.time())
        )
        headers = {
            "Content-Type": "application/sdp",
            "Content-Base": f"rtsp://{authority}/{path}/",
        }
        return RtspResponse.reply(request, 200, headers, sdp.serialize().encode()), None

    async def _setup(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        _, path, index = _split_uri(request.uri)
        if index is None:
            raise _Status(459)  # SETUP names a track, never the presentation
        session: Session | None = None
        if "Session" in request.headers:
            session = self._session(client, request, user)
            if session.path != path:
                raise _Status(459)
            if session.state is State.PLAYING:
                raise _Status(455)  # no transport changes mid-stream
        source = session.source if session is not None else self._resolve(path)
        if source is None or not 0 <= index <= len(source.tracks):
            raise _Status(404)
        talk: TalkLine | None = None
        if index == len(source.tracks):  # the back channel's, as DESCRIBE numbered it
            talk = self._talk(path)
            if talk is None:
                raise _Status(404)
            if not self._may_talk(user):
                self._refuse(
                    "talk", "refused to let %s talk: its user may not operate", client.peer_host
                )
                raise _Status(403)
        transport = request.headers.get("Transport")
        if transport is None:
            raise _Status(461)
        try:
            specs = parse_transport(transport)
        except ProtocolError:
            raise _Status(461) from None
        if session is None:
            self._check_session_quota(client, user)
            delivered = self.delivered.setdefault(path, Delivered())
            session = Session(
                path,
                source,
                self.session_timeout,
                user=user,
                host=client.peer_host,
                tunnelled=client.tunnelled,
                delivered=delivered,
            )
            # Registered before any await, so that quotas count it while its sockets are bound.
            self._sessions[session.id] = session
            client.sessions.add(session)
        if talk is not None:
            return await self._setup_backchannel(client, request, session, talk, specs)
        try:
            spec, output = await self._open_output(client, session, specs, index)
        except _Status:
            if session.empty:  # the session this very request was creating
                await self._end(session)
            raise
        track = source.tracks[index]
        sequencer = new_sequencer(track)
        old = session.tracks.pop(index, None)
        if old is not None:
            old.output.close()
        answer = answer_transport(spec, output, sequencer.ssrc)
        session.tracks[index] = TrackBinding(
            track, request.uri, answer, output, sequencer, self.stats, session.delivered
        )
        headers = {"Transport": answer.serialize(), **self._session_header(session)}
        return RtspResponse.reply(request, 200, headers), None

    async def _setup_backchannel(
        self,
        client: _Client,
        request: RtspRequest,
        session: Session,
        talk: TalkLine,
        specs: list[TransportSpec],
    ) -> Reply:
        """SETUP of the back channel: the camera's speaker claimed for this session, then a
        transport the client sends on (453 while another session holds the speaker)."""
        if session.backchannel is not None:  # a repeated SETUP replaces the transport
            session.backchannel.close()
            session.backchannel = None
        sink = talk.claim()
        if sink is None:
            if session.empty:
                await self._end(session)
            self._refuse("talking", "refused a talker from %s: another one talks", client.peer_host)
            raise _Status(453)
        backchannel = Backchannel(sink, session.touch)
        try:
            spec, output = await self._open_output(
                client, session, specs, len(session.source.tracks),
                rtp_protocol=partial(backchannel.datagram_protocol, session.host),
            )  # fmt: skip
        except _Status:
            backchannel.close()
            if session.empty:
                await self._end(session)
            raise
        backchannel.output = output
        session.backchannel = backchannel
        headers = {
            "Transport": answer_transport(spec, output, None).serialize(),
            **self._session_header(session),
        }
        return RtspResponse.reply(request, 200, headers), None

    def _check_session_quota(self, client: _Client, user: str | None) -> None:
        if len(client.sessions) >= self._max_sessions_per_connection:
            self._refuse(
                "sessions per connection", "refused a SETUP from %s: %d sessions on its connection",
                client.peer_host, self._max_sessions_per_connection,
            )  # fmt: skip
            raise _Status(453)
        if sum(s.user == user for s in self._sessions.values()) >= self._max_sessions_per_user:
            self._refuse(
                "sessions per user", "refused a SETUP from %s: its user has %d sessions",
                client.peer_host, self._max_sessions_per_user,
            )  # fmt: skip
            raise _Status(453)

    async def _open_output(
        self,
        client: _Client,
        session: Session,
        specs: list[TransportSpec],
        index: int,
        *,
        rtp_protocol: Callable[[], asyncio.DatagramProtocol] | None = None,
    ) -> tuple[TransportSpec, Output]:
        """The first of the client's transports that can be had; 461 when none is supported,
        453 when a supported one was refused for want of resources. ``rtp_protocol`` reads
        the server RTP port of a UDP transport (a back channel's)."""
        short_of_resources = False
        for spec in specs:
            if spec.protocol != "RTP/AVP" or spec.delivery == "multicast":
                continue
            if spec.is_tcp:
                if session not in client.sessions:
                    continue  # interleaved data only flows on the session's own connection
                channels = spec.interleaved or (2 * index, 2 * index + 1)
                return (
                    TransportSpec(
                        protocol=spec.protocol,
                        lower_transport="TCP",
                        interleaved=channels,
                    ),
                    InterleavedOutput(client.writer, channels),
                )
            if client.tunnelled:
                continue  # RTP rides the tunnel (RTP/RTSP/HTTP/TCP): UDP did not get through
            if spec.lower_transport in (None, "UDP") and spec.client_port is not None:
                output = await self._bind_udp(client, session, spec.client_port, rtp_protocol)
                if output is None:
                    short_of_resources = True
                    continue
                return TransportSpec(protocol=spec.protocol, client_port=spec.client_port), output
        raise _Status(453 if short_of_resources else 461)

    async def _bind_udp(
        self,
        client: _Client,
        session: Session,
        client_ports: tuple[int, int],
        rtp_protocol: Callable[[], asyncio.DatagramProtocol] | None,
    ) -> UdpOutput | None:
        """A server port pair for the session, or None (logged) when none can be had."""
        held = sum(s.udp_sockets for s in self._sessions.values()) + self._binding_udp
        if held + 2 > self._max_udp_sockets:
            self._refuse(
                "udp budget", "refused UDP to %s: %d UDP sockets in use, the most allowed",
                client.peer_host, held,
            )  # fmt: skip
            return None
        self._binding_udp += 2
        try:
            return await UdpOutput.bind(
                client.local_host, session.host, client_ports, session.touch,
                rtp_protocol=rtp_protocol,
            )  # fmt: skip
        except OSError as exc:
            self._refuse("udp bind", "refused UDP to %s: %s", client.peer_host, exc)
            return None
        finally:
            self._binding_udp -= 2

    async def _play(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        session = self._session(client, request, user)
        headers = self._session_header(session)
        if session.state is State.PLAYING:
            return RtspResponse.reply(request, 200, {**headers, "Range": "npt=now-"}), None
        try:
            positions = await session.prepare_play()
        except TimeoutError:
            raise _Status(503, headers.items()) from None
        headers["Range"] = "npt=now-"
        if positions:  # none for a session that only talks: it is sent nothing
            headers["RTP-Info"] = ",".join(
                f"url={binding.control};seq={seq};rtptime={rtptime}"
                for binding, seq, rtptime in positions
            )
        log.info(
            "rtsp: %s %s joined %s over %s",
            "viewer" if session.backchannel is None else "talker",
            session.host,
            session.path,
            session.transport.upper(),
        )
        return RtspResponse.reply(request, 200, headers), session.start

    async def _pause(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        session = self._session(client, request, user)
        if session.state is State.PLAYING:
            log.info("rtsp: viewer %s paused %s", session.host, session.path)
        await session.pause()
        return RtspResponse.reply(request, 200, self._session_header(session)), None

    async def _teardown(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        session = self._session(client, request, user)
        await self._end(session)
        return RtspResponse.reply(request, 200), None

    async def _keepalive(self, client: _Client, request: RtspRequest, user: str | None) -> Reply:
        headers: dict[str, str] = {}
        if "Session" in request.headers:
            headers = self._session_header(self._session(client, request, user))
        return RtspResponse.reply(request, 200, headers), None
