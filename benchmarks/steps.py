"""Where a VGA picture's transcoding time goes, step by step, and what an emulated camera's
picture costs: the timings the test suite used to print (``python -m benchmarks.steps``).

It asserts nothing: run it on a quiet machine, under the benchmark lock, and read the numbers
against each other (a step's share, lowres's speed-up), not against a fixed target.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable, Sequence

import av
import numpy as np
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext

from bridge.media.emulated import JpegEncoder
from bridge.media.transcode import CLOCK_RATE, EncoderSettings, VideoTranscoder
from bridge.simulator.media import TestPattern

WIDTH, HEIGHT, FPS = 640, 480, 15.0
VGA = EncoderSettings(WIDTH, HEIGHT, FPS, 1_000_000)


def camera_pictures(count: int) -> list[bytes]:
    """4:2:2 JPEGs like a camera's: a gradient that moves, with sensor noise."""
    encoder = JpegEncoder(WIDTH, HEIGHT, qscale=4, pix_fmt="yuvj422p")
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    pictures = []
    for n in range(count):
        luma = ((x + y) // 4 + 8 * n) % 256 + rng.integers(-8, 9, (HEIGHT, WIDTH))
        chroma = [((x[:, ::2] // 3 + 5 * n + shift) % 256) for shift in (0, 80)]
        planes = [np.clip(p, 0, 255).astype(np.uint8) for p in (luma, *chroma)]
        pictures.append(encoder.encode(planes))
    return pictures


def per_call(step: Callable[[int], object], count: int) -> float:
    """Seconds per call of ``step(n)`` for n in range(count)."""
    started = time.perf_counter()
    for n in range(count):
        step(n)
    return (time.perf_counter() - started) / count


def transcoding_steps(pictures: Sequence[bytes]) -> dict[str, float]:
    """Milliseconds per picture: the whole transcode, and its decode and conversion steps."""
    count = len(pictures)
    transcoder = VideoTranscoder(VGA)
    step = round(CLOCK_RATE / FPS)
    whole = per_call(lambda n: transcoder.encode(pictures[n], n * step), count)
    decoder = CodecContext.create("mjpeg", "r")
    decoded = [decoder.decode(av.Packet(p))[0] for p in pictures]
    decoder = CodecContext.create("mjpeg", "r")
    decode = per_call(lambda n: decoder.decode(av.Packet(pictures[n])), count)
    convert = per_call(
        lambda n: decoded[n].reformat(WIDTH, HEIGHT, format="yuv420p", threads=1), count
    )
    return {
        "transcode": whole * 1e3,
        "decode": decode * 1e3,
        "convert to 4:2:0": convert * 1e3,
        "encode and the rest": (whole - decode - convert) * 1e3,
    }


def _mjpeg_decoder() -> VideoCodecContext:
    decoder = CodecContext.create("mjpeg", "r")
    assert isinstance(decoder, VideoCodecContext)
    return decoder


def lowres_speedup(pictures: Sequence[bytes], rounds: int = 2) -> float:
    """How much faster the sub profile's half-size decode (lowres=1) is, A/B interleaved."""
    decoders = {"full": _mjpeg_decoder(), "half": _mjpeg_decoder()}
    decoders["half"].options = {"lowres": "1"}
    spent = dict.fromkeys(decoders, 0.0)

    def decoding(decoder: VideoCodecContext) -> Callable[[int], object]:
        return lambda n: decoder.decode(av.Packet(pictures[n]))

    for _ in range(rounds):
        for name, decoder in decoders.items():
            spent[name] += per_call(decoding(decoder), len(pictures))
    return spent["full"] / spent["half"]


def emulator_render(count: int) -> dict[str, float]:
    """Milliseconds per VGA picture an emulated camera draws and encodes, still and panning."""
    pattern = TestPattern(WIDTH, HEIGHT)
    noon = datetime.datetime(2010, 1, 1, 12)
    still = per_call(lambda n: pattern.render(n, noon), count)
    moving = per_call(
        lambda n: pattern.render(n, noon, pan=n / count, tilt=-n / count, zoom=n / count), count
    )
    return {"emulator, still": still * 1e3, "emulator, panning": moving * 1e3}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__)
    parser.add_argument("--pictures", type=int, default=200, help="pictures per measurement")
    count = parser.parse_args(argv).pictures
    pictures = (camera_pictures(min(count, 30)) * (count // 30 + 1))[:count]
    print(f"VGA 4:2:2 camera pictures, {count} per step, ms per picture:")
    for name, ms in (*transcoding_steps(pictures).items(), *emulator_render(count).items()):
        print(f"  {name:<22} {ms:7.2f}")
    print(f"  sub profile decode with lowres=1: {lowres_speedup(pictures[:100]):.2f}x faster")


if __name__ == "__main__":
    main()
