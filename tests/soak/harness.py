"""The soak: phases, load, verdict and summary table.

Phases: the cameras process and the gateway start; a warm-up runs the whole load (so caches,
pools and arenas fill); the load stops and, after ``settle`` seconds of idle, the baseline is
taken; the load runs for ``minutes``; it stops, and the gateway gets up to ``idle`` seconds to
come back to its baseline; then it is stopped with SIGTERM.

The run fails on: the gateway exiting by itself, or not stopping on SIGTERM; "Traceback" or a
credential in its log; a viewer of a well-behaved camera waiting over ``max_gap`` seconds for a
picture, or not getting to play; an ONVIF, snapshot or fuzzer health-check call to a
well-behaved camera failing; RSS growing more than ``max_rss_growth`` % over the last half of
the load (judged only in runs of ``rss_levels_within`` minutes or more: before that memory is
still filling up, so a short run's last half says nothing about levelling off); open fds or
threads above the baseline once idle again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import aiohttp

from soak import fuzz
from soak.fuzz import FuzzStats
from soak.gateway import ADMIN, USERS, CameraSpec, GatewayProcess, Sample, Sampler
from soak.gateway import child_environment as environment
from soak.onvif_clients import CallStats, OnvifClient, SnapshotClient
from soak.viewers import PROFILES, TRANSPORTS, Presence, Viewer, ViewerClass, stream_url

# Each kind of client comes from its own loopback address, as from its own host.
VIEWER_HOST = "127.0.0.2"
ONVIF_HOST = "127.0.0.3"
FUZZ_HOST = "127.0.0.4"
HEALTH_HOST = "127.0.0.5"
CAMERAS_START_TIMEOUT = 60.0
FAULT_CONTROL_TIMEOUT = 5.0
FAULT_CLEAR_ATTEMPTS = 20
# What the misbehaving cameras do, in turn: each fault for ``fault_seconds``, then a rest.
FAULT_SCHEDULE = (
    "mode=garbage",
    "mode=stall",
    "mode=drip&rate=4000",
    "mode=reset&every=3",
    "mode=corrupt",
    "mode=oversized&every=5",
    "mode=flap&up=2&down=3",
    "mode=garbage&scope=all&every=2",
)


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 2.0
    good: int = 3
    bad: int = 2
    warmup: float = 20.0
    settle: float = 8.0
    # After the load, at most this long for fds and threads to come back: a UDP viewer that
    # left without TEARDOWN keeps its session (two sockets) for the RTSP session timeout, 60 s,
    # as RFC 2326 has it (the 1-hour run failed at 20 s with 2 such sessions left, 46 vs 42 fds).
    idle: float = 75.0
    width: int = 640
    height: int = 480
    fps: float = 10.0
    seed: int = 1
    fuzz_rate: float = 8.0  # cases per second, per fuzzer (one RTSP, one SOAP)
    fault_seconds: float = 12.0
    fault_rest: float = 4.0
    watch: tuple[float, float] = (4.0, 20.0)  # how long a viewer watches
    pause: tuple[float, float] = (0.2, 2.0)  # and waits before watching again
    watched: tuple[float, float] = (30.0, 90.0)  # how long a camera has viewers
    unwatched: tuple[float, float] = (4.0, 10.0)  # and then none (over the idle grace)
    stream_idle_seconds: float = 2.0
    max_gap: float = 2.0
    max_rss_growth: float = 5.0  # percent, over the last half of the load
    # Minutes of load before RSS levels off: the 1-hour runs climbed for the first 10-15
    # minutes (caches, pools, codec buffers of every profile and transport). In CI's 2-minute
    # run under a loaded host, the last minute once rose 6.3 %.
    rss_levels_within: float = 15.0
    diagnose_every: float = 0.0  # > 0: the C heap and object counts in the gateway's own report
    diagnose_options: tuple[str, ...] = ()  # --trace (tracemalloc, slow), --trim (malloc_trim)
    env: dict[str, str] = field(default_factory=dict)  # for the gateway (MALLOC_ARENA_MAX ...)
    workdir: Path | None = None  # kept when given; a temporary one otherwise


@dataclass
class LoadStats:
    viewers: list[ViewerClass]
    onvif_good: CallStats = field(default_factory=CallStats)
    onvif_bad: CallStats = field(default_factory=CallStats)
    rtsp_fuzz: FuzzStats = field(default_factory=FuzzStats)
    soap_fuzz: FuzzStats = field(default_factory=FuzzStats)
    faults_set: Counter[str] = field(default_factory=Counter)


@dataclass
class LogFindings:
    lines: int = 0
    tracebacks: int = 0
    first_traceback: str = ""
    leaked: list[str] = field(default_factory=list)  # which credentials (by owner) appeared
    by_level: Counter[str] = field(default_factory=Counter)
    top_warnings: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Phases:
    load_start: float = 0.0
    load_end: float = 0.0
    baseline: Sample | None = None
    end: Sample | None = None


@dataclass
class SoakResult:
    options: SoakOptions
    cameras: list[CameraSpec]
    phases: Phases
    samples: list[Sample]
    load: LoadStats
    log: LogFindings
    faults_applied: Counter[str]
    exit_code: int | None = None
    exited_during_run: bool = False
    harness_lag: float = 0.0  # the longest this process's own loop was late, seconds
    workdir: str = ""
    wall_seconds: float = 0.0

    def load_samples(self) -> list[Sample]:
        return [s for s in self.samples if self.phases.load_start <= s.at <= self.phases.load_end]


# -- numbers ------------------------------------------------------------------------------------


def growth_over_last_half(samples: Sequence[Sample]) -> float | None:
    """RSS growth (%) over the last half of ``samples``: a least-squares line through the
    second half's RSS, from its value at the middle to its value at the end, so one noisy
    sample neither hides nor fakes a trend."""
    if len(samples) < 4:
        return None
    start, end = samples[0].at, samples[-1].at
    middle = (start + end) / 2
    half = [s for s in samples if s.at >= middle]
    if len(half) < 2:
        return None
    xs = [s.at - middle for s in half]
    ys = [s.rss_mb for s in half]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    at_middle = mean_y - slope * mean_x
    return 100.0 * slope * (end - middle) / at_middle


def rss_judged(options: SoakOptions) -> bool:
    """Whether the load ran long enough for its memory to have levelled off."""
    return options.minutes >= 2 * options.rss_levels_within


def cpu_percent(samples: Sequence[Sample]) -> float | None:
    if len(samples) < 2 or samples[-1].at <= samples[0].at:
        return None
    return 100.0 * (samples[-1].cpu_s - samples[0].cpu_s) / (samples[-1].at - samples[0].at)


def secrets_to_hide(cameras: Sequence[CameraSpec]) -> dict[str, str]:
    """What must never reach the log, by whose it is: every password, and every Basic
    credential as it travels (base64 of user:password)."""
    accounts = [(u.name, u.password, u.name) for u in (ADMIN, *USERS)]
    accounts += [(c.username, c.password, f"camera {c.name}") for c in cameras]
    hidden = {}
    for user, password, whose in accounts:
        hidden[password] = f"password of {whose}"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        hidden[token] = f"Basic credential of {whose}"
    return hidden


def read_log(text: str, cameras: Sequence[CameraSpec]) -> LogFindings:
    lines = text.splitlines()
    findings = LogFindings(lines=len(lines))
    warnings: Counter[str] = Counter()
    for index, line in enumerate(lines):
        parts = line.split(maxsplit=4)
        if len(parts) >= 4 and parts[2] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            findings.by_level[parts[2]] += 1
            if parts[2] in ("WARNING", "ERROR", "CRITICAL") and len(parts) == 5:
                # The message without its variable tail, so alike lines count together.
                warnings[f"{parts[2]} {parts[3]} {parts[4][:60]}"] += 1
        if "Traceback" in line:
            findings.tracebacks += 1
            if not findings.first_traceback:
                findings.first_traceback = "\n".join(lines[max(0, index - 1) : index + 25])
    findings.leaked = sorted(
        {who for secret, who in secrets_to_hide(cameras).items() if secret in text}
    )
    findings.top_warnings = warnings.most_common(8)
    return findings


def judge(result: SoakResult) -> list[str]:
    """Why the run failed; empty when it passed."""
    options, phases, load = result.options, result.phases, result.load
    failures = []
    if result.exited_during_run:
        failures.append(f"the gateway exited by itself (exit code {result.exit_code})")
    elif result.exit_code != 0:
        what = "did not stop on SIGTERM" if result.exit_code is None else "exited"
        failures.append(f"the gateway {what} (exit code {result.exit_code}) when stopped")
    if result.log.tracebacks:
        failures.append(f"{result.log.tracebacks} traceback(s) in the gateway log")
    if result.log.leaked:
        failures.append(f"credentials in the gateway log: {', '.join(result.log.leaked)}")
    for viewer in load.viewers:
        if not viewer.well_behaved:
            continue
        name = f"{viewer.camera}/{viewer.profile}/{viewer.transport}"
        if viewer.worst_gap > options.max_gap:
            failures.append(f"viewer {name}: a {viewer.worst_gap:.1f} s gap")
        if viewer.failed:
            reasons = ", ".join(f"{k} x{n}" for k, n in viewer.errors.most_common(3))
            failures.append(f"viewer {name}: {viewer.failed} session(s) never played ({reasons})")
        if viewer.sessions == 0 or viewer.frames == 0:
            failures.append(f"viewer {name}: no pictures at all")
    failed_calls = sum(load.onvif_good.failed.values())
    if failed_calls:
        reasons = "; ".join(f"{k} x{n}" for k, n in load.onvif_good.reasons.most_common(4))
        failures.append(
            f"{failed_calls} ONVIF/snapshot call(s) to well-behaved cameras failed: {reasons}"
        )
    for name, stats in (("RTSP", load.rtsp_fuzz), ("SOAP", load.soap_fuzz)):
        if stats.health_failed:
            failures.append(f"{stats.health_failed} {name} health check(s) failed while fuzzing")
    growth = growth_over_last_half(result.load_samples())
    if rss_judged(options) and growth is not None and growth > options.max_rss_growth:
        failures.append(
            f"RSS grew {growth:.1f} % over the last half of the load "
            f"(limit {options.max_rss_growth:g} %)"
        )
    if phases.baseline is not None and phases.end is not None:
        for what in ("fds", "threads"):
            start, end = getattr(phases.baseline, what), getattr(phases.end, what)
            if end > start:
                failures.append(f"{what}: {end} once idle again, above the {start} of the baseline")
    return failures


# -- the table ----------------------------------------------------------------------------------


def _rows(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def table(result: SoakResult) -> str:
    options, phases, load = result.options, result.phases, result.load
    during = result.load_samples()
    lines = [
        f"soak: {options.good} well-behaved + {options.bad} misbehaving cameras "
        f"({options.width}x{options.height} @ {options.fps:g} fps), "
        f"{options.minutes:g} min of load, "
        f"{result.wall_seconds / 60:.1f} min in all; work dir {result.workdir}",
        "",
    ]
    rows: list[list[object]] = []
    growth = growth_over_last_half(during)
    for what, unit in (("rss_mb", "RSS MB"), ("fds", "open fds"), ("threads", "threads")):
        start = getattr(phases.baseline, what) if phases.baseline else "-"
        end = getattr(phases.end, what) if phases.end else "-"
        values = [getattr(s, what) for s in during]
        peak = max(values) if values else "-"
        last = values[-1] if values else "-"
        half = f"{growth:+.1f} %" if what == "rss_mb" and growth is not None else ""
        if half and not rss_judged(options):
            half += " (not judged: too short to level off)"
        rows.append([unit, _fmt(start), _fmt(peak), _fmt(last), _fmt(end), half])
    load_cpu = cpu_percent(during)
    idle = [s for s in result.samples if s.at > phases.load_end]
    rows.append(["CPU % of a core", "", "", _fmt(load_cpu), _fmt(cpu_percent(idle)), ""])
    lines += _rows(["metric", "baseline", "peak", "end of load", "idle after", "last half"], rows)
    lines.append("")
    classes: dict[tuple[str, str, str], list[ViewerClass]] = {}
    for viewer in load.viewers:
        kind = "well-behaved" if viewer.well_behaved else "misbehaving"
        classes.setdefault((kind, viewer.profile, viewer.transport), []).append(viewer)
    lines += _rows(
        [
            "viewers",
            "profile",
            "transport",
            "sessions",
            "frames",
            "worst gap s",
            "worst join s",
            "never played",
        ],
        [
            [
                kind,
                profile,
                transport,
                sum(v.sessions for v in group),
                sum(v.frames for v in group),
                f"{max(v.worst_gap for v in group):.2f}",
                f"{max(v.worst_join for v in group):.2f}",
                sum(v.failed for v in group),
            ]
            for (kind, profile, transport), group in sorted(classes.items())
        ],
    )
    lines.append("")
    call_rows = []
    for kind, stats in (("well-behaved", load.onvif_good), ("misbehaving", load.onvif_bad)):
        for operation in sorted(set(stats.ok) | set(stats.failed)):
            call_rows.append([kind, operation, stats.ok[operation], stats.failed[operation]])
    lines += _rows(["calls to", "operation", "ok", "failed"], call_rows)
    lines.append("")
    fuzz_rows = [
        [
            name,
            s.cases,
            s.answered,
            s.closed,
            s.silent,
            s.refused,
            f"{s.health_ok}/{s.health_ok + s.health_failed}",
            " ".join(f"{k}:{n}" for k, n in sorted(s.statuses.items())),
        ]
        for name, s in (("RTSP", load.rtsp_fuzz), ("SOAP", load.soap_fuzz))
    ]
    lines += _rows(
        ["fuzzer", "cases", "answered", "closed", "silent", "refused", "healthy", "statuses"],
        fuzz_rows,
    )
    lines.append("")
    faults = ", ".join(f"{mode} {n}" for mode, n in sorted(result.faults_applied.items()))
    set_ = ", ".join(f"{mode} {n}" for mode, n in sorted(load.faults_set.items()))
    lines.append(f"faults set: {set_ or 'none'}")
    lines.append(f"faults applied (pictures, parts, replies, flaps): {faults or 'none'}")
    lines.append(f"harness: its own loop was at most {result.harness_lag:.2f} s late")
    log = result.log
    levels = ", ".join(f"{k} {n}" for k, n in sorted(log.by_level.items()))
    lines.append(f"gateway log: {log.lines} lines ({levels}), {log.tracebacks} tracebacks")
    for message, count in log.top_warnings:
        lines.append(f"  {count:6d}  {message}")
    failures = judge(result)
    lines.append("")
    lines.append("verdict: " + ("PASS" if not failures else "FAIL"))
    lines += [f"  - {failure}" for failure in failures]
    if log.first_traceback:
        lines += ["", "first traceback:", log.first_traceback]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "-" if value is None else str(value)


# -- the load -----------------------------------------------------------------------------------


class Load:
    """Everything that drives the gateway, for one phase: viewers on every stream, ONVIF and
    snapshot clients of every camera, the two fuzzers and the misbehaving cameras' faults."""

    def __init__(
        self,
        gateway: GatewayProcess,
        cameras: Sequence[CameraSpec],
        options: SoakOptions,
        rng: random.Random,
    ) -> None:
        self._gateway = gateway
        self._cameras = cameras
        self._options = options
        self._rng = rng
        self.stats = LoadStats(
            viewers=[
                ViewerClass(camera.name, profile, transport, camera.well_behaved)
                for camera in cameras
                for profile in PROFILES
                for transport in TRANSPORTS
            ]
        )

    def _random(self) -> random.Random:
        return random.Random(self._rng.getrandbits(64))

    async def run(self, stop: asyncio.Event) -> None:
        gateway, options, stats = self._gateway, self._options, self.stats
        connector = aiohttp.TCPConnector(local_addr=(ONVIF_HOST, 0), limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            presences = {
                camera.name: Presence(options.watched, options.unwatched, self._random())
                for camera in self._cameras
            }
            clients: list[Any] = list(presences.values())
            clients += [
                Viewer(
                    viewer,
                    stream_url(gateway.rtsp_port, viewer.camera, viewer.profile),
                    presences[viewer.camera],
                    local_host=VIEWER_HOST,
                    watch=options.watch,
                    pause=options.pause,
                    rng=self._random(),
                )
                for viewer in stats.viewers
            ]
            for camera in self._cameras:
                calls = stats.onvif_good if camera.well_behaved else stats.onvif_bad
                port = gateway.onvif_ports[camera.name]
                clients.append(OnvifClient(session, port, calls, self._random()))
                clients.append(
                    SnapshotClient(session, gateway.web_port, camera.name, calls, self._random())
                )
            fuzzers = (
                []
                if not options.fuzz_rate
                else [
                    fuzz.rtsp_fuzzer(
                        gateway.rtsp_port,
                        self._cameras[0].name,
                        self._random(),
                        options.fuzz_rate,
                        (FUZZ_HOST, HEALTH_HOST),
                    ),
                    fuzz.soap_fuzzer(
                        gateway.onvif_ports[self._cameras[0].name],
                        self._random(),
                        options.fuzz_rate,
                        (FUZZ_HOST, HEALTH_HOST),
                    ),
                ]
            )
            if fuzzers:
                stats.rtsp_fuzz, stats.soap_fuzz = fuzzers[0].stats, fuzzers[1].stats
            clients += fuzzers
            async with asyncio.TaskGroup() as group:
                for client in clients:
                    group.create_task(client.run(stop))
                for camera in self._cameras:
                    if not camera.well_behaved:
                        group.create_task(self._misbehave(camera, stop))

    async def _misbehave(self, camera: CameraSpec, stop: asyncio.Event) -> None:
        """Take the camera through the fault schedule, starting at a different fault for each
        misbehaving camera, until stopped; it behaves again afterwards."""
        options = self._options
        turn = self._rng.randrange(len(FAULT_SCHEDULE))
        try:
            while not stop.is_set():
                query = FAULT_SCHEDULE[turn % len(FAULT_SCHEDULE)]
                turn += 1
                if await self._set_fault(camera, f"{query}&seconds={options.fault_seconds:g}"):
                    self.stats.faults_set[query.split("&")[0].removeprefix("mode=")] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.fault_seconds + options.fault_rest)
        finally:
            # A flapping camera may be off the network right now; it is back within seconds
            # (and its fault runs out by itself in any case).
            for _ in range(FAULT_CLEAR_ATTEMPTS):
                if await self._set_fault(camera, "mode=none"):
                    break
                await asyncio.sleep(0.5)

    async def _set_fault(self, camera: CameraSpec, query: str) -> bool:
        try:
            async with (
                asyncio.timeout(FAULT_CONTROL_TIMEOUT),
                aiohttp.ClientSession() as session,
                session.post(f"{camera.url}/__sim__/fault?{query}") as reply,
            ):
                return reply.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False


