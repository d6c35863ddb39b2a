"""An emulated Axis-style camera with firmware 3.00+ (VAPIX v2), after seed document 004.

It plays one PTZ network camera with audio, two digital inputs and one relay output, and
answers the way the document shows, quirks included:

- HTTP/1.0 replies from ``Boa/0.94.13`` with Digest auth in the realm ``AXIS_<MAC>``;
- ``param.cgi`` lists ``Group.Name=value`` lines with LF endings, prefixed ``root.`` only when
  the request was, accepts the document's mangled ``group=A,group=B`` lists and ``*``
  wildcards, reports a bad group as a ``# Error:`` line in a 200 reply, and adds/removes
  motion windows (``M<n> OK``);
- ``date.cgi`` answers ``Apr 03, 2003 15:16:04`` in the camera's time zone and accepts years
  1970-2031 only;
- multipart replies put the delimiter right after each part, the I/O monitor stream starts with
  blank lines, numbers ports from 0 (``monitor=1`` reports ``IO0``) and sends blank parts as
  keep-alives, and motion parts say ``Content-Type:text/plain`` with no space;
- PTZ commands answer 204 No Content, bad ones 400; ``ptz.cgi?info=1`` lists the commands
  with their ranges;
- audio is real G.711 u-law (``audio/basic``) or G.726-32 (``audio/32KADPCM``) in 240-byte
  blocks, singlepart or multipart as ``Audiod.HttpMessageType`` (or ``httptype=``) says.

Vendor-native values (the parameter tree, preset slots, PTZ speed) live in
:class:`Vapix2Settings`; the normalized head position and the picture state live in
``self.state``, so the rendered test pattern follows every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from bridge.cameras.base import AudioCodec, AudioFormat, PtzGeometry, PtzVector
from bridge.cameras.multipart import MultipartParser, boundary_from_content_type
from bridge.httpauth import DigestAuthority
from bridge.simulator.core import (
    AudioHub,
    Presence,
    SimAuth,
    SimOptions,
    SimulatedCamera,
    stream_multipart,
)
from bridge.simulator.media import TalkRecorder

# -- the unit's fixed properties ------------------------------------------------------------------

PAN_RANGE = (-170.0, 170.0)  # degrees
TILT_RANGE = (-90.0, 10.0)
ZOOM_RANGE = (1.0, 9999.0)  # zoom steps
# axis -> (vendor range, lowest normalized value): pan/tilt map onto [-1, 1], zoom onto [0, 1].
AXES: dict[str, tuple[tuple[float, float], float]] = {
    "pan": (PAN_RANGE, -1.0),
    "tilt": (TILT_RANGE, -1.0),
    "zoom": (ZOOM_RANGE, 0.0),
}
MOVE_STEPS = {  # move=<direction> -> (pan, tilt) step signs
    "up": (0, 1),
    "down": (0, -1),
    "left": (-1, 0),
    "right": (1, 0),
    "upleft": (-1, 1),
    "upright": (1, 1),
    "downleft": (-1, -1),
    "downright": (1, -1),
}
STEP_DEGREES = 5.0  # move=up|down|... on an absolute-positioning head
PRESET_SLOTS = 20
DEFAULT_SPEED = 50
MAX_PULSE_STEPS = 32  # output.cgi action sequence length accepted
MAX_EVENT_CLIENTS = 8  # motiondata.cgi answers 503 past this many
MONITOR_KEEPALIVE = 5.0  # seconds between blank I/O monitor parts
MOTION_INTERVAL = 0.5  # seconds between motion level reports
TALK_CAPTURE_LIMIT = 1024 * 1024  # bytes of received talk audio kept for inspection
AUDIO_BLOCK = 240  # bytes per audio block, as the document says
BACKSLASH = "\\"  # the I/O "inactive" character

RESOLUTION_NAMES: dict[str, tuple[int, int]] = {
    "VGA": (640, 480),
    "QVGA": (320, 240),
    "QQVGA": (160, 120),
    "4CIF": (704, 576),
    "D1": (720, 576),
    "CIF": (352, 288),
    "QCIF": (176, 144),
}

# encoding parameter -> (codec, MIME type, bit rate)
AUDIO_ENCODINGS: dict[str, tuple[AudioCodec, str, int]] = {
    "g711": (AudioCodec.MULAW, "audio/basic", 64000),
    "g726": (AudioCodec.G726, "audio/32KADPCM", 32000),
}
AUDIO_BYTES_PER_SECOND = {AudioCodec.MULAW: 8000, AudioCodec.G726: 4000}
TALK_TYPES = ("audio/basic", "multipart/x-mixed-replace")
TALK_FORMAT = AudioFormat(AudioCodec.MULAW)  # what either type carries (seed 5.8.5)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DATE_FIELDS = {
    "year": (1970, 2031),
    "month": (1, 12),
    "day": (1, 31),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
}


class PtzInfo(enum.StrEnum):
    """What ``ptz.cgi?info=1`` answers: every command with its range, as the document shows;
    the names alone (a unit that does not tell its limits); or nothing at all."""

    FULL = "full"
    BARE = "bare"
    EMPTY = "empty"


# Where Axis firmware of the era serves the document's CGIs (a unit built so serves nothing at
# the root); the others keep their path under /axis-cgi.
AXIS_CGI_PATHS = {
    "/param.cgi": "/axis-cgi/admin/param.cgi",
    "/date.cgi": "/axis-cgi/admin/date.cgi",
    "/restart.cgi": "/axis-cgi/admin/restart.cgi",
    "/factorydefault.cgi": "/axis-cgi/admin/factorydefault.cgi",
    "/imagesize.cgi": "/axis-cgi/view/imagesize.cgi",
    "/jpg/image.jpg": "/axis-cgi/jpg/image.cgi",
    "/mjpg/video.mjpg": "/axis-cgi/mjpg/video.cgi",
}

PTZ_INFO = (
    "Available commands:\r\n"
    "{camera=[1-1]}\r\n"
    "{move={home|up|down|left|right|upleft|upright|downleft|downright}}\r\n"
    f"{{pan=[{PAN_RANGE[0]}-{PAN_RANGE[1]}]}}\r\n"
    f"{{tilt=[{TILT_RANGE[0]}-{TILT_RANGE[1]}]}}\r\n"
    f"{{zoom=[{ZOOM_RANGE[0]:.0f}-{ZOOM_RANGE[1]:.0f}]}}\r\n"
    "{rpan=[-360.0-360.0]}\r\n"
    "{rtilt=[-360.0-360.0]}\r\n"
    "{rzoom=[-9999-9999]}\r\n"
    "{continuouspantiltmove=[-100-100],[-100-100]}\r\n"
    "{continuouszoommove=[-100-100]}\r\n"
    "{gotoserverpresetname=string}\r\n"
    f"{{gotoserverpresetno=[1-{PRESET_SLOTS}]}}\r\n"
    "{speed=[1-100]}\r\n"
    "{query={speed|position|presetposall}}\r\n"
    "{horizontal_reverse={0|1}}\r\n"
    "{vertical_reverse={0|1}}\r\n"
)

_RANGED = re.compile(r"\{(pan|tilt|zoom)=\[[^\]]*\]\}")


def ptz_info(kind: PtzInfo) -> str:
    if kind is PtzInfo.EMPTY:
        return ""
    return PTZ_INFO if kind is PtzInfo.FULL else _RANGED.sub(r"{\1}", PTZ_INFO)


MOTION_TEMPLATE = {
    "Name": "DefaultWindow",
    "ImageSource": "0",
    "Left": "0",
    "Right": "9999",
    "Top": "0",
    "Bottom": "9999",
    "WindowType": "include",
    "Sensitivity": "90",
    "History": "90",
    "ObjectSize": "15",
}


class BadRequest(Exception):
    """A request the firmware rejects; the message becomes the reply text."""


def _text(body: str, status: int = 200) -> web.Response:
    # Bytes, so aiohttp adds no "; charset=" the firmware never sent.
    return web.Response(status=status, body=body.encode("latin-1"), content_type="text/plain")


def _to_vendor(value: float, span: tuple[float, float], low: float) -> float:
    """A normalized value in [low, 1] on the vendor's scale ``span``."""
    return span[0] + (value - low) / (1.0 - low) * (span[1] - span[0])


