"""Motion from pixels: the detector on synthetic luma (plain bytes), on the emulators' real JPEG
pictures, and running on a camera's fan-out while, and only while, its events are iterated."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
from collections.abc import AsyncIterator, Iterator

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cameras.base import CameraEvent, EventKind, JpegFrame
from bridge.config import MotionConfig
from bridge.errors import ProtocolError
from bridge.fanout import Fanout
from bridge.media import motion
from bridge.media.motion import (
    ANALYSIS_FPS,
    START_PICTURES,
    LumaDecoder,
    MotionDetector,
    MotionSettings,
    PixelMotion,
)

# The module, not its names: pytest would try to collect a class called TestPattern.
from bridge.simulator import media as simulated
from bridge.simulator.core import FrameHub

DEFAULTS = MotionConfig()  # what a user gets without a motion: section
SETTINGS = MotionSettings(DEFAULTS.sensitivity, DEFAULTS.min_area)
WIDTH, HEIGHT = motion.ANALYSIS_SIZE
STEP = 1 / ANALYSIS_FPS  # seconds between analysed pictures
NOON = datetime.datetime(2024, 1, 1, 12, 58, 50, tzinfo=datetime.UTC)


@functools.cache
def texture() -> bytes:
    """A still scene of WIDTH x HEIGHT luma: diagonal stripes of 60..179."""
    return bytes(60 + (col * 7 + row * 13) % 120 for row in range(HEIGHT) for col in range(WIDTH))


def scene(
    block: tuple[int, int, int] | None = None, gain: float = 1.0, noise: bytes = b""
) -> bytes:
    """The still scene with a bright square block (left, top, side) on it, its brightness
    times ``gain``, each pixel moved by the next byte of ``noise`` (a step of -3..3)."""
    pixels = bytearray(texture())
    if block is not None:
        left, top, side = block
        right = min(WIDTH, left + side)
        for row in range(top, min(HEIGHT, top + side)):
            pixels[row * WIDTH + left : row * WIDTH + right] = bytes([235]) * (right - left)
    if noise or gain != 1.0:
        steps = [byte % 7 - 3 for byte in noise] or [0]
        pixels = bytearray(
            min(255, max(0, round((value + steps[i % len(steps)]) * gain)))
            for i, value in enumerate(pixels)
        )
    return bytes(pixels)


def run(detector: MotionDetector, pictures: list[bytes], start: float = 0.0) -> list[bool | None]:
    """Each picture's decision, pictures STEP seconds apart from ``start``."""
    return [
        detector.feed(picture, WIDTH, HEIGHT, start + i * STEP)
        for i, picture in enumerate(pictures)
    ]


