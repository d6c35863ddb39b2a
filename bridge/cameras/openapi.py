"""Driver for the "IP Camera Open API" family (h264-era firmware V5.x, VAPIX-like CGIs).

Everything sits at the web root: ``config.cgi`` (list/update/add/remove of a dotted parameter
tree), ``time.cgi``, ``image.jpg``, ``video.mjpg``, ``fromserver.cgi`` / ``toSERVER.cgi`` (audio
in/out), ``ptz.cgi`` / ``configptz.cgi``, ``motion.cgi`` (multipart motion levels),
``input.cgi`` / ``output.cgi`` (I/O), ``reboot.cgi`` and ``factorydefault.cgi``.

The specification lists the CGIs but lost their parameter tables; the parameters used here are
the ones this firmware family shares with its VAPIX v2 sibling (``continuouspantiltmove``,
``gotoserverpresetno``, ``output.cgi?action=1:/``, ``input.cgi?monitor=`` ...), and replies are
parsed leniently (``root.`` prefixes, LF or CRLF, extra blank lines, wrapped lines).

Pure functions (reply text -> typed values, typed values -> CGI parameters) come first and raise
``ValueError``; the driver maps that to :class:`~bridge.errors.BadResponse` at the I/O boundary.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from typing import Final

from bridge.aiter import merge
from bridge.cameras.base import (
    AudioChunk,
    AudioCodec,
    AudioFormat,
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
from bridge.cameras.fields import (
    MAX_IO_PORTS,
    MAX_PRESETS,
    PTZ_LIMIT,
    local_to_utc,
    normalize_mac,
    parse_float,
    parse_int,
    parse_resolution,
    printable,
)
from bridge.cameras.http import AuthScheme, CameraHttp, Params
from bridge.cameras.mjpeg import fetch_jpeg, mjpeg_frames
from bridge.errors import BadResponse, EndpointNotFound

log = logging.getLogger(__name__)

CONFIG_CGI: Final = "/config.cgi"
TIME_CGI: Final = "/time.cgi"
SNAPSHOT_PATH: Final = "/image.jpg"
VIDEO_PATH: Final = "/video.mjpg"
AUDIO_IN_CGI: Final = "/fromserver.cgi"
AUDIO_OUT_CGI: Final = "/toSERVER.cgi"
PTZ_CGI: Final = "/ptz.cgi"
PTZ_CONFIG_CGI: Final = "/configptz.cgi"
MOTION_CGI: Final = "/motion.cgi"
INPUT_CGI: Final = "/input.cgi"
OUTPUT_CGI: Final = "/output.cgi"
REBOOT_CGI: Final = "/reboot.cgi"
FACTORY_DEFAULT_CGI: Final = "/factorydefault.cgi"

# What connect() lists in one config.cgi request.
CONNECT_GROUPS: Final = ("Brand", "Properties", "Network", "Image.I0", "PTZ", "Audio", "Input",
                         "Output", "Motion")  # fmt: skip
EVENT_QUEUE_SIZE: Final = 64
VENDOR_VELOCITY: Final = 100  # continuous moves take -100..100 per axis
VENDOR_SPEED_MAX: Final = 100  # speed=1..100
# What a head that does not report them is taken to have: the family's travel in degrees,
# its preset slots, and the moves every unit of it accepts.
DEFAULT_PAN_LIMITS: Final = (-170.0, 170.0)
DEFAULT_TILT_LIMITS: Final = (-90.0, 90.0)
DEFAULT_PRESET_SLOTS: Final = 16
ASSUMED_PTZ_SUPPORT: Final = frozenset({"ContinuousPan", "ContinuousTilt", "ServerPreset"})
# The NC-5212PTZ of the family: a 52 x 40 degree picture at the wide end of a 10x lens; at
# velocity 100 its head turns 85 / 45 degrees and its lens crosses half its range a second.
PTZ_GEOMETRY: Final = PtzGeometry(
    pan_degrees=DEFAULT_PAN_LIMITS[1] - DEFAULT_PAN_LIMITS[0],
    tilt_degrees=DEFAULT_TILT_LIMITS[1] - DEFAULT_TILT_LIMITS[0],
    fov=(52.0, 40.0),
    zoom_ratio=10.0,
    pan_rate=85.0,
    tilt_rate=45.0,
    zoom_rate=0.5,
)

MAC_KEYS: Final = ("Network.eth0.MACAddress", "Network.Interface.I0.Active.MACAddress")
TIMEZONE_KEY: Final = "Time.TimeZone"
PRESET_GROUP: Final = "PTZ.Preset.P0"
HOME_PRESET_NAME: Final = "Home"


# -- pure parsing and formatting ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamList:
    """A ``config.cgi?action=list`` reply: values by full dotted name, and the camera's
    ``# Error:`` lines (it reports unknown groups inline and still answers 200)."""

    values: dict[str, str]
    errors: tuple[str, ...] = ()

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)


