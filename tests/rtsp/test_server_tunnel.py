"""RtspServer's RTSP-over-HTTP tunnel against raw sockets on loopback: a client as ffmpeg
opens one (a GET, then a POST of base64 requests), and clients that get it wrong on purpose.
Real clients (ffprobe, ffmpeg, GStreamer) play through it in
tests/test_gateway_streaming.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest
import rtsp_rig as rig
import test_backchannel_server as talk
from helpers import RawClient
from rtsp_rig import server_fixture, source_fixture, start_server_fixture  # noqa: F401 (fixtures)

from bridge.rtsp.server import RtspServer
from bridge.rtsp.session import State
from bridge.rtsp.tunnel import MAX_COOKIE
from bridge.talk import TalkCodec

LIMIT = 5.0  # seconds any one wait of these tests may take
COOKIE = "5c2a4e36b2c1f0d9"


def get_head(cookie: str = COOKIE) -> bytes:
    """The GET ffmpeg opens a tunnel with (its User-Agent and Icy headers left out)."""
    return (
        "GET /cam/main HTTP/1.1\r\nAccept: */*\r\nRange: bytes=0-\r\nConnection: close\r\n"
        f"Host: 127.0.0.1\r\nx-sessioncookie: {cookie}\r\n"
        "Accept: application/x-rtsp-tunnelled\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
        "\r\n"
    ).encode()


def post_head(cookie: str = COOKIE) -> bytes:
    return (
        "POST /cam/main HTTP/1.1\r\nAccept: */*\r\nConnection: close\r\nHost: 127.0.0.1\r\n"
        f"x-sessioncookie: {cookie}\r\nContent-Type: application/x-rtsp-tunnelled\r\n"
        "Pragma: no-cache\r\nCache-Control: no-cache\r\nContent-Length: 32767\r\n"
        "Expires: Sun, 9 Jan 1972 00:00:00 GMT\r\n\r\n"
    ).encode()


class Post:
    """A tunnel's POST as RawClient's writer: each request goes base64-encoded on its own."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> None:
        self.writer.write(base64.b64encode(data))

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Tunnel:
    """Opens connections to a server (from any loopback address); closes them after the test."""

    def __init__(self) -> None:
        self.opened: list[asyncio.StreamWriter] = []

    async def connect(self, server: RtspServer, host: str = "127.0.0.1") -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=(host, 0)
        )
        self.opened.append(writer)
        return reader, writer

    async def open_get(self, server: RtspServer, cookie: str = COOKIE) -> asyncio.StreamReader:
        """A GET, answered: its reader, at the tunnel's first RTSP byte."""
        reader, writer = await self.connect(server)
        writer.write(get_head(cookie))
        async with asyncio.timeout(LIMIT):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK\r\n")
        assert b"\r\nContent-Type: application/x-rtsp-tunnelled\r\n" in head
        assert b"\r\nCache-Control: no-store, no-cache\r\n" in head
        assert b"\r\nPragma: no-cache\r\n" in head
        return reader

    async def open_post(
        self, server: RtspServer, cookie: str = COOKIE, host: str = "127.0.0.1"
    ) -> Connection:
        reader, writer = await self.connect(server, host)
        writer.write(post_head(cookie))
        return reader, writer

    async def open(self, server: RtspServer, authorization: str = rig.BASIC) -> RawClient:
        """A whole tunnel as an RTSP client: responses and RTP from its GET, requests by POST."""
        reader = await self.open_get(server)
        _, post = await self.open_post(server)
        return RawClient(reader, Post(post), authorization)  # type: ignore[arg-type]


