"""What the gateway is measured against, each in processes of its own so its CPU is its own.

- The bare PyAV loop, as the gateway's transcoding was when issue 12 was measured: decode the
  JPEG, convert with swscale's default (bilinear) to yuv420p, encode with the gateway's x264
  settings. It is frozen here on purpose (not imported from ``bridge.media``): it is the
  yardstick a cheaper pipeline is measured against, and must not get cheaper with it. It runs
  *paced*, one transcoder per camera, each fed at the camera's rate with the same jitter, in
  one thread per core (what a real-time gateway must do at best), then *flat out* over the
  same transcoders (the codec limit, which pacing costs more than: caches go cold between
  pictures).
- The ffmpeg CLI as people run it by hand or under go2rtc: one process per camera, JPEGs on
  stdin at the camera's rate, ``-pix_fmt yuv420p`` (without it x264 would encode High 4:2:2,
  which most players cannot play), at ``ultrafast`` and at ``superfast`` (go2rtc's default).
  Each process is fed ``settle`` seconds of pictures before the measured window; its CPU is
  read from ``/proc`` as the window opens and from its rusage when it exits, so the window's
  share is its steady cost. Startup (a process fed one picture: start, codec open, one frame)
  is measured and reported apart.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import multiprocessing
import os
import random
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Colorspace

from benchmarks.pictures import arrivals
from bridge.media.transcode import CLOCK_RATE, EncoderSettings

Json = dict[str, Any]


def ffmpeg_command(preset: str, fps: float) -> list[str]:
    return [
        *("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"),
        *("-f", "mjpeg", "-framerate", f"{fps:g}", "-i", "-"),
        *("-c:v", "libx264", "-preset", preset, "-tune", "zerolatency", "-pix_fmt", "yuv420p"),
        *("-f", "null", "-"),
    ]


@dataclass(frozen=True, slots=True)
class LoopPlan:
    """``profiles``: the encoders per camera (main, or main and sub), fed from one decode."""

    pictures: Sequence[bytes]
    cameras: int
    profiles: tuple[EncoderSettings, ...]
    fps: float
    jitter: float
    warmup: float  # s of paced running before the measured window: rate control, caches
    seconds: float
    flat_seconds: float  # 0: no flat-out window


def bare_loop(plan: LoopPlan) -> Json:
    """Run ``plan`` in a fresh process; its CPU from its own getrusage."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        started = time.monotonic()
        result: Json = pool.submit(_bare_loop_child, plan).result(timeout=120 + 2 * plan.seconds)
        result["process_wall_s"] = round(time.monotonic() - started, 2)
        return result


def cpu_seconds() -> float:
    """CPU time (user and system) of this process, all its threads, so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _open_x264(settings: EncoderSettings) -> VideoCodecContext:
    """The gateway's encoder as of issue 12 (bridge.media.transcode then), kept as it was."""
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, VideoCodecContext)
    gop = settings.gop
    encoder.width, encoder.height = settings.width, settings.height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, CLOCK_RATE)
    encoder.framerate = Fraction(settings.fps).limit_denominator(1001)
    encoder.bit_rate = settings.bitrate
    encoder.gop_size = gop
    encoder.max_b_frames = 0
    encoder.thread_count = 1
    encoder.profile = settings.profile
    encoder.color_range = ColorRange.JPEG
    encoder.colorspace = Colorspace.ITU601
    encoder.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "level": settings.level,
        "forced-idr": "1",
        "maxrate": str(settings.bitrate),
        "bufsize": str(settings.bitrate),
        "x264-params": f"repeat-headers=1:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
    }
    encoder.open()
    return encoder


class _Camera:
    """One camera's decoder and encoders; every profile fed from the one decoded picture."""

    def __init__(self, profiles: Sequence[EncoderSettings], fps: float) -> None:
        self._decoder = av.CodecContext.create("mjpeg", "r")
        self._encoders = [
            (_open_x264(settings), settings, max(1, round(fps / settings.fps)))
            for settings in profiles
        ]
        self._step = round(CLOCK_RATE / fps)
        self._count = 0

    def transcode(self, jpeg: bytes) -> int:
        """One picture through every profile due; returns the main profile's frames (0/1)."""
        (picture,) = self._decoder.decode(av.Packet(jpeg))
        assert isinstance(picture, av.VideoFrame)
        for encoder, settings, every in self._encoders:
            if self._count % every:
                continue
            out = picture.reformat(settings.width, settings.height, format="yuv420p")
            out.pts = self._count * self._step
            out.pict_type = PictureType.NONE
            encoder.encode(out)
        self._count += 1
        return 1