def walk(start: int, steps: int, side: int = 10) -> list[bytes]:
    """A block walking right (and a little down) three pixels a picture."""
    return [scene((start + 3 * i, 10 + i // 3, side)) for i in range(steps)]


# -- the detector ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(noise=st.lists(st.binary(min_size=64, max_size=64), min_size=20, max_size=20))
def test_a_still_scene_with_jpeg_noise_is_not_motion(noise: list[bytes]) -> None:
    detector = MotionDetector(SETTINGS)
    assert run(detector, [scene(noise=n) for n in noise]) == [None] * 20
    assert not detector.active


@settings(max_examples=25, deadline=None)
@given(gain=st.floats(0.5, 1.8), after=st.integers(1, 10))
def test_a_change_of_brightness_is_not_motion(gain: float, after: int) -> None:
    """Auto exposure or a cloud: the whole picture darker or brighter at once, or by degrees."""
    detector = MotionDetector(SETTINGS)
    sudden = [scene()] * after + [scene(gain=gain)] * 10
    assert run(detector, sudden) == [None] * len(sudden)
    ramp = [scene(gain=1 + (gain - 1) * i / 10) for i in range(11)]
    assert run(detector, ramp, start=10.0) == [None] * len(ramp)


def test_a_moving_block_is_motion_until_it_has_stood_still_for_the_hold_time() -> None:
    detector = MotionDetector(SETTINGS)
    decisions = run(detector, [scene(), *walk(5, 15)])
    assert decisions.index(True) == START_PICTURES  # the background, then pictures in a row
    assert decisions.count(True) == 1
    assert detector.area >= SETTINGS.min_area
    last_move = 15 * STEP
    resting = [scene((5 + 3 * 14, 10 + 14 // 3, 10))] * 40
    decisions = run(detector, resting, start=last_move + STEP)
    ended = last_move + STEP + decisions.index(False) * STEP
    assert decisions.count(False) == 1
    # The standing block fades into the background within a second or two, then the hold.
    assert last_move + SETTINGS.hold <= ended <= last_move + SETTINGS.hold + 2.0
    assert not detector.active


def test_a_short_pause_does_not_end_the_motion() -> None:
    detector = MotionDetector(SETTINGS)
    assert True in run(detector, [scene(), *walk(5, 8)])
    pause = [scene((5 + 3 * 7, 12, 10))] * 6  # 1.2 s, less than the hold
    assert run(detector, pause, start=9 * STEP) == [None] * 6
    assert run(detector, walk(30, 6), start=15 * STEP) == [None] * 6
    assert detector.active


def test_a_block_smaller_than_the_minimum_area_is_not_motion() -> None:
    detector = MotionDetector(SETTINGS)
    side = 4  # 16 pixels, 0.5 % of the picture: moving, it changes about 1 %
    assert run(detector, [scene(), *walk(5, 15, side)]) == [None] * 16
    assert 0 < detector.area < SETTINGS.min_area
    less_sensitive = MotionDetector(MotionSettings(DEFAULTS.sensitivity, min_area=0.5))
    assert True in run(less_sensitive, [scene(), *walk(5, 15, side)])


def test_changes_scattered_over_the_picture_are_not_one_region() -> None:
    """Isolated pixels (sparkle, snow) add up to 25 % of the picture but touch nowhere."""
    detector = MotionDetector(SETTINGS)
    sparkle = bytearray(scene())
    for index in range(len(sparkle)):
        row, col = divmod(index, WIDTH)
        if row % 2 == 0 and col % 2 == 0:
            sparkle[index] = 255 if sparkle[index] < 128 else 0
    assert run(detector, [scene(), bytes(sparkle), scene(), bytes(sparkle)] * 3) == [None] * 12
    assert detector.area == pytest.approx(100 / len(sparkle))


def test_most_of_the_picture_changing_at_once_is_learnt_not_reported() -> None:
    """A light switched on, or the camera turned to another view."""
    detector = MotionDetector(SETTINGS)
    other_view = bytes(255 - value for value in scene())
    assert run(detector, [scene(), scene(), *[other_view] * 5]) == [None] * 7
    assert detector.area == 0.0


def test_a_new_picture_size_starts_a_new_background() -> None:
    detector = MotionDetector(SETTINGS)
    run(detector, [scene(), *walk(5, 4)])
    assert detector.active
    half = bytes(WIDTH * HEIGHT // 4)
    assert detector.feed(half, WIDTH // 2, HEIGHT // 2, 1.0) is None
    assert detector.feed(half, WIDTH // 2, HEIGHT // 2, 1.2) is None
    assert detector.feed(half, WIDTH // 2, HEIGHT // 2, 3.5) is False  # nothing moves in it


def test_losing_the_pictures_ends_the_motion() -> None:
    detector = MotionDetector(SETTINGS)
    assert detector.lost() is None
    run(detector, [scene(), *walk(5, 4)])
    assert detector.active
    assert detector.lost() is False
    assert not detector.active
    assert detector.feed(scene(), WIDTH, HEIGHT, 2.0) is None  # a new background, no motion


@given(low=st.integers(1, 100), high=st.integers(1, 100))
def test_higher_sensitivity_counts_fainter_changes(low: int, high: int) -> None:
    less, more = MotionSettings(min(low, high), 1.0), MotionSettings(max(low, high), 1.0)
    assert 0 < more.threshold <= less.threshold < 255


@pytest.mark.parametrize(
    ("sensitivity", "min_area", "hold", "message"),
    [
        (0, 1.0, 2.0, "sensitivity must be 1..100"),
        (101, 1.0, 2.0, "sensitivity must be 1..100"),
        (50, 0.0, 2.0, r"min_area must be in \(0, 100\]"),
        (50, 100.5, 2.0, r"min_area must be in \(0, 100\]"),
        (50, 1.0, -1.0, "hold must not be negative"),
    ],
)
def test_settings_out_of_range_are_refused(
    sensitivity: int, min_area: float, hold: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MotionSettings(sensitivity, min_area, hold)


# -- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (320, 240), (176, 144)])
def test_a_jpeg_decodes_to_the_small_luma_of_its_full_picture(width: int, height: int) -> None:
    jpeg = simulated.TestPattern(width, height).render(3, NOON)
    small = LumaDecoder().decode(jpeg)
    assert small.shape == (HEIGHT, WIDTH)
    assert small.dtype == np.uint8
    # The same picture decoded at full size and then reduced: reduced while decoding, it
    # differs only by rounding and the block averages of the reduced decode (up to about 5 grey
    # levels on the emulator's grid lines at 320x240; another picture would differ by tens).
    (full,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))
    reference = full.reformat(WIDTH, HEIGHT, format="gray", interpolation="AREA").to_ndarray()
    assert float(np.mean(np.abs(small.astype(float) - reference))) < 6.0


def test_an_undecodable_picture_is_refused_and_the_next_one_decodes() -> None:
    decoder = LumaDecoder()
    jpeg = simulated.TestPattern(320, 240).render(1, NOON)
    with pytest.raises(ProtocolError):
        decoder.decode(jpeg[:200] + bytes(len(jpeg) - 200))
    with pytest.raises(ProtocolError):
        decoder.decode(b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03")  # 65535x65535
    assert decoder.decode(jpeg).shape == (HEIGHT, WIDTH)


# -- the emulators' pictures ------------------------------------------------------------------


def emulated(
    width: int, height: int, fps: float, seconds: float, moving: bool
) -> Iterator[tuple[bytes, float]]:
    """The emulator's pictures analysed at ANALYSIS_FPS, with their times: its box standing
    (a calm scene: the clock and the frame counter change) or moving."""
    pattern = simulated.TestPattern(width, height)
    every = max(1, round(fps / ANALYSIS_FPS))
    for number in range(0, round(seconds * fps), every):
        at = number / fps
        travel = FrameHub.BOX_START + (number if moving else 0)
        clock = NOON + datetime.timedelta(seconds=at)
        yield pattern.render(number, clock, box_travel=travel), at


@pytest.mark.parametrize(("width", "height", "fps"), [(640, 480, 10.0), (320, 240, 15.0)])
def test_the_emulators_calm_scene_is_not_motion(width: int, height: int, fps: float) -> None:
    """Two minutes of ticking clock (across an hour: every digit turns over) and a frame
    counter that changes every picture: never motion with the default settings."""
    decoder, detector = LumaDecoder(), MotionDetector(SETTINGS)
    largest = 0.0
    for jpeg, at in emulated(width, height, fps, 130.0, moving=False):
        assert detector.feed(decoder.decode(jpeg), WIDTH, HEIGHT, at) is None
        largest = max(largest, detector.area)
    assert 0 < largest < SETTINGS.min_area / 1.5  # the clock shows, with room to spare


@pytest.mark.parametrize(("width", "height", "fps"), [(640, 480, 10.0), (1280, 720, 5.0)])
def test_the_emulators_moving_box_is_motion(width: int, height: int, fps: float) -> None:
    decoder, detector = LumaDecoder(), MotionDetector(SETTINGS)
    for jpeg, at in emulated(width, height, fps, 1.0, moving=False):
        detector.feed(decoder.decode(jpeg), WIDTH, HEIGHT, at)
    started = [
        at
        for jpeg, at in emulated(width, height, fps, 3.0, moving=True)
        if detector.feed(decoder.decode(jpeg), WIDTH, HEIGHT, 1.0 + at)
    ]
    assert started
    assert started[0] <= 1.0


# -- on a camera's fan-out ----------------------------------------------------------------------


class Camera:
    """A camera's picture upstream: the emulator's test pattern at 10 frames a second of
    picture time, delivered five times faster than real time; the box moves while ``moving``
    is set. ``sent`` counts the pictures, ``pause`` stops them (as a camera that hangs)."""

    FPS = 10.0

    def __init__(self) -> None:
        self.pattern = simulated.TestPattern(320, 240)
        self.moving = False
        self.pause = asyncio.Event()
        self.calm_shown = asyncio.Event()  # set after 20 pictures
        self.released = asyncio.Event()  # the upstream was closed
        self.sent = 0
        self.moved_at = 0.0  # the time of the last picture in which the box moved
        self.frames = Fanout(self.pictures, name="camera video", idle_grace=0.0)

    async def pictures(self) -> AsyncIterator[JpegFrame]:
        travel = FrameHub.BOX_START
        try:
            while not self.pause.is_set():
                self.sent += 1
                at = self.sent / self.FPS
                if self.moving:
                    travel += 1
                    self.moved_at = at
                clock = NOON + datetime.timedelta(seconds=at)
                render = self.pattern.render
                jpeg = await asyncio.to_thread(render, self.sent, clock, box_travel=travel)
                yield JpegFrame(jpeg, at)
                if self.sent == 20:
                    self.calm_shown.set()
                await asyncio.sleep(0.2 / self.FPS)
            await asyncio.Event().wait()  # connected, but no pictures
        finally:
            self.released.set()


async def next_event(events: AsyncIterator[CameraEvent], within: float = 10.0) -> CameraEvent:
    async with asyncio.timeout(within):
        return await anext(events)


@contextlib.asynccontextmanager
async def iterating(pixels: PixelMotion) -> AsyncIterator[AsyncIterator[CameraEvent]]:
    events = pixels.events()
    try:
        yield events
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def test_pixel_motion_pulls_and_decodes_only_while_its_events_are_iterated() -> None:
    camera = Camera()
    pixels = PixelMotion(camera.frames, SETTINGS, name="cam")
    unused = pixels.events()
    await asyncio.sleep(0.2)
    assert (camera.frames.connects, camera.sent, pixels.decoded) == (0, 0, 0)
    await unused.aclose()  # type: ignore[attr-defined]

    async with iterating(pixels) as events:
        waiting = asyncio.create_task(next_event(events))
        await asyncio.wait_for(camera.calm_shown.wait(), 10)
        assert not waiting.done()  # a calm scene: no motion
        camera.moving = True
        started = await waiting
        assert (started.kind, started.active) == (EventKind.MOTION, True)
        camera.moving = False
        stopped = await next_event(events)
        assert (stopped.kind, stopped.active) == (EventKind.MOTION, False)
        assert stopped.timestamp >= camera.moved_at + SETTINGS.hold
        # Five pictures of a 10 fps camera's second are analysed (some more are dropped
        # while the worker is busy), not all ten.
        assert 0 < pixels.decoded <= camera.sent * ANALYSIS_FPS / Camera.FPS + 1

    decoded, sent = pixels.decoded, camera.sent
    # Released once the last subscriber left (no idle grace here).
    await asyncio.wait_for(camera.released.wait(), 5)
    await asyncio.sleep(0.3)
    assert (pixels.decoded, camera.sent) == (decoded, sent)
    await camera.frames.close()


async def test_a_camera_that_stops_sending_pictures_ends_the_motion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(motion, "STALE_SECONDS", 0.5)
    camera = Camera()
    camera.moving = True
    pixels = PixelMotion(camera.frames, SETTINGS, name="cam")
    async with iterating(pixels) as events:
        assert (await next_event(events)).active is True
        camera.pause.set()
        assert (await next_event(events)).active is False
    await camera.frames.close()
