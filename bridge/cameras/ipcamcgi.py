"""Driver for the "IPCamCGI" dialect: CAS-3xx cameras and their D-Link/TRENDnet-style OEMs.

What the family offers, and how the driver maps it:

- Replies are ``Name=value`` lines (``text/html``); some CGIs join pairs with ``&`` on one line
  and pad around ``=`` (``Trigger1= 0&...``, ``UserName =...``). :func:`parse_pairs` reads all
  of these. Credentials are HTTP Basic; the configuration CGIs need the admin account.
- Device info comes from ``/isystem.cgi`` (the document's chapter 2 names it; its section 3.1.2
  misprints it as ``/system.cgi``, so firmware answering only there is read as a fallback).
- ``/mjpeg.cgi`` is the only live state: each frame carries
  ``Date: yyyy-mm-dd hh:mm:ss IO_XXXXXXXX_PT_ppp_ttt``. ``IO_`` digits are, in order, Trigger1,
  Trigger2 (the two trigger outputs ``/iocontrol.cgi`` switches), Image Upload, Image Email;
  the document marks the 5th to 8th "reserved". The driver reads the 5th as alarm input 1 and
  the 6th as motion; that is an assumption the document does not confirm, and a unit that
  keeps them 0 simply never reports an input or motion. ``PT_`` is pan 0..340 and tilt 0..135
  degrees. The PTZ position, digital input state and ``events()`` all come from these lines.
- PTZ is ``POST /pantiltcontrol.cgi`` with a form body: single steps of 1..10 degrees, go to
  position, presets 1..24 (0 is home and cannot be stored), no zoom, no speed setting, and no
  way to list presets. Continuous moves are emulated as repeated single steps until stopped;
  relative moves read the position from the stream and move to the sum.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from bridge.cameras.base import (
    CameraDriver,
    CameraEvent,
    Capabilities,
    DeviceInfo,
    Dialect,
    DigitalInput,
    EventKind,
    ImagingField,
    ImagingSettings,
    JpegFrame,
    Preset,
    PtzCapabilities,
    PtzGeometry,
    PtzVector,
    RelayOutput,
)
from bridge.cameras.fields import MAX_IO_PORTS, local_to_utc, normalize_mac, parse_int
from bridge.cameras.http import CameraHttp
from bridge.cameras.mjpeg import fetch_jpeg, mjpeg_frames
from bridge.cameras.multipart import Part
from bridge.cameras.stepping import SteppedMove
from bridge.errors import BadResponse, EndpointNotFound, UnsupportedOperation

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PTZ_CGI = "/pantiltcontrol.cgi"
IO_CGI = "/iocontrol.cgi"
VIDEO_CGI = "/mjpeg.cgi"

PAN_MAX = 340  # degrees of pan travel, reported 0..340
TILT_MAX = 135  # degrees of tilt travel, reported 0..135 (0 looks down)
STEP_MAX_DEGREES = 10
PRESET_SLOTS = 24
PRESET_NAME_MAX = 12  # the firmware keeps at most 12 characters
VENDOR_IMAGING_MIN, VENDOR_IMAGING_MAX = 1, 128

# Repeating single steps: one step per interval, until stopped (the gateway's PTZ owner times
# every move) or a full travel's worth of steps leaves the head at its end stop.
STEP_INTERVAL = 0.2
# The CAS-3xx head: the document's travel, a 45 x 34 degree picture, and its largest step
# repeated every STEP_INTERVAL at velocity 1.
PTZ_GEOMETRY = PtzGeometry(
    pan_degrees=PAN_MAX,
    tilt_degrees=TILT_MAX,
    fov=(45.0, 34.0),
    pan_rate=STEP_MAX_DEGREES / STEP_INTERVAL,
    tilt_rate=STEP_MAX_DEGREES / STEP_INTERVAL,
)
# Seconds of frames read for one that carries the Date line's state; a frame comes within a
# second, so this only ends the wait on a camera that never sends one.
STATUS_WAIT = 10.0

RESOLUTIONS = {0: (160, 120), 1: (320, 240), 2: (640, 480)}

# PanTiltSingleMove codes follow a numeric keypad: 1 up, 3 left, 4 home, 5 right, 7 down.
_STEP_UP, _STEP_LEFT, _STEP_RIGHT, _STEP_DOWN = 1, 3, 5, 7

# Positions in the Date line's IO_ field (2 and 3 are Image Upload and Image Email).
IO_TRIGGER_POSITIONS = (0, 1)
IO_INPUT, IO_MOTION = 4, 5
INPUT_TOKEN = "1"

# OEM model prefixes -> brand; the CGI reports a model but no manufacturer.
_BRANDS = (("DCS-", "D-Link"), ("TV-IP", "TRENDnet"), ("AIC", "AirLink101"))

# TimeZoneIndex (appendix table 1) -> UTC offset in minutes, as runs starting at an index.
_ZONE_RUNS = (
    (1, -720), (2, -660), (3, -600), (4, -540), (5, -480), (7, -420), (10, -360), (14, -300),
    (17, -270), (18, -240), (22, -210), (23, -180), (27, -120), (28, -60), (30, 0), (32, 60),
    (37, 120), (46, 180), (51, 210), (52, 240), (55, 270), (56, 300), (58, 330), (60, 345),
    (61, 360), (63, 390), (64, 420), (66, 480), (71, 540), (74, 570), (76, 600), (81, 660),
    (82, 720), (84, 780),
)  # fmt: skip
_ZONE_INDEX_MAX = 84

_PAIR = re.compile(r"\s*([A-Za-z0-9_]+)\s*=(.*)", re.DOTALL)
_SERVER_FINGERPRINT = "camera web server"
_REALM_FINGERPRINT = re.compile(r"^(CAS-3\d\d|DCS-5300|TV-IP4[01]0)", re.IGNORECASE)
_IO_FIELD = re.compile(r"IO_([01]+)")
_PT_FIELD = re.compile(r"PT_(\d{1,3})_(\d{1,3})")
_STAMP_FORMATS = (
    (re.compile(r"\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2}:\d{2}"), "%Y-%m-%d %H:%M:%S"),
    # Shipping firmware writes US style: "11-17-2016 04:03:05 PM".
    (re.compile(r"\d{1,2}-\d{1,2}-\d{4} \d{1,2}:\d{2}:\d{2} [AP]M", re.I), "%m-%d-%Y %I:%M:%S %p"),
)


# -- reply parsing ------------------------------------------------------------------------


def _segments(line: str) -> list[str]:
    """A line split at each ``&`` that starts another ``Name=``; other ``&`` stay in values."""
    out: list[str] = []
    for piece in line.split("&"):
        if out and not _PAIR.match(piece):
            out[-1] += "&" + piece
        else:
            out.append(piece)
    return out


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """Every ``Name=value`` in a reply, in order (names may repeat, as in user lists)."""
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        for segment in _segments(line):
            match = _PAIR.fullmatch(segment)
            if match:
                pairs.append((match[1], match[2].strip()))
    return pairs


def parse_params(text: str) -> dict[str, str]:
    return dict(parse_pairs(text))


def parse_cgi_version(text: str) -> int | None:
    return parse_int(parse_params(text).get("CGIVersion"), 0, 9999)


def manufacturer_of(model: str) -> str:
    for prefix, brand in _BRANDS:
        if model.upper().startswith(prefix):
            return brand
    return ""


def parse_system_info(text: str) -> DeviceInfo:
    params = parse_params(text)
    if not any(key in params for key in ("Model", "FirmwareVersion", "MACAddress")):
        raise BadResponse("system information has no Model, FirmwareVersion or MACAddress")
    model = params.get("Model", "")
    mac = normalize_mac(params.get("MACAddress", ""))
    return DeviceInfo(
        manufacturer=manufacturer_of(model),
        model=model,
        firmware=params.get("FirmwareVersion", ""),
        serial=mac.replace(":", ""),  # the family has no serial number; the MAC is unique
        mac=mac,
    )


def vendor_to_percent(value: int) -> float:
    span = VENDOR_IMAGING_MAX - VENDOR_IMAGING_MIN
    clamped = min(VENDOR_IMAGING_MAX, max(VENDOR_IMAGING_MIN, value))
    return (clamped - VENDOR_IMAGING_MIN) * 100.0 / span


def percent_to_vendor(value: float) -> int:
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"imaging value {value} is outside 0..100")
    span = VENDOR_IMAGING_MAX - VENDOR_IMAGING_MIN
    return VENDOR_IMAGING_MIN + round(value * span / 100.0)


# image.cgi parameter of each 1..128 control, in ImagingSettings field order.
_IMAGING_PARAMS = (
    (ImagingField.BRIGHTNESS, "BrightnessControl"),
    (ImagingField.CONTRAST, "ContrastControl"),
    (ImagingField.SATURATION, "SaturationControl"),
)
_MIRROR_BIT, _FLIP_BIT = 1, 2
_BYTE = 255  # the CGI's numeric settings are bytes


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What ``GET /image.cgi`` says; ``mirror_bits`` is the raw ``Mirror`` value."""

    resolution: tuple[int, int] | None
    imaging: ImagingSettings
    fields: frozenset[ImagingField]
    mirror_bits: int | None