def _from_vendor(value: float, span: tuple[float, float], low: float) -> float:
    if not span[0] <= value <= span[1]:
        raise BadRequest(f"{value} outside {span[0]}..{span[1]}")
    return low + (value - span[0]) / (span[1] - span[0]) * (1.0 - low)


def _number(value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"not a number: {value!r}") from None
    if not low <= number <= high:
        raise BadRequest(f"{value} outside {low}..{high}")
    return number


# -- parameter tree ------------------------------------------------------------------------------

Validator = Callable[[str], str]


def _int_range(low: int, high: int) -> Validator:
    def check(value: str) -> str:
        if not value.strip().lstrip("-").isdigit() or not low <= int(value) <= high:
            raise BadRequest(f"{value!r} not in {low}..{high}")
        return str(int(value))

    return check


def _choice(*allowed: str) -> Validator:
    def check(value: str) -> str:
        if value not in allowed:
            raise BadRequest(f"{value!r} not one of {', '.join(allowed)}")
        return value

    return check


def _any_text(value: str) -> str:
    return value


_TIMEZONE = re.compile(r"^GMT(?:[+-]\d{1,2}(?::\d{2})?)?$")


def _timezone(value: str) -> str:
    if not _TIMEZONE.match(value):
        raise BadRequest(f"unknown time zone {value!r}")
    return value


def zone_offset(zone: str) -> datetime.timedelta:
    """The UTC offset of a ``GMT[+-]h[:mm]`` zone (what the firmware accepts)."""
    match = re.match(r"^GMT(?:([+-])(\d{1,2})(?::(\d{2}))?)?$", zone)
    if match is None or match.group(1) is None:
        return datetime.timedelta(0)
    offset = datetime.timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return -offset if match.group(1) == "-" else offset


