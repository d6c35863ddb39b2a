"""The scenarios of issue 12, measured side by side (A B A B), and their targets.

Each scenario is a number of cameras of one size; its references run interleaved with the
gateway, round after round, because the host's speed drifts by tens of percent over minutes:
a ratio is only meaningful between measurements taken minutes apart at most. Every CPU figure is
CPU seconds per transcoded main-profile frame, read from the process that did the work.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks import pictures as camera_pictures
from benchmarks.gateway import (
    Child,
    EmulatorPlan,
    GatewayPlan,
    emulator_main,
    measure_gateway,
    progress,
    viewer_main,
)
from benchmarks.references import LoopPlan, bare_loop, ffmpeg_cli
from bridge.media.source import PROFILE_LIMITS, Profile, encoder_settings
from bridge.media.transcode import EncoderSettings, codec_library_versions
from bridge.simulator.core import SimOptions

Json = dict[str, Any]

VGA = (640, 480)
HD = (1280, 720)
# The targets: gateway CPU per transcoded frame at most these times the reference's.
MAX_VS_PACED = 0.95
MAX_VS_ULTRAFAST = 0.85
MAX_VS_SUPERFAST = 0.6
MIN_CAMERAS = 30  # VGA@15 at once, no dropped frame ...
MAX_LATENCY_P99_MS = 30.0  # ... and added latency p99 at most this

GATEWAY = "gateway"
PACED = "paced PyAV loop"
FLAT = "PyAV loop flat out"
ULTRAFAST = "ffmpeg CLI ultrafast"
SUPERFAST = "ffmpeg CLI superfast"
MAIN_ONLY = "gateway, main only"
MAIN_SUB = "gateway, main + sub"
BARE_MAIN_SUB = "paced PyAV loop, main + sub from one decode"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    size: tuple[int, int]
    cameras: int
    # Measured in this order every round; FLAT comes from the PACED run's process.
    references: tuple[str, ...]


SCENARIOS = (
    Scenario("VGA x1", VGA, 1, (GATEWAY, PACED, FLAT, ULTRAFAST, SUPERFAST)),
    Scenario("VGA x10", VGA, 10, (GATEWAY, PACED, FLAT, ULTRAFAST, SUPERFAST)),
    Scenario("VGA x20", VGA, 20, (GATEWAY, PACED, FLAT, ULTRAFAST, SUPERFAST)),
    Scenario("720p x4", HD, 4, (GATEWAY, PACED, FLAT, ULTRAFAST, SUPERFAST)),
    Scenario("VGA x30", VGA, MIN_CAMERAS, (GATEWAY,)),
    Scenario("VGA x10, main + sub", VGA, 10, (MAIN_SUB, MAIN_ONLY, BARE_MAIN_SUB, PACED)),
)


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float = 5.0  # each measured window
    rounds: int = 2
    fps: float = 15.0
    jitter: float = 0.2  # +- this share of the frame interval between arrivals
    settle: float = 1.0
    max_cameras: int | None = None  # caps every scenario (a smoke test, not a measurement)
    cache: Path | None = None


@dataclass
class Measured:
    """One scenario's runs per reference, in the order they ran."""

    scenario: Scenario
    cameras: int
    runs: dict[str, list[Json]] = field(default_factory=dict)

    def ms_per_frame(self, reference: str) -> list[float]:
        return [
            1000 * run["cpu_s"] / run["frames"]
            for run in self.runs.get(reference, [])
            if run["frames"]
        ]

    def mean_ms(self, reference: str) -> float | None:
        values = self.ms_per_frame(reference)
        return statistics.mean(values) if values else None

    def ratios(self, reference: str) -> list[float]:
        """Gateway over reference, round by round: each pair measured minutes apart at most."""
        pairs = zip(self.ms_per_frame(GATEWAY), self.ms_per_frame(reference), strict=False)
        return [gateway / other for gateway, other in pairs if other]


