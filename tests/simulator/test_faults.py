"""Emulated cameras misbehaving on command (``/__sim__/fault``), as a client sees them.

The clients here are the gateway's own HTTP layer (:class:`~bridge.cameras.http.CameraHttp`,
which parses each dialect's multipart framing) and plain aiohttp; a JPEG's claimed size is
read by the gateway's parser, its picture by PyAV.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from typing import Any

import aiohttp
import av
import pytest
from conftest import OpenHttp, StartSim
from helpers import decode_jpeg

from bridge.cameras.base import Dialect
from bridge.cameras.http import CameraHttp
from bridge.cameras.multipart import Part
from bridge.codecs.jpeg import jpeg_size
from bridge.errors import CameraError
from bridge.simulator.core import SIM_PREFIX, RunningSimulator, SimOptions
from bridge.simulator.faults import OVERSIZED_SIDE
from bridge.simulator.registry import SIMULATORS

OPTIONS = SimOptions(width=320, height=240, fps=20.0)
SOI, EOI = b"\xff\xd8", b"\xff\xd9"
VIDEO_PATH = {
    Dialect.HAMA: "/mjpg/video.mjpg",
    Dialect.IPCAMCGI: "/mjpeg.cgi",
    Dialect.OPENAPI: "/video.mjpg",
    Dialect.FOSCAM: "/videostream.cgi",
    Dialect.VAPIX2: "/mjpg/video.mjpg",
}
SNAPSHOT_PATH = {
    Dialect.HAMA: "/jpg/image.jpg",
    Dialect.IPCAMCGI: "/image.jpg",
    Dialect.OPENAPI: "/image.jpg",
    Dialect.FOSCAM: "/snapshot.cgi",
    Dialect.VAPIX2: "/jpg/image.jpg",
}
HAMA_AUDIO = "/camera-cgi/audio/receive.cgi"
HAMA_PARAMS = "/camera-cgi/admin/param.cgi?action=list&group=Brand"
WAIT = 10.0  # seconds any one step may take before the test fails


async def start(start_sim: StartSim, dialect: Dialect = Dialect.HAMA) -> RunningSimulator:
    return await start_sim(SIMULATORS[dialect](OPTIONS))


def client(open_http: OpenHttp, sim: RunningSimulator) -> CameraHttp:
    return open_http(sim.url, OPTIONS.username, OPTIONS.password)


async def control(sim: RunningSimulator, method: str, query: str = "") -> Any:
    """A test control request; its JSON answer (the fault and what it did)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{sim.url}{SIM_PREFIX}fault?{query}") as reply,
    ):
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def set_fault(sim: RunningSimulator, query: str) -> Any:
    return await control(sim, "POST", query)


async def parts(http: CameraHttp, path: str, count: int) -> list[Part]:
    """The first ``count`` parts of a multipart stream, as the gateway's parser splits them."""
    found: list[Part] = []
    async with asyncio.timeout(WAIT), aclosing(part_arrivals(http, path)) as arrivals:
        async for part, _ in arrivals:
            found.append(part)
            if len(found) == count:
                break
    return found


async def part_arrivals(http: CameraHttp, path: str) -> AsyncIterator[tuple[Part, float]]:
    async with http.stream(path) as reply, aclosing(reply.parts()) as stream:
        async for item in stream:
            yield item


async def plain_get(url: str, auth: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Authorization": auth} if auth else {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        asyncio.timeout(WAIT),
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as reply,
    ):
        return reply.status, reply.content_type, await reply.read()


def basic() -> str:
    return aiohttp.encode_basic_auth(OPTIONS.username, OPTIONS.password)


def decodes(jpeg: bytes) -> bool:
    try:
        decode_jpeg(jpeg)
    except (av.FFmpegError, ValueError):
        return False
    return True


