"""Cameras that report less than the emulators do by default are still moved over ONVIF.

A head that gives no limits, an empty ``ptz.cgi?info`` or a command list without ranges, or a
VAPIX unit that serves its API only under ``/axis-cgi/``: each still gets continuous moves,
stop and presets through onvif-zeep-async, and only what needs the missing data (moves to
absolute positions) is left out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from gateway_devices import (
    Device,
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)

from bridge.onvif.soap import Service
from bridge.simulator.core import SimOptions, SimulatedCamera
from bridge.simulator.openapi import OpenApiSimulator
from bridge.simulator.vapix2 import PtzInfo, Vapix2Simulator

PROFILE = "main"


@dataclass(frozen=True)
class Variant:
    camera: SimulatedCamera
    absolute: bool  # whether moves to positions are offered (they need the limits)


def variants() -> dict[str, Variant]:
    return {
        "openapi without PTZ.Limit": Variant(
            OpenApiSimulator(SimOptions(), ptz_limits=False), False
        ),
        "vapix2 with an empty ptz.cgi?info": Variant(
            Vapix2Simulator(SimOptions(), ptz_info=PtzInfo.EMPTY), False
        ),
        "vapix2 listing commands without ranges": Variant(
            Vapix2Simulator(SimOptions(), ptz_info=PtzInfo.BARE), False
        ),
        "vapix2 only under /axis-cgi/": Variant(Vapix2Simulator(SimOptions(), axis_cgi=True), True),
    }


async def velocity(device: Device) -> dict[str, float]:
    velocity: dict[str, float] = (await device.state())["ptz_velocity"]
    return velocity


@pytest.mark.parametrize("variant", list(variants()))
async def test_under_reporting_head_moves_stops_and_keeps_presets(
    open_device: OpenDevice, variant: str
) -> None:
    spec = variants()[variant]
    device = await open_device(spec.camera)
    ptz = await device.service(Service.PTZ)
    (node,) = await ptz.GetNodes()
    assert node.SupportedPTZSpaces.ContinuousPanTiltVelocitySpace
    assert bool(node.SupportedPTZSpaces.AbsolutePanTiltPositionSpace) is spec.absolute

    start = (await device.state())["ptz"]["pan"]
    move = {"ProfileToken": PROFILE, "Velocity": {"PanTilt": {"x": 0.5, "y": 0.0}}}
    await ptz.ContinuousMove(move)
    assert (await velocity(device))["pan"] > 0
    await ptz.Stop({"ProfileToken": PROFILE, "PanTilt": True, "Zoom": True})
    assert await velocity(device) == {"pan": 0.0, "tilt": 0.0, "zoom": 0.0}
    stopped = (await device.state())["ptz"]["pan"]
    assert stopped > start  # it did pan right, and stays where it stopped
    await asyncio.sleep(0.3)
    assert (await device.state())["ptz"]["pan"] == pytest.approx(stopped, abs=1e-3)

    token = await ptz.SetPreset({"ProfileToken": PROFILE, "PresetName": "gate"})
    await ptz.ContinuousMove(move)
    await ptz.Stop({"ProfileToken": PROFILE})
    await ptz.GotoPreset({"ProfileToken": PROFILE, "PresetToken": token})
    assert (await device.state())["ptz"]["pan"] == pytest.approx(stopped, abs=1e-3)

    absolute = ptz.AbsoluteMove(
        {"ProfileToken": PROFILE, "Position": {"PanTilt": {"x": 0.1, "y": 0.1}}}
    )
    if spec.absolute:
        await absolute
        assert (await device.state())["ptz"]["pan"] == pytest.approx(0.1, abs=0.01)
    else:
        assert await fault_of(absolute) == ["ActionNotSupported"]


async def test_an_axis_cgi_unit_is_served_entirely_from_there(open_device: OpenDevice) -> None:
    device = await open_device(Vapix2Simulator(SimOptions(), axis_cgi=True))
    media = await device.service(Service.MEDIA)
    (profile, *_) = await media.GetProfiles()
    assert profile.PTZConfiguration is not None
    jpeg = await device.driver.snapshot()
    assert jpeg.startswith(b"\xff\xd8")
    requests = await device.requests()
    paths = [r["path"] for r in requests]
    # One try at the seed's param.cgi (its Digest challenge, then 404), then the layout that
    # answered, for every CGI.
    assert paths[:2] == ["/param.cgi", "/param.cgi"]
    assert [r["authenticated_user"] for r in requests[:2]] == ["", "admin"]
    assert all(path.startswith("/axis-cgi/") for path in paths[2:])
    assert {"/axis-cgi/com/ptz.cgi", "/axis-cgi/jpg/image.cgi"} <= set(paths)