_PERCENT = _int_range(0, 100)
_YES_NO = _choice("yes", "no")
WRITABLE: dict[str, Validator] = {
    "ImageSource.I0.Sensor.Brightness": _PERCENT,
    "ImageSource.I0.Sensor.Contrast": _PERCENT,
    "ImageSource.I0.Sensor.ColorLevel": _PERCENT,
    "ImageSource.I0.Sensor.Sharpness": _PERCENT,
    "Image.I0.Appearance.MirrorEnabled": _YES_NO,
    "Image.I0.Appearance.FlipEnabled": _YES_NO,
    "AudioSource.A0.AudioEncoding": _choice(*AUDIO_ENCODINGS),
    "Audiod.HttpMessageType": _choice("singlepart", "multipart"),
    "Time.TimeZone": _timezone,
}
MOTION_WRITABLE: dict[str, Validator] = {
    "Name": _any_text,
    "ImageSource": _choice("0"),
    "Left": _int_range(0, 9999),
    "Right": _int_range(0, 9999),
    "Top": _int_range(0, 9999),
    "Bottom": _int_range(0, 9999),
    "WindowType": _choice("include", "exclude"),
    "Sensitivity": _PERCENT,
    "History": _PERCENT,
    "ObjectSize": _PERCENT,
}
_MOTION_PARAM = re.compile(r"^Motion\.M(\d+)\.(\w+)$")


def default_params(options: SimOptions) -> dict[str, str]:
    mac = options.mac.upper()
    size = f"{options.width}x{options.height}"
    params = {
        "Brand.Brand": "AXIS",
        "Brand.ProdFullName": "AXIS 213 PTZ Network Camera",
        "Brand.ProdNbr": "213",
        "Brand.ProdShortName": "AXIS 213 PTZ",
        "Brand.ProdType": "PTZ Network Camera",
        "Brand.WebURL": "http://www.axis.com/",
        "Properties.API.HTTP.Version": "2",
        "Properties.Audio.Audio": "yes",
        "Properties.Firmware.BuildDate": "Oct 02 2007 14:30",
        "Properties.Firmware.Version": "4.40",
        "Properties.Image.Format": "jpeg,mjpeg",
        "Properties.Image.Resolution": size,
        "Properties.Motion.Motion": "yes",
        "Properties.PTZ.PTZ": "yes",
        "Properties.System.HardwareID": "14D",
        "Properties.System.SerialNumber": options.serial or mac.replace(":", ""),
        "Network.BootProto": "none",
        "Network.IPAddress": "192.168.0.90",
        "Network.SubnetMask": "255.255.255.0",
        "Network.DefaultRouter": "192.168.0.1",
        "Network.eth0.MACAddress": mac,
        "Network.eth0.IPAddress": "192.168.0.90",
        "Input.NbrOfInputs": str(Vapix2Simulator.input_count),
        "Output.NbrOfOutputs": str(Vapix2Simulator.relay_count),
        "Image.I0.Resolution": size,
        "Image.I0.Appearance.MirrorEnabled": "no",
        "Image.I0.Appearance.FlipEnabled": "no",
        "ImageSource.I0.Sensor.Brightness": "50",
        "ImageSource.I0.Sensor.Contrast": "50",
        "ImageSource.I0.Sensor.ColorLevel": "50",
        "ImageSource.I0.Sensor.Sharpness": "50",
        "AudioSource.A0.AudioEncoding": "g711",
        "AudioSource.A0.BitRate": "64000",
        "Audiod.HttpMessageType": "singlepart",
        "Time.TimeZone": "GMT",
    }
    params.update({f"Motion.M0.{name}": value for name, value in MOTION_TEMPLATE.items()})
    return params


def _group_pattern(group: str) -> re.Pattern[str]:
    """A list group (``Brand``, ``Event.*.Name``) as a regex over parameter names."""
    parts = [r"[^.]+" if part == "*" else re.escape(part) for part in group.split(".")]
    return re.compile(r"^" + r"\.".join(parts) + r"(?:\..+)?$")


def split_groups(value: str) -> list[str]:
    """``group=`` values, comma-separated; the document also writes ``A,group=B``."""
    return [g.strip().removeprefix("group=") for g in value.split(",") if g.strip()]


@dataclass
class Preset:
    name: str
    position: PtzVector


@dataclass
class Vapix2Settings:
    """The firmware's own view: parameter tree, server presets (slot -> preset), PTZ speed."""

    options: SimOptions
    params: dict[str, str] = field(init=False)
    presets: dict[int, Preset] = field(default_factory=dict)
    home_slot: int | None = None
    speed: int = DEFAULT_SPEED
    talk_audio: bytearray = field(default_factory=bytearray)
    talk_bytes: int = 0
    talk_type: str = ""
    talk: TalkRecorder = field(default_factory=TalkRecorder)  # the last talk, decoded

    def __post_init__(self) -> None:
        self.params = default_params(self.options)

    def factory_default(self) -> None:
        # The Network group survives a (soft) factory default, as the document says.
        network = {k: v for k, v in self.params.items() if k.startswith("Network.")}
        self.params = {**default_params(self.options), **network}
        self.presets.clear()
        self.home_slot = None
        self.speed = DEFAULT_SPEED

    def motion_windows(self) -> list[int]:
        found = {int(m.group(1)) for name in self.params if (m := _MOTION_PARAM.match(name))}
        return sorted(found)

    def validator(self, name: str) -> Validator | None:
        if name in WRITABLE:
            return WRITABLE[name]
        match = _MOTION_PARAM.match(name)
        if match and name in self.params:
            return MOTION_WRITABLE.get(match.group(2))
        return None

    def free_slot(self) -> int:
        for slot in range(1, PRESET_SLOTS + 1):
            if slot not in self.presets:
                return slot
        raise BadRequest("no free preset position")