# -- pictures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", list(Dialect))
async def test_oversized_pictures_arrive_in_the_dialects_own_framing(
    dialect: Dialect, start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start(start_sim, dialect)
    http = client(open_http, sim)
    await set_fault(sim, "mode=oversized&every=2")

    sizes = [jpeg_size(part.body) for part in await parts(http, VIDEO_PATH[dialect], 4)]
    snapshot = (await http.get(SNAPSHOT_PATH[dialect])).body

    huge = (OVERSIZED_SIDE, OVERSIZED_SIDE)
    real = (OPTIONS.width, OPTIONS.height)
    assert sizes == [real, huge, real, huge]  # every second picture from the fault on
    assert jpeg_size(snapshot) in (huge, real)
    assert (await control(sim, "GET"))["applied"]["oversized"] >= 2


@pytest.mark.parametrize("dialect", [Dialect.IPCAMCGI, Dialect.OPENAPI])
async def test_corrupt_damages_each_picture_a_different_way_inside_intact_framing(
    dialect: Dialect, start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start(start_sim, dialect)
    await set_fault(sim, "mode=corrupt&seed=7")

    truncated, flipped, no_soi, bad_segment = await parts(
        client(open_http, sim), VIDEO_PATH[dialect], 4
    )

    for part in (truncated, flipped, no_soi, bad_segment):
        # These dialects state each part's length: it is the damaged picture's.
        assert int(part.headers["content-length"]) == len(part.body)
    assert truncated.body.startswith(SOI)
    assert not truncated.body.endswith(EOI)
    assert flipped.body.startswith(SOI)
    assert flipped.body.endswith(EOI)
    assert no_soi.body[:3] == b"\x00\x00\xff"  # no SOI, then the picture's first segment
    assert bad_segment.body[4:6] == b"\xff\xff"  # the first segment's length


async def test_without_a_fault_pictures_decode(start_sim: StartSim, open_http: OpenHttp) -> None:
    sim = await start(start_sim)
    await set_fault(sim, "mode=corrupt&seconds=0.2")
    await set_fault(sim, "mode=none")

    (part,) = await parts(client(open_http, sim), VIDEO_PATH[Dialect.HAMA], 1)

    assert decodes(part.body)
    assert (await control(sim, "GET"))["mode"] == "none"


# -- bytes on the wire --------------------------------------------------------------------------


async def test_garbage_replaces_snapshot_bodies_and_stream_bytes(start_sim: StartSim) -> None:
    sim = await start(start_sim)
    _, _, clean = await plain_get(sim.url + SNAPSHOT_PATH[Dialect.HAMA], basic())
    await set_fault(sim, "mode=garbage")

    status, content_type, body = await plain_get(sim.url + SNAPSHOT_PATH[Dialect.HAMA], basic())
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        asyncio.timeout(WAIT),
        aiohttp.ClientSession(connector=connector) as session,
        session.get(sim.url + VIDEO_PATH[Dialect.HAMA], headers={"Authorization": basic()}) as r,
    ):
        streamed = await r.content.readexactly(64 * 1024)

    assert (status, content_type) == (200, "image/jpeg")
    assert abs(len(body) - len(clean)) < len(clean) // 2  # a picture's worth of bytes ...
    assert not body.startswith(SOI)  # ... but not a picture
    assert b"--myboundary" not in streamed


async def test_garbage_in_scope_all_hits_every_cgi_reply(start_sim: StartSim) -> None:
    sim = await start(start_sim)
    url = sim.url + HAMA_PARAMS
    await set_fault(sim, "mode=garbage")
    _, _, media_only = await plain_get(url, basic())
    await set_fault(sim, "mode=garbage&scope=all")
    _, _, everything = await plain_get(url, basic())

    assert b"Brand.Brand=" in media_only
    assert b"Brand.Brand=" not in everything


async def test_a_stall_holds_the_stream_until_it_runs_out(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start(start_sim)
    arrivals = part_arrivals(client(open_http, sim), VIDEO_PATH[Dialect.HAMA])
    async with asyncio.timeout(WAIT), aclosing(arrivals):
        await anext(arrivals)
        await set_fault(sim, "mode=stall&seconds=1")
        stalled_at = time.monotonic()
        _, resumed_at = await anext(arrivals)
        _, next_at = await anext(arrivals)

    assert resumed_at - stalled_at >= 0.9
    assert next_at - resumed_at < 0.5  # then it streams at its rate again


async def test_drip_sends_a_whole_snapshot_slowly(start_sim: StartSim) -> None:
    sim = await start(start_sim)
    _, _, clean = await plain_get(sim.url + SNAPSHOT_PATH[Dialect.HAMA], basic())
    rate = len(clean) * 2  # about half a second per picture
    await set_fault(sim, f"mode=drip&rate={rate}")

    began = time.monotonic()
    status, _, body = await plain_get(sim.url + SNAPSHOT_PATH[Dialect.HAMA], basic())

    assert status == 200
    assert decodes(body)
    assert time.monotonic() - began >= 0.8 * len(body) / rate


@pytest.mark.parametrize(
    ("path", "every", "streamed"),
    [
        (SNAPSHOT_PATH[Dialect.HAMA], 1, False),  # before a byte of the reply
        (VIDEO_PATH[Dialect.HAMA], 1, True),  # after the stream's headers
        (HAMA_AUDIO, 3, True),  # after the headers and two chunks of sound
    ],
)
async def test_reset_drops_the_connection_with_a_tcp_reset(
    path: str, every: int, streamed: bool, start_sim: StartSim
) -> None:
    sim = await start(start_sim)
    await set_fault(sim, f"mode=reset&every={every}")

    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    writer.write(f"GET {path} HTTP/1.0\r\nAuthorization: {basic()}\r\n\r\n".encode())
    reads, ending = await read_to_the_end(reader)
    writer.close()

    assert isinstance(ending, ConnectionResetError)
    assert (reads > 0) == streamed
    assert (await control(sim, "GET"))["applied"] == {"reset": 1}


async def read_to_the_end(reader: asyncio.StreamReader) -> tuple[int, BaseException | None]:
    """How many reads returned data, and the error that ended them (None for a clean end)."""
    reads = 0
    try:
        async with asyncio.timeout(WAIT):
            while await reader.read(1 << 20):
                reads += 1
    except ConnectionError as exc:
        return reads, exc
    return reads, None


async def test_flapping_refuses_connections_while_down_and_serves_between(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start(start_sim)
    http = client(open_http, sim)
    arrivals = part_arrivals(http, VIDEO_PATH[Dialect.HAMA])
    await anext(arrivals)
    await set_fault(sim, "mode=flap&up=0.3&down=0.6&seconds=2")

    outcomes: list[str] = []
    async with asyncio.timeout(WAIT), aclosing(arrivals):
        with suppress(CameraError):
            async for _ in arrivals:
                pass  # until the open stream is cut, when the camera goes down
        while (fault := await poll_fault(sim)) is None or fault["mode"] != "none":
            outcomes.append(await snapshot_outcome(sim))
            await asyncio.sleep(0.05)

    assert "refused" in outcomes
    assert "served" in outcomes[outcomes.index("refused") :]  # it came back
    assert (await control(sim, "GET"))["applied"]["flap"] >= 1
    assert await snapshot_outcome(sim) == "served"  # and it stays up once the fault ran out


async def poll_fault(sim: RunningSimulator) -> Any:
    try:
        return await control(sim, "GET")
    except aiohttp.ClientConnectorError:
        return None


async def snapshot_outcome(sim: RunningSimulator) -> str:
    try:
        status, _, _ = await plain_get(sim.url + SNAPSHOT_PATH[Dialect.HAMA], basic())
    except aiohttp.ClientConnectorError:
        return "refused"
    except aiohttp.ClientError:
        return "reset"
    return "served" if status == 200 else str(status)


# -- the control ---------------------------------------------------------------------------------


async def test_a_timed_fault_ends_by_itself(start_sim: StartSim) -> None:
    sim = await start(start_sim)
    shown = await set_fault(sim, "mode=garbage&seconds=0.3")
    assert shown["mode"] == "garbage"
    assert 0 < shown["seconds_left"] <= 0.3

    await asyncio.sleep(shown["seconds_left"])
    _, _, body = await plain_get(sim.url + SNAPSHOT_PATH[Dialect.HAMA], basic())

    assert (await control(sim, "GET"))["mode"] == "none"
    assert decodes(body)


@pytest.mark.parametrize(
    "query",
    ["mode=explode", "mode=stall&seconds=-1", "mode=drip&rate=0", "mode=stall&color=red", ""],
)
async def test_a_bad_fault_request_is_refused(query: str, start_sim: StartSim) -> None:
    sim = await start(start_sim)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.url}{SIM_PREFIX}fault?{query}") as reply,
    ):
        assert reply.status == 400
    assert (await control(sim, "GET"))["mode"] == "none"
