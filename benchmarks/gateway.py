"""The gateway measured: emulated cameras in one child process, RTSP viewers in another.

Three processes, so the gateway's CPU (``getrusage`` of this one) is its own:

- an emulator child serves N emulated ``hama`` cameras, replaying the benchmark's camera-like
  pictures (rendered once: rendering costs more than transcoding) at the camera's rate, each
  picture late by up to ``jitter`` of an interval, as pictures from a real camera arrive;
- a viewer child runs minimal RTSP clients (TCP interleaved, Basic auth), counting RTP packets
  with the marker bit as frames and RTP timestamp gaps as lost frames;
- this process runs a fresh :class:`~bridge.app.Gateway` per measurement (its start and the
  cameras' cold joins are its startup, reported apart), counts what flows through the camera
  and profile fan-outs, and reads the RTSP server's added latency (camera picture arrival to its
  last RTP packet written).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import random
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

from benchmarks.pictures import arrivals
from benchmarks.references import cpu_seconds
from bridge.app import Gateway
from bridge.config import Config
from bridge.media.source import Profile
from bridge.media.transcode import CLOCK_RATE
from bridge.rtsp.protocol import Headers, RtspRequest
from bridge.simulator.core import FrameHub, SimOptions, SimState, start_simulator
from bridge.simulator.hama import HamaSimulator

USER = PASSWORD = "admin"
JOIN_TIMEOUT = 30.0
KEEPALIVE = 20.0
Json = dict[str, Any]


def progress(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- child processes ---------------------------------------------------------------------------


class ChildFailed(Exception):
    pass


class Child:
    """A worker process answering one request at a time over a pipe."""

    def __init__(self, target: Callable[..., None], *args: object) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of this process's loop
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=target, args=(child_conn, *args), daemon=True)
        self._process.start()
        child_conn.close()

    async def call(self, *request: object) -> Any:
        self._conn.send(request)
        return await self.reply()

    async def reply(self) -> Any:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self._conn.poll, 60.0):
            raise ChildFailed(f"no answer to {self._process.name} within 60 s")
        kind, value = self._conn.recv()
        if kind == "error":
            raise ChildFailed(value)
        return value

    async def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("exit",))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._process.join, 10.0)
        if self._process.is_alive():
            self._process.terminate()
            await loop.run_in_executor(None, self._process.join, 5.0)
        self._conn.close()


class Handler(Protocol):
    async def __call__(self, *args: Any) -> Any: ...


async def _serve_requests(
    conn: multiprocessing.connection.Connection, handlers: dict[str, Handler]
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        kind, *args = await loop.run_in_executor(None, conn.recv)
        if kind == "exit":
            return
        try:
            conn.send(("ok", await handlers[kind](*args)))
        except Exception as exc:
            conn.send(("error", f"{kind}: {type(exc).__name__}: {exc}"))


class ReplayHub(FrameHub):
    """The emulator's frame source: loops over the benchmark's pictures, counting them, at the
    camera's rate with arrival jitter. Each camera has its own phase (cameras tick at unrelated
    moments) and its own random sequence, the same in every run."""

    def __init__(
        self,
        options: SimOptions,
        state: SimState,
        pictures: Sequence[bytes],
        *,
        index: int,
        cameras: int,
        jitter: float,
    ) -> None:
        super().__init__(options, state)
        self._pictures = pictures
        self._phase = index / cameras / options.fps
        self._seed = index
        self._jitter = jitter
        self._next = 0
        self.sent = 0
        self.streams = 0

    async def render(self) -> bytes:
        self.latest = self._pictures[self._next % len(self._pictures)]
        self._next += 1
        return self.latest

    async def _run(self) -> None:
        # FrameHub's own pacing, with each picture's time taken from the jittered schedule.
        start = time.monotonic() + self._phase
        schedule = arrivals(self._options.fps, self._jitter, start, random.Random(self._seed))
        while self._subscribers:
            await asyncio.sleep(max(0.0, next(schedule) - time.monotonic()))
            frame = await self.render()
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(frame)

    async def frames(self) -> AsyncIterator[bytes]:
        self.streams += 1
        try:
            async for picture in super().frames():
                self.sent += 1
                yield picture
        finally:
            self.streams -= 1


@dataclass(frozen=True, slots=True)
class EmulatorPlan:
    """``count`` hama cameras replaying ``pictures`` with arrival ``jitter``."""

    count: int
    options: SimOptions
    pictures: list[bytes]
    jitter: float


def emulator_main(conn: multiprocessing.connection.Connection, plan: EmulatorPlan) -> None:
    asyncio.run(_emulators(conn, plan))


async def _emulators(conn: multiprocessing.connection.Connection, plan: EmulatorPlan) -> None:
    count, options, pictures, jitter = plan.count, plan.options, plan.pictures, plan.jitter
    cameras = []
    hubs = []
    for index in range(count):
        # A MAC of its own each, as real cameras have (the gateway warns about shared ones).
        camera = HamaSimulator(dataclasses.replace(options, mac=f"02:00:00:00:00:{index:02x}"))
        hub = ReplayHub(options, camera.state, pictures, index=index, cameras=count, jitter=jitter)
        camera.video = hub
        cameras.append(camera)
        hubs.append(hub)
    running = [await start_simulator(camera) for camera in cameras]

    async def stats() -> Json:
        return {"sent": [hub.sent for hub in hubs], "streams": [hub.streams for hub in hubs]}

    try:
        conn.send(("ok", [sim.url for sim in running]))
        await _serve_requests(conn, {"stats": stats})
    finally:
        for sim in running:
            await sim.stop()
        conn.close()


@dataclass
class Viewer:
    """One RTSP client over TCP interleaved: DESCRIBE, SETUP, PLAY, then counts frames."""

    url: str
    frame_interval: int  # RTP timestamp units between pictures
    frames: int = 0
    lost: int = 0  # pictures missing between the ones received, from RTP timestamp gaps
    backsteps: int = 0  # RTP timestamps that went backwards
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    error: str = ""
    _last_timestamp: int | None = None
    _cseq: int = 0
    _session: str = ""
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._play()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.first_frame.set()

    async def _play(self) -> None:
        host_port = self.url.split("/")[2]
        host, _, port = host_port.rpartition(":")
        reader, self._writer = await asyncio.open_connection(host, int(port))
        headers, body = await self._request(reader, "DESCRIBE", self.url, Accept="application/sdp")
        base = headers.get("content-base", self.url)
        control = next(
            (
                line[10:].strip()
                for line in body.decode().splitlines()
                if line.startswith("a=control:") and line[10:].strip() != "*"
            ),
            "trackID=0",
        )
        track = control if "://" in control else urljoin(base, control)
        headers, _ = await self._request(
            reader, "SETUP", track, Transport="RTP/AVP/TCP;unicast;interleaved=0-1"
        )
        self._session = headers["session"].split(";")[0]
        await self._request(reader, "PLAY", self.url, Session=self._session, Range="npt=0.000-")
        await self._receive(reader)

    async def _request(
        self, reader: asyncio.StreamReader, method: str, uri: str, **fields: str
    ) -> tuple[dict[str, str], bytes]:
        assert self._writer is not None
        self._writer.write(self._message(method, uri, **fields))
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if status != 200:
            raise ChildFailed(f"{method} {uri}: {head[0]}")
        return headers, body

    def _message(self, method: str, uri: str, **fields: str) -> bytes:
        self._cseq += 1
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers = Headers(
            [("CSeq", str(self._cseq)), ("Authorization", f"Basic {token}"), *fields.items()]
        )
        return RtspRequest(method, uri, headers=headers).serialize()

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        assert self._writer is not None
        buffer = bytearray()
        next_keepalive = time.monotonic() + KEEPALIVE
        while chunk := await reader.read(256 * 1024):
            buffer += chunk
            pos, end = 0, len(buffer)
            while end - pos >= 4:
                if buffer[pos] != 0x24:  # "$": else an RTSP response to a keepalive
                    stop = buffer.find(b"\r\n\r\n", pos)
                    if stop < 0:
                        break
                    pos = stop + 4
                    continue
                length = buffer[pos + 2] << 8 | buffer[pos + 3]
                if pos + 4 + length > end:
                    break
                # Channel 0 is video RTP; the marker bit ends a picture.
                if buffer[pos + 1] == 0 and length >= 12 and buffer[pos + 5] & 0x80:
                    self._picture(int.from_bytes(buffer[pos + 8 : pos + 12]))
                pos += 4 + length
            del buffer[:pos]
            if time.monotonic() >= next_keepalive:
                self._writer.write(self._message("GET_PARAMETER", self.url, Session=self._session))
                next_keepalive = time.monotonic() + KEEPALIVE

    def _picture(self, timestamp: int) -> None:
        self.frames += 1
        if self._last_timestamp is None:
            self.first_frame.set()
        else:
            gap = (timestamp - self._last_timestamp) % (1 << 32)
            if gap >= 1 << 31:  # a step back: the stream's clock was reset, nothing was lost
                self.backsteps += 1
            else:
                self.lost += max(0, round(gap / self.frame_interval) - 1)
        self._last_timestamp = timestamp

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            if self._session:
                self._writer.write(self._message("TEARDOWN", self.url, Session=self._session))
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def viewer_main(conn: multiprocessing.connection.Connection) -> None:
    asyncio.run(_viewers(conn))


async def _viewers(conn: multiprocessing.connection.Connection) -> None:
    viewers: list[Viewer] = []
    marks: dict[int, tuple[int, int]] = {}
    marked_at = 0.0

    async def join(targets: list[tuple[str, float]]) -> list[str]:
        """One viewer per (url, fps); returns each one's error ("" once it has a frame)."""
        joined = [Viewer(url, round(CLOCK_RATE / fps)) for url, fps in targets]
        for viewer in joined:
            viewer.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(JOIN_TIMEOUT):
                await asyncio.gather(*(v.first_frame.wait() for v in joined))
        viewers.extend(joined)
        return [v.error or ("" if v.first_frame.is_set() else "no frame") for v in joined]

    async def mark() -> float:
        nonlocal marked_at
        marked_at = time.monotonic()
        marks.update({id(v): (v.frames, v.lost) for v in viewers})
        return cpu_seconds()

    async def report() -> Json:
        elapsed = time.monotonic() - marked_at
        return {
            "seconds": elapsed,
            "frames": [v.frames - marks.get(id(v), (0, 0))[0] for v in viewers],
            "lost": [v.lost - marks.get(id(v), (0, 0))[1] for v in viewers],
            "backsteps": sum(v.backsteps for v in viewers),
            "errors": [v.error for v in viewers if v.error],
            "cpu_s": cpu_seconds(),
        }

    async def leave() -> None:
        await asyncio.gather(*(v.close() for v in viewers))
        viewers.clear()

    try:
        conn.send(("ok", None))
        await _serve_requests(conn, {"join": join, "mark": mark, "report": report, "leave": leave})
    finally:
        await leave()
        conn.close()