def parse_param_list(text: str) -> ParamList:
    """``name=value`` lines, LF or CRLF, ``root.`` prefix or not, blank lines ignored.

    A line without ``=`` continues the previous line's name when that name ended in ``.``
    (the wrapped form ``Image.`` / ``I1.Appearance.x=1``) and is otherwise an error.
    """
    values: dict[str, str] = {}
    errors: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            errors.append(line.lstrip("#").strip())
            continue
        line = pending + line
        pending = ""
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep:
            if name.endswith("."):
                pending = name
                continue
            raise ValueError(f"parameter line without '=': {line[:60]!r}")
        name = name.removeprefix("root.")
        if not name:
            raise ValueError(f"parameter line without a name: {line[:60]!r}")
        values[name] = value.strip()
    if pending:
        raise ValueError(f"parameter name cut off at the end: {pending[:60]!r}")
    return ParamList(values, tuple(errors))


_FAILURE_PREFIXES: Final = ("#", "error", "request failed", "verification failed")


def parse_command_reply(text: str) -> str:
    """The entry a command reply names: ``"M3"`` for ``M3 OK``, ``""`` for ``OK`` or nothing.

    Failures come back as HTTP 200 with ``# Error: ...`` or ``Request failed: ...``; those
    raise ``ValueError`` carrying the camera's message.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith(_FAILURE_PREFIXES):
            raise ValueError(f"camera refused: {printable(line.lstrip('#'), 200)}")
    if not lines:
        return ""
    first = lines[0]
    if first.upper() == "OK":
        return ""
    entry, _, status = first.rpartition(" ")
    if status.upper() == "OK" and entry.strip():
        return entry.strip()
    raise ValueError(f"unexpected command reply: {first[:80]!r}")


_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_CAMERA_TIME = re.compile(
    r"([A-Za-z]{3})[A-Za-z]*\.?\s+(\d{1,2}),?\s+(\d{4})\s+(\d{1,2}):(\d{1,2}):(\d{1,2})"
)


def parse_camera_time(text: str, utc_offset: datetime.timedelta) -> datetime.datetime:
    """``<month> <day>, <year> <hour>:<minute>:<second>`` in camera-local time -> aware UTC."""
    match = _CAMERA_TIME.search(text)
    if match is None:
        raise ValueError(f"not a camera date/time: {text.strip()[:60]!r}")
    month_name, day, year, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        raise ValueError(f"unknown month {month_name!r}")
    local = datetime.datetime(int(year), month, int(day), int(hour), int(minute), int(second))
    return local_to_utc(local, utc_offset)


_UI_OFFSET = re.compile(r"(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_POSIX_OFFSET = re.compile(r"[A-Za-z]{3,}([+-]?)(\d{1,2})(?::(\d{2}))?")
_UTC_NAMES: Final = frozenset(("gmt", "utc", "z", "gmt0", "utc0"))


def parse_utc_offset(value: str) -> datetime.timedelta:
    """The camera's offset from UTC from its time zone setting.

    The web UI writes ``GMT+08:00`` (or ``(GMT+08:00) Taipei``): east of Greenwich is plus.
    A POSIX-style value such as ``CST-8`` has the opposite sign (POSIX counts westwards).
    """
    text = value.strip()
    if text.lower() in _UTC_NAMES:
        return datetime.timedelta(0)
    match = _UI_OFFSET.search(text)
    sign = 1
    if match is None:
        if "," in text:
            raise ValueError(f"time zone with summer time rules is not supported: {value!r}")
        match = _POSIX_OFFSET.fullmatch(text)
        sign = -1  # POSIX: "CST-8" is eight hours east
        if match is None:
            raise ValueError(f"unknown time zone {value!r}")
    if match.group(1) == "-":
        sign = -sign
    hours, minutes = int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes >= 60:
        raise ValueError(f"time zone offset out of range: {value!r}")
    return sign * datetime.timedelta(hours=hours, minutes=minutes)


def time_set_params(value: datetime.datetime) -> dict[str, str]:
    """``time.cgi?action=set`` parameters for an aware datetime, sent as GMT so the camera's
    own time zone setting applies on top."""
    if value.tzinfo is None:
        raise ValueError("the camera clock can only be set from an aware datetime")
    utc = value.astimezone(datetime.UTC)
    return {
        "action": "set",
        "year": str(utc.year),
        "month": str(utc.month),
        "day": str(utc.day),
        "hour": str(utc.hour),
        "minute": str(utc.minute),
        "second": str(utc.second),
        "timezone": "GMT",
    }


@dataclass(frozen=True, slots=True)
class MotionLevel:
    group: int
    level: int
    threshold: int

    @property
    def active(self) -> bool:
        return self.level >= self.threshold


_MOTION_FIELD = re.compile(r"([A-Za-z]+)\s*=\s*(-?[0-9]{1,9})\s*;")


def parse_motion_levels(text: str) -> list[MotionLevel]:
    """``group=0;level=28;threshold=45;`` records, one per window; fields may wrap lines."""
    levels: list[MotionLevel] = []
    current: dict[str, int] = {}
    for name, raw in _MOTION_FIELD.findall(text):
        key = name.lower()
        if key == "group" and current:
            levels.append(_motion_level(current))
            current = {}
        current[key] = int(raw)
    if current:
        levels.append(_motion_level(current))
    return levels


def _motion_level(fields: Mapping[str, int]) -> MotionLevel:
    try:
        return MotionLevel(fields["group"], fields["level"], fields["threshold"])
    except KeyError as exc:
        raise ValueError(f"motion record without {exc.args[0]}") from exc


_IO_STATE = re.compile(r"IO([0-9]{1,3})\s*:\s*([/\\HL])", re.IGNORECASE)
_ACTIVE_CHARS: Final = frozenset("/H")


def parse_io_monitor(text: str) -> dict[int, bool]:
    """``IO<n>:<char>`` records of an input monitor part: ``/`` or ``H`` active, ``\\`` or
    ``L`` inactive. Keys are the numbers as sent (see :func:`io_number_base`)."""
    return {int(n): char.upper() in _ACTIVE_CHARS for n, char in _IO_STATE.findall(text)}


def io_number_base(numbers: Iterable[int]) -> int:
    """0 when a monitor stream numbers ports from IO0 (what these firmwares send for port 1),
    1 when it uses the port numbers themselves. The driver monitors every input from port 1
    on, so the first part settles it by whether it lists IO0."""
    return 0 if 0 in set(numbers) else 1


_PORT_STATE = re.compile(r"([A-Za-z]+)(\d+)\s*=\s*(\S+)")
_ACTIVE_WORDS: Final = {"1": True, "active": True, "0": False, "inactive": False}


def parse_port_states(text: str, kind: str) -> dict[int, bool]:
    """``input1=active`` / ``output2=0`` lines -> {port number: active}."""
    states: dict[int, bool] = {}
    for name, number, raw in _PORT_STATE.findall(text):
        if name.lower() != kind:
            raise ValueError(f"expected {kind} states, got {name}{number}={raw}")
        state = _ACTIVE_WORDS.get(raw.lower())
        if state is None:
            raise ValueError(f"unknown port state {raw!r} for {name}{number}")
        states[int(number)] = state
    return states


def parse_key_values(text: str) -> dict[str, str]:
    """Loose ``key=value`` lines (``ptz.cgi?query=`` replies)."""
    return {
        key.strip().lower(): value.strip()
        for key, sep, value in (line.partition("=") for line in text.splitlines())
        if sep and key.strip()
    }


_BOOLEANS: Final = {"yes": True, "true": True, "on": True, "1": True,
                    "no": False, "false": False, "off": False, "0": False}  # fmt: skip


def parse_bool(value: str) -> bool | None:
    return _BOOLEANS.get(value.strip().lower())


_MULAW: Final = AudioFormat(AudioCodec.MULAW)
_G726_32: Final = AudioFormat(AudioCodec.G726, bits_per_sample=4)
_G726_24: Final = AudioFormat(AudioCodec.G726, bits_per_sample=3)
# Content types as the family spells them; the first one of a format is what talk sends.
_AUDIO_TYPES: Final = (
    ("audio/basic", _MULAW),
    ("audio/PCMU", _MULAW),
    ("audio/32KADPCM", _G726_32),
    ("audio/G726-32", _G726_32),
    ("audio/G723", _G726_24),  # the family's label for G.726 at 24 kbit/s, not G.723.1
    ("audio/G726-24", _G726_24),
)
_AUDIO_ENCODINGS: Final = {
    "g711": _MULAW,
    "g711u": _MULAW,
    "ulaw": _MULAW,
    "g726": _G726_32,
    "g726-32": _G726_32,
    "g726-24": _G726_24,
}


def audio_format_for_mime(content_type: str) -> AudioFormat:
    mime = content_type.split(";", 1)[0].strip().lower()
    for known, audio in _AUDIO_TYPES:
        if known.lower() == mime:
            return audio
    raise ValueError(f"unknown audio type {mime!r}")


def mime_for_audio_format(audio: AudioFormat) -> str:
    for mime, known in _AUDIO_TYPES:
        if known == audio:
            return mime
    raise ValueError(f"the camera cannot play {audio}")


@dataclass(frozen=True, slots=True)
class AxisScale:
    """Maps one PTZ axis between the camera's units and the normalized space
    [``norm_low``, 1] (-1 for pan/tilt, 0 for zoom)."""

    low: float
    high: float
    norm_low: float = -1.0

    def to_vendor(self, norm: float) -> float:
        norm = min(1.0, max(self.norm_low, norm))
        return self.low + (norm - self.norm_low) / (1.0 - self.norm_low) * (self.high - self.low)

    def from_vendor(self, value: float) -> float:
        norm = self.norm_low + (value - self.low) / (self.high - self.low) * (1.0 - self.norm_low)
        return min(1.0, max(self.norm_low, norm))

    def delta_to_vendor(self, delta: float) -> float:
        return delta * (self.high - self.low) / (1.0 - self.norm_low)


def _axis_scale(params: ParamList, axis: str, norm_low: float) -> AxisScale | None:
    low = parse_float(params.get(f"PTZ.Limit.L1.Min{axis}"), -PTZ_LIMIT, PTZ_LIMIT)
    high = parse_float(params.get(f"PTZ.Limit.L1.Max{axis}"), -PTZ_LIMIT, PTZ_LIMIT)
    if low is None or high is None or high <= low:
        return None
    return AxisScale(low, high, norm_low)


@dataclass(frozen=True, slots=True)
class PtzUnit:
    """The unit's PTZ head: its ``PTZ.Limit.L1`` ranges (the family's when it reports none:
    ``limits``) and which ``PTZ.Support.S1`` kinds of move it accepts (``ContinuousPan``,
    ``RelativeZoom``, ``ServerPreset`` ...)."""

    pan: AxisScale
    tilt: AxisScale
    zoom: AxisScale | None
    support: frozenset[str]
    max_presets: int = 0
    limits: bool = True  # the unit reported its pan/tilt limits

    def has(self, *kinds: str) -> bool:
        return all(kind in self.support for kind in kinds)

    def zoom_by(self, kind: str) -> AxisScale | None:
        """The zoom scale when the unit zooms by this kind of move (Continuous, Relative ...)."""
        return self.zoom if self.has(f"{kind}Zoom") else None

    @property
    def capabilities(self) -> PtzCapabilities:
        """Positions (absolute moves, reports) are normalized by the limits, so they need
        them; relative moves in degrees and continuous ones in percent need none."""
        absolute = self.limits and self.has("AbsolutePan", "AbsoluteTilt")
        presets = self.max_presets if self.has("ServerPreset") else 0
        return PtzCapabilities(
            continuous=self.has("ContinuousPan", "ContinuousTilt"),
            # Without rpan/rtilt, a relative move is an absolute one from the reported position.
            relative=self.has("RelativePan", "RelativeTilt") or absolute,
            absolute=absolute,
            zoom=self.zoom is not None and any(kind.endswith("Zoom") for kind in self.support),
            presets=presets,
            home=presets > 0,
            set_home=presets > 0,
            speed=self.has("SpeedCtl"),
            position=absolute,
        )


def _flag(params: ParamList, name: str) -> bool:
    return parse_bool(params.get(name)) is True


def _count(params: ParamList, name: str, most: int) -> int:
    """A count the unit reports; 0 when absent or past ``most``."""
    return parse_int(params.get(name), 0, most) or 0


def ptz_unit_from_params(params: ParamList) -> PtzUnit | None:
    """None when the unit has no PTZ head. A head that under-reports still moves: without
    limits it is scaled by the family's travel (and makes no moves to positions), without a
    support list it is taken to have continuous moves and presets, without a preset count the
    family's."""
    if not _flag(params, "Properties.PTZ.PTZ"):
        return None
    pan, tilt = _axis_scale(params, "Pan", -1.0), _axis_scale(params, "Tilt", -1.0)
    prefix = "PTZ.Support.S1."
    listed = {name.removeprefix(prefix): value for name, value in params.values.items()
              if name.startswith(prefix)}  # fmt: skip
    support = frozenset(kind for kind, value in listed.items() if parse_bool(value))
    presets = _count(params, f"{PRESET_GROUP}.MaxPresets", MAX_PRESETS)
    return PtzUnit(
        pan or AxisScale(*DEFAULT_PAN_LIMITS),
        tilt or AxisScale(*DEFAULT_TILT_LIMITS),
        _axis_scale(params, "Zoom", 0.0),
        support if listed else ASSUMED_PTZ_SUPPORT,
        presets or DEFAULT_PRESET_SLOTS,
        limits=pan is not None and tilt is not None,
    )


