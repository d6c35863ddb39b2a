"""PTZ the way trackers use it: Frigate's autotracking sequence, made with onvif-zeep-async
(Frigate's and Home Assistant's client) against each dialect's camera behind the gateway.

Frigate picks the media profile whose PTZ configuration moves continuously, reads the
configuration options for a RelativePanTiltTranslationSpace in TranslationSpaceFov, builds its
RelativeMove from the Position GetStatus reports (the space swapped for the FOV one, the zoom
dropped), requires GetServiceCapabilities to say MoveStatus, then moves by a fraction of the
picture and polls GetStatus until MoveStatus is IDLE. The emulator's true head position says
whether the picture moved by that fraction of its field of view.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from gateway_devices import (
    Device,
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)

from bridge.onvif.context import PTZ_CONFIG
from bridge.onvif.ptz import FOV, POSITION
from bridge.onvif.soap import Service
from bridge.simulator.core import SimOptions, SimulatedCamera
from bridge.simulator.foscam import FoscamSimulator
from bridge.simulator.hama import HamaSimulator
from bridge.simulator.ipcamcgi import IpCamCgiSimulator
from bridge.simulator.openapi import OpenApiSimulator
from bridge.simulator.vapix2 import PtzInfo, Vapix2Simulator

STATUS_POLL = 0.05  # seconds between GetStatus polls (Frigate polls on every frame)


def find_key(value: Any, key: str) -> Any:
    """The first value under ``key`` anywhere in a zeep object (Frigate reads MoveStatus so,
    because clients with older WSDLs leave the newer attributes in a catch-all dict)."""
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        values: Any = value.values()
    elif hasattr(value, "__values__"):
        values = vars(value).get("__values__", {}).values()
    else:
        return None
    for inner in values:
        found = find_key(inner, key)
        if found is not None:
            return found
    return None


@dataclass
class Tracker:
    """What Frigate keeps after setting a camera up for autotracking."""

    device: Device
    ptz: Any
    move: Any  # the RelativeMove request, built once and reused
    fov_range: Any  # the FOV space as the options describe it

    @classmethod
    async def set_up(cls, device: Device) -> Tracker:
        camera = device.client()
        await camera.update_xaddrs()
        media = await camera.create_media_service()
        profile = next(
            p
            for p in await media.GetProfiles()
            if p.VideoEncoderConfiguration
            and p.PTZConfiguration
            and p.PTZConfiguration.DefaultContinuousPanTiltVelocitySpace is not None
        )
        ptz = await camera.create_ptz_service()
        options = await ptz.GetConfigurationOptions(
            {"ConfigurationToken": profile.PTZConfiguration.token}
        )
        fov = next(
            space
            for space in options.Spaces.RelativePanTiltTranslationSpace
            if "TranslationSpaceFov" in space.URI
        )
        status = await ptz.GetStatus({"ProfileToken": profile.token})
        move = ptz.create_type("RelativeMove")
        move.ProfileToken = profile.token
        move.Translation = status.Position  # Frigate's template: the position's structure
        move.Translation.PanTilt.space = fov.URI
        move.Translation.Zoom = None  # zooming off: no zoom in the translation
        move.Speed = profile.PTZConfiguration.DefaultPTZSpeed
        assert profile.PTZConfiguration.DefaultRelativePanTiltTranslationSpace is not None
        capabilities = await ptz.GetServiceCapabilities()
        assert str(find_key(capabilities, "MoveStatus")).lower() == "true"
        return cls(device, ptz, move, fov)

    async def status(self) -> Any:
        return await self.ptz.GetStatus({"ProfileToken": self.move.ProfileToken})

    async def move_relative(self, pan: float, tilt: float) -> float:
        """Move by (pan, tilt) of the picture, scaled onto the space's range as Frigate does,
        and poll until the head is idle; returns how long that took."""
        x, y = self.fov_range.XRange, self.fov_range.YRange
        self.move.Translation.PanTilt.x = x.Min + (pan + 1) / 2 * (x.Max - x.Min)
        self.move.Translation.PanTilt.y = y.Min + (tilt + 1) / 2 * (y.Max - y.Min)
        self.move.Speed = {"PanTilt": {"x": 1, "y": 1}}
        started = time.monotonic()
        await self.ptz.RelativeMove(self.move)
        async with asyncio.timeout(10):
            while True:
                status = await self.status()
                if status.MoveStatus.PanTilt == "IDLE":
                    return time.monotonic() - started
                assert status.MoveStatus.PanTilt == "MOVING"
                await asyncio.sleep(STATUS_POLL)


async def true_head(device: Device) -> tuple[float, float, dict[str, Any]]:
    """The emulated head's position and its geometry, as the emulator knows them."""
    state = await device.state()
    return state["ptz"]["pan"], state["ptz"]["tilt"], state["ptz_geometry"]


def picture_fraction(before: float, after: float, travel: float, fov: float) -> float:
    """A normalized move of the head as a fraction of half the picture (FOV space units)."""
    return (after - before) * travel / 2 / (fov / 2)