# -- the gateway side --------------------------------------------------------------------------


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Any]: ...

    def close(self) -> None: ...


class Counter:
    """Counts what flows through a subscription (camera pictures, or encoded video units),
    and of those the keyframes: an encoder reopened (by a size or rate change) starts with an
    IDR of its own, so more IDRs than the GOP makes show reopens."""

    def __init__(self, subscription: Subscription, accept: Callable[[Any], bool]) -> None:
        self.count = 0
        self.keyframes = 0
        self._subscription = subscription
        self._task = asyncio.create_task(self._run(accept))

    async def _run(self, accept: Callable[[Any], bool]) -> None:
        async for item in self._subscription:
            if accept(item):
                self.count += 1
                self.keyframes += getattr(item, "keyframe", False)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._subscription.close()


def gateway_config(urls: Sequence[str]) -> Config:
    credentials = {"username": USER, "password": PASSWORD}
    return Config.model_validate(
        {
            "gateway": {
                "listen_host": "127.0.0.1",
                "advertise_host": "127.0.0.1",
                "rtsp_port": 0,
                "web_port": 0,
                "onvif_base_port": 0,
                "announce": False,  # the benchmark measures streaming alone
                **credentials,
            },
            "cameras": [
                {"name": f"cam{i:02d}", "url": url, "dialect": "hama", "audio": "off"} | credentials
                for i, url in enumerate(urls)
            ],
        }
    )


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """``profiles``: watched per camera, one viewer each, with the rate each delivers."""

    cameras: int
    profiles: tuple[tuple[Profile, float], ...]
    gop: int  # the main profile's pictures from one IDR to the next
    settle: float  # after the last viewer's first frame, before the measured window
    seconds: float


