"""Test helpers shared across the suite: external tools, camera URLs, decoding media."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import av
import numpy as np
from numpy.typing import ArrayLike

FFPROBE = shutil.which("ffprobe")
TOOL_TIMEOUT = 20.0  # seconds a tool may run before it is killed


async def run_tool(*args: str) -> bytes:
    """Run a command (ffprobe, ffmpeg) to completion and return its stdout.

    It is killed if it outlasts ``TOOL_TIMEOUT``; a non-zero exit fails with its stderr.
    """
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")
    return out


async def ffprobe(*args: str) -> dict[str, Any]:
    """``ffprobe -v error -of json ARGS``, parsed."""
    assert FFPROBE is not None, "ffprobe is not installed"
    result: dict[str, Any] = json.loads(
        await run_tool(FFPROBE, "-v", "error", "-of", "json", *args)
    )
    return result


async def probe_first_video_frames(url: str, frames: int = 3) -> dict[str, Any]:
    """ffprobe's view of the first ``frames`` frames of a video URL: its one stream's
    codec_name, width, height and nb_read_frames."""
    probe = await ffprobe(
        "-read_intervals",
        f"%+#{frames}",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,width,height,nb_read_frames",
        url,
    )
    (stream,) = probe["streams"]
    return dict(stream)


def with_userinfo(url: str, username: str, password: str) -> str:
    """``url`` with credentials in it, as ffmpeg takes them (it answers Basic and Digest)."""
    return url.replace("http://", f"http://{username}:{password}@", 1)


def decode_jpeg(data: bytes) -> av.VideoFrame:
    """The one picture a JPEG holds."""
    (frame,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(data))
    return frame


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG, decoded."""
    frame = decode_jpeg(data)
    return frame.width, frame.height


def dominant_frequency(
    pcm: ArrayLike, rate: int, *, window: bool = True, min_peak_ratio: float = 0.0
) -> float:
    """The frequency (Hz) of the strongest FFT bin of ``pcm`` sampled at ``rate``.

    ``window`` applies a Hann window first; ``min_peak_ratio`` asserts the peak stands that
    many times above the spectrum's mean (a clear tone, not noise).
    """
    samples = np.asarray(pcm, dtype=np.float64)
    if window:
        samples = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples))
    if min_peak_ratio:
        assert spectrum.max() > min_peak_ratio * spectrum.mean(), "no clear tone"
    return float(np.argmax(spectrum) * rate / len(samples))
