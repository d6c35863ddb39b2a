"""Everything one camera streams: its pictures and sound pulled once, and its three profiles.

::

    driver.video_frames --Fanout--+--> main: encoder (camera size)    -+ one CodecThread --+
                                  +--> sub:  encoder (<= 640x360, /n) -+ (decode once)    +-->
                                  +--> jpeg: the camera's JPEG untouched        --+  StreamSpec
                                                                                    per profile
    driver.audio_chunks --Fanout (AudioTranscoder: PCMU or AAC) -> every profile
                                                                               --+

Each arrow is a bounded queue that drops its oldest item when its reader lags. The camera is
pulled, and a profile encoded, only while someone watches: every stage is a fan-out that starts
with its first subscriber and stops an idle grace period after its last one leaves. A profile
is handed out as a :class:`~bridge.streams.StreamSpec`; what serves it (an RTSP
``FanoutSource``, one per camera profile, kept by bridge.app) is that profile's fan-out, so one
encoder per profile serves every viewer of it.

All media times are seconds on ``time.monotonic()``, the clock the drivers stamp arrivals with,
so audio and video of a profile share one clock and RTCP can map it to wall time.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import enum
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import NamedTuple, TypeVar

from bridge import heap
from bridge.aiter import merge
from bridge.cameras.base import AudioChunk, AudioFormat, CameraDriver, JpegFrame
from bridge.codecs.h264 import split_annexb
from bridge.codecs.jpeg import check_header, jpeg_size
from bridge.errors import CameraError, ProtocolError
from bridge.fanout import Backoff, Fanout
from bridge.media.audio import AAC_FRAME_SAMPLES, PCMU_FRAME_BYTES, AudioTarget, AudioTranscoder
from bridge.media.transcode import (
    CLOCK_RATE,
    CodecThread,
    EncodedAccessUnit,
    EncoderSettings,
    EncoderTime,
    SharedCodecThread,
    TimestampSmoother,
    VideoTranscoder,
    h264_level,
)
from bridge.ratelimit import ThrottledLog
from bridge.streams import AccessUnit, Codec, MediaTrack, StreamSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

# A LAN camera that comes back should stream again within a few seconds, so the retry interval
# stays short; a refused connection costs the camera next to nothing.
CAMERA_BACKOFF = Backoff(initial=0.25, maximum=2.0)
DEFAULT_FPS = 15.0  # until the camera's own rate is measured
FPS_SAMPLES = 3  # arrival intervals measured before a cold encoder opens
FPS_WAIT = 1.0  # ... or this long, for cameras slower than that
RATE_CHANGE = 0.25  # a camera rate this far off the one a profile decimates for ...
RATE_SETTLE = 3.0  # ... for this many seconds changes how many it skips (no reopen)
BITS_PER_PIXEL = 0.12  # x264 ultrafast at camera-grade detail; about 550 kbit/s for VGA@15
MIN_BITRATE = 256_000
MAX_BITRATE = 8_000_000
SUB_SIZE = (640, 360)
SUB_MAX_FPS = 7.5  # grid views: half a 10 or 15 fps camera
PROFILE_GRACE = 2.0  # keeps an encoder warm between DESCRIBE and PLAY, and across a re-SETUP
SNAPSHOT_MAX_AGE = 1.0  # a frame younger than this from the running stream is a snapshot
SNAPSHOT_TIMEOUT = 5.0


class Profile(enum.StrEnum):
    MAIN = "main"
    SUB = "sub"
    JPEG = "jpeg"


@dataclass(frozen=True, slots=True)
class VideoLimits:
    """What a profile makes of the camera's pictures; None follows the camera."""

    max_size: tuple[int, int] | None = None
    max_fps: float | None = None
    bitrate: int | None = None
    gop_seconds: float = 1.0


PROFILE_LIMITS = {
    Profile.MAIN: VideoLimits(),
    Profile.SUB: VideoLimits(max_size=SUB_SIZE, max_fps=SUB_MAX_FPS),
}


