"""ONVIF PTZ service (ver20): one node and one configuration for a camera that can move.

ONVIF's generic spaces are the driver's normalized scales (pan/tilt in [-1, 1], zoom position
in [0, 1], speed in [0, 1]), so vectors pass through unchanged. The node lists only the spaces
of the moves its camera can make, and operations it cannot make are not registered, so they
answer ter:ActionNotSupported; a camera that cannot move gets no PTZ service at all.

Legacy cameras report little, so the service remembers what it did: a continuous move stops
after its Timeout (the camera would go on to its end stop), the position of a camera that does
not report it is tracked from the moves issued here, and a camera that cannot list its presets
lists those stored through this device.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from bridge.cameras.base import CameraDriver, Preset, PtzCapabilities, PtzVector
from bridge.errors import (
    ActionFailed,
    ActionNotSupported,
    CameraError,
    InvalidArgVal,
    NoConfig,
)
from bridge.onvif.camera_calls import camera_call
from bridge.onvif.context import PTZ_CONFIG, PTZ_NODE, DeviceContext
from bridge.onvif.profiles import Kind, profile_store
from bridge.onvif.soap import Handler, OnvifRequest, Operations, Service

log = logging.getLogger(__name__)

_SPACES = "http://www.onvif.org/ver10/tptz"

DEFAULT_TIMEOUT = dt.timedelta(seconds=10)
TIMEOUT_RANGE = (dt.timedelta(milliseconds=100), dt.timedelta(minutes=1))
_NAME = "PTZ"
_STILL = PtzVector()
Range = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Space:
    """One kind of ONVIF generic space: its pan/tilt and zoom URIs and ranges, and the
    ter: subcode a value outside them gets."""

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


def ptz_spaces(caps: PtzCapabilities) -> dict[str, Any]:
    """tt:PTZSpaces: the generic spaces of the moves the camera can make."""
    spaces: dict[str, Any] = {}
    for supported, space, kind in (
        (caps.absolute, POSITION, ("AbsolutePanTiltPositionSpace", "AbsoluteZoomPositionSpace")),
        (
            caps.relative,
            TRANSLATION,
            ("RelativePanTiltTranslationSpace", "RelativeZoomTranslationSpace"),
        ),
        (
            caps.continuous,
            VELOCITY,
            ("ContinuousPanTiltVelocitySpace", "ContinuousZoomVelocitySpace"),
        ),
        (caps.speed, SPEED, ("PanTiltSpeedSpace", "ZoomSpeedSpace")),
    ):
        if not supported:
            continue
        pan_tilt = _space_1d(space.pan_tilt, space.pan_tilt_range)
        if space is not SPEED:  # a speed is a magnitude: one range
            pan_tilt["YRange"] = _range(space.pan_tilt_range)
        spaces[kind[0]] = [pan_tilt]
        if caps.zoom:
            spaces[kind[1]] = [_space_1d(space.zoom, space.zoom_range)]
    return spaces


def vector_values(vector: PtzVector, space: Space, zoom: bool) -> dict[str, Any]:
    """A tt:PTZVector (or tt:PTZSpeed) in ``space``; zoom only for a camera that zooms."""
    values: dict[str, Any] = {
        "PanTilt": {"x": vector.pan, "y": vector.tilt, "space": space.pan_tilt}
    }
    if zoom:
        values["Zoom"] = {"x": vector.zoom, "space": space.zoom}
    return values


def ptz_node(caps: PtzCapabilities) -> dict[str, Any]:
    node: dict[str, Any] = {
        "token": PTZ_NODE,
        "Name": _NAME,
        "SupportedPTZSpaces": ptz_spaces(caps),
        "MaximumNumberOfPresets": caps.presets,
        "HomeSupported": caps.home,
    }
    if caps.home:
        node["FixedHomePosition"] = not caps.set_home
    return node


def ptz_configuration(device: DeviceContext) -> dict[str, Any] | None:
    """The device's tt:PTZConfiguration, as media profiles embed it; None when the camera
    cannot move."""
    caps = device.driver.capabilities.ptz
    if not caps.any:
        return None
    config: dict[str, Any] = {
        "token": PTZ_CONFIG,
        "Name": _NAME,
        "UseCount": profile_store(device).use_count(Kind.PTZ, PTZ_CONFIG),
        "NodeToken": PTZ_NODE,
    }
    for supported, space, keys in (
        (
            caps.absolute,
            POSITION,
            ("DefaultAbsolutePantTiltPositionSpace", "DefaultAbsoluteZoomPositionSpace"),
        ),
        (
            caps.relative,
            TRANSLATION,
            ("DefaultRelativePanTiltTranslationSpace", "DefaultRelativeZoomTranslationSpace"),
        ),
        (
            caps.continuous,
            VELOCITY,
            ("DefaultContinuousPanTiltVelocitySpace", "DefaultContinuousZoomVelocitySpace"),
        ),
    ):
        if supported:
            config[keys[0]] = space.pan_tilt
            if caps.zoom:
                config[keys[1]] = space.zoom
    if caps.speed:
        config["DefaultPTZSpeed"] = vector_values(PtzVector(1.0, 1.0, 1.0), SPEED, caps.zoom)
    if caps.continuous:
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
    value: Mapping[str, Any] | None, axes: tuple[str, ...], uri: str, bounds: Range, invalid: str
) -> tuple[float, ...] | None:
    if value is None:
        return None
    space = value.get("space")
    if space is not None and space != uri:
        raise InvalidArgVal(f"Space {space} is not supported", subcode="SpaceNotSupported")
    numbers = tuple(float(value[axis]) for axis in axes)
    if not all(math.isfinite(n) and bounds[0] <= n <= bounds[1] for n in numbers):
        raise InvalidArgVal(f"Values must be within {bounds[0]}..{bounds[1]}", subcode=invalid)
    return numbers


def parse_vector(value: Mapping[str, Any] | None, space: Space, zoom: bool) -> Requested:
    """A request's vector in ``space`` (its default when no space is named), range-checked.

    A camera without zoom takes a zero zoom (clients send one with every move) and refuses
    any other.
    """
    value = value or {}
    pan_tilt = _numbers(
        value.get("PanTilt"), ("x", "y"), space.pan_tilt, space.pan_tilt_range, space.invalid
    )
    zoom_value = _numbers(value.get("Zoom"), ("x",), space.zoom, space.zoom_range, space.invalid)
    if zoom_value is not None and not zoom:
        if zoom_value[0]:
            raise InvalidArgVal("The camera cannot zoom", subcode="SpaceNotSupported")
        zoom_value = None
    return Requested(
        None if pan_tilt is None else (pan_tilt[0], pan_tilt[1]),
        None if zoom_value is None else zoom_value[0],
    )


def parse_speed(value: Mapping[str, Any] | None, caps: PtzCapabilities) -> float | None:
    """The one speed a driver takes (pan/tilt's, else zoom's); None for the camera's own,
    which is all a camera without speed control has. A zero speed cannot move: also None.
    A zoom speed is only range-checked on a camera that does not zoom (clients send one)."""
    requested = parse_vector(value, SPEED, zoom=True)
    if not caps.speed:
        return None
    if requested.pan_tilt is not None:
        return requested.pan_tilt[0] or None
    return (requested.zoom if caps.zoom else None) or None


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


def _clamp(vector: PtzVector) -> PtzVector:
    def clamp(value: float, low: float) -> float:
        return min(1.0, max(low, value))

    return PtzVector(clamp(vector.pan, -1.0), clamp(vector.tilt, -1.0), clamp(vector.zoom, 0.0))


def _require(presets: list[Preset], token: str) -> None:
    if all(preset.token != token for preset in presets):
        raise InvalidArgVal(f"No preset {token!r}", subcode="NoToken")


# -- the head -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stored:
    name: str
    position: PtzVector | None  # where the head was when it was stored, when known


class PtzHead:
    """One camera's PTZ as its ONVIF device drives it: moves in flight, position, presets.

    Commands are serialized, so the stop a Timeout sends never overtakes a newer move.
    """

    def __init__(self, driver: CameraDriver) -> None:
        self._driver = driver
        self.caps = driver.capabilities.ptz
        self._lock = asyncio.Lock()
        self._velocity = _STILL
        self._stop_at = 0.0
        self._stop_timer: asyncio.Task[None] | None = None
        # Legacy heads centre themselves at power-up, so tracking starts at home.
        self._tracked: PtzVector | None = _STILL
        self._home: PtzVector | None = _STILL
        self._stored: dict[str, _Stored] = {}

    @property
    def moving(self) -> bool:
        return self._velocity != _STILL

    @asynccontextmanager
    async def _command(self, action: str, *, moves: bool = True) -> AsyncIterator[None]:
        """Run a command alone; one that ``moves`` the head supersedes a continuous move,
        and so the stop its timeout would send."""
        if moves and self._stop_timer is not None:
            self._stop_timer.cancel()
        async with self._lock:
            with camera_call(action):
                yield

    async def _halt(self, when: str) -> None:
        async with self._lock:
            try:
                await self._driver.stop()
            except CameraError as exc:
                log.warning("PTZ stop %s failed: %s", when, exc)
            self._velocity = _STILL

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._halt("after the move's timeout")

    async def close(self) -> None:
        """The device is going away: a move still going is stopped now, as the camera would
        otherwise go on to its end stop."""
        if self._stop_timer is not None:
            self._stop_timer.cancel()
            with suppress(asyncio.CancelledError):
                await self._stop_timer
        if self.moving:
            await self._halt("on closing")

    async def position(self) -> PtzVector | None:
        """Where the head is: as the camera reports it, else as tracked (None: unknown)."""
        if not self.caps.position:
            return self._tracked
        with camera_call("report its position"):
            return await self._driver.ptz_position()

    async def continuous_move(self, velocity: Requested, stop_after: float) -> None:
        target = velocity.over(self._velocity)
        async with self._command("move continuously"):
            await self._driver.continuous_move(target)
            self._velocity = target
            if self.moving:
                self._tracked = None
                self._stop_at = time.monotonic() + stop_after
                self._stop_timer = asyncio.create_task(self._stop_after(stop_after))

    async def stop(self, pan_tilt: bool, zoom: bool) -> None:
        v = self._velocity
        keep = PtzVector(
            0.0 if pan_tilt else v.pan, 0.0 if pan_tilt else v.tilt, 0.0 if zoom else v.zoom
        )
        if keep != _STILL:  # the axes not stopped go on until the move's own timeout
            remaining = max(0.0, self._stop_at - time.monotonic())
            await self.continuous_move(Requested((keep.pan, keep.tilt), keep.zoom), remaining)
            return
        async with self._command("stop"):
            await self._driver.stop()
            self._velocity = _STILL

    async def relative_move(self, translation: Requested, speed: float | None) -> None:
        delta = translation.over(_STILL)
        async with self._command("move relatively"):
            await self._driver.relative_move(delta, speed)
            self._velocity = _STILL
            if self._tracked is not None:
                here = self._tracked
                self._tracked = _clamp(
                    PtzVector(here.pan + delta.pan, here.tilt + delta.tilt, here.zoom + delta.zoom)
                )

    async def absolute_move(self, position: Requested, speed: float | None) -> None:
        here = _STILL
        if position.pan_tilt is None or (self.caps.zoom and position.zoom is None):
            known = await self.position()
            if known is None:
                raise InvalidArgVal(
                    "The position is unknown: give every axis", subcode="InvalidPosition"
                )
            here = known
        target = position.over(here)
        async with self._command("move to a position"):
            await self._driver.absolute_move(target, speed)
            self._velocity = _STILL
            self._tracked = target

    async def presets(self) -> tuple[list[Preset], bool]:
        """The presets, and whether the camera listed them (else: those stored here)."""
        try:
            with camera_call("list presets"):
                return list(await self._driver.presets()), True
        except ActionNotSupported:
            return [Preset(token, stored.name) for token, stored in self._stored.items()], False

    def stored_position(self, token: str) -> PtzVector | None:
        stored = self._stored.get(token)
        return None if stored is None else stored.position

    async def _existing(self, token: str) -> None:
        presets, _ = await self.presets()
        _require(presets, token)

    def _free_slot(self) -> str:
        """A slot for a new preset on a camera that cannot list them: its slots are numbered
        from 1, and those stored here are taken."""
        for slot in range(1, self.caps.presets + 1):
            if str(slot) not in self._stored:
                return str(slot)
        raise ActionFailed("No room for another preset", subcode="TooManyPresets")

    async def set_preset(self, name: str | None, token: str | None) -> str:
        presets, listable = await self.presets()
        if token is not None:
            _require(presets, token)
        taken = {preset.name for preset in presets if preset.token != token}
        if not name:
            name = next(f"Preset {n}" for n in itertools.count(1) if f"Preset {n}" not in taken)
        elif name in taken:
            raise InvalidArgVal(f"A preset is already named {name!r}", subcode="PresetExist")
        if self.moving:
            raise ActionFailed("A preset cannot be stored while moving", subcode="MovingPTZ")
        if token is None and not listable:
            token = self._free_slot()
        position = await self.position()
        async with self._command("store a preset", moves=False):
            token = await self._driver.set_preset(name, token)
        self._stored[token] = _Stored(name, position)
        return token

    async def remove_preset(self, token: str) -> None:
        await self._existing(token)
        async with self._command("remove a preset", moves=False):
            await self._driver.remove_preset(token)
        self._stored.pop(token, None)

    async def goto_preset(self, token: str, speed: float | None) -> None:
        await self._existing(token)
        async with self._command("go to a preset"):
            if speed is not None:
                await self._driver.set_ptz_speed(speed)
            await self._driver.goto_preset(token)
            self._velocity = _STILL
            self._tracked = self.stored_position(token)

    async def goto_home(self, speed: float | None) -> None:
        async with self._command("go to its home position"):
            if speed is not None:
                await self._driver.set_ptz_speed(speed)
            await self._driver.goto_home()
            self._velocity = _STILL
            self._tracked = self._home

    async def set_home(self) -> None:
        if self.moving:
            raise ActionFailed("Home cannot be stored while moving", subcode="MovingPTZ")
        position = await self.position()
        async with self._command("store a home position", moves=False):
            await self._driver.set_home()
        self._home = position


# -- the service ----------------------------------------------------------------------------


def service_capabilities(device: DeviceContext) -> dict[str, Any]:
    """tptz:Capabilities: MoveStatus always, Position where the camera reports it (a tracked
    one is not always known)."""
    return {
        "EFlip": False,
        "Reverse": False,
        "GetCompatibleConfigurations": False,
        "MoveStatus": True,
        "StatusPosition": device.driver.capabilities.ptz.position,
    }


def _config(request: OnvifRequest, key: str) -> None:
    if request.params[key] != PTZ_CONFIG:
        raise NoConfig()


class _PtzService:
    def __init__(self, device: DeviceContext) -> None:
        self.head = PtzHead(device.driver)
        self.caps = self.head.caps
        self._device = device

    def _profile(self, request: OnvifRequest) -> None:
        """The request's media profile must exist and hold the PTZ configuration."""
        profile = profile_store(self._device).profile(request.params["ProfileToken"])
        if profile.configurations.get(Kind.PTZ) != PTZ_CONFIG:
            raise InvalidArgVal("The profile has no PTZ configuration", subcode="NoPTZProfile")

    def operations(self) -> dict[str, Handler]:
        """Handler of each operation this camera can do."""
        caps = self.caps
        wanted: dict[str, Handler | None] = {
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetNodes": self.get_nodes,
            "GetNode": self.get_node,
            "GetConfigurations": self.get_configurations,
            "GetConfiguration": self.get_configuration,
            "GetConfigurationOptions": self.get_configuration_options,
            "GetStatus": self.get_status,
            "Stop": self.stop,
            "ContinuousMove": self.continuous_move if caps.continuous else None,
            "RelativeMove": self.relative_move if caps.relative else None,
            "AbsoluteMove": self.absolute_move if caps.absolute else None,
            "GotoHomePosition": self.goto_home_position if caps.home else None,
            "SetHomePosition": self.set_home_position if caps.set_home else None,
        }
        if caps.presets:
            wanted |= {
                "GetPresets": self.get_presets,
                "SetPreset": self.set_preset,
                "RemovePreset": self.remove_preset,
                "GotoPreset": self.goto_preset,
            }
        return {name: handler for name, handler in wanted.items() if handler is not None}

    async def get_service_capabilities(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"Capabilities": service_capabilities(self._device)}

    async def get_nodes(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"PTZNode": [ptz_node(self.caps)]}

    async def get_node(self, request: OnvifRequest) -> Mapping[str, Any]:
        if request.params["NodeToken"] != PTZ_NODE:
            raise InvalidArgVal("No such PTZ node", subcode="NoEntity")
        return {"PTZNode": ptz_node(self.caps)}

    async def get_configurations(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"PTZConfiguration": [ptz_configuration(self._device)]}

    async def get_configuration(self, request: OnvifRequest) -> Mapping[str, Any]:
        _config(request, "PTZConfigurationToken")
        return {"PTZConfiguration": ptz_configuration(self._device)}

    async def get_configuration_options(self, request: OnvifRequest) -> Mapping[str, Any]:
        _config(request, "ConfigurationToken")
        low, high = TIMEOUT_RANGE
        options = {"Spaces": ptz_spaces(self.caps), "PTZTimeout": {"Min": low, "Max": high}}
        return {"PTZConfigurationOptions": options}

    async def get_status(self, request: OnvifRequest) -> Mapping[str, Any]:
        self._profile(request)
        position = await self.head.position()
        state = "MOVING" if self.head.moving else "IDLE"
        status: dict[str, Any] = {
            "MoveStatus": {"PanTilt": state, "Zoom": state}
            if self.caps.zoom
            else {"PanTilt": state},
            "UtcTime": dt.datetime.now(dt.UTC),
        }
        if position is not None:
            status["Position"] = vector_values(position, POSITION, self.caps.zoom)
        return {"PTZStatus": status}

    async def continuous_move(self, request: OnvifRequest) -> None:
        self._profile(request)
        velocity = parse_vector(request.params["Velocity"], VELOCITY, self.caps.zoom)
        await self.head.continuous_move(velocity, parse_timeout(request.params.get("Timeout")))

    async def stop(self, request: OnvifRequest) -> None:
        self._profile(request)
        params = request.params
        await self.head.stop(params.get("PanTilt") is not False, params.get("Zoom") is not False)

    async def relative_move(self, request: OnvifRequest) -> None:
        self._profile(request)
        translation = parse_vector(request.params["Translation"], TRANSLATION, self.caps.zoom)
        await self.head.relative_move(
            translation, parse_speed(request.params.get("Speed"), self.caps)
        )

    async def absolute_move(self, request: OnvifRequest) -> None:
        self._profile(request)
        position = parse_vector(request.params["Position"], POSITION, self.caps.zoom)
        await self.head.absolute_move(position, parse_speed(request.params.get("Speed"), self.caps))

    async def get_presets(self, request: OnvifRequest) -> Mapping[str, Any]:
        self._profile(request)
        presets, _ = await self.head.presets()
        values = []
        for preset in presets:
            value: dict[str, Any] = {"token": preset.token, "Name": preset.name}
            position = self.head.stored_position(preset.token)
            if position is not None:
                value["PTZPosition"] = vector_values(position, POSITION, self.caps.zoom)
            values.append(value)
        return {"Preset": values}

    async def set_preset(self, request: OnvifRequest) -> Mapping[str, Any]:
        self._profile(request)
        params = request.params
        token = await self.head.set_preset(params.get("PresetName"), params.get("PresetToken"))
        return {"PresetToken": token}

    async def remove_preset(self, request: OnvifRequest) -> None:
        self._profile(request)
        await self.head.remove_preset(request.params["PresetToken"])

    async def goto_preset(self, request: OnvifRequest) -> None:
        self._profile(request)
        speed = parse_speed(request.params.get("Speed"), self.caps)
        await self.head.goto_preset(request.params["PresetToken"], speed)

    async def goto_home_position(self, request: OnvifRequest) -> None:
        self._profile(request)
        await self.head.goto_home(parse_speed(request.params.get("Speed"), self.caps))

    async def set_home_position(self, request: OnvifRequest) -> None:
        self._profile(request)
        await self.head.set_home()


def register(operations: Operations, device: DeviceContext) -> None:
    """Add the PTZ handlers for a camera that can move; nothing for one that cannot."""
    if not device.driver.capabilities.ptz.any:
        return
    service = _PtzService(device)
    for name, handler in service.operations().items():
        operations.add(Service.PTZ, name, handler)
    device.closers.append(service.head.close)
