"""The gateway streaming the emulated cameras, as a VMS sees it: ffprobe and ffmpeg over RTSP
(and RTSP tunnelled in HTTP, with GStreamer too).

Every test runs the real Gateway (RTSP server, media sources, drivers) in front of emulators
on loopback; the clients are the real ffprobe/ffmpeg, or a raw socket where a test needs to
misbehave on purpose (a viewer that stops reading).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from helpers import RawClient, basic_authorization, decode_jpeg, ffprobe

from bridge.app import Gateway
from bridge.media.source import Profile
from bridge.rtsp.rtcp import SenderReport, parse_compound
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS

FPS = 10.0  # the emulators' default rate
SIZE = (640, 480)  # ... and size
HAS_AUDIO = {"hama": True, "ipcamcgi": False, "openapi": True, "foscam": True, "vapix2": True}
TCP = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
AUTH = basic_authorization(GATEWAY_USER, GATEWAY_PASSWORD)
# ffmpeg flags that hand every frame on as it arrives, so a test can time frames.
LOW_DELAY = ("-fflags", "nobuffer", "-probesize", "32", "-analyzeduration", "0")
GST_LAUNCH = shutil.which("gst-launch-1.0")


def rtsp_url(gateway: Gateway, path: str, password: str = GATEWAY_PASSWORD) -> str:
    return f"rtsp://{GATEWAY_USER}:{password}@127.0.0.1:{gateway.rtsp.port}/{path}"


async def start_all(start_sim: StartSim, start_gateway: StartGateway) -> Gateway:
    sims = [await start_sim(SIMULATORS[dialect](SimOptions())) for dialect in HAS_AUDIO]
    return await start_gateway(*sims)


async def upstream_requests(sim: RunningSimulator, path: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/__sim__/requests") as r:
        log: list[dict[str, Any]] = await r.json()
    return sum(1 for entry in log if entry["path"] == path)


async def streams(url: str, transport: str) -> list[tuple[str, int | None, int | None]]:
    probe = await ffprobe("-rtsp_transport", transport, "-show_streams", url)
    return [(s["codec_name"], s.get("width"), s.get("height")) for s in probe["streams"]]


async def ffmpeg_frames(url: str, seconds: float, transport: str = "tcp") -> tuple[int, list[str]]:
    """Frames ffmpeg decoded from ``url`` in ``seconds``, and the errors it printed."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", transport, "-i", url,
        "-t", str(seconds), "-map", "0:v", "-f", "framemd5", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(seconds + 20):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")
    frames = sum(1 for line in out.decode().splitlines() if line and not line.startswith("#"))
    return frames, err.decode(errors="replace").splitlines()


