"""An emulated IPCamCGI camera: a CAS-3xx pan/tilt unit as an OEM (TRENDnet TV-IP410) sells it.

It answers the way the family's document (IPCamCGI 1.2) says, with the quirks real units show:

- HTTP/1.0, ``Server: Camera Web Server/1.0``, Basic auth with the model as realm; missing or
  insufficient credentials both get 401 (the document has no 403). The configuration CGIs
  need the admin account; ``/iocontrol.cgi`` changes and ``/pantiltcontrol.cgi`` need a user
  with privilege 1; pictures and status are open to every user in ``/userlist.cgi``.
- Replies are ``Name=value`` CRLF lines as ``text/html``, except ``/iocontrol.cgi`` (one line,
  ``&``-joined, a space after ``=``) and ``/userlist.cgi`` (a space before ``=``). Settings go
  in the query or a form body (chapter 2.1); an unknown parameter or a value out of range is
  a ``400 Bad Request``; control CGIs answer ``204 No Content``.
- ``/isystem.cgi`` reports the MAC with spaces (``00 11 22 33 44 55``), as the document's
  example does; ``/system.cgi`` is the writable configuration (including the admin password,
  in clear, as the firmware serves it).
- ``/mjpeg.cgi`` sends ``--video boundary--`` parts whose ``Date:`` header carries
  ``IO_<8 digits>_PT_<pan>_<tilt>``: Trigger1, Trigger2, Image Upload, Image Email, then (in
  the document's "reserved" places) alarm input 1 and motion, then two zeros.
- Pan/tilt: single steps, go to position, presets 1..24 with names, home (pan 170, tilt 45),
  swing mode stored but not animated. Diagonal step codes are reserved and refused.

Vendor-native values live in :class:`IpCamCgiSettings`; the head position is kept normalized in
``self.state.ptz`` so the rendered picture follows it.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field

from aiohttp import web

from bridge.cameras.base import PtzGeometry, PtzVector
from bridge.simulator.core import (
    Presence,
    SimAuth,
    SimOptions,
    SimulatedCamera,
    stream_multipart,
)

MODEL = "TV-IP410"
FIRMWARE = "3.06 (2008-10-06)"
BOUNDARY = "--video boundary--"
PAN_RANGE, TILT_RANGE = 340, 135
HOME = (170, 45)  # pan centre, tilt level (the head tilts 45 degrees down, 90 up)
DEFAULT_STEP = 5  # degrees, when a single move omits its degree field
PRESET_SLOTS = 24
MAX_USERS = 20
RESOLUTIONS = ((160, 120), (320, 240), (640, 480))
FRAME_RATES = (1, 5, 7, 15, 20)  # FrameRate codes besides 0 (auto)
TEXT_HTML = "text/html"


class Level(enum.IntEnum):
    VIEWER = 0
    OPERATOR = 1  # UserPrivilege 1: pan/tilt, triggers, upload/e-mail
    ADMIN = 2


@dataclass
class StoredPreset:
    pan: int
    tilt: int
    name: str


@dataclass
class IpCamCgiSettings:
    """The camera's configuration in its own units, as its CGIs read and write it."""

    admin_id: str
    admin_password: str
    video_resolution: int
    frame_rate: int
    camera_name: str = "IPCAM"
    location: str = ""
    led_control: int = 0
    compression_rate: int = 2
    brightness: int = 64
    contrast: int = 64
    saturation: int = 64
    light_frequency: int = 0
    mirror: int = 0  # bit 0 horizontal, bit 1 vertical
    anti_flicker: int = 0
    date_time_mode: int = 1
    time_server: str = "pool.ntp.org"
    time_protocol: int = 0
    time_zone: int = 1  # hours; the firmware's own clock uses only this
    time_zone_index: int = 32  # Amsterdam, Berlin (GMT+01:00)
    image_upload: int = 0
    image_email: int = 0
    swing_mode: int = 0
    presets: dict[int, StoredPreset] = field(default_factory=dict)
    users: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> password, priv.


# -- parameter validation ------------------------------------------------------------------

