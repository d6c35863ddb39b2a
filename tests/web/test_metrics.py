"""``/metrics`` and ``/readyz`` as a Prometheus scraper and an orchestrator see them, in front
of emulated cameras, with ffmpeg as the viewer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from helpers import basic_authorization
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bridge.app import Gateway
from bridge.commands import demo_config
from bridge.rtsp.session import TRANSPORTS
from bridge.simulator.core import SimOptions, start_simulator
from bridge.simulator.hama import HamaSimulator

AUTH = {"Authorization": basic_authorization(GATEWAY_USER, GATEWAY_PASSWORD)}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(gateway: Gateway) -> Samples:
    """Every sample of ``/metrics``, read with prometheus_client's own parser."""
    url = f"http://127.0.0.1:{gateway.web_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def soap(gateway: Gateway, body: str) -> int:
    """POST one SOAP 1.2 request to the camera's ONVIF device service; its HTTP status."""
    onvif = gateway.cameras["hama"].onvif
    assert onvif is not None
    envelope = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )
    url = f"http://127.0.0.1:{onvif.ports.onvif}/onvif/device_service"
    headers = {"Content-Type": "application/soap+xml"}
    async with aiohttp.ClientSession() as http, http.post(url, data=envelope, headers=headers) as r:
        return r.status


@asynccontextmanager
async def watching(gateway: Gateway, path: str, transport: str = "tcp") -> AsyncIterator[None]:
    """ffmpeg plays ``rtsp://.../<path>`` over ``transport`` (udp, tcp, or http: tunnelled)
    for as long as the block runs."""
    url = f"rtsp://{GATEWAY_USER}:{GATEWAY_PASSWORD}@127.0.0.1:{gateway.rtsp.port}/{path}"
    ffmpeg = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", transport, "-i", url,
        "-map", "0:v", "-c", "copy", "-f", "null", "-",
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield
    finally:
        if ffmpeg.returncode is None:
            ffmpeg.kill()
        _, errors = await ffmpeg.communicate()
        if errors:  # shown with a failing test: why the viewer did not play
            print(f"ffmpeg ({transport}) on {path}: {errors.decode(errors='replace')}")


@pytest.fixture
async def viewer(start_sim: StartSim, start_gateway: StartGateway) -> AsyncIterator[Gateway]:
    """A gateway in front of one hama emulator, its main profile watched by ffmpeg."""
    gateway = await start_gateway(await start_sim(HamaSimulator(SimOptions())))
    async with watching(gateway, "hama/main"):
        yield gateway


async def readyz_until(gateway: Gateway, status: int, body: str | None = None) -> str:
    """Ask ``/readyz`` (no login, like ``/healthz``) until it answers ``status`` (and
    ``body``), within 10 s; its body."""
    url = f"http://127.0.0.1:{gateway.web_port}/readyz"
    async with aiohttp.ClientSession() as http, asyncio.timeout(10):
        while True:
            async with http.get(url) as response:
                text = await response.text()
                if response.status == status and body in (None, text):
                    return text
                assert response.status in (200, 503)
            await asyncio.sleep(0.1)


async def scrape_until(gateway: Gateway, name: str, above: float, **labels: str) -> Samples:
    """Scrape until the sample exceeds ``above`` (a viewer's frames arriving), within 10 s."""
    async with asyncio.timeout(10):
        while True:
            samples = await scrape(gateway)
            if samples.get((name, frozenset(labels.items())), 0.0) > above:
                return samples
            await asyncio.sleep(0.2)


