"""The PTZ service end to end: onvif-zeep-async drives the gateway, each emulated camera
receives the dialect's own CGI requests, and the head moves (the emulator's state says so)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from gateway_devices import (
    Cgi,
    Device,
    HamaWithoutPtz,
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)

from bridge.cameras.base import PtzCapabilities, PtzVector
from bridge.onvif.context import PTZ_CONFIG, PTZ_NODE
from bridge.onvif.ptz import DEFAULT_TIMEOUT, POSITION, SPEED, TIMEOUT_RANGE, VELOCITY
from bridge.onvif.soap import Service
from bridge.simulator.core import SimOptions, SimulatedCamera
from bridge.simulator.foscam import FoscamSimulator
from bridge.simulator.hama import HamaSimulator
from bridge.simulator.ipcamcgi import IpCamCgiSimulator
from bridge.simulator.openapi import OpenApiSimulator
from bridge.simulator.vapix2 import Preset as Vapix2Preset
from bridge.simulator.vapix2 import Vapix2Simulator

PROFILE = "main"
NEAR = 0.05  # how close a reported or tracked position must come to where it was sent


@dataclass(frozen=True)
class Dialect:
    """What each PTZ call must send to one dialect's camera. An empty tuple: nothing reaches
    the camera (the driver itself stops stepping the head); None: the camera cannot."""

    camera: type[SimulatedCamera]
    continuous: tuple[Cgi, ...]  # pan right at half speed
    stop: tuple[Cgi, ...]
    absolute: tuple[Cgi, ...]  # to (0.2, -0.2)
    relative: tuple[Cgi, ...]  # by (0.1, 0.1) at half speed
    position: tuple[Cgi, ...]  # how GetStatus learns the position; empty: tracked
    set_preset: tuple[Cgi, ...]  # named "door"
    goto_preset: tuple[Cgi, ...]
    remove_preset: tuple[Cgi, ...]  # empty: forgotten by the gateway alone
    goto_home: tuple[Cgi, ...]
    set_home: tuple[Cgi, ...] | None


_HAMA_PTZ = "/camera-cgi/com/ptz.cgi"
_HAMA_CONFIG = "/camera-cgi/com/ptzconfig.cgi"
_IPCAM_PTZ = "/pantiltcontrol.cgi"
_FOSCAM_PTZ = "/decoder_control.cgi"
DIALECTS = {
    "hama": Dialect(
        HamaSimulator,
        continuous=(Cgi(_HAMA_PTZ, {"move": "right"}),),
        stop=(),
        absolute=(Cgi(_HAMA_PTZ, {"move": "center"}), Cgi(_HAMA_PTZ, {"move": "downright"})),
        relative=(
            Cgi("/form/enet", {"enet_avs_pt_speed": "5"}),
            Cgi(_HAMA_PTZ, {"move": "upright"}),
        ),
        position=(),
        set_preset=(Cgi(_HAMA_CONFIG, {"setserverpresetname": "door", "presetNo": "{token}"}),),
        goto_preset=(Cgi(_HAMA_PTZ, {"gotoserverpresetIndex": "{token}"}),),
        remove_preset=(
            Cgi(_HAMA_CONFIG, {"removeserverpresetname": "door", "presetNo": "{token}"}),
        ),
        goto_home=(Cgi(_HAMA_PTZ, {"move": "center"}),),
        set_home=None,
    ),
    "ipcamcgi": Dialect(
        IpCamCgiSimulator,
        continuous=(Cgi(_IPCAM_PTZ, {"PanTiltSingleMove": "5"}),),
        stop=(),
        absolute=(
            Cgi(
                _IPCAM_PTZ,
                {
                    "PanTiltHorizontal": "204",
                    "PanTiltVertical": "54",
                    "PanTiltPositionMove": "true",
                },
            ),
        ),
        relative=(Cgi("/mjpeg.cgi", {}), Cgi(_IPCAM_PTZ, {"PanTiltPositionMove": "true"})),
        position=(Cgi("/mjpeg.cgi", {}),),
        set_preset=(Cgi(_IPCAM_PTZ, {"SetPosition": "{token}", "SetName": "door"}),),
        goto_preset=(Cgi(_IPCAM_PTZ, {"PanTiltPresetPositionMove": "{token}"}),),
        remove_preset=(Cgi(_IPCAM_PTZ, {"ClearPosition": "{token}"}),),
        goto_home=(Cgi(_IPCAM_PTZ, {"PanTiltPresetPositionMove": "0"}),),
        set_home=None,
    ),
    "openapi": Dialect(
        OpenApiSimulator,
        continuous=(Cgi("/ptz.cgi", {"continuouspantiltmove": "50,0"}),),
        stop=(Cgi("/ptz.cgi", {"continuouspantiltmove": "0,0"}),),
        absolute=(Cgi("/ptz.cgi", {"pan": "34", "tilt": "-18"}),),
        relative=(Cgi("/ptz.cgi", {"rpan": "17", "rtilt": "9", "speed": "50"}),),
        position=(Cgi("/ptz.cgi", {"query": "position"}),),
        set_preset=(Cgi("/configptz.cgi", {"setserverpresetname": "door"}),),
        goto_preset=(Cgi("/ptz.cgi", {"gotoserverpresetno": "{token}"}),),
        remove_preset=(Cgi("/configptz.cgi", {"removeserverpresetno": "{token}"}),),
        goto_home=(Cgi("/ptz.cgi", {"move": "home"}),),
        set_home=(Cgi("/configptz.cgi", {"setserverpresetname": "Home", "home": "yes"}),),
    ),
    "foscam": Dialect(
        FoscamSimulator,
        continuous=(Cgi(_FOSCAM_PTZ, {"command": "4"}),),
        stop=(Cgi(_FOSCAM_PTZ, {"command": "1"}),),
        absolute=(Cgi(_FOSCAM_PTZ, {"command": "25"}), Cgi(_FOSCAM_PTZ, {"onestep": "1"})),
        relative=(
            Cgi(_FOSCAM_PTZ, {"command": "4", "onestep": "1"}),
            Cgi(_FOSCAM_PTZ, {"command": "0", "onestep": "1"}),
        ),
        position=(),
        set_preset=(Cgi(_FOSCAM_PTZ, {"command": "30"}),),  # 30 + 2 * slot, first slot
        goto_preset=(Cgi(_FOSCAM_PTZ, {"command": "31"}),),
        remove_preset=(),  # it cannot list them: unlisted is removed
        goto_home=(Cgi(_FOSCAM_PTZ, {"command": "25"}),),
        set_home=None,
    ),
    "vapix2": Dialect(
        Vapix2Simulator,
        continuous=(Cgi("/com/ptz.cgi", {"continuouspantiltmove": "50,0"}),),
        stop=(Cgi("/com/ptz.cgi", {"continuouspantiltmove": "0,0"}),),
        absolute=(Cgi("/com/ptz.cgi", {"pan": "34.00", "tilt": "-50.00"}),),
        relative=(Cgi("/com/ptz.cgi", {"rpan": "17.00", "rtilt": "5.00", "speed": "50"}),),
        position=(Cgi("/com/ptz.cgi", {"query": "position"}),),
        set_preset=(Cgi("/com/ptzconfig.cgi", {"setserverpresetname": "door"}),),
        goto_preset=(Cgi("/com/ptz.cgi", {"gotoserverpresetno": "{token}"}),),
        remove_preset=(Cgi("/com/ptzconfig.cgi", {"removeserverpresetno": "{token}"}),),
        goto_home=(Cgi("/com/ptz.cgi", {"move": "home"}),),
        set_home=(Cgi("/com/ptzconfig.cgi", {"setserverpresetname": "Home", "home": "yes"}),),
    ),
}
dialects = pytest.mark.parametrize("dialect", DIALECTS)


@dataclass
class Ptz:
    """A client's PTZ service, and the camera behind it."""

    device: Device
    service: Any
    dialect: Dialect

    @property
    def caps(self) -> PtzCapabilities:
        return self.device.driver.capabilities.ptz

    async def call(self, operation: str, **params: Any) -> Any:
        return await getattr(self.service, operation)({"ProfileToken": PROFILE, **params})

    async def settled(self) -> Any:
        """GetStatus, polled as trackers do until the head is idle (a native move takes the
        time its travel needs at the dialect's calibrated rate)."""
        async with asyncio.timeout(5):
            while True:
                status = await self.call("GetStatus")
                if status.MoveStatus.PanTilt == "IDLE":
                    return status
                await asyncio.sleep(0.05)  # the device is remote: polled, as trackers do

    async def head(self) -> tuple[float, float]:
        """Where the emulated head is."""
        ptz = (await self.device.state())["ptz"]
        return ptz["pan"], ptz["tilt"]