async def faults_applied(cameras: Sequence[CameraSpec]) -> Counter[str]:
    total: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for camera in cameras:
            if camera.well_behaved:
                continue
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                async with (
                    asyncio.timeout(FAULT_CONTROL_TIMEOUT),
                    session.get(f"{camera.url}/__sim__/fault") as reply,
                ):
                    total.update((await reply.json())["applied"])
    return total


# -- the run ------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class CamerasProcess:
    def __init__(self, options: SoakOptions) -> None:
        self._options = options
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> list[CameraSpec]:
        options = self._options
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "soak.cameras",
            f"--good={options.good}",
            f"--bad={options.bad}",
            f"--width={options.width}",
            f"--height={options.height}",
            f"--fps={options.fps}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=environment(),
        )
        assert self._process.stdout is not None
        async with asyncio.timeout(CAMERAS_START_TIMEOUT):
            line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError("the cameras process exited at start")
        return [CameraSpec(**spec) for spec in json.loads(line)]

    async def stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class LagMeter:
    """How late this process's own event loop runs: a harness that lags measures gaps that
    are its own, so the table shows it."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self.worst = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            due = loop.time() + self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            self.worst = max(self.worst, loop.time() - due)


async def _run_load(load: Load, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(load.run(stop))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), seconds)
    stop.set()
    await task


async def _settle(sampler: Sampler, baseline: Sample | None, seconds: float) -> Sample | None:
    """Idle until fds and threads are back to the baseline (or, without one, for the whole
    ``seconds``); the last sample."""
    deadline = time.monotonic() + seconds
    latest = sampler.take()
    while time.monotonic() < deadline and latest is not None:
        if (
            baseline is not None
            and latest.fds <= baseline.fds
            and latest.threads <= baseline.threads
        ):
            break
        await asyncio.sleep(1.0)
        latest = sampler.take()
    return latest


async def soak(options: SoakOptions) -> SoakResult:
    began = time.monotonic()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(options.seed)
    cameras_process = CamerasProcess(options)
    cameras = await cameras_process.start()
    gateway = GatewayProcess(
        workdir,
        cameras,
        stream_idle_seconds=options.stream_idle_seconds,
        diagnose_every=options.diagnose_every,
        diagnose_options=options.diagnose_options,
        env=options.env,
    )
    phases = Phases()
    load = Load(gateway, cameras, options, rng)
    sampler: Sampler | None = None
    sampling = asyncio.Event()
    lag = LagMeter()
    lag_task = asyncio.create_task(lag.run(sampling))
    exited_during_run = False
    try:
        progress(f"{len(cameras)} cameras up; starting the gateway in {workdir}")
        await gateway.start()
        sampler = Sampler(gateway.pid)
        sampler_task = asyncio.create_task(sampler.run(sampling))
        progress(f"gateway pid {gateway.pid} ready; warm-up {options.warmup:g} s")
        await _run_load(Load(gateway, cameras, options, rng), options.warmup)
        await asyncio.sleep(options.settle)
        phases.baseline = sampler.take()
        progress(f"baseline {phases.baseline}; load {options.minutes:g} min")
        phases.load_start = time.monotonic()
        await _run_load(load, options.minutes * 60)
        phases.load_end = time.monotonic()
        progress("load stopped; idle")
        phases.end = await _settle(sampler, phases.baseline, options.idle)
        exited_during_run = not gateway.running
    finally:
        sampling.set()
        await lag_task
        if sampler is not None:
            await sampler_task
        await gateway.stop()
        applied = await faults_applied(cameras)
        await cameras_process.stop()
    result = SoakResult(
        options=options,
        cameras=cameras,
        phases=phases,
        samples=sampler.samples if sampler else [],
        load=load.stats,
        log=read_log(gateway.log_text(), cameras),
        faults_applied=applied,
        exit_code=gateway.exit_code,
        exited_during_run=exited_during_run,
        harness_lag=lag.worst,
        workdir=str(workdir),
        wall_seconds=time.monotonic() - began,
    )
    (workdir / "result.json").write_text(json.dumps(as_json(result), indent=1))
    if options.workdir is None and not judge(result):
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def as_json(result: SoakResult) -> dict[str, Any]:
    data: dict[str, Any] = _plain(result)
    data["failures"] = judge(result)
    data["rss_growth_last_half"] = growth_over_last_half(result.load_samples())
    return data


def _plain(value: Any) -> Any:
    """JSON-ready values (``dataclasses.asdict`` would turn a Counter into a count of pairs)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value