Value = int | str | bool
Convert = Callable[[str], Value | None]  # the typed value, or None when invalid


def _int_in(low: int, high: int) -> Convert:
    def convert(raw: str) -> int | None:
        try:
            value = int(raw.strip())
        except ValueError:
            return None
        return value if low <= value <= high else None

    return convert


def _one_of(*choices: int) -> Convert:
    def convert(raw: str) -> int | None:
        value = _int_in(min(choices), max(choices))(raw)
        return value if value in choices else None

    return convert


def _text(max_length: int) -> Convert:
    return lambda raw: raw if len(raw) <= max_length else None


def _stamp(fmt: str) -> Convert:
    def convert(raw: str) -> str | None:
        try:
            datetime.datetime.strptime(raw.strip(), fmt)
        except ValueError:
            return None
        return raw.strip()

    return convert


def _yes_no(raw: str) -> bool | None:
    return {"yes": True, "no": False}.get(raw.strip().lower())


@dataclass(frozen=True)
class Setting:
    name: str  # the CGI parameter
    attr: str  # the IpCamCgiSettings attribute
    convert: Convert


_IMAGE = (
    Setting("VideoResolution", "video_resolution", _int_in(0, 2)),
    Setting("CompressionRate", "compression_rate", _int_in(0, 4)),
    Setting("FrameRate", "frame_rate", _one_of(0, *FRAME_RATES)),
    Setting("BrightnessControl", "brightness", _int_in(1, 128)),
    Setting("ContrastControl", "contrast", _int_in(1, 128)),
    Setting("SaturationControl", "saturation", _int_in(1, 128)),
    Setting("LightFrequency", "light_frequency", _int_in(0, 1)),
    Setting("Mirror", "mirror", _int_in(0, 3)),
    Setting("AntiFlickerEnable", "anti_flicker", _int_in(0, 1)),
)
_SYSTEM = (
    Setting("CameraName", "camera_name", _text(32)),
    Setting("Location", "location", _text(64)),
    Setting("AdminID", "admin_id", _text(12)),
    Setting("AdminPassword", "admin_password", _text(8)),
    Setting("LEDControl", "led_control", _int_in(0, 2)),
)
_DATETIME = (
    Setting("DateTimeMode", "date_time_mode", _int_in(0, 1)),
    Setting("TimeServerIPAddress", "time_server", _text(64)),
    Setting("TimeServerProtocol", "time_protocol", _int_in(0, 1)),
    Setting("TimeZone", "time_zone", _int_in(-12, 13)),
    Setting("TimeZoneIndex", "time_zone_index", _int_in(0, 84)),
)
_CLOCK = {"Date": _stamp("%Y-%m-%d"), "Time": _stamp("%H:%M:%S")}
_CONFIG_REBOOT = {"ConfigReboot": _yes_no}
_USER_ADD = {
    "UserName": _text(12),
    "UserPassword": _text(8),
    "UserPrivilege": _int_in(0, 1),
    "UserAdd": _yes_no,
}
_IO_FLAGS = (
    Setting("ImageUpload", "image_upload", _int_in(0, 1)),
    Setting("ImageEmail", "image_email", _int_in(0, 1)),
)
_TRIGGERS = {"Trigger1": _int_in(0, 1), "Trigger2": _int_in(0, 1)}  # state.relays


def _validate(
    params: Mapping[str, str], settings: Iterable[Setting], extra: Mapping[str, Convert]
) -> dict[str, Value] | None:
    """Each parameter's typed value (by attribute, or by name for ``extra``); None if any
    parameter is unknown or out of range, so a bad request changes nothing."""
    by_name = {s.name: s for s in settings}
    values: dict[str, Value] = {}
    for name, raw in params.items():
        setting = by_name.get(name)
        convert = setting.convert if setting else extra.get(name)
        value = convert(raw) if convert else None
        if value is None:
            return None
        values[setting.attr if setting else name] = value
    return values


def _reply(
    pairs: Iterable[tuple[str, object]], *, fmt: str = "{}={}", joiner: str = "\r\n"
) -> web.Response:
    text = joiner.join(fmt.format(name, value) for name, value in pairs) + "\r\n"
    return web.Response(body=text.encode(), headers={"Content-Type": TEXT_HTML})


