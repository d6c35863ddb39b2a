"""ONVIF PTZ service (ver20): one node and one configuration for a camera that can move.

ONVIF's generic spaces are the driver's normalized scales (pan/tilt in [-1, 1], zoom position
in [0, 1], speed in [0, 1]), so vectors pass through unchanged; the FOV translation spaces
(what trackers such as Frigate move in) are turned into them by the head's geometry. The node
lists only the spaces of the moves the gateway can make for its camera, and operations it
cannot make are not registered, so they answer ter:ActionNotSupported; a camera that cannot
move gets no PTZ service at all.

What the gateway keeps for the head (the move in flight and its timer, the estimated
position, presets the camera cannot list) is :class:`bridge.ptz.PtzHead`'s, shared with
whatever else drives the camera; this module translates SOAP to it and its refusals to faults.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge.cameras.base import PtzVector
from bridge.errors import ActionFailed, InvalidArgVal, NoConfig, PtzRefused
from bridge.kept import MAX_NAME, Kind
from bridge.onvif.camera_calls import camera_call
from bridge.onvif.context import PTZ_CONFIG, PTZ_NODE, DeviceContext, kept_after
from bridge.onvif.profiles import profile_store
from bridge.onvif.soap import Handler, OnvifRequest, Operations, Service
from bridge.ptz import PtzHead, PtzOffer, Refusal, Translation

_SPACES = "http://www.onvif.org/ver10/tptz"

DEFAULT_TIMEOUT = dt.timedelta(seconds=10)
TIMEOUT_RANGE = (dt.timedelta(milliseconds=100), dt.timedelta(minutes=1))
_NAME = "PTZ"
_T = TypeVar("_T")
Range = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Space:
    """One kind of ONVIF space: its pan/tilt and zoom URIs and ranges, and the ter: subcode a
    value outside them gets."""

    pan_tilt: str
    zoom: str
    pan_tilt_range: Range
    zoom_range: Range
    invalid: str


POSITION = Space(
    f"{_SPACES}/PanTiltSpaces/PositionGenericSpace",
    f"{_SPACES}/ZoomSpaces/PositionGenericSpace",
    (-1.0, 1.0),
    (0.0, 1.0),
    "InvalidPosition",
)
TRANSLATION = Space(
    f"{_SPACES}/PanTiltSpaces/TranslationGenericSpace",
    f"{_SPACES}/ZoomSpaces/TranslationGenericSpace",
    (-1.0, 1.0),
    (-1.0, 1.0),
    "InvalidTranslation",
)
# Moves by a fraction of the picture: (1, 1) is its upper right corner. The spec proposes an
# unbounded range; the picture's edge is the bound offered, as trackers scale [-1, 1] onto the
# range they are given. The zoom space takes a factor on the magnification (1 leaves it), its
# range is set per head by its lens (:func:`fov_zoom_range`).
FOV = Space(
    f"{_SPACES}/PanTiltSpaces/TranslationSpaceFov",
    f"{_SPACES}/ZoomSpaces/TranslationSpaceFov",
    (-1.0, 1.0),
    (0.0, 1.0),
    "InvalidTranslation",
)
VELOCITY = Space(
    f"{_SPACES}/PanTiltSpaces/VelocityGenericSpace",
    f"{_SPACES}/ZoomSpaces/VelocityGenericSpace",
    (-1.0, 1.0),
    (-1.0, 1.0),
    "InvalidVelocity",
)
SPEED = Space(
    f"{_SPACES}/PanTiltSpaces/GenericSpeedSpace",
    f"{_SPACES}/ZoomSpaces/ZoomGenericSpeedSpace",
    (0.0, 1.0),
    (0.0, 1.0),
    "InvalidSpeed",
)


# -- what the node and its configuration look like ------------------------------------------


def _range(bounds: Range) -> dict[str, float]:
    return {"Min": bounds[0], "Max": bounds[1]}


def _space_1d(uri: str, bounds: Range) -> dict[str, Any]:
    return {"URI": uri, "XRange": _range(bounds)}


def fov_zoom_range(head: PtzHead) -> Range:
    """Factors the zoom FOV space takes: from the widest zoom to the lens's magnification."""
    return (0.0, head.geometry.zoom_ratio)