def fit_within(size: tuple[int, int], box: tuple[int, int] | None) -> tuple[int, int]:
    """``size`` scaled down (never up) to fit ``box``, aspect kept, both sides even."""
    width, height = size
    scale = 1.0 if box is None else min(1.0, box[0] / width, box[1] / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def decimation(camera_fps: float, max_fps: float | None) -> int:
    """Keep every n-th picture: even spacing, at most ``max_fps`` (up to 15 % over is
    measurement noise, not a reason to drop to a third)."""
    if max_fps is None:
        return 1
    return max(1, math.ceil(camera_fps / max_fps - 0.15))


def encoder_settings(
    size: tuple[int, int], camera_fps: float, limits: VideoLimits
) -> EncoderSettings:
    width, height = fit_within(size, limits.max_size)
    fps = camera_fps / decimation(camera_fps, limits.max_fps)
    bitrate = limits.bitrate or round(
        min(MAX_BITRATE, max(MIN_BITRATE, BITS_PER_PIXEL * width * height * fps))
    )
    return EncoderSettings(width, height, fps, bitrate, gop_seconds=limits.gop_seconds)


class RateMeter:
    """The camera's frame rate: pictures counted over the last few seconds of arrivals.

    Counting over a window, not averaging intervals, keeps bursts from swinging it: a camera (or
    a loaded host) that delivers three pictures at once after a 0.3 s pause still averaged its
    rate, where an average of intervals saw 0.3, 0, 0 and jumped; those swings reopened encoders
    (a soak on a loaded 2-core host measured a 10 fps camera as 6 to 18.5 fps).
    """

    def __init__(
        self, window: float = 4.0, *, min_intervals: int = 8, max_arrivals: int = 512
    ) -> None:
        self._window = window
        self._min_intervals = min_intervals
        self._arrivals: collections.deque[float] = collections.deque(maxlen=max_arrivals)

    @property
    def samples(self) -> int:
        """Intervals measured since the last reconnect (within the window)."""
        return max(0, len(self._arrivals) - 1)

    def arrived(self, timestamp: float) -> None:
        arrivals = self._arrivals
        if arrivals and timestamp <= arrivals[-1]:
            return
        arrivals.append(timestamp)
        # A slow camera's window stretches to hold a few intervals: the jitter of one picture
        # is then a small part of the span.
        while len(arrivals) > self._min_intervals + 1 and timestamp - arrivals[1] >= self._window:
            arrivals.popleft()

    def forget_gap(self) -> None:
        """A reconnect: the pause before the next picture is not an interval."""
        self._arrivals.clear()

    @property
    def fps(self) -> float | None:
        """Rounded to half frames per second, so jitter does not reopen encoders."""
        arrivals = self._arrivals
        if len(arrivals) < 2:
            return None
        return max(0.5, round(2 * (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])) / 2)


class AudioUnit(NamedTuple):
    payload: bytes
    media_time: float
    arrival: float


class AudioClock:
    """Media times for the audio frames decoded from each received chunk.

    Frames are counted at their sample rate from an anchor; the anchor follows the arrival
    clock slowly (so a camera crystal a little off does not drift from the video), and jumps
    when they disagree by more than ``resync`` (a reconnect or a pause).
    """

    def __init__(self, frame_seconds: float, *, resync: float = 0.3, pull: float = 0.02) -> None:
        self._frame = frame_seconds
        self._resync = resync
        self._pull = pull
        self._next: float | None = None

    def times(self, frames: int, arrival: float) -> list[float]:
        start = arrival - frames * self._frame  # the chunk's last sample arrived just now
        if self._next is None or abs(start - self._next) > self._resync:
            self._next = start
        else:
            self._next += self._pull * (start - self._next)
        times = [self._next + i * self._frame for i in range(frames)]
        self._next += frames * self._frame
        return times