async def measure_gateway(
    emulator: Child, urls: Sequence[str], viewers: Child, plan: GatewayPlan
) -> Json:
    """A fresh gateway in front of the first ``plan.cameras`` emulated cameras, watched."""
    began = cpu_seconds()
    gateway = Gateway(gateway_config(urls[: plan.cameras]))
    counters: list[Counter] = []
    try:
        await gateway.start()
        async with asyncio.timeout(JOIN_TIMEOUT):
            await asyncio.gather(*(camera.ready.wait() for camera in gateway.cameras.values()))
        port = gateway.rtsp.port
        targets = [
            (f"rtsp://127.0.0.1:{port}/{name}/{profile}", fps)
            for name in gateway.cameras
            for profile, fps in plan.profiles
        ]
        errors = [e for e in await viewers.call("join", targets) if e]
        if errors:
            raise ChildFailed(f"viewers failed to join: {errors[:3]}")
        startup = cpu_seconds() - began
        await asyncio.sleep(plan.settle)
        main = plan.profiles[0][0]
        for camera in gateway.cameras.values():
            assert camera.media is not None
            counters.append(Counter(camera.media.frames.subscribe(8), lambda _: True))
            counters.append(Counter(camera.source(main).subscribe(), lambda u: u.track == 0))
        stats = gateway.rtsp.stats
        stats.latencies.clear()
        sent_before = stats.frames
        emulator_before, _ = await asyncio.gather(emulator.call("stats"), viewers.call("mark"))
        cpu, wall = cpu_seconds(), time.monotonic()
        await asyncio.sleep(plan.seconds)
        cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
        received = sum(c.count for c in counters[0::2])
        transcoded = sum(c.count for c in counters[1::2])
        server_sent = stats.frames - sent_before
        latencies = list(stats.latencies)
        report, emulator_after = await asyncio.gather(
            viewers.call("report"), emulator.call("stats")
        )
    finally:
        for counter in counters:
            await counter.stop()
        await viewers.call("leave")
        await gateway.stop()
    cameras = plan.cameras
    camera_sent = sum(emulator_after["sent"][:cameras]) - sum(emulator_before["sent"][:cameras])
    delivered = sum(report["frames"])
    tolerance = cameras  # counts taken a moment apart: one picture in flight per camera
    dropped = (
        sum(report["lost"])
        + max(0, camera_sent - received - tolerance)
        + max(0, received - transcoded - tolerance)
        + max(0, server_sent - delivered - tolerance * len(plan.profiles))
    )
    return {
        "startup_cpu_s": startup,
        "seconds": wall,
        "cpu_s": cpu,
        "frames": transcoded,  # the main profile's
        "idr": sum(c.keyframes for c in counters[1::2]),
        "idr_expected": transcoded / plan.gop,
        "pictures": received,
        "camera_sent": camera_sent,
        "server_sent": server_sent,
        "viewers_received": delivered,
        "dropped": dropped,
        "rtp_timestamp_backsteps": report["backsteps"],
        "viewer_errors": report["errors"],
        "latency_p50_ms": _ms(percentile(latencies, 0.5)),
        "latency_p99_ms": _ms(percentile(latencies, 0.99)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
