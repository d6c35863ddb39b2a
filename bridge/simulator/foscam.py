"""An emulated Foscam FI89xx-style MJPEG camera (Netwave firmware, "IP Camera CGI V1.2x").

What it reproduces of the real units, beyond the document:

- ``Server: Netwave IP Camera``; 401 answers with ``Basic realm="ipcamera_<id>"`` and the
  firmware's HTML page; credentials as ``user=&pwd=`` query parameters or Basic auth.
- A user table of visitor/operator/administrator accounts; a CGI above the caller's level
  answers 401 like a wrong password (the firmware makes no 403 distinction).
- Unknown paths answer 404 before any authentication, as the firmware's file server does.
- ``get_status.cgi`` needs no credentials (the document lists its permission as N/A).
- Answers are ``var name=value;`` lines (strings in single quotes), ``ok`` or ``error: ...``.
- The built-in pan/tilt motor: ``command=1`` stops every direction while 3/5/7 (the RS-485
  decoder's "stop down/left/right") do nothing, and left/right are swapped against the
  document (4 pans right, 6 pans left). Presets are set with 30+2n and recalled with 31+2n.
- ``videostream.cgi`` pushes JPEGs with ``boundary=ipcamera``; ``videostream.asf`` is a live ASF
  stream of MJPEG video and 8 kHz IMA ADPCM audio from the microphone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from bridge.cameras.base import AudioCodec, PtzGeometry, PtzVector
from bridge.simulator.core import (
    AudioHub,
    FrameHub,
    SimAuth,
    SimOptions,
    SimulatedCamera,
    jpeg_part,
    stream_multipart,
)
from bridge.simulator.media import AsfMuxer, ToneEncoder

# The FI8918W head turns 300 degrees across and 120 degrees up/down; normalized -1..1 spans it.
PAN_DEGREES_PER_UNIT = 300.0 / 2
TILT_DEGREES_PER_UNIT = 120.0 / 2
ONESTEP_DEFAULT_DEGREES = 5  # a click on the web page's arrow with "one step" ticked

RESOLUTIONS: dict[int, tuple[int, int]] = {2: (160, 120), 8: (320, 240), 32: (640, 480)}
# videostream rate codes the document lists, as frames per second (0 = as fast as it can).
RATE_FPS: dict[int, float] = {
    1: 20.0,
    3: 15.0,
    6: 10.0,
    11: 5.0,
    12: 4.0,
    13: 3.0,
    14: 2.0,
    15: 1.0,
    17: 1 / 2,
    19: 1 / 3,
    21: 1 / 4,
    23: 1 / 5,
}
MAX_RATE = 23

VISITOR, OPERATOR, ADMINISTRATOR = 0, 1, 2  # the user table's (get_params) numbering
USER_SLOTS = 8

PRESET_SLOTS = 16
_SET_PRESET_BASE = 30  # set = 30 + 2n, go to = 31 + 2n
_STOP = 1
_CENTER = 25
_STOP_PATROLS = (27, 29)
_IO_HIGH, _IO_LOW = 94, 95
_MAX_COMMAND = 255
# Internal motor directions as (pan, tilt) velocities; 4/6 as the real units move, not as the
# document's table says.
_MOTOR_DIRECTIONS: dict[int, tuple[int, int]] = {
    0: (0, 1),
    2: (0, -1),
    4: (1, 0),
    6: (-1, 0),
    90: (-1, 1),
    91: (1, 1),
    92: (-1, -1),
    93: (1, -1),
}
_ONESTEP_COMMANDS = frozenset([0, 2, 4, 6])

ALARM_NONE, ALARM_MOTION, ALARM_INPUT = 0, 1, 2

_BOUNDARY = "ipcamera"
_TEXT = "text/plain"
_OK = "ok\r\n"
_ILLEGAL = "error: illegal param\r\n"
_HTML_PAGE = (
    "<HTML><HEAD><TITLE>{code} {title}</TITLE></HEAD>\n"
    '<BODY BGCOLOR="#cc9999"><H4>{code} {title}</H4>\n{text}\n</BODY></HTML>\n'
)
_INDEX = (
    "<html><head><title>IP Camera</title></head><body>"
    '<a href="videostream.cgi">video</a></body></html>\n'
)


@dataclass(frozen=True, slots=True)
class _Picture:
    hub: FrameHub
    width: int
    height: int
    fps: float


@dataclass
class FoscamUser:
    name: str = ""
    pwd: str = ""
    pri: int = VISITOR


@dataclass
class FoscamSettings:
    """The camera's own parameter tree, in vendor units (what get_params.cgi lists)."""

    alias: str = "FoscamSim"
    tz: int = 0
    daylight_saving_time: int = 0
    ntp_enable: int = 0
    ntp_svr: str = "time.nist.gov"
    users: list[FoscamUser] = field(default_factory=list)
    resolution: int = 32
    brightness: int = 128
    contrast: int = 4
    mode: int = 0
    flip: int = 0
    alarm_motion_armed: int = 1
    alarm_motion_sensitivity: int = 5
    alarm_input_armed: int = 1
    alarm_ioin_level: int = 1
    alarm_ioout_level: int = 1
    decoder_baud: int = 12
    presets: dict[int, PtzVector] = field(default_factory=dict)  # slot n (0-based) -> position

    @classmethod
    def factory(cls, options: SimOptions) -> FoscamSettings:
        """Factory state; the configured account stands for the factory administrator."""
        users = [FoscamUser(options.username, options.password, ADMINISTRATOR)]
        users += [FoscamUser() for _ in range(USER_SLOTS - 1)]
        native = [code for code, size in RESOLUTIONS.items() if size == _size(options)]
        return cls(users=users, resolution=native[0] if native else 32)