@dataclass(frozen=True, slots=True)
class ImagingParam:
    field: ImagingField
    name: str
    low: int = 0  # vendor range; unused for the yes/no flags
    high: int = 0

    @property
    def is_flag(self) -> bool:
        return self.field in (ImagingField.MIRROR, ImagingField.FLIP)

    def to_percent(self, raw: str) -> float | None:
        vendor = parse_float(raw, self.low, self.high)
        return None if vendor is None else (vendor - self.low) / (self.high - self.low) * 100.0

    def to_vendor(self, value: float | bool) -> str:
        if self.is_flag:
            return "yes" if value else "no"
        percent = min(100.0, max(0.0, float(value)))
        return str(round(self.low + percent / 100.0 * (self.high - self.low)))


_APPEARANCE: Final = "Image.I0.Appearance"
IMAGING_PARAMS: Final = (
    ImagingParam(ImagingField.BRIGHTNESS, f"{_APPEARANCE}.Brightness", 0, 255),
    ImagingParam(ImagingField.CONTRAST, f"{_APPEARANCE}.Contrast", 0, 255),
    ImagingParam(ImagingField.SATURATION, f"{_APPEARANCE}.Saturation", 0, 255),
    ImagingParam(ImagingField.SHARPNESS, f"{_APPEARANCE}.Sharpness", 0, 7),
    ImagingParam(ImagingField.MIRROR, f"{_APPEARANCE}.Mirror"),
    ImagingParam(ImagingField.FLIP, f"{_APPEARANCE}.Flip"),
)