def _bare_loop_child(plan: LoopPlan) -> Json:
    cameras = [_Camera(plan.profiles, plan.fps) for _ in range(plan.cameras)]
    pictures = plan.pictures
    cameras[0].transcode(pictures[0])
    startup = cpu_seconds()  # interpreter, imports, codecs opened, one picture: the process's start
    # As many threads as cores (PyAV lets go of the GIL in the codecs), cameras dealt out among
    # them: a real-time gateway may use the whole machine too.
    workers = min(plan.cameras, os.cpu_count() or 1)
    began = time.monotonic()
    window = (began + plan.warmup, began + plan.warmup + plan.seconds)
    counts = [(0, 0)] * workers  # per worker: pictures due in the window, and of them late
    sent = [0] * plan.cameras

    def paced(worker: int) -> None:
        mine = range(worker, plan.cameras, workers)
        schedules = {
            i: arrivals(
                plan.fps, plan.jitter, began + i / plan.cameras / plan.fps, random.Random(i)
            )
            for i in mine
        }
        due = [(next(schedule), i) for i, schedule in schedules.items()]
        heapq.heapify(due)
        frames = late = 0
        while due[0][0] < window[1]:
            at, index = due[0]
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif at >= window[0] and -wait > 1 / plan.fps:
                late += 1
            cameras[index].transcode(pictures[sent[index] % len(pictures)])
            sent[index] += 1
            frames += at >= window[0]
            heapq.heapreplace(due, (next(schedules[index]), index))
        counts[worker] = (frames, late)

    def flat_out(worker: int, until: float) -> None:
        frames = 0
        while time.monotonic() < until:
            for index in range(worker, plan.cameras, workers):
                frames += cameras[index].transcode(pictures[sent[index] % len(pictures)])
                sent[index] += 1
        counts[worker] = (frames, 0)

    def run(start: float, target: Callable[..., None], *args: float) -> float:
        """CPU of the process from ``start`` on while ``target`` runs in every worker."""
        threads = [threading.Thread(target=target, args=(w, *args)) for w in range(workers)]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, start - time.monotonic()))
        cpu = cpu_seconds()
        for thread in threads:
            thread.join()
        return cpu_seconds() - cpu

    paced_cpu = run(window[0], paced)
    result: Json = {
        "startup_cpu_s": startup,
        "threads": workers,
        "paced": {
            "frames": sum(frames for frames, _ in counts),
            "cpu_s": paced_cpu,
            "seconds": plan.seconds,
            "late_frames": sum(late for _, late in counts),
        },
    }
    if plan.flat_seconds > 0:
        began = time.monotonic()
        cpu = run(began, flat_out, began + plan.flat_seconds)
        result["flat_out"] = {
            "frames": sum(frames for frames, _ in counts),
            "cpu_s": cpu,
            "seconds": time.monotonic() - began,
        }
    return result


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name (field 2) may hold blanks; fields after it are plain numbers.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime and stime: fields 14, 15


def _run_ffmpeg(
    command: list[str], pictures: Sequence[bytes], times: Sequence[float], window: int = 0
) -> tuple[float, float]:
    """Feed ``pictures`` at ``times`` (monotonic) to one process: its CPU seconds just before
    picture number ``window`` was due, and its CPU seconds at exit."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert process.stdin is not None
    before_window = 0.0
    try:
        for index, at in enumerate(times):
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if index == window:
                before_window = _process_cpu(process.pid)
            process.stdin.write(pictures[index % len(pictures)])
            process.stdin.flush()
    finally:
        process.stdin.close()
    # wait4, not wait(): the rusage of exactly this child, whatever else this process runs.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    return before_window, usage.ru_utime + usage.ru_stime


def ffmpeg_cli(
    pictures: Sequence[bytes],
    cameras: int,
    preset: str,
    *,
    fps: float,
    jitter: float,
    settle: float,
    seconds: float,
) -> Json:
    """``cameras`` ffmpeg processes, each fed ``settle`` then ``seconds`` of pictures at
    ``fps`` with jitter; the CPU of the ``seconds`` window is the steady cost."""
    command = ffmpeg_command(preset, fps)
    _, startup = _run_ffmpeg(command, pictures, [time.monotonic()])
    began = time.monotonic() + 0.2  # every process started before the first picture is due
    settling, measured = round(settle * fps), round(seconds * fps)
    plans = []
    for index in range(cameras):
        schedule = arrivals(fps, jitter, began + index / cameras / fps, random.Random(index))
        plans.append([at for at, _ in zip(schedule, range(settling + measured), strict=False)])
    cpu = [(0.0, 0.0)] * cameras

    def one(index: int) -> None:
        cpu[index] = _run_ffmpeg(command, pictures, plans[index], settling)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(cameras)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "command": " ".join(command),
        "processes": cameras,
        "frames": cameras * measured,
        "seconds": seconds,
        "startup_cpu_s": startup,
        "cpu_s": sum(total for _, total in cpu),
        "steady_cpu_s": sum(total - before for before, total in cpu),
    }