OpenPtz = Callable[[str], Awaitable[Ptz]]


@pytest.fixture
def open_ptz(open_device: OpenDevice) -> OpenPtz:
    async def open_(dialect: str) -> Ptz:
        spec = DIALECTS[dialect]
        device = await open_device(spec.camera(SimOptions()))
        ptz = Ptz(device, await device.service(Service.PTZ), spec)
        await device.clear_requests()
        return ptz

    return open_


def pan_tilt(x: float, y: float, space: str | None = None) -> dict[str, Any]:
    vector: dict[str, Any] = {"x": x, "y": y}
    if space is not None:
        vector["space"] = space
    return {"PanTilt": vector}


def assert_near(position: Any, pan: float, tilt: float) -> None:
    assert position.PanTilt.space == POSITION.pan_tilt
    assert position.PanTilt.x == pytest.approx(pan, abs=NEAR)
    assert position.PanTilt.y == pytest.approx(tilt, abs=NEAR)


@dialects
async def test_node_and_configuration_describe_what_the_camera_can_do(
    open_ptz: OpenPtz, dialect: str
) -> None:
    ptz = await open_ptz(dialect)
    caps = ptz.caps
    (node,) = await ptz.service.GetNodes()
    assert node.token == PTZ_NODE
    assert node.MaximumNumberOfPresets == caps.presets > 0
    assert node.HomeSupported is caps.home is True
    spaces = node.SupportedPTZSpaces
    assert [space.URI for space in spaces.ContinuousPanTiltVelocitySpace] == [VELOCITY.pan_tilt]
    assert spaces.AbsolutePanTiltPositionSpace[0].XRange.Min == -1.0
    assert bool(spaces.ContinuousZoomVelocitySpace) is caps.zoom
    assert bool(spaces.PanTiltSpeedSpace) is caps.speed
    assert (await ptz.service.GetNode({"NodeToken": PTZ_NODE})).token == PTZ_NODE

    (config,) = await ptz.service.GetConfigurations()
    assert (config.token, config.NodeToken) == (PTZ_CONFIG, PTZ_NODE)
    assert config.DefaultContinuousPanTiltVelocitySpace == VELOCITY.pan_tilt
    assert config.DefaultPTZTimeout == DEFAULT_TIMEOUT
    assert config.UseCount == 3  # the three fixed media profiles
    one = await ptz.service.GetConfiguration({"PTZConfigurationToken": PTZ_CONFIG})
    assert one.token == PTZ_CONFIG
    options = await ptz.service.GetConfigurationOptions({"ConfigurationToken": PTZ_CONFIG})
    assert (options.PTZTimeout.Min, options.PTZTimeout.Max) == TIMEOUT_RANGE
    assert options.Spaces.RelativePanTiltTranslationSpace[0].XRange.Max == 1.0

    capabilities = await ptz.service.GetServiceCapabilities()
    assert capabilities.EFlip is False
    newer = capabilities._attr_1  # attributes the client's (older) WSDL does not know
    assert newer == {"MoveStatus": "true", "StatusPosition": "true"}
    assert await ptz.device.requests() == []  # all of it known without asking the camera