def _status(code: int, text: str) -> web.Response:
    return web.Response(
        status=code, body=f"{code} {text}\r\n".encode(), headers={"Content-Type": TEXT_HTML}
    )


def _bad_request() -> web.Response:
    return _status(400, "Bad Request")


def _no_content() -> web.Response:
    return web.Response(status=204)


Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IpCamCgiSimulator(SimulatedCamera):
    dialect = "ipcamcgi"
    server_header = "Camera Web Server/1.0"
    realm = MODEL
    presence = Presence("TRENDnet", MODEL, ssdp=True)  # "UPnPEnable" in its network setup
    auth_scheme = SimAuth.BASIC
    http10 = True
    relay_count = 2  # Trigger1, Trigger2
    input_count = 1
    # The document's travel and a 45 x 34 degree picture (it moves in single steps only).
    head = PtzGeometry(PAN_RANGE, TILT_RANGE, (45.0, 34.0))

    def __init__(self, options: SimOptions | None = None) -> None:
        super().__init__(options)
        self.settings = self._factory_settings()
        self.state.ptz.go_to(self._to_position(*HOME))

    def _factory_settings(self) -> IpCamCgiSettings:
        options = self.options
        size = min(
            RESOLUTIONS, key=lambda wh: abs(wh[0] - options.width) + abs(wh[1] - options.height)
        )
        fps = round(options.fps)
        return IpCamCgiSettings(
            admin_id=options.username,
            admin_password=options.password,
            video_resolution=RESOLUTIONS.index(size),
            frame_rate=fps if fps in FRAME_RATES else 0,
        )

    # -- auth -------------------------------------------------------------------------------

    def password_of(self, username: str) -> str | None:
        if username == self.settings.admin_id:
            return self.settings.admin_password
        user = self.settings.users.get(username)
        return user[0] if user else None

    def _level(self, request: web.Request) -> Level | None:
        user = self.authenticate(request)
        if user is None:
            return None
        if user == self.settings.admin_id:
            return Level.ADMIN
        return Level(self.settings.users[user][1])

    def _guard(self, level: Level, handler: Handler) -> RouteHandler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            granted = self._level(request)
            if granted is None or granted < level:
                return self.unauthorized(request)
            params = dict(request.query)
            if request.method == "POST":
                params.update({k: str(v) for k, v in (await request.post()).items()})
            return await handler(request, params)

        return guarded

    def routes(self) -> Iterable[web.RouteDef]:
        table: tuple[tuple[str, Level, Handler, tuple[str, ...]], ...] = (
            ("/cgiversion.cgi", Level.ADMIN, self._cgi_version, ("GET",)),
            ("/isystem.cgi", Level.ADMIN, self._system_info, ("GET",)),
            ("/system.cgi", Level.ADMIN, self._system, ("GET", "POST")),
            ("/datetime.cgi", Level.ADMIN, self._datetime, ("GET", "POST")),
            ("/image.cgi", Level.ADMIN, self._image, ("GET", "POST")),
            ("/userlist.cgi", Level.ADMIN, self._userlist, ("GET", "POST")),
            ("/reset.cgi", Level.ADMIN, self._reset, ("GET", "POST")),
            ("/image.jpg", Level.VIEWER, self._snapshot, ("GET",)),
            ("/mjpeg.cgi", Level.VIEWER, self._mjpeg, ("GET",)),
            ("/iocontrol.cgi", Level.VIEWER, self._iocontrol, ("GET", "POST")),
            ("/pantiltcontrol.cgi", Level.OPERATOR, self._pantilt, ("GET", "POST")),
        )
        return [
            web.route(method, path, self._guard(level, handler))
            for path, level, handler, methods in table
            for method in methods
        ]

    # -- clock and position in vendor units -----------------------------------------------

    def local_now(self) -> datetime.datetime:
        utc = self.state.now().replace(tzinfo=None)
        return utc + datetime.timedelta(hours=self.settings.time_zone)

    @staticmethod
    def _to_position(pan: int, tilt: int) -> PtzVector:
        return PtzVector(pan * 2.0 / PAN_RANGE - 1.0, tilt * 2.0 / TILT_RANGE - 1.0)

    def vendor_position(self) -> tuple[int, int]:
        here = self.state.ptz.position()
        return round((here.pan + 1.0) * PAN_RANGE / 2), round((here.tilt + 1.0) * TILT_RANGE / 2)

    def _sync_picture(self) -> None:
        self.state.mirror = bool(self.settings.mirror & 1)
        self.state.flip = bool(self.settings.mirror & 2)

    def date_line(self) -> str:
        """The per-frame ``Date:`` value: camera time, IO digits, pan/tilt."""
        state, settings = self.state, self.settings
        flags = (
            *state.relays,
            settings.image_upload,
            settings.image_email,
            *state.inputs,
            state.motion_active,
        )
        io = "".join("1" if flag else "0" for flag in flags).ljust(8, "0")
        pan, tilt = self.vendor_position()
        return f"{self.local_now():%Y-%m-%d %H:%M:%S} IO_{io}_PT_{pan:03d}_{tilt:03d}"

    # -- configuration CGIs -----------------------------------------------------------------

    async def _cgi_version(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _bad_request() if params else _reply([("CGIVersion", 2)])

    async def _system_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if params:
            return _bad_request()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        mac = self.options.mac.replace(":", " ").replace("-", " ").upper()
        return _reply(
            [
                ("CameraName", self.settings.camera_name),
                ("Location", self.settings.location),
                ("Model", MODEL),
                ("FirmwareVersion", FIRMWARE),
                ("MACAddress", mac),
                ("IPAddress", sockname[0] if sockname else "192.168.0.20"),
                ("EthernetLink", "Yes"),
                ("EthernetSpeed", "100M bps"),
                ("EthernetDuplex", "Full Duplex"),
            ]
        )

    def _update(
        self, params: Mapping[str, str], settings: Iterable[Setting], extra: Mapping[str, Convert]
    ) -> dict[str, Value] | None:
        """Apply a settings request; returns the ``extra`` parameters' values, or None (and
        changes nothing) for a bad request."""
        values = _validate(params, settings, extra)
        if values is None:
            return None
        extras = {name: values.pop(name) for name in list(values) if name in extra}
        for attr, value in values.items():
            setattr(self.settings, attr, value)
        if extras.pop("ConfigReboot", False):
            self.state.reboots += 1
        return extras

    def _settings_reply(self, settings: Iterable[Setting]) -> web.Response:
        return _reply((s.name, getattr(self.settings, s.attr)) for s in settings)

    async def _configure(
        self, params: dict[str, str], settings: tuple[Setting, ...]
    ) -> web.Response:
        if self._update(params, settings, _CONFIG_REBOOT) is None:
            return _bad_request()
        return self._settings_reply(settings)

    async def _system(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return await self._configure(params, _SYSTEM)

    async def _image(self, request: web.Request, params: dict[str, str]) -> web.Response:
        response = await self._configure(params, _IMAGE)
        self._sync_picture()
        return response

    async def _datetime(self, request: web.Request, params: dict[str, str]) -> web.Response:
        clock = self._update(params, _DATETIME, {**_CONFIG_REBOOT, **_CLOCK})
        if clock is None:
            return _bad_request()
        if clock:
            local = self.local_now()
            date = clock.get("Date", f"{local:%Y-%m-%d}")
            time_of_day = clock.get("Time", f"{local:%H:%M:%S}")
            wanted = datetime.datetime.strptime(f"{date} {time_of_day}", "%Y-%m-%d %H:%M:%S")
            utc = wanted - datetime.timedelta(hours=self.settings.time_zone)
            self.state.set_clock(utc.replace(tzinfo=datetime.UTC))
        s, local = self.settings, self.local_now()
        return _reply(
            [
                ("DateTimeMode", s.date_time_mode),
                ("TimeServerIPAddress", s.time_server),
                ("TimeServerProtocol", s.time_protocol),
                ("TimeZone", f"{s.time_zone:+d}" if s.time_zone else "0"),
                ("TimeZoneIndex", s.time_zone_index),
                ("Date", f"{local:%Y-%m-%d}"),
                ("Time", f"{local:%H:%M:%S}"),
            ]
        )

    def _add_user(self, params: dict[str, str]) -> bool:
        values = _validate(params, (), _USER_ADD)
        if values is None or _USER_ADD.keys() != values.keys() or not values["UserName"]:
            return False
        name = str(values["UserName"])
        if name == self.settings.admin_id or len(self.settings.users) >= MAX_USERS:
            return False
        self.settings.users[name] = (str(values["UserPassword"]), int(values["UserPrivilege"]))
        return True

    def _delete_user(self, params: dict[str, str]) -> bool:
        if params.keys() != {"UserName", "UserDelete"}:
            return False
        return self.settings.users.pop(params["UserName"], None) is not None

    async def _userlist(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if params.get("UserAdd", "").lower() == "yes":
            done = self._add_user(params)
        elif params.get("UserDelete", "").lower() == "yes":
            done = self._delete_user(params)
        else:
            done = not params
        if not done:
            return _bad_request()
        records = [
            pair
            for user, (password, privilege) in self.settings.users.items()
            for pair in (
                ("UserName", user),
                ("UserPassword", password),
                ("UserPrivilege", privilege),
            )
        ]
        return _reply(records, fmt="{} ={}")

    async def _reset(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if params == {"Reset": "Yes"}:
            self.state.reboots += 1
        elif params == {"FactoryReset": "Yes"}:
            self.factory_reset()
        else:
            return _bad_request()
        return _no_content()

    def factory_reset(self) -> None:
        self.settings = self._factory_settings()
        self.state.factory_resets += 1
        self.state.relays = [False] * self.relay_count
        self.state.ptz.go_to(self._to_position(*HOME))
        self._sync_picture()

    # -- streaming ----------------------------------------------------------------------------

    async def _snapshot(self, request: web.Request, params: dict[str, str]) -> web.Response:
        jpeg = await self.video.snapshot()
        return web.Response(body=jpeg, headers={"Content-Type": "image/jpeg"})

    async def _mjpeg_parts(self) -> AsyncGenerator[bytes, None]:
        async for jpeg in self.video.frames():
            head = (
                f"{BOUNDARY}\r\n"
                f"Content-Length: {len(jpeg)}\r\n"
                f"Date: {self.date_line()}\r\n"
                "Content-Type: image/jpeg\r\n\r\n"
            )
            yield head.encode() + jpeg + b"\r\n\r\n"

    async def _mjpeg(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async with aclosing(self._mjpeg_parts()) as parts:
            return await stream_multipart(
                request,
                f"multipart/x-mixed-replace;boundary={BOUNDARY}",
                parts,
                headers={"MIME-version": "1.0", "Cache-Control": "no-cache"},
            )

    # -- control CGIs -------------------------------------------------------------------------

    async def _iocontrol(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        state, settings = self.state, self.settings
        if not params:
            return _reply(
                [
                    ("Trigger1", int(state.relays[0])),
                    ("Trigger2", int(state.relays[1])),
                    ("ImageUpload", settings.image_upload),
                    ("ImageEmail", settings.image_email),
                    ("CurrentTime", f"{self.local_now():%Y-%m-%d %H:%M:%S}"),
                ],
                fmt="{}= {}",
                joiner="&",
            )
        level = self._level(request)
        if level is None or level < Level.OPERATOR:
            return self.unauthorized(request)
        triggers = self._update(params, _IO_FLAGS, _TRIGGERS)
        if triggers is None:
            return _bad_request()
        for name, value in triggers.items():
            state.relays[int(name.removeprefix("Trigger")) - 1] = bool(value)
        await state.notify()
        return _no_content()

    async def _pantilt(self, request: web.Request, params: dict[str, str]) -> web.Response:
        commands = [name for name in _PT_COMMANDS if name in params]
        if len(commands) != 1:
            return _bad_request()
        allowed, run = _PT_COMMANDS[commands[0]]
        values = _validate(params, (), allowed)
        if values is None or not run(self, values):
            return _bad_request()
        return _no_content()

    # Each pan/tilt command takes validated values and returns False to refuse them.

    def _single_move(self, values: dict[str, Value]) -> bool:
        code = int(values["PanTiltSingleMove"])
        if code == 4:
            self.state.ptz.go_to(self._to_position(*HOME))
            return True
        pan_deg = int(values.get("PanSingleMoveDegree", DEFAULT_STEP))
        tilt_deg = int(values.get("TiltSingleMoveDegree", DEFAULT_STEP))
        steps = {1: (0, tilt_deg), 3: (-pan_deg, 0), 5: (pan_deg, 0), 7: (0, -tilt_deg)}
        if code not in steps:
            return False  # 0, 2, 6, 8: reserved (no diagonal steps)
        dpan, dtilt = steps[code]
        self.state.ptz.step(PtzVector(dpan * 2.0 / PAN_RANGE, dtilt * 2.0 / TILT_RANGE))
        return True

    def _goto_preset(self, values: dict[str, Value]) -> bool:
        slot = int(values["PanTiltPresetPositionMove"])
        preset = self.settings.presets.get(slot)
        if slot == 0:
            self.state.ptz.go_to(self._to_position(*HOME))
        elif preset is None:
            return False
        else:
            self.state.ptz.go_to(self._to_position(preset.pan, preset.tilt))
        return True

    def _set_preset(self, values: dict[str, Value]) -> bool:
        if not _POSITION.keys() <= values.keys():
            return False
        self.settings.presets[int(values["SetPosition"])] = StoredPreset(
            int(values["PanTiltHorizontal"]),
            int(values["PanTiltVertical"]),
            str(values.get("SetName", "")),
        )
        return True

    def _clear_preset(self, values: dict[str, Value]) -> bool:
        return self.settings.presets.pop(int(values["ClearPosition"]), None) is not None

    def _swing(self, values: dict[str, Value]) -> bool:
        self.settings.swing_mode = int(values["PanTiltSwingMode"])
        return True

    def _move_to(self, values: dict[str, Value]) -> bool:
        if not _POSITION.keys() <= values.keys():
            return False
        pan, tilt = int(values["PanTiltHorizontal"]), int(values["PanTiltVertical"])
        self.state.ptz.go_to(self._to_position(pan, tilt))
        return True


PanTiltAction = Callable[[IpCamCgiSimulator, dict[str, Value]], bool]
_POSITION: dict[str, Convert] = {
    "PanTiltHorizontal": _int_in(0, PAN_RANGE),
    "PanTiltVertical": _int_in(0, TILT_RANGE),
}
# The parameter naming a pan/tilt command -> (parameters it accepts, action).
_PT_COMMANDS: dict[str, tuple[dict[str, Convert], PanTiltAction]] = {
    "PanTiltSingleMove": (
        {
            "PanTiltSingleMove": _int_in(0, 8),
            "PanSingleMoveDegree": _int_in(1, 10),
            "TiltSingleMoveDegree": _int_in(1, 10),
        },
        IpCamCgiSimulator._single_move,
    ),
    "PanTiltPresetPositionMove": (
        {"PanTiltPresetPositionMove": _int_in(0, PRESET_SLOTS)},
        IpCamCgiSimulator._goto_preset,
    ),
    "SetPosition": (
        {**_POSITION, "SetPosition": _int_in(1, PRESET_SLOTS), "SetName": _text(12)},
        IpCamCgiSimulator._set_preset,
    ),
    "ClearPosition": (
        {"ClearPosition": _int_in(1, PRESET_SLOTS)},
        IpCamCgiSimulator._clear_preset,
    ),
    "PanTiltSwingMode": (
        {"PanTiltSwingMode": _one_of(0, 2)},  # 1 is reserved
        IpCamCgiSimulator._swing,
    ),
    "PanTiltPositionMove": (
        {**_POSITION, "PanTiltPositionMove": lambda raw: raw if raw == "true" else None},
        IpCamCgiSimulator._move_to,
    ),
}