def parse_image_config(text: str) -> ImageConfig:
    params = parse_params(text)
    levels: dict[str, float | None] = {}
    fields: set[ImagingField] = set()
    for field, name in _IMAGING_PARAMS:
        raw = parse_int(params.get(name), 0, _BYTE)
        levels[field.value] = None if raw is None else vendor_to_percent(raw)
        if raw is not None:
            fields.add(field)
    bits = parse_int(params.get("Mirror"), 0, _MIRROR_BIT | _FLIP_BIT)
    if bits is not None:
        fields |= {ImagingField.MIRROR, ImagingField.FLIP}
    code = parse_int(params.get("VideoResolution"), 0, _BYTE)
    return ImageConfig(
        resolution=RESOLUTIONS.get(code) if code is not None else None,
        imaging=ImagingSettings(
            brightness=levels["brightness"],
            contrast=levels["contrast"],
            saturation=levels["saturation"],
            mirror=None if bits is None else bool(bits & _MIRROR_BIT),
            flip=None if bits is None else bool(bits & _FLIP_BIT),
        ),
        fields=frozenset(fields),
        mirror_bits=bits,
    )


def imaging_form(settings: ImagingSettings, current_mirror_bits: int | None) -> dict[str, str]:
    """``image.cgi`` parameters for the fields set in ``settings``.

    Mirror and flip share one bit field, so changing one keeps the other from
    ``current_mirror_bits``. There is no sharpness parameter; callers reject it first.
    """
    if settings.sharpness is not None:
        raise ValueError("image.cgi has no sharpness parameter")
    form: dict[str, str] = {}
    for field, name in _IMAGING_PARAMS:
        value: float | None = getattr(settings, field.value)
        if value is not None:
            form[name] = str(percent_to_vendor(value))
    if settings.mirror is not None or settings.flip is not None:
        bits = current_mirror_bits or 0
        for flag, bit in ((settings.mirror, _MIRROR_BIT), (settings.flip, _FLIP_BIT)):
            if flag is not None:
                bits = bits | bit if flag else bits & ~bit
        form["Mirror"] = str(bits)
    if form:
        form["ConfigReboot"] = "No"
    return form


