"""A camera's media: profile sizes and rates, the shared audio/video clock, live reconfiguration."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from aiohttp import web
from conftest import OpenHttp, Serve, StartSim
from hypothesis import given
from hypothesis import strategies as st

from bridge.cameras.base import CameraDriver, Dialect, JpegFrame
from bridge.cameras.hama import VIDEO_PATH, HamaDriver
from bridge.cameras.http import CameraHttp
from bridge.cameras.vapix2 import Vapix2Driver
from bridge.codecs.h264 import parse_sps
from bridge.codecs.jpeg import check_header
from bridge.media.source import (
    AudioClock,
    CameraMedia,
    Profile,
    RateMeter,
    VideoLimits,
    decimation,
    fit_within,
)
from bridge.rtsp.stream import FanoutSource, PacketizedUnit
from bridge.simulator import media as simulated
from bridge.simulator.core import SimOptions
from bridge.simulator.vapix2 import Vapix2Simulator
from bridge.streams import Codec


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((640, 480), (640, 360), (480, 360)),
        ((1280, 720), (640, 360), (640, 360)),
        ((704, 576), (640, 360), (440, 360)),
        ((320, 240), (640, 360), (320, 240)),  # never scaled up
        ((1280, 960), None, (1280, 960)),
        ((642, 482), (321, 241), (320, 240)),  # even sides, as 4:2:0 needs
    ],
)
def test_fit_within(
    size: tuple[int, int], box: tuple[int, int] | None, expected: tuple[int, int]
) -> None:
    assert fit_within(size, box) == expected


@pytest.mark.parametrize(
    ("camera_fps", "max_fps", "keep_every"),
    [(15, 7.5, 2), (10, 7.5, 2), (30, 7.5, 4), (5, 7.5, 1), (10.3, 10, 1), (25, None, 1)],
)
def test_decimation_keeps_every_nth_picture(
    camera_fps: float, max_fps: float | None, keep_every: int
) -> None:
    assert decimation(camera_fps, max_fps) == keep_every


def test_rate_meter_ignores_the_pause_of_a_reconnect() -> None:
    meter = RateMeter()
    for n in range(30):
        meter.arrived(100 + n / 15)
    assert meter.fps == 15.0
    meter.forget_gap()
    for n in range(30):
        meter.arrived(200 + n / 15)
    assert meter.fps == 15.0


@given(
    fps=st.sampled_from([1.0, 5.0, 10.0, 15.0, 25.0]),
    spread=st.floats(0.0, 0.4),
    stalls=st.lists(st.integers(0, 199), max_size=2),
    seed=st.randoms(use_true_random=False),
)
def test_rate_meter_holds_the_camera_rate_through_jitter_and_bursts(
    fps: float, spread: float, stalls: list[int], seed: random.Random
) -> None:
    """Arrivals +-40 % around their slot, and stalls of a loaded host after which the held-back
    pictures arrive together: the measured rate stays the camera's."""
    meter = RateMeter()
    arrivals = [(n + seed.uniform(-spread, spread)) / fps for n in range(200)]
    for stall in stalls:  # pictures held back for 0.3 s arrive at once
        arrivals[stall:] = [max(t, arrivals[stall] + 0.3) for t in arrivals[stall:]]
    for n, arrival in enumerate(arrivals):
        meter.arrived(arrival)
        if n >= 10 * fps:  # once the window is full
            assert meter.fps == pytest.approx(fps, rel=0.2)


def test_rate_meter_follows_a_camera_that_changes_its_rate() -> None:
    meter = RateMeter()
    for n in range(60):
        meter.arrived(n / 15)
    assert meter.fps == 15.0
    for n in range(1, 41):
        meter.arrived(4 + n / 10)
    assert meter.fps == 10.0


def test_audio_clock_counts_samples_and_resyncs_after_a_gap() -> None:
    clock = AudioClock(0.02)
    first = clock.times(5, 10.1)  # five 20 ms frames completed by a chunk arriving at 10.1
    assert first == pytest.approx([10.0, 10.02, 10.04, 10.06, 10.08])
    # A chunk arriving 3 ms late continues the count (nudged by a fraction of the lag).
    assert clock.times(5, 10.203)[0] == pytest.approx(10.1, abs=0.001)
    # Two seconds of silence from the camera: the clock jumps to the arrival time.
    assert clock.times(5, 12.5)[0] == pytest.approx(12.4)


async def _units(
    source: FanoutSource, enough: Callable[[list[PacketizedUnit]], bool]
) -> list[PacketizedUnit]:
    """What a viewer of ``source`` gets until it has ``enough`` (or a deadline long past what
    a loaded 2-core machine needs: a short count then fails the test's own assertions)."""
    units: list[PacketizedUnit] = []
    subscription = source.subscribe()
    try:
        async with asyncio.timeout(30):
            async for unit in subscription:
                units.append(unit)
                if enough(units):
                    break
    except TimeoutError:
        pass
    finally:
        subscription.close()
    return units