# -- I/O actions ---------------------------------------------------------------------------------

_ACTION = re.compile(r"^(\d*):((?:\d+|[/\\])+)$")


def parse_output_action(value: str, outputs: int) -> tuple[int, list[tuple[float, bool]]]:
    """``[<id>]:<a>[<wait><a>...]`` to (port, [(seconds from now, active), ...])."""
    match = _ACTION.match(value)
    if match is None:
        raise BadRequest(f"bad action {value!r}")
    port = int(match.group(1) or "1")
    if not 1 <= port <= outputs:
        raise BadRequest(f"no output {port}")
    tokens = re.findall(r"\d+|[/\\]", match.group(2))
    if len(tokens) > MAX_PULSE_STEPS:
        raise BadRequest("action sequence too long")
    steps: list[tuple[float, bool]] = []
    at = 0.0
    for token in tokens:
        if token.isdigit():
            at += int(token) / 1000
        else:
            steps.append((at, token == "/"))
    if not steps:
        raise BadRequest(f"no action character in {value!r}")
    return port, steps


def _number_list(value: str, allowed: Iterable[int]) -> list[int]:
    """``1,2,4``; every number must be one of ``allowed``."""
    try:
        numbers = [int(p) for p in value.split(",") if p.strip()]
    except ValueError:
        raise BadRequest(f"bad number list {value!r}") from None
    if not numbers or not set(numbers) <= set(allowed):
        raise BadRequest(f"no such port or window in {value!r}")
    return numbers


# -- the camera ----------------------------------------------------------------------------------