@dataclass(frozen=True, slots=True)
class IoControlStatus:
    triggers: dict[int, bool]  # Trigger<n> -> on
    image_upload: bool | None
    image_email: bool | None


def _flag(value: str | None) -> bool | None:
    number = parse_int(value, 0, _BYTE)
    return None if number is None else number != 0


def parse_io_status(text: str) -> IoControlStatus:
    """The TriggerN outputs (numbered 1..MAX_IO_PORTS; others are skipped) and upload flags."""
    triggers: dict[int, bool] = {}
    params = parse_params(text)
    for name, value in params.items():
        match = re.fullmatch(r"Trigger([0-9]{1,2})", name)
        number = int(match[1]) if match else 0
        state = _flag(value)
        if 1 <= number <= MAX_IO_PORTS and state is not None:
            triggers[number] = state
    if not triggers:
        raise BadResponse("iocontrol.cgi reply has no TriggerN values")
    return IoControlStatus(
        triggers=dict(sorted(triggers.items())),
        image_upload=_flag(params.get("ImageUpload")),
        image_email=_flag(params.get("ImageEmail")),
    )


@dataclass(frozen=True, slots=True)
class FrameStatus:
    """The state carried by one MJPEG frame's ``Date:`` header."""

    camera_time: datetime.datetime | None  # the camera's local wall clock, naive
    io: str  # the IO_ digits as sent ("" when absent)
    pan: int | None
    tilt: int | None

    def bit(self, position: int) -> bool | None:
        return self.io[position] == "1" if position < len(self.io) else None

    @property
    def position(self) -> PtzVector | None:
        if self.pan is None or self.tilt is None:
            return None
        return vendor_to_position(self.pan, self.tilt)


