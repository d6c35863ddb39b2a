"""Motion seen in a camera's pictures, for cameras whose CGI reports none (and for any camera
whose config asks for it).

::

    CameraMedia.frames --Fanout (depth 1)--> every picture >= 1/ANALYSIS_FPS apart
        --worker thread: LumaDecoder (JPEG -> 64x48 luma, decoded at 1/4 or 1/8 size)
                         MotionDetector (background, changed pixels, largest region, hysteresis)
        --> CameraEvent(MOTION, start/stop)

:class:`MotionDetector` is the pure core: small luma pictures and their arrival times in,
motion start and stop decisions out. Each picture is compared with a running average of the
previous ones (the background), after scaling the background by the picture's overall
brightness change (the median ratio of the two, so auto exposure or a cloud is not motion); a
pixel has changed when it differs by more than the sensitivity's threshold, and the picture
shows motion when the largest connected region of changed pixels covers ``min_area`` percent of
it. A region that size is a moving thing, not JPEG noise or a camera's clock text ticking
over (one or two digits change at a time, well under a percent of the picture). When most of
the picture changes at once (a light switched, the camera turned) the background is learnt
anew instead. Motion starts after :data:`START_PICTURES` such pictures in a row and ends once
none has shown any for ``hold`` seconds, so a pause in a walk does not flap the event.

:class:`PixelMotion` runs it on the camera's shared upstream (one connection however many
viewers): at most :data:`ANALYSIS_FPS` pictures a second (the newest one when the worker is
busy; the others are dropped, never queued), decoded off the event loop because a detailed VGA
JPEG takes about 2 ms to decode even at 1/8 size (its entropy coding has to be read whole).
It pulls pictures only while someone iterates its ``events()``; the event hub does that only
while a client is subscribed to the camera's events.

:func:`camera_events` puts the camera's own reports and the pixels' motion together: the
:class:`CameraEvents` the ONVIF event hub takes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import av
import numpy as np
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation
from numpy.typing import NDArray

from bridge.aiter import merge
from bridge.cameras.base import CameraDriver, CameraEvent, EventKind, JpegFrame
from bridge.codecs.jpeg import check_header
from bridge.errors import ProtocolError
from bridge.fanout import Fanout
from bridge.media.transcode import lowres_for
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

ANALYSIS_SIZE = (64, 48)  # each analysed pixel is the same share of any camera's picture
ANALYSIS_FPS = 5.0  # pictures analysed per second at most; motion lasts longer than 0.2 s
START_PICTURES = 2  # pictures in a row with motion before it starts: one glitch is not motion
BACKGROUND_RATE = 0.25  # share of each picture mixed into the background (~1 s at 5 fps)
GLOBAL_CHANGE = 0.5  # when more than this share of the picture changed, relearn, not motion
DARK = 16  # background pixels darker than this say nothing about a brightness ratio
STALE_SECONDS = 5.0  # no picture for this long: nothing is seen moving, relearn on the next
HOLD_SECONDS = 2.0  # a pause in a walk is not the end of the motion


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """``sensitivity`` 1..100 (100 reports the faintest change), ``min_area`` the percent of
    the picture a moving region must cover, ``hold`` seconds without motion before it ends.
    (The config's defaults are the ones for users: bridge.config.MotionConfig.)"""

    sensitivity: int
    min_area: float
    hold: float = HOLD_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.sensitivity <= 100:
            raise ValueError(f"sensitivity must be 1..100, not {self.sensitivity}")
        if not 0 < self.min_area <= 100:
            raise ValueError(f"min_area must be in (0, 100] percent, not {self.min_area}")
        if self.hold < 0:
            raise ValueError(f"hold must not be negative, not {self.hold}")

    @property
    def threshold(self) -> float:
        """How far (0..255) a pixel must differ from the background to count as changed:
        43 at sensitivity 1, 23 at 50, 3 at 100. Downscaled JPEG noise stays within 2-3."""
        return 3 + 0.4 * (100 - self.sensitivity)


class MotionDetector:
    """Luma pictures in, motion start (True) and stop (False) out. Pure and synchronous.

    ``area`` is the largest changed region of the latest picture, in percent of it.
    """

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self.active = False
        self.area = 0.0
        self._background: NDArray[np.float32] | None = None
        self._streak = 0
        self._last_motion = 0.0

    def feed(
        self, luma: bytes | NDArray[np.uint8], width: int, height: int, at: float
    ) -> bool | None:
        """Analyse one picture (``width`` x ``height`` 8-bit luma, rows packed) that arrived
        at ``at`` (seconds, monotonic); the new motion state if it changed, else None."""
        picture = np.frombuffer(luma, np.uint8, width * height).reshape(height, width)
        current = picture.astype(np.float32)
        background = self._background
        if background is None or background.shape != current.shape:
            self._background = current
            self.area = 0.0
            return self._decide(False, at)
        changed = np.abs(current - _expected(background, current)) > self.settings.threshold
        if changed.mean() > GLOBAL_CHANGE:
            self._background = current
            self.area = 0.0
            return self._decide(False, at)
        self.area = 100.0 * _largest_region(changed) / changed.size
        background += BACKGROUND_RATE * (current - background)
        return self._decide(self.area >= self.settings.min_area, at)

    def lost(self) -> bool | None:
        """No pictures any more: nothing is seen moving (False if motion was on), and the
        next picture starts a new background."""
        self._background = None
        self._streak = 0
        self.area = 0.0
        if self.active:
            self.active = False
            return False
        return None

    def _decide(self, moving: bool, at: float) -> bool | None:
        if moving:
            self._streak += 1
            self._last_motion = at
            if not self.active and self._streak >= START_PICTURES:
                self.active = True
                return True
            return None
        self._streak = 0
        if self.active and at - self._last_motion >= self.settings.hold:
            self.active = False
            return False
        return None


def _expected(background: NDArray[np.float32], current: NDArray[np.float32]) -> NDArray[np.float32]:
    """The background as it would look at the current picture's overall brightness."""
    lit = background >= DARK
    if np.count_nonzero(lit) < background.size // 4:
        return background
    gain = float(np.median(current[lit] / background[lit]))
    expected: NDArray[np.float32] = np.minimum(background * min(4.0, max(0.25, gain)), 255.0)
    return expected


def _largest_region(changed: NDArray[np.bool_]) -> int:
    """Pixels in the largest 8-connected region of ``changed`` (a flood fill from each pixel
    not yet reached; a calm picture has a few dozen changed pixels, a busy one hundreds)."""
    rows, cols = np.nonzero(changed)
    unreached = set(zip(rows.tolist(), cols.tolist(), strict=True))
    largest = 0
    while unreached:
        stack = [unreached.pop()]
        size = 0
        while stack:
            row, col = stack.pop()
            size += 1
            for step_row, step_col in _NEIGHBOURS:
                neighbour = (row + step_row, col + step_col)
                if neighbour in unreached:
                    unreached.remove(neighbour)
                    stack.append(neighbour)
        largest = max(largest, size)
    return largest


_NEIGHBOURS = [(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1) if r or c]


class LumaDecoder:
    """JPEG to the small luma picture the detector analyses (``ANALYSIS_SIZE``).

    The mjpeg decoder reduces the picture while it decodes (``lowres``: 1/4 or 1/8 size, which
    skips most of the inverse DCT), then swscale averages it down to the analysis size.
    ``reduced=False`` decodes at full size instead: what the benchmark compares with.
    Synchronous and not thread-safe: one thread uses it.
    """

    def __init__(self, size: tuple[int, int] = ANALYSIS_SIZE, *, reduced: bool = True) -> None:
        self.size = size
        self._reduced = reduced
        self._source: tuple[int, int] | None = None
        self._decoder: VideoCodecContext | None = None

    def decode(self, jpeg: bytes) -> NDArray[np.uint8]:
        """The picture's luma, ``size[1]`` rows of ``size[0]``; ProtocolError for a picture
        that cannot be decoded or whose header the gateway refuses."""
        source = check_header(jpeg).size
        if self._decoder is None or source != self._source:
            self._source = source
            self._decoder = _mjpeg_decoder(lowres_for(source, self.size) if self._reduced else 0)
        try:
            frames = self._decoder.decode(av.Packet(jpeg))
        except (av.error.FFmpegError, MemoryError) as exc:
            self._decoder = None  # a fresh decoder for the next picture
            raise ProtocolError(f"undecodable JPEG ({source[0]}x{source[1]}): {exc}") from exc
        if not frames:
            raise ProtocolError(f"JPEG ({source[0]}x{source[1]}) decoded to no picture")
        picture = frames[0]
        assert isinstance(picture, VideoFrame)
        width, height = self.size
        small = picture.reformat(
            width, height, format="gray", interpolation=Interpolation.AREA, threads=1
        )
        # Rows packed, as the detector reads them (a copy only where lines were padded).
        return np.ascontiguousarray(small.to_ndarray(), np.uint8)


def _mjpeg_decoder(lowres: int) -> VideoCodecContext:
    decoder = CodecContext.create("mjpeg", "r")
    assert isinstance(decoder, VideoCodecContext)
    decoder.thread_count = 1
    if lowres:
        decoder.options = {"lowres": str(lowres)}
    return decoder


class PixelMotion:
    """Motion events from one camera's pictures (see the module docstring).

    ``decoded`` counts the pictures analysed so far, ``dropped`` those that could not be.
    """

    def __init__(self, frames: Fanout[JpegFrame], settings: MotionSettings, *, name: str) -> None:
        self._frames = frames
        self.settings = settings
        self.name = name
        self.decoded = 0
        self.dropped = 0
        self._undecodable = ThrottledLog(log)

    async def events(self) -> AsyncIterator[CameraEvent]:
        """Motion starts and stops, while iterated; pictures are pulled only meanwhile."""
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(1, f"{self.name} motion")
        detector = MotionDetector(self.settings)
        decoder = LumaDecoder()
        interval = 0.9 / ANALYSIS_FPS  # 10 % early still counts: arrival times jitter
        last = -float("inf")
        try:
            async with self._frames.subscribe(1) as frames:
                while True:
                    try:
                        async with asyncio.timeout(STALE_SECONDS):
                            frame = await frames.get()
                    except TimeoutError:
                        if detector.lost() is not None:
                            yield CameraEvent(EventKind.MOTION, False, time.monotonic())
                        continue
                    if frame.timestamp - last < interval:
                        continue
                    last = frame.timestamp
                    change = await loop.run_in_executor(
                        executor, self._analyse, decoder, detector, frame
                    )
                    if change is not None:
                        yield CameraEvent(EventKind.MOTION, change, frame.timestamp)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def _analyse(
        self, decoder: LumaDecoder, detector: MotionDetector, frame: JpegFrame
    ) -> bool | None:
        """On the worker thread: one picture decoded and judged."""
        try:
            luma = decoder.decode(frame.data)
        except ProtocolError as exc:
            self.dropped += 1
            self._undecodable.log(
                logging.WARNING, "picture", "%s: motion skips a picture: %s", self.name, exc
            )
            return None
        self.decoded += 1
        width, height = decoder.size
        return detector.feed(luma, width, height, frame.timestamp)


@dataclass(frozen=True, slots=True)
class CameraEvents:
    """A camera's event reports as the gateway serves them: its inputs as the driver reports
    them, and motion from the camera's CGI, from its pictures, or none.

    ``motion`` says whether motion is reported at all; ``open`` starts the reports (until the
    iterator is closed); ``pixels`` is the picture detector where there is one.
    """

    motion: bool
    open: Callable[[], AsyncIterator[CameraEvent]]
    pixels: PixelMotion | None = None


async def _nothing() -> AsyncIterator[CameraEvent]:
    """A camera that reports nothing: no event, and no end (an end would be reconnected)."""
    await asyncio.get_running_loop().create_future()  # never done; closing cancels it
    yield CameraEvent.__new__(CameraEvent)  # never reached; makes this an async generator


def camera_events(
    driver: CameraDriver,
    frames: Fanout[JpegFrame],
    *,
    camera_motion: bool,
    pixels: MotionSettings | None,
    name: str,
) -> CameraEvents:
    """The camera's events: the driver's reports (its motion only with ``camera_motion``),
    merged with motion found in ``frames`` when ``pixels`` gives the detector's settings."""
    capabilities = driver.capabilities
    camera_motion = camera_motion and capabilities.motion_events
    detector = PixelMotion(frames, pixels, name=name) if pixels is not None else None

    def open_reports() -> AsyncIterator[CameraEvent]:
        sources: list[AsyncIterator[CameraEvent]] = []
        if capabilities.input_events or camera_motion:
            reports = driver.events()
            sources.append(reports if camera_motion else _without_motion(reports))
        if detector is not None:
            sources.append(detector.events())
        return merge(*sources) if sources else _nothing()

    return CameraEvents(camera_motion or detector is not None, open_reports, detector)


async def _without_motion(reports: AsyncIterator[CameraEvent]) -> AsyncIterator[CameraEvent]:
    """The driver's reports but its motion: the pictures' motion stands in for it."""
    try:
        async for event in reports:
            if event.kind is not EventKind.MOTION:
                yield event
    finally:
        aclose = getattr(reports, "aclose", None)
        if aclose is not None:
            await aclose()
