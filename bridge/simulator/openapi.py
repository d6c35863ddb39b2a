"""An emulated "IP Camera Open API" camera (h264-era firmware V5.0.2, VAPIX-like CGIs).

One pan/tilt/zoom unit with two digital inputs, one relay, a microphone and a speaker, as its
firmware answers: HTTP/1.0 with Basic auth, everything at the web root, ``text/plain`` replies
that say ``OK`` / ``<entry> OK`` / ``# Error: ...`` with status 200, 204 for PTZ commands, and
the family's quirks: the audio stream declares ``boundary=--myboundary`` while its delimiter
lines are ``--myboundary``; the input monitor numbers port 1 as ``IO0``, ends lines with a bare
LF and pads its parts with blank lines; ``config.cgi`` lists with bare LFs and reports unknown
groups inline as ``# Error:`` lines; ``time.cgi`` speaks the camera's local time.

Vendor-native values (the parameter tree, degrees, 1..9999 zoom steps, preset slots, motion
windows) live in :class:`OpenApiUnit`; the normalized PTZ position, mirror/flip, relays and
inputs live in the shared :class:`SimState`, so the rendered picture follows them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from bridge.cameras.base import AudioCodec, AudioFormat, PtzGeometry, PtzVector
from bridge.media.emulated import G726_BITS
from bridge.simulator.core import (
    AudioHub,
    Presence,
    SimAuth,
    SimOptions,
    SimulatedCamera,
    stream_multipart,
)
from bridge.simulator.media import TalkRecorder, ToneEncoder

FIRMWARE: Final = "V5.0.2.3843"
VIDEO_BOUNDARY: Final = "myboundary"
AUDIO_BOUNDARY: Final = "myboundary"
MOTION_BOUNDARY: Final = "mdb"
IO_BOUNDARY: Final = "ioboundary"
AUDIO_BLOCK_BYTES: Final = 240  # the family's audio packet size
MOTION_PERIOD: Final = 0.5  # seconds between motion-level parts when nothing changes
IO_KEEPALIVE: Final = 2.0  # seconds between monitor parts when no input changes
TALK_KEEP_BYTES: Final = 1 << 20  # received talk audio kept for inspection
MAX_OUTPUT_WAIT_MS: Final = 60_000
STEP_DEGREES: Final = 5.0  # move=up/down/left/right

TEXT: Final = "text/plain"
_PAN_LIMITS: Final = (-170.0, 170.0)
_TILT_LIMITS: Final = (-90.0, 90.0)
_ZOOM_LIMITS: Final = (1.0, 9999.0)

# Network settings survive a soft factory default (factorydefault.cgi), not a hard one.
_KEPT_ON_SOFT_RESET: Final = (
    "Network.BootProto", "Network.IPAddress", "Network.SubnetMask", "Network.Broadcast",
    "Network.DefaultRouter",
)  # fmt: skip

_RESOLUTION_ALIASES: Final = {
    "vga": "640x480", "qvga": "320x240", "qqvga": "160x120", "cif": "352x288",
    "qcif": "176x144", "d1": "720x480", "4cif": "704x576",
}  # fmt: skip

# Audio.A0.AudioEncoding -> (codec, content type); the family's G.726 is the 32 kbit/s one.
_ENCODINGS: Final = {
    "g711": (AudioCodec.MULAW, "audio/basic"),
    "g726": (AudioCodec.G726, "audio/32KADPCM"),
}

Check = Callable[[str], bool]


def _choice(*values: str) -> Check:
    return lambda value: value in values


def _int_range(low: int, high: int) -> Check:
    return lambda value: bool(re.fullmatch(r"-?\d+", value)) and low <= int(value) <= high


def _text(max_length: int) -> Check:
    return lambda value: len(value) <= max_length and "\n" not in value


_ZONE = re.compile(r"GMT(?:([+-])(\d{2}):(\d{2}))?")


def _zone_offset(value: str) -> datetime.timedelta | None:
    """The UI's zone values: ``GMT`` or ``GMT+hh:mm`` / ``GMT-hh:mm``."""
    match = _ZONE.fullmatch(value)
    if match is None:
        return None
    if match.group(1) is None:
        return datetime.timedelta(0)
    offset = datetime.timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    if offset > datetime.timedelta(hours=14) or int(match.group(3)) >= 60:
        return None
    return offset if match.group(1) == "+" else -offset


@dataclass(frozen=True, slots=True)
class ParamSpec:
    default: str
    check: Check | None = None  # None: read-only


_YES_NO: Final = _choice("yes", "no")
_TRUE_FALSE: Final = _choice("true", "false")


