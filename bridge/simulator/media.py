"""Synthetic media for the emulated cameras: a JPEG test pattern, a tone in legacy codecs, ASF;
and the recorder of what their speakers are sent.

The picture is made to be checked end to end: the background follows the PTZ position, a box
moves every frame, and the frame number and camera clock are burnt in as big seven-segment digits,
so whoever looks at a decoded frame can tell which frame, and what time, it is.

Nothing here is thread-safe: each object reuses its buffers and codec contexts across calls. One
object may move between worker threads (``asyncio.to_thread``) but must not be used by two at once.
The PyAV encoding is done by :mod:`bridge.media.emulated`, the decoding of talk by
:mod:`bridge.media.audio` (PyAV lives only in ``bridge/media``).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import datetime
import functools
import weakref
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from bridge.cameras.base import AudioCodec, AudioFormat
from bridge.errors import ProtocolError
from bridge.media.audio import PcmDecoder
from bridge.media.emulated import (
    IMA_BLOCK_ALIGN,
    IMA_BLOCK_SAMPLES,
    AsfMuxer,
    AudioEncoder,
)
from bridge.simulator.jpeg import Chroma, chroma_rows, encode_jpeg

__all__ = ["AsfMuxer", "AudioCodec", "Chroma", "TalkRecorder", "TestPattern", "ToneEncoder"]

_MIN_WIDTH = 64
_MIN_HEIGHT = 48
_MAX_MAGNIFICATION = 4.0  # zoom 1.0 shows a quarter of the width of zoom 0.0

# Full-range BT.601 YCbCr, as JPEG uses it.
_NEUTRAL_CHROMA = 128
_OSD_INK = 255
_OSD_PAPER = 0
_BOX_YUV = (226, 1, 149)  # yellow: stands out against every background hue

_COUNTER_DIGITS = 6

# Segments a (top) clockwise to f (upper left), then g (middle), as on a 7-segment display.
_SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}

_Plane = NDArray[np.uint8]


def _seven_segment_glyphs(height: int) -> dict[str, NDArray[np.bool_]]:
    """Masks for the digits and ':' at `height` pixels, drawn once and stamped every frame."""
    stroke = max(2, height // 7)
    width = max(3 * stroke, round(height * 0.6))
    upper = slice(0, (height + stroke) // 2)
    lower = slice((height - stroke) // 2, height)
    areas = {
        "a": (slice(0, stroke), slice(0, width)),
        "b": (upper, slice(width - stroke, width)),
        "c": (lower, slice(width - stroke, width)),
        "d": (slice(height - stroke, height), slice(0, width)),
        "e": (lower, slice(0, stroke)),
        "f": (upper, slice(0, stroke)),
        "g": (slice((height - stroke) // 2, (height + stroke) // 2), slice(0, width)),
    }
    glyphs: dict[str, NDArray[np.bool_]] = {}
    for char, segments in _SEGMENTS.items():
        glyph = np.zeros((height, width), dtype=np.bool_)
        for segment in segments:
            glyph[areas[segment]] = True
        glyphs[char] = glyph
    colon = np.zeros((height, 2 * stroke), dtype=np.bool_)
    for centre in (height // 3, 2 * height // 3):
        colon[centre - stroke : centre + stroke] = True
    glyphs[":"] = colon
    return glyphs


def _world(width: int, height: int, rows_per_chroma: int) -> tuple[_Plane, _Plane, _Plane]:
    """The scene the camera looks at: twice the frame each way, so pan/tilt +-1 reach its edges.

    Luma has a grid (shows movement) and rings around the home position (shows where 0,0 is);
    chroma is a hue ramp, so the colour alone tells roughly where the camera points. Chroma is
    subsampled as the frames cut from it: half across, and down by ``rows_per_chroma``.
    """
    row_ramp = (60 + 30 * np.arange(2 * height) / height).astype(np.uint8)
    col_ramp = (30 * np.arange(2 * width) / width).astype(np.uint8)
    luma = row_ramp[:, None] + col_ramp[None, :]
    # Rings only need computing in the square that holds them, not over the whole world.
    reach = height // 2
    offsets = np.arange(-reach, reach, dtype=np.float32)
    radius = np.hypot(offsets[:, None], offsets[None, :])
    rings = ((radius // max(4, height // 16)) % 2 == 0) & (radius < reach)
    luma[height - reach : height + reach, width - reach : width + reach][rings] += 60
    cell, line = max(8, height // 4), max(1, height // 120)
    for offset in range(line):
        luma[offset::cell] = 16
        luma[:, offset::cell] = 16

    rows = 2 * height // rows_per_chroma
    cb = (32 + 192 * np.arange(width) / width).astype(np.uint8)
    cr = (224 - 192 * np.arange(rows) / rows).astype(np.uint8)
    return (
        luma,
        np.broadcast_to(cb[None, :], (rows, width)),
        np.broadcast_to(cr[:, None], (rows, width)),
    )


def _sample_indices(
    start: float, count: int, step: int, magnification: float, *, limit: int, reverse: bool
) -> NDArray[np.intp]:
    """World indices (in a plane subsampled by `step`) under each of `count` output pixels."""
    centres = start + (np.arange(count) * step + step / 2) / magnification
    indices = np.clip((centres / step).astype(np.intp), 0, limit - 1)
    return indices[::-1] if reverse else indices


def _text_width(glyphs: dict[str, NDArray[np.bool_]], text: str, gap: int) -> int:
    return sum(int(glyphs[char].shape[1]) for char in text) + gap * (len(text) - 1)


def _bounce(distance: int, span: int) -> int:
    """Triangle wave 0..span..0, kept even so the box covers whole chroma samples."""
    phase = distance % (2 * span)
    return min(phase, 2 * span - phase) & ~1


class TestPattern:
    """Renders the camera picture as baseline JPEGs, like an IP camera's snapshot CGI: 4:2:2
    (yuvj422p) as cameras send them, or 4:2:0 with ``chroma="4:2:0"``.

    pan/tilt are in [-1, 1] (positive tilt looks up), zoom in [0, 1]. mirror/flip turn the scene
    over as a sensor setting would; the text overlay stays readable, as a camera's OSD does.
    The frame counter shows `frame_number` modulo one million. `quality` is on libjpeg's 1..100
    scale.

    Not thread-safe: the frame buffer and the cached background are reused.
    """

    def __init__(
        self, width: int, height: int, quality: int = 80, chroma: Chroma = "4:2:2"
    ) -> None:
        if width < _MIN_WIDTH or height < _MIN_HEIGHT or width % 2 or height % 2:
            raise ValueError(
                f"picture size must be even and at least {_MIN_WIDTH}x{_MIN_HEIGHT}, "
                f"not {width}x{height}"
            )
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, not {quality}")
        self._width = width
        self._height = height
        self._chroma_rows = chroma_rows(chroma)
        self._quality = quality
        self._world = _world(width, height, self._chroma_rows)
        self._canvas = np.empty(
            width * height + width * height // self._chroma_rows, dtype=np.uint8
        )
        self._canvas_planes = self._planes(self._canvas)
        self._view: tuple[float, float, float, bool, bool] | None = None
        self._background = self._canvas.copy()

        self._box_size = max(8, height // 6) & ~1
        self._box_speed = (max(2, width // 80), max(2, height // 90))

        glyph_height = max(9, height // 8)
        while True:
            glyphs = _seven_segment_glyphs(glyph_height)
            stroke = glyphs[":"].shape[1] // 2
            margin = 2 * stroke
            clock_width = _text_width(glyphs, "00:00:00", stroke)
            if clock_width + 2 * margin <= width or glyph_height == 9:
                break
            glyph_height -= 1
        self._glyphs = glyphs
        # The frame counter, which changes every frame, is half the clock's height, so the
        # calm scene changes as little as a camera whose OSD shows a clock.
        self._counter_glyphs = _seven_segment_glyphs(max(9, glyph_height // 2))
        self._clock_at = (margin, margin)
        counter_height = self._counter_glyphs["0"].shape[0]
        self._counter_at = (height - margin - counter_height, margin)

    # Positional PTZ arguments kept: asyncio.to_thread callers pass the state that way.
    def render(  # noqa: PLR0917
        self,
        frame_number: int,
        wallclock: datetime.datetime,
        pan: float = 0.0,
        tilt: float = 0.0,
        zoom: float = 0.0,
        mirror: bool = False,
        flip: bool = False,
        box_travel: int | None = None,
    ) -> bytes:
        """One JPEG (FFD8 ... FFD9) of exactly width x height.

        The box stands where ``box_travel`` frames of movement took it (by default
        ``frame_number``: it moves every frame); a caller that keeps the count still keeps the
        box still, a calm scene for a motion detector.
        """
        if frame_number < 0:
            raise ValueError(f"frame_number must not be negative, not {frame_number}")
        if not (-1.0 <= pan <= 1.0 and -1.0 <= tilt <= 1.0 and 0.0 <= zoom <= 1.0):
            raise ValueError(f"PTZ position out of range: pan={pan} tilt={tilt} zoom={zoom}")
        view = (pan, tilt, zoom, mirror, flip)
        if view != self._view:
            self._background = self._render_background(pan, tilt, zoom, mirror, flip)
            self._view = view
        np.copyto(self._canvas, self._background)
        self._draw_box(frame_number if box_travel is None else box_travel, mirror, flip)
        self._draw_text(wallclock.strftime("%H:%M:%S"), self._clock_at, self._glyphs)
        self._draw_text(
            f"{frame_number % 10**_COUNTER_DIGITS:0{_COUNTER_DIGITS}d}",
            self._counter_at,
            self._counter_glyphs,
        )

        return encode_jpeg(*self._canvas_planes, self._quality)

    def _planes(self, buffer: _Plane) -> tuple[_Plane, _Plane, _Plane]:
        """Y, Cb and Cr views into a contiguous planar buffer of the picture's subsampling."""
        width, height = self._width, self._height
        chroma_shape = (height // self._chroma_rows, width // 2)
        luma_size, chroma_size = width * height, chroma_shape[0] * chroma_shape[1]
        return (
            buffer[:luma_size].reshape(height, width),
            buffer[luma_size : luma_size + chroma_size].reshape(chroma_shape),
            buffer[luma_size + chroma_size :].reshape(chroma_shape),
        )

    def _render_background(
        self, pan: float, tilt: float, zoom: float, mirror: bool, flip: bool
    ) -> _Plane:
        width, height = self._width, self._height
        magnification = 1.0 + (_MAX_MAGNIFICATION - 1.0) * zoom
        left = width * (1.0 + pan / 2.0) - width / (2.0 * magnification)
        top = height * (1.0 - tilt / 2.0) - height / (2.0 * magnification)
        world_luma, world_cb, world_cr = self._world
        background = np.empty_like(self._canvas)
        luma, cb, cr = self._planes(background)

        rows = _sample_indices(top, height, 1, magnification, limit=2 * height, reverse=flip)
        cols = _sample_indices(left, width, 1, magnification, limit=2 * width, reverse=mirror)
        # Rows then columns: two 1-D gathers run ~5x faster than one 2-D fancy index.
        luma[:] = world_luma[rows][:, cols]
        step = self._chroma_rows
        rows = _sample_indices(
            top, height // step, step, magnification, limit=2 * height // step, reverse=flip
        )
        cols = _sample_indices(left, width // 2, 2, magnification, limit=width, reverse=mirror)
        cb[:] = world_cb[rows][:, cols]
        cr[:] = world_cr[rows][:, cols]
        return background

    def _draw_box(self, travel: int, mirror: bool, flip: bool) -> None:
        luma, cb, cr = self._canvas_planes
        size = self._box_size
        # Different speeds across and down, so the box wanders over the whole frame.
        x = _bounce(travel * self._box_speed[0], self._width - size)
        y = _bounce(travel * self._box_speed[1], self._height - size)
        if mirror:
            x = self._width - size - x
        if flip:
            y = self._height - size - y
        box_y, box_cb, box_cr = _BOX_YUV
        luma[y : y + size, x : x + size] = box_y
        step = self._chroma_rows
        chroma = (slice(y // step, (y + size) // step), slice(x // 2, (x + size) // 2))
        cb[chroma] = box_cb
        cr[chroma] = box_cr

    def _draw_text(
        self, text: str, at: tuple[int, int], glyphs: dict[str, NDArray[np.bool_]]
    ) -> None:
        """White digits on a black plate, so they read on any background."""
        luma, cb, cr = self._canvas_planes
        top, left = at
        gap = glyphs[":"].shape[1] // 2  # the stroke width
        height = glyphs["0"].shape[0]
        bottom, right = top + height + gap, left + _text_width(glyphs, text, gap) + gap
        luma[top - gap : bottom, left - gap : right] = _OSD_PAPER
        step = self._chroma_rows
        chroma = (
            slice((top - gap) // step, -(-bottom // step)),
            slice((left - gap) // 2, (right + 1) // 2),
        )
        cb[chroma] = _NEUTRAL_CHROMA
        cr[chroma] = _NEUTRAL_CHROMA
        x = left
        for char in text:
            glyph = glyphs[char]
            luma[top : top + height, x : x + glyph.shape[1]][glyph] = _OSD_INK
            x += glyph.shape[1] + gap


# -- audio ----------------------------------------------------------------------------------------

_TONE_AMPLITUDE = 0.25 * 32767  # -12 dBFS: plainly audible, with headroom for codec overshoot
_PACKET_SECONDS = 0.02  # the customary RTP audio packet, used when no duration is asked for

_GSM_FRAME_BYTES = 33
_GSM_FRAME_SAMPLES = 160

# (bytes, samples) of the smallest piece each bitstream can be cut into.
_UNITS: dict[AudioCodec, tuple[int, int]] = {
    AudioCodec.GSM: (_GSM_FRAME_BYTES, _GSM_FRAME_SAMPLES),
    AudioCodec.MULAW: (1, 1),
    AudioCodec.G726: (1, 2),
    AudioCodec.IMA_ADPCM: (IMA_BLOCK_ALIGN, IMA_BLOCK_SAMPLES),
}
_EIGHT_KHZ_ONLY = (AudioCodec.GSM, AudioCodec.G726)


class _PcmEncoder(Protocol):
    """Turns exactly `batch_samples` mono s16 samples into bytes."""

    batch_samples: int

    def encode(self, pcm: NDArray[np.int16]) -> bytes: ...


@functools.cache
def _libgsm() -> ctypes.CDLL:
    # FFmpeg has a GSM decoder but no encoder of its own (only through libgsm, which Debian's
    # FFmpeg is not built with), so the reference library is called directly.
    name = ctypes.util.find_library("gsm") or "libgsm.so.1"
    try:
        library = ctypes.CDLL(name)
    except OSError as exc:
        raise OSError(
            f"GSM 06.10 audio needs libgsm, and {name} could not be loaded: "
            "install the Debian package libgsm1"
        ) from exc
    library.gsm_create.argtypes = []
    library.gsm_create.restype = ctypes.c_void_p
    library.gsm_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_ubyte),
    ]
    library.gsm_encode.restype = None
    library.gsm_destroy.argtypes = [ctypes.c_void_p]
    library.gsm_destroy.restype = None
    return library


class _GsmEncoder:
    batch_samples = _GSM_FRAME_SAMPLES

    def __init__(self) -> None:
        self._library = _libgsm()
        handle: int | None = self._library.gsm_create()
        if not handle:
            raise MemoryError("gsm_create failed")
        self._handle = handle
        self._frame = (ctypes.c_ubyte * _GSM_FRAME_BYTES)()
        weakref.finalize(self, self._library.gsm_destroy, handle)

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        samples = np.ascontiguousarray(pcm, dtype=np.int16)
        self._library.gsm_encode(
            self._handle, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), self._frame
        )
        return bytes(self._frame)


class ToneEncoder:
    """A continuous sine tone, mono, encoded the way a legacy camera streams its microphone.

    `next_chunk` hands out the bitstream in pieces a decoder can take on their own: whole 33-byte
    frames for GSM, whole `block_align`-byte blocks for IMA ADPCM, whole bytes for G.726-32 (two
    samples each) and u-law. ``len(chunk) / bytes_per_second`` is a chunk's exact duration.

    Not thread-safe: the tone's phase and the encoder state carry over from call to call.
    """

    def __init__(
        self, codec: AudioCodec, sample_rate: int = 8000, frequency: float = 440.0
    ) -> None:
        if codec not in _UNITS:
            raise ValueError(f"no tone encoder for {codec!r}")
        if codec in _EIGHT_KHZ_ONLY and sample_rate != 8000:
            raise ValueError(f"{codec.name} is defined at 8000 Hz only, not {sample_rate}")
        if not 0 < frequency < sample_rate / 2:
            raise ValueError(f"tone of {frequency} Hz cannot be sampled at {sample_rate} Hz")
        self._codec = codec
        self._sample_rate = sample_rate
        self._block_align, self._unit_samples = _UNITS[codec]
        units_per_packet = max(1, round(sample_rate * _PACKET_SECONDS / self._unit_samples))
        self._frame_samples = self._unit_samples * units_per_packet
        self._encoder: _PcmEncoder = (
            _GsmEncoder()
            if codec is AudioCodec.GSM
            else AudioEncoder(codec, sample_rate, self._frame_samples)
        )
        self._cycles_per_sample = frequency / sample_rate
        self._phase = 0.0  # in cycles, kept in [0, 1) so precision does not decay over hours
        self._encoded = bytearray()
        self._samples_asked = 0.0
        self._units_sent = 0

    @property
    def codec(self) -> AudioCodec:
        return self._codec

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def block_align(self) -> int:
        """Bytes of the smallest independently decodable piece (1 for u-law and G.726)."""
        return self._block_align

    @property
    def frame_samples(self) -> int:
        """Samples in the chunk `next_chunk()` returns without a duration (about 20 ms)."""
        return self._frame_samples

    @property
    def bytes_per_second(self) -> float:
        return self._block_align * self._sample_rate / self._unit_samples

    def next_chunk(self, duration: float | None = None) -> bytes:
        """The next `duration` seconds of the tone, or `frame_samples` of it if none is given.

        Chunks are rounded to whole codec units, keeping the running total within half a unit of
        the total asked for: a caller asking every 20 ms for 20 ms of IMA ADPCM (63 ms blocks)
        gets an empty chunk twice, then a block, and the stream still keeps time.
        """
        if duration is None:
            self._samples_asked += self._frame_samples
        elif duration < 0:
            raise ValueError(f"duration must not be negative, not {duration}")
        else:
            self._samples_asked += duration * self._sample_rate
        units = round(self._samples_asked / self._unit_samples) - self._units_sent
        if units <= 0:
            return b""
        size = units * self._block_align
        while len(self._encoded) < size:
            self._encoded += self._encoder.encode(self._tone(self._encoder.batch_samples))
        chunk = bytes(self._encoded[:size])
        del self._encoded[:size]
        self._units_sent += units
        return chunk

    def _tone(self, count: int) -> NDArray[np.int16]:
        cycles = self._phase + np.arange(count) * self._cycles_per_sample
        self._phase = (self._phase + count * self._cycles_per_sample) % 1.0
        samples: NDArray[np.int16] = (np.sin(2 * np.pi * cycles) * _TONE_AMPLITUDE).astype(np.int16)
        return samples


# -- what the camera was told to play -------------------------------------------------------------

TALK_RECORD_SAMPLES = 60 * 8000  # a minute at 8 kHz: the recording's cap


class TalkRecorder:
    """The audio an emulated camera's speaker was sent, decoded to samples, so a test can
    check what arrives (the tone's frequency). Each upload starts a new recording, which keeps
    its first ``max_samples`` samples; :attr:`ended` is set when the upload is over.
    Undecodable audio is counted in :attr:`garbage`, never raised."""

    def __init__(self, max_samples: int = TALK_RECORD_SAMPLES) -> None:
        self._max_samples = max_samples
        self._decoder: PcmDecoder | None = None
        self._parts: list[NDArray[np.int16]] = []
        self._kept = 0
        self.sample_rate = 0
        self.garbage = 0
        self.ended = asyncio.Event()

    def start(self, audio: AudioFormat) -> None:
        self._decoder = PcmDecoder(audio)
        self._parts, self._kept = [], 0
        self.sample_rate = audio.sample_rate
        self.ended.clear()

    def feed(self, data: bytes) -> None:
        if self._decoder is None or self._kept >= self._max_samples:
            return  # nothing to record into, or as much kept as it keeps
        try:
            samples = self._decoder.decode(data)
        except ProtocolError:
            self.garbage += 1
            return
        kept = samples[: self._max_samples - self._kept]
        self._parts.append(kept)
        self._kept += len(kept)

    def end(self) -> None:
        self.ended.set()

    @property
    def pcm(self) -> NDArray[np.int16]:
        """The samples recorded, at :attr:`sample_rate`."""
        return np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)
