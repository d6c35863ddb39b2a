"""Driver for Axis-style cameras with firmware 3.00+ (the VAPIX v2 HTTP API).

The dialect's document (seed 004) puts every CGI at the server root, not under ``/axis-cgi``:
``/param.cgi``, ``/jpg/image.jpg``, ``/mjpg/video.mjpg``, ``/com/ptz.cgi``, ``/io/input.cgi``,
``/motion/motiondata.cgi``, ``/audio/receive.cgi``, ``/date.cgi`` and so on. Real Axis units
serve the same API under ``/axis-cgi/`` (:data:`AXIS_CGI_PATHS`): when the seed's
``param.cgi`` answers 404 the driver tries Axis's, and uses the layout that answered for every
CGI from then on.

What the unit can do is learnt in :meth:`Vapix2Driver.connect` from three replies: the
parameter tree (``param.cgi?action=list``), the picture size (``imagesize.cgi``) and, on PTZ
units, the PTZ driver's own list of commands and ranges (``com/ptz.cgi?info=1``).

Pure functions (reply text in, typed values out; typed values in, CGI parameters out) come
first so they can be tested without sockets; the driver class at the end does the I/O.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace

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
    printable,
)
from bridge.cameras.http import AuthScheme, CameraHttp
from bridge.cameras.mjpeg import fetch_jpeg, mjpeg_frames
from bridge.codecs.jpeg import plausible_size
from bridge.errors import BadResponse, EndpointNotFound

log = logging.getLogger(__name__)

# -- the dialect's CGIs (seed 004, section 5) ---------------------------------------------------

PARAM_CGI = "/param.cgi"
DATE_CGI = "/date.cgi"
RESTART_CGI = "/restart.cgi"
FACTORY_DEFAULT_CGI = "/factorydefault.cgi"
IMAGESIZE_CGI = "/imagesize.cgi"
SNAPSHOT_PATH = "/jpg/image.jpg"
VIDEO_PATH = "/mjpg/video.mjpg"
PTZ_CGI = "/com/ptz.cgi"
PTZCONFIG_CGI = "/com/ptzconfig.cgi"
INPUT_CGI = "/io/input.cgi"
OUTPUT_CGI = "/io/output.cgi"
MOTION_CGI = "/motion/motiondata.cgi"
AUDIO_RECEIVE_CGI = "/audio/receive.cgi"
AUDIO_TRANSMIT_CGI = "/audio/transmit.cgi"
# Where Axis firmware of the VAPIX 2 era serves each of them (admin, view and operator CGIs
# in their own folders, pictures from .cgi scripts).
AXIS_CGI_PATHS = {
    PARAM_CGI: "/axis-cgi/admin/param.cgi",
    DATE_CGI: "/axis-cgi/admin/date.cgi",
    RESTART_CGI: "/axis-cgi/admin/restart.cgi",
    FACTORY_DEFAULT_CGI: "/axis-cgi/admin/factorydefault.cgi",
    IMAGESIZE_CGI: "/axis-cgi/view/imagesize.cgi",
    SNAPSHOT_PATH: "/axis-cgi/jpg/image.cgi",
    VIDEO_PATH: "/axis-cgi/mjpg/video.cgi",
    PTZ_CGI: "/axis-cgi/com/ptz.cgi",
    PTZCONFIG_CGI: "/axis-cgi/com/ptzconfig.cgi",
    INPUT_CGI: "/axis-cgi/io/input.cgi",
    OUTPUT_CGI: "/axis-cgi/io/output.cgi",
    MOTION_CGI: "/axis-cgi/motion/motiondata.cgi",
    AUDIO_RECEIVE_CGI: "/axis-cgi/audio/receive.cgi",
    AUDIO_TRANSMIT_CGI: "/axis-cgi/audio/transmit.cgi",
}

# The groups connect() reads in one param.cgi request (the CGI takes a comma-separated list).
CONNECT_GROUPS = (
    "Brand",
    "Properties",
    "Network",
    "Input",
    "Output",
    "Image.I0.Appearance",
    "ImageSource.I0.Sensor",
    "AudioSource.A0",
    "Time",
    "Motion",
)
DEVICE_INFO_GROUPS = ("Brand", "Properties.Firmware", "Properties.System", "Network")

# Imaging values live in the parameter tree on the vendor's own 0..100 scale.
SENSOR_PARAMS: dict[ImagingField, str] = {
    ImagingField.BRIGHTNESS: "ImageSource.I0.Sensor.Brightness",
    ImagingField.CONTRAST: "ImageSource.I0.Sensor.Contrast",
    ImagingField.SATURATION: "ImageSource.I0.Sensor.ColorLevel",
    ImagingField.SHARPNESS: "ImageSource.I0.Sensor.Sharpness",
}
# Mirror and flip are reported as parameters but set through ptz.cgi (the document's only
# setter for them): field -> (parameter read back, ptz.cgi argument).
REVERSE_CONTROLS: dict[ImagingField, tuple[str, str]] = {
    ImagingField.MIRROR: ("Image.I0.Appearance.MirrorEnabled", "horizontal_reverse"),
    ImagingField.FLIP: ("Image.I0.Appearance.FlipEnabled", "vertical_reverse"),
}
VENDOR_IMAGING_MAX = 100

AUDIO_BLOCK_BYTES = 240  # "Each block of coded audio data is 240 byte"
TALK_FORMAT = AudioFormat(AudioCodec.MULAW)
TALK_CONTENT_TYPE = "audio/basic"
# The document's audio MIME types: audio/G723 is its (sic) name for G.726 at 24 kbit/s.
AUDIO_MIME_FORMATS: dict[str, AudioFormat] = {
    "audio/basic": AudioFormat(AudioCodec.MULAW),
    "audio/32kadpcm": AudioFormat(AudioCodec.G726, bits_per_sample=4),
    "audio/g723": AudioFormat(AudioCodec.G726, bits_per_sample=3),
}

# Used when ptz.cgi?info=1 names a command without its range (seed 5.3.3's table).
DEFAULT_PAN_RANGE = (-180.0, 180.0)
DEFAULT_TILT_RANGE = (-180.0, 180.0)
DEFAULT_ZOOM_RANGE = (1.0, 9999.0)
DEFAULT_PRESET_SLOTS = 20
# What a unit that claims a PTZ head but lists no commands is taken to have: the continuous
# moves, steps, home and server presets every VAPIX 2 PTZ driver answers (moves to positions
# need ranges it did not give).
ASSUMED_PTZ_COMMANDS = {
    "continuouspantiltmove": "[-100-100],[-100-100]",
    "move": "{home|up|down|left|right|upleft|upright|downleft|downright}",
    "gotoserverpresetno": f"[1-{DEFAULT_PRESET_SLOTS}]",
}
# The AXIS 213 PTZ of the family: a 47 x 35 degree picture at the wide end of a 26x lens; its
# head turns 42.5 / 12.5 degrees a second at velocity 100 and the default speed 50 (the travel
# comes from the unit's ranges).
PTZ_GEOMETRY = PtzGeometry(
    pan_degrees=360.0,
    tilt_degrees=360.0,
    fov=(47.0, 35.0),
    zoom_ratio=26.0,
    pan_rate=42.5,
    tilt_rate=12.5,
    zoom_rate=0.25,
)
VENDOR_VELOCITY_MAX = 100  # continuouspantiltmove / continuouszoommove take -100..100
VENDOR_SPEED_RANGE = (1, 100)
MAX_UTC_OFFSET = datetime.timedelta(hours=14)  # Kiribati; anything beyond is garbage

EVENT_QUEUE_SIZE = 64
BACKSLASH = "\\"  # output.cgi's "inactive" action character
_ERROR_PREFIXES = ("# error", "# request failed", "request failed", "error")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


# -- parameter lists ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamReply:
    """A parsed ``param.cgi?action=list`` reply: names without ``root.``, and error lines."""

    values: dict[str, str]
    errors: tuple[str, ...]


def parse_param_list(text: str) -> ParamReply:
    """``Group.Name=value`` lines, with or without the ``root.`` prefix, CRLF or LF.

    A failed group shows up as a ``# Error: ...`` line among the others, so errors are kept
    apart rather than failing the whole list.
    """
    values: dict[str, str] = {}
    errors: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            errors.append(line.lstrip("#").strip())
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name or " " in name:
            errors.append(line)
            continue
        values[name.removeprefix("root.")] = value.strip()
    return ParamReply(values, tuple(errors))


def reply_error(text: str) -> str | None:
    """The error message in a command's 200 reply (``# Error: ...``, ``Request failed: ...``),
    or None when the reply reports success."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.lower().startswith(_ERROR_PREFIXES):
            return line.lstrip("#").strip()
    return None


