"""Config reload: cameras added, removed and changed in the file of a running ``bridge run``
(and on SIGHUP) while viewers watch, in front of emulated cameras on loopback.

The untouched camera has two viewers: ffmpeg on its H.264 profile, and a raw RTSP client over
TCP on its JPEG profile that keeps every RTP header. Each must get every picture the emulator
made while it watched (the raw client with sequence numbers continuous), and the gateway must
count no frame dropped and no reconnect; the removed camera's viewer is ffmpeg too, and it must
end by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import signal
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import aiohttp
import pytest
import yaml
from conftest import StartGateway, StartSim
from helpers import (
    RawClient,
    basic_authorization,
    describe_status,
    probe_first_video_frames,
    with_userinfo,
)
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bridge.config import Config
from bridge.reload import CameraChanges, camera_changes, file_changes, gateway_changes
from bridge.rtsp.rtcp import Bye, parse_compound
from bridge.simulator.core import RunningSimulator, SimOptions
from bridge.simulator.hama import HamaSimulator

PASSWORD = "reload-secret-1"
AUTH = basic_authorization("admin", PASSWORD)
FPS = 10.0
TCP = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
StartRun = Callable[..., Awaitable["GatewayProcess"]]  # (config file, camera names)


def config_text(cameras: list[tuple[str, RunningSimulator]], padding: int = 0) -> str:
    """A gateway on loopback (free ports) in front of emulators, by camera name."""
    gateway = {
        "listen_host": "127.0.0.1",
        "advertise_host": "127.0.0.1",
        "rtsp_port": 0,
        "web_port": 0,
        "onvif_base_port": 0,
        "password": PASSWORD,
        "announce": False,
    }
    login = {"username": "admin", "password": "admin"}
    # Video only: ffprobe then sees one stream, and the emulators render pictures alone.
    entries = [
        {"name": name, "url": sim.url, "dialect": "hama", "audio": "off", **login}
        for name, sim in cameras
    ]
    return yaml.safe_dump({"gateway": gateway, "cameras": entries}) + "#" * padding + "\n"


def save(path: Path, text: str) -> None:
    """As editors save: a new file renamed over the old one."""
    temporary = path.with_name(path.name + "~")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass
class GatewayProcess:
    """``bridge run`` and the log lines it wrote so far."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    rtsp_port: int = 0
    web_port: int = 0
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace"))
            self._news.set()

    async def line(self, pattern: str, after: int = 0, within: float = 20) -> re.Match[str]:
        """The first log line from number ``after`` on that matches, waiting for it."""
        regex = re.compile(pattern)
        seen = after
        async with asyncio.timeout(within):
            while True:
                for text in self.lines[seen:]:
                    if match := regex.search(text):
                        return match
                seen = len(self.lines)
                self._news.clear()
                await self._news.wait()

    def url(self, path: str) -> str:
        return with_userinfo(f"rtsp://127.0.0.1:{self.rtsp_port}/{path}", "admin", PASSWORD)

    async def live_view_bytes(self, camera: str) -> bytes:
        """All of ``/live/<camera>.mjpg``, once the gateway ends it."""
        url = f"http://127.0.0.1:{self.web_port}/live/{camera}.mjpg"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": AUTH}) as response,
        ):
            assert response.status == 200
            return await response.read()

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": AUTH}) as response,
        ):
            assert response.status == 200
            text = await response.text()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@pytest.fixture