def _video(units: list[PacketizedUnit]) -> list[PacketizedUnit]:
    return [u for u in units if u.track == 0]


@pytest.fixture
async def vapix2(start_sim: StartSim, open_http: OpenHttp) -> Vapix2Driver:
    sim = await start_sim(Vapix2Simulator(SimOptions(fps=15)))
    driver = Vapix2Driver(open_http(sim.url, "admin", "admin"))
    await driver.connect()
    return driver


async def test_audio_and_video_share_the_arrival_clock(vapix2: Vapix2Driver) -> None:
    media = CameraMedia("cam", vapix2, audio="aac")
    source = FanoutSource(media.stream(Profile.MAIN))
    try:
        units = await _units(
            source, lambda us: len(_video(us)) >= 15 and len(us) - len(_video(us)) >= 10
        )
    finally:
        await source.close()
        await media.close()
    tracks = source.tracks
    assert [t.codec for t in tracks] == [Codec.H264, Codec.AAC]
    video = _video(units)
    audio = [u for u in units if u.track == 1]
    assert len(video) >= 15
    assert len(audio) >= 10  # 1024-sample AAC frames at 8 kHz: about 8 a second
    now = time.monotonic()
    for unit in video + audio:
        assert unit.arrival is not None
        # Both tracks' media times are on time.monotonic(), close to when the data came: a
        # chunk that arrives late after a stall carries several 128 ms AAC frames, the first
        # of them stamped that much before the chunk's arrival (seen at 0.64 s under load).
        assert abs(unit.media_time - unit.arrival) < 1.0
        assert unit.media_time < now
    times = [u.media_time for u in video]
    assert times == sorted(times)


