"""Motion from pixels over ONVIF: a camera whose CGI detects no motion (hama) gets motion events
from its pictures, subscribed to with onvif-zeep-async as Home Assistant does; the config's
``motion`` keys choose where a camera's motion comes from, and the device says what it has."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from gateway_devices import (
    Device,
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from test_events import (
    MOTION_TOPICS,
    TOPICS_OF,
    advertised_topics,
    digital_input,
    motion,
    pull,
    pull_until,
    subscribe,
)

from bridge.cameras.base import Dialect
from bridge.config import MotionConfig
from bridge.onvif.soap import Service

HAMA_VIDEO = "/mjpg/video.mjpg"  # where the hama emulator serves its MJPEG stream
PROFILE_T = "onvif://www.onvif.org/Profile/T"


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def topics(device: Device) -> set[str]:
    return advertised_topics(await (await device.service(Service.EVENTS)).GetEventProperties())


async def scopes(device: Device) -> list[str]:
    devicemgmt = await device.client().create_devicemgmt_service()
    return [scope.ScopeItem for scope in await devicemgmt.GetScopes()]


async def test_a_hama_camera_reports_the_motion_seen_in_its_pictures(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.HAMA, stream_idle_seconds=0.5)
    pixels = device.context.events.pixels
    assert pixels is not None
    assert await topics(device) == MOTION_TOPICS
    assert PROFILE_T in await scopes(device)
    # Nobody is subscribed: the camera's video is not pulled, nothing is decoded.
    assert await device.requests(HAMA_VIDEO) == []
    assert pixels.decoded == 0

    subscription = await subscribe(device, InitialTerminationTime="PT120S")
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    # A calm picture (its clock ticks over, its frame counter counts): no motion, while the
    # detector looks at five pictures a second.
    calm_until = time.monotonic() + 3.0
    seen = []
    while (left := calm_until - time.monotonic()) > 0:
        seen += await pull(subscription.pull_point, seconds=left)
    assert seen == []
    assert pixels.decoded >= 10

    await device.cause("motion?active=1")  # the emulator's box moves; hama's CGI says nothing
    seen = await pull_until(subscription.pull_point, *motion(True))
    assert len(seen) == 2
    await device.cause("motion?active=0")
    await pull_until(subscription.pull_point, *motion(False), within=15.0)

    await subscription.manager.Unsubscribe()
    await until(lambda: not device.context.media.frames.running)
    decoded = pixels.decoded
    await device.clear_requests()
    await asyncio.sleep(1.0)
    assert pixels.decoded == decoded
    assert await device.requests(HAMA_VIDEO) == []


@pytest.mark.parametrize(
    ("dialect", "detect"),
    [(Dialect.VAPIX2, "off"), (Dialect.HAMA, "camera"), (Dialect.HAMA, "off")],
)
async def test_a_camera_without_motion_events_offers_none(
    open_device: OpenDevice, dialect: Dialect, detect: str
) -> None:
    motion_config = MotionConfig.model_validate({"detect": detect})
    device = await open_device(dialect, camera_options={"motion": motion_config})
    assert device.context.events.pixels is None
    assert await topics(device) == TOPICS_OF[dialect] - MOTION_TOPICS  # inputs, relays stay
    assert PROFILE_T not in await scopes(device)


async def test_pixels_replace_the_cameras_own_motion_detection(open_device: OpenDevice) -> None:
    """``detect: pixels`` on a camera whose CGI detects motion: the CGI's reports are not
    used (a detector that needs the whole picture to move never reports), its inputs are."""
    motion_config = MotionConfig.model_validate({"detect": "pixels", "min_area": 100})
    device = await open_device(Dialect.VAPIX2, camera_options={"motion": motion_config})
    pixels = device.context.events.pixels
    assert pixels is not None
    subscription = await subscribe(device)
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    await device.cause("motion?active=1")  # the camera's CGI reports it at once
    await device.cause("input?port=1&active=1")
    seen = await pull_until(subscription.pull_point, digital_input("1", True))
    seen += await pull(subscription.pull_point, seconds=2.0)
    assert not [message for message in seen if message in motion(True)]
    assert pixels.decoded > 0