class _H264Encoder:
    """One H.264 profile's encoder: opened from the camera's first pictures, reopened when the
    camera's picture size or the profile's limits change, asked for an IDR whenever a viewer
    joins.

    A change of the camera's rate never reopens it (a reopen costs viewers an IDR and a
    decoder reset, and arrival jitter on Wi-Fi or a loaded host once made the rate estimate
    swing past any threshold: 787 reopens in 2.5 minutes): the timestamps follow the arrival
    clock, the GOP is kept in seconds, and x264 spends the same bits per picture at any rate.
    A lasting change only changes how many pictures a rate-limited profile skips.
    """

    def __init__(
        self,
        camera: str,
        profile: Profile,
        limits: Callable[[], VideoLimits],
        meter: RateMeter,
        *,
        spent: EncoderTime,
        codecs: SharedCodecThread,
    ):
        self._name = f"{camera}/{profile}"
        self._spent = spent
        self._codecs = codecs
        self._thread: CodecThread | None = None  # the camera's, while this profile encodes
        self._transcoder: VideoTranscoder | None = None
        self._limits = limits
        self._limits_in_use = limits()
        self._meter = meter
        self._size: tuple[int, int] | None = None  # the camera picture size in use
        self._fps = DEFAULT_FPS  # the camera rate the decimation is for
        self._origin = 0.0  # the media time of pts 0 of the current encoder
        self._keep_every = 1
        self._count = 0
        self._force_idr = False
        self._waiting_since: float | None = None
        self._rate_off_since: float | None = None  # since when the camera's rate is off
        self._smoother = TimestampSmoother(DEFAULT_FPS)
        # Pictures it cannot take: a line now and then, however many there are.
        self._dropped = ThrottledLog(log)

    def request_keyframe(self) -> None:
        self._force_idr = True

    def close(self) -> None:
        if self._thread is not None:
            self._transcoder = None
            self._thread = None
            self._size = None
            self._codecs.release()
            heap.give_back_soon()

    async def encode(self, frame: JpegFrame) -> tuple[EncodedAccessUnit, list[bytes]] | None:
        """The picture's access unit and its NAL units; None when the picture is skipped
        (frame rate limit, measuring the camera's rate, or a picture that cannot be encoded).

        A picture that cannot be encoded (a header the gateway refuses, a size no H.264 level
        takes at this rate, data the decoder refuses) is dropped with a rate-limited warning:
        the encoder, and the pictures after it, carry on.
        """
        try:
            size = check_header(frame.data).size
        except ProtocolError as exc:
            self._drop(exc)
            return None
        fps = self._camera_fps(frame.timestamp)
        if fps is None:
            return None
        if self._thread is None or size != self._size or self._limits() != self._limits_in_use:
            try:
                self._open(size, fps, frame.timestamp)
            except ValueError as exc:
                self._drop(exc)
                return None
        else:
            self._follow_rate(fps, frame.timestamp)
        assert self._thread is not None
        assert self._transcoder is not None
        self._count += 1
        if (self._count - 1) % self._keep_every:
            return None
        force, self._force_idr = self._force_idr, False
        pts = self._smoother.next_pts(frame.timestamp)
        work = functools.partial(_encode, self._transcoder, frame.data, pts, force)
        try:
            return await self._thread.run(work, self._spent)
        except ProtocolError as exc:
            self._drop(exc)
            return None

    def _drop(self, reason: Exception) -> None:
        self._dropped.log(
            logging.WARNING, "picture", "%s: dropping a picture: %s", self._name, reason
        )

    @property
    def origin(self) -> float:
        return self._origin

    def _camera_fps(self, now: float) -> float | None:
        """The camera's rate; None while a cold encoder waits a few pictures to measure it."""
        if self._size is not None:
            return self._meter.fps or self._fps
        if self._meter.samples >= FPS_SAMPLES:
            return self._meter.fps
        if self._waiting_since is None:
            self._waiting_since = now
        if now - self._waiting_since < FPS_WAIT:
            return None
        return self._meter.fps or DEFAULT_FPS

    def _follow_rate(self, fps: float, now: float) -> None:
        """Decimate for a camera rate that has settled elsewhere, keeping the encoder."""
        if abs(fps - self._fps) <= RATE_CHANGE * self._fps:
            self._rate_off_since = None
            return
        if self._rate_off_since is None:
            self._rate_off_since = now
        if now - self._rate_off_since >= RATE_SETTLE:
            log.info("%s: the camera now sends %g fps", self._name, fps)
            self._fps = fps
            self._keep_every = decimation(fps, self._limits_in_use.max_fps)
            self._rate_off_since = None

    def _open(self, size: tuple[int, int], fps: float, now: float) -> None:
        """Replace the encoder with one for pictures of ``size`` at ``fps``; ValueError, with
        the running encoder kept, when no H.264 level takes what that would encode."""
        limits = self._limits()
        settings = encoder_settings(size, fps, limits)
        h264_level(settings.width, settings.height, settings.fps, settings.bitrate)
        if self._thread is None:
            self._thread = self._codecs.acquire()
        elif self._transcoder is not None:
            heap.give_back_soon()  # the encoder it replaces frees its buffers
        self._limits_in_use = limits
        log.info(
            "%s: encoding %dx%d at %g fps, %d kbit/s",
            self._name,
            settings.width,
            settings.height,
            settings.fps,
            settings.bitrate // 1000,
        )
        self._transcoder = VideoTranscoder(settings, self._thread.decoder)
        self._spent.opens += 1
        self._smoother = TimestampSmoother(settings.fps)
        self._size, self._fps = size, fps
        self._origin = now
        self._keep_every = decimation(fps, self._limits_in_use.max_fps)
        self._count = 0
        self._rate_off_since = None
        self._force_idr = False  # a new encoder starts with an IDR anyway