@pytest.fixture(name="tunnel")
async def tunnel_fixture() -> AsyncIterator[Tunnel]:
    tunnel = Tunnel()
    yield tunnel
    for writer in tunnel.opened:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes the connection."""
    received = b""
    async with asyncio.timeout(LIMIT):
        while data := await reader.read(64 * 1024):
            received += data
    return received


async def wait_for(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds; the server's state has no event to wait on from outside."""
    async with asyncio.timeout(LIMIT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def refusals(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


# -- the tunnel as a client uses it ---------------------------------------------------------


async def test_requests_by_post_are_answered_on_the_get(server: RtspServer, tunnel: Tunnel) -> None:
    client = await tunnel.open(server)
    status, headers, _ = await client.request("OPTIONS", rig.base(server), auth=False)
    assert status == 200
    assert "DESCRIBE" in headers["Public"]
    # Auth is the RTSP requests' own, as on a plain connection.
    status, headers, _ = await client.request("DESCRIBE", rig.base(server), auth=False)
    assert status == 401
    assert headers["WWW-Authenticate"]
    status, headers, body = await client.request("DESCRIBE", rig.base(server))
    assert status == 200
    assert b"m=video" in body
    assert server.connections == 2  # the GET and the POST


async def playing(server: RtspServer, tunnel: Tunnel) -> tuple[RawClient, str]:
    """A tunnel whose session plays the video track: the client, the session's id."""
    client = await tunnel.open(server)
    session = await rig.setup_session(client, server)
    await rig.play(client, server, session)
    assert server.sessions[session].state is State.PLAYING
    return client, session


async def test_a_tunnel_plays_interleaved_rtp_on_its_get(
    server: RtspServer, tunnel: Tunnel
) -> None:
    client, _ = await playing(server, tunnel)
    async with asyncio.timeout(LIMIT):
        channels = [(await client.frame())[0] for _ in range(20)]
    assert channels.count(0) >= 15  # RTP; RTCP sender reports on 1
    assert set(channels) <= {0, 1}


async def test_receiver_reports_by_post_keep_a_playing_session(
    start_server: rig.StartServer, tunnel: Tunnel
) -> None:
    server = await start_server(session_timeout=1.5)
    client, session = await playing(server, tunnel)
    report = b"$\x01\x00\x08" + bytes.fromhex("80c90001deadbeef")  # RTCP RR, interleaved

    async def report_now_and_then() -> None:  # as players do, whatever the video does
        while True:
            client.writer.write(report)
            await asyncio.sleep(0.25)

    reporter = asyncio.create_task(report_now_and_then())
    loop = asyncio.get_running_loop()
    until = loop.time() + 4.0  # over two and a half session timeouts
    try:
        async with asyncio.timeout(LIMIT + 4.0):
            while loop.time() < until:
                await client.frame()
    finally:
        reporter.cancel()
    assert server.sessions[session].state is State.PLAYING
    await wait_for(lambda: session not in server.sessions)  # without them it times out


async def test_talking_back_through_the_tunnel(
    start_server: rig.StartServer, tunnel: Tunnel
) -> None:
    """The ONVIF back channel's RTP, interleaved in the POST like RTCP."""
    speaker = talk.Speaker()
    server = await start_server(talk=lambda path: speaker if path == "cam/main" else None)
    client = await tunnel.open(server)
    session = await talk.setup_talk(client, server)
    await talk.play(client, server, session)
    talk.send_interleaved(client, talk.rtp(1, b"\x01" * talk.PACKET))
    assert await speaker.next() == (TalkCodec.PCMU, b"\x01" * talk.PACKET)


async def test_udp_is_refused_inside_a_tunnel(server: RtspServer, tunnel: Tunnel) -> None:
    client = await tunnel.open(server)
    udp = {"Transport": "RTP/AVP;unicast;client_port=5000-5001"}
    status, _, _ = await client.request("SETUP", f"{rig.base(server)}/trackID=0", udp)
    assert status == 461
    # Offered both, the client gets the tunnel.
    either = {"Transport": f"{udp['Transport']},{rig.TCP_TRANSPORT['Transport']}"}
    status, headers, _ = await client.request("SETUP", f"{rig.base(server)}/trackID=0", either)
    assert status == 200
    assert "interleaved=0-1" in headers["Transport"]


async def test_closing_the_post_leaves_the_tunnel_to_the_next_one(
    server: RtspServer, tunnel: Tunnel
) -> None:
    client = await tunnel.open(server)
    session = await rig.setup_session(client, server)
    assert isinstance(client.writer, Post)
    client.writer.close()
    await client.writer.wait_closed()
    _, post = await tunnel.open_post(server)
    client.writer = Post(post)  # type: ignore[assignment]
    await rig.play(client, server, session)
    assert (await client.frame())[0] in (0, 1)


async def test_closing_the_get_ends_its_sessions_and_posts(
    server: RtspServer, tunnel: Tunnel
) -> None:
    client, _ = await playing(server, tunnel)
    post_reader = (await tunnel.open_post(server))[0]  # a second POST, still open
    assert isinstance(client.writer, Post)
    tunnel.opened[0].write_eof()  # the GET
    await closed_by_server(client.reader)
    await closed_by_server(post_reader)
    assert server.sessions == {}
    await wait_for(lambda: server.connections == 0)


async def test_a_request_split_across_posts_is_one_request(
    server: RtspServer, tunnel: Tunnel
) -> None:
    reader = await tunnel.open_get(server)
    request = f"OPTIONS {rig.base(server)} RTSP/1.0\r\nCSeq: 7\r\n\r\n".encode()
    first_reader, first = await tunnel.open_post(server)
    first.write(base64.b64encode(request[:10]) + b"\r\n")
    first.write_eof()
    assert await closed_by_server(first_reader) == b""  # all it sent was taken
    _, second = await tunnel.open_post(server)
    second.write(base64.b64encode(request[10:]))
    async with asyncio.timeout(LIMIT):
        answer = await reader.readuntil(b"\r\n\r\n")
    assert answer.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n")


# -- halves that open no tunnel -------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /cam/main HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"400"),  # a browser
        (b"POST /cam/main HTTP/1.1\r\nno colon\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nx-sessioncookie: " + b"c" * (MAX_COOKIE + 1) + b"\r\n\r\n", b"431"),
        (b"GET /cam/main HTTP/1.1\r\n" + b"X-Filler: 0123456789\r\n" * 500, b"431"),
    ],
    ids=["no-cookie", "malformed", "long-cookie", "long-head"],
)
async def test_a_head_that_opens_no_tunnel_is_refused_and_closed(
    server: RtspServer, tunnel: Tunnel, caplog: pytest.LogCaptureFixture, head: bytes, status: bytes
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(5):
        reader, writer = await tunnel.connect(server)
        writer.write(head)
        answer = await closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.0 " + status + b" ")
        assert answer.endswith(b"\r\n\r\n")
    assert refusals(caplog, "refused an HTTP request from 127.0.0.1") == 1  # not five
    assert errors(caplog) == []
    await wait_for(lambda: server.connections == 0)


async def test_a_post_without_its_get_is_refused(
    server: RtspServer, tunnel: Tunnel, caplog: pytest.LogCaptureFixture
) -> None:
    reader, post = await tunnel.open_post(server)
    post.write(base64.b64encode(f"OPTIONS {rig.base(server)} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()))
    assert (await closed_by_server(reader)).startswith(b"HTTP/1.0 404 ")
    # Knowing a live cookie is not enough from another address.
    await tunnel.open_get(server)
    reader, _ = await tunnel.open_post(server, host="127.0.0.2")
    assert (await closed_by_server(reader)).startswith(b"HTTP/1.0 404 ")
    assert refusals(caplog, "no GET with a POST's cookie") == 1
    assert errors(caplog) == []


async def test_a_second_get_with_a_live_cookie_is_refused(
    server: RtspServer, tunnel: Tunnel
) -> None:
    client = await tunnel.open(server)
    reader, writer = await tunnel.connect(server)
    writer.write(get_head())
    assert (await closed_by_server(reader)).startswith(b"HTTP/1.0 409 ")
    assert (await client.request("OPTIONS", rig.base(server)))[0] == 200  # the first one lives on


async def test_garbage_on_a_post_closes_that_post_only(
    server: RtspServer, tunnel: Tunnel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await tunnel.open(server)
    reader, post = await tunnel.open_post(server)
    post.write(b"T1BU*ONS")
    assert await closed_by_server(reader) == b""  # a POST is never answered
    assert refusals(caplog, "not base64") == 1
    assert (await client.request("OPTIONS", rig.base(server)))[0] == 200
    assert errors(caplog) == []


# -- time limits and caps -------------------------------------------------------------------


async def test_a_get_whose_post_never_comes_is_closed(
    start_server: rig.StartServer, tunnel: Tunnel
) -> None:
    server = await start_server(header_timeout=0.5)
    reader = await tunnel.open_get(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await closed_by_server(reader) == b""
    assert loop.time() - started < 2.0
    # A POST that brings nothing is no better.
    reader = await tunnel.open_get(server, cookie="second")
    _, post = await tunnel.open_post(server, cookie="second")
    post.write(b"T1BU")  # half a request
    assert await closed_by_server(reader) == b""


async def test_a_head_trickled_byte_by_byte_is_cut_off(
    start_server: rig.StartServer, tunnel: Tunnel
) -> None:
    server = await start_server(header_timeout=0.5)
    reader, writer = await tunnel.connect(server)
    eof = asyncio.ensure_future(closed_by_server(reader))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for byte in get_head():  # a byte every 50 ms: never idle, never complete (slowloris)
        if eof.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.05)
    assert await eof == b""
    assert loop.time() - started < 2.0


async def test_an_idle_tunnel_is_closed_with_its_post(
    start_server: rig.StartServer, tunnel: Tunnel
) -> None:
    server = await start_server(idle_timeout=0.5)
    reader = await tunnel.open_get(server)
    post_reader, post = await tunnel.open_post(server)
    client = RawClient(reader, Post(post), rig.BASIC)  # type: ignore[arg-type]
    assert (await client.request("OPTIONS", rig.base(server)))[0] == 200
    assert await closed_by_server(reader) == b""
    assert await closed_by_server(post_reader) == b""
    await wait_for(lambda: server.connections == 0)


async def test_tunnel_halves_count_against_the_per_address_cap(
    start_server: rig.StartServer, tunnel: Tunnel
) -> None:
    server = await start_server(max_connections_per_host=2)
    client = await tunnel.open(server)
    assert (await client.request("OPTIONS", rig.base(server)))[0] == 200
    reader, _ = await tunnel.connect(server)
    assert await closed_by_server(reader) == b""  # closed unread: the GET and POST are two
    assert (await client.request("OPTIONS", rig.base(server)))[0] == 200