def ptz_spaces(head: PtzHead) -> dict[str, Any]:
    """tt:PTZSpaces: the spaces of the moves the gateway makes for the head (a relative move in
    the picture's field of view wherever it makes relative moves)."""
    offer = head.offer
    spaces: dict[str, Any] = {}
    for supported, space, kind in (
        (offer.absolute, POSITION, ("AbsolutePanTiltPositionSpace", "AbsoluteZoomPositionSpace")),
        (
            offer.relative,
            TRANSLATION,
            ("RelativePanTiltTranslationSpace", "RelativeZoomTranslationSpace"),
        ),
        (
            offer.continuous,
            VELOCITY,
            ("ContinuousPanTiltVelocitySpace", "ContinuousZoomVelocitySpace"),
        ),
        (offer.speed, SPEED, ("PanTiltSpeedSpace", "ZoomSpeedSpace")),
    ):
        if not supported:
            continue
        pan_tilt = _space_1d(space.pan_tilt, space.pan_tilt_range)
        if space is not SPEED:  # a speed is a magnitude: one range
            pan_tilt["YRange"] = _range(space.pan_tilt_range)
        spaces[kind[0]] = [pan_tilt]
        if offer.zoom:
            spaces[kind[1]] = [_space_1d(space.zoom, space.zoom_range)]
    if offer.relative:
        spaces["RelativePanTiltTranslationSpace"].append(
            {**_space_1d(FOV.pan_tilt, FOV.pan_tilt_range), "YRange": _range(FOV.pan_tilt_range)}
        )
        if offer.zoom_fov:
            spaces["RelativeZoomTranslationSpace"].append(_space_1d(FOV.zoom, fov_zoom_range(head)))
    return spaces


def vector_values(vector: PtzVector, space: Space, zoom: bool) -> dict[str, Any]:
    """A tt:PTZVector (or tt:PTZSpeed) in ``space``; zoom only for a camera that zooms."""
    values: dict[str, Any] = {
        "PanTilt": {"x": vector.pan, "y": vector.tilt, "space": space.pan_tilt}
    }
    if zoom:
        values["Zoom"] = {"x": vector.zoom, "space": space.zoom}
    return values


def ptz_node(head: PtzHead) -> dict[str, Any]:
    offer = head.offer
    node: dict[str, Any] = {
        "token": PTZ_NODE,
        "Name": _NAME,
        "SupportedPTZSpaces": ptz_spaces(head),
        "MaximumNumberOfPresets": offer.presets,
        "HomeSupported": offer.home,
    }
    if offer.home:
        node["FixedHomePosition"] = not offer.set_home
    return node


def ptz_configuration(device: DeviceContext) -> dict[str, Any] | None:
    """The device's tt:PTZConfiguration, as media profiles embed it; None when the camera
    cannot move."""
    head = device.ptz
    if head is None or not head.offer.any:
        return None
    offer = head.offer
    config: dict[str, Any] = {
        "token": PTZ_CONFIG,
        "Name": _NAME,
        "UseCount": profile_store(device).use_count(Kind.PTZ, PTZ_CONFIG),
        "NodeToken": PTZ_NODE,
    }
    for supported, space, keys in (
        (
            offer.absolute,
            POSITION,
            ("DefaultAbsolutePantTiltPositionSpace", "DefaultAbsoluteZoomPositionSpace"),
        ),
        (
            offer.relative,
            TRANSLATION,
            ("DefaultRelativePanTiltTranslationSpace", "DefaultRelativeZoomTranslationSpace"),
        ),
        (
            offer.continuous,
            VELOCITY,
            ("DefaultContinuousPanTiltVelocitySpace", "DefaultContinuousZoomVelocitySpace"),
        ),
    ):
        if supported:
            config[keys[0]] = space.pan_tilt
            if offer.zoom:
                config[keys[1]] = space.zoom
    if offer.speed:
        config["DefaultPTZSpeed"] = vector_values(PtzVector(1.0, 1.0, 1.0), SPEED, offer.zoom)
    if offer.continuous:
        config["DefaultPTZTimeout"] = DEFAULT_TIMEOUT
    return config


# -- request values -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requested:
    """A requested tt:PTZVector or tt:PTZSpeed; None for an element left out."""

    pan_tilt: tuple[float, float] | None
    zoom: float | None

    def over(self, base: PtzVector) -> PtzVector:
        """This vector, with what was left out taken from ``base``."""
        pan, tilt = self.pan_tilt if self.pan_tilt is not None else (base.pan, base.tilt)
        return PtzVector(pan, tilt, base.zoom if self.zoom is None else self.zoom)


