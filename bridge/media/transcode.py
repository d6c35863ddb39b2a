"""Camera JPEG pictures to H.264 access units, one encoder per camera profile.

The pipeline per picture is mjpeg decode -> swscale to yuv420p at the target size -> libx264
(ultrafast, zerolatency, no B-frames, one thread). With those settings x264 has no delay: every
picture in gives exactly one access unit out, so the caller's timestamps pass straight through.

Three choices the measurements in ``shared/notes/transcode-measurements.md`` forced:

- JPEG is full range (0..255) and BT.601. The conversion keeps the samples as they are, so the
  encoder's VUI must say "full range, BT.601" or players stretch the levels (and use BT.709
  colours for HD sizes).
- Everything runs with one thread per codec: the gateway scales by cameras, and codec threads
  only add delay and slices.
- Codec work happens in a worker thread (:class:`EncoderWorker`); PyAV releases the GIL inside
  the codecs, so the event loop keeps running while pictures encode.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from bridge import heap
from bridge.codecs.h264 import NAL_PPS, NAL_SPS, nal_type, split_annexb
from bridge.codecs.jpeg import check_header
from bridge.errors import ProtocolError

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


class VideoTranscoder:
    """JPEG in, H.264 access unit out, for one output profile.

    Synchronous and not thread-safe: use it from one thread (see :class:`EncoderWorker`). The
    decoder is rebuilt and the encoder reopened when the camera's picture size changes, so the
    first picture after a resolution switch is an IDR with fresh parameter sets.
    """

    def __init__(self, settings: EncoderSettings) -> None:
        self._settings = settings
        self._source_size: tuple[int, int] | None = None
        self._decoder: VideoCodecContext | None = None
        self._encoder: VideoCodecContext | None = None
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
        if size != self._source_size or self._decoder is None or self._encoder is None:
            self._source_size = size
            self.lowres = lowres_for(size, (self._settings.width, self._settings.height))
            self._decoder = self._new_decoder()
            self._encoder = _open_encoder(self._settings)
            self._last_idr = None
        try:
            frames = self._decoder.decode(av.Packet(jpeg))
        except (av.error.FFmpegError, MemoryError) as exc:
            # A fresh decoder drops whatever state the failure left; the encoder carries on, so
            # the stream continues without an extra IDR.
            self._decoder = self._new_decoder()
            raise ProtocolError(f"undecodable JPEG ({size[0]}x{size[1]}): {exc}") from exc
        if not frames:
            raise ProtocolError(f"JPEG ({size[0]}x{size[1]}) decoded to no picture")
        picture = frames[0]
        assert isinstance(picture, VideoFrame)
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

    def _new_decoder(self) -> VideoCodecContext:
        decoder = CodecContext.create("mjpeg", "r")
        assert isinstance(decoder, VideoCodecContext)
        if self.lowres:
            decoder.options = {"lowres": str(self.lowres)}
        return decoder

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


class EncoderWorker:
    """Runs a :class:`VideoTranscoder` on its own thread, for use from the event loop.

    One thread per encoder keeps the codec state on the thread that made it; the event loop only
    hands the bytes over.
    """

    def __init__(
        self, settings: EncoderSettings, *, name: str = "encoder", spent: EncoderTime | None = None
    ) -> None:
        self._transcoder = VideoTranscoder(settings)
        self._spent = EncoderTime() if spent is None else spent
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name
        )

    @property
    def settings(self) -> EncoderSettings:
        return self._transcoder.settings

    async def encode(
        self, jpeg: bytes, pts_90k: int, force_idr: bool = False
    ) -> EncodedAccessUnit | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._encode, jpeg, pts_90k, force_idr)

    def _encode(self, jpeg: bytes, pts_90k: int, force_idr: bool) -> EncodedAccessUnit | None:
        """On the worker thread: its own CPU clock, so waiting for the GIL does not count."""
        started = time.thread_time()
        try:
            return self._transcoder.encode(jpeg, pts_90k, force_idr)
        finally:
            self._spent.frames += 1
            self._spent.seconds += time.thread_time() - started

    def close(self) -> None:
        """Stop the thread; a picture being encoded finishes, queued ones are dropped. The
        codec's buffers go back to the system a moment later (:mod:`bridge.heap`)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        heap.give_back_soon()