def _encode(
    transcoder: VideoTranscoder, jpeg: bytes, pts_90k: int, force_idr: bool
) -> tuple[EncodedAccessUnit, list[bytes]] | None:
    """On the codec thread: the access unit, split into its NAL units there too."""
    unit = transcoder.encode(jpeg, pts_90k, force_idr)
    return None if unit is None else (unit, split_annexb(unit.data))


class CameraMedia:
    """One camera's streams: ``stream(profile)`` for the RTSP server, ``snapshot()`` for HTTP."""

    def __init__(
        self,
        name: str,
        driver: CameraDriver,
        *,
        audio: AudioTarget | None = "pcmu",
        idle_grace: float = 10.0,
        stall_timeout: float = 10.0,
        backoff: Backoff = CAMERA_BACKOFF,
    ) -> None:
        self.name = name
        self._driver = driver
        self._rate = RateMeter()
        self.frames: Fanout[JpegFrame] = Fanout(
            self._camera_frames,
            name=f"{name} video",
            idle_grace=idle_grace,
            stall_timeout=stall_timeout,
            backoff=backoff,
        )
        audio_format = driver.capabilities.audio_in if audio is not None else None
        self.audio: Fanout[AudioUnit] | None = None
        self._audio_track: MediaTrack | None = None
        if audio is not None and audio_format is not None:
            self._audio_track = _audio_track(audio_format, audio)
            self.audio = Fanout(
                lambda: self._audio_units(audio_format, audio),
                name=f"{name} audio",
                idle_grace=idle_grace,
                stall_timeout=stall_timeout,
                backoff=backoff,
            )
        self._limits = dict(PROFILE_LIMITS)
        self.encoding: dict[Profile, EncoderTime] = {}  # each H.264 profile's encoders, summed
        self.codecs = SharedCodecThread(f"{name} codecs")

    @property
    def fps(self) -> float | None:
        """The camera's measured frame rate, once it has streamed."""
        return self._rate.fps

    @property
    def has_audio(self) -> bool:
        return self._audio_track is not None

    @property
    def audio_track(self) -> MediaTrack | None:
        """How the camera's sound is served (codec, rate), None without audio."""
        return self._audio_track

    def camera_size(self) -> tuple[int, int] | None:
        """The camera's picture size: from its latest picture, else what it reports."""
        latest = self.frames.latest
        if latest is not None:
            with contextlib.suppress(ProtocolError):
                return jpeg_size(latest.data)
        return self._driver.capabilities.resolution

    def limits(self, profile: Profile) -> VideoLimits:
        return self._limits[profile]

    def set_limits(self, profile: Profile, limits: VideoLimits) -> None:
        """Change what an H.264 profile encodes; a running encoder reopens at its next picture
        (viewers see an IDR with the new parameter sets)."""
        if profile is Profile.JPEG:
            raise ValueError("the jpeg profile passes the camera's pictures through untouched")
        self._limits[profile] = limits

    def encoder_settings(self, profile: Profile, size: tuple[int, int]) -> EncoderSettings:
        """What the profile encodes for a camera picture of ``size``."""
        return encoder_settings(size, self._rate.fps or DEFAULT_FPS, self._limits[profile])

    def stream(self, profile: Profile) -> StreamSpec:
        """The profile's stream, encoding only while its upstream is pulled.

        Every call makes a new pipeline (for H.264, a new encoder) with tracks of its own: the
        one serving the profile keeps one and shares it among its viewers (bridge.app keeps an
        RTSP source per camera profile).
        """
        video = MediaTrack(Codec.JPEG if profile is Profile.JPEG else Codec.H264)
        request_keyframe: Callable[[], None] | None = None
        if profile is Profile.JPEG:

            def open_upstream() -> AsyncIterator[AccessUnit]:
                return self._jpeg_units(video)

        else:
            encoder = _H264Encoder(
                self.name,
                profile,
                lambda: self._limits[profile],
                self._rate,
                spent=self.encoding.setdefault(profile, EncoderTime()),
                codecs=self.codecs,
            )
            request_keyframe = encoder.request_keyframe

            def open_upstream() -> AsyncIterator[AccessUnit]:
                return self._h264_units(video, encoder)

        tracks = [video]
        if self._audio_track is not None:
            tracks.append(replace(self._audio_track))  # each profile's tracks are its own
        return StreamSpec(
            f"{self.name}/{profile}",
            tuple(tracks),
            open_upstream,
            request_keyframe,
            idle_grace=PROFILE_GRACE,
            # The camera fan-outs beneath detect stalls and reconnect; a stalled profile has
            # nothing of its own to restart.
            stall_timeout=math.inf,
        )

    async def snapshot(self) -> bytes:
        """A current JPEG: the running stream's latest picture, else one fetched for it."""
        latest = self.frames.latest
        fresh = latest is not None and time.monotonic() - latest.timestamp <= SNAPSHOT_MAX_AGE
        if self.frames.running and fresh:
            assert latest is not None
            return latest.data
        if self._driver.capabilities.snapshot:
            return await self._driver.snapshot()
        async with asyncio.timeout(SNAPSHOT_TIMEOUT), self.frames.subscribe(1) as pictures:
            return (await pictures.get()).data

    async def close(self) -> None:
        """Stop pulling the camera; close what serves this media's streams first."""
        await self.frames.close()
        if self.audio is not None:
            await self.audio.close()

    # -- upstreams --------------------------------------------------------------------------

    async def _camera_frames(self) -> AsyncIterator[JpegFrame]:
        self._rate.forget_gap()
        frames = self._driver.video_frames()
        try:
            async for frame in frames:
                self._rate.arrived(frame.timestamp)
                yield frame
        finally:
            await _aclose(frames)

    async def _audio_units(
        self, source: AudioFormat, target: AudioTarget
    ) -> AsyncIterator[AudioUnit]:
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(1, f"{self.name} audio")
        chunks: AsyncIterator[AudioChunk] = self._driver.audio_chunks()
        try:
            transcoder = await loop.run_in_executor(executor, AudioTranscoder, source, target)
            clock = AudioClock(_frame_samples(target) / transcoder.sample_rate)
            async for chunk in chunks:
                try:
                    frames = await loop.run_in_executor(executor, transcoder.transcode, chunk.data)
                except ProtocolError as exc:
                    log.debug("%s: skipping audio: %s", self.name, exc)
                    continue
                times = clock.times(len(frames), chunk.timestamp)
                for payload, media_time in zip(frames, times, strict=True):
                    yield AudioUnit(payload, media_time, chunk.timestamp)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            await _aclose(chunks)

    def _audio_feed(self) -> AsyncIterator[AccessUnit]:
        async def feed() -> AsyncIterator[AccessUnit]:
            assert self.audio is not None
            async with self.audio.subscribe(8) as units:
                async for unit in units:
                    yield AccessUnit(1, unit.payload, unit.media_time, True, unit.arrival)

        return feed()

    def _with_audio(self, video: AsyncIterator[AccessUnit]) -> AsyncIterator[AccessUnit]:
        if self.audio is None:
            return video
        return merge(video, self._audio_feed())

    def _h264_units(self, track: MediaTrack, encoder: _H264Encoder) -> AsyncIterator[AccessUnit]:
        async def encoded() -> AsyncIterator[AccessUnit]:
            try:
                async with self.frames.subscribe(2) as frames:
                    async for frame in frames:
                        encoded = await encoder.encode(frame)
                        if encoded is None:
                            continue
                        unit, nal_units = encoded
                        track.framerate = self._rate.fps
                        media_time = encoder.origin + unit.pts_90k / CLOCK_RATE
                        if unit.keyframe:  # this producer is the track's one writer
                            track.learn_parameter_sets(nal_units)
                        yield AccessUnit(0, nal_units, media_time, unit.keyframe, frame.timestamp)
            finally:
                encoder.close()

        return self._with_audio(encoded())

    def _jpeg_units(self, track: MediaTrack) -> AsyncIterator[AccessUnit]:
        async def pictures() -> AsyncIterator[AccessUnit]:
            smoother: TimestampSmoother | None = None
            origin = 0.0
            async with self.frames.subscribe(2) as frames:
                async for frame in frames:
                    if smoother is None:
                        smoother, origin = TimestampSmoother(self._rate.fps), frame.timestamp
                    track.framerate = self._rate.fps
                    media_time = origin + smoother.next_pts(frame.timestamp) / CLOCK_RATE
                    yield AccessUnit(0, frame.data, media_time, True, frame.timestamp)

        return self._with_audio(pictures())


def _frame_samples(target: AudioTarget) -> int:
    return AAC_FRAME_SAMPLES if target == "aac" else PCMU_FRAME_BYTES


def _audio_track(source: AudioFormat, target: AudioTarget) -> MediaTrack:
    if target == "pcmu":
        return MediaTrack(Codec.PCMU)
    probe = AudioTranscoder(source, "aac")
    return MediaTrack(Codec.AAC, sample_rate=probe.sample_rate, aac_config=probe.aac_config())


async def _aclose(iterator: AsyncIterator[object]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(CameraError):
            await aclose()
