"""Camera JPEG pictures to H.264 access units, one encoder per camera profile.

The pipeline per picture is mjpeg decode (once per camera) -> yuv420p at the target size (at the
camera's size, 4:2:2 chroma rows dropped into a reused picture; else swscale) -> libx264
(ultrafast, zerolatency, no B-frames, one thread). With those settings x264 has no delay: every
picture in gives exactly one access unit out, so the caller's timestamps pass straight through.

Three choices the measurements in ``shared/notes/transcode-measurements.md`` forced:

- JPEG is full range (0..255) and BT.601. The conversion keeps the samples as they are, so the
  encoder's VUI must say "full range, BT.601" or players stretch the levels (and use BT.709
  colours for HD sizes).
- Everything runs with one thread per codec: the gateway scales by cameras, and codec threads
  only add delay and slices.
- Codec work happens on one thread per camera (:class:`CodecThread`), which decodes each
  picture once for all its profiles; PyAV releases the GIL inside the codecs, so the event
  loop keeps running while pictures encode.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeVar

import av
import numpy as np
import numpy.typing as npt
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from bridge import heap
from bridge.codecs.h264 import NAL_PPS, NAL_SPS, nal_type, split_annexb
from bridge.codecs.jpeg import check_header
from bridge.errors import ProtocolError

T = TypeVar("T")

CLOCK_RATE = 90_000
MAX_GOP_SECONDS = 2.0
# The rate an encoder's level is chosen for, at least: a camera that speeds up (a night mode
# ending, a VMS raising it) then stays within the level it declared, without a reopen.
LEVEL_FPS = 30.0

H264Profile = Literal["baseline", "main"]

# (level, max frame size in macroblocks, max macroblocks/s, max bitrate in bit/s for
# baseline/main), from H.264 table A-1. Level 3.0 is the floor: it is what every player and VMS
# accepts, and the lower levels would only say "small" without saving anything.
_LEVELS = (
    ("3.0", 1620, 40_500, 10_000_000),
    ("3.1", 3600, 108_000, 14_000_000),
    ("3.2", 5120, 216_000, 20_000_000),
    ("4.0", 8192, 245_760, 20_000_000),
    ("4.1", 8192, 245_760, 50_000_000),
    ("4.2", 8704, 522_240, 50_000_000),
    ("5.0", 22_080, 589_824, 135_000_000),
    ("5.1", 36_864, 983_040, 240_000_000),
)

_MAX_LOWRES = 3  # the mjpeg decoder scales by 1/2, 1/4 or 1/8 while it decodes


def codec_library_versions() -> tuple[str, str]:
    """(PyAV, the FFmpeg it links): what results measured on this pipeline depend on. Asked
    here, as PyAV is imported only by the media package."""
    return av.__version__, av.ffmpeg_version_info


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """One output profile. ``width``/``height`` are the output size (even numbers, as 4:2:0
    needs); choosing them from the camera's size and a profile's maximum is the caller's job."""

    width: int
    height: int
    fps: float
    bitrate: int  # bit/s; also the VBV maximum rate
    gop_seconds: float = 1.0
    profile: H264Profile = "baseline"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"output size must be positive and even, not {self.width}x{self.height}"
            )
        if not 0 < self.fps <= 120:
            raise ValueError(f"fps must be in (0, 120], not {self.fps}")
        if self.bitrate <= 0:
            raise ValueError(f"bitrate must be positive, not {self.bitrate}")
        if not 0 < self.gop_seconds <= MAX_GOP_SECONDS:
            raise ValueError(
                f"gop_seconds must be in (0, {MAX_GOP_SECONDS}], not {self.gop_seconds}"
            )
        if self.profile not in ("baseline", "main"):
            raise ValueError(f"profile must be 'baseline' or 'main', not {self.profile!r}")

    @property
    def gop(self) -> int:
        """Pictures from one IDR to the next."""
        return max(1, round(self.fps * self.gop_seconds))

    @property
    def level(self) -> str:
        """The level for this size at :data:`LEVEL_FPS` (or the rate, if higher), so the
        camera's rate may change under a running encoder; the level for the rate itself
        where that headroom exceeds H.264's largest level."""
        try:
            return h264_level(self.width, self.height, max(self.fps, LEVEL_FPS), self.bitrate)
        except ValueError:
            return h264_level(self.width, self.height, self.fps, self.bitrate)


