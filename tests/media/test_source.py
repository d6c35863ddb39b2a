"""A camera's media: profile sizes and rates, the shared audio/video clock, live reconfiguration."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import OpenHttp, StartSim

from bridge.cameras.vapix2 import Vapix2Driver
from bridge.media.source import (
    AudioClock,
    CameraMedia,
    Profile,
    RateMeter,
    VideoLimits,
    decimation,
    fit_within,
)
from bridge.rtsp.h264 import parse_sps
from bridge.rtsp.stream import AccessUnit, Codec
from bridge.simulator.core import SimOptions
from bridge.simulator.vapix2 import Vapix2Simulator


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


def test_audio_clock_counts_samples_and_resyncs_after_a_gap() -> None:
    clock = AudioClock(0.02)
    first = clock.times(5, 10.1)  # five 20 ms frames completed by a chunk arriving at 10.1
    assert first == pytest.approx([10.0, 10.02, 10.04, 10.06, 10.08])
    # A chunk arriving 3 ms late continues the count (nudged by a fraction of the lag).
    assert clock.times(5, 10.203)[0] == pytest.approx(10.1, abs=0.001)
    # Two seconds of silence from the camera: the clock jumps to the arrival time.
    assert clock.times(5, 12.5)[0] == pytest.approx(12.4)


async def _units(media: CameraMedia, profile: Profile, seconds: float) -> list[AccessUnit]:
    units: list[AccessUnit] = []
    subscription = media.source(profile).subscribe()
    try:
        async with asyncio.timeout(seconds):
            async for unit in subscription:
                units.append(unit)
    except TimeoutError:
        pass
    finally:
        subscription.close()
    return units


@pytest.fixture
async def vapix2(start_sim: StartSim, open_http: OpenHttp) -> Vapix2Driver:
    sim = await start_sim(Vapix2Simulator(SimOptions(fps=15)))
    driver = Vapix2Driver(open_http(sim.url, "admin", "admin"))
    await driver.connect()
    return driver


async def test_audio_and_video_share_the_arrival_clock(vapix2: Vapix2Driver) -> None:
    media = CameraMedia("cam", vapix2, audio="aac")
    try:
        units = await _units(media, Profile.MAIN, 2.5)
    finally:
        await media.close()
    tracks = media.source(Profile.MAIN).tracks
    assert [t.codec for t in tracks] == [Codec.H264, Codec.AAC]
    video = [u for u in units if u.track == 0]
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
    track = media.source(Profile.SUB).tracks[0]
    try:
        before = await _units(media, Profile.SUB, 1.5)
        media.set_limits(Profile.SUB, VideoLimits(max_size=(320, 240), max_fps=5))
        after = await _units(media, Profile.SUB, 1.5)
    finally:
        await media.close()
    assert before
    assert after[0].keyframe  # the reopened encoder starts with an IDR
    assert track.sps is not None
    sps = parse_sps(track.sps)
    assert (sps.width, sps.height) == (320, 240)
    assert len(after) <= 9  # about 5 a second now, not 7.5
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