class Vapix2Simulator(SimulatedCamera):
    dialect = "vapix2"
    server_header = "Boa/0.94.13"
    realm = "AXIS"  # each unit appends its MAC: AXIS_00408C1A2B3C
    # Axis units of that era: Bonjour with the MAC in TXT, and UPnP.
    presence = Presence("AXIS", "AXIS 213 PTZ", ssdp=True, mdns_type="_axis-video._tcp.local.")
    auth_scheme = SimAuth.DIGEST
    http10 = True
    relay_count = 1
    input_count = 2
    # An AXIS 213 PTZ: its ranges' travel, a 47 x 35 degree picture at the wide end of a 26x
    # lens, a head that turns 85 / 25 degrees a second at velocity 100 and speed=100.
    head = PtzGeometry(
        PAN_RANGE[1] - PAN_RANGE[0], TILT_RANGE[1] - TILT_RANGE[0], (47.0, 35.0), 26.0,
        pan_rate=85.0, tilt_rate=25.0, zoom_rate=0.5,
    )  # fmt: skip

    def __init__(
        self,
        options: SimOptions | None = None,
        *,
        ptz_info: PtzInfo = PtzInfo.FULL,
        axis_cgi: bool = False,
    ) -> None:
        """``ptz_info``: what ``ptz.cgi?info=1`` tells; ``axis_cgi``: serve the CGIs only where
        Axis units do (:data:`AXIS_CGI_PATHS`, else under ``/axis-cgi``)."""
        super().__init__(options)
        self.ptz_info = ptz_info
        self.axis_cgi = axis_cgi
        self.digest = DigestAuthority(f"{self.realm}_{self.options.mac.replace(':', '').upper()}")
        self.settings = Vapix2Settings(self.options)
        self.state.ptz.speed = self.settings.speed / 100
        self._pulses: set[asyncio.Task[None]] = set()
        self._event_clients = 0

    def routes(self) -> Iterable[web.RouteDef]:
        routes = [
            web.route("*", "/param.cgi", self._handle(self._param)),
            web.get("/date.cgi", self._handle(self._date)),
            web.get("/restart.cgi", self._handle(self._restart)),
            web.get("/factorydefault.cgi", self._handle(self._factory_default)),
            web.route("*", "/imagesize.cgi", self._handle(self._imagesize)),
            web.get("/jpg/image.jpg", self._handle(self._snapshot)),
            web.get("/jpg/{camera}/image.jpg", self._handle(self._snapshot)),
            web.get("/image.cgi", self._handle(self._snapshot)),
            web.get("/mjpg/video.mjpg", self._handle(self._mjpeg)),
            web.get("/mjpg/{camera}/video.mjpg", self._handle(self._mjpeg)),
            web.get("/mjpg/video.cgi", self._handle(self._mjpeg)),
            web.route("*", "/com/ptz.cgi", self._handle(self._ptz)),
            web.route("*", "/com/ptzconfig.cgi", self._handle(self._ptzconfig)),
            web.get("/io/input.cgi", self._handle(self._input)),
            web.get("/io/output.cgi", self._handle(self._output)),
            web.route("*", "/motion/motiondata.cgi", self._handle(self._motion)),
            web.get("/audio/receive.cgi", self._handle(self._audio_receive)),
            web.post("/audio/transmit.cgi", self._handle(self._audio_transmit)),
        ]
        if not self.axis_cgi:
            return routes
        return [
            web.route(route.method, AXIS_CGI_PATHS.get(route.path, f"/axis-cgi{route.path}"),
                      route.handler)
            for route in routes
            if "{" not in route.path and route.path not in ("/image.cgi", "/mjpg/video.cgi")
        ]  # fmt: skip

    def build_app(self) -> web.Application:
        app = super().build_app()

        async def stop_pulses(_: web.Application) -> None:
            for task in self._pulses:
                task.cancel()
            await asyncio.gather(*self._pulses, return_exceptions=True)

        app.on_cleanup.append(stop_pulses)
        return app

    # -- plumbing -------------------------------------------------------------------------

    @staticmethod
    def _handle(
        handler: Callable[[web.Request, Mapping[str, str]], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Merge query and form arguments (the CGIs take GET or POST) and turn
        :class:`BadRequest` into the firmware's 400 reply."""

        async def run(request: web.Request) -> web.StreamResponse:
            args: dict[str, str] = dict(request.query)
            if request.method == "POST" and request.content_type == (
                "application/x-www-form-urlencoded"
            ):
                args.update({k: str(v) for k, v in (await request.post()).items()})
            camera = request.match_info.get("camera", args.get("camera", "1"))
            if camera != "1":
                raise web.HTTPNotFound(text="404 Not Found\r\n")
            try:
                return await handler(request, args)
            except BadRequest as exc:
                return _text(f"Error: {exc}\r\n", status=400)

        return run

    def _apply_settings(self) -> None:
        params = self.settings.params
        self.state.mirror = params["Image.I0.Appearance.MirrorEnabled"] == "yes"
        self.state.flip = params["Image.I0.Appearance.FlipEnabled"] == "yes"
        encoding = params["AudioSource.A0.AudioEncoding"]
        params["AudioSource.A0.BitRate"] = str(AUDIO_ENCODINGS[encoding][2])
        self.state.ptz.speed = self.settings.speed / 100

    def _check_resolution(self, args: Mapping[str, str]) -> tuple[int, int]:
        """The size a ``resolution=`` asks for; this unit renders only its configured one."""
        size = (self.options.width, self.options.height)
        wanted = args.get("resolution")
        if wanted is None:
            return size
        named = RESOLUTION_NAMES.get(wanted.upper())
        if named is None:
            match = re.match(r"^(\d+)x(\d+)$", wanted)
            if match is None:
                raise BadRequest(f"invalid resolution {wanted!r}")
            named = (int(match.group(1)), int(match.group(2)))
        return named

    # -- param.cgi --------------------------------------------------------------------------

    async def _param(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        action = args.get("action", "")
        if action == "list":
            return _text(self._param_list(args.get("group")))
        if action == "update":
            return _text(self._param_update(args))
        if action == "add":
            return _text(self._param_add(args))
        if action == "remove":
            return _text(self._param_remove(args.get("group", "")))
        raise BadRequest(f"unknown action {action!r}")

    def _param_list(self, groups: str | None) -> str:
        params = self.settings.params
        if groups is None:
            return "".join(f"root.{k}={v}\n" for k, v in params.items())
        lines = []
        for group in split_groups(groups):
            prefix = "root." if group.startswith("root.") else ""
            pattern = _group_pattern(group.removeprefix("root."))
            found = [f"{prefix}{k}={v}\n" for k, v in params.items() if pattern.match(k)]
            lines += found or [f"# Error: Error -1 getting param in group '{group}'\n"]
        return "".join(lines)

    def _param_update(self, args: Mapping[str, str]) -> str:
        updates = {k.removeprefix("root."): v for k, v in args.items() if k != "action"}
        checked = {}
        for name, value in updates.items():
            validator = self.settings.validator(name)
            if validator is None:
                return f"# Error: Error setting '{name}' to '{value}'!\r\n"
            try:
                checked[name] = validator(value)
            except BadRequest as exc:
                return f"# Error: Error setting '{name}' to '{value}': {exc}\r\n"
        self.settings.params.update(checked)
        self._apply_settings()
        return "OK\r\n"

    def _param_add(self, args: Mapping[str, str]) -> str:
        if args.get("group") != "Motion" or args.get("template") != "motion":
            return "# Request failed: only group=Motion&template=motion can be added\r\n"
        windows = self.settings.motion_windows()
        number = next(n for n in range(len(windows) + 1) if n not in windows)
        values = dict(MOTION_TEMPLATE)
        for key, value in args.items():
            name = key.removeprefix("Motion.M.")
            if key.startswith("Motion.M.") and name in MOTION_WRITABLE:
                try:
                    values[name] = MOTION_WRITABLE[name](value)
                except BadRequest as exc:
                    return f"# Request failed: {exc}\r\n"
        self.settings.params.update({f"Motion.M{number}.{k}": v for k, v in values.items()})
        return f"M{number} OK\r\n"

    def _param_remove(self, groups: str) -> str:
        params = self.settings.params
        names = split_groups(groups)
        for group in names:
            if not re.match(r"^Motion\.M\d+$", group) or f"{group}.Name" not in params:
                return f"# Request failed: cannot remove group '{group}'\r\n"
        for group in names:
            for key in [k for k in params if k.startswith(group + ".")]:
                del params[key]
        return "OK\r\n"

    # -- system -----------------------------------------------------------------------------

    def _zone(self) -> datetime.timedelta:
        return zone_offset(self.settings.params["Time.TimeZone"])

    async def _date(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        action = args.get("action")
        local = self.state.now() + self._zone()
        if action == "get":
            month = MONTHS[local.month - 1]
            return _text(f"{month} {local:%d, %Y %H:%M:%S}\r\n")
        if action != "set":
            raise BadRequest(f"unknown action {action!r}")
        values = {}
        for name, (low, high) in DATE_FIELDS.items():
            raw = args.get(name, str(getattr(local, name)))
            if not raw.isdigit() or not low <= int(raw) <= high:
                return _text(f"Request failed: {name}={raw} is out of range\r\n")
            values[name] = int(raw)
        timezone = args.get("timezone")
        if timezone not in (None, "GMT"):
            return _text(f"Request failed: unknown timezone {timezone}\r\n")
        try:
            moment = datetime.datetime(**values, tzinfo=datetime.UTC)
        except ValueError as exc:
            return _text(f"Request failed: {exc}\r\n")
        self.state.set_clock(moment if timezone == "GMT" else moment - self._zone())
        return _text("OK\r\n")

    async def _restart(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        self.state.reboots += 1
        self.state.ptz.stop()
        return web.Response(
            body=b"<html><body>Restarting camera...</body></html>\r\n", content_type="text/html"
        )

    async def _factory_default(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        self.state.factory_resets += 1
        self.settings.factory_default()
        self._apply_settings()
        return web.Response(
            body=b"<html><body>Factory default. Restarting camera...</body></html>\r\n",
            content_type="text/html",
        )

    # -- image and video --------------------------------------------------------------------

    async def _imagesize(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        if "camera" not in args:
            raise BadRequest("camera is required")
        width, height = self._check_resolution(args)
        return _text(f"image width = {width}\nimage height = {height}\n")

    def _only_rendered_size(self, args: Mapping[str, str]) -> None:
        if self._check_resolution(args) != (self.options.width, self.options.height):
            raise BadRequest("resolution not available")

    async def _snapshot(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        self._only_rendered_size(args)
        return web.Response(body=await self.video.snapshot(), content_type="image/jpeg")

    async def _mjpeg(self, request: web.Request, args: Mapping[str, str]) -> web.StreamResponse:
        self._only_rendered_size(args)

        async def parts() -> AsyncGenerator[bytes, None]:
            yield b"--myboundary\r\n"
            async for jpeg in self.video.frames():
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                yield head.encode() + jpeg + b"\r\n--myboundary\r\n"

        return await self._push(request, "multipart/x-mixed-replace;boundary=myboundary", parts())

    async def _push(
        self, request: web.Request, content_type: str, parts: AsyncGenerator[bytes, None]
    ) -> web.StreamResponse:
        """Stream server-push bytes; the generator is closed however the client leaves."""
        async with contextlib.aclosing(parts):
            return await stream_multipart(request, content_type, parts)

    # -- PTZ --------------------------------------------------------------------------------

    async def _ptz(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        if "info" in args:
            return _text(ptz_info(self.ptz_info))
        query = args.get("query")
        if query is not None:
            return _text(self._ptz_query(query))
        commands = {k: v for k, v in args.items() if k != "camera"}
        if not commands:
            raise BadRequest("no command")
        apply = [self._ptz_command(name, value) for name, value in commands.items()]
        for step in apply:  # every argument was valid: now act on all of them
            step()
        return web.Response(status=204)

    def _ptz_query(self, query: str) -> str:
        if query == "speed":
            return f"speed={self.settings.speed}\r\n"
        if query == "position":
            here = self.state.ptz.position()
            pan, tilt, zoom = (
                _to_vendor(getattr(here, axis), *AXES[axis]) for axis in ("pan", "tilt", "zoom")
            )
            return f"pan={pan:.4f}\r\ntilt={tilt:.4f}\r\nzoom={round(zoom)}\r\n"
        if query == "presetposall":
            lines = [
                f"presetposno{slot}={p.name}\r\n"
                for slot, p in sorted(self.settings.presets.items())
            ]
            return "Preset Positions for camera 1\r\n" + "".join(lines)
        raise BadRequest(f"unknown query {query!r}")

    def _ptz_command(self, name: str, value: str) -> Callable[[], None]:
        """Validate one ptz.cgi argument; returns what carrying it out does."""
        ptz = self.state.ptz
        if name in AXES:
            target = _from_vendor(_number(value, -360, 9999), *AXES[name])
            return lambda: ptz.go_to(_replace(ptz.position(), name, target))
        if name in ("rpan", "rtilt", "rzoom"):
            axis = name[1:]
            span, low = AXES[axis]
            limit = 9999 if axis == "zoom" else 360
            delta = _number(value, -limit, limit) / (span[1] - span[0]) * (1.0 - low)
            return lambda: ptz.step(_replace(PtzVector(), axis, delta))
        if name == "continuouspantiltmove":
            pan_text, _, tilt_text = value.partition(",")
            pan, tilt = (_number(v, -100, 100) / 100 for v in (pan_text, tilt_text))
            return lambda: ptz.move(PtzVector(pan, tilt, ptz.velocity.zoom))
        if name == "continuouszoommove":
            zoom = _number(value, -100, 100) / 100
            return lambda: ptz.move(PtzVector(ptz.velocity.pan, ptz.velocity.tilt, zoom))
        if name == "move":
            return self._ptz_move(value)
        if name in ("gotoserverpresetno", "gotoserverpresetname"):
            slot = self._preset_slot(name, value)
            return lambda: ptz.go_to(self.settings.presets[slot].position)
        if name == "speed":
            speed = int(_number(value, 1, 100))
            return lambda: self._set_speed(speed)
        if name in ("horizontal_reverse", "vertical_reverse"):
            param = "MirrorEnabled" if name == "horizontal_reverse" else "FlipEnabled"
            flag = "yes" if _choice("0", "1")(value) == "1" else "no"
            return lambda: self._set_param(f"Image.I0.Appearance.{param}", flag)
        raise BadRequest(f"unknown PTZ command {name!r}")

    def _ptz_move(self, direction: str) -> Callable[[], None]:
        ptz = self.state.ptz
        if direction == "home":
            slot = self.settings.home_slot
            if slot is None:
                raise BadRequest("no home position set")
            return lambda: ptz.go_to(self.settings.presets[slot].position)
        if direction not in MOVE_STEPS:
            raise BadRequest(f"unknown move {direction!r}")
        dx, dy = MOVE_STEPS[direction]
        pan = dx * STEP_DEGREES / (PAN_RANGE[1] - PAN_RANGE[0]) * 2
        tilt = dy * STEP_DEGREES / (TILT_RANGE[1] - TILT_RANGE[0]) * 2
        return lambda: ptz.step(PtzVector(pan, tilt))

    def _set_speed(self, speed: int) -> None:
        self.settings.speed = speed
        self._apply_settings()

    def _set_param(self, name: str, value: str) -> None:
        self.settings.params[name] = value
        self._apply_settings()

    def _preset_slot(self, name: str, value: str) -> int:
        presets = self.settings.presets
        if name.endswith("name"):
            for slot, preset in presets.items():
                if preset.name == value:
                    return slot
            raise BadRequest(f"no preset named {value!r}")
        slot = int(_number(value, 1, PRESET_SLOTS))
        if slot not in presets:
            raise BadRequest(f"no preset {slot}")
        return slot

    async def _ptzconfig(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        presets = self.settings.presets
        for removing in ("removeserverpresetno", "removeserverpresetname"):
            if removing in args:
                slot = self._preset_slot(removing, args[removing])
                del presets[slot]
                if self.settings.home_slot == slot:
                    self.settings.home_slot = None
                return web.Response(status=204)
        name = args.get("setserverpresetname")
        number = args.get("setserverpresetno")
        if name is None and number is None:
            raise BadRequest("no command")
        if number is not None:
            slot = int(_number(number, 1, PRESET_SLOTS))
        else:
            named = [s for s, p in presets.items() if p.name == name]
            slot = named[0] if named else self.settings.free_slot()
        if name is None:
            name = presets[slot].name if slot in presets else f"Preset {slot}"
        presets[slot] = Preset(name, self.state.ptz.position())
        if args.get("home") == "yes":
            self.settings.home_slot = slot
        return web.Response(status=204)

    # -- I/O --------------------------------------------------------------------------------

    async def _input(self, request: web.Request, args: Mapping[str, str]) -> web.StreamResponse:
        return await self._io(request, args, self.state.inputs, "input")

    async def _output(self, request: web.Request, args: Mapping[str, str]) -> web.StreamResponse:
        if "action" in args:
            port, steps = parse_output_action(args["action"], len(self.state.relays))
            task = asyncio.create_task(self._run_pulses(port, steps))
            self._pulses.add(task)
            task.add_done_callback(self._pulses.discard)
            await asyncio.sleep(0)  # immediate steps land before the reply
            return _text("OK\r\n")
        return await self._io(request, args, self.state.relays, "output")

    async def _run_pulses(self, port: int, steps: list[tuple[float, bool]]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, active in steps:
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            self.state.relays[port - 1] = active
            await self.state.notify()

    async def _io(
        self, request: web.Request, args: Mapping[str, str], ports: list[bool], name: str
    ) -> web.StreamResponse:
        numbers = range(1, len(ports) + 1)
        words = {"check": ("0", "1"), "checkactive": ("inactive", "active")}
        for kind, (off, on) in words.items():
            if kind in args:
                lines = [
                    f"{name}{p}={on if ports[p - 1] else off}\r\n"
                    for p in _number_list(args[kind], numbers)
                ]
                return _text("".join(lines))
        if "monitor" in args:
            return await self._monitor(request, ports, _number_list(args["monitor"], numbers))
        raise BadRequest("no command")

    async def _monitor(
        self, request: web.Request, ports: list[bool], numbers: list[int]
    ) -> web.StreamResponse:
        async def parts() -> AsyncGenerator[bytes, None]:
            # The document's stream opens with blank lines before the first delimiter.
            yield b"\r\n\r\n\r\n--ioboundary\r\n"
            last: dict[int, bool] = {}
            while True:
                version = self.state.version
                now = {n: ports[n - 1] for n in numbers}
                changed = {n: v for n, v in now.items() if last.get(n) is not v}
                last = now
                # Zero-based in the data: monitor=1 reports IO0. No change: a blank keep-alive.
                data = "".join(f"IO{n - 1}:{'/' if v else BACKSLASH}\n" for n, v in changed.items())
                yield f"Content-Type: text/plain\r\n\r\n{data}\r\n--ioboundary\r\n".encode()
                await self.state.wait_changed(version, MONITOR_KEEPALIVE)

        return await self._push(request, "multipart/x-mixed-replace; boundary=ioboundary", parts())

    # -- motion -----------------------------------------------------------------------------

    async def _motion(self, request: web.Request, args: Mapping[str, str]) -> web.StreamResponse:
        windows = self.settings.motion_windows()
        if "group" in args:
            # The document also writes the list as "group=0,group=1".
            windows = _number_list(args["group"].replace("group=", ""), windows)
        params = self.settings.params
        included = [w for w in windows if params[f"Motion.M{w}.WindowType"] == "include"]
        if not included:
            return web.Response(status=204)
        if self._event_clients >= MAX_EVENT_CLIENTS:
            return web.Response(status=503)

        async def parts() -> AsyncGenerator[bytes, None]:
            yield b"--mdb\r\n"
            version = self.state.version
            while True:
                level = self.state.motion_level if self.state.motion_active else 0
                lines = "".join(
                    f"group={w};level={level};threshold={params[f'Motion.M{w}.ObjectSize']};\r\n"
                    for w in included
                )
                yield f"Content-Type:text/plain\r\n\r\n{lines}--mdb\r\n".encode()
                version = await self.state.wait_changed(version, MOTION_INTERVAL)

        self._event_clients += 1
        try:
            return await self._push(request, "multipart/x-mixed-replace;boundary=mdb", parts())
        finally:
            self._event_clients -= 1

    # -- audio ------------------------------------------------------------------------------

    async def _audio_receive(
        self, request: web.Request, args: Mapping[str, str]
    ) -> web.StreamResponse:
        params = self.settings.params
        httptype = args.get("httptype", params["Audiod.HttpMessageType"])
        if httptype not in ("singlepart", "multipart"):
            raise BadRequest(f"bad httptype {httptype!r}")
        codec, mime, _ = AUDIO_ENCODINGS[params["AudioSource.A0.AudioEncoding"]]
        hub = AudioHub(codec, chunk_seconds=AUDIO_BLOCK / AUDIO_BYTES_PER_SECOND[codec])
        multipart = httptype == "multipart"

        async def parts() -> AsyncGenerator[bytes, None]:
            if multipart:
                yield b"--myboundary\r\n"
            async for block in hub.chunks():
                if multipart:
                    head = f"Content-Type: {mime}\r\n\r\n".encode()
                    yield head + block + b"\r\n--myboundary\r\n"
                else:
                    yield block

        content_type = "multipart/x-mixed-replace;boundary=myboundary" if multipart else mime
        return await self._push(request, content_type, parts())

    async def _audio_transmit(self, request: web.Request, args: Mapping[str, str]) -> web.Response:
        content_type = request.content_type.lower()
        if content_type not in TALK_TYPES:
            raise BadRequest(f"unsupported audio type {content_type!r}")
        settings = self.settings
        settings.talk_audio.clear()
        settings.talk_bytes = 0
        settings.talk_type = content_type
        settings.talk.start(TALK_FORMAT)
        parser = None
        if content_type.startswith("multipart/"):
            boundary = boundary_from_content_type(request.headers.get("Content-Type", ""))
            parser = MultipartParser(boundary)
        try:
            async for data in request.content.iter_any():
                blocks = [p.body for p in parser.feed(data)] if parser else [data]
                for block in blocks:
                    settings.talk_bytes += len(block)
                    room = TALK_CAPTURE_LIMIT - len(settings.talk_audio)
                    settings.talk_audio += block[:room]
                    settings.talk.feed(block)
        finally:
            settings.talk.end()
        return web.Response(status=204)


def _replace(vector: PtzVector, axis: str, value: float) -> PtzVector:
    values = {"pan": vector.pan, "tilt": vector.tilt, "zoom": vector.zoom, axis: value}
    return PtzVector(**values)