def imaging_from_params(params: ParamList) -> ImagingSettings:
    levels = {spec.field: spec.to_percent(params.get(spec.name)) for spec in IMAGING_PARAMS}
    flags = {spec.field: parse_bool(params.get(spec.name)) for spec in IMAGING_PARAMS}
    return ImagingSettings(
        brightness=levels[ImagingField.BRIGHTNESS],
        contrast=levels[ImagingField.CONTRAST],
        saturation=levels[ImagingField.SATURATION],
        sharpness=levels[ImagingField.SHARPNESS],
        mirror=flags[ImagingField.MIRROR],
        flip=flags[ImagingField.FLIP],
    )


def imaging_update_params(settings: ImagingSettings) -> dict[str, str]:
    """``config.cgi?action=update`` parameters for the fields that are not None."""
    params: dict[str, str] = {}
    for spec in IMAGING_PARAMS:
        value: float | bool | None = getattr(settings, spec.field.value)
        if value is not None:
            params[spec.name] = spec.to_vendor(value)
    return params


def _vendor_velocity(value: float) -> str:
    return str(round(min(1.0, max(-1.0, value)) * VENDOR_VELOCITY))


def continuous_move_params(velocity: PtzVector, with_zoom: bool) -> dict[str, str]:
    params = {
        "continuouspantiltmove": f"{_vendor_velocity(velocity.pan)},"
        f"{_vendor_velocity(velocity.tilt)}"
    }
    if with_zoom:
        params["continuouszoommove"] = _vendor_velocity(velocity.zoom)
    return params