def _param_specs(options: SimOptions, inputs: int, outputs: int) -> dict[str, ParamSpec]:
    mac = options.mac.upper()
    serial = options.serial or mac.replace(":", "")
    ro = ParamSpec
    specs = {
        "Brand.Brand": ro("IPCAM"),
        "Brand.ProdFullName": ro("H.264 Pan/Tilt/Zoom Network Camera"),
        "Brand.ProdShortName": ro("NC-5212PTZ"),
        "Brand.ProdNbr": ro("NC5212PTZ"),
        "Properties.Firmware.Version": ro(FIRMWARE),
        "Properties.Firmware.BuildDate": ro("Jan 07 2010"),
        "Properties.System.SerialNumber": ro(serial),
        "Properties.System.HardwareID": ro("5212"),
        "Properties.PTZ.PTZ": ro("yes"),
        "Properties.Audio.Audio": ro("yes"),
        "Properties.Audio.Format": ro("g711,g726"),
        "Network.eth0.MACAddress": ro(mac),
        "Network.BootProto": ParamSpec("none", _choice("none", "dhcp")),
        "Network.IPAddress": ParamSpec("192.168.0.20", _text(15)),
        "Network.SubnetMask": ParamSpec("255.255.255.0", _text(15)),
        "Network.Broadcast": ParamSpec("192.168.0.255", _text(15)),
        "Network.DefaultRouter": ParamSpec("192.168.0.1", _text(15)),
        "Network.HostName": ParamSpec("ipcam", _text(32)),
        "Image.I0.Appearance.Resolution": ro(f"{options.width}x{options.height}"),
        "Image.I0.Appearance.Compression": ParamSpec("30", _int_range(0, 100)),
        "Image.I0.Appearance.Brightness": ParamSpec("128", _int_range(0, 255)),
        "Image.I0.Appearance.Contrast": ParamSpec("128", _int_range(0, 255)),
        "Image.I0.Appearance.Saturation": ParamSpec("128", _int_range(0, 255)),
        "Image.I0.Appearance.Sharpness": ParamSpec("4", _int_range(0, 7)),
        "Image.I0.Appearance.Mirror": ParamSpec("no", _YES_NO),
        "Image.I0.Appearance.Flip": ParamSpec("no", _YES_NO),
        "Image.I0.Stream.FPS": ro(f"{options.fps:g}"),
        "PTZ.Limit.L1.MinPan": ro(f"{_PAN_LIMITS[0]:g}"),
        "PTZ.Limit.L1.MaxPan": ro(f"{_PAN_LIMITS[1]:g}"),
        "PTZ.Limit.L1.MinTilt": ro(f"{_TILT_LIMITS[0]:g}"),
        "PTZ.Limit.L1.MaxTilt": ro(f"{_TILT_LIMITS[1]:g}"),
        "PTZ.Limit.L1.MinZoom": ro(f"{_ZOOM_LIMITS[0]:g}"),
        "PTZ.Limit.L1.MaxZoom": ro(f"{_ZOOM_LIMITS[1]:g}"),
        "PTZ.Preset.P0.MaxPresets": ro("16"),
        "Audio.A0.Enabled": ParamSpec("yes", _YES_NO),
        "Audio.A0.AudioEncoding": ParamSpec("g726", _choice(*_ENCODINGS)),
        "Audio.HttpMessageType": ParamSpec("multipart", _choice("singlepart", "multipart")),
        "Audio.DuplexMode": ParamSpec("full", _choice("full", "half", "simplex")),
        "Input.NbrOfInputs": ro(str(inputs)),
        "Output.NbrOfOutputs": ro(str(outputs)),
        "Time.TimeZone": ParamSpec("GMT+01:00", lambda value: _zone_offset(value) is not None),
    }
    # Every kind of move is on by default; tests switch some off to play a simpler unit.
    for kind in ("Continuous", "Relative", "Absolute"):
        for axis in ("Pan", "Tilt", "Zoom"):
            specs[f"PTZ.Support.S1.{kind}{axis}"] = ParamSpec("true", _TRUE_FALSE)
    specs["PTZ.Support.S1.ServerPreset"] = ParamSpec("true", _TRUE_FALSE)
    specs["PTZ.Support.S1.SpeedCtl"] = ParamSpec("true", _TRUE_FALSE)
    return specs


_MOTION_TEMPLATE: Final = {
    "Name": ParamSpec("", _text(32)),
    "Top": ParamSpec("0", _int_range(0, 9999)),
    "Bottom": ParamSpec("9999", _int_range(0, 9999)),
    "Left": ParamSpec("0", _int_range(0, 9999)),
    "Right": ParamSpec("9999", _int_range(0, 9999)),
    "Sensitivity": ParamSpec("90", _int_range(0, 100)),
    "History": ParamSpec("90", _int_range(0, 100)),
    "ObjectSize": ParamSpec("25", _int_range(0, 100)),  # the threshold motion.cgi reports
    "WindowType": ParamSpec("include", _choice("include", "exclude")),
}


@dataclass
class StoredPreset:
    name: str
    position: PtzVector


def _to_norm(value: float, limits: tuple[float, float], low: float = -1.0) -> float:
    return low + (value - limits[0]) / (limits[1] - limits[0]) * (1.0 - low)


def _to_vendor(norm: float, limits: tuple[float, float], low: float = -1.0) -> float:
    return limits[0] + (norm - low) / (1.0 - low) * (limits[1] - limits[0])


def _vendor_position(position: PtzVector) -> tuple[float, float, float]:
    return (
        _to_vendor(position.pan, _PAN_LIMITS),
        _to_vendor(position.tilt, _TILT_LIMITS),
        _to_vendor(position.zoom, _ZOOM_LIMITS, 0.0),
    )


@dataclass
class IpFilter:
    addresses: list[str] = field(default_factory=list)
    enabled: bool = False
    policy: str = "allow"