async def bridge_run() -> AsyncIterator[StartRun]:
    """start(config file, camera names): ``bridge run`` on it, once those cameras are online;
    stopped with SIGTERM after the test."""
    running: list[tuple[GatewayProcess, asyncio.Task[None]]] = []

    async def start(config: Path, *names: str) -> GatewayProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "run", "--config", str(config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        gateway = GatewayProcess(process)
        running.append((gateway, asyncio.create_task(gateway.read())))
        started = await gateway.line(r"RTSP on port (\d+), web on port (\d+)")
        gateway.rtsp_port, gateway.web_port = int(started[1]), int(started[2])
        for name in names:
            await gateway.line(rf"camera {name}: online")
        return gateway

    yield start
    for gateway, reader in running:
        if gateway.process.returncode is None:
            gateway.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await gateway.process.wait()
        await reader
        assert not [line for line in gateway.lines if "Traceback" in line]


@dataclass(kw_only=True)
class Counting:
    """A viewer that counts the pictures it receives as they arrive."""

    # Pictures made but not yet received at each end of a count, at most: the gateway's
    # reading and the viewer's.
    in_flight: ClassVar[int] = 2
    frames: int = 0
    _frame: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def _arrived(self) -> None:
        self.frames += 1
        self._frame.set()

    def _ended(self) -> None:
        self._frame.set()  # wakes frames_reach, to say the stream ended

    async def frames_reach(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.frames < count:
                assert self._task is not None
                assert not self._task.done(), "the stream ended"
                self._frame.clear()
                await self._frame.wait()

    def assert_nothing_lost(self) -> None:
        assert self._task is not None
        assert not self._task.done(), "the stream ended"


@dataclass
class FfmpegViewer(Counting):
    """ffmpeg playing one stream's video over TCP, writing a line per picture as it gets it
    (``-f framecrc``, flushed per packet)."""

    process: asyncio.subprocess.Process
    errors: bytearray = field(default_factory=bytearray)
    in_flight: ClassVar[int] = 3  # one more than the raw client: the picture in the encoder

    @classmethod
    @contextlib.asynccontextmanager
    async def watching(cls, url: str) -> AsyncIterator[FfmpegViewer]:
        process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
            "-map", "0:v", "-c", "copy", "-flush_packets", "1", "-f", "framecrc", "-",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        viewer = cls(process)
        viewer._task = asyncio.create_task(viewer._read())
        try:
            yield viewer
        finally:
            viewer._task.cancel()
            if viewer.process.returncode is None:
                viewer.process.kill()
            await viewer.process.wait()
            await asyncio.gather(viewer._task, return_exceptions=True)

    async def _read(self) -> None:
        """Until ffmpeg ends (or the test is done): a picture per line that is not a comment."""
        stdout, stderr = self.process.stdout, self.process.stderr
        assert stdout is not None
        assert stderr is not None

        async def read_errors() -> None:
            while chunk := await stderr.read(4096):
                self.errors += chunk

        errors = asyncio.create_task(read_errors())
        try:
            async for line in stdout:
                if not line.startswith(b"#"):
                    self._arrived()
            await errors
        finally:
            errors.cancel()
            self._ended()

    def assert_nothing_lost(self) -> None:
        super().assert_nothing_lost()
        assert not self.errors, self.errors.decode(errors="replace")


@dataclass
class Viewer(Counting):
    """A raw RTSP client playing one stream's video over TCP, keeping each RTP header."""

    client: RawClient
    packets: list[tuple[int, int, bool]] = field(default_factory=list, repr=False)  # seq, ts, M
    byes: int = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def watching(cls, port: int, path: str) -> AsyncIterator[Viewer]:
        viewer = cls(await RawClient.connect(port, AUTH))
        client, url = viewer.client, f"rtsp://127.0.0.1:{port}/{path}"
        try:
            status, _, sdp = await client.request("DESCRIBE", url)
            assert status == 200
            assert sdp.decode().split("m=")[1].startswith("video")  # trackID=0 is the video
            status, headers, _ = await client.request("SETUP", f"{url}/trackID=0", TCP)
            assert status == 200
            session = headers["Session"].partition(";")[0]
            status, _, _ = await client.request("PLAY", url, {"Session": session})
            assert status == 200
            viewer._task = asyncio.create_task(viewer._read())
            yield viewer
        finally:
            if viewer._task is not None:
                viewer._task.cancel()
                await asyncio.gather(viewer._task, return_exceptions=True)
            await client.close()

    async def _read(self) -> None:
        """Until the server closes the connection (or the test is done)."""
        while True:
            try:
                channel, data = await self.client.frame()
            except asyncio.IncompleteReadError:
                self._ended()
                return
            if channel == 1:
                self.byes += any(isinstance(p, Bye) for p in parse_compound(data))
                continue
            seq, timestamp = struct.unpack_from("!HI", data, 2)
            marker = bool(data[1] & 0x80)
            self.packets.append((seq, timestamp, marker))
            if marker:
                self._arrived()

    async def end(self) -> None:
        """Wait for the server to end the stream: a BYE, then its connection closes."""
        assert self._task is not None
        async with asyncio.timeout(5):
            await self._task
        assert self.byes == 1

    def assert_nothing_lost(self) -> None:
        """Still playing, sequence numbers continuous, timestamps increasing, no BYE.

        Timestamps follow arrival times (smoothed), so on a loaded machine their steps vary
        without any picture lost: pictures are counted against the emulator's instead."""
        super().assert_nothing_lost()
        sequence = [seq for seq, _, _ in self.packets]
        gaps = [(a, b) for a, b in itertools.pairwise(sequence) if (b - a) % 65536 != 1]
        assert not gaps
        stamps = [stamp for _, stamp, marker in self.packets if marker]
        steps = [(b - a) % 2**32 for a, b in itertools.pairwise(stamps)]
        assert 0 < min(steps) <= max(steps) < 2**31
        assert self.byes == 0


@dataclass
class Watch:
    """How many pictures the emulator made and the viewer got, from a starting point."""

    sim: RunningSimulator
    viewer: Counting
    made: int = 0
    got: int = 0

    def __post_init__(self) -> None:
        self.made, self.got = self.sim.camera.video.rendered, self.viewer.frames

    def assert_all_arrived(self) -> None:
        made = self.sim.camera.video.rendered - self.made
        got = self.viewer.frames - self.got
        slack = self.viewer.in_flight
        assert got >= made - slack, f"the emulator made {made} pictures, the viewer got {got}"
        assert made >= FPS * 2  # it watched across the reload, at the camera's rate
        self.viewer.assert_nothing_lost()


async def start_cameras(
    start_sim: StartSim, *names: str, **sizes: tuple[int, int]
) -> dict[str, RunningSimulator]:
    sims = {}
    for name in names:
        width, height = sizes.get(name, (320, 240))
        sims[name] = await start_sim(HamaSimulator(SimOptions(width=width, height=height, fps=FPS)))
    return sims


async def ffmpeg_playing(url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "udp", "-i", url,
        "-f", "null", "-",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_cameras_come_and_go_while_the_untouched_one_loses_no_frame(
    tmp_path: Path, start_sim: StartSim, bridge_run: StartRun
) -> None:
    sims = await start_cameras(
        start_sim, "keep", "gone", "edit", "edited", "new", edited=(176, 144)
    )
    config = tmp_path / "bridge.yaml"
    save(config, config_text([(name, sims[name]) for name in ("keep", "gone", "edit")]))
    gateway = await bridge_run(config, "keep", "gone", "edit")
    async with (
        FfmpegViewer.watching(gateway.url("keep/main")) as ffmpeg,
        Viewer.watching(gateway.rtsp_port, "keep/jpeg") as viewer,
        Viewer.watching(gateway.rtsp_port, "edit/jpeg") as restarting,
    ):
        await ffmpeg.frames_reach(5)
        await viewer.frames_reach(5)
        await restarting.frames_reach(1)
        leaving = await ffmpeg_playing(gateway.url("gone/jpeg"))
        live = asyncio.create_task(gateway.live_view_bytes("gone"))
        try:
            await gateway.line(r"viewer \S+ joined gone/jpeg over UDP")
            await gateway.line(r"web: live viewer \S+ joined gone$")
            watches = [Watch(sims["keep"], viewer), Watch(sims["keep"], ffmpeg)]
            mark = len(gateway.lines)
            now = [("keep", sims["keep"]), ("edit", sims["edited"]), ("new", sims["new"])]
            save(config, config_text(now))
            await gateway.line(
                r"config reloaded: \+1 added \(new\), -1 removed \(gone\), ~1 changed \(edit\)$",
                after=mark,
            )
            # The removed camera's viewer sees its end (RTCP BYE, then its connection closes).
            async with asyncio.timeout(5):
                _, errors = await leaving.communicate()
            assert leaving.returncode == 0, errors.decode()
            # Its live view on the status page ends too, after the pictures it had.
            async with asyncio.timeout(5):
                assert b"image/jpeg" in await live
        finally:
            live.cancel()
            if leaving.returncode is None:
                leaving.kill()
                await leaving.wait()
        await restarting.end()  # the changed camera's viewer too (over TCP)
        assert await describe_status(gateway.rtsp_port, "gone/jpeg", AUTH) == 404
        await gateway.line(r"camera new: online", after=mark)
        await gateway.line(r"camera edit: online", after=mark)
        assert (await probe_first_video_frames(gateway.url("new/jpeg")))["codec_name"] == "mjpeg"
        changed = await probe_first_video_frames(gateway.url("edit/main"))
        assert (changed["codec_name"], changed["width"], changed["height"]) == ("h264", 176, 144)
        for playing in (viewer, ffmpeg):  # they play on after all that
            await playing.frames_reach(playing.frames + 10)
        for watch in watches:
            watch.assert_all_arrived()
    samples = await gateway.metrics()
    for profile in ("jpeg", "main"):
        assert sample(samples, "bridge_frames_dropped_total", camera="keep", profile=profile) == 0
    assert sample(samples, "bridge_camera_reconnects_total", camera="keep") == 0
    assert sample(samples, "bridge_camera_up", camera="gone") is None
    assert sample(samples, "bridge_camera_up", camera="new") == 1
    assert sample(samples, "bridge_config_reloads_total", result="applied") == 1


async def test_sighup_reloads_and_a_bad_file_is_refused_as_check_config_says(
    tmp_path: Path, start_sim: StartSim, bridge_run: StartRun
) -> None:
    sims = await start_cameras(start_sim, "keep", "more")
    config = tmp_path / "bridge.yaml"
    keep, more = ("keep", sims["keep"]), ("more", sims["more"])
    save(config, config_text([keep]))
    gateway = await bridge_run(config, "keep")
    async with Viewer.watching(gateway.rtsp_port, "keep/jpeg") as viewer:
        await viewer.frames_reach(5)
        watch = Watch(sims["keep"], viewer)
        good = config_text([keep, more])
        # Two cameras by one name: refused, with check-config's very words.
        bad = config_text([keep, ("keep", sims["more"])], padding=len(good))
        mark = len(gateway.lines)
        save(config, bad)
        refused = await gateway.line(
            r"config not reloaded, the running one stays: (.*)$", after=mark
        )
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "check-config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, said = await check.communicate()
        assert check.returncode == 2
        assert said.decode().strip() == f"error: {refused[1]}"
        assert "camera names must be unique" in refused[1]
        # The good file, written in place with the bad one's size and time: only SIGHUP
        # can tell the gateway.
        before = config.stat()
        with config.open("r+") as file:
            file.write(good + "#" * (before.st_size - len(good) - 1) + "\n")
        os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
        mark = len(gateway.lines)
        gateway.process.send_signal(signal.SIGHUP)
        await gateway.line(
            r"config reloaded: \+1 added \(more\), -0 removed, ~0 changed$", after=mark
        )
        await gateway.line(r"camera more: online", after=mark)
        assert (await probe_first_video_frames(gateway.url("more/jpeg")))["codec_name"] == "mjpeg"
        assert not [line for line in gateway.lines[mark:] if "config file" in line]
        await viewer.frames_reach(viewer.frames + 10)
        watch.assert_all_arrived()
    samples = await gateway.metrics()
    assert sample(samples, "bridge_config_reloads_total", result="refused") == 1
    assert sample(samples, "bridge_config_reloads_total", result="applied") == 1


async def test_a_camera_that_cannot_start_is_reported_and_the_rest_applies(
    start_sim: StartSim, start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """In process: a new camera on an address this host does not have cannot be served; the
    other new one starts, the running one is the very same object, and the next reload tries
    the failed one again."""
    gateway = await start_gateway(await start_sim(HamaSimulator(SimOptions())))
    running = gateway.cameras["hama"]
    entry = running.config
    far = entry.model_copy(update={"name": "far", "address": "192.0.2.77"})  # TEST-NET-1
    near = entry.model_copy(update={"name": "near"})
    config = gateway.config.model_copy(update={"cameras": [entry, far, near]})
    caplog.set_level(logging.INFO, logger="bridge.app")
    await gateway.reload(config)
    assert "could not start far (cannot listen on 192.0.2.77" in caplog.text
    assert list(gateway.cameras) == ["hama", "near"]
    assert gateway.cameras["hama"] is running
    async with asyncio.timeout(10):
        await gateway.cameras["near"].ready.wait()
    caplog.clear()
    await gateway.reload(config)
    assert "config reloaded: +1 added (far), -0 removed, ~0 changed" in caplog.text
    assert gateway.cameras["hama"] is running


async def test_a_removed_cameras_own_address_answers_no_more(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    """A camera on an address of its own (127.0.0.5 here, a macvlan on a LAN) has the RTSP and
    web ports answer there too; once a reload removes it nothing does, and the gateway's own
    address serves on."""
    gateway = await start_gateway(await start_sim(HamaSimulator(SimOptions())))
    entry = gateway.cameras["hama"].config
    own = entry.model_copy(update={"name": "own", "address": "127.0.0.5", "onvif_port": 0})
    await gateway.reload(gateway.config.model_copy(update={"cameras": [entry, own]}))
    async with asyncio.timeout(10):
        await gateway.cameras["own"].ready.wait()
    ports = (gateway.rtsp.port, gateway.web_port)

    async def answers(host: str, port: int) -> bool:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    assert [await answers("127.0.0.5", port) for port in ports] == [True, True]
    await gateway.reload(gateway.config.model_copy(update={"cameras": [entry]}))
    assert [await answers("127.0.0.5", port) for port in ports] == [False, False]
    assert [await answers("127.0.0.1", port) for port in ports] == [True, True]


async def test_a_new_gateway_password_applies_at_once_and_a_new_port_waits(
    start_sim: StartSim, start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start_gateway(await start_sim(HamaSimulator(SimOptions())))
    port = gateway.rtsp.port
    new = gateway.config.gateway.model_copy(
        update={"password": SecretStr("changed-1"), "rtsp_port": port + 1}
    )
    caplog.set_level(logging.INFO, logger="bridge.app")
    await gateway.reload(gateway.config.model_copy(update={"gateway": new}))
    assert "gateway.rtsp_port changed; it applies after a restart" in caplog.text
    assert "config reloaded: +0 added, -0 removed, ~0 changed; gateway.password applied" in (
        caplog.text
    )
    assert "changed-1" not in caplog.text
    url = f"rtsp://127.0.0.1:{port}/hama/jpeg"
    for password, status in (("admin", 401), ("changed-1", 200)):
        client = await RawClient.connect(port, basic_authorization("admin", password))
        try:
            assert (await client.request("DESCRIBE", url))[0] == status
        finally:
            await client.close()


def test_changes_by_camera_name_and_gateway_field() -> None:
    old = Config.model_validate(
        {"cameras": [{"name": n, "url": f"http://192.0.2.{i}"} for i, n in enumerate("abc")]}
    )
    new = Config.model_validate(
        {
            "gateway": {"password": "new-one", "rtsp_port": 9554},
            "cameras": [
                {"name": "d", "url": "http://192.0.2.9"},
                {"name": "c", "url": "http://192.0.2.2", "audio": "off"},
                {"name": "a", "url": "http://192.0.2.0"},
            ],
        }
    )
    changes = camera_changes(old.cameras, new.cameras)
    assert changes == CameraChanges(added=["d"], removed=["b"], changed=["c"])
    assert changes.summary() == "+1 added (d), -1 removed (b), ~1 changed (c)"
    assert not camera_changes(new.cameras, new.cameras)
    assert gateway_changes(old.gateway, new.gateway) == (["password"], ["rtsp_port"])


async def test_a_file_is_read_once_it_holds_still(tmp_path: Path) -> None:
    """Written in two parts a poll apart, renamed over, or touched: one change each time it
    settles, never one for the half-written file."""
    path = tmp_path / "bridge.yaml"
    path.write_text("cameras: []\n")
    changes = file_changes(path, interval=0.1)
    seen: list[str] = []
    changed = asyncio.Event()

    async def watch() -> None:
        async for _ in changes:
            seen.append(path.read_text())
            changed.set()

    watcher = asyncio.create_task(watch())
    try:
        with path.open("a") as file:
            file.write("gateway:\n")
            file.flush()
            await asyncio.sleep(0.15)
            file.write("  rtsp_port: 9554\n")
        save(path, path.read_text() + "# saved\n")
        async with asyncio.timeout(5):
            await changed.wait()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert seen == ["cameras: []\ngateway:\n  rtsp_port: 9554\n# saved\n"]