class FrameWatch:
    """An ffmpeg viewer whose decoded frames are timed as they come (framemd5, unbuffered)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.times: list[float] = []
        self._arrived = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str) -> FrameWatch:
        process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-v", "error", *LOW_DELAY, "-rtsp_transport", "tcp",
            "-i", url, "-map", "0:v", "-f", "framemd5", "-flush_packets", "1", "-",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            if not line.startswith(b"#"):
                self.times.append(time.monotonic())
                async with self._arrived:
                    self._arrived.notify_all()

    async def frames_after(self, instant: float, count: int, limit: float) -> list[float]:
        def later() -> list[float]:
            return [t for t in self.times if t > instant]

        async with asyncio.timeout(limit), self._arrived:
            await self._arrived.wait_for(lambda: len(later()) >= count)
        return later()

    async def stop(self) -> None:
        self.process.kill()
        await self.process.wait()
        await self._task


@pytest.fixture
async def watch() -> AsyncIterator[Callable[[str], Awaitable[FrameWatch]]]:
    watches: list[FrameWatch] = []

    async def start(url: str) -> FrameWatch:
        watches.append(await FrameWatch.start(url))
        return watches[-1]

    yield start
    for started in watches:
        await started.stop()


async def released(gateway: Gateway) -> None:
    """Until every RTSP connection is closed and every session ended, as clients that quit
    leave them; the server keeps no event for it to wait on."""
    async with asyncio.timeout(10):
        while gateway.rtsp.connections or gateway.rtsp.sessions:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_every_camera_plays_h264_and_audio_over_udp_tcp_and_http(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    gateway = await start_all(start_sim, start_gateway)
    cameras = list(HAS_AUDIO)
    transports = ("udp", "tcp", "http")  # http: RTSP tunnelled in HTTP
    probes = [
        streams(rtsp_url(gateway, f"{camera}/main"), transport)
        for camera in cameras
        for transport in transports
    ]
    results = iter(await asyncio.gather(*probes))
    for camera in cameras:
        expected = [("h264", *SIZE)] + ([("pcm_mulaw", None, None)] if HAS_AUDIO[camera] else [])
        for transport in transports:
            assert next(results) == expected, f"{camera} over {transport}"


@pytest.mark.parametrize("transport", ["tcp", "http"])
async def test_ffmpeg_decodes_nearly_every_frame_of_every_camera(
    start_sim: StartSim, start_gateway: StartGateway, transport: str
) -> None:
    gateway = await start_all(start_sim, start_gateway)
    seconds = 4
    decoded = await asyncio.gather(
        *(
            ffmpeg_frames(rtsp_url(gateway, f"{camera}/main"), seconds, transport)
            for camera in HAS_AUDIO
        )
    )
    for camera, (frames, errors) in zip(HAS_AUDIO, decoded, strict=True):
        assert errors == [], camera
        assert frames >= 0.9 * seconds * FPS, f"{camera}: {frames} frames"
    await released(gateway)  # a tunnel's two connections too


async def test_gstreamer_plays_a_camera_from_an_rtsph_location(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    """GStreamer's rtspsrc tunnels RTSP in HTTP when its location says rtsph://."""
    assert GST_LAUNCH is not None, "GStreamer is not installed (gstreamer1.0-tools)"
    gateway = await start_gateway(await start_sim(SIMULATORS["vapix2"](SimOptions())))
    frames = 20
    # The pipeline ends (exit 0) once that many pictures were decoded; the audio is dropped.
    process = await asyncio.create_subprocess_exec(
        GST_LAUNCH, "-e",
        "rtspsrc", f"location=rtsph://127.0.0.1:{gateway.rtsp.port}/vapix2/main",
        f"user-id={GATEWAY_USER}", f"user-pw={GATEWAY_PASSWORD}", "name=src",
        "src.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse",
        "!", "avdec_h264", "!", "identity", f"eos-after={frames}", "!", "fakesink",
        "src.", "!", "application/x-rtp,media=audio", "!", "fakesink",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, out.decode(errors="replace")
    await released(gateway)


async def test_sub_and_jpeg_profiles_play(start_sim: StartSim, start_gateway: StartGateway) -> None:
    sims = [await start_sim(SIMULATORS[d](SimOptions())) for d in ("foscam", "ipcamcgi")]
    gateway = await start_gateway(*sims)
    # sub fits 640x360 keeping the camera's 4:3; jpeg is the camera's own picture.
    assert await streams(rtsp_url(gateway, "foscam/sub"), "tcp") == [
        ("h264", 480, 360),
        ("pcm_mulaw", None, None),
    ]
    assert await streams(rtsp_url(gateway, "ipcamcgi/jpeg"), "udp") == [("mjpeg", *SIZE)]
    frames, errors = await ffmpeg_frames(rtsp_url(gateway, "foscam/jpeg"), 3)
    assert errors == []
    assert frames >= 0.9 * 3 * FPS


async def test_aac_audio_is_a_per_camera_option(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    sim = await start_sim(SIMULATORS["hama"](SimOptions()))
    gateway = await start_gateway(sim, camera_options={"audio": "aac"})
    assert await streams(rtsp_url(gateway, "hama/main"), "tcp") == [
        ("h264", *SIZE),
        ("aac", None, None),
    ]


async def test_wrong_password_and_unknown_paths_are_refused(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(await start_sim(SIMULATORS["hama"](SimOptions())))
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
        rtsp_url(gateway, "hama/main", password="wrong"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(20):
        _, err = await process.communicate()
    assert process.returncode != 0
    assert b"401" in err
    client = await RawClient.connect(gateway.rtsp.port, AUTH)
    try:
        base = f"rtsp://127.0.0.1:{gateway.rtsp.port}"
        assert (await client.request("DESCRIBE", f"{base}/nocamera/main"))[0] == 404
        assert (await client.request("DESCRIBE", f"{base}/hama/fourth"))[0] == 404
    finally:
        await client.close()


async def test_snapshot_needs_the_gateway_password(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(await start_sim(SIMULATORS["vapix2"](SimOptions())))
    url = f"http://127.0.0.1:{gateway.web_port}/snapshot/vapix2.jpg"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 401
            assert any(
                value.startswith("Digest ") for value in response.headers.getall("WWW-Authenticate")
            )
        right = {"Authorization": AUTH}
        async with http.get(url, headers=right) as response:
            assert response.status == 200
            assert response.content_type == "image/jpeg"
            picture = decode_jpeg(await response.read())
            assert (picture.width, picture.height) == SIZE
        async with http.get(url.replace("vapix2", "nothing"), headers=right) as response:
            assert response.status == 404


async def test_four_viewers_cost_one_upstream_request(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    sim = await start_sim(SIMULATORS["hama"](SimOptions()))
    gateway = await start_gateway(sim)
    camera = gateway.cameras["hama"]
    main = camera.source(Profile.MAIN)
    began = time.monotonic()
    decoded = await asyncio.gather(
        *(ffmpeg_frames(rtsp_url(gateway, path), 3) for path in ("hama/main",) * 3 + ("hama/sub",))
    )
    # Stream time is arrival time, so 3 s of it hold what the camera delivered in 3 s: on a
    # loaded machine that can be less than the emulator's nominal rate. The upstream ran for
    # less than the wall time measured here, so this rate errs low, i.e. lenient.
    assert camera.media is not None
    delivered = min(FPS, camera.media.frames.items / (time.monotonic() - began))
    # main at the camera's rate, sub at half of the nominal rate (at most)
    lowest = (delivered, delivered, delivered, min(delivered, FPS / 2))
    assert all(n >= 0.8 * 3 * fps for (n, _), fps in zip(decoded, lowest, strict=True)), (
        decoded,
        delivered,
    )
    assert decoded[3][0] <= 1.25 * 3 * FPS / 2, decoded
    # Every viewer of a profile was served by that profile's one source (one encoder).
    assert set(camera.sources) == {Profile.MAIN, Profile.SUB}
    assert camera.sources[Profile.MAIN] is main
    assert await upstream_requests(sim, "/mjpg/video.mjpg") == 1
    assert await upstream_requests(sim, "/camera-cgi/audio/receive.cgi") == 1


async def test_frames_resume_after_the_camera_restarts(
    start_sim: StartSim,
    start_gateway: StartGateway,
    watch: Callable[[str], Awaitable[FrameWatch]],
) -> None:
    sim = await start_sim(SIMULATORS["openapi"](SimOptions()))
    gateway = await start_gateway(sim)
    viewer = await watch(rtsp_url(gateway, "openapi/main"))
    await viewer.frames_after(0, 10, limit=15)
    await sim.stop()
    await asyncio.sleep(2.0)  # long enough for a few reconnect attempts to fail
    assert len(gateway.rtsp.sessions) == 1
    restarted = await start_simulator(sim.camera, sim.host, sim.port)
    back = time.monotonic()
    try:
        resumed = await viewer.frames_after(back, 5, limit=10)
    finally:
        await restarted.stop()
    assert resumed[0] - back <= 3.0
    assert len(gateway.rtsp.sessions) == 1
    assert viewer.process.returncode is None


async def test_a_stalled_viewer_does_not_delay_another(
    start_sim: StartSim,
    start_gateway: StartGateway,
    watch: Callable[[str], Awaitable[FrameWatch]],
) -> None:
    gateway = await start_gateway(await start_sim(SIMULATORS["foscam"](SimOptions())))
    # The jpeg profile is the heaviest stream (tens of kB a frame): it fills buffers fastest.
    base = f"rtsp://127.0.0.1:{gateway.rtsp.port}/foscam/jpeg"
    stalled = await RawClient.connect(gateway.rtsp.port, AUTH)
    try:
        _, headers, _ = await stalled.request("SETUP", f"{base}/trackID=0", TCP)
        session = headers["Session"].partition(";")[0]
        assert (await stalled.request("PLAY", f"{base}/", {"Session": session}))[0] == 200
        # From here on the stalled client never reads again.
        viewer = await watch(rtsp_url(gateway, "foscam/jpeg"))
        start = (await viewer.frames_after(0, 1, limit=15))[0]
        times = await viewer.frames_after(start, round(6 * FPS * 0.9), limit=15)
    finally:
        await stalled.close()
    gaps = [b - a for a, b in zip([start, *times], times, strict=False)]
    assert max(gaps) < 0.5, f"longest gap {max(gaps):.2f} s"


async def test_sender_reports_on_every_track_and_keepalive(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(await start_sim(SIMULATORS["vapix2"](SimOptions())))
    gateway.rtsp.session_timeout = 2.0
    base = f"rtsp://127.0.0.1:{gateway.rtsp.port}/vapix2/main"
    client = await RawClient.connect(gateway.rtsp.port, AUTH)
    try:
        _, headers, _ = await client.request("SETUP", f"{base}/trackID=0", TCP)
        session = headers["Session"].partition(";")[0]
        audio = {"Transport": "RTP/AVP/TCP;unicast;interleaved=2-3", "Session": session}
        assert (await client.request("SETUP", f"{base}/trackID=1", audio))[0] == 200
        assert (await client.request("PLAY", f"{base}/", {"Session": session}))[0] == 200
        reports: dict[int, SenderReport] = {}
        rtp = {0: 0, 2: 0}
        async with asyncio.timeout(8):
            while len(reports) < 2 or not all(rtp.values()):
                channel, payload = await client.frame()
                if channel in rtp:
                    rtp[channel] += 1
                else:
                    report = next(p for p in parse_compound(payload) if isinstance(p, SenderReport))
                    reports[channel] = report
        assert set(reports) == {1, 3}
        assert all(rtp.values()), rtp
        # The SR ties RTP time to wall time: NTP seconds since 1900 of about now.
        for report in reports.values():
            assert abs(report.ntp_seconds - 2_208_988_800 - time.time()) < 5
        # GET_PARAMETER every second keeps the session past twice its timeout ...
        for _ in range(4):
            await asyncio.sleep(1.0)
            keepalive = await client.request("GET_PARAMETER", f"{base}/", {"Session": session})
            assert keepalive[0] == 200
        assert len(gateway.rtsp.sessions) == 1
        # ... and nothing at all ends it.
        await asyncio.sleep(3.5)
        assert len(gateway.rtsp.sessions) == 0
    finally:
        await client.close()


async def test_an_unwatched_camera_is_released(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    sim = await start_sim(SIMULATORS["ipcamcgi"](SimOptions()))
    gateway = await start_gateway(sim, stream_idle_seconds=0.5)
    media = gateway.cameras["ipcamcgi"].media
    assert media is not None
    assert not media.frames.running  # nobody watched yet: no connection at all
    frames, _ = await ffmpeg_frames(rtsp_url(gateway, "ipcamcgi/main"), 2)
    assert frames > 0
    async with asyncio.timeout(6):  # the profile's grace, then the camera's
        while media.frames.running:  # noqa: ASYNC110 (the fan-out has no event to wait on)
            await asyncio.sleep(0.1)
    assert await upstream_requests(sim, "/mjpeg.cgi") == 1


async def test_demo_serves_every_camera_and_stops_on_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "demo",
        "--rtsp-port", "0", "--web-port", "0", "--onvif-base-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        urls: dict[str, str] = {}
        devices: list[str] = []
        page = ""
        async with asyncio.timeout(30):
            while len(devices) < 5:
                line = (await process.stdout.readline()).decode()
                assert line, "demo ended early"
                if match := re.match(r"status page\s+(http://\S+)", line):
                    page = match[1]
                if match := re.search(r"rtsp://\S+/(\w+)/main", line):
                    urls[match.group(1)] = match.group(0)
                devices += re.findall(r"http://127\.0\.0\.1:\d+/onvif/device_service", line)
        assert set(urls) == set(HAS_AUDIO)
        assert len(set(devices)) == 5  # one ONVIF device, on its own port, per camera
        # The status page opens as printed (aiohttp logs in with the user:password in it).
        async with aiohttp.ClientSession() as http, http.get(page) as response:
            assert response.status == 200
            assert "<title>bridge</title>" in await response.text()
        assert await streams(urls["vapix2"], "tcp") == [("h264", *SIZE), ("pcm_mulaw", None, None)]
    finally:
        process.send_signal(2)  # Ctrl-C
        async with asyncio.timeout(15):
            returncode = await process.wait()
    assert returncode == 0