class OpenApiUnit:
    """The camera's own view of itself: its parameter tree and vendor-unit state.
    ``ptz_limits``: whether the tree lists the head's limits (some units do not)."""

    def __init__(
        self, options: SimOptions, inputs: int, outputs: int, *, ptz_limits: bool = True
    ) -> None:
        self.specs = _param_specs(options, inputs, outputs)
        if not ptz_limits:
            self.specs = {k: v for k, v in self.specs.items() if not k.startswith("PTZ.Limit.")}
        self.values = {name: spec.default for name, spec in self.specs.items()}
        self.presets: dict[int, StoredPreset] = {}
        self.home: int | None = None
        self.motion_windows: dict[int, dict[str, str]] = {}
        self.speed = 50
        self.ip_filter = IpFilter()
        self.talk_received = bytearray()
        self.talk_total = 0
        self.talk = TalkRecorder()  # the last talk, decoded
        self.reset_dynamic()

    def reset_dynamic(self) -> None:
        """Factory presets: home at the centre, one motion window over the whole picture."""
        self.presets = {1: StoredPreset("Home", PtzVector(0.0, 0.0, 0.0))}
        self.home = 1
        self.motion_windows = {0: self.motion_template({"Name": "DefaultWindow"})}
        self.speed = 50
        self.ip_filter = IpFilter()

    def factory_default(self, *, keep_network: bool) -> None:
        kept = {name: self.values[name] for name in _KEPT_ON_SOFT_RESET if keep_network}
        self.values = {name: spec.default for name, spec in self.specs.items()} | kept
        self.reset_dynamic()

    @staticmethod
    def motion_template(values: Mapping[str, str]) -> dict[str, str]:
        return {key: values.get(key, spec.default) for key, spec in _MOTION_TEMPLATE.items()}

    def supports(self, kind: str) -> bool:
        return self.values.get(f"PTZ.Support.S1.{kind}") == "true"

    def max_presets(self) -> int:
        return int(self.values["PTZ.Preset.P0.MaxPresets"])

    def listing(self) -> dict[str, str]:
        """Every parameter, the dynamic groups (presets, motion windows) included."""
        values = dict(self.values)
        values["PTZ.Preset.P0.HomePosition"] = "" if self.home is None else str(self.home)
        for number, preset in sorted(self.presets.items()):
            pan, tilt, zoom = _vendor_position(preset.position)
            base = f"PTZ.Preset.P0.Position.P{number}"
            values[f"{base}.Name"] = preset.name
            values[f"{base}.Data"] = f"pan={pan:.6f}:tilt={tilt:.6f}:zoom={zoom:.6f}"
        for number, window in sorted(self.motion_windows.items()):
            for key, value in window.items():
                values[f"Motion.M{number}.{key}"] = value
        return values

    def check_update(self, name: str, value: str) -> bool:
        match = re.fullmatch(r"Motion\.M(\d+)\.(\w+)", name)
        if match:
            spec = _MOTION_TEMPLATE.get(match.group(2))
            known = int(match.group(1)) in self.motion_windows
            return known and spec is not None and spec.check is not None and spec.check(value)
        spec = self.specs.get(name)
        return spec is not None and spec.check is not None and spec.check(value)

    def apply_update(self, name: str, value: str) -> None:
        match = re.fullmatch(r"Motion\.M(\d+)\.(\w+)", name)
        if match:
            self.motion_windows[int(match.group(1))][match.group(2)] = value
        else:
            self.values[name] = value

    def utc_offset(self) -> datetime.timedelta:
        return _zone_offset(self.values["Time.TimeZone"]) or datetime.timedelta(0)

    def keep_talk(self, data: bytes) -> None:
        self.talk_total += len(data)
        room = TALK_KEEP_BYTES - len(self.talk_received)
        self.talk_received += data[: max(0, room)]


def _group_matches(name: str, group: str) -> bool:
    if name == group or name.startswith(group + "."):
        return True
    if "*" not in group:
        return False
    pattern = r"\.".join("[^.]+" if part == "*" else re.escape(part) for part in group.split("."))
    return re.match(pattern + r"(\.|$)", name) is not None


def _groups(raw: str) -> list[str]:
    """``group=a,b`` and the document's own ``group=a,group=b`` form."""
    return [part.strip().removeprefix("group=") for part in raw.split(",") if part.strip()]


def _text_reply(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=text, content_type=TEXT)


def _ok() -> web.Response:
    return _text_reply("OK\r\n")


def _error(message: str) -> web.Response:
    return _text_reply(f"# Error: {message}\r\n")


def _bad_request(message: str = "Bad Request") -> web.Response:
    return _text_reply(f"{message}\r\n", status=400)


def _no_content() -> web.Response:
    return web.Response(status=204)


async def _params(request: web.Request) -> dict[str, str]:
    """The CGI parameters: these CGIs take GET queries and POSTed forms alike."""
    params = dict(request.query)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        params.update({k: str(v) for k, v in (await request.post()).items()})
    return params


def _ports_list(raw: str, valid: Iterable[int]) -> list[int] | None:
    """``1,2`` -> [1, 2] when every entry names a valid port; None makes a bad request."""
    items = [item.strip() for item in raw.split(",")]
    allowed = set(valid)
    if not all(item.isdigit() and int(item) in allowed for item in items):
        return None
    return [int(item) for item in items]


def _parse_output_action(raw: str) -> tuple[int, list[str | int]] | None:
    """``[<id>:]<a>[<wait><a>...]``: ``/`` active, ``\\`` inactive, numbers wait in ms."""
    port_text, sep, program = raw.partition(":")
    if not sep:
        port_text, program = "1", raw
    if not port_text.isdigit() or not program:
        return None
    steps: list[str | int] = []
    for token in re.findall(r"\d+|[/\\]|.", program):
        if token in ("/", "\\"):
            steps.append(token)
        elif token.isdigit() and int(token) <= MAX_OUTPUT_WAIT_MS:
            steps.append(int(token))
        else:
            return None
    return int(port_text), steps