class Bench:
    """The children and pictures a run shares across scenarios."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.viewers = Child(viewer_main)
        self._pictures: dict[tuple[int, int], list[bytes]] = {}
        self._emulators: dict[tuple[int, int], tuple[Child, list[str]]] = {}

    def pictures(self, size: tuple[int, int]) -> list[bytes]:
        if size not in self._pictures:
            progress(f"{size[0]}x{size[1]}: camera-like pictures (rendered once, then cached)")
            self._pictures[size] = camera_pictures.load(*size, self.options.cache)
        return self._pictures[size]

    async def emulator(self, size: tuple[int, int], count: int) -> tuple[Child, list[str]]:
        if size not in self._emulators:
            sim = SimOptions("admin", "admin", size[0], size[1], self.options.fps)
            plan = EmulatorPlan(count, sim, self.pictures(size), self.options.jitter)
            child = Child(emulator_main, plan)
            self._emulators[size] = (child, await child.reply())
        return self._emulators[size]

    async def close(self) -> None:
        for child, _ in self._emulators.values():
            await child.close()
        await self.viewers.close()

    def settings(self, size: tuple[int, int], profile: Profile) -> EncoderSettings:
        return encoder_settings(size, self.options.fps, PROFILE_LIMITS[profile])

    async def measure(self, reference: str, scenario: Scenario, cameras: int) -> Json:
        options, size = self.options, scenario.size
        main = self.settings(size, Profile.MAIN)
        sub = self.settings(size, Profile.SUB)
        if reference in (GATEWAY, MAIN_ONLY, MAIN_SUB):
            watched = [(Profile.MAIN, main.fps)]
            if reference == MAIN_SUB:
                watched.append((Profile.SUB, sub.fps))
            emulator, urls = await self.emulator(size, self._most_cameras(size))
            plan = GatewayPlan(cameras, tuple(watched), main.gop, options.settle, options.seconds)
            return await measure_gateway(emulator, urls, self.viewers, plan)
        pictures = self.pictures(size)
        if reference in (PACED, BARE_MAIN_SUB):
            profiles = (main, sub) if reference == BARE_MAIN_SUB else (main,)
            flat = options.seconds / 2 if FLAT in scenario.references else 0.0
            loop = LoopPlan(
                pictures,
                cameras,
                profiles,
                options.fps,
                options.jitter,
                options.settle,
                options.seconds,
                flat,
            )
            result = await asyncio.to_thread(bare_loop, loop)
            paced = result["paced"]
            return {
                "startup_cpu_s": result["startup_cpu_s"],
                **paced,
                "flat_out": result.get("flat_out"),
            }
        preset = "ultrafast" if reference == ULTRAFAST else "superfast"
        run = await asyncio.to_thread(
            functools.partial(
                ffmpeg_cli,
                pictures,
                cameras,
                preset,
                fps=options.fps,
                jitter=options.jitter,
                settle=options.settle,
                seconds=options.seconds,
            )
        )
        return {**run, "cpu_s": run["steady_cpu_s"], "cpu_s_with_startup": run["cpu_s"]}

    def _most_cameras(self, size: tuple[int, int]) -> int:
        return max(self.cameras_for(s) for s in SCENARIOS if s.size == size)

    def cameras_for(self, scenario: Scenario) -> int:
        cap = self.options.max_cameras
        return scenario.cameras if cap is None else min(cap, scenario.cameras)


async def run_scenarios(options: Options) -> list[Measured]:
    bench = Bench(options)
    results: list[Measured] = []
    # Scenarios a camera cap makes identical are measured once.
    done: dict[tuple[Any, ...], Measured] = {}
    try:
        await bench.viewers.reply()
        for scenario in SCENARIOS:
            cameras = bench.cameras_for(scenario)
            key = (scenario.size, cameras, scenario.references)
            if key in done:
                results.append(replace(done[key], scenario=scenario))
                continue
            measured = Measured(scenario, cameras)
            for round_ in range(options.rounds):
                for reference in scenario.references:
                    if reference == FLAT:
                        continue
                    progress(f"{scenario.name}: {reference}, round {round_ + 1}/{options.rounds}")
                    run = await bench.measure(reference, scenario, cameras)
                    measured.runs.setdefault(reference, []).append(run)
                    if run.get("flat_out"):
                        measured.runs.setdefault(FLAT, []).append(run["flat_out"])
            done[key] = measured
            results.append(measured)
    finally:
        await bench.close()
    return results


# -- targets and the table ----------------------------------------------------------------------


def _verdict(passed: bool | None) -> str:
    return "no data" if passed is None else "pass" if passed else "FAIL"


def targets(results: Sequence[Measured]) -> list[tuple[str, str, str, str]]:
    """(target, scenario, result, verdict) per target of the issue."""
    rows: list[tuple[str, str, str, str]] = []
    for measured in results:
        name = measured.scenario.name
        if ULTRAFAST in measured.scenario.references:  # the CPU scenarios
            for reference, limit in (
                (PACED, MAX_VS_PACED),
                (ULTRAFAST, MAX_VS_ULTRAFAST),
                (SUPERFAST, MAX_VS_SUPERFAST),
            ):
                # Judged on the mean of the rounds' ratios; each round's is shown beside it.
                ratios = measured.ratios(reference)
                mean = statistics.mean(ratios) if ratios else None
                shown = (
                    "-"
                    if mean is None
                    else f"{mean:.2f}x ({' / '.join(f'{r:.2f}' for r in ratios)})"
                )
                rows.append(
                    (
                        f"CPU per frame <= {limit}x the {reference}",
                        name,
                        shown,
                        _verdict(None if mean is None else mean <= limit),
                    )
                )
        if measured.scenario.cameras == MIN_CAMERAS:
            runs = measured.runs.get(GATEWAY, [])
            dropped = sum(run["dropped"] for run in runs) if runs else None
            p99 = max((run["latency_p99_ms"] or 0.0 for run in runs), default=None)
            cameras = measured.cameras
            rows.append(
                (
                    f">= {MIN_CAMERAS} VGA@15 cameras, no dropped frame",
                    name,
                    f"{cameras} cameras, {dropped} dropped",
                    _verdict(None if dropped is None else dropped == 0 and cameras >= MIN_CAMERAS),
                )
            )
            rows.append(
                (
                    f"... added latency p99 <= {MAX_LATENCY_P99_MS:g} ms",
                    name,
                    "-" if p99 is None else f"{p99:.1f} ms",
                    _verdict(None if p99 is None else p99 <= MAX_LATENCY_P99_MS),
                )
            )
        if MAIN_SUB in measured.scenario.references:
            # Decoding once, sub adds its downscale and encode; decoding again adds a decode.
            shown = "; ".join(
                f"{label}: sub adds {both - main:.2f} ms per picture to {main:.2f}"
                for label, both, main in (
                    ("gateway", measured.mean_ms(MAIN_SUB), measured.mean_ms(MAIN_ONLY)),
                    (
                        "bare loop, one decode",
                        measured.mean_ms(BARE_MAIN_SUB),
                        measured.mean_ms(PACED),
                    ),
                )
                if both is not None and main is not None
            )
            rows.append(
                ("main + sub watched: each JPEG decoded once", name, shown or "-", "reported")
            )
    return rows


def _cell(values: Sequence[float], digits: int = 2) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def measurement_rows(results: Sequence[Measured]) -> list[list[str]]:
    rows = []
    for measured in results:
        for reference, runs in measured.runs.items():
            fps = [run["frames"] / run["seconds"] for run in runs]
            startup = [1000 * run["startup_cpu_s"] for run in runs if "startup_cpu_s" in run]
            gateway = reference in (GATEWAY, MAIN_ONLY, MAIN_SUB)
            rows.append(
                [
                    measured.scenario.name,
                    f"{measured.cameras}",
                    reference,
                    _cell(measured.ms_per_frame(reference)),
                    _cell(fps, 1),
                    _cell(startup, 0),
                    str(sum(run["dropped"] for run in runs))
                    if gateway
                    else f"{sum(run['late_frames'] for run in runs)} late"
                    if runs[0].get("late_frames") is not None
                    else "",
                    f"{sum(run['idr'] for run in runs)} "
                    f"({sum(run['idr_expected'] for run in runs):.0f})"
                    if gateway
                    else "",
                    _cell([run["latency_p99_ms"] for run in runs if run["latency_p99_ms"]], 1)
                    if gateway
                    else "",
                ]
            )
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> Json:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
        )
    pyav, pyav_ffmpeg = codec_library_versions()
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "pyav": pyav,
        "pyav_ffmpeg": pyav_ffmpeg,
        "ffmpeg_cli": ffmpeg.stdout.split("\n", 1)[0].split(" Copyright")[0],
        "commit": commit.stdout.strip() or "unknown",
    }


def report(results: Sequence[Measured], options: Options, conditions: Json) -> str:
    info = machine()
    return "\n".join(
        [
            f"# bridge benchmark, {conditions['date']}, commit {info['commit']}",
            "",
            f"{info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}, PyAV "
            f"{info['pyav']} (FFmpeg {info['pyav_ffmpeg']}), {info['ffmpeg_cli']}; load average "
            f"{conditions['load_start']:.2f} at the start, {conditions['load_end']:.2f} at the "
            f"end; {options.rounds} round(s) of {options.seconds:g} s windows, "
            f"{options.fps:g} fps, arrival jitter +-{options.jitter:.0%}, 4:2:2 camera-like "
            f"JPEGs; took {conditions['duration_s']:.0f} s.",
            "",
            _table(
                [
                    "scenario",
                    "cameras",
                    "measured",
                    "CPU ms per frame, mean (range)",
                    "frames/s",
                    "startup CPU ms",
                    "dropped (loop: late)",
                    "IDRs (by the GOP)",
                    "latency p99 ms",
                ],
                measurement_rows(results),
            ),
            "",
            _table(["target", "scenario", "result (per round)", "verdict"], targets(results)),
        ]
    )


def run(options: Options) -> str:
    started, load_start = time.monotonic(), os.getloadavg()[0]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # Per-camera INFO lines would cost the gateway CPU in the measured windows.
    logging.getLogger("bridge").setLevel(max(logging.WARNING, logging.getLogger().level))
    results = asyncio.run(run_scenarios(options))
    conditions = {
        "date": date,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "duration_s": time.monotonic() - started,
    }
    return report(results, options, conditions)