def _numbers(
    value: Mapping[str, Any] | None,
    axes: tuple[str, ...],
    spaces: Mapping[str, Range],
    invalid: str,
) -> tuple[str, tuple[float, ...]] | None:
    """The space (the first of ``spaces`` when none is named) and the range-checked numbers
    of a tt:Vector2D or tt:Vector1D; None when it was left out."""
    if value is None:
        return None
    uri = value.get("space") or next(iter(spaces))
    if uri not in spaces:
        raise InvalidArgVal(f"Space {uri} is not supported", subcode="SpaceNotSupported")
    low, high = spaces[uri]
    numbers = tuple(float(value[axis]) for axis in axes)
    if not all(math.isfinite(n) and low <= n <= high for n in numbers):
        raise InvalidArgVal(f"Values must be within {low}..{high}", subcode=invalid)
    return uri, numbers


def _zoom_refused(zoom: bool, value: float, still: float) -> None:
    """A camera without zoom takes a zoom that leaves the lens alone (clients send one with
    every move) and refuses any other."""
    if not zoom and value != still:
        raise InvalidArgVal("The camera cannot zoom", subcode="SpaceNotSupported")


def parse_vector(value: Mapping[str, Any] | None, space: Space, zoom: bool) -> Requested:
    """A request's vector in ``space`` (its default when no space is named), range-checked."""
    value = value or {}
    pan_tilt = _numbers(
        value.get("PanTilt"), ("x", "y"), {space.pan_tilt: space.pan_tilt_range}, space.invalid
    )
    zoom_value = _numbers(value.get("Zoom"), ("x",), {space.zoom: space.zoom_range}, space.invalid)
    if zoom_value is not None:
        _zoom_refused(zoom, zoom_value[1][0], 0.0)
    return Requested(
        None if pan_tilt is None else (pan_tilt[1][0], pan_tilt[1][1]),
        None if zoom_value is None or not zoom else zoom_value[1][0],
    )


def parse_translation(value: Mapping[str, Any] | None, head: PtzHead) -> Translation:
    """A RelativeMove's translation: pan/tilt in the generic or the FOV space, zoom in the
    generic one or (on a lens whose ratio is known) the FOV one."""
    value = value or {}
    pan_tilt = _numbers(
        value.get("PanTilt"),
        ("x", "y"),
        {TRANSLATION.pan_tilt: TRANSLATION.pan_tilt_range, FOV.pan_tilt: FOV.pan_tilt_range},
        TRANSLATION.invalid,
    )
    zoom_spaces = {TRANSLATION.zoom: TRANSLATION.zoom_range}
    if head.offer.zoom_fov or not head.offer.zoom:  # a still lens: either space's "stay"
        zoom_spaces[FOV.zoom] = fov_zoom_range(head) if head.offer.zoom_fov else (1.0, 1.0)
    zoom = _numbers(value.get("Zoom"), ("x",), zoom_spaces, TRANSLATION.invalid)
    zoom_factor = zoom is not None and zoom[0] == FOV.zoom
    if zoom is not None:
        _zoom_refused(head.offer.zoom, zoom[1][0], 1.0 if zoom_factor else 0.0)
    return Translation(
        pan_tilt=None if pan_tilt is None else (pan_tilt[1][0], pan_tilt[1][1]),
        pan_tilt_fov=pan_tilt is not None and pan_tilt[0] == FOV.pan_tilt,
        zoom=None if zoom is None or not head.offer.zoom else zoom[1][0],
        zoom_factor=zoom_factor,
    )


def parse_speed(value: Mapping[str, Any] | None, offer: PtzOffer) -> float | None:
    """The one speed a driver takes (pan/tilt's, else zoom's); None for the camera's own,
    which is all a camera without speed control has. A zero speed cannot move: also None.
    A zoom speed is only range-checked on a camera that does not zoom (clients send one)."""
    requested = parse_vector(value, SPEED, zoom=True)
    if not offer.speed:
        return None
    if requested.pan_tilt is not None:
        return requested.pan_tilt[0] or None
    return (requested.zoom if offer.zoom else None) or None