@dataclass(frozen=True, slots=True)
class _IoCgi:
    """One of the I/O CGIs: how it numbers ports and what each port is."""

    name: str  # the reply key prefix: input, output, port
    actions: bool
    monitor: bool
    directions: bool


_IO_CHARS: Final = {True: "/", False: "\\"}
_INPUT_CGI: Final = _IoCgi("input", actions=False, monitor=True, directions=False)
_OUTPUT_CGI: Final = _IoCgi("output", actions=True, monitor=False, directions=False)
_PORT_CGI: Final = _IoCgi("port", actions=True, monitor=True, directions=True)


class OpenApiSimulator(SimulatedCamera):
    dialect = "openapi"
    server_header = "Boa/0.94.14rc21"
    realm = "Open API IP Camera"
    presence = Presence("IPCAM", "NC-5212PTZ", ssdp=True)
    auth_scheme = SimAuth.BASIC
    http10 = True
    relay_count = 1
    input_count = 2
    # Its limits' travel, a 52 x 40 degree picture at the wide end of a 10x lens, and a head
    # that turns 85 / 45 degrees a second at velocity 100 (its lens: half its range).
    head = PtzGeometry(
        _PAN_LIMITS[1] - _PAN_LIMITS[0], _TILT_LIMITS[1] - _TILT_LIMITS[0], (52.0, 40.0), 10.0,
        pan_rate=85.0, tilt_rate=45.0, zoom_rate=0.5,
    )  # fmt: skip

    def __init__(self, options: SimOptions | None = None, *, ptz_limits: bool = True) -> None:
        """``ptz_limits``: whether its parameter tree reports the head's limits (it moves over
        the same travel either way)."""
        super().__init__(options)
        self.unit = OpenApiUnit(
            self.options, self.input_count, self.relay_count, ptz_limits=ptz_limits
        )
        self._output_programs: dict[int, asyncio.Task[None]] = {}

    def build_app(self) -> web.Application:
        app = super().build_app()

        async def stop_output_programs(_: web.Application) -> None:
            for task in self._output_programs.values():
                task.cancel()
            await asyncio.gather(*self._output_programs.values(), return_exceptions=True)

        app.on_cleanup.append(stop_output_programs)
        return app

    def routes(self) -> Iterable[web.RouteDef]:
        handlers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
            "/": self._index,
            "/config.cgi": self._config,
            "/time.cgi": self._time,
            "/image.jpg": self._snapshot,
            "/image.cgi": self._snapshot,
            "/video.mjpg": self._video,
            "/video.cgi": self._video,
            "/fromserver.cgi": self._audio,
            "/toSERVER.cgi": self._talk,
            "/ptz.cgi": self._ptz,
            "/configptz.cgi": self._ptz_config,
            "/motion.cgi": self._motion,
            "/input.cgi": self._io_handler(_INPUT_CGI),
            "/output.cgi": self._io_handler(_OUTPUT_CGI),
            "/port.cgi": self._io_handler(_PORT_CGI),
            "/ipfilter.cgi": self._ipfilter,
            "/list.cgi": self._storage_list,
            "/systemlog.cgi": self._system_log,
            "/reboot.cgi": self._reboot,
            "/factorydefault.cgi": self._factory_default,
            "/hardfactorydefault.cgi": self._factory_default,
        }
        return [web.route("*", path, handler) for path, handler in handlers.items()]

    # -- general ----------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        title = f"{self.unit.values['Brand.ProdShortName']} Network Camera"
        return web.Response(
            text=f"<html><head><title>{title}</title></head><body>{title}</body></html>",
            content_type="text/html",
        )

    async def _config(self, request: web.Request) -> web.Response:
        params = await _params(request)
        action = params.pop("action", "")
        if action == "list":
            return self._config_list(params)
        if action == "update":
            return await self._config_update(params)
        if action == "add":
            return self._config_add(params)
        if action == "remove":
            return self._config_remove(params)
        return _error(f"Invalid action '{action}'")

    def _config_list(self, params: Mapping[str, str]) -> web.Response:
        # The list format ends lines with a bare LF, unlike the CRLF of the other replies.
        listing = self.unit.listing()
        groups = _groups(params.get("group", ""))
        lines = [] if groups else [f"{name}={value}\n" for name, value in listing.items()]
        for group in groups:
            found = [f"{n}={v}\n" for n, v in listing.items() if _group_matches(n, group)]
            lines += found or [f"# Error: Error -1 getting param in group '{group}'\n"]
        return _text_reply("".join(lines))

    async def _config_update(self, params: Mapping[str, str]) -> web.Response:
        if not params:
            return _error("No parameters to update")
        for name, value in params.items():
            if not self.unit.check_update(name, value):
                return _error(f"Error setting '{name}' to '{value}'!")
        for name, value in params.items():
            self.unit.apply_update(name, value)
        self._sync_picture()
        await self.state.notify()
        return _ok()

    def _config_add(self, params: Mapping[str, str]) -> web.Response:
        if params.get("group") != "Motion" or params.get("template", "motion") != "motion":
            return _error(f"Cannot add group '{params.get('group', '')}'")
        fields = {
            name.removeprefix("Motion.M."): value
            for name, value in params.items()
            if name.startswith("Motion.M.")
        }
        for key, value in fields.items():
            spec = _MOTION_TEMPLATE.get(key)
            if spec is None or spec.check is None or not spec.check(value):
                return _error(f"Error setting 'Motion.M.{key}' to '{value}'!")
        number = next(n for n in range(len(self.unit.motion_windows) + 1)
                      if n not in self.unit.motion_windows)  # fmt: skip
        self.unit.motion_windows[number] = self.unit.motion_template(fields)
        return _text_reply(f"M{number} OK\r\n")

    def _config_remove(self, params: Mapping[str, str]) -> web.Response:
        numbers = []
        for group in _groups(params.get("group", "")):
            match = re.fullmatch(r"Motion\.M(\d+)", group)
            if match is None or int(match.group(1)) not in self.unit.motion_windows:
                return _error(f"Cannot remove group '{group}'")
            numbers.append(int(match.group(1)))
        if not numbers:
            return _error("No group to remove")
        for number in numbers:
            del self.unit.motion_windows[number]
        return _ok()

    def _sync_picture(self) -> None:
        self.state.mirror = self.unit.values["Image.I0.Appearance.Mirror"] == "yes"
        self.state.flip = self.unit.values["Image.I0.Appearance.Flip"] == "yes"

    async def _time(self, request: web.Request) -> web.Response:
        params = await _params(request)
        action = params.get("action")
        offset = self.unit.utc_offset()
        if action == "get":
            local = self.state.now() + offset
            return _text_reply(local.strftime("%b %d, %Y %H:%M:%S") + "\r\n")
        if action != "set":
            return _bad_request()
        zone = params.get("timezone")
        if zone not in (None, "GMT"):
            return _text_reply("Request failed: Only GMT is a valid timezone\r\n")
        # Fields left out keep their current value, in the zone the request is given in.
        given_offset = datetime.timedelta(0) if zone == "GMT" else offset
        current = self.state.now() + given_offset
        fields = {}
        for key in ("year", "month", "day", "hour", "minute", "second"):
            raw = params.get(key, str(getattr(current, key)))
            if not raw.isdigit():
                return _text_reply(f"Request failed: Invalid {key} '{raw}'\r\n")
            fields[key] = int(raw)
        try:
            wanted = datetime.datetime(**fields, tzinfo=datetime.UTC) - given_offset
        except ValueError as exc:
            return _text_reply(f"Request failed: {exc}\r\n")
        if not 1970 <= wanted.year <= 2031:
            return _text_reply("Request failed: year out of range 1970-2031\r\n")
        self.state.set_clock(wanted)
        return _ok()

    async def _system_log(self, request: web.Request) -> web.Response:
        now = (self.state.now() + self.unit.utc_offset()).strftime("%b %d %H:%M:%S")
        lines = [f"{now} ipcam syslogd started: BusyBox v1.1.3", f"{now} ipcam boa: started"]
        lines += [f"{now} ipcam kernel: restart {n + 1}" for n in range(self.state.reboots)]
        return _text_reply("\r\n".join(lines) + "\r\n")

    async def _reboot(self, request: web.Request) -> web.Response:
        self.state.reboots += 1
        self.state.ptz.stop()
        return _ok()

    async def _factory_default(self, request: web.Request) -> web.Response:
        self.unit.factory_default(keep_network=request.path == "/factorydefault.cgi")
        self.state.factory_resets += 1
        self.state.ptz.go_to(PtzVector())
        self._sync_picture()
        return _ok()

    # -- server push ---------------------------------------------------------------------------

    async def _push(
        self,
        request: web.Request,
        content_type: str,
        boundary: str,
        part_type: str,
        bodies: AsyncIterator[bytes],
        *,
        length: bool = False,
        preamble: bytes = b"",
    ) -> web.StreamResponse:
        """Server push as the firmware writes it: the delimiter line goes out right after each
        part, so a client has the part at once rather than when the next one starts."""

        async def stream() -> AsyncIterator[bytes]:
            yield preamble + f"--{boundary}\r\n".encode()
            async for body in bodies:
                head = f"Content-Type: {part_type}\r\n"
                if length:
                    head += f"Content-Length: {len(body)}\r\n"
                yield f"{head}\r\n".encode() + body + f"\r\n--{boundary}\r\n".encode()

        # The Server header is set here: a streamed reply is sent before any middleware
        # could add it.
        headers = {"Server": self.server_header}
        return await stream_multipart(request, content_type, stream(), headers=headers)

    # -- video and audio ----------------------------------------------------------------------

    def _resolution_ok(self, params: Mapping[str, str]) -> bool:
        """image.cgi/video.cgi: the emulator renders one size, so it accepts only that one."""
        if params.get("camera", "1") != "1":
            return False
        wanted = params.get("resolution")
        if wanted is None:
            return True
        current = self.unit.values["Image.I0.Appearance.Resolution"]
        return _RESOLUTION_ALIASES.get(wanted.lower(), wanted.lower()) == current

    async def _snapshot(self, request: web.Request) -> web.Response:
        if not self._resolution_ok(await _params(request)):
            return _bad_request()
        return web.Response(body=await self.video.snapshot(), content_type="image/jpeg")

    async def _video(self, request: web.Request) -> web.StreamResponse:
        if not self._resolution_ok(await _params(request)):
            return _bad_request()

        content_type = f"multipart/x-mixed-replace;boundary={VIDEO_BOUNDARY}"
        return await self._push(
            request, content_type, VIDEO_BOUNDARY, "image/jpeg", self.video.frames(), length=True
        )

    def _audio_encoding(self) -> tuple[AudioCodec, str]:
        return _ENCODINGS[self.unit.values["Audio.A0.AudioEncoding"]]

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        params = await _params(request)
        if self.unit.values["Audio.A0.Enabled"] != "yes":
            return _text_reply("Audio is disabled\r\n", status=503)
        httptype = params.get("httptype", self.unit.values["Audio.HttpMessageType"])
        if httptype not in ("singlepart", "multipart"):
            return _bad_request()
        codec, mime = self._audio_encoding()
        hub = AudioHub(codec, AUDIO_BLOCK_BYTES / ToneEncoder(codec).bytes_per_second)
        if httptype == "multipart":
            # The firmware declares the boundary with the dashes its delimiter lines carry.
            content_type = f"multipart/x-mixed-replace; boundary=--{AUDIO_BOUNDARY}"
            return await self._push(request, content_type, AUDIO_BOUNDARY, mime, hub.chunks())
        headers = {"Server": self.server_header}
        return await stream_multipart(request, mime, hub.chunks(), headers=headers)

    async def _talk(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _bad_request()
        if self.unit.values["Audio.DuplexMode"] not in ("full", "half"):
            return _text_reply("Audio output is disabled\r\n", status=503)
        playable = {mime.lower(): codec for codec, mime in _ENCODINGS.values()}
        codec = playable.get(request.content_type.lower())
        if codec is None:
            return _bad_request(f"Unsupported audio type {request.content_type}")
        bits = G726_BITS if codec is AudioCodec.G726 else 0
        talk = self.unit.talk
        talk.start(AudioFormat(codec, bits_per_sample=bits))
        try:
            async for data in request.content.iter_any():
                self.unit.keep_talk(data)
                talk.feed(data)
        finally:
            talk.end()
        return _ok()

    # -- PTZ ------------------------------------------------------------------------------------

    async def _ptz(self, request: web.Request) -> web.Response:
        params = await _params(request)
        params.pop("camera", None)
        query = params.pop("query", None)
        if query is not None:
            return self._ptz_query(query)
        if not params:
            return _bad_request()
        try:
            if "speed" in params:
                self._ptz_speed(params.pop("speed"))
            for name, value in params.items():
                self._ptz_command(name, value)
        except ValueError as exc:
            return _bad_request(str(exc))
        return _no_content()

    def _ptz_query(self, query: str) -> web.Response:
        if query == "position":
            pan, tilt, zoom = _vendor_position(self.state.ptz.position())
            return _text_reply(f"pan={pan:.4f}\r\ntilt={tilt:.4f}\r\nzoom={zoom:.0f}\r\n")
        if query == "speed":
            return _text_reply(f"speed={self.unit.speed}\r\n")
        if query == "presetposall":
            lines = [f"presetposno{n}={p.name}\r\n" for n, p in sorted(self.unit.presets.items())]
            return _text_reply("".join(lines))
        return _bad_request()

    def _require(self, kind: str) -> None:
        if not self.unit.supports(kind):
            raise ValueError(f"{kind} is not supported")

    def _ptz_speed(self, raw: str) -> None:
        self._require("SpeedCtl")
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ValueError(f"invalid speed '{raw}'")
        self.unit.speed = int(raw)

    def _ptz_command(self, name: str, value: str) -> None:
        ptz = self.state.ptz
        here = ptz.position()
        if name == "continuouspantiltmove":
            self._require("ContinuousPan")
            pan, tilt = (_velocity(v) for v in _pair(value))
            ptz.move(PtzVector(pan, tilt, ptz.velocity.zoom))
        elif name == "continuouszoommove":
            self._require("ContinuousZoom")
            ptz.move(PtzVector(ptz.velocity.pan, ptz.velocity.tilt, _velocity(value)))
        elif name in ("pan", "tilt", "zoom"):
            self._require(f"Absolute{name.capitalize()}")
            ptz.go_to(self._absolute_target(here, name, value))
        elif name in ("rpan", "rtilt", "rzoom"):
            self._require(f"Relative{name[1:].capitalize()}")
            ptz.step(_relative_step(name, value))
        elif name == "move":
            self._move(value)
        elif name in ("gotoserverpresetno", "gotoserverpresetname"):
            self._require("ServerPreset")
            ptz.go_to(self._find_preset(name.removeprefix("gotoserverpreset"), value).position)
        else:
            raise ValueError(f"unknown parameter '{name}'")

    def _absolute_target(self, here: PtzVector, axis: str, raw: str) -> PtzVector:
        value = _number(raw)
        limits = {"pan": _PAN_LIMITS, "tilt": _TILT_LIMITS, "zoom": _ZOOM_LIMITS}[axis]
        clamped = min(limits[1], max(limits[0], value))
        if axis == "zoom":
            return dataclasses.replace(here, zoom=_to_norm(clamped, limits, 0.0))
        if not -180.0 <= value <= 180.0:
            raise ValueError(f"{axis} out of range")
        return dataclasses.replace(here, **{axis: _to_norm(clamped, limits)})

    def _move(self, value: str) -> None:
        ptz = self.state.ptz
        if value == "stop":
            ptz.stop()
            return
        if value == "home":
            if self.unit.home is None or self.unit.home not in self.unit.presets:
                raise ValueError("no home position set")
            ptz.go_to(self.unit.presets[self.unit.home].position)
            return
        directions = {"up": (0, 1), "down": (0, -1), "left": (-1, 0), "right": (1, 0),
                      "upleft": (-1, 1), "upright": (1, 1), "downleft": (-1, -1),
                      "downright": (1, -1)}  # fmt: skip
        if value not in directions:
            raise ValueError(f"invalid move '{value}'")
        dx, dy = directions[value]
        ptz.step(
            PtzVector(
                dx * STEP_DEGREES * 2 / (_PAN_LIMITS[1] - _PAN_LIMITS[0]),
                dy * STEP_DEGREES * 2 / (_TILT_LIMITS[1] - _TILT_LIMITS[0]),
            )
        )

    def _find_preset(self, by: str, value: str) -> StoredPreset:
        if by == "no":
            preset = self.unit.presets.get(int(value)) if value.isdigit() else None
        else:
            preset = next((p for p in self.unit.presets.values() if p.name == value), None)
        if preset is None:
            raise ValueError(f"no preset '{value}'")
        return preset

    async def _ptz_config(self, request: web.Request) -> web.Response:
        params = await _params(request)
        params.pop("camera", None)
        try:
            self._require("ServerPreset")
            if "removeserverpresetno" in params or "removeserverpresetname" in params:
                self._remove_preset(params)
            elif "setserverpresetname" in params or "setserverpresetno" in params:
                self._store_preset(params)
            else:
                raise ValueError("no preset command")
        except ValueError as exc:
            return _bad_request(str(exc))
        return _no_content()

    def _store_preset(self, params: Mapping[str, str]) -> None:
        presets = self.unit.presets
        name = params.get("setserverpresetname")
        raw_number = params.get("setserverpresetno")
        if raw_number is not None:
            if not raw_number.isdigit() or not 1 <= int(raw_number) <= self.unit.max_presets():
                raise ValueError(f"invalid preset number '{raw_number}'")
            number = int(raw_number)
        else:
            named = [n for n, p in presets.items() if p.name == name]
            free = [n for n in range(1, self.unit.max_presets() + 1) if n not in presets]
            if not named and not free:
                raise ValueError("all preset positions are in use")
            number = named[0] if named else free[0]
        if name is None or not name.strip():
            name = f"Preset {number}"
        # Names are unique: storing under a taken name moves it to this slot.
        for other in [n for n, p in presets.items() if p.name == name and n != number]:
            del presets[other]
        presets[number] = StoredPreset(name, self.state.ptz.position())
        if params.get("home") == "yes":
            self.unit.home = number

    def _remove_preset(self, params: Mapping[str, str]) -> None:
        by = "no" if "removeserverpresetno" in params else "name"
        value = params[f"removeserverpreset{by}"]
        preset = self._find_preset(by, value)
        number = next(n for n, p in self.unit.presets.items() if p is preset)
        del self.unit.presets[number]
        if self.unit.home == number:
            self.unit.home = None

    # -- motion and I/O ------------------------------------------------------------------------

    async def _motion(self, request: web.Request) -> web.StreamResponse:
        params = await _params(request)
        windows = [n for n, w in sorted(self.unit.motion_windows.items())
                   if w["WindowType"] == "include"]  # fmt: skip
        if "group" in params:
            wanted = _ports_list(",".join(_groups(params["group"])), windows)
            if wanted is None:
                return _bad_request()
            windows = wanted
        if not windows:
            return _no_content()

        async def levels() -> AsyncIterator[bytes]:
            version = self.state.version
            while True:
                level = self.state.motion_level if self.state.motion_active else 0
                records = "".join(
                    f"group={n};level={level};"
                    f"threshold={self.unit.motion_windows[n]['ObjectSize']};\r\n"
                    for n in windows
                    if n in self.unit.motion_windows
                )
                yield records.encode()
                version = await self.state.wait_changed(version, MOTION_PERIOD)

        content_type = f"multipart/x-mixed-replace;boundary={MOTION_BOUNDARY}"
        return await self._push(request, content_type, MOTION_BOUNDARY, TEXT, levels())

    def _io_ports(self, cgi: _IoCgi) -> dict[int, tuple[str, int]]:
        """Port number -> (input|output, index). port.cgi numbers inputs first, then outputs."""
        inputs = [("input", i) for i in range(len(self.state.inputs))]
        outputs = [("output", i) for i in range(len(self.state.relays))]
        ports = {"input": inputs, "output": outputs, "port": inputs + outputs}[cgi.name]
        return dict(enumerate(ports, start=1))

    def _io_state(self, port: tuple[str, int]) -> bool:
        kind, index = port
        return (self.state.inputs if kind == "input" else self.state.relays)[index]

    def _io_handler(self, cgi: _IoCgi) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            params = await _params(request)
            ports = self._io_ports(cgi)
            if cgi.actions and "action" in params:
                return await self._output_action(ports, params["action"])
            if cgi.monitor and "monitor" in params:
                return await self._io_monitor(request, ports, params["monitor"])
            queries: dict[str, Callable[[tuple[str, int]], str]] = {
                "check": lambda port: "1" if self._io_state(port) else "0",
                "checkactive": lambda port: "active" if self._io_state(port) else "inactive",
            }
            if cgi.directions:
                queries["checkdirection"] = lambda port: port[0]
            for query, describe in queries.items():
                if query in params:
                    numbers = _ports_list(params[query], ports)
                    if numbers is None:
                        return _bad_request()
                    lines = [f"{cgi.name}{n}={describe(ports[n])}\r\n" for n in numbers]
                    return _text_reply("".join(lines))
            return _bad_request()

        return handle

    async def _output_action(self, ports: Mapping[int, tuple[str, int]], raw: str) -> web.Response:
        parsed = _parse_output_action(raw)
        if parsed is None or parsed[0] not in ports or ports[parsed[0]][0] != "output":
            return _bad_request()
        number, steps = parsed
        index = ports[number][1]
        previous = self._output_programs.pop(index, None)
        if previous is not None:
            previous.cancel()
        # Leading actions happen before the reply; anything after a wait runs on its own.
        while steps and isinstance(steps[0], str):
            self.state.relays[index] = steps.pop(0) == "/"
        if steps:
            self._output_programs[index] = asyncio.create_task(self._run_output(index, steps))
        await self.state.notify()
        return _ok()

    async def _run_output(self, index: int, steps: list[str | int]) -> None:
        for step in steps:
            if isinstance(step, int):
                await asyncio.sleep(step / 1000)
            else:
                self.state.relays[index] = step == "/"
                await self.state.notify()

    async def _io_monitor(
        self, request: web.Request, ports: Mapping[int, tuple[str, int]], raw: str
    ) -> web.StreamResponse:
        numbers = _ports_list(raw, ports)
        if numbers is None:
            return _bad_request()

        async def checks() -> AsyncIterator[bytes]:
            version = self.state.version
            while True:
                # Port 1 is IO0; records end with a bare LF; blank lines pad the part.
                records = "".join(
                    f"IO{n - 1}:{_IO_CHARS[self._io_state(ports[n])]}\n" for n in numbers
                )
                yield f"{records}\r\n".encode()
                version = await self.state.wait_changed(version, IO_KEEPALIVE)

        content_type = f"multipart/x-mixed-replace; boundary={IO_BOUNDARY}"
        return await self._push(
            request, content_type, IO_BOUNDARY, TEXT, checks(), preamble=b"\r\n\r\n\r\n"
        )

    # -- network and storage -------------------------------------------------------------------

    async def _ipfilter(self, request: web.Request) -> web.Response:
        params = await _params(request)
        action = params.get("action")
        filt = self.unit.ip_filter
        addresses = params.get("ipaddress", "").split()
        if action == "list":
            return _text_reply(
                f"Accept addresses: {' '.join(filt.addresses)}\r\n"
                f"Enabled: {'yes' if filt.enabled else 'no'}\r\n"
            )
        if action == "add" and addresses:
            filt.addresses += [a for a in addresses if a not in filt.addresses]
        elif action == "remove" and addresses:
            filt.addresses = [a for a in filt.addresses if a not in addresses]
        elif action == "removeall":
            filt.addresses, filt.enabled = [], False
        elif action != "update":
            return _bad_request()
        if params.get("enable") in ("yes", "no"):
            filt.enabled = params["enable"] == "yes"
        if params.get("policy") in ("allow", "deny"):
            filt.policy = params["policy"]
        return _ok()

    async def _storage_list(self, request: web.Request) -> web.Response:
        params = await _params(request)
        if params.get("diskid") in ("SD_DISK", "all"):
            body = (
                '<?xml version="1.0" ?>\r\n<root>\r\n<disks numberofdisks="1">\r\n'
                '<disk diskid="SD_DISK" totalsize="124048" freesize="124032" '
                'cleanuplevel="95" cleanupmaxage="1" cleanuppolicy="none" locked="no" '
                'full="no" readonly="no" status="OK" />\r\n</disks>\r\n</root>\r\n'
            )
        elif params.get("recordingid") == "all":
            recordings = "".join(
                f'<recording recordingid="{start}.avi" diskid="SD_DISK" starttime="{start}" '
                f'date="{start[:8]}" recordingtype="scheduled">\r\n</recording>\r\n'
                for start in ("20090101_010101", "20090101_010201")
            )
            body = (
                '<?xml version="1.0" ?>\r\n<root>\r\n<recordings>\r\n'
                f"{recordings}</recordings>\r\n</root>\r\n"
            )
        else:
            return _bad_request()
        return web.Response(text=body, content_type="text/xml")


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"not a number: '{raw}'") from None


def _pair(raw: str) -> tuple[str, str]:
    first, sep, second = raw.partition(",")
    if not sep:
        raise ValueError(f"expected <pan>,<tilt>: '{raw}'")
    return first.strip(), second.strip()


def _velocity(raw: str) -> float:
    value = _number(raw)
    if not -100 <= value <= 100:
        raise ValueError(f"speed out of range -100..100: '{raw}'")
    return value / 100.0


def _relative_step(name: str, raw: str) -> PtzVector:
    value = _number(raw)
    if name == "rzoom":
        if not -9999 <= value <= 9999:
            raise ValueError("rzoom out of range")
        return PtzVector(zoom=value / (_ZOOM_LIMITS[1] - _ZOOM_LIMITS[0]))
    if not -360 <= value <= 360:
        raise ValueError(f"{name} out of range")
    limits = _PAN_LIMITS if name == "rpan" else _TILT_LIMITS
    norm = value * 2 / (limits[1] - limits[0])
    return PtzVector(pan=norm) if name == "rpan" else PtzVector(tilt=norm)