@dialects
async def test_continuous_move_stops_after_its_timeout(open_ptz: OpenPtz, dialect: str) -> None:
    ptz = await open_ptz(dialect)
    start = await ptz.head()
    timeout = dt.timedelta(seconds=0.5)
    await ptz.call("ContinuousMove", Velocity=pan_tilt(0.5, 0.0), Timeout=timeout)
    await ptz.device.expect(*ptz.dialect.continuous)
    status = await ptz.call("GetStatus")
    assert status.MoveStatus.PanTilt == "MOVING"

    await asyncio.sleep(timeout.total_seconds() + 0.3)
    assert (await ptz.call("GetStatus")).MoveStatus.PanTilt == "IDLE"
    await ptz.device.expect(*ptz.dialect.stop)
    stopped = await ptz.head()
    assert stopped[0] > start[0]  # it did pan right
    await asyncio.sleep(0.5)  # longer than any driver's step interval
    assert await ptz.head() == pytest.approx(stopped, abs=1e-3)  # and it stays stopped
    assert not any(r["path"] != "/mjpeg.cgi" for r in await ptz.device.requests())


async def test_a_newer_move_outlives_the_older_ones_timeout(open_ptz: OpenPtz) -> None:
    ptz = await open_ptz("vapix2")
    short = dt.timedelta(seconds=0.2)
    await ptz.call("ContinuousMove", Velocity=pan_tilt(0.5, 0.0), Timeout=short)
    await ptz.call("ContinuousMove", Velocity=pan_tilt(-0.5, 0.0))  # the default 10 s timeout
    await asyncio.sleep(short.total_seconds() + 0.3)  # the first move's timer would have fired
    assert (await ptz.device.state())["ptz_velocity"]["pan"] == -0.5
    assert (await ptz.call("GetStatus")).MoveStatus.PanTilt == "MOVING"
    await ptz.call("Stop")