def parse_frame_status(value: str) -> FrameStatus | None:
    """Parse a ``Date:`` part header; None when it carries neither IO nor PT state."""
    io = _IO_FIELD.search(value)
    pt = _PT_FIELD.search(value)
    if io is None and pt is None:
        return None
    stamp: datetime.datetime | None = None
    for pattern, fmt in _STAMP_FORMATS:
        found = pattern.search(value)
        if found:
            with suppress(ValueError):
                stamp = datetime.datetime.strptime(found[0].upper(), fmt)
            break
    return FrameStatus(
        camera_time=stamp,
        io=io[1] if io else "",
        pan=int(pt[1]) if pt else None,
        tilt=int(pt[2]) if pt else None,
    )


# -- PTZ mapping ---------------------------------------------------------------------------


def _clamp(value: float, low: float = -1.0, high: float = 1.0) -> float:
    if math.isnan(value):
        raise ValueError("PTZ value is NaN")
    return min(high, max(low, value))


def vendor_to_position(pan: int, tilt: int) -> PtzVector:
    return PtzVector(
        pan=_clamp(pan * 2.0 / PAN_MAX - 1.0), tilt=_clamp(tilt * 2.0 / TILT_MAX - 1.0)
    )


def position_to_vendor(position: PtzVector) -> tuple[int, int]:
    pan = round((_clamp(position.pan) + 1.0) * PAN_MAX / 2.0)
    tilt = round((_clamp(position.tilt) + 1.0) * TILT_MAX / 2.0)
    return pan, tilt


def _step_degrees(speed: float) -> int:
    return max(1, min(STEP_MAX_DEGREES, round(abs(_clamp(speed)) * STEP_MAX_DEGREES)))


def single_move_forms(velocity: PtzVector) -> list[dict[str, str]]:
    """The single-step requests one tick of a continuous move at ``velocity`` sends.

    The firmware steps one axis per request (diagonal codes are reserved), so a diagonal
    velocity becomes a pan step and a tilt step; |velocity| 1 is the largest step.
    """
    forms: list[dict[str, str]] = []
    for speed, positive, negative in (
        (velocity.pan, _STEP_RIGHT, _STEP_LEFT),
        (velocity.tilt, _STEP_UP, _STEP_DOWN),
    ):
        if _clamp(speed) == 0.0:
            continue
        degrees = str(_step_degrees(speed))
        forms.append(
            {
                "PanSingleMoveDegree": degrees,
                "TiltSingleMoveDegree": degrees,
                "PanTiltSingleMove": str(positive if speed > 0 else negative),
            }
        )
    return forms


def position_form(position: PtzVector) -> dict[str, str]:
    pan, tilt = position_to_vendor(position)
    return {
        "PanTiltHorizontal": str(pan),
        "PanTiltVertical": str(tilt),
        "PanTiltPositionMove": "true",
    }


def preset_slot(token: str) -> int | None:
    """The preset number of a token "1".."24"; None for anything else (0 is home)."""
    return parse_int(token, 1, PRESET_SLOTS)


# -- date and time -------------------------------------------------------------------------