async def test_new_limits_reopen_the_encoder_at_the_next_picture(vapix2: Vapix2Driver) -> None:
    media = CameraMedia("cam", vapix2, audio=None)
    source = FanoutSource(media.stream(Profile.SUB))
    track = source.tracks[0]
    try:
        before = await _units(source, lambda us: len(us) >= 3)
        media.set_limits(Profile.SUB, VideoLimits(max_size=(320, 240), max_fps=5))
        after = await _units(source, lambda us: len(us) >= 8)
    finally:
        await source.close()
        await media.close()
    assert before
    assert after[0].keyframe  # the reopened encoder starts with an IDR
    assert track.sps is not None
    sps = parse_sps(track.sps)
    assert (sps.width, sps.height) == (320, 240)
    # About 5 a second now, not 7.5: the media clock follows the camera's arrivals.
    steps = sorted(b.media_time - a.media_time for a, b in itertools.pairwise(after))
    assert steps[len(steps) // 2] == pytest.approx(0.2, abs=0.04)
    with pytest.raises(ValueError, match="jpeg"):
        media.set_limits(Profile.JPEG, VideoLimits())


async def test_snapshot_takes_the_running_streams_picture(vapix2: Vapix2Driver) -> None:
    media = CameraMedia("cam", vapix2, audio=None)
    try:
        idle = await media.snapshot()  # nothing streams: one request for a picture
        subscription = media.frames.subscribe()
        try:
            await subscription.get()
            latest = media.frames.latest
            assert latest is not None
            assert await media.snapshot() == latest.data
        finally:
            subscription.close()
    finally:
        await media.close()
    assert idle[:2] == b"\xff\xd8"


# -- hostile pictures (finding 8 of issue 9) --------------------------------------------------

CAMERA_FPS = 15
PICTURES = 30
BAD_EVERY = 5  # pictures 4, 9, 14 ... claim 65000x65000
WARMUP = 3  # pictures a cold encoder spends measuring the camera's rate (FPS_SAMPLES)


def claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with a frame header that claims another size (the scan is unchanged)."""
    at = jpeg.index(b"\xff\xc0") + 5
    return jpeg[:at] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[at + 4 :]


def hostile_pictures() -> list[bytes]:
    pattern = simulated.TestPattern(320, 240)
    now = datetime.datetime.now(datetime.UTC)
    pictures = [pattern.render(n, now) for n in range(PICTURES)]
    return [
        claiming(jpeg, 65000, 65000) if n % BAD_EVERY == BAD_EVERY - 1 else jpeg
        for n, jpeg in enumerate(pictures)
    ]


GOOD = sum(1 for n in range(PICTURES) if n % BAD_EVERY != BAD_EVERY - 1)
_DEADLINE = PICTURES / CAMERA_FPS + 10  # long after the camera's last picture


async def _viewer_units(source: FanoutSource, count: int) -> list[PacketizedUnit]:
    """The video units a viewer of ``source`` gets, until ``count`` arrived (or the camera's
    pictures should long have been encoded)."""
    units: list[PacketizedUnit] = []
    subscription = source.subscribe()
    try:
        async with asyncio.timeout(_DEADLINE):
            async for unit in subscription:
                units += [unit] if unit.track == 0 else []
                if len(units) == count:
                    break
    except TimeoutError:
        pass  # the count below says how many came
    return units


async def _pictures(media: CameraMedia, count: int) -> list[JpegFrame]:
    """The camera's pictures as the media layer takes them in, until ``count`` arrived."""
    pictures: list[JpegFrame] = []
    try:
        async with media.frames.subscribe(count) as subscription, asyncio.timeout(_DEADLINE):
            async for picture in subscription:
                pictures.append(picture)
                if len(pictures) == count:
                    break
    except TimeoutError:
        pass  # the count below says how many came
    return pictures


def _check_log(records: Sequence[logging.LogRecord], dropping_logger: str) -> None:
    """Nothing failed, the encoder opened once at the camera's size, and the bad pictures cost
    one rate-limited warning."""
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == []
    assert not [r for r in records if r.exc_info]
    opened = [r.getMessage() for r in records if "encoding" in r.getMessage()]
    assert len(opened) == 1
    assert opened[0].startswith("cam/main: encoding 320x240 at ")
    drops = [r for r in records if "dropping a picture" in r.getMessage()]
    assert [(r.name, r.levelno) for r in drops] == [(dropping_logger, logging.WARNING)]
    assert "65000x65000" in drops[0].getMessage()


def _hama_sending(
    pictures: Sequence[bytes], pauses: Sequence[float], done: asyncio.Event
) -> web.Application:
    """A camera on hama's video path that sends ``pictures``, each followed by its pause, then
    stays connected, sending nothing, until ``done``."""

    async def video(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(
            headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"}
        )
        await reply.prepare(request)
        for jpeg, pause in zip(pictures, pauses, strict=True):
            await reply.write(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
            await asyncio.sleep(pause)
        await done.wait()
        return reply

    app = web.Application()
    app.router.add_get(VIDEO_PATH, video)
    return app


async def test_a_camera_claiming_65000x65000_loses_only_those_pictures(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The attack: a camera streams good pictures and, every fifth, one whose header claims
    65000x65000. The viewer keeps getting every good picture, the encoder never restarts, no
    traceback reaches the log, and the bad pictures reach neither the encoder nor snapshots."""
    caplog.set_level(logging.INFO)
    pictures = hostile_pictures()
    done = asyncio.Event()
    url = await serve(_hama_sending(pictures, [1 / CAMERA_FPS] * len(pictures), done))
    async with CameraHttp(url, name="cam") as http:
        media = CameraMedia("cam", HamaDriver(http), audio=None)
        source = FanoutSource(media.stream(Profile.MAIN))
        try:
            seen, units = await asyncio.gather(
                _pictures(media, GOOD), _viewer_units(source, GOOD - WARMUP)
            )
            snapshot = await media.snapshot()
        finally:
            done.set()
            await source.close()
            await media.close()

    assert len(units) == GOOD - WARMUP
    assert units[0].keyframe
    assert media.frames.connects == 1  # the camera connection was never dropped
    assert len(seen) == GOOD
    assert {check_header(frame.data).size for frame in seen} == {(320, 240)}
    assert check_header(snapshot).size == (320, 240)
    _check_log(caplog.records, "bridge.cameras.mjpeg")


class _UnscreenedCamera(CameraDriver):
    """A driver that hands its pictures on as they are: the media layer must protect itself."""

    dialect = Dialect.HAMA

    def __init__(self, http: CameraHttp, pictures: Sequence[bytes]) -> None:
        super().__init__(http)
        self._pictures = pictures

    async def video_frames(self) -> AsyncIterator[JpegFrame]:
        for jpeg in self._pictures:
            yield JpegFrame(jpeg, time.monotonic())
            await asyncio.sleep(1 / CAMERA_FPS)
        await asyncio.Event().wait()  # stays connected until released


async def test_the_encoder_drops_what_it_cannot_take_and_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pictures that reach the encoder anyway (a driver that does not screen them): the
    65000x65000 ones and one whose scan is garbage are dropped with one rate-limited warning;
    the encoder is opened once and every good picture is encoded."""
    caplog.set_level(logging.INFO)
    pictures = hostile_pictures()
    scan = pictures[6].index(b"\xff\xda")
    pictures[7] = pictures[6][:scan] + b"\xff\xda\x00\x02" + b"\xff\xd9"  # undecodable
    async with CameraHttp("http://127.0.0.1:9", name="cam") as http:  # never used
        media = CameraMedia("cam", _UnscreenedCamera(http, pictures), audio=None)
        source = FanoutSource(media.stream(Profile.MAIN))
        try:
            units = await _viewer_units(source, GOOD - WARMUP - 1)
        finally:
            await source.close()
            await media.close()
    assert len(units) == GOOD - WARMUP - 1
    _check_log(caplog.records, "bridge.media.source")


async def test_a_jittery_camera_never_reopens_the_encoder(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A 10 fps camera on Wi-Fi, or a loaded host: intervals spread +-40 %, and now and then
    a 0.4 s stall after which three pictures arrive at once. One encoder all along, and the
    pictures' media times still advance steadily."""
    caplog.set_level(logging.INFO)
    rng = random.Random(7)
    count = 60
    pauses = [rng.uniform(0.06, 0.14) for _ in range(count)]
    for stall in (15, 35, 50):
        pauses[stall], pauses[stall + 1], pauses[stall + 2] = 0.4, 0.0, 0.0
    pattern = simulated.TestPattern(320, 240)
    now = datetime.datetime.now(datetime.UTC)
    done = asyncio.Event()
    url = await serve(_hama_sending([pattern.render(n, now) for n in range(count)], pauses, done))
    async with CameraHttp(url, name="cam") as http:
        media = CameraMedia("cam", HamaDriver(http), audio=None)
        source = FanoutSource(media.stream(Profile.MAIN))
        try:
            units = await _viewer_units(source, count - WARMUP)
        finally:
            done.set()
            await source.close()
            await media.close()
    opened = [r.getMessage() for r in caplog.records if "encoding" in r.getMessage()]
    assert len(opened) == 1, opened
    assert len(units) == count - WARMUP
    times = [u.media_time for u in units]
    assert all(later > earlier for earlier, later in itertools.pairwise(times))


async def test_a_camera_that_changes_its_rate_keeps_the_encoder(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """15 fps, then 5 fps for long past RATE_SETTLE (a night mode, a VMS lowering it): the
    same encoder carries on, its timestamps follow the new spacing, and no IDR comes early."""
    caplog.set_level(logging.INFO)
    fast, slow = 30, 30
    pauses = [1 / 15] * fast + [1 / 5] * slow
    pattern = simulated.TestPattern(320, 240)
    now = datetime.datetime.now(datetime.UTC)
    done = asyncio.Event()
    pictures = [pattern.render(n, now) for n in range(fast + slow)]
    url = await serve(_hama_sending(pictures, pauses, done))
    async with CameraHttp(url, name="cam") as http:
        media = CameraMedia("cam", HamaDriver(http), audio=None)
        source = FanoutSource(media.stream(Profile.MAIN))
        try:
            units = await _viewer_units(source, fast + slow - WARMUP)
        finally:
            done.set()
            await source.close()
            await media.close()
    assert len(units) == fast + slow - WARMUP
    assert media.encoding[Profile.MAIN].opens == 1
    opened = [r.getMessage() for r in caplog.records if "encoding" in r.getMessage()]
    assert len(opened) == 1, opened
    times = [u.media_time for u in units]
    steps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert statistics.median(steps[-8:]) == pytest.approx(1 / 5, rel=0.15)
    # IDRs stay about a second apart in time at either rate (the GOP is kept in seconds).
    idrs = [u.media_time for u in units if u.keyframe]
    assert all(0.8 < b - a < 1.3 for a, b in itertools.pairwise(idrs)), idrs


async def test_main_and_sub_watched_together_decode_each_picture_once(
    vapix2: Vapix2Driver,
) -> None:
    """The usual VMS case, record main and detect on sub: one decode per camera picture,
    though main encodes every picture and sub every second one."""
    media = CameraMedia("cam", vapix2, audio=None)
    main, sub = FanoutSource(media.stream(Profile.MAIN)), FanoutSource(media.stream(Profile.SUB))
    try:
        await asyncio.gather(
            _units(main, lambda units: len(units) >= 30),
            _units(sub, lambda units: len(units) >= 15),
        )
    finally:
        await main.close()
        await sub.close()
        await media.close()
    main_frames, sub_frames = (media.encoding[p].frames for p in (Profile.MAIN, Profile.SUB))
    assert main_frames >= 30
    assert sub_frames >= 15
    # Sub's pictures are main's too (every second one): only pictures main skipped while it
    # lagged (a loaded host) would be decoded for sub alone.
    assert media.codecs.decoded <= main_frames + sub_frames // 4
    assert media.codecs.decoded < main_frames + sub_frames