async def test_a_head_that_reports_its_position_is_idle_once_it_stands_still(
    open_ptz: OpenPtz,
) -> None:
    ptz = await open_ptz("vapix2")
    camera = ptz.device.sim.camera
    assert isinstance(camera, Vapix2Simulator)
    # A preset someone stored on the camera itself: the gateway does not know where it leads,
    # so it cannot time the move (it would assume half the travel: 4 s on this head).
    camera.settings.presets[5] = Vapix2Preset("porch", PtzVector(0.5, 0.2))
    started = time.monotonic()
    await ptz.call("GotoPreset", PresetToken="5")
    status = await ptz.settled()  # IDLE once two reports agree: the head stands still
    assert time.monotonic() - started < 2.0
    assert_near(status.Position, 0.5, 0.2)


@dialects
async def test_stop_ends_a_continuous_move(open_ptz: OpenPtz, dialect: str) -> None:
    ptz = await open_ptz(dialect)
    await ptz.call("ContinuousMove", Velocity=pan_tilt(0.5, 0.0))  # the default 10 s timeout
    await ptz.device.expect(*ptz.dialect.continuous)
    await ptz.call("Stop", PanTilt=True, Zoom=True)
    await ptz.device.expect(*ptz.dialect.stop)
    assert (await ptz.call("GetStatus")).MoveStatus.PanTilt == "IDLE"
    here = await ptz.head()
    await asyncio.sleep(0.5)
    assert await ptz.head() == pytest.approx(here, abs=1e-3)


@dialects
async def test_absolute_and_relative_moves_then_status(open_ptz: OpenPtz, dialect: str) -> None:
    ptz = await open_ptz(dialect)
    await ptz.call("AbsoluteMove", Position={**pan_tilt(0.2, -0.2), "Zoom": {"x": 0.0}})
    await ptz.device.expect(*ptz.dialect.absolute)
    status = await ptz.settled()
    await ptz.device.expect(*ptz.dialect.position)
    assert_near(status.Position, 0.2, -0.2)
    assert await ptz.head() == pytest.approx((0.2, -0.2), abs=0.1)  # hama walks in steps

    speed = {"PanTilt": {"x": 0.5, "y": 0.5}, "Zoom": {"x": 0.5}}
    await ptz.call("RelativeMove", Translation=pan_tilt(0.1, 0.1), Speed=speed)
    await ptz.device.expect(*ptz.dialect.relative)
    assert_near((await ptz.settled()).Position, 0.3, -0.1)


@dialects
async def test_goto_preset_returns_to_the_stored_position(open_ptz: OpenPtz, dialect: str) -> None:
    ptz = await open_ptz(dialect)
    await ptz.call("AbsoluteMove", Position=pan_tilt(0.2, -0.2))
    await ptz.settled()  # a preset is not stored while the head moves
    stored = await ptz.head()
    await ptz.device.clear_requests()
    token = await ptz.call("SetPreset", PresetName="door")
    await ptz.device.expect(*ptz.dialect.set_preset, token=token)
    presets = await ptz.call("GetPresets")
    assert ("door", token) in [(preset.Name, preset.token) for preset in presets]
    assert await fault_of(ptz.call("SetPreset", PresetName="door")) == [
        "InvalidArgVal",
        "PresetExist",
    ]

    await ptz.call("AbsoluteMove", Position=pan_tilt(-0.5, 0.5))
    await ptz.device.clear_requests()
    await ptz.call("GotoPreset", PresetToken=token)
    await ptz.device.expect(*ptz.dialect.goto_preset, token=token)
    assert await ptz.head() == pytest.approx(stored, abs=0.05)
    assert_near((await ptz.call("GetStatus")).Position, *stored)

    await ptz.device.clear_requests()
    await ptz.call("RemovePreset", PresetToken=token)
    await ptz.device.expect(*ptz.dialect.remove_preset, token=token)
    assert token not in [preset.token for preset in await ptz.call("GetPresets")]
    assert await fault_of(ptz.call("GotoPreset", PresetToken=token)) == [
        "InvalidArgVal",
        "NoToken",
    ]