def zone_offset(params: Mapping[str, str]) -> datetime.timedelta:
    """The camera's UTC offset: from TimeZoneIndex (knows half hours), else TimeZone hours."""
    index = parse_int(params.get("TimeZoneIndex"), 1, _ZONE_INDEX_MAX)
    if index is not None:
        minutes = next(m for first, m in reversed(_ZONE_RUNS) if first <= index)
        return datetime.timedelta(minutes=minutes)
    hours = parse_int(params.get("TimeZone"), -12, 13)
    if hours is None:
        raise BadResponse("datetime.cgi reply has no usable TimeZoneIndex or TimeZone")
    return datetime.timedelta(hours=hours)


def parse_datetime(text: str) -> datetime.datetime:
    params = parse_params(text)
    stamp = f"{params.get('Date', '')} {params.get('Time', '')}"
    try:
        local = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise BadResponse("datetime.cgi reply has no valid Date and Time") from exc
    return local_to_utc(local, zone_offset(params))


def datetime_form(value: datetime.datetime, offset: datetime.timedelta) -> dict[str, str]:
    if value.tzinfo is None:
        raise ValueError("set_datetime needs an aware datetime")
    local = value.astimezone(datetime.UTC).replace(tzinfo=None) + offset
    return {
        "DateTimeMode": "1",  # set manually; otherwise the time server overrides it
        "Date": local.strftime("%Y-%m-%d"),
        "Time": local.strftime("%H:%M:%S"),
        "ConfigReboot": "No",
    }


# -- events --------------------------------------------------------------------------------

# (kind, source token, IO position) of every state the Date line tells.
_TRACKED = (
    (EventKind.MOTION, "", IO_MOTION),
    (EventKind.DIGITAL_INPUT, INPUT_TOKEN, IO_INPUT),
    *((EventKind.RELAY, str(n + 1), pos) for n, pos in enumerate(IO_TRIGGER_POSITIONS)),
)


def status_events(
    previous: FrameStatus | None, current: FrameStatus, timestamp: float
) -> list[CameraEvent]:
    """Events for what changed since ``previous``; with no previous, every known state."""
    events: list[CameraEvent] = []
    for kind, source, position in _TRACKED:
        now = current.bit(position)
        if now is None:
            continue
        if previous is None or previous.bit(position) != now:
            events.append(CameraEvent(kind, now, timestamp, source=source))
    return events


# -- the driver ----------------------------------------------------------------------------


