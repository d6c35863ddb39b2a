"""RtspServer against hostile clients, each test written as the attack (issue 9, findings 3, 4,
6 and 7): raw sockets on loopback, the real server, a live stream."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from helpers import RawClient
from rtsp_rig import (
    BASIC,
    MALLORY,
    TCP_TRANSPORT,
    StartServer,
    base,
    client_fixture,  # noqa: F401 (a fixture)
    play,
    server_fixture,  # noqa: F401 (a fixture)
    setup_session,
    source_fixture,  # noqa: F401 (a fixture)
    start_server_fixture,  # noqa: F401 (a fixture)
)

from bridge.logs import RedactingFormatter
from bridge.rtsp.server import MAX_SESSIONS_PER_USER, RtspServer
from bridge.rtsp.session import State

LIMIT = 5.0  # seconds any one wait of these tests may take


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def udp(port: int) -> dict[str, str]:
    return {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"}


async def closed_by_server(client: RawClient) -> bool:
    """Whether the server closes the connection (anything it sends first is skipped)."""
    async with asyncio.timeout(LIMIT):
        while await client.reader.read(64 * 1024):
            pass
    return True


async def hang_up(client: RawClient) -> None:
    """Close the connection without TEARDOWN, and return once the server is done with it:
    it closes its end only after releasing what the connection held."""
    client.writer.write_eof()
    assert await closed_by_server(client)
    await client.close()


Connect = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """connect(server, authorization=BASIC, host="127.0.0.1"): a client connected from
    ``host`` (any loopback address); closed after the test."""
    opened: list[RawClient] = []

    async def open_(
        server: RtspServer, authorization: str = BASIC, host: str = "127.0.0.1"
    ) -> RawClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=(host, 0)
        )
        opened.append(RawClient(reader, writer, authorization))
        return opened[-1]

    yield open_
    for client in opened:
        with contextlib.suppress(ConnectionError):
            await client.close()


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# -- finding 3: time limits -----------------------------------------------------------------


async def test_a_request_trickled_byte_by_byte_is_cut_off(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(header_timeout=0.5)
    client = await connect(server)
    # A byte every 50 ms: never idle, never complete (slowloris).
    request = f"OPTIONS {base(server)} RTSP/1.0\r\nCSeq: 1\r\nX-Pad: {'a' * 200}".encode()
    started = time.monotonic()
    eof = asyncio.ensure_future(closed_by_server(client))
    for byte in request:
        if eof.done():
            break
        client.writer.write(bytes([byte]))
        await asyncio.sleep(0.05)
    assert await eof
    assert time.monotonic() - started < 2.0
    assert server.connections == 0


async def test_an_idle_connection_is_closed(start_server: StartServer, connect: Connect) -> None:
    server = await start_server(idle_timeout=0.5)
    client = await connect(server)
    assert (await client.request("OPTIONS", base(server)))[0] == 200
    started = time.monotonic()
    assert await closed_by_server(client)
    assert 0.4 < time.monotonic() - started < 2.0


async def test_a_playing_interleaved_connection_outlives_the_idle_timeout(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(idle_timeout=0.3)
    client = await connect(server)
    session = await setup_session(client, server)
    await play(client, server, session)
    # Ten idle timeouts of nothing but RTP from the server: the session keeps the connection.
    loop = asyncio.get_running_loop()
    until = loop.time() + 3.0
    rtp = 0
    async with asyncio.timeout(LIMIT):
        while loop.time() < until:
            channel, _ = await client.frame()
            rtp += channel == 0
    assert rtp >= 2.0 * 15 * 0.8  # 15 fps, at least one packet a frame
    # Once the session is over, so is the connection's reason to idle.
    status, _, _ = await client.request("TEARDOWN", base(server) + "/", {"Session": session})
    assert status == 200
    assert await closed_by_server(client)


# -- finding 3: caps ------------------------------------------------------------------------


async def test_connections_past_the_caps_are_closed_at_once(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(max_connections=3, max_connections_per_host=2)

    async def served(host: str) -> RawClient:
        client = await connect(server, host=host)
        assert (await client.request("OPTIONS", base(server)))[0] == 200
        return client

    async def refused(host: str) -> None:
        client = await connect(server, host=host)
        assert await closed_by_server(client)

    first = await served("127.0.0.1")
    await served("127.0.0.1")
    for _ in range(20):
        await refused("127.0.0.1")  # a third from the same address, twenty times over
    await served("127.0.0.2")
    await refused("127.0.0.3")  # a fourth in all
    assert server.connections == 3
    # Refusals are logged, but not once each.
    assert len(records(caplog, "connections from it")) == 1
    assert len(records(caplog, "connections in all")) == 1
    await hang_up(first)
    assert server.connections == 2
    await served("127.0.0.1")


async def test_sessions_past_the_caps_get_453(
    start_server: StartServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(max_sessions_per_connection=2, max_sessions_per_user=3)
    first, second, other_user = [await connect(server, auth) for auth in (BASIC, BASIC, MALLORY)]
    track = f"{base(server)}/trackID=0"
    kept = [await setup_session(first, server) for _ in range(2)]
    for _ in range(10):
        assert (await first.request("SETUP", track, TCP_TRANSPORT))[0] == 453
    await setup_session(second, server)  # the user's third
    assert (await second.request("SETUP", track, TCP_TRANSPORT))[0] == 453
    await setup_session(other_user, server)  # another user's quota is its own
    assert len(records(caplog, "sessions on its connection")) == 1
    assert len(records(caplog, "its user has")) == 1
    # Ending a session frees its place.
    status, _, _ = await first.request("TEARDOWN", base(server) + "/", {"Session": kept[0]})
    assert status == 200
    await setup_session(second, server)


async def test_udp_setup_flood_cannot_exhaust_file_descriptors(
    server: RtspServer, connect: Connect
) -> None:
    """The attack of finding 3: SETUPs with UDP transport on many connections, never PLAYed,
    every one binding two sockets; then the connections go away without TEARDOWN."""
    before = open_fds()
    attackers = [await connect(server) for _ in range(10)]
    statuses: list[int] = []
    for client in attackers:
        for i in range(30):
            status, _, _ = await client.request(
                "SETUP", f"{base(server)}/trackID=0", udp(20000 + 2 * i)
            )
            statuses.append(status)
    # 8 sessions a connection would allow 80: the user's 64 bound them first.
    assert statuses.count(200) == MAX_SESSIONS_PER_USER
    assert set(statuses) == {200, 453}
    assert open_fds() - before <= 2 * MAX_SESSIONS_PER_USER + 2 * len(attackers) + 8
    for client in attackers:
        await hang_up(client)
    assert server.connections == 0
    assert not server.sessions
    assert open_fds() <= before + 2


async def test_out_of_file_descriptors_is_a_453_not_a_traceback(
    server: RtspServer, client: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    track = f"{base(server)}/trackID=0"
    assert (await client.request("OPTIONS", base(server)))[0] == 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # not one socket more
    try:
        statuses = [(await client.request("SETUP", track, udp(20000)))[0] for _ in range(20)]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert statuses == [453] * 20
    assert errors(caplog) == []
    assert len(records(caplog, "Too many open files")) == 1
    await setup_session(client, server, udp(20000))  # and with descriptors back, served again


async def test_udp_sockets_in_all_are_capped_and_tcp_still_served(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(max_udp_sockets=4)
    client = await connect(server)
    track = f"{base(server)}/trackID=0"
    await setup_session(client, server, udp(20000))
    await setup_session(client, server, udp(20002))
    assert (await client.request("SETUP", track, udp(20004)))[0] == 453
    # A client that offers TCP after UDP still gets a stream.
    either = {"Transport": f"{udp(20004)['Transport']},{TCP_TRANSPORT['Transport']}"}
    status, headers, _ = await client.request("SETUP", track, either)
    assert status == 200
    assert "interleaved=0-1" in headers["Transport"]


# -- finding 4: sessions belong to their user and connection --------------------------------


async def test_another_user_cannot_drive_a_session_by_its_id(
    server: RtspServer, connect: Connect
) -> None:
    owner = await connect(server)
    session = await setup_session(owner, server)
    await play(owner, server, session)
    await owner.frame()
    mallory = await connect(server, MALLORY)
    thief = await connect(server, BASIC)  # the owner's password, not the owner's connection
    aggregate, track = base(server) + "/", f"{base(server)}/trackID=0"
    attacks = [
        ("PAUSE", aggregate, {}),
        ("TEARDOWN", aggregate, {}),
        ("PLAY", aggregate, {}),
        ("GET_PARAMETER", aggregate, {}),
        ("SETUP", track, udp(30000)),  # a re-SETUP that would send the video elsewhere
        ("SETUP", f"{base(server)}/trackID=1", TCP_TRANSPORT),
    ]
    for attacker in (mallory, thief):
        for method, uri, headers in attacks:
            status, _, _ = await attacker.request(method, uri, {"Session": session, **headers})
            assert (method, status) == (method, 454)
    assert server.sessions[session].state is State.PLAYING
    # And the owner never noticed: the stream goes on.
    loop = asyncio.get_running_loop()
    attacked = loop.time()
    async with asyncio.timeout(LIMIT):
        while loop.time() < attacked + 1.0:
            await owner.frame()


async def test_a_udp_session_answers_its_user_on_a_new_connection_only(
    server: RtspServer, connect: Connect
) -> None:
    loop = asyncio.get_running_loop()
    rtp: asyncio.Queue[bytes] = asyncio.Queue()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
            rtp.put_nowait(data)

    receiver, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    try:
        port = receiver.get_extra_info("sockname")[1]
        first = await connect(server)
        session = await setup_session(first, server, udp(port))
        await play(first, server, session)
        async with asyncio.timeout(LIMIT):
            await rtp.get()
        # Some clients hang up after PLAY and come back for TEARDOWN on a new connection.
        await hang_up(first)
        assert server.connections == 0
        assert server.sessions[session].state is State.PLAYING
        mallory = await connect(server, MALLORY)
        again = await connect(server, BASIC)
        aggregate = base(server) + "/"
        for method in ("GET_PARAMETER", "TEARDOWN"):
            status, _, _ = await mallory.request(method, aggregate, {"Session": session})
            assert (method, status) == (method, 454)
        status, _, _ = await again.request("GET_PARAMETER", aggregate, {"Session": session})
        assert status == 200
        status, _, _ = await again.request("TEARDOWN", aggregate, {"Session": session})
        assert status == 200
        assert session not in server.sessions
    finally:
        receiver.close()


# -- finding 6: no credential in the log ----------------------------------------------------

PASSWORD = "s3cr3t-Pa55"
TOKEN = base64.b64encode(f"user:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    "head",
    [
        # A header line without its colon.
        "DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\nAuthorization Basic {token}",
        # A request line that is not RTSP, with credentials in its URI and in a good header.
        "DESCRIBE rtsp://user:{password}@127.0.0.1/cam/main HTTP/1.1\r\nCSeq: 1\r\n"
        "Authorization: Basic {token}",
        # A control character in the Authorization value itself.
        "DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic {token}\x01",
    ],
)
async def test_a_malformed_request_never_logs_its_credentials(
    server: RtspServer, connect: Connect, caplog: pytest.LogCaptureFixture, head: str
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await connect(server)
    request = head.format(base=base(server), token=TOKEN, password=PASSWORD) + "\r\n\r\n"
    client.writer.write(request.encode("latin-1"))
    assert (await client.response())[0] == 400
    assert await closed_by_server(client)
    assert records(caplog, "bad request")  # the refusal was logged, so the log was looked at
    formatter = RedactingFormatter("%(message)s")
    logged = [r.getMessage() for r in caplog.records] + [
        formatter.format(r) for r in caplog.records
    ]
    for line in logged:
        assert TOKEN not in line
        assert PASSWORD not in line


# -- finding 7: control characters in what the server would echo ----------------------------


@pytest.mark.parametrize(
    "header",
    [
        ("CSeq", "2\rX-Injected: 1"),
        ("CSeq", "2 junk"),
        ("Session", "12345678\rX-Injected: 1"),
        ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1\r;X-Injected"),
        ("User-Agent", "Lavf59\rX-Injected: 1"),
        ("User-Agent", "Lavf59\x00"),
        ("X-Anything", "\x7f"),
    ],
)
async def test_control_characters_in_header_values_get_400(
    server: RtspServer,
    client: RawClient,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    header: tuple[str, str],
) -> None:
    attacker = await connect(server)
    name, value = header
    headers = {"CSeq": "1", "Authorization": BASIC, **TCP_TRANSPORT, name: value}
    lines = [f"SETUP {base(server)}/trackID=0 RTSP/1.0", *(f"{n}: {v}" for n, v in headers.items())]
    attacker.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    status, answer, _ = await attacker.response()
    assert status == 400
    assert list(answer) == []  # nothing echoed, CSeq included
    assert await closed_by_server(attacker)
    assert errors(caplog) == []
    assert (await client.request("OPTIONS", base(server)))[0] == 200  # others still served


async def test_a_bare_cr_in_the_request_uri_gets_400(
    server: RtspServer,
    client: RawClient,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """urlsplit drops CR, so such a URI used to resolve, and came back in RTP-Info."""
    attacker = await connect(server)
    uri = f"rtsp://127.0.0.1:{server.port}/cam/ma\rin/trackID=0"
    status, _, _ = await attacker.request("SETUP", uri, TCP_TRANSPORT)
    assert status == 400
    assert await closed_by_server(attacker)
    assert errors(caplog) == []
    assert (await client.request("OPTIONS", base(server)))[0] == 200