def parse_timeout(value: object) -> float:
    """A ContinuousMove Timeout in seconds; its default when left out."""
    if value is None:
        return DEFAULT_TIMEOUT.total_seconds()
    low, high = TIMEOUT_RANGE
    if not isinstance(value, dt.timedelta) or not low <= value <= high:
        raise InvalidArgVal(
            f"Timeout must be within {low.total_seconds()}..{high.total_seconds()} s",
            subcode="TimeoutNotSupported",
        )
    return value.total_seconds()


# What each refusal of the head is as a fault.
_REFUSALS: dict[Refusal, tuple[type[InvalidArgVal | ActionFailed], str]] = {
    Refusal.NO_PRESET: (InvalidArgVal, "NoToken"),
    Refusal.PRESET_EXISTS: (InvalidArgVal, "PresetExist"),
    Refusal.NO_PRESET_ROOM: (ActionFailed, "TooManyPresets"),
    Refusal.MOVING: (ActionFailed, "MovingPTZ"),
}


@contextmanager
def _head_call(action: str) -> Iterator[None]:
    """The head's refusals and the camera's errors as the faults ONVIF names for them."""
    try:
        with camera_call(action):
            yield
    except PtzRefused as exc:
        fault, subcode = _REFUSALS[Refusal(exc.reason)]
        raise fault(str(exc), subcode=subcode) from exc


async def _call(action: str, call: Awaitable[_T]) -> _T:
    with _head_call(action):
        return await call


# -- the service ----------------------------------------------------------------------------


# tptz:Capabilities: GetStatus always carries a MoveStatus and a Position (the camera's, else
# the gateway's estimate), whatever the camera.
SERVICE_CAPABILITIES = {
    "EFlip": False,
    "Reverse": False,
    "GetCompatibleConfigurations": False,
    "MoveStatus": True,
    "StatusPosition": True,
}


def _config(request: OnvifRequest, key: str) -> None:
    if request.params[key] != PTZ_CONFIG:
        raise NoConfig()


