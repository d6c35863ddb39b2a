"""Camera-like pictures for the benchmark, and the arrival times of a real camera.

IP cameras send 4:2:2 JPEGs (yuvj422p: chroma halved across, full height) of a textured,
noisy scene, and their pictures reach the gateway with network and sensor-timing jitter. The
emulators' test pattern is mostly flat (cheap to decode and to encode) and the codec work per
picture depends on exactly that, so the benchmark renders a scene of its own: a sky gradient,
buildings with hard edges and windows, textured ground, per-picture sensor noise and a car
crossing the picture, coded by libjpeg with a camera's layout (luma 2x1, chroma 1x1 samples)
at the quality that gives a camera's picture size (VGA about 40 KB, 720p about 90 KB). They
are rendered once and cached on disk, as rendering costs more than transcoding them.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bridge.simulator.jpeg import encode_jpeg

# Bump when the scene changes, so stale caches are not measured as the new pictures.
GENERATOR_VERSION = 2
PICTURES = 60  # 4 s at 15 fps: the car crosses once; cameras loop over them
SEED = 12
NOISE = 2.5  # sensor noise, sigma in 8-bit luma steps: a camera's in daylight
# Bytes per picture a camera of that size typically sends; other sizes interpolate per pixel.
TARGET_BYTES = {(640, 480): 40_000, (1280, 720): 90_000}
_QUALITY_RANGE = (30, 95)  # libjpeg quality searched; camera firmware commonly uses 50-90

_Plane = NDArray[np.float32]
_Bytes = NDArray[np.uint8]


def cache_dir() -> Path:
    """``$BRIDGE_BENCH_CACHE``, else ``~/.cache/bridge-bench``."""
    configured = os.environ.get("BRIDGE_BENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "bridge-bench"


def target_bytes(width: int, height: int) -> int:
    """A camera's typical JPEG size: the listed sizes, else bytes per pixel between them."""
    if (width, height) in TARGET_BYTES:
        return TARGET_BYTES[(width, height)]
    (small, small_bytes), (large, large_bytes) = sorted(TARGET_BYTES.items())
    pixels = width * height
    low, high = small[0] * small[1], large[0] * large[1]
    per_pixel = np.interp(pixels, [low, high], [small_bytes / low, large_bytes / high])
    return round(float(per_pixel) * pixels)


def arrivals(fps: float, jitter: float, start: float, rng: random.Random) -> Iterator[float]:
    """Arrival times of a camera's pictures: taken every 1/fps, each delayed by up to
    ``jitter`` of an interval (uniformly), so an inter-arrival gap is 1/fps * (1 +- jitter) and
    the mean rate stays exactly fps (no drift, no reordering for jitter < 1)."""
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), not {jitter}")
    interval = 1.0 / fps
    index = 0
    while True:
        yield start + interval * (index + jitter * rng.random())
        index += 1


def load(width: int, height: int, directory: Path | None = None) -> list[bytes]:
    """The cached pictures of this size, rendered first if the cache has none."""
    folder = (directory or cache_dir()) / f"v{GENERATOR_VERSION}-{width}x{height}-{PICTURES}"
    files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if len(files) != PICTURES:
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Rendered next to the cache and renamed into place: two benchmarks starting together
        # never read a half-written set.
        with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
            for index, picture in enumerate(render(width, height)):
                (Path(scratch) / f"{index:03d}.jpg").write_bytes(picture)
            if not folder.is_dir():
                os.rename(scratch, folder)
                os.mkdir(scratch)  # for TemporaryDirectory's cleanup
        files = sorted(folder.glob("*.jpg"))
    return [path.read_bytes() for path in files]