async def test_metrics_need_the_gateway_users(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(await start_sim(HamaSimulator(SimOptions())))
    url = f"http://127.0.0.1:{gateway.web_port}/metrics"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as refused:
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"]
        wrong = {"Authorization": basic_authorization(GATEWAY_USER, "wrong")}
        async with http.get(url, headers=wrong) as refused:
            assert refused.status == 401


async def test_counters_move_while_a_viewer_watches(
    viewer: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    cam = {"camera": "hama"}
    main = {"camera": "hama", "profile": "main"}
    first = await scrape_until(viewer, "bridge_frames_out_total", 2, **main)
    assert value(first, "bridge_camera_up", **cam) == 1
    assert value(first, "bridge_camera_state", state="online", **cam) == 1
    assert value(first, "bridge_viewers", **main) == 1
    assert value(first, "bridge_viewers", camera="hama", profile="sub") == 0
    assert value(first, "bridge_rtsp_sessions", transport="tcp") == 1
    assert value(first, "bridge_camera_auth_failures_total", **cam) == 0
    assert value(first, "process_resident_memory_bytes") > 10_000_000
    assert value(first, "process_cpu_seconds_total") > 0

    frames_out = value(first, "bridge_frames_out_total", **main)
    later = await scrape_until(viewer, "bridge_frames_out_total", frames_out + 5, **main)
    for name, labels in [
        ("bridge_camera_frames_in_total", cam),
        ("bridge_bytes_out_total", main),
        ("bridge_encode_seconds_count", main),
        ("bridge_encode_seconds_sum", main),
    ]:
        assert value(later, name, **labels) > value(first, name, **labels), name
    # about one picture encoded per picture received (10 fps), each in well under a frame time
    encoded = value(later, "bridge_encode_seconds_count", **main)
    assert encoded >= value(later, "bridge_frames_out_total", **main)
    assert 0 < value(later, "bridge_encode_seconds_sum", **main) / encoded < 0.1
    # an unwatched profile is listed, and has nothing to count
    assert value(later, "bridge_frames_out_total", camera="hama", profile="jpeg") == 0
    assert "rtsp: viewer 127.0.0.1 joined hama/main over TCP" in caplog.messages


async def test_sessions_are_counted_by_how_their_packets_travel(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(await start_sim(HamaSimulator(SimOptions())))
    idle = await scrape(gateway)
    assert [value(idle, "bridge_rtsp_sessions", transport=t) for t in TRANSPORTS] == [0, 0, 0]
    async with watching(gateway, "hama/main", "http"), watching(gateway, "hama/jpeg", "udp"):
        await scrape_until(gateway, "bridge_viewers", 0, camera="hama", profile="main")
        samples = await scrape_until(gateway, "bridge_viewers", 0, camera="hama", profile="jpeg")
        url = f"http://127.0.0.1:{gateway.web_port}/api/cameras"
        async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH) as response:
            (camera,) = (await response.json())["cameras"]
    sessions = {t: value(samples, "bridge_rtsp_sessions", transport=t) for t in TRANSPORTS}
    assert sessions == {"udp": 1, "tcp": 0, "http": 1}
    # The status page says the same of each viewer.
    shown = {p["name"]: [v["transport"] for v in p["viewers"]] for p in camera["profiles"]}
    assert shown == {"main": ["http"], "sub": [], "jpeg": ["udp"]}


async def test_onvif_requests_are_counted_by_operation_and_fault(viewer: Gateway) -> None:
    assert await soap(viewer, "<tds:GetSystemDateAndTime/>") == 200
    assert await soap(viewer, "<tds:GetUsers/>") == 401  # needs a user: a Digest challenge
    assert await soap(viewer, "<tds:MadeUpOperationX/>") >= 400
    samples = await scrape(viewer)
    device = {"service": "DEVICE"}
    time_ok = value(samples, "bridge_onvif_requests_total", **device,
                    operation="GetSystemDateAndTime", fault="none")  # fmt: skip
    assert time_ok >= 1
    refused = value(samples, "bridge_onvif_requests_total", **device,
                    operation="GetUsers", fault="NotAuthorized")  # fmt: skip
    assert refused == 1
    # a name the client made up never becomes a label
    assert not any("MadeUpOperationX" in str(labels) for _, labels in samples)
    unknown = sum(
        v for (name, labels), v in samples.items()
        if name == "bridge_onvif_requests_total" and ("operation", "-") in labels
    )  # fmt: skip
    assert unknown == 1


async def test_readyz_follows_the_camera(
    start_sim: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    sim = await start_sim(HamaSimulator(SimOptions()))
    await sim.stop()  # the camera is not there when the gateway starts
    gateway = Gateway(demo_config([sim], "127.0.0.1", 0, 0, 0))
    await gateway.start()
    returned = None
    try:
        assert (await readyz_until(gateway, 503)).startswith("hama: ")
        returned = await start_simulator(sim.camera, sim.host, sim.port)
        async with asyncio.timeout(10):
            await gateway.cameras["hama"].ready.wait()
        await readyz_until(gateway, 200, "ready\n")

        # Only a watched camera is pulled: a viewer notices the camera going away.
        async with watching(gateway, "hama/jpeg"):
            await scrape_until(gateway, "bridge_frames_out_total", 0, camera="hama", profile="jpeg")
            await returned.stop()
            await readyz_until(gateway, 503, "hama: offline\n")
            samples = await scrape(gateway)
            assert value(samples, "bridge_camera_up", camera="hama") == 0
            assert value(samples, "bridge_camera_state", camera="hama", state="offline") == 1
            went = value(samples, "bridge_camera_state_since_seconds", camera="hama")
            assert time.time() - 10 < went <= time.time()
            await asyncio.sleep(1.5)  # the stream is retried meanwhile, and fails again
            returned = await start_simulator(sim.camera, sim.host, sim.port)
            await readyz_until(gateway, 200, "ready\n")
            samples = await scrape(gateway)
            assert value(samples, "bridge_camera_reconnects_total", camera="hama") >= 1
    finally:
        await gateway.stop()
        if returned is not None:
            await returned.stop()
    lines = [m for m in caplog.messages if m.startswith("camera hama: ")]
    states = [line.split(": ")[1] for line in lines]
    # one line per change, however often it was retried in between
    assert [s for s in states if s in ("online", "offline")] == [
        "offline",
        "online",
        "offline",
        "online",
    ], lines


async def test_a_camera_refusing_the_password_shows_as_auth_failed(start_sim: StartSim) -> None:
    sim = await start_sim(HamaSimulator(SimOptions()))
    config = demo_config([sim], "127.0.0.1", 0, 0, 0)
    wrong = [c.model_copy(update={"password": SecretStr("not-the-one")}) for c in config.cameras]
    gateway = Gateway(config.model_copy(update={"cameras": wrong}))
    await gateway.start()
    try:
        await readyz_until(gateway, 503, "hama: auth failed\n")
        samples = await scrape(gateway)
    finally:
        await gateway.stop()
    assert value(samples, "bridge_camera_auth_failures_total", camera="hama") == 1
    assert value(samples, "bridge_camera_state", camera="hama", state="auth failed") == 1
    assert value(samples, "bridge_camera_up", camera="hama") == 0