@dataclass(frozen=True)
class Case:
    camera: type[SimulatedCamera]
    how: str  # how the gateway makes the move on this head
    tolerance: float  # in FOV units: the head's own resolution, or timing for timed moves
    options: Mapping[str, Any] | None = None


CASES = {
    # rpan/rtilt in degrees, to 0.01
    "vapix2": Case(Vapix2Simulator, "native relative", 0.01),
    # a head that lists no commands: continuous moves timed at the calibrated rate
    "vapix2-no-info": Case(Vapix2Simulator, "timed", 0.1, {"ptz_info": PtzInfo.EMPTY}),
    # rpan/rtilt scaled by the family's travel when the unit gives no limits
    "openapi-no-limits": Case(OpenApiSimulator, "native relative", 0.01, {"ptz_limits": False}),
    # position read from the stream, then a whole-degree absolute move
    "ipcamcgi": Case(IpCamCgiSimulator, "absolute from the position", 0.1),
    # onestep moves in whole degrees
    "foscam": Case(FoscamSimulator, "native relative", 0.1),
    # single steps of a tenth of its 350 degrees: the head cannot do finer than half a step
    "hama": Case(HamaSimulator, "steps", 0.35),  # half a step: 17.5 degrees of 50
}


@pytest.mark.parametrize("case", CASES)
async def test_frigate_autotracking_moves_the_picture_by_the_fraction_asked(
    open_device: OpenDevice, case: str
) -> None:
    spec = CASES[case]
    device = await open_device(spec.camera(SimOptions(), **(spec.options or {})))
    tracker = await Tracker.set_up(device)
    assert (tracker.fov_range.XRange.Min, tracker.fov_range.XRange.Max) == (-1.0, 1.0)
    pan, tilt, head = await true_head(device)

    took = await tracker.move_relative(0.5, -0.4)  # the object is right of centre and low

    after_pan, after_tilt, _ = await true_head(device)
    moved = (
        picture_fraction(pan, after_pan, head["pan_degrees"], head["fov"][0]),
        picture_fraction(tilt, after_tilt, head["tilt_degrees"], head["fov"][1]),
    )
    assert moved == pytest.approx((0.5, -0.4), abs=spec.tolerance), spec.how
    state = await device.state()
    assert state["ptz_velocity"] == {"pan": 0.0, "tilt": 0.0, "zoom": 0.0}  # IDLE is true
    if not device.driver.capabilities.ptz.position:
        # A head that cannot say it arrived is MOVING for the time it needs at its rate (one
        # that reports its position is IDLE once it reports the target: the emulator's at once).
        needed = max(
            abs(moved[0]) * head["fov"][0] / 2 / device.driver.ptz_geometry.pan_rate,
            abs(moved[1]) * head["fov"][1] / 2 / device.driver.ptz_geometry.tilt_rate,
        )
        assert took >= needed * 0.9
    status = await tracker.status()
    assert status.Position.PanTilt.space == POSITION.pan_tilt
    assert status.Position.PanTilt.x == pytest.approx(after_pan, abs=0.02)


async def test_a_timed_move_reports_moving_while_the_head_turns(open_device: OpenDevice) -> None:
    device = await open_device(Vapix2Simulator(SimOptions(), ptz_info=PtzInfo.EMPTY))
    tracker = await Tracker.set_up(device)
    tracker.move.Translation.PanTilt.x = -1.0  # half the picture to the left
    tracker.move.Translation.PanTilt.y = 0.0
    started = time.monotonic()
    await tracker.ptz.RelativeMove(tracker.move)
    assert (await tracker.status()).MoveStatus.PanTilt == "MOVING"
    assert (await device.state())["ptz_velocity"]["pan"] < 0  # it does turn, left
    async with asyncio.timeout(5):
        while True:
            if (await tracker.status()).MoveStatus.PanTilt == "IDLE":
                break
            await asyncio.sleep(STATUS_POLL)
    # IDLE once the head has stopped, after the time half a 47 degree picture takes at the
    # head's 42.5 degrees a second.
    assert time.monotonic() - started >= 23.5 / 42.5
    assert (await device.state())["ptz_velocity"]["pan"] == 0.0


async def test_zoom_in_the_fov_space_multiplies_the_magnification(open_device: OpenDevice) -> None:
    device = await open_device(Vapix2Simulator(SimOptions()))
    ptz = await device.service(Service.PTZ)
    options = await ptz.GetConfigurationOptions({"ConfigurationToken": PTZ_CONFIG})
    zoom_spaces = {space.URI: space.XRange for space in options.Spaces.RelativeZoomTranslationSpace}
    assert zoom_spaces[FOV.zoom].Max == 26.0  # the AXIS 213's lens
    translation = {"Zoom": {"x": 2.0, "space": FOV.zoom}}
    await ptz.RelativeMove({"ProfileToken": "main", "Translation": translation})
    state = await device.state()
    ratio = state["ptz_geometry"]["zoom_ratio"]
    assert 1 + state["ptz"]["zoom"] * (ratio - 1) == pytest.approx(2.0, abs=0.01)
