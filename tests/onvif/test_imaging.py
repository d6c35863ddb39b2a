"""The imaging service end to end: onvif-zeep-async reads and changes each emulated camera's
picture controls, on ONVIF's 0..100 scale, through the dialect's own CGI requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from gateway_devices import (
    Cgi,
    Device,
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)

from bridge.onvif.context import VIDEO_SOURCE
from bridge.onvif.soap import Service
from bridge.simulator.core import SimOptions, SimulatedCamera
from bridge.simulator.foscam import FoscamSimulator
from bridge.simulator.hama import HamaSimulator
from bridge.simulator.ipcamcgi import IpCamCgiSimulator
from bridge.simulator.openapi import OpenApiSimulator
from bridge.simulator.vapix2 import Vapix2Simulator

ALL = ("Brightness", "ColorSaturation", "Contrast", "Sharpness")


@dataclass(frozen=True)
class Dialect:
    """A dialect's picture controls (ImagingSettings20 names), the CGI requests that read
    them and that set the brightness to 30 %, and its coarsest control's step on the 0..100
    scale (what a value read back may be off)."""

    camera: type[SimulatedCamera]
    settings: tuple[str, ...]
    read: Cgi
    set_brightness: Cgi
    step: float


DIALECTS = {
    "ipcamcgi": Dialect(
        IpCamCgiSimulator,
        ("Brightness", "ColorSaturation", "Contrast"),
        Cgi("/image.cgi", {}),
        Cgi("/image.cgi", {"BrightnessControl": "39"}),  # on its 1..128 scale
        100 / 127,
    ),
    "openapi": Dialect(
        OpenApiSimulator,
        ALL,
        Cgi("/config.cgi", {"action": "list", "group": "Image.I0.Appearance"}),
        Cgi("/config.cgi", {"action": "update", "Image.I0.Appearance.Brightness": "76"}),  # 0..255
        100 / 7,  # sharpness 0..7
    ),
    "foscam": Dialect(
        FoscamSimulator,
        ("Brightness", "Contrast"),
        Cgi("/get_camera_params.cgi", {}),
        Cgi("/camera_control.cgi", {"param": "1", "value": "76"}),  # 0..255
        100 / 6,  # contrast 0..6
    ),
    "vapix2": Dialect(
        Vapix2Simulator,
        ALL,
        Cgi("/param.cgi", {"action": "list"}),
        Cgi("/param.cgi", {"action": "update", "ImageSource.I0.Sensor.Brightness": "30"}),
        1.0,
    ),
}
dialects = pytest.mark.parametrize("dialect", DIALECTS)


@dataclass
class Imaging:
    device: Device
    service: Any
    dialect: Dialect

    async def call(self, operation: str, **params: Any) -> Any:
        return await getattr(self.service, operation)({"VideoSourceToken": VIDEO_SOURCE, **params})

    async def settings(self) -> dict[str, float]:
        settings = await self.call("GetImagingSettings")
        return {
            name: getattr(settings, name) for name in ALL if getattr(settings, name) is not None
        }


OpenImaging = Callable[[str], Awaitable[Imaging]]


@pytest.fixture
def open_imaging(open_device: OpenDevice) -> OpenImaging:
    async def open_(dialect: str) -> Imaging:
        spec = DIALECTS[dialect]
        device = await open_device(spec.camera(SimOptions()))
        imaging = Imaging(device, await device.service(Service.IMAGING), spec)
        await device.clear_requests()
        return imaging

    return open_


@dialects
async def test_settings_and_options_cover_the_cameras_controls(
    open_imaging: OpenImaging, dialect: str
) -> None:
    imaging = await open_imaging(dialect)
    settings = await imaging.settings()
    await imaging.device.expect(imaging.dialect.read)
    assert sorted(settings) == sorted(imaging.dialect.settings)
    assert all(0.0 <= value <= 100.0 for value in settings.values())

    options = await imaging.call("GetOptions")
    for name in ALL:
        expected = (0.0, 100.0) if name in imaging.dialect.settings else None
        value = getattr(options, name)
        assert (None if value is None else (value.Min, value.Max)) == expected
    assert await imaging.call("GetMoveOptions") is None  # empty: no remote focus
    assert await imaging.call("GetStatus") is None  # empty: no focus to report on
    capabilities = await imaging.service.GetServiceCapabilities()
    assert capabilities.ImageStabilization is False
    assert await imaging.device.requests() == []  # the options are known without asking


@dialects
async def test_set_imaging_settings_reaches_the_camera(
    open_imaging: OpenImaging, dialect: str
) -> None:
    imaging = await open_imaging(dialect)
    await imaging.call("SetImagingSettings", ImagingSettings={"Brightness": 30.0})
    await imaging.device.expect(imaging.dialect.set_brightness)
    assert (await imaging.settings())["Brightness"] == pytest.approx(30.0, abs=1.0)

    every = dict.fromkeys(imaging.dialect.settings, 70.0)
    await imaging.call("SetImagingSettings", ImagingSettings=every)
    assert await imaging.settings() == pytest.approx(every, abs=imaging.dialect.step / 2)


@pytest.mark.parametrize(
    ("operation", "params", "subcodes"),
    [
        *(
            (operation, {"VideoSourceToken": "other"}, ["InvalidArgVal", "NoSource"])
            for operation in ("GetImagingSettings", "GetOptions", "GetMoveOptions", "GetStatus")
        ),
        (
            "SetImagingSettings",
            {"VideoSourceToken": "other", "ImagingSettings": {"Brightness": 30.0}},
            ["InvalidArgVal", "NoSource"],
        ),
        (
            "SetImagingSettings",  # foscam has no sharpness control
            {"VideoSourceToken": VIDEO_SOURCE, "ImagingSettings": {"Sharpness": 30.0}},
            ["InvalidArgVal", "SettingsInvalid"],
        ),
        (
            "SetImagingSettings",
            {"VideoSourceToken": VIDEO_SOURCE, "ImagingSettings": {"IrCutFilter": "ON"}},
            ["InvalidArgVal", "SettingsInvalid"],
        ),
        (
            "SetImagingSettings",
            {"VideoSourceToken": VIDEO_SOURCE, "ImagingSettings": {"Contrast": 150.0}},
            ["InvalidArgVal", "SettingsInvalid"],
        ),
    ],
)
async def test_wrong_tokens_and_settings_get_their_faults(
    open_imaging: OpenImaging, operation: str, params: dict[str, Any], subcodes: list[str]
) -> None:
    imaging = await open_imaging("foscam")
    assert await fault_of(getattr(imaging.service, operation)(params)) == subcodes
    assert await imaging.device.requests() == []  # nothing reached the camera
    assert imaging.device.schema_check.checked == 1


async def test_camera_without_picture_controls_has_no_imaging_service(
    open_device: OpenDevice,
) -> None:
    device = await open_device(HamaSimulator(SimOptions()))  # mirror and flip only
    imaging = await device.service(Service.IMAGING)
    request = {"VideoSourceToken": VIDEO_SOURCE}
    assert await fault_of(imaging.GetImagingSettings(request)) == ["ActionNotSupported"]
    assert await fault_of(imaging.GetOptions(request)) == ["ActionNotSupported"]