def vendor_speed(speed: float) -> str:
    if not 0.0 < speed <= 1.0:
        raise ValueError(f"PTZ speed must be in (0, 1], not {speed}")
    return str(max(1, round(speed * VENDOR_SPEED_MAX)))


def _degrees(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def relative_move_params(unit: PtzUnit, translation: PtzVector) -> dict[str, str]:
    params = {
        "rpan": _degrees(unit.pan.delta_to_vendor(translation.pan)),
        "rtilt": _degrees(unit.tilt.delta_to_vendor(translation.tilt)),
    }
    zoom = unit.zoom_by("Relative")
    if zoom is not None and translation.zoom:
        params["rzoom"] = str(round(zoom.delta_to_vendor(translation.zoom)))
    return params


def absolute_move_params(unit: PtzUnit, position: PtzVector) -> dict[str, str]:
    params = {
        "pan": _degrees(unit.pan.to_vendor(position.pan)),
        "tilt": _degrees(unit.tilt.to_vendor(position.tilt)),
    }
    zoom = unit.zoom_by("Absolute")
    if zoom is not None:
        params["zoom"] = str(round(zoom.to_vendor(position.zoom)))
    return params


def parse_position(text: str, unit: PtzUnit) -> PtzVector:
    """``ptz.cgi?query=position`` (``pan=``, ``tilt=``, ``zoom=`` lines) -> normalized."""
    values = parse_key_values(text)
    pan = parse_float(values.get("pan"), -PTZ_LIMIT, PTZ_LIMIT)
    tilt = parse_float(values.get("tilt"), -PTZ_LIMIT, PTZ_LIMIT)
    zoom = parse_float(values.get("zoom"), -PTZ_LIMIT, PTZ_LIMIT)
    if pan is None or tilt is None:
        raise ValueError(f"no pan/tilt position in {text.strip()[:80]!r}")
    return PtzVector(
        unit.pan.from_vendor(pan),
        unit.tilt.from_vendor(tilt),
        unit.zoom.from_vendor(zoom) if unit.zoom is not None and zoom is not None else 0.0,
    )


def parse_presets(params: ParamList) -> list[Preset]:
    """Stored presets from ``PTZ.Preset.P0.Position.P<n>.Name`` lines, by number (numbers
    past :data:`~bridge.cameras.fields.MAX_PRESETS` skipped)."""
    prefix = f"{PRESET_GROUP}.Position.P"
    presets: dict[int, Preset] = {}
    for name, value in params.values.items():
        text, dot, leaf = name.removeprefix(prefix).partition(".")
        number = parse_int(text, 0, MAX_PRESETS) if name.startswith(prefix) else None
        if number is not None and dot and leaf == "Name":
            presets[number] = Preset(str(number), value)
    return [presets[number] for number in sorted(presets)]


_MODEL_KEYS: Final = ("Brand.ProdShortName", "Brand.ProdNbr", "Brand.ProdFullName")


def device_info_from_params(params: ParamList) -> DeviceInfo:
    mac = next((normalize_mac(params.get(key)) for key in MAC_KEYS if params.get(key)), "")
    return DeviceInfo(
        manufacturer=params.get("Brand.Brand"),
        model=next((params.get(key) for key in _MODEL_KEYS if params.get(key)), ""),
        firmware=params.get("Properties.Firmware.Version"),
        serial=params.get("Properties.System.SerialNumber") or mac,
        mac=mac,
        hardware_id=params.get("Properties.System.HardwareID"),
    )


@dataclass(frozen=True, slots=True)
class UnitProfile:
    """What ``connect`` learnt about this unit, beyond the public Capabilities."""

    capabilities: Capabilities
    ptz: PtzUnit | None = None
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()


def _has_motion_window(params: ParamList) -> bool:
    """Whether any include window is defined: motion.cgi reports levels for those only."""
    windows = {match.group(1) for name in params.values
               if (match := re.match(r"(Motion\.M\d+)\.", name))}  # fmt: skip
    return any(params.get(f"{window}.WindowType", "include") != "exclude" for window in windows)


def profile_from_params(params: ParamList) -> UnitProfile:
    ptz = ptz_unit_from_params(params)
    audio_on = (
        _flag(params, "Properties.Audio.Audio")
        and parse_bool(params.get("Audio.A0.Enabled", "yes")) is not False
    )
    # A unit that does not say its encoding sends the family's default, G.711 (and every
    # reply names its type, which is what the stream is decoded by).
    encoding = params.get("Audio.A0.AudioEncoding").lower() or "g711"
    audio = _AUDIO_ENCODINGS.get(encoding) if audio_on else None
    talk = audio if params.get("Audio.DuplexMode").lower() in ("full", "half") else None
    inputs = tuple(range(1, _count(params, "Input.NbrOfInputs", MAX_IO_PORTS) + 1))
    outputs = tuple(range(1, _count(params, "Output.NbrOfOutputs", MAX_IO_PORTS) + 1))
    capabilities = Capabilities(
        resolution=parse_resolution(params.get(f"{_APPEARANCE}.Resolution")),
        audio_in=audio,
        audio_out=talk,
        ptz=ptz.capabilities if ptz is not None else PtzCapabilities(),
        imaging=frozenset(spec.field for spec in IMAGING_PARAMS if spec.name in params.values),
        relay_outputs=len(outputs),
        digital_inputs=len(inputs),
        motion_events=_has_motion_window(params),
        input_events=bool(inputs),
        get_datetime=True,
        set_datetime=True,
        reboot=True,
        factory_default=True,
    )
    return UnitProfile(capabilities, ptz, inputs, outputs)


def _ports_param(ports: Iterable[int]) -> str:
    return ",".join(str(port) for port in ports)


# -- the driver ---------------------------------------------------------------------------------


class OpenApiDriver(CameraDriver):
    """An "IP Camera Open API" camera. Call :meth:`connect` first: what the unit reports in its
    parameter tree decides which operations it has."""

    dialect = Dialect.OPENAPI
    ptz_geometry = PTZ_GEOMETRY

    def __init__(self, http: CameraHttp) -> None:
        super().__init__(http)
        self._profile = UnitProfile(self.capabilities)

    # -- plumbing -------------------------------------------------------------------------------

    def _bad(self, what: str, exc: Exception) -> BadResponse:
        return BadResponse(f"{what}: {exc}", camera=self.http.display_name)

    async def _list(self, *groups: str) -> ParamList:
        params: dict[str, str] = {"action": "list"}
        if groups:
            params["group"] = ",".join(groups)
        text = await self.http.get_text(CONFIG_CGI, params)
        try:
            listing = parse_param_list(text)
        except ValueError as exc:
            raise self._bad(f"{CONFIG_CGI} list", exc) from exc
        for error in listing.errors:
            # A group this unit lacks: its values simply stay missing.
            log.debug("%s: %s", self.http.display_name, printable(error, 120))
        return listing

    async def _command(self, path: str, params: Params) -> str:
        """A CGI command whose reply is ``OK``, ``<entry> OK``, nothing, or an error text."""
        text = await self.http.get_text(path, params)
        try:
            return parse_command_reply(text)
        except ValueError as exc:
            raise self._bad(path, exc) from exc

    async def _update(self, values: Mapping[str, str]) -> None:
        await self._command(CONFIG_CGI, {"action": "update", **values})

    def _require(self, available: bool, operation: str) -> None:
        if not available:
            raise self._unsupported(operation)

    # -- identification -------------------------------------------------------------------------

    @classmethod
    def matches_fingerprint(cls, server: str, realm: str) -> bool:
        squashed = re.sub(r"[\s_-]", "", f"{server} {realm}").lower()
        return "openapi" in squashed

    @classmethod
    async def detect(cls, http: CameraHttp) -> bool:
        """``config.cgi`` exists on no other dialect, and answers with the brand parameter."""
        try:
            text = await http.get_text(CONFIG_CGI, {"action": "list", "group": "Brand.Brand"})
            return "Brand.Brand" in parse_param_list(text).values
        except (EndpointNotFound, BadResponse, ValueError):
            return False

    async def connect(self) -> DeviceInfo:
        params = await self._list(*CONNECT_GROUPS)
        self._profile = profile_from_params(params)
        self.capabilities = self._profile.capabilities
        unit = self._profile.ptz
        if unit is not None:
            self.ptz_geometry = replace(
                PTZ_GEOMETRY,
                pan_degrees=unit.pan.high - unit.pan.low,
                tilt_degrees=unit.tilt.high - unit.tilt.low,
            )
        return device_info_from_params(params)

    async def device_info(self) -> DeviceInfo:
        return device_info_from_params(await self._list("Brand", "Properties", "Network"))

    # -- media ----------------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        return await fetch_jpeg(self.http, SNAPSHOT_PATH)

    def video_frames(self) -> AsyncGenerator[JpegFrame, None]:
        return mjpeg_frames(self.http, VIDEO_PATH)

    def audio_chunks(self) -> AsyncGenerator[AudioChunk, None]:
        self._require(self.capabilities.audio_in is not None, "stream audio")
        return self._audio_stream()

    async def _audio_stream(self) -> AsyncGenerator[AudioChunk, None]:
        # The reply, not the configuration, says what the bytes are: the firmware's default
        # httptype (singlepart or multipart) and codec may differ from unit to unit.
        async with self.http.stream(AUDIO_IN_CGI) as reply:
            if reply.content_type.lower().startswith("multipart/"):
                async for part, arrived in reply.parts():
                    audio = self._audio_format(part.content_type)
                    if part.body:
                        yield AudioChunk(audio, part.body, arrived)
                return
            audio = self._audio_format(reply.content_type)
            async for chunk in reply.chunks():
                yield AudioChunk(audio, chunk, time.monotonic())

    def _audio_format(self, content_type: str) -> AudioFormat:
        try:
            return audio_format_for_mime(content_type)
        except ValueError as exc:
            raise self._bad(AUDIO_IN_CGI, exc) from exc

    async def send_audio(self, chunks: AsyncIterable[bytes]) -> None:
        audio = self.capabilities.audio_out
        if audio is None:
            raise self._unsupported("play audio")
        if self.http.auth is AuthScheme.AUTO:
            # A streamed body cannot be resent after a 401: learn the auth scheme first.
            await self._list("Audio")
        headers = {"Content-Type": mime_for_audio_format(audio), "Cache-Control": "no-cache"}
        async with self.http.stream(
            AUDIO_OUT_CGI, method="POST", data=chunks, headers=headers
        ) as reply:
            async for _ in reply.chunks():
                pass

    # -- PTZ ------------------------------------------------------------------------------------

    def _ptz_unit(self, available: bool, operation: str) -> PtzUnit:
        unit = self._profile.ptz
        if unit is None or not available:
            raise self._unsupported(operation)
        return unit

    async def _ptz_command(self, params: Params, speed: float | None = None) -> None:
        if speed is not None:
            self._ptz_unit(self.capabilities.ptz.speed, "set its PTZ speed")
            params = {**params, "speed": vendor_speed(speed)}
        await self._command(PTZ_CGI, params)

    async def continuous_move(self, velocity: PtzVector) -> None:
        unit = self._ptz_unit(self.capabilities.ptz.continuous, "move continuously")
        zoom = unit.zoom_by("Continuous") is not None
        self._require(zoom or not velocity.zoom, "zoom continuously")
        await self._ptz_command(continuous_move_params(velocity, zoom))

    async def stop(self) -> None:
        unit = self._ptz_unit(self.capabilities.ptz.continuous, "stop a move")
        zoom = unit.zoom_by("Continuous") is not None
        await self._ptz_command(continuous_move_params(PtzVector(), zoom))

    async def relative_move(self, translation: PtzVector, speed: float | None = None) -> PtzVector:
        unit = self._ptz_unit(self.capabilities.ptz.relative, "move relatively")
        if unit.has("RelativePan", "RelativeTilt"):
            self._require(not translation.zoom or unit.zoom_by("Relative") is not None, "zoom")
            await self._ptz_command(relative_move_params(unit, translation), speed)
            return translation
        self._require(not translation.zoom or unit.zoom_by("Absolute") is not None, "zoom")
        here = await self.ptz_position()
        target = PtzVector(
            here.pan + translation.pan, here.tilt + translation.tilt, here.zoom + translation.zoom
        )
        await self.absolute_move(target, speed)
        return translation

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        unit = self._ptz_unit(self.capabilities.ptz.absolute, "move to an absolute position")
        self._require(not position.zoom or unit.zoom_by("Absolute") is not None, "zoom")
        await self._ptz_command(absolute_move_params(unit, position), speed)

    async def ptz_position(self) -> PtzVector:
        unit = self._ptz_unit(self.capabilities.ptz.position, "report its PTZ position")
        text = await self.http.get_text(PTZ_CGI, {"query": "position"})
        try:
            return parse_position(text, unit)
        except ValueError as exc:
            raise self._bad(PTZ_CGI, exc) from exc

    def _require_presets(self, operation: str) -> None:
        self._ptz_unit(self.capabilities.ptz.presets > 0, operation)

    async def presets(self) -> Sequence[Preset]:
        self._require_presets("list presets")
        return parse_presets(await self._list(PRESET_GROUP))

    @staticmethod
    def _preset_number(token: str) -> str:
        if not token.strip().isdigit():
            raise ValueError(f"preset tokens of this camera are numbers, not {token!r}")
        return str(int(token))

    async def goto_preset(self, token: str) -> None:
        self._require_presets("go to a preset")
        await self._ptz_command({"gotoserverpresetno": self._preset_number(token)})

    async def set_preset(self, name: str, token: str | None = None) -> str:
        self._require_presets("store a preset")
        params = {"setserverpresetname": name}
        number = None if token is None else self._preset_number(token)
        if number is not None:
            params["setserverpresetno"] = number
        await self._command(PTZ_CONFIG_CGI, params)
        # The firmware picks the slot without saying which; names are unique, so look it up.
        for preset in await self.presets():
            if preset.name == name and number in (None, preset.token):
                return preset.token
        raise BadResponse(
            f"preset {name!r} is not listed after storing it", camera=self.http.display_name
        )

    async def remove_preset(self, token: str, name: str = "") -> None:
        self._require_presets("remove a preset")
        await self._command(PTZ_CONFIG_CGI, {"removeserverpresetno": self._preset_number(token)})

    async def goto_home(self) -> None:
        self._ptz_unit(self.capabilities.ptz.home, "go to its home position")
        await self._ptz_command({"move": "home"})

    async def set_home(self) -> None:
        self._ptz_unit(self.capabilities.ptz.set_home, "store a home position")
        # Home is a server preset flagged with home=yes.
        await self._command(
            PTZ_CONFIG_CGI, {"setserverpresetname": HOME_PRESET_NAME, "home": "yes"}
        )

    async def set_ptz_speed(self, speed: float) -> None:
        self._ptz_unit(self.capabilities.ptz.speed, "set its PTZ speed")
        await self._ptz_command({"speed": vendor_speed(speed)})

    # -- imaging --------------------------------------------------------------------------------

    async def imaging(self) -> ImagingSettings:
        self._require(bool(self.capabilities.imaging), "report imaging settings")
        return imaging_from_params(await self._list(_APPEARANCE))

    async def set_imaging(self, settings: ImagingSettings) -> None:
        params = imaging_update_params(settings)
        wanted = {spec.field for spec in IMAGING_PARAMS if spec.name in params}
        missing = wanted - self.capabilities.imaging
        self._require(not missing, f"change {', '.join(sorted(missing))}")
        if params:
            await self._update(params)

    # -- I/O and events -------------------------------------------------------------------------

    async def _port_states(self, path: str, kind: str, ports: Sequence[int]) -> dict[int, bool]:
        text = await self.http.get_text(path, {"checkactive": _ports_param(ports)})
        try:
            return parse_port_states(text, kind)
        except ValueError as exc:
            raise self._bad(path, exc) from exc

    async def relay_outputs(self) -> Sequence[RelayOutput]:
        outputs = self._profile.outputs
        self._require(bool(outputs), "report relay outputs")
        states = await self._port_states(OUTPUT_CGI, "output", outputs)
        return [RelayOutput(str(port), states.get(port)) for port in outputs]

    async def set_relay(self, token: str, active: bool) -> None:
        self._require(bool(self._profile.outputs), "switch a relay output")
        if not token.isdigit() or int(token) not in self._profile.outputs:
            raise ValueError(f"no relay output {token!r}; this unit has {self._profile.outputs}")
        state = "/" if active else "\\"
        await self._command(OUTPUT_CGI, {"action": f"{int(token)}:{state}"})

    async def digital_inputs(self) -> Sequence[DigitalInput]:
        inputs = self._profile.inputs
        self._require(bool(inputs), "report digital inputs")
        states = await self._port_states(INPUT_CGI, "input", inputs)
        return [DigitalInput(str(port), states.get(port)) for port in inputs]

    def events(self) -> AsyncGenerator[CameraEvent, None]:
        sources: list[Callable[[], AsyncIterator[CameraEvent]]] = []
        if self.capabilities.motion_events:
            sources.append(self._motion_events)
        if self.capabilities.input_events:
            sources.append(self._input_events)
        self._require(bool(sources), "report events")
        return merge(*(source() for source in sources), depth=EVENT_QUEUE_SIZE)

    async def _motion_events(self) -> AsyncIterator[CameraEvent]:
        async with self.http.stream(MOTION_CGI) as reply:
            if reply.status == 204:  # no include windows defined: nothing to report
                return
            active: bool | None = None
            async for part, _ in reply.parts():
                try:
                    levels = parse_motion_levels(part.body.decode("latin-1"))
                except ValueError as exc:
                    raise self._bad(MOTION_CGI, exc) from exc
                if not levels:
                    continue
                now_active = any(level.active for level in levels)
                if now_active != active:
                    active = now_active
                    level = max(min(100, max(0, lv.level)) for lv in levels)
                    yield CameraEvent(EventKind.MOTION, active, time.monotonic(), level=level)

    async def _input_events(self) -> AsyncIterator[CameraEvent]:
        ports = self._profile.inputs
        known: dict[int, bool] = {}
        base: int | None = None
        async with self.http.stream(INPUT_CGI, {"monitor": _ports_param(ports)}) as reply:
            async for part, _ in reply.parts():
                states = parse_io_monitor(part.body.decode("latin-1"))
                if not states:
                    continue  # the keep-alive parts carry only blank lines
                if base is None:
                    base = io_number_base(states)
                for number, active in sorted(states.items()):
                    port = number + 1 - base
                    if port in ports and known.get(port) != active:
                        known[port] = active
                        yield CameraEvent(
                            EventKind.DIGITAL_INPUT, active, time.monotonic(), source=str(port)
                        )

    # -- system ---------------------------------------------------------------------------------

    async def get_datetime(self) -> datetime.datetime:
        zone = (await self._list("Time")).get(TIMEZONE_KEY)
        try:
            # Firmware without a zone setting keeps its clock in GMT.
            offset = parse_utc_offset(zone) if zone else datetime.timedelta(0)
            return parse_camera_time(await self.http.get_text(TIME_CGI, {"action": "get"}), offset)
        except ValueError as exc:
            raise self._bad(TIME_CGI, exc) from exc

    async def set_datetime(self, value: datetime.datetime) -> None:
        await self._command(TIME_CGI, time_set_params(value))

    async def reboot(self) -> None:
        await self.http.get(REBOOT_CGI)

    async def factory_default(self) -> None:
        # The soft reset keeps the network settings, so the camera stays reachable.
        await self.http.get(FACTORY_DEFAULT_CGI)