def _size(options: SimOptions) -> tuple[int, int]:
    return options.width, options.height


def _js(value: str | int) -> str:
    """A value as the firmware writes it into a ``var`` line."""
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _vars(values: Iterable[tuple[str, str | int]]) -> web.Response:
    text = "".join(f"var {name}={_js(value)};\r\n" for name, value in values)
    return web.Response(text=text, content_type=_TEXT)


def _text(body: str) -> web.Response:
    return web.Response(text=body, content_type=_TEXT)


def _html(status: int, title: str, text: str) -> web.Response:
    body = _HTML_PAGE.format(code=status, title=title, text=text)
    return web.Response(status=status, text=body, content_type="text/html")


def _int_arg(request: web.Request, name: str, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]; None when absent or malformed."""
    raw = request.query.get(name, "").strip()
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if low <= value <= high else None


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FoscamSimulator(SimulatedCamera):
    dialect = "foscam"
    server_header = "Netwave IP Camera"
    realm = "ipcamera"  # the firmware appends "_<id>"
    auth_scheme = SimAuth.QUERY_OR_BASIC
    http10 = True
    relay_count = 1
    input_count = 1
    # An FI8918W: a 60 x 45 degree picture, one motor speed (75 / 30 degrees a second).
    head = PtzGeometry(
        PAN_DEGREES_PER_UNIT * 2,
        TILT_DEGREES_PER_UNIT * 2,
        (60.0, 45.0),
        pan_rate=75.0,
        tilt_rate=30.0,
    )

    sys_ver = "11.37.2.49"
    app_ver = "2.0.10.10"

    def __init__(self, options: SimOptions | None = None) -> None:
        super().__init__(options)
        self.device_id = self.options.mac.replace(":", "").replace("-", "").upper()
        self.settings = FoscamSettings.factory(self.options)
        self._native_resolution = self.settings.resolution
        self._hubs: dict[tuple[int, int], FrameHub] = {_size(self.options): self.video}
        self._alarm_seen = (False, False)  # (motion, input) as of the last test trigger
        self._last_alarm = ALARM_NONE
        # path -> (handler, least privilege); None = no credentials needed
        self._table: dict[str, tuple[Route, int | None]] = {
            "/": (self._index, None),
            "/index.htm": (self._index, None),
            "/get_status.cgi": (self._get_status, None),
            "/check_user.cgi": (self._check_user, VISITOR),
            "/snapshot.cgi": (self._snapshot, VISITOR),
            "/videostream.cgi": (self._videostream, VISITOR),
            "/videostream.asf": (self._videostream_asf, VISITOR),
            "/get_camera_params.cgi": (self._get_camera_params, VISITOR),
            "/decoder_control.cgi": (self._decoder_control, OPERATOR),
            "/camera_control.cgi": (self._camera_control, OPERATOR),
            "/get_params.cgi": (self._get_params, ADMINISTRATOR),
            "/set_datetime.cgi": (self._set_datetime, ADMINISTRATOR),
            "/reboot.cgi": (self._reboot, ADMINISTRATOR),
            "/restore_factory.cgi": (self._restore_factory, ADMINISTRATOR),
        }

    # -- auth ---------------------------------------------------------------------------------

    def routes(self) -> Iterable[web.RouteDef]:
        routes = [web.get(path, self._guarded(path)) for path in self._table]
        return [*routes, web.route("*", "/{tail:.*}", self._not_found)]

    def is_public(self, request: web.Request) -> bool:
        entry = self._table.get(request.path)
        # The firmware's file server says 404 before asking anyone for a password.
        return entry is None or entry[1] is None

    def password_of(self, username: str) -> str | None:
        user = self._user(username)
        return user.pwd if user is not None else None

    def unauthorized(self, request: web.Request) -> web.StreamResponse:
        response = _html(401, "Unauthorized", "Authorization required.")
        response.headers["WWW-Authenticate"] = f'Basic realm="{self.realm}_{self.device_id}"'
        return response

    def _user(self, name: str) -> FoscamUser | None:
        if not name:
            return None
        return next((u for u in self.settings.users if u.name == name), None)

    def _guarded(self, path: str) -> Route:
        handler, level = self._table[path]

        async def guarded(request: web.Request) -> web.StreamResponse:
            if level is not None:
                user = self._user(self.authenticate(request) or "")
                if user is None or user.pri < level:
                    return self.unauthorized(request)
            return await handler(request)

        return guarded

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return _html(404, "Not Found", "File not found.")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=_INDEX, content_type="text/html")

    # -- status and parameters ----------------------------------------------------------------

    def alarm_status(self) -> int:
        """What get_status.cgi says: one alarm at a time, the one raised last winning."""
        motion = self.state.motion_active and bool(self.settings.alarm_motion_armed)
        io_in = any(self.state.inputs) and bool(self.settings.alarm_input_armed)
        active = {ALARM_MOTION: motion, ALARM_INPUT: io_in}
        if active.get(self._last_alarm):
            return self._last_alarm
        return next((kind for kind, on in active.items() if on), ALARM_NONE)

    async def on_motion_or_input(self) -> None:
        seen = (self.state.motion_active, any(self.state.inputs))
        if seen[0] and not self._alarm_seen[0]:
            self._last_alarm = ALARM_MOTION
        if seen[1] and not self._alarm_seen[1]:
            self._last_alarm = ALARM_INPUT
        self._alarm_seen = seen

    def _system_vars(self) -> list[tuple[str, str | int]]:
        s = self.settings
        return [
            ("id", self.device_id),
            ("sys_ver", self.sys_ver),
            ("app_ver", self.app_ver),
            ("alias", s.alias),
            ("now", int(self.state.now().timestamp())),
            ("tz", s.tz),
        ]

    async def _get_status(self, request: web.Request) -> web.StreamResponse:
        return _vars(
            [
                *self._system_vars(),
                ("alarm_status", self.alarm_status()),
                ("ddns_status", 0),
                ("ddns_host", ""),
                ("oray_type", 0),
                ("upnp_status", 0),
                ("msn_status", 0),
                ("wifi_status", 0),
            ]
        )

    async def _check_user(self, request: web.Request) -> web.StreamResponse:
        user = self._user(self.authenticate(request) or "")
        if user is None:
            return self.unauthorized(request)
        # check_user counts 1..3 where the user table counts 0..2.
        return _vars([("user", user.name), ("pwd", user.pwd), ("pri", user.pri + 1)])

    async def _get_camera_params(self, request: web.Request) -> web.StreamResponse:
        s = self.settings
        return _vars(
            [
                ("resolution", s.resolution),
                ("brightness", s.brightness),
                ("contrast", s.contrast),
                ("mode", s.mode),
                ("flip", s.flip),
            ]
        )

    async def _get_params(self, request: web.Request) -> web.StreamResponse:
        s = self.settings
        users: list[tuple[str, str | int]] = []
        for number, user in enumerate(s.users, start=1):
            users += [
                (f"user{number}_name", user.name),
                (f"user{number}_pwd", user.pwd),
                (f"user{number}_pri", user.pri),
            ]
        return _vars(
            [
                *self._system_vars(),
                ("daylight_saving_time", s.daylight_saving_time),
                ("ntp_enable", s.ntp_enable),
                ("ntp_svr", s.ntp_svr),
                *users,
                ("ip", "127.0.0.1"),
                ("mask", "255.0.0.0"),
                ("gateway", "0.0.0.0"),
                ("dns", "0.0.0.0"),
                ("port", request.url.port or 80),
                ("wifi_enable", 0),
                ("upnp_enable", 0),
                ("ddns_service", 0),
                ("alarm_motion_armed", s.alarm_motion_armed),
                ("alarm_motion_sensitivity", s.alarm_motion_sensitivity),
                ("alarm_motion_compensation", 0),
                ("alarm_input_armed", s.alarm_input_armed),
                ("alarm_ioin_level", s.alarm_ioin_level),
                ("alarm_iolinkage", 0),
                ("alarm_preset", 0),
                ("alarm_ioout_level", s.alarm_ioout_level),
                ("alarm_mail", 0),
                ("alarm_upload_interval", 0),
                ("alarm_http", 0),
                ("alarm_http_url", ""),
                ("alarm_schedule_enable", 0),
                ("decoder_baud", s.decoder_baud),
            ]
        )

    # -- media --------------------------------------------------------------------------------

    def _hub(self, resolution: int) -> _Picture:
        """The picture at a resolution code; the configured size stands for the factory code."""
        if resolution == self._native_resolution:
            width, height = _size(self.options)
        else:
            width, height = RESOLUTIONS[resolution]
        hub = self._hubs.get((width, height))
        if hub is None:
            hub = FrameHub(
                dataclasses.replace(self.options, width=width, height=height), self.state
            )
            self._hubs[width, height] = hub
        return _Picture(hub, width, height, self.options.fps)

    def _stream_choice(self, request: web.Request) -> _Picture | None:
        """The picture and frame rate a stream request asks for; None when malformed."""
        resolution = self.settings.resolution
        if "resolution" in request.query:
            code = _int_arg(request, "resolution", 0, max(RESOLUTIONS))
            if code not in RESOLUTIONS:
                return None
            resolution = code
        picture = self._hub(resolution)
        if "rate" in request.query:
            rate = _int_arg(request, "rate", 0, MAX_RATE)
            if rate is None:
                return None
            # Codes between the listed ones run at the listed rate below them in the table.
            listed = [fps for code, fps in RATE_FPS.items() if code <= rate]
            if listed:
                picture = dataclasses.replace(picture, fps=min(picture.fps, listed[-1]))
        return picture

    async def _paced(self, picture: _Picture) -> AsyncIterator[bytes]:
        """The hub's frames thinned to the picture's rate (the hub renders at the configured
        rate)."""
        interval = 1.0 / picture.fps
        slack = 0.5 / self.options.fps
        due = 0.0
        async with _closing(picture.hub.frames()) as frames:
            async for frame in frames:
                now = time.monotonic()
                if now + slack >= due:
                    # Keep to the rate's grid, but never owe a burst after a stall.
                    due = max(due, now - slack) + interval
                    yield frame

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        jpeg = await self._hub(self.settings.resolution).hub.snapshot()
        stamp = self.state.now().strftime("%Y%m%d%H%M%S")
        name = request.query.get("next_url") or (
            f"{self.device_id}({self.settings.alias})_{stamp}.jpg"
        )
        return web.Response(
            body=jpeg,
            content_type="image/jpeg",
            headers={"Content-Disposition": f'filename="{name}"', "Cache-Control": "no-cache"},
        )

    async def _mjpeg_parts(self, picture: _Picture) -> AsyncIterator[bytes]:
        async with _closing(self._paced(picture)) as frames:
            async for jpeg in frames:
                yield jpeg_part(_BOUNDARY, jpeg)

    async def _videostream(self, request: web.Request) -> web.StreamResponse:
        choice = self._stream_choice(request)
        if choice is None:
            return _text(_ILLEGAL)
        async with _closing(self._mjpeg_parts(choice)) as parts:
            return await stream_multipart(
                request,
                f"multipart/x-mixed-replace;boundary={_BOUNDARY}",
                parts,
                headers=self._stream_headers(),
            )

    async def _asf_bytes(self, picture: _Picture) -> AsyncIterator[bytes]:
        muxer = AsfMuxer(picture.width, picture.height, picture.fps)
        microphone = AudioHub(AudioCodec.IMA_ADPCM, chunk_seconds=0.1)
        start = time.monotonic()
        audio_seconds = 0.0  # audio is stamped by the samples sent, so it never overlaps
        async with (
            _closing(self._paced(picture)) as video,
            _closing(microphone.chunks()) as sound,
            _closing(_interleave(video, sound)) as media,
        ):
            async for is_video, payload in media:
                if is_video:
                    out = muxer.add_video(payload, time.monotonic() - start)
                elif payload:
                    out = muxer.add_audio(payload, audio_seconds)
                    audio_seconds += len(payload) / _ima_bytes_per_second()
                else:
                    continue
                if out:
                    yield out

    async def _videostream_asf(self, request: web.Request) -> web.StreamResponse:
        choice = self._stream_choice(request)
        if choice is None:
            return _text(_ILLEGAL)
        async with _closing(self._asf_bytes(choice)) as stream:
            return await stream_multipart(
                request, "video/x-ms-asf", stream, headers=self._stream_headers()
            )

    def _stream_headers(self) -> dict[str, str]:
        # A streamed reply is sent before the core middleware could stamp its Server header.
        return {"Server": self.server_header, "Cache-Control": "no-cache"}

    # -- pan/tilt -----------------------------------------------------------------------------

    async def _decoder_control(self, request: web.Request) -> web.StreamResponse:
        command = _int_arg(request, "command", 0, _MAX_COMMAND)
        if command is None:
            return _text(_ILLEGAL)
        ptz = self.state.ptz
        direction = _MOTOR_DIRECTIONS.get(command)
        if direction is not None:
            if request.query.get("onestep") == "1" and command in _ONESTEP_COMMANDS:
                degrees = ONESTEP_DEFAULT_DEGREES
                if "degree" in request.query:
                    given = _int_arg(request, "degree", 1, 360)
                    if given is None:
                        return _text(_ILLEGAL)
                    degrees = given
                pan, tilt = direction
                ptz.step(
                    PtzVector(
                        pan * degrees / PAN_DEGREES_PER_UNIT, tilt * degrees / TILT_DEGREES_PER_UNIT
                    )
                )
            else:
                ptz.move(PtzVector(float(direction[0]), float(direction[1])))
        elif command == _STOP or command in _STOP_PATROLS:
            ptz.stop()
        elif command == _CENTER:
            ptz.go_to(PtzVector())
        elif _SET_PRESET_BASE <= command < _SET_PRESET_BASE + 2 * PRESET_SLOTS:
            slot, goto = divmod(command - _SET_PRESET_BASE, 2)
            if goto:
                stored = self.settings.presets.get(slot)
                if stored is not None:
                    ptz.go_to(stored)
            else:
                self.settings.presets[slot] = ptz.position()
        elif command in (_IO_HIGH, _IO_LOW):
            self.state.relays[0] = command == _IO_HIGH
            await self.state.notify()
        # Patrols (26/28) are accepted but not animated here. Everything else (3/5/7, zoom,
        # focus, iris, switches) is for an RS-485 decoder this unit does not have: accepted,
        # nothing moves.
        return _text(_OK)

    # -- image --------------------------------------------------------------------------------

    async def _camera_control(self, request: web.Request) -> web.StreamResponse:
        param = _int_arg(request, "param", 0, 5)
        s = self.settings
        if param == 0:
            value = _int_arg(request, "value", 0, max(RESOLUTIONS))
            if value not in RESOLUTIONS:
                return _text(_ILLEGAL)
            s.resolution = value
        elif param in _CAMERA_PARAM_RANGES:
            name, high = _CAMERA_PARAM_RANGES[param]
            value = _int_arg(request, "value", 0, high)
            if value is None:
                return _text(_ILLEGAL)
            setattr(s, name, value)
            self._apply_flip()
        else:
            return _text(_ILLEGAL)
        return _text(_OK)

    def _apply_flip(self) -> None:
        # flip bit 0 turns the picture upside down, bit 1 mirrors it left-right.
        self.state.flip = bool(self.settings.flip & 1)
        self.state.mirror = bool(self.settings.flip & 2)

    # -- system -------------------------------------------------------------------------------

    async def _set_datetime(self, request: web.Request) -> web.StreamResponse:
        s = self.settings
        numbers: dict[str, int] = {}
        for name, low, high in _DATETIME_ARGS:
            if name in request.query:
                value = _int_arg(request, name, low, high)
                if value is None:
                    return _text(_ILLEGAL)
                numbers[name] = value
        ntp_svr = request.query.get("ntp_svr")
        if ntp_svr is not None and len(ntp_svr) > 64:
            return _text(_ILLEGAL)
        s.tz = numbers.get("tz", s.tz)
        s.daylight_saving_time = numbers.get("daylight_saving_time", s.daylight_saving_time)
        s.ntp_enable = numbers.get("ntp_enable", s.ntp_enable)
        s.ntp_svr = s.ntp_svr if ntp_svr is None else ntp_svr
        if "now" in numbers:
            self.state.set_clock(datetime.datetime.fromtimestamp(numbers["now"], datetime.UTC))
        return _text(_OK)

    async def _reboot(self, request: web.Request) -> web.StreamResponse:
        self.state.reboots += 1
        self.state.ptz.go_to(PtzVector())  # the head recalibrates to centre on power-up
        return _text(_OK)

    async def _restore_factory(self, request: web.Request) -> web.StreamResponse:
        self.settings = FoscamSettings.factory(self.options)
        self.state.factory_resets += 1
        self.state.relays = [False] * self.relay_count
        self._apply_flip()
        return _text(_OK)

    def build_app(self) -> web.Application:
        app = super().build_app()

        async def close_extra_hubs(_: web.Application) -> None:
            for hub in self._hubs.values():
                if hub is not self.video:
                    await hub.close()

        app.on_cleanup.append(close_extra_hubs)
        return app


# camera_control.cgi param -> (setting, highest value); resolution (0) is checked on its own.
_CAMERA_PARAM_RANGES: dict[int, tuple[str, int]] = {
    1: ("brightness", 255),
    2: ("contrast", 6),
    3: ("mode", 2),
    5: ("flip", 3),
}
_DATETIME_ARGS = (
    ("now", 0, 2**32 - 1),
    ("tz", -12 * 3600, 13 * 3600),
    ("daylight_saving_time", 0, 7200),
    ("ntp_enable", 0, 1),
)


@functools.cache
def _ima_bytes_per_second() -> float:
    return ToneEncoder(AudioCodec.IMA_ADPCM).bytes_per_second


_T = TypeVar("_T")


@asynccontextmanager
async def _closing(source: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close a live source (an async generator) when the block ends, not whenever the garbage
    collector gets to it: a FrameHub subscription or a stream task must not outlive its client."""
    try:
        yield source
    finally:
        if isinstance(source, AsyncGenerator):
            await source.aclose()


async def _interleave(
    video: AsyncIterator[bytes], audio: AsyncIterator[bytes]
) -> AsyncIterator[tuple[bool, bytes]]:
    """(is_video, payload) from two live sources in arrival order, one pending item each."""
    sources = {True: video, False: audio}
    pending: dict[asyncio.Future[bytes], bool] = {}
    try:
        for is_video, source in sources.items():
            pending[asyncio.ensure_future(anext(source))] = is_video
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                is_video = pending.pop(task)
                try:
                    payload = task.result()
                except StopAsyncIteration:
                    continue
                pending[asyncio.ensure_future(anext(sources[is_video]))] = is_video
                yield is_video, payload
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