@dialects
async def test_home_position(open_ptz: OpenPtz, dialect: str) -> None:
    ptz = await open_ptz(dialect)
    home = await ptz.head()  # the heads start at their home
    await ptz.call("AbsoluteMove", Position=pan_tilt(0.4, 0.4))
    await ptz.settled()
    await ptz.device.clear_requests()
    if ptz.dialect.set_home is None:
        assert await fault_of(ptz.call("SetHomePosition")) == ["ActionNotSupported"]
    else:
        await ptz.call("SetHomePosition")
        await ptz.device.expect(*ptz.dialect.set_home)
        home = await ptz.head()
    await ptz.call("AbsoluteMove", Position=pan_tilt(-0.4, -0.4))
    await ptz.device.clear_requests()
    await ptz.call("GotoHomePosition")
    await ptz.device.expect(*ptz.dialect.goto_home)
    assert await ptz.head() == pytest.approx(home, abs=0.05)
    assert_near((await ptz.call("GetStatus")).Position, *home)


async def test_closing_the_camera_stops_a_move_in_flight(open_ptz: OpenPtz) -> None:
    ptz = await open_ptz("foscam")
    await ptz.call("ContinuousMove", Velocity=pan_tilt(0.5, 0.0))  # the default 10 s timeout
    await ptz.device.expect(*ptz.dialect.continuous)
    await ptz.device.gateway.cameras[ptz.device.name].close()
    await ptz.device.expect(*ptz.dialect.stop)
    assert (await ptz.device.state())["ptz_velocity"] == {"pan": 0.0, "tilt": 0.0, "zoom": 0.0}


async def test_camera_that_cannot_move_has_no_ptz_service(open_device: OpenDevice) -> None:
    device = await open_device(HamaWithoutPtz(SimOptions()))
    ptz = await device.service(Service.PTZ)
    await device.clear_requests()
    assert await fault_of(ptz.GetNodes()) == ["ActionNotSupported"]
    move = {"ProfileToken": PROFILE, "Velocity": pan_tilt(0.5, 0.0)}
    assert await fault_of(ptz.ContinuousMove(move)) == ["ActionNotSupported"]
    assert await device.requests() == []


@pytest.mark.parametrize(
    ("operation", "params", "subcodes"),
    [
        ("GetNode", {"NodeToken": "other"}, ["InvalidArgVal", "NoEntity"]),
        ("GetConfiguration", {"PTZConfigurationToken": "other"}, ["InvalidArgVal", "NoConfig"]),
        ("GetConfigurationOptions", {"ConfigurationToken": "x"}, ["InvalidArgVal", "NoConfig"]),
        ("GetStatus", {"ProfileToken": "other"}, ["InvalidArgVal", "NoProfile"]),
        (
            "ContinuousMove",
            {"ProfileToken": "other", "Velocity": pan_tilt(0.5, 0.0)},
            ["InvalidArgVal", "NoProfile"],
        ),
        (
            "ContinuousMove",
            {"ProfileToken": PROFILE, "Velocity": pan_tilt(1.5, 0.0)},
            ["InvalidArgVal", "InvalidVelocity"],
        ),
        (
            "ContinuousMove",
            {"ProfileToken": PROFILE, "Velocity": pan_tilt(0.5, 0.0, POSITION.pan_tilt)},
            ["InvalidArgVal", "SpaceNotSupported"],
        ),
        (
            "ContinuousMove",
            {
                "ProfileToken": PROFILE,
                "Velocity": pan_tilt(0.5, 0.0),
                "Timeout": dt.timedelta(minutes=5),
            },
            ["InvalidArgVal", "TimeoutNotSupported"],
        ),
        (
            "ContinuousMove",  # the hama head does not zoom
            {"ProfileToken": PROFILE, "Velocity": {"Zoom": {"x": 0.5}}},
            ["InvalidArgVal", "SpaceNotSupported"],
        ),
        (
            "AbsoluteMove",
            {"ProfileToken": PROFILE, "Position": pan_tilt(0.0, -1.5)},
            ["InvalidArgVal", "InvalidPosition"],
        ),
        (
            "RelativeMove",
            {
                "ProfileToken": PROFILE,
                "Translation": pan_tilt(0.1, 0.0),
                "Speed": pan_tilt(2.0, 2.0, SPEED.pan_tilt),
            },
            ["InvalidArgVal", "InvalidSpeed"],
        ),
        (
            "GotoPreset",
            {"ProfileToken": PROFILE, "PresetToken": "7"},
            ["InvalidArgVal", "NoToken"],
        ),
        ("SetHomePosition", {"ProfileToken": PROFILE}, ["ActionNotSupported"]),
    ],
)
async def test_wrong_tokens_and_values_get_their_faults(
    open_ptz: OpenPtz, operation: str, params: dict[str, Any], subcodes: list[str]
) -> None:
    ptz = await open_ptz("hama")
    assert await fault_of(getattr(ptz.service, operation)(params)) == subcodes
    assert await ptz.device.requests() == []  # nothing reached the camera
    assert ptz.device.schema_check.checked == 1