class _PtzService:
    def __init__(self, device: DeviceContext, head: PtzHead) -> None:
        self.head = head
        self.offer = head.offer
        self._device = device

    def _profile(self, request: OnvifRequest) -> None:
        """The request's media profile must exist and hold the PTZ configuration."""
        profile = profile_store(self._device).profile(request.params["ProfileToken"])
        if profile.configurations.get(Kind.PTZ) != PTZ_CONFIG:
            raise InvalidArgVal("The profile has no PTZ configuration", subcode="NoPTZProfile")

    def operations(self) -> dict[str, Handler]:
        """Handler of each operation the gateway can do for this camera."""
        offer = self.offer
        wanted: dict[str, Handler | None] = {
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetNodes": self.get_nodes,
            "GetNode": self.get_node,
            "GetConfigurations": self.get_configurations,
            "GetConfiguration": self.get_configuration,
            "GetConfigurationOptions": self.get_configuration_options,
            "GetStatus": self.get_status,
            "Stop": self.stop,
            "ContinuousMove": self.continuous_move if offer.continuous else None,
            "RelativeMove": self.relative_move if offer.relative else None,
            "AbsoluteMove": self.absolute_move if offer.absolute else None,
            "GotoHomePosition": self.goto_home_position if offer.home else None,
            "SetHomePosition": self.set_home_position if offer.set_home else None,
        }
        if offer.presets:
            wanted |= {
                "GetPresets": self.get_presets,
                "SetPreset": self.set_preset,
                "RemovePreset": self.remove_preset,
                "GotoPreset": self.goto_preset,
            }
        return {name: handler for name, handler in wanted.items() if handler is not None}

    async def get_service_capabilities(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"Capabilities": SERVICE_CAPABILITIES}

    async def get_nodes(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"PTZNode": [ptz_node(self.head)]}

    async def get_node(self, request: OnvifRequest) -> Mapping[str, Any]:
        if request.params["NodeToken"] != PTZ_NODE:
            raise InvalidArgVal("No such PTZ node", subcode="NoEntity")
        return {"PTZNode": ptz_node(self.head)}

    async def get_configurations(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"PTZConfiguration": [ptz_configuration(self._device)]}

    async def get_configuration(self, request: OnvifRequest) -> Mapping[str, Any]:
        _config(request, "PTZConfigurationToken")
        return {"PTZConfiguration": ptz_configuration(self._device)}

    async def get_configuration_options(self, request: OnvifRequest) -> Mapping[str, Any]:
        _config(request, "ConfigurationToken")
        low, high = TIMEOUT_RANGE
        options = {"Spaces": ptz_spaces(self.head), "PTZTimeout": {"Min": low, "Max": high}}
        return {"PTZConfigurationOptions": options}

    async def get_status(self, request: OnvifRequest) -> Mapping[str, Any]:
        self._profile(request)
        status = await _call("report its position", self.head.status())
        pan_tilt = "MOVING" if status.pan_tilt_moving else "IDLE"
        move_status = {"PanTilt": pan_tilt}
        if self.offer.zoom:
            move_status["Zoom"] = "MOVING" if status.zoom_moving else "IDLE"
        return {
            "PTZStatus": {
                # The camera's position where it reports one, else where the gateway's record
                # of the moves made puts it (an estimate): trackers need one either way.
                "Position": vector_values(status.position, POSITION, self.offer.zoom),
                "MoveStatus": move_status,
                "UtcTime": dt.datetime.now(dt.UTC),
            }
        }

    async def continuous_move(self, request: OnvifRequest) -> None:
        self._profile(request)
        velocity = parse_vector(request.params["Velocity"], VELOCITY, self.offer.zoom)
        stop_after = parse_timeout(request.params.get("Timeout"))
        target = velocity.over(self.head.velocity)
        await _call("move continuously", self.head.continuous_move(target, stop_after))

    async def stop(self, request: OnvifRequest) -> None:
        self._profile(request)
        params = request.params
        stop = self.head.stop(params.get("PanTilt") is not False, params.get("Zoom") is not False)
        await _call("stop", stop)

    async def relative_move(self, request: OnvifRequest) -> None:
        self._profile(request)
        translation = parse_translation(request.params["Translation"], self.head)
        speed = parse_speed(request.params.get("Speed"), self.offer)
        await _call("move relatively", self.head.translate(translation, speed))

    async def absolute_move(self, request: OnvifRequest) -> None:
        self._profile(request)
        position = parse_vector(request.params["Position"], POSITION, self.offer.zoom)
        speed = parse_speed(request.params.get("Speed"), self.offer)
        with _head_call("move to a position"):
            here = await self.head.position()
            await self.head.absolute_move(position.over(here), speed)

    async def get_presets(self, request: OnvifRequest) -> Mapping[str, Any]:
        self._profile(request)
        presets, _ = await _call("list presets", self.head.presets())
        values = []
        for preset in presets:
            value: dict[str, Any] = {"token": preset.token, "Name": preset.name}
            position = self.head.stored_position(preset.token)
            if position is not None:
                value["PTZPosition"] = vector_values(position, POSITION, self.offer.zoom)
            values.append(value)
        return {"Preset": values}

    async def set_preset(self, request: OnvifRequest) -> Mapping[str, Any]:
        self._profile(request)
        params = request.params
        name = params.get("PresetName")
        if name is not None and len(name) > MAX_NAME:
            raise InvalidArgVal(
                f"A preset name is at most {MAX_NAME} characters", subcode="InvalidPresetName"
            )
        store = self.head.set_preset(name, params.get("PresetToken"))
        return {"PresetToken": await _call("store a preset", store)}

    async def remove_preset(self, request: OnvifRequest) -> None:
        self._profile(request)
        await _call("remove a preset", self.head.remove_preset(request.params["PresetToken"]))

    async def goto_preset(self, request: OnvifRequest) -> None:
        self._profile(request)
        speed = parse_speed(request.params.get("Speed"), self.offer)
        token = request.params["PresetToken"]
        await _call("go to a preset", self.head.goto_preset(token, speed))

    async def goto_home_position(self, request: OnvifRequest) -> None:
        self._profile(request)
        speed = parse_speed(request.params.get("Speed"), self.offer)
        await _call("go to its home position", self.head.goto_home(speed))

    async def set_home_position(self, request: OnvifRequest) -> None:
        self._profile(request)
        await _call("store a home position", self.head.set_home())


def register(operations: Operations, device: DeviceContext) -> None:
    """Add the PTZ handlers for a camera that can move; nothing for one that cannot. The head
    is the camera's (the gateway stops it when the camera goes), not this service's."""
    head = device.ptz
    if head is None or not head.offer.any:
        return
    for name, handler in _PtzService(device, head).operations().items():
        kept = name in ("SetPreset", "RemovePreset")
        operations.add(Service.PTZ, name, kept_after(device, handler) if kept else handler)