def render(width: int, height: int) -> list[bytes]:
    """``PICTURES`` consecutive camera pictures, at the libjpeg quality that gives the target
    size (as a camera's compression setting does)."""
    if width % 2 or height % 2 or width < 64 or height < 48:
        raise ValueError(f"picture size must be even and at least 64x48, not {width}x{height}")
    scene = _Scene(width, height)
    target = target_bytes(width, height)
    sample = [scene.planes(n * PICTURES // 3) for n in range(3)]

    def size(quality: int) -> float:
        return float(np.mean([len(encode_jpeg(*planes, quality)) for planes in sample]))

    # Size grows with quality: bisect to the two neighbours around the target, take the closer.
    low, high = _QUALITY_RANGE
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) > target:
            high = middle
        else:
            low = middle
    quality = min((low, high), key=lambda q: abs(size(q) - target))
    return [encode_jpeg(*scene.planes(n), quality) for n in range(PICTURES)]


def _upsample(small: _Plane, height: int, width: int) -> _Plane:
    """Bilinear enlargement: smooth texture, not blocks."""
    rows = np.linspace(0, small.shape[0] - 1, height, dtype=np.float32)
    cols = np.linspace(0, small.shape[1] - 1, width, dtype=np.float32)
    r0, c0 = rows.astype(np.intp), cols.astype(np.intp)
    r1 = np.minimum(r0 + 1, small.shape[0] - 1)
    c1 = np.minimum(c0 + 1, small.shape[1] - 1)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = small[r0][:, c0] * (1 - fc) + small[r0][:, c1] * fc
    bottom = small[r1][:, c0] * (1 - fc) + small[r1][:, c1] * fc
    result: _Plane = top * (1 - fr) + bottom * fr
    return result


def _texture(rng: np.random.Generator, height: int, width: int) -> _Plane:
    """Fractal noise with unit spread: coarse blotches down to pixel-fine grain."""
    total = np.zeros((height, width), np.float32)
    amplitude, cell = 1.0, max(height, width) // 8
    while cell >= 1:
        small = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
        total += amplitude * _upsample(small, height, width)
        amplitude, cell = amplitude * 0.7, cell // 2
    result: _Plane = total / total.std()
    return result


class _Scene:
    """A street seen by a fixed camera: still background, moving car, fresh noise per picture."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        rng = np.random.default_rng(SEED)
        rows = np.arange(height, dtype=np.float32)[:, None]
        horizon = int(height * 0.45)
        sky = rows < horizon
        texture = _texture(rng, height, width)
        luma = np.where(sky, 190 - 70 * rows / horizon, 80 + 50 * (rows - horizon) / height)
        luma = luma + np.where(sky, 3.0, 24.0) * texture
        cb = np.where(sky, 152.0, 112.0) + 6 * texture
        cr = np.where(sky, 116.0, 124.0) + 4 * texture
        luma, cb, cr = (
            np.broadcast_to(p, (height, width)).astype(np.float32) for p in (luma, cb, cr)
        )
        for _ in range(7):
            left = int(rng.uniform(0, width * 0.9))
            right = min(width, left + int(rng.uniform(width * 0.06, width * 0.2)))
            top = int(rng.uniform(height * 0.1, horizon * 0.85))
            block = (slice(top, horizon + height // 20), slice(left, right))
            wall = rng.uniform(60, 210)
            luma[block] = wall + 6 * texture[block]
            cb[block], cr[block] = rng.uniform(105, 145), rng.uniform(110, 155)
            pane = max(3, (right - left) // 9)
            for y in range(top + pane, horizon - pane, 3 * pane):
                for x in range(left + pane, right - pane, 3 * pane):
                    luma[y : y + pane, x : x + pane] = wall * 0.35
        self._planes = (luma, cb, cr)
        self._noise = np.random.default_rng(SEED + 1)

    def planes(self, index: int) -> tuple[_Bytes, _Bytes, _Bytes]:
        """Picture ``index``: Y, and Cb and Cr halved across (4:2:2)."""
        luma, cb, cr = (plane.copy() for plane in self._planes)
        width, height = self.width, self.height
        car_w, car_h = width // 6, height // 9
        x = round(index / PICTURES * (width + car_w)) - car_w
        y = int(height * 0.68)
        span = slice(max(0, x), max(0, min(width, x + car_w)))
        luma[y : y + car_h, span] = 45
        luma[y + car_h // 5 : y + car_h // 2, span] = 205  # windows: a hard edge that moves
        cb[y : y + car_h, span], cr[y : y + car_h, span] = 100, 190
        for values, sigma in ((luma, NOISE), (cb, NOISE / 2), (cr, NOISE / 2)):
            grain = self._noise.standard_normal(values.shape, dtype=np.float32)
            np.add(values, sigma * grain, out=values)
        # 4:2:2: each chroma pair across averaged, every row kept.
        return (
            _to_bytes(luma),
            _to_bytes((cb[:, 0::2] + cb[:, 1::2]) / 2),
            _to_bytes((cr[:, 0::2] + cr[:, 1::2]) / 2),
        )


def _to_bytes(plane: NDArray[np.floating]) -> _Bytes:
    result: _Bytes = np.clip(plane, 0, 255).astype(np.uint8)
    return result