def is_yes(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0"):
        return False
    return None


def _find_mac(values: Mapping[str, str]) -> str:
    """The first interface MAC under Network (``Network.eth0.MACAddress`` on Axis units,
    ``Network.Interface.I0.Active.MACAddress`` on some OEM firmware)."""
    for name, value in values.items():
        if name.startswith("Network.") and name.endswith("MACAddress"):
            mac = normalize_mac(value)
            if mac:
                return mac
    return ""


def device_info_from_params(values: Mapping[str, str]) -> DeviceInfo:
    mac = _find_mac(values)
    model = next(
        (
            values[name]
            for name in ("Brand.ProdShortName", "Brand.ProdFullName", "Brand.ProdNbr")
            if values.get(name)
        ),
        "",
    )
    return DeviceInfo(
        manufacturer=values.get("Brand.Brand", ""),
        model=model,
        firmware=values.get("Properties.Firmware.Version", ""),
        serial=values.get("Properties.System.SerialNumber", "") or mac.replace(":", ""),
        mac=mac,
        hardware_id=values.get("Properties.System.HardwareID", ""),
    )


def _port_count(values: Mapping[str, str], name: str) -> int:
    """``Input.NbrOfInputs``/``Output.NbrOfOutputs``; 0 when absent or implausible."""
    return parse_int(values.get(name), 0, MAX_IO_PORTS) or 0


def audio_format_from_params(values: Mapping[str, str]) -> AudioFormat | None:
    """What ``audio/receive.cgi`` will send, from ``AudioSource.A0.AudioEncoding``/``BitRate``."""
    if not is_yes(values.get("Properties.Audio.Audio")):
        return None
    encoding = values.get("AudioSource.A0.AudioEncoding", "g711").strip().lower()
    if encoding.startswith("g711") or encoding in ("mulaw", "ulaw", "pcm_mulaw"):
        return AUDIO_MIME_FORMATS["audio/basic"]
    if encoding.startswith("g726"):
        rate = values.get("AudioSource.A0.BitRate", "").strip()
        return AUDIO_MIME_FORMATS["audio/g723" if rate == "24000" else "audio/32kadpcm"]
    return None


def audio_format_from_mime(content_type: str) -> AudioFormat | None:
    return AUDIO_MIME_FORMATS.get(content_type.split(";", 1)[0].strip().lower())


def imaging_from_params(values: Mapping[str, str]) -> ImagingSettings:
    def level(field: ImagingField) -> float | None:
        number = parse_float(values.get(SENSOR_PARAMS[field]), 0.0, VENDOR_IMAGING_MAX)
        return None if number is None else number * 100.0 / VENDOR_IMAGING_MAX

    def reversed_(field: ImagingField) -> bool | None:
        return is_yes(values.get(REVERSE_CONTROLS[field][0]))

    return ImagingSettings(
        brightness=level(ImagingField.BRIGHTNESS),
        contrast=level(ImagingField.CONTRAST),
        saturation=level(ImagingField.SATURATION),
        sharpness=level(ImagingField.SHARPNESS),
        mirror=reversed_(ImagingField.MIRROR),
        flip=reversed_(ImagingField.FLIP),
    )


def imaging_fields_from_params(
    values: Mapping[str, str], ptz_commands: Mapping[str, str]
) -> frozenset[ImagingField]:
    fields = {field for field, name in SENSOR_PARAMS.items() if name in values}
    fields |= {
        field
        for field, (name, command) in REVERSE_CONTROLS.items()
        if name in values and command in ptz_commands
    }
    return frozenset(fields)


def sensor_update_params(settings: ImagingSettings) -> dict[str, str]:
    """``param.cgi?action=update`` arguments for the 0..100 settings given (not None)."""
    params: dict[str, str] = {}
    for field, name in SENSOR_PARAMS.items():
        value: float | None = getattr(settings, field.value)
        if value is not None:
            vendor = round(min(100.0, max(0.0, value)) * VENDOR_IMAGING_MAX / 100.0)
            params[name] = str(vendor)
    return params


def reverse_params(settings: ImagingSettings) -> dict[str, str]:
    """``ptz.cgi`` arguments for the mirror/flip settings given (not None)."""
    params: dict[str, str] = {}
    for field, (_, command) in REVERSE_CONTROLS.items():
        value: bool | None = getattr(settings, field.value)
        if value is not None:
            params[command] = "1" if value else "0"
    return params


def parse_image_size(text: str) -> tuple[int, int] | None:
    """``image width = 176`` / ``image height = 144`` (imagesize.cgi); None when either is
    missing or the size is not one a camera could send."""
    found: dict[str, int] = {}
    pattern = r"image\s+(width|height)\s*=\s*([0-9]{1,5})(?![0-9])"
    for match in re.finditer(pattern, text, re.IGNORECASE):
        found[match.group(1).lower()] = int(match.group(2))
    size = found.get("width", 0), found.get("height", 0)
    return size if plausible_size(*size) else None


# -- date and time --------------------------------------------------------------------------------

_DATE = re.compile(
    r"([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
)
_TIMEZONE = re.compile(r"^\s*(?:GMT|UTC)\s*(?:([+-])\s*(\d{1,2})(?::?(\d{2}))?)?", re.IGNORECASE)


def parse_camera_date(text: str) -> datetime.datetime:
    """``Apr 03, 2003 15:16:04`` (date.cgi?action=get) as a naive local datetime."""
    match = _DATE.search(text)
    if match is None or match.group(1).lower() not in _MONTHS:
        raise BadResponse(f"unexpected date.cgi reply {text.strip()[:60]!r}")
    month = _MONTHS.index(match.group(1).lower()) + 1
    day, year, hour, minute = (int(match.group(i)) for i in (2, 3, 4, 5))
    second = int(match.group(6) or 0)
    try:
        return datetime.datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise BadResponse(f"impossible date in date.cgi reply {text.strip()[:60]!r}") from exc


def timezone_offset(value: str) -> datetime.timedelta | None:
    """The UTC offset of an Axis ``Time.TimeZone`` value (``GMT``, ``GMT+1``, ``GMT-05:30``,
    ``GMT+1(Amsterdam, Berlin)``); None when it is not written as an offset."""
    match = _TIMEZONE.match(value)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if sign is None:
        return datetime.timedelta(0)
    offset = datetime.timedelta(hours=int(hours), minutes=int(minutes or 0))
    if offset > MAX_UTC_OFFSET:
        return None
    return -offset if sign == "-" else offset


def date_set_params(value: datetime.datetime) -> dict[str, str]:
    """``date.cgi?action=set`` arguments for an instant, given in GMT as the CGI allows."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    fields = {
        "year": value.year,
        "month": value.month,
        "day": value.day,
        "hour": value.hour,
        "minute": value.minute,
        "second": value.second,
    }
    return {"action": "set", **{k: str(v) for k, v in fields.items()}, "timezone": "GMT"}


# -- PTZ ------------------------------------------------------------------------------------------


def parse_ptz_info(text: str) -> dict[str, str]:
    """``ptz.cgi?info=1``: ``{name=spec}`` groups (one per line or run together) to a mapping
    of command name to its value spec; braces nest (``{move={home|up|...}}``)."""
    commands: dict[str, str] = {}
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = index + 1
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                name, _, spec = text[start:index].partition("=")
                if name.strip():
                    commands[name.strip().lower()] = spec.strip()
    return commands


_RANGE = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*\]")


def spec_range(spec: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """The first ``[min-max]`` of a command spec (``[-170.0-170.0]``), else ``default`` (also
    for a range that is empty or reaches past :data:`~bridge.cameras.fields.PTZ_LIMIT`)."""
    match = _RANGE.search(spec or "")
    if match is None:
        return default
    low = parse_float(match.group(1), -PTZ_LIMIT, PTZ_LIMIT)
    high = parse_float(match.group(2), -PTZ_LIMIT, PTZ_LIMIT)
    return (low, high) if low is not None and high is not None and low < high else default


def spec_options(spec: str | None) -> frozenset[str]:
    """The alternatives of a ``{a|b|c}`` spec, lower-cased."""
    return frozenset(o.strip().lower() for o in (spec or "").strip("{}").split("|") if o.strip())


@dataclass(frozen=True, slots=True)
class PtzLimits:
    """The unit's travel in its own units: pan/tilt degrees, zoom steps."""

    pan: tuple[float, float] = DEFAULT_PAN_RANGE
    tilt: tuple[float, float] = DEFAULT_TILT_RANGE
    zoom: tuple[float, float] = DEFAULT_ZOOM_RANGE
    known: bool = False  # the unit gave its pan and tilt ranges (else the document's)

    @classmethod
    def from_info(cls, commands: Mapping[str, str]) -> PtzLimits:
        return cls(
            pan=spec_range(commands.get("pan"), DEFAULT_PAN_RANGE),
            tilt=spec_range(commands.get("tilt"), DEFAULT_TILT_RANGE),
            zoom=spec_range(commands.get("zoom"), DEFAULT_ZOOM_RANGE),
            known=all(_RANGE.search(commands.get(axis, "")) for axis in ("pan", "tilt")),
        )


def _to_vendor(value: float, span: tuple[float, float], low: float) -> float:
    """Map ``value`` in [low, 1] onto ``span``."""
    fraction = (min(1.0, max(low, value)) - low) / (1.0 - low)
    return span[0] + fraction * (span[1] - span[0])


def _from_vendor(value: float, span: tuple[float, float], low: float) -> float:
    fraction = (value - span[0]) / (span[1] - span[0])
    return min(1.0, max(low, low + fraction * (1.0 - low)))


def _width(span: tuple[float, float]) -> float:
    return span[1] - span[0]


def ptz_capabilities_from_info(commands: Mapping[str, str]) -> PtzCapabilities:
    """What the head can do, from its command list. Positions (absolute moves, reports) are
    normalized by the unit's ranges, so they need them; relative moves are in degrees and
    continuous ones in percent, which need none."""
    has = commands.__contains__
    presets = 0
    if has("gotoserverpresetno"):
        slots = spec_range(commands["gotoserverpresetno"], (1, DEFAULT_PRESET_SLOTS))[1]
        presets = max(0, min(MAX_PRESETS, int(slots)))
    ranges = PtzLimits.from_info(commands).known
    return PtzCapabilities(
        continuous=has("continuouspantiltmove"),
        relative=has("rpan") and has("rtilt"),
        absolute=has("pan") and has("tilt") and ranges,
        zoom=has("continuouszoommove") or has("zoom") or has("rzoom"),
        presets=presets,
        home="home" in spec_options(commands.get("move")),
        set_home=presets > 0,
        speed=has("speed"),
        position=ranges and "position" in spec_options(commands.get("query")),
    )


def absolute_params(position: PtzVector, limits: PtzLimits, zoom: bool) -> dict[str, str]:
    params = {
        "pan": f"{_to_vendor(position.pan, limits.pan, -1.0):.2f}",
        "tilt": f"{_to_vendor(position.tilt, limits.tilt, -1.0):.2f}",
    }
    if zoom:
        params["zoom"] = str(round(_to_vendor(position.zoom, limits.zoom, 0.0)))
    return params


def relative_params(translation: PtzVector, limits: PtzLimits, zoom: bool) -> dict[str, str]:
    """A translation of 1 is half the travel, as ONVIF's generic translation space has it."""

    def clamp(value: float) -> float:
        return min(1.0, max(-1.0, value))

    params = {
        "rpan": f"{clamp(translation.pan) * _width(limits.pan) / 2:.2f}",
        "rtilt": f"{clamp(translation.tilt) * _width(limits.tilt) / 2:.2f}",
    }
    if zoom and translation.zoom:
        params["rzoom"] = str(round(clamp(translation.zoom) * _width(limits.zoom)))
    return params


def continuous_params(velocity: PtzVector, zoom: bool) -> dict[str, str]:
    def vendor(value: float) -> int:
        return round(min(1.0, max(-1.0, value)) * VENDOR_VELOCITY_MAX)

    params = {"continuouspantiltmove": f"{vendor(velocity.pan)},{vendor(velocity.tilt)}"}
    if zoom:
        params["continuouszoommove"] = str(vendor(velocity.zoom))
    return params


def speed_param(speed: float) -> str:
    low, high = VENDOR_SPEED_RANGE
    return str(max(low, min(high, round(speed * high))))


def parse_ptz_position(text: str, limits: PtzLimits) -> PtzVector:
    """``pan=..``/``tilt=..``/``zoom=..`` lines (ptz.cgi?query=position), normalized."""
    values: dict[str, float] = {}
    for raw in text.splitlines():
        name, _, value = raw.partition("=")
        number = parse_float(value, -PTZ_LIMIT, PTZ_LIMIT)
        if number is not None:
            values[name.strip().lower()] = number
    if not {"pan", "tilt"} <= values.keys():
        raise BadResponse(f"no pan/tilt in position reply {text.strip()[:80]!r}")
    zoom = values.get("zoom")
    return PtzVector(
        pan=_from_vendor(values["pan"], limits.pan, -1.0),
        tilt=_from_vendor(values["tilt"], limits.tilt, -1.0),
        zoom=0.0 if zoom is None else _from_vendor(zoom, limits.zoom, 0.0),
    )


def parse_presets(text: str) -> list[Preset]:
    """``presetposno<N>=<name>`` lines (ptz.cgi?query=presetposall), one preset per number;
    the heading, and numbers past :data:`~bridge.cameras.fields.MAX_PRESETS`, are skipped."""
    presets: dict[int, Preset] = {}
    for raw in text.splitlines():
        match = re.match(r"\s*presetposno([0-9]{1,3})\s*=(.*)$", raw, re.IGNORECASE)
        number = int(match.group(1)) if match else 0
        if match and 0 < number <= MAX_PRESETS:
            presets[number] = Preset(token=str(number), name=match.group(2))
    return list(presets.values())


# -- I/O and events -------------------------------------------------------------------------------

_CHECK = re.compile(r"^\s*([A-Za-z]*)\s*(\d+)\s*[=:]\s*(\S+)")
_IO_MONITOR = re.compile(r"IO([0-9]{1,3})\s*:\s*(\S)", re.IGNORECASE)
_ACTIVE_CHARS = {"/": True, "h": True, "\\": False, "l": False}


def _state_word(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("1", "active", "h", "/"):
        return True
    if lowered in ("0", "inactive", "l", "\\"):
        return False
    return None


def parse_port_check(text: str) -> dict[str, bool | None]:
    """``input1=0`` / ``output1=1`` lines (``check=``), also ``1=active`` (``checkactive=``);
    port number (as text) to state."""
    states: dict[str, bool | None] = {}
    for raw in text.splitlines():
        match = _CHECK.match(raw)
        if match:
            states[match.group(2)] = _state_word(match.group(3))
    return states


def parse_io_monitor(body: bytes) -> list[tuple[int, bool]]:
    """``IO<n>:<c>`` lines of one input.cgi?monitor part: (n, active); ``/`` or ``H`` is
    active, ``\\`` or ``L`` inactive. Blank keep-alive parts give nothing."""
    text = body.decode("latin-1")
    return [
        (int(match.group(1)), _ACTIVE_CHARS[match.group(2).lower()])
        for match in _IO_MONITOR.finditer(text)
        if match.group(2).lower() in _ACTIVE_CHARS
    ]


def monitor_port_token(number: int, ports: int) -> str | None:
    """The input token for ``IO<number>``; None for a port the unit does not have.

    The document asks for ``monitor=1`` and answers ``IO0``, so port numbers in monitor
    data are zero-based; firmware that numbers them from 1 shows itself by reporting
    ``IO<ports>``, which cannot be a zero-based index.
    """
    if number > ports:
        return None
    return str(number if number >= ports else number + 1)


@dataclass(frozen=True, slots=True)
class MotionLevel:
    group: int
    level: int
    threshold: int

    @property
    def active(self) -> bool:
        return self.level > self.threshold


def parse_motion_levels(body: bytes) -> list[MotionLevel]:
    """``group=0;level=28;threshold=45;`` lines of one motiondata.cgi part (the document also
    wraps a line after ``threshold=``, so fields are read across line ends)."""
    text = body.decode("latin-1")
    levels = []
    for match in re.finditer(
        r"group\s*=\s*([0-9]{1,9})\s*;\s*level\s*=\s*([0-9]{1,9})\s*;"
        r"\s*threshold\s*=\s*([0-9]{1,9})",
        text,
    ):
        group, level, threshold = (int(g) for g in match.groups())
        levels.append(MotionLevel(group, level, threshold))
    return levels


def has_motion_windows(values: Mapping[str, str]) -> bool:
    return any(re.match(r"Motion\.M\d+\.", name) for name in values)


# -- the driver -----------------------------------------------------------------------------------


class Vapix2Driver(CameraDriver):
    dialect = Dialect.VAPIX2
    ptz_geometry = PTZ_GEOMETRY

    def __init__(self, http: CameraHttp) -> None:
        super().__init__(http)
        self._limits = PtzLimits()
        self._ptz_commands: dict[str, str] = {}
        self._utc_offset = datetime.timedelta(0)
        self._axis_cgi: bool | None = None  # serves /axis-cgi/ paths; None: not known yet

    # -- identification -------------------------------------------------------------------

    @classmethod
    def matches_fingerprint(cls, server: str, realm: str) -> bool:
        # These units name their auth realm after the brand and MAC ("AXIS_00408C1A2B3C").
        return realm.upper().startswith("AXIS")

    @classmethod
    async def detect(cls, http: CameraHttp) -> bool:
        query = {"action": "list", "group": "Brand"}
        for path in (PARAM_CGI, AXIS_CGI_PATHS[PARAM_CGI]):
            try:
                text = await http.get_text(path, query)
            except EndpointNotFound:
                continue
            except BadResponse:
                return False
            return any(name.startswith("Brand.") for name in parse_param_list(text).values)
        return False

    async def connect(self) -> DeviceInfo:
        values = await self._list_params(CONNECT_GROUPS)
        info = device_info_from_params(values)
        if not (info.manufacturer or info.model or info.firmware):
            raise BadResponse("param.cgi reported no Brand or firmware", camera=self._name)
        self._ptz_commands = (
            await self._ptz_info() if is_yes(values.get("Properties.PTZ.PTZ")) else {}
        )
        self._limits = PtzLimits.from_info(self._ptz_commands)
        self.ptz_geometry = replace(
            PTZ_GEOMETRY,
            pan_degrees=_width(self._limits.pan),
            tilt_degrees=_width(self._limits.tilt),
        )
        zone = values.get("Time.TimeZone", "GMT")
        offset = timezone_offset(zone)
        if offset is None:
            log.warning("%s: time zone %r not understood; clock read as GMT", self._name, zone[:40])
        self._utc_offset = offset or datetime.timedelta(0)
        audio = audio_format_from_params(values)
        size = await self._image_size()
        inputs = _port_count(values, "Input.NbrOfInputs")
        self.capabilities = Capabilities(
            resolution=size,
            audio_in=audio,
            # The family's audio units all take u-law talk on transmit.cgi (seed 5.8.5).
            audio_out=TALK_FORMAT if audio is not None else None,
            ptz=ptz_capabilities_from_info(self._ptz_commands),
            imaging=imaging_fields_from_params(values, self._ptz_commands),
            relay_outputs=_port_count(values, "Output.NbrOfOutputs"),
            digital_inputs=inputs,
            motion_events=has_motion_windows(values),
            input_events=inputs > 0,
            get_datetime=True,
            set_datetime=True,
            reboot=True,
            factory_default=True,
        )
        return info

    async def device_info(self) -> DeviceInfo:
        return device_info_from_params(await self._list_params(DEVICE_INFO_GROUPS))

    # -- plumbing -------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return self.http.display_name

    def _path(self, cgi: str) -> str:
        """Where this unit serves one of the seed's CGIs."""
        return AXIS_CGI_PATHS[cgi] if self._axis_cgi else cgi

    async def _get_text(self, cgi: str, params: Mapping[str, str]) -> str:
        """GET one of the seed's CGIs where this unit serves it; until that is known, at the
        seed's path and then at Axis's, and remember which answered."""
        if self._axis_cgi is not None:
            return await self.http.get_text(self._path(cgi), params)
        try:
            text = await self.http.get_text(cgi, params)
        except EndpointNotFound:
            text = await self.http.get_text(AXIS_CGI_PATHS[cgi], params)
            self._axis_cgi = True
        else:
            self._axis_cgi = False
        return text

    async def _ptz_info(self) -> dict[str, str]:
        try:
            text = await self._get_text(PTZ_CGI, {"info": "1"})
        except EndpointNotFound:  # PTZ-capable unit with no PTZ driver installed
            return {}
        # A unit that says it has a head but lists none of its commands still moves.
        return parse_ptz_info(text) or dict(ASSUMED_PTZ_COMMANDS)

    async def _image_size(self) -> tuple[int, int] | None:
        try:
            return parse_image_size(await self._get_text(IMAGESIZE_CGI, {"camera": "1"}))
        except EndpointNotFound:
            return None

    async def _list_params(self, groups: Sequence[str]) -> dict[str, str]:
        text = await self._get_text(PARAM_CGI, {"action": "list", "group": ",".join(groups)})
        reply = parse_param_list(text)
        if not reply.values and reply.errors:
            error = printable(reply.errors[0], 120)
            raise BadResponse(f"param.cgi list failed: {error}", camera=self._name)
        return reply.values

    async def _command(self, path: str, params: Mapping[str, str]) -> str:
        """A CGI that answers 200/204 and reports failure in its text."""
        text = await self._get_text(path, params)
        error = reply_error(text)
        if error is not None:
            raise BadResponse(f"{path} failed: {printable(error, 120)}", camera=self._name)
        return text

    # -- media ----------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        return await fetch_jpeg(self.http, self._path(SNAPSHOT_PATH))

    def video_frames(self) -> AsyncIterator[JpegFrame]:
        return mjpeg_frames(self.http, self._path(VIDEO_PATH))

    def audio_chunks(self) -> AsyncIterator[AudioChunk]:
        if self.capabilities.audio_in is None:
            raise self._unsupported("stream audio")
        return self._audio_chunks()

    async def _audio_chunks(self) -> AsyncIterator[AudioChunk]:
        # The camera's Audiod.HttpMessageType decides single or multipart; both are read.
        async with self.http.stream(self._path(AUDIO_RECEIVE_CGI)) as reply:
            if reply.content_type.lower().startswith("multipart/"):
                async for part, arrived in reply.parts():
                    if part.body:
                        yield AudioChunk(self._audio_format(part.content_type), part.body, arrived)
                return
            fmt = self._audio_format(reply.content_type)
            pending = bytearray()
            async for chunk in reply.chunks():
                pending += chunk
                # Whole 240-byte blocks keep G.726-24 (3 bytes per 8 samples) decodable.
                whole = len(pending) - len(pending) % AUDIO_BLOCK_BYTES
                if whole:
                    yield AudioChunk(fmt, bytes(pending[:whole]), time.monotonic())
                    del pending[:whole]

    def _audio_format(self, content_type: str) -> AudioFormat:
        fmt = audio_format_from_mime(content_type)
        if fmt is None:
            raise BadResponse(f"unknown audio type {content_type!r}", camera=self._name)
        return fmt

    async def send_audio(self, chunks: AsyncIterable[bytes]) -> None:
        if self.capabilities.audio_out is None:
            raise self._unsupported("play audio")
        if self.http.auth is AuthScheme.AUTO:
            # A streamed body cannot be resent after a 401: learn the auth scheme first.
            await self._list_params(("Properties.Audio",))

        async def body() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                yield chunk

        await self.http.request(
            "POST",
            self._path(AUDIO_TRANSMIT_CGI),
            data=body(),
            headers={"Content-Type": TALK_CONTENT_TYPE, "Cache-Control": "no-cache"},
        )

    # -- PTZ ------------------------------------------------------------------------------

    def _require_ptz(self, flag: bool, operation: str) -> None:
        if not flag:
            raise self._unsupported(operation)

    async def _ptz(self, params: Mapping[str, str], speed: float | None = None) -> str:
        if speed is not None:
            self._require_ptz(self.capabilities.ptz.speed, "set its PTZ speed")
            params = {**params, "speed": speed_param(speed)}
        return await self._command(PTZ_CGI, params)

    async def continuous_move(self, velocity: PtzVector) -> None:
        ptz = self.capabilities.ptz
        self._require_ptz(ptz.continuous, "move continuously")
        self._require_ptz(self._continuous_zoom or not velocity.zoom, "zoom continuously")
        await self._ptz(continuous_params(velocity, self._continuous_zoom))

    async def stop(self) -> None:
        self._require_ptz(self.capabilities.ptz.continuous, "stop a move")
        await self._ptz(continuous_params(PtzVector(), self._continuous_zoom))

    @property
    def _continuous_zoom(self) -> bool:
        return "continuouszoommove" in self._ptz_commands

    async def relative_move(self, translation: PtzVector, speed: float | None = None) -> PtzVector:
        ptz = self.capabilities.ptz
        self._require_ptz(ptz.relative, "move relatively")
        zoom = "rzoom" in self._ptz_commands
        self._require_ptz(zoom or not translation.zoom, "zoom relatively")
        await self._ptz(relative_params(translation, self._limits, zoom), speed)
        return translation

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        self._require_ptz(self.capabilities.ptz.absolute, "move to an absolute position")
        zoom = "zoom" in self._ptz_commands
        await self._ptz(absolute_params(position, self._limits, zoom), speed)

    async def ptz_position(self) -> PtzVector:
        self._require_ptz(self.capabilities.ptz.position, "report its PTZ position")
        return parse_ptz_position(await self._ptz({"query": "position"}), self._limits)

    async def presets(self) -> Sequence[Preset]:
        self._require_ptz(self.capabilities.ptz.presets > 0, "list presets")
        return parse_presets(await self._ptz({"query": "presetposall"}))

    async def goto_preset(self, token: str) -> None:
        self._require_ptz(self.capabilities.ptz.presets > 0, "go to a preset")
        await self._ptz({"gotoserverpresetno": token})

    async def set_preset(self, name: str, token: str | None = None) -> str:
        self._require_ptz(self.capabilities.ptz.presets > 0, "store a preset")
        params = {"setserverpresetname": name}
        if token is not None:
            params["setserverpresetno"] = token
        await self._command(PTZCONFIG_CGI, params)
        if token is not None:
            return token
        # The camera picks the number; it is the (last) preset listed under that name.
        matching = [p.token for p in await self.presets() if p.name == name]
        if not matching:
            raise BadResponse(f"preset {name!r} missing after storing it", camera=self._name)
        return matching[-1]

    async def remove_preset(self, token: str, name: str = "") -> None:
        self._require_ptz(self.capabilities.ptz.presets > 0, "remove a preset")
        await self._command(PTZCONFIG_CGI, {"removeserverpresetno": token})

    async def goto_home(self) -> None:
        self._require_ptz(self.capabilities.ptz.home, "go to its home position")
        await self._ptz({"move": "home"})

    async def set_home(self) -> None:
        self._require_ptz(self.capabilities.ptz.set_home, "store a home position")
        await self._command(PTZCONFIG_CGI, {"setserverpresetname": "Home", "home": "yes"})

    async def set_ptz_speed(self, speed: float) -> None:
        self._require_ptz(self.capabilities.ptz.speed, "set its PTZ speed")
        await self._ptz({"speed": speed_param(speed)})

    # -- imaging --------------------------------------------------------------------------

    async def imaging(self) -> ImagingSettings:
        if not self.capabilities.imaging:
            raise self._unsupported("report imaging settings")
        values = await self._list_params(("ImageSource.I0.Sensor", "Image.I0.Appearance"))
        return imaging_from_params(values)

    async def set_imaging(self, settings: ImagingSettings) -> None:
        asked = {f for f in ImagingField if getattr(settings, f.value) is not None}
        missing = asked - self.capabilities.imaging
        if missing:
            names = ", ".join(sorted(missing))
            raise self._unsupported(f"change {names}")
        sensor = sensor_update_params(settings)
        if sensor:
            await self._command(PARAM_CGI, {"action": "update", **sensor})
        reverse = reverse_params(settings)
        if reverse:
            await self._ptz(reverse)

    # -- I/O and events -------------------------------------------------------------------

    async def _check_ports(self, path: str, count: int, what: str) -> dict[str, bool | None]:
        if count <= 0:
            raise self._unsupported(f"report {what}")
        ports = ",".join(str(n) for n in range(1, count + 1))
        return parse_port_check(await self._get_text(path, {"check": ports}))

    async def relay_outputs(self) -> Sequence[RelayOutput]:
        count = self.capabilities.relay_outputs
        states = await self._check_ports(OUTPUT_CGI, count, "relay outputs")
        return [RelayOutput(str(n), states.get(str(n))) for n in range(1, count + 1)]

    async def set_relay(self, token: str, active: bool) -> None:
        if self.capabilities.relay_outputs <= 0:
            raise self._unsupported("switch a relay output")
        await self._command(OUTPUT_CGI, {"action": f"{token}:{'/' if active else BACKSLASH}"})

    async def digital_inputs(self) -> Sequence[DigitalInput]:
        count = self.capabilities.digital_inputs
        states = await self._check_ports(INPUT_CGI, count, "digital inputs")
        return [DigitalInput(str(n), states.get(str(n))) for n in range(1, count + 1)]

    def events(self) -> AsyncIterator[CameraEvent]:
        sources: list[AsyncGenerator[CameraEvent, None]] = []
        if self.capabilities.input_events:
            sources.append(self._input_events())
        if self.capabilities.motion_events:
            sources.append(self._motion_events())
        if not sources:
            raise self._unsupported("report events")
        return merge(*sources, depth=EVENT_QUEUE_SIZE)

    async def _input_events(self) -> AsyncGenerator[CameraEvent, None]:
        count = self.capabilities.digital_inputs
        ports = ",".join(str(n) for n in range(1, count + 1))
        last: dict[str, bool] = {}
        async with self.http.stream(self._path(INPUT_CGI), {"monitor": ports}) as reply:
            async for part, _ in reply.parts():
                for number, active in parse_io_monitor(part.body):
                    token = monitor_port_token(number, count)
                    if token is not None and last.get(token) is not active:
                        last[token] = active
                        yield CameraEvent(
                            EventKind.DIGITAL_INPUT, active, time.monotonic(), source=token
                        )

    async def _motion_events(self) -> AsyncGenerator[CameraEvent, None]:
        active: bool | None = None
        async with self.http.stream(self._path(MOTION_CGI)) as reply:
            if reply.status == 204:  # no motion windows (any more): nothing to report
                return
            async for part, _ in reply.parts():
                levels = parse_motion_levels(part.body)
                if not levels:
                    continue
                now_active = any(level.active for level in levels)
                if now_active is not active:
                    active = now_active
                    top = min(100, max(level.level for level in levels))
                    yield CameraEvent(EventKind.MOTION, now_active, time.monotonic(), level=top)

    # -- system ---------------------------------------------------------------------------

    async def get_datetime(self) -> datetime.datetime:
        local = parse_camera_date(await self._get_text(DATE_CGI, {"action": "get"}))
        return local_to_utc(local, self._utc_offset)

    async def set_datetime(self, value: datetime.datetime) -> None:
        await self._command(DATE_CGI, date_set_params(value))

    async def reboot(self) -> None:
        await self.http.get(self._path(RESTART_CGI))

    async def factory_default(self) -> None:
        await self.http.get(self._path(FACTORY_DEFAULT_CGI))