def h264_level(width: int, height: int, fps: float, bitrate: int) -> str:
    """The lowest H.264 level (3.0 or above) whose limits fit this size, rate and bitrate."""
    frame_mbs = -(-width // 16) * -(-height // 16)
    for level, max_frame_mbs, max_mbs_per_second, max_bitrate in _LEVELS:
        if (
            frame_mbs <= max_frame_mbs
            and frame_mbs * fps <= max_mbs_per_second
            and bitrate <= max_bitrate
        ):
            return level
    raise ValueError(f"{width}x{height} at {fps} fps and {bitrate} bit/s exceeds H.264 level 5.1")


@dataclass(frozen=True, slots=True)
class EncodedAccessUnit:
    """One encoded picture in Annex B form (start codes included).

    ``sps``/``pps`` (without start codes) are the parameter sets in force for this picture; on a
    keyframe they are also in ``data``, ahead of the IDR slice.
    """

    data: bytes
    pts_90k: int
    keyframe: bool
    sps: bytes
    pps: bytes


def lowres_for(source: tuple[int, int], target: tuple[int, int]) -> int:
    """The mjpeg ``lowres`` shift (0, 2 or 3) to decode at, still at least the target size.

    Measured here: lowres=1 (half size) decodes 25-35 % slower than full size, since the
    reduced IDCT has no SIMD path, while quarter and eighth size decode 2-2.5x faster; so a
    half-size target decodes at full size.
    """
    shift = 0
    while shift < _MAX_LOWRES and all(
        -(-s >> (shift + 1)) >= t for s, t in zip(source, target, strict=True)
    ):
        shift += 1
    return 0 if shift == 1 else shift


class PictureDecoder:
    """JPEG to picture, remembering the last one, so profiles encoding the same camera picture
    decode it once (main and sub watched together, the usual VMS case: record main, detect on
    sub). Synchronous and not thread-safe, like the transcoders that share it."""

    def __init__(self) -> None:
        self._decoders: dict[int, VideoCodecContext] = {}  # by lowres
        self._last: tuple[bytes, int, VideoFrame] | None = None
        self.decoded = 0  # pictures decoded (not taken from the last one)

    def decode(self, jpeg: bytes, size: tuple[int, int], lowres: int) -> VideoFrame:
        """The picture of ``jpeg`` (whose header said ``size``), decoded at 1/2**lowres size.
        ProtocolError if the decoder refuses it."""
        last = self._last
        # The same bytes object: the one picture every profile's subscription hands over.
        if last is not None and last[0] is jpeg and last[1] == lowres:
            return last[2]
        self._last = None
        decoder = self._decoders.get(lowres)
        if decoder is None:
            decoder = self._decoders[lowres] = _new_decoder(lowres)
        try:
            frames = decoder.decode(av.Packet(jpeg))
        except (av.error.FFmpegError, MemoryError) as exc:
            # A fresh decoder drops whatever state the failure left; the encoders carry on, so
            # the stream continues without an extra IDR.
            del self._decoders[lowres]
            raise ProtocolError(f"undecodable JPEG ({size[0]}x{size[1]}): {exc}") from exc
        if not frames:
            raise ProtocolError(f"JPEG ({size[0]}x{size[1]}) decoded to no picture")
        picture = frames[0]
        assert isinstance(picture, VideoFrame)
        self.decoded += 1
        self._last = (jpeg, lowres, picture)
        return picture


def _new_decoder(lowres: int) -> VideoCodecContext:
    decoder = CodecContext.create("mjpeg", "r")
    assert isinstance(decoder, VideoCodecContext)
    if lowres:
        decoder.options = {"lowres": str(lowres)}
    return decoder


# Decoded JPEG formats :class:`Yuv420Canvas` takes without swscale, by their chroma planes'
# vertical subsampling: 4:2:2 has a chroma row per picture row, 4:2:0 one per two.
_CHROMA_ROWS_PER_ROW = {"yuvj422p": 1, "yuv422p": 1, "yuvj420p": 2, "yuv420p": 2}


class Yuv420Canvas:
    """A transcoder's yuv420p picture, refilled from each camera picture of its size.

    4:2:2 becomes 4:2:0 by averaging each pair of chroma rows in numpy, 4:2:0 is copied: a
    few plain array passes, where swscale's bilinear default filtered every sample and
    allocated a new picture each time (which also kept fragmenting the C heap, see
    :mod:`bridge.heap`); x264 copies its input, so one picture is reused for every frame.
    The result equals swscale's to 54-57 dB PSNR. Dropping every other chroma row instead
    is cheaper still, but lost 0.4 dB of what a viewer sees on camera-like pictures
    (measured in RGB against the camera's JPEG; tests/media/test_transcode.py keeps that
    comparison).
    """

    def __init__(self, width: int, height: int) -> None:
        self.frame = VideoFrame(width, height, "yuv420p")
        self._scratch = np.empty((height // 2, width // 2), np.uint8)

    def fill(self, picture: VideoFrame) -> VideoFrame | None:
        """The canvas holding ``picture``; None (and the canvas untouched) for a picture of
        another size or chroma layout, which swscale must convert."""
        frame = self.frame
        per_row = _CHROMA_ROWS_PER_ROW.get(picture.format.name)
        if per_row is None or (picture.width, picture.height) != (frame.width, frame.height):
            return None
        width, height = frame.width, frame.height
        _plane(frame, 0)[:height, :width] = _plane(picture, 0)[:height, :width]
        rows, columns = height // 2, width // 2
        scratch = self._scratch
        for index in (1, 2):
            source, target = _plane(picture, index), _plane(frame, index)[:rows, :columns]
            if per_row == 2:
                target[:] = source[:rows, :columns]
                continue
            upper, lower = source[0 : 2 * rows : 2, :columns], source[1 : 2 * rows : 2, :columns]
            # (a + b + 1) // 2 without widening to 16 bits: (a | b) - ((a ^ b) >> 1).
            np.bitwise_or(upper, lower, out=target)
            np.bitwise_xor(upper, lower, out=scratch)
            np.right_shift(scratch, 1, out=scratch)
            np.subtract(target, scratch, out=target)
        return frame


def _plane(frame: VideoFrame, index: int) -> npt.NDArray[np.uint8]:
    """A plane of ``frame`` as rows of bytes (each ``line_size`` long, padding included),
    without copying."""
    plane = frame.planes[index]
    rows = plane.buffer_size // plane.line_size
    return np.frombuffer(memoryview(plane), np.uint8).reshape(rows, plane.line_size)


class VideoTranscoder:
    """JPEG in, H.264 access unit out, for one output profile.

    Synchronous and not thread-safe: use it from one thread (see :class:`CodecThread`), with
    the :class:`PictureDecoder` it shares with the camera's other profiles on that thread. The
    encoder is reopened when the camera's picture size changes, so the first picture after a
    resolution switch is an IDR with fresh parameter sets.
    """

    def __init__(self, settings: EncoderSettings, decoder: PictureDecoder | None = None) -> None:
        self._settings = settings
        self._decoder = PictureDecoder() if decoder is None else decoder
        self._source_size: tuple[int, int] | None = None
        self._encoder: VideoCodecContext | None = None
        self._canvas = Yuv420Canvas(settings.width, settings.height)
        self._sps = b""
        self._pps = b""
        self.lowres = 0  # the mjpeg decoder's size reduction now in use (1/2**lowres)
        # The GOP is kept in time, not pictures: an IDR at the first picture that ends at
        # least gop_seconds after the last IDR (counting half its step), whatever the rate.
        self._gop_ticks = round(CLOCK_RATE * settings.gop_seconds)
        self._last_idr: int | None = None
        self._last_pts = 0

    @property
    def settings(self) -> EncoderSettings:
        return self._settings

    def encode(
        self, jpeg: bytes, pts_90k: int, force_idr: bool = False
    ) -> EncodedAccessUnit | None:
        """Encode one picture; ``None`` only if the encoder held the picture back (it does not
        with these settings). A JPEG that cannot be decoded, or whose header the gateway refuses
        (:func:`~bridge.codecs.jpeg.check_header`), raises ProtocolError and leaves the
        transcoder ready for the next picture."""
        size = check_header(jpeg).size
        if size != self._source_size or self._encoder is None:
            self._source_size = size
            self.lowres = lowres_for(size, (self._settings.width, self._settings.height))
            self._encoder = _open_encoder(self._settings)
            self._last_idr = None
        picture = self._decoder.decode(jpeg, size, self.lowres)
        out = self._canvas.fill(picture)
        if out is None:
            out = picture.reformat(
                self._settings.width,
                self._settings.height,
                format="yuv420p",
                interpolation=Interpolation.BILINEAR,
                threads=1,
            )
        out.pts = pts_90k
        # The decoder marks every JPEG as an I picture and reformat copies that; libx264 turns an
        # I-marked frame into an IDR, so the mark must be cleared unless an IDR is wanted.
        idr = force_idr or self._gop_ended(pts_90k)
        self._last_pts = pts_90k
        out.pict_type = PictureType.I if idr else PictureType.NONE
        packets = self._encoder.encode(out)
        if not packets:
            return None
        if len(packets) > 1:
            raise RuntimeError("libx264 delayed output despite zerolatency and no B-frames")
        packet = packets[0]
        data = bytes(packet)
        if packet.is_keyframe:
            self._last_idr = pts_90k
            self._learn_parameter_sets(data)
        return EncodedAccessUnit(data, pts_90k, packet.is_keyframe, self._sps, self._pps)

    def _gop_ended(self, pts_90k: int) -> bool:
        if self._last_idr is None:
            return False  # a fresh encoder starts with an IDR of its own
        half_step = (pts_90k - self._last_pts) // 2
        return pts_90k - self._last_idr + half_step >= self._gop_ticks

    def _learn_parameter_sets(self, data: bytes) -> None:
        for nal in split_annexb(data):
            kind = nal_type(nal)
            if kind == NAL_SPS:
                self._sps = nal
            elif kind == NAL_PPS:
                self._pps = nal
                return  # the slices follow; no need to scan the picture data


def _open_encoder(settings: EncoderSettings) -> VideoCodecContext:
    encoder = CodecContext.create("libx264", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width = settings.width
    encoder.height = settings.height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, CLOCK_RATE)
    encoder.framerate = Fraction(settings.fps).limit_denominator(1001)
    encoder.bit_rate = settings.bitrate
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
        # A one-second VBV lets an IDR be several times the average picture without the rate
        # control starving the P pictures that follow.
        "maxrate": str(settings.bitrate),
        "bufsize": str(settings.bitrate),
        # repeat-headers puts SPS/PPS in-band before every IDR, so a viewer can join at any IDR
        # and the access unit alone carries what a decoder needs. IDRs come only when the
        # transcoder asks, every gop_seconds of the pictures' timestamps (RTSP clients and VMS
        # recorders expect keyframes on a predictable cadence), so x264 counts no GOP of its
        # own (keyint=infinite, scenecut=0). The timestamps are the arrival clock's, on
        # time_base 1/90000. x264's rate control gives each picture bitrate/fps bits whatever
        # the timestamps say: zerolatency turns its variable-frame-rate mode off, which would
        # hold every picture back until the next one arrives (measured: one picture of delay).
        # So a camera whose rate jitters or changes keeps the encoder it has, at the same
        # quality per picture; its bitrate follows its rate.
        "x264-params": "repeat-headers=1:keyint=infinite:scenecut=0:bframes=0",
    }
    encoder.open()
    return encoder


class TimestampSmoother:
    """90 kHz presentation timestamps for pictures that arrive without any.

    The step between pictures is an exponential average of the arrival intervals, snapped to the
    nominal interval while the two agree within ``snap_tolerance``, so network jitter does not show
    as uneven motion. A small share of the gap between the smoothed and the arrival clock is
    corrected on every picture, so the timestamps never drift from real time. When the two
    disagree by more than ``resync_seconds`` (a camera pause, a reconnect), the timestamps jump to
    the arrival clock. Timestamps strictly increase whatever the arrival times do.
    """

    def __init__(
        self,
        fps: float | None = None,
        *,
        alpha: float = 0.1,
        correction: float = 0.1,
        snap_tolerance: float = 0.1,
        resync_seconds: float = 0.5,
        start_pts: int = 0,
    ) -> None:
        self._nominal = 1 / fps if fps else None
        self._alpha = alpha
        self._correction = correction
        self._snap_tolerance = snap_tolerance
        self._resync = resync_seconds
        self._start_pts = start_pts
        self._origin: float | None = None
        self._last_arrival = 0.0
        self._last_pts = 0.0
        self._interval = self._nominal

    def next_pts(self, arrival: float) -> int:
        if self._origin is None:
            self._origin = arrival
            self._last_arrival = arrival
            self._last_pts = float(self._start_pts)
            return self._start_pts
        real = self._start_pts + (arrival - self._origin) * CLOCK_RATE
        elapsed = arrival - self._last_arrival
        self._last_arrival = arrival
        # A 1 fps camera's normal interval must not count as a pause.
        limit = max(self._resync, 4 * (self._interval or 0.0))
        if elapsed > limit:
            pts = real  # a pause: keep the camera's real elapsed time, not the usual step
        else:
            if elapsed > 0:
                self._interval = (
                    elapsed
                    if self._interval is None
                    else self._interval + self._alpha * (elapsed - self._interval)
                )
            step = self._interval or 0.0
            nominal = self._nominal
            if nominal is not None and abs(step - nominal) <= self._snap_tolerance * nominal:
                step = nominal
            predicted = self._last_pts + step * CLOCK_RATE
            error = real - predicted
            pts = real if abs(error) > limit * CLOCK_RATE else predicted + self._correction * error
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        return round(pts)


@dataclass(slots=True)
class EncoderTime:
    """Pictures encoded and the encoder thread's CPU time for them (decode, scale, encode),
    summed over every encoder a profile opened: its metrics' time per frame; and how many
    encoders it opened."""

    frames: int = 0
    seconds: float = 0.0
    opens: int = 0


@dataclass(slots=True)
class CodecJob:
    """Work for a :class:`CodecThread`, and the future its result goes to."""

    future: asyncio.Future[Any]
    work: Callable[[], Any]
    spent: EncoderTime | None


class CodecThread:
    """One camera's codec work on one thread: its profiles' transcoders, sharing one
    :class:`PictureDecoder`, so a picture main and sub both encode is decoded once.

    Jobs run in order; the ones that finish while others wait go back to the event loop
    together (main and sub of a picture), through the loop's :class:`Handback`, and a batch
    needs one executor submit: a submit and a ``call_soon_threadsafe`` per picture and profile
    were 14 % of the gateway's CPU samples. Codec state stays on the thread that made it.
    Bounded by its users:
    a profile awaits its picture before it sends the next, so at most one job per profile
    waits here; one that lags loses pictures in the fan-out before it, never queues them.
    """

    def __init__(self, name: str) -> None:
        self.decoder = PictureDecoder()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._lock = threading.Lock()  # guards the jobs and whether a drain is under way
        self._jobs: collections.deque[CodecJob] = collections.deque()
        self._draining = False
        self._closed = False
        self.handovers = 0  # batches handed back so far

    def run(self, work: Callable[[], T], spent: EncoderTime | None = None) -> asyncio.Future[T]:
        """``work()``'s result (or exception) once it ran on the thread; its CPU time counted
        in ``spent``. Cancelling the future does not stop work already queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the codec thread is closed")
            self._jobs.append(CodecJob(future, work, spent))
            start, self._draining = not self._draining, True
        if start:
            self._executor.submit(self._drain, handback_for(loop))
        return future

    def _drain(self, handback: Handback) -> None:
        """On the thread: run jobs until none is left, then hand the results over at once."""
        finished: list[tuple[CodecJob, object, Exception | None]] = []
        while True:
            with self._lock:
                if not self._jobs or self._closed:
                    self._draining = False
                    break
                job = self._jobs.popleft()
            started = time.thread_time()  # the thread's own CPU, not time waiting for the GIL
            try:
                finished.append((job, job.work(), None))
            except Exception as exc:  # handed to the awaiting coroutine
                finished.append((job, None, exc))
            if job.spent is not None:
                job.spent.frames += 1
                job.spent.seconds += time.thread_time() - started
        if finished:
            self.handovers += 1
            handback.put(finished)

    def close(self) -> None:
        """Stop the thread; a job under way finishes, queued ones are cancelled. The codecs'
        buffers go back to the system a moment later (:mod:`bridge.heap`)."""
        with self._lock:
            self._closed = True
            left = list(self._jobs)
            self._jobs.clear()
        for job in left:
            job.future.cancel()
        self._executor.shutdown(wait=False)
        heap.give_back_soon()


_Finished = list[tuple[CodecJob, object, Exception | None]]


class Handback:
    """Finished codec jobs of every camera on their way back to one event loop: it is woken
    only when nothing is pending yet, so what finishes while the loop is busy (many cameras
    on a loaded host) goes back in one wake-up, not one per camera picture."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: _Finished = []
        self.wakeups = 0

    def put(self, finished: _Finished) -> None:
        """From any thread."""
        with self._lock:
            wake = not self._pending
            self._pending += finished
        if wake:
            self.wakeups += 1
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits them
                self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        with self._lock:
            finished, self._pending = self._pending, []
        _settle(finished)


_handbacks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Handback] = (
    weakref.WeakKeyDictionary()
)


def handback_for(loop: asyncio.AbstractEventLoop) -> Handback:
    """The loop's one :class:`Handback` (called on that loop's thread)."""
    handback = _handbacks.get(loop)
    if handback is None:
        handback = _handbacks[loop] = Handback(loop)
    return handback


def _settle(finished: _Finished) -> None:
    for job, result, error in finished:
        if job.future.done():
            continue  # its awaiter was cancelled
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


class SharedCodecThread:
    """A camera's :class:`CodecThread`, started for its first encoding profile and stopped
    when its last one closes (an unwatched camera keeps no thread)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: CodecThread | None = None
        self._users = 0
        self._decoded_before = 0  # by the threads stopped so far

    @property
    def decoded(self) -> int:
        """Camera pictures decoded so far, however many profiles encoded each."""
        running = self._thread.decoder.decoded if self._thread is not None else 0
        return self._decoded_before + running

    def acquire(self) -> CodecThread:
        if self._thread is None:
            self._thread = CodecThread(self._name)
        self._users += 1
        return self._thread

    def release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._thread is not None:
            self._decoded_before += self._thread.decoder.decoded
            self._thread.close()
            self._thread = None
