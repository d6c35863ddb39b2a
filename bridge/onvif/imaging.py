"""ONVIF imaging service (ver20): the camera's picture controls on ONVIF's 0..100 scale.

Drivers already normalize every vendor range to 0..100, which is the range GetOptions
advertises, so values pass through unchanged. ImagingSettings20 has a place for brightness,
colour saturation, contrast and sharpness only; mirror and flip belong to the video source
configuration (Media), so a camera with nothing but those gets no imaging service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bridge.cameras.base import ImagingField, ImagingSettings
from bridge.errors import InvalidArgVal
from bridge.onvif.camera_calls import camera_call
from bridge.onvif.context import VIDEO_SOURCE, DeviceContext
from bridge.onvif.soap import OnvifRequest, Operations, Service

ONVIF_RANGE = (0.0, 100.0)
# ImagingSettings20 element of each picture control the service maps.
SETTING_NAMES: dict[ImagingField, str] = {
    ImagingField.BRIGHTNESS: "Brightness",
    ImagingField.SATURATION: "ColorSaturation",
    ImagingField.CONTRAST: "Contrast",
    ImagingField.SHARPNESS: "Sharpness",
}


def settings_values(settings: ImagingSettings, fields: frozenset[ImagingField]) -> dict[str, float]:
    """tt:ImagingSettings20 for the camera's controls whose value it reported."""
    values: dict[str, float] = {}
    for field, name in SETTING_NAMES.items():
        value: float | None = getattr(settings, field.value)
        if field in fields and value is not None:
            values[name] = value
    return values


def parse_settings(values: Mapping[str, Any], fields: frozenset[ImagingField]) -> ImagingSettings:
    """The settings a SetImagingSettings asks for; anything the camera cannot set, or a value
    outside 0..100, is ter:SettingsInvalid."""
    names = {name: field for field, name in SETTING_NAMES.items() if field in fields}
    low, high = ONVIF_RANGE
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        field = names.get(name)
        if field is None:
            raise InvalidArgVal(f"{name} cannot be set on this camera", subcode="SettingsInvalid")
        number = float(value)
        if not (math.isfinite(number) and low <= number <= high):
            raise InvalidArgVal(f"{name} must be within {low}..{high}", subcode="SettingsInvalid")
        changes[field.value] = number
    return ImagingSettings(**changes)


def service_capabilities(device: DeviceContext) -> dict[str, Any]:
    return {"ImageStabilization": False, "Presets": False, "AdaptablePreset": False}


def _video_source(request: OnvifRequest) -> None:
    if request.params["VideoSourceToken"] != VIDEO_SOURCE:
        raise InvalidArgVal("No such video source", subcode="NoSource")


class _ImagingService:
    def __init__(self, device: DeviceContext, fields: frozenset[ImagingField]) -> None:
        self._device = device
        self._driver = device.driver
        self._fields = fields

    async def get_service_capabilities(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"Capabilities": service_capabilities(self._device)}

    async def get_imaging_settings(self, request: OnvifRequest) -> Mapping[str, Any]:
        _video_source(request)
        with camera_call("report its imaging settings"):
            settings = await self._driver.imaging()
        return {"ImagingSettings": settings_values(settings, self._fields)}

    async def set_imaging_settings(self, request: OnvifRequest) -> None:
        _video_source(request)
        settings = parse_settings(request.params["ImagingSettings"], self._fields)
        with camera_call("change its imaging settings"):
            await self._driver.set_imaging(settings)

    async def get_options(self, request: OnvifRequest) -> Mapping[str, Any]:
        _video_source(request)
        low, high = ONVIF_RANGE
        options = {
            name: {"Min": low, "Max": high}
            for field, name in SETTING_NAMES.items()
            if field in self._fields
        }
        return {"ImagingOptions": options}

    async def get_move_options(self, request: OnvifRequest) -> Mapping[str, Any]:
        _video_source(request)
        return {"MoveOptions": {}}  # no remote focus

    async def get_status(self, request: OnvifRequest) -> Mapping[str, Any]:
        _video_source(request)
        return {"Status": {}}  # focus status is all it could hold


def register(operations: Operations, device: DeviceContext) -> None:
    """Add the imaging handlers for a camera with a picture control ONVIF can express."""
    fields = device.driver.capabilities.imaging & SETTING_NAMES.keys()
    if not fields:
        return
    service = _ImagingService(device, frozenset(fields))
    for name, handler in (
        ("GetServiceCapabilities", service.get_service_capabilities),
        ("GetImagingSettings", service.get_imaging_settings),
        ("SetImagingSettings", service.set_imaging_settings),
        ("GetOptions", service.get_options),
        ("GetMoveOptions", service.get_move_options),
        ("GetStatus", service.get_status),
    ):
        operations.add(Service.IMAGING, name, handler)