class IpCamCgiDriver(CameraDriver):
    dialect = Dialect.IPCAMCGI
    ptz_geometry = PTZ_GEOMETRY

    def __init__(self, http: CameraHttp) -> None:
        super().__init__(http)
        self._steps = SteppedMove(http.display_name)

    @classmethod
    def matches_fingerprint(cls, server: str, realm: str) -> bool:
        return server.strip().lower().startswith(_SERVER_FINGERPRINT) or bool(
            _REALM_FINGERPRINT.match(realm.strip())
        )

    @classmethod
    async def detect(cls, http: CameraHttp) -> bool:
        try:
            text = await http.get_text("/cgiversion.cgi")
        except (EndpointNotFound, BadResponse):
            return False
        return parse_cgi_version(text) is not None

    async def _read(self, path: str, parse: Callable[[str], _T]) -> _T:
        """GET a CGI and parse its reply; a BadResponse names the camera."""
        text = await self.http.get_text(path)
        try:
            return parse(text)
        except BadResponse as exc:
            raise BadResponse(f"{path}: {exc}", camera=self.http.display_name) from exc

    async def connect(self) -> DeviceInfo:
        info = await self.device_info()
        # A unit without picture settings or trigger outputs (or one whose reply lacks them)
        # is still a camera: it only goes without those.
        image = await self._optional(self._image_config())
        io = await self._optional(self._read(IO_CGI, parse_io_status))
        self.capabilities = Capabilities(
            resolution=None if image is None else image.resolution,
            ptz=PtzCapabilities(
                continuous=True,
                relative=True,
                absolute=True,
                presets=PRESET_SLOTS,
                home=True,
                position=True,
            ),
            imaging=frozenset() if image is None else image.fields,
            relay_outputs=0 if io is None else len(io.triggers),
            digital_inputs=1,
            motion_events=True,
            input_events=True,
            get_datetime=True,
            set_datetime=True,
            reboot=True,
            factory_default=True,
        )
        return info

    async def _optional(self, read: Awaitable[_T]) -> _T | None:
        """A reply that only tells of an optional feature; None when the unit has no such
        CGI or its reply tells nothing usable."""
        try:
            return await read
        except (EndpointNotFound, BadResponse) as exc:
            log.info("%s", exc)  # exc names the camera
            return None

    async def device_info(self) -> DeviceInfo:
        try:
            return await self._read("/isystem.cgi", parse_system_info)
        except EndpointNotFound:
            return await self._read("/system.cgi", parse_system_info)

    async def close(self) -> None:
        """Stop an emulated continuous move; the driver holds nothing else."""
        await self._cancel_motion()

    # -- media ----------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        # Some firmware counts the CRLFs it appends after the picture in Content-Length.
        return (await fetch_jpeg(self.http, "/image.jpg")).rstrip(b"\r\n")

    async def _parts(self) -> AsyncGenerator[tuple[Part, float], None]:
        """The parts of one ``/mjpeg.cgi`` stream, with their arrival time."""
        async with self.http.stream(VIDEO_CGI) as reply:
            async for part, arrived in reply.parts():
                yield part, arrived

    def video_frames(self) -> AsyncGenerator[JpegFrame, None]:
        return mjpeg_frames(self.http, VIDEO_CGI)

    async def _statuses(self) -> AsyncGenerator[tuple[FrameStatus, float], None]:
        async with aclosing(self._parts()) as parts:
            async for part, arrived in parts:
                status = parse_frame_status(part.headers.get("date", ""))
                if status is not None:
                    yield status, arrived

    async def _current_status(self) -> FrameStatus:
        """The state in the next frame's Date line: the only place the camera reports it.

        A camera whose frames carry no such line would otherwise be read forever.
        """
        try:
            async with asyncio.timeout(STATUS_WAIT), aclosing(self._statuses()) as statuses:
                async for status, _ in statuses:
                    return status
        except TimeoutError as exc:
            raise BadResponse(
                f"{VIDEO_CGI} frames carry no state for {STATUS_WAIT:g} s",
                camera=self.http.display_name,
            ) from exc
        raise BadResponse(f"{VIDEO_CGI} ended before a frame", camera=self.http.display_name)

    # -- PTZ ------------------------------------------------------------------------------

    def _reject_zoom(self, zoom: float) -> None:
        if zoom:
            raise self._unsupported("zoom")

    async def _ptz(self, form: Mapping[str, str]) -> None:
        await self.http.post_form(PTZ_CGI, form)

    async def _cancel_motion(self) -> None:
        await self._steps.stop()

    async def _step(self, forms: Sequence[Mapping[str, str]]) -> None:
        for form in forms:
            await self._ptz(form)

    async def continuous_move(self, velocity: PtzVector) -> None:
        self._reject_zoom(velocity.zoom)
        forms = single_move_forms(velocity)
        await self._cancel_motion()
        if not forms:
            return
        degrees = min(int(form["PanSingleMoveDegree"]) for form in forms)
        await self._steps.start(
            partial(self._step, forms), STEP_INTERVAL, math.ceil(PAN_MAX / degrees)
        )

    async def stop(self) -> None:
        await self._cancel_motion()

    async def ptz_position(self) -> PtzVector:
        position = (await self._current_status()).position
        if position is None:
            raise BadResponse("frame header has no PT_ position", camera=self.http.display_name)
        return position

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        # The head has one speed; ``speed`` cannot be honoured and is not needed to arrive.
        self._reject_zoom(position.zoom)
        await self._cancel_motion()
        await self._ptz(position_form(position))

    async def relative_move(self, translation: PtzVector, speed: float | None = None) -> PtzVector:
        self._reject_zoom(translation.zoom)
        await self._cancel_motion()
        if not (translation.pan or translation.tilt):
            return translation
        here = await self.ptz_position()
        target = PtzVector(_clamp(here.pan + translation.pan), _clamp(here.tilt + translation.tilt))
        await self._ptz(position_form(target))
        return PtzVector(target.pan - here.pan, target.tilt - here.tilt)

    async def presets(self) -> Sequence[Preset]:
        raise self._unsupported("list presets (it has no CGI to read them)")

    def _slot(self, token: str) -> int:
        slot = preset_slot(token)
        if slot is None:
            raise UnsupportedOperation(
                f"no preset slot {token!r}; the camera has 1..{PRESET_SLOTS}",
                camera=self.http.display_name,
            )
        return slot

    async def goto_preset(self, token: str) -> None:
        slot = self._slot(token)
        await self._cancel_motion()
        await self._ptz({"PanTiltPresetPositionMove": str(slot)})

    async def set_preset(self, name: str, token: str | None = None) -> str:
        if token is None:
            raise self._unsupported("choose a free preset slot (it cannot list presets)")
        slot = self._slot(token)
        await self._cancel_motion()
        # The CGI stores the coordinates it is given, so send where the head is now.
        pan, tilt = position_to_vendor(await self.ptz_position())
        await self._ptz(
            {
                "PanTiltHorizontal": str(pan),
                "PanTiltVertical": str(tilt),
                "SetPosition": str(slot),
                "SetName": name[:PRESET_NAME_MAX],
            }
        )
        return str(slot)

    async def remove_preset(self, token: str, name: str = "") -> None:
        await self._ptz({"ClearPosition": str(self._slot(token))})

    async def goto_home(self) -> None:
        await self._cancel_motion()
        await self._ptz({"PanTiltPresetPositionMove": "0"})

    # -- imaging --------------------------------------------------------------------------

    async def _image_config(self) -> ImageConfig:
        return await self._read("/image.cgi", parse_image_config)

    async def imaging(self) -> ImagingSettings:
        config = await self._image_config()
        if not config.fields:
            raise BadResponse("/image.cgi has no picture controls", camera=self.http.display_name)
        return config.imaging

    async def set_imaging(self, settings: ImagingSettings) -> None:
        if settings.sharpness is not None:
            raise self._unsupported("set sharpness")
        bits: int | None = None
        if (settings.mirror is None) != (settings.flip is None):
            bits = (await self._image_config()).mirror_bits
        form = imaging_form(settings, bits)
        if form:
            await self.http.post_form("/image.cgi", form)

    # -- I/O and events ---------------------------------------------------------------------

    async def relay_outputs(self) -> Sequence[RelayOutput]:
        status = await self._read(IO_CGI, parse_io_status)
        return [RelayOutput(str(n), on) for n, on in status.triggers.items()]

    async def set_relay(self, token: str, active: bool) -> None:
        count = self.capabilities.relay_outputs or len(IO_TRIGGER_POSITIONS)
        number = parse_int(token, 1, count)
        if number is None:
            raise UnsupportedOperation(
                f"no trigger output {token!r}; the camera has 1..{count}",
                camera=self.http.display_name,
            )
        await self.http.post_form(IO_CGI, {f"Trigger{number}": "1" if active else "0"})

    async def digital_inputs(self) -> Sequence[DigitalInput]:
        status = await self._current_status()
        return [DigitalInput(INPUT_TOKEN, status.bit(IO_INPUT))]

    async def events(self) -> AsyncGenerator[CameraEvent, None]:
        previous: FrameStatus | None = None
        async with aclosing(self._statuses()) as statuses:
            async for status, arrived in statuses:
                for event in status_events(previous, status, arrived):
                    yield event
                previous = status

    # -- system ---------------------------------------------------------------------------

    async def get_datetime(self) -> datetime.datetime:
        return await self._read("/datetime.cgi", parse_datetime)

    async def set_datetime(self, value: datetime.datetime) -> None:
        offset = await self._read("/datetime.cgi", lambda text: zone_offset(parse_params(text)))
        await self.http.post_form("/datetime.cgi", datetime_form(value, offset))

    async def reboot(self) -> None:
        await self.http.post_form("/reset.cgi", {"Reset": "Yes"})

    async def factory_default(self) -> None:
        await self.http.post_form("/reset.cgi", {"FactoryReset": "Yes"})
