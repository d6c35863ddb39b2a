"""Driver for Foscam FI89xx-style MJPEG cameras and their clones (Netwave firmware).

The dialect ("IP Camera CGI V1.2x") answers ``var name=value;`` lines, ``ok`` or
``error: ...``. Credentials go either in the query (``user=&pwd=``) or as Basic auth; the
firmware accepts both on every CGI. This driver uses whatever the :class:`CameraHttp` it is given
does: with ``AuthScheme.AUTO`` it learns Basic from the first 401 (``realm="ipcamera_<id>"``),
which keeps passwords out of request lines; ``AuthScheme.QUERY`` works as well, for units behind
proxies that strip ``Authorization``.

Accounts are visitor, operator or administrator. The firmware answers a CGI above the caller's
level with the same 401 as a wrong password; the driver reads the caller's level from
``check_user.cgi`` on connect, so such a 401 becomes :class:`PermissionDenied`.

Pan/tilt is the built-in motor: one fixed speed, no position feedback, no zoom, presets it
stores but cannot list. Continuous moves map to the eight direction commands; relative moves
use ``onestep=1&degree=N``; absolute moves centre the head (the one position it knows) and
step from there. What the gateway knows beyond that (where the head is, preset names) is its
PTZ owner's (:mod:`bridge.ptz`), not this driver's. Real units
differ from the document in ways this driver follows: ``command=1`` is the stop for every
direction, 4 pans right and 6 pans left, presets are set with 30+2n and recalled with 31+2n.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from bridge.cameras.asf import AsfObject, AsfParser, SkippedPacket, StreamKind, WaveFormat
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
from bridge.cameras.fields import normalize_mac, parse_int, printable
from bridge.cameras.http import CameraHttp, Params
from bridge.cameras.mjpeg import fetch_jpeg, mjpeg_frames, usable_jpeg
from bridge.errors import (
    AuthenticationFailed,
    BadResponse,
    EndpointNotFound,
    PermissionDenied,
    ProtocolError,
    UnsupportedOperation,
)
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

MANUFACTURER = "Foscam"
MODEL = "IP Camera"  # what the firmware calls itself; no CGI reports a model name

# get_camera_params.cgi / camera_control.cgi resolution codes
RESOLUTIONS: dict[int, tuple[int, int]] = {2: (160, 120), 8: (320, 240), 32: (640, 480)}
BRIGHTNESS_MAX = 255
CONTRAST_MAX = 6
_FLIP_VERTICAL, _FLIP_HORIZONTAL = 1, 2  # bits of the "flip" value

# camera_control.cgi param numbers
PARAM_BRIGHTNESS, PARAM_CONTRAST, PARAM_FLIP = 1, 2, 5

# The FI8918W head turns 300 degrees across and 120 degrees up/down: normalized -1..1 spans it.
PAN_DEGREES_PER_UNIT = 300.0 / 2
TILT_DEGREES_PER_UNIT = 120.0 / 2
PRESET_SLOTS = 16
# The FI8918W: a 60 x 45 degree picture, and its one motor speed (pan 75, tilt 30 degrees/s).
PTZ_GEOMETRY = PtzGeometry(
    pan_degrees=PAN_DEGREES_PER_UNIT * 2,
    tilt_degrees=TILT_DEGREES_PER_UNIT * 2,
    fov=(60.0, 45.0),
    pan_rate=75.0,
    tilt_rate=30.0,
)

# Audio inside videostream.asf: 8 kHz mono IMA ADPCM in 256-byte blocks (505 samples each).
IMA_BLOCK_ALIGN = 256
AUDIO_FORMAT = AudioFormat(AudioCodec.IMA_ADPCM, 8000, 1, block_align=IMA_BLOCK_ALIGN)

DEFAULT_POLL_INTERVAL = 1.0
_ERROR_ECHO = 80  # characters of a camera's error text quoted in exceptions
_BYTE = 255  # the CGIs' numeric settings and states are bytes
_MAX_TZ_SECONDS = 14 * 3600
_LAST_TIMESTAMP = 253_402_300_799  # 9999-12-31 23:59:59 UTC, the last second datetime holds
_MIN_RATE, _MAX_RATE, _MAX_CHANNELS = 8000, 48000, 2  # what ASF audio of a camera can be


class Privilege(enum.IntEnum):
    """check_user.cgi's ``pri`` (get_params.cgi numbers the same levels 0..2)."""

    VISITOR = 1
    OPERATOR = 2
    ADMINISTRATOR = 3


class Command(enum.IntEnum):
    """decoder_control.cgi commands of the built-in pan/tilt motor, as real units obey them."""

    UP = 0
    STOP = 1  # stops every direction; 3/5/7 only reach an external RS-485 decoder
    DOWN = 2
    RIGHT = 4  # the document says "left"
    LEFT = 6  # the document says "right"
    CENTER = 25
    SET_PRESET = 30  # + 2n, n = slot from 0
    GOTO_PRESET = 31  # + 2n
    UP_LEFT = 90
    UP_RIGHT = 91
    DOWN_LEFT = 92
    DOWN_RIGHT = 93
    IO_HIGH = 94
    IO_LOW = 95


class Alarm(enum.IntEnum):
    """get_status.cgi ``alarm_status``: one alarm at a time."""

    NONE = 0
    MOTION = 1
    INPUT = 2
    SOUND = 3


RELAY_TOKEN = "1"
INPUT_TOKEN = "1"

# Counter-clockwise from +pan, one per 45 degrees of the velocity's direction.
_OCTANTS = (
    Command.RIGHT,
    Command.UP_RIGHT,
    Command.UP,
    Command.UP_LEFT,
    Command.LEFT,
    Command.DOWN_LEFT,
    Command.DOWN,
    Command.DOWN_RIGHT,
)

# -- parsing and formatting (no I/O) ------------------------------------------------------------

_VAR = re.compile(
    r"""(?:\bvar\s+)?\b(?P<name>[A-Za-z_]\w*(?:\[\d+\])?)\s*=\s*
        (?:'(?P<single>(?:[^'\\]|\\.)*)'|"(?P<double>(?:[^"\\]|\\.)*)"|(?P<bare>[^;\r\n]*?))
        \s*(?:;|$)""",
    re.VERBOSE | re.MULTILINE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_RAW_BREAK = re.compile(r"[ \t]*\r?\n[ \t]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


def parse_vars(text: str) -> dict[str, str]:
    """``var name=value;`` assignments (and ``name[i]=value;`` array items) as text.

    Quotes may be single or double and strings may be wrapped over lines; a missing final
    ``;`` or junk between assignments is tolerated. A name given twice keeps its last value,
    as a browser evaluating the reply would.
    """
    values: dict[str, str] = {}
    for match in _VAR.finditer(text):
        quoted = match.group("single")
        if quoted is None:
            quoted = match.group("double")
        if quoted is not None:
            # Firmware escapes its line breaks; a raw one is a wrapped line, as in the document.
            quoted = _RAW_BREAK.sub(" ", quoted)
            value = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), quoted)
        else:
            value = match.group("bare").strip()
        values[match.group("name")] = value
    return values


@dataclass(frozen=True, slots=True)
class FoscamStatus:
    """What get_status.cgi reports (strings "" and numbers None when missing)."""

    id: str
    sys_ver: str
    app_ver: str
    alias: str
    now: datetime.datetime | None
    tz: int | None  # seconds, as the firmware stores its time zone
    alarm_status: int | None


def parse_status(text: str) -> FoscamStatus:
    """get_status.cgi's reply; ValueError when it is not one."""
    values = parse_vars(text)
    if "id" not in values or "sys_ver" not in values:
        raise ValueError("not a get_status.cgi reply (no id/sys_ver)")
    # "now" counts seconds since 1970-01-01 00:00 UTC; tz only says how to show it.
    seconds = parse_int(values.get("now"), 0, _LAST_TIMESTAMP)
    now = None if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return FoscamStatus(
        id=values["id"].strip(),
        sys_ver=values["sys_ver"].strip(),
        app_ver=values.get("app_ver", "").strip(),
        alias=values.get("alias", ""),
        now=now,
        tz=parse_int(values.get("tz"), -_MAX_TZ_SECONDS, _MAX_TZ_SECONDS),
        alarm_status=parse_int(values.get("alarm_status"), 0, _BYTE),
    )


def device_info_from_status(status: FoscamStatus) -> DeviceInfo:
    mac = normalize_mac(status.id)  # these units use their MAC as their id
    # sys_ver is <oem>.<board>.<major>.<build>; the first two name the hardware.
    fields = status.sys_ver.split(".")
    hardware = ".".join(fields[:2]) if len(fields) == 4 else ""
    return DeviceInfo(
        manufacturer=MANUFACTURER,
        model=MODEL,
        firmware=status.sys_ver,
        serial=status.id or mac,
        mac=mac,
        hardware_id=hardware,
    )


def looks_like_status(text: str) -> bool:
    try:
        status = parse_status(text)
    except ValueError:
        return False
    return bool(status.id) and bool(status.sys_ver)


def parse_privilege(text: str) -> Privilege | None:
    """check_user.cgi's ``pri``; None when missing. The reply also echoes the password,
    which is dropped here."""
    level = parse_int(parse_vars(text).get("pri"), 0, _BYTE)
    if level == 0:  # the user table's 0..2 numbering, seen on some clones
        return Privilege.VISITOR
    try:
        return Privilege(level) if level is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CameraParams:
    """get_camera_params.cgi in vendor units (None where missing)."""

    resolution: int | None
    brightness: int | None
    contrast: int | None
    mode: int | None
    flip: int | None


def parse_camera_params(text: str) -> CameraParams:
    values = parse_vars(text)
    fields = ("resolution", "brightness", "contrast", "mode", "flip")
    numbers = [parse_int(values.get(name), 0, _BYTE) for name in fields]
    if all(number is None for number in numbers):
        raise ValueError("not a get_camera_params.cgi reply")
    return CameraParams(*numbers)


def _to_percent(value: int | None, high: int) -> float | None:
    if value is None:
        return None
    return min(100.0, max(0.0, value * 100.0 / high))


def _from_percent(value: float, high: int) -> int:
    return round(min(100.0, max(0.0, value)) * high / 100.0)


def imaging_from_params(params: CameraParams) -> ImagingSettings:
    flip = params.flip
    return ImagingSettings(
        brightness=_to_percent(params.brightness, BRIGHTNESS_MAX),
        contrast=_to_percent(params.contrast, CONTRAST_MAX),
        mirror=None if flip is None else bool(flip & _FLIP_HORIZONTAL),
        flip=None if flip is None else bool(flip & _FLIP_VERTICAL),
    )


def imaging_fields(params: CameraParams) -> frozenset[ImagingField]:
    present = {
        ImagingField.BRIGHTNESS: params.brightness,
        ImagingField.CONTRAST: params.contrast,
        ImagingField.MIRROR: params.flip,
        ImagingField.FLIP: params.flip,
    }
    return frozenset(name for name, value in present.items() if value is not None)


def camera_control_params(settings: ImagingSettings, current_flip: int) -> list[tuple[int, int]]:
    """(param, value) pairs for camera_control.cgi; mirror and flip share one value, so the
    one not being changed keeps its bit from ``current_flip``."""
    changes: list[tuple[int, int]] = []
    if settings.brightness is not None:
        changes.append((PARAM_BRIGHTNESS, _from_percent(settings.brightness, BRIGHTNESS_MAX)))
    if settings.contrast is not None:
        changes.append((PARAM_CONTRAST, _from_percent(settings.contrast, CONTRAST_MAX)))
    if settings.mirror is not None or settings.flip is not None:
        flip = current_flip
        for wanted, bit in ((settings.flip, _FLIP_VERTICAL), (settings.mirror, _FLIP_HORIZONTAL)):
            if wanted is not None:
                flip = flip | bit if wanted else flip & ~bit
        changes.append((PARAM_FLIP, flip))
    return changes


def check_ok(text: str) -> None:
    """Accept a control CGI's ``ok``; ValueError with the camera's words otherwise."""
    answer = text.strip()
    if answer.lower().rstrip(".") == "ok":
        return
    if not answer:
        raise ValueError("empty reply")
    raise ValueError(printable(answer.splitlines()[0], _ERROR_ECHO))


def direction_command(pan: float, tilt: float) -> Command:
    """The motor command nearest to a velocity's direction (its size cannot be honoured)."""
    if pan == 0 and tilt == 0:
        return Command.STOP
    return _OCTANTS[round(math.atan2(tilt, pan) / (math.pi / 4)) % len(_OCTANTS)]


def onestep_moves(translation: PtzVector) -> tuple[list[tuple[Command, int]], PtzVector]:
    """The ``onestep`` (command, whole degrees) moves for a pan/tilt translation, pan first,
    and the translation they actually make after rounding to degrees."""
    moves: list[tuple[Command, int]] = []
    made = {"pan": 0.0, "tilt": 0.0}
    axes = (
        ("pan", translation.pan, PAN_DEGREES_PER_UNIT, Command.RIGHT, Command.LEFT),
        ("tilt", translation.tilt, TILT_DEGREES_PER_UNIT, Command.UP, Command.DOWN),
    )
    for axis, amount, per_unit, positive, negative in axes:
        degrees = round(abs(amount) * per_unit)
        if degrees:
            moves.append((positive if amount > 0 else negative, degrees))
            made[axis] = math.copysign(degrees / per_unit, amount)
    return moves, PtzVector(made["pan"], made["tilt"])


def preset_slot(token: str) -> int:
    """Slot n (0-based) of a preset token "1".."16" (the web page's numbering)."""
    number = parse_int(token, 1, PRESET_SLOTS)
    if number is None:
        raise ValueError(f"preset token must be 1..{PRESET_SLOTS}")
    return number - 1


def alarm_flags(alarm_status: int | None) -> tuple[bool, bool]:
    """(motion, input) active according to ``alarm_status``."""
    return alarm_status == Alarm.MOTION, alarm_status == Alarm.INPUT


def alarm_events(
    before: tuple[bool, bool], after: tuple[bool, bool], timestamp: float
) -> list[CameraEvent]:
    events = []
    if before[0] != after[0]:
        events.append(CameraEvent(EventKind.MOTION, after[0], timestamp))
    if before[1] != after[1]:
        events.append(CameraEvent(EventKind.DIGITAL_INPUT, after[1], timestamp, INPUT_TOKEN))
    return events


def parse_alarm_arming(text: str) -> tuple[bool | None, bool | None]:
    """(motion armed, input armed) from get_params.cgi; None where not reported."""
    values = parse_vars(text)
    motion = parse_int(values.get("alarm_motion_armed"), 0, _BYTE)
    io_in = parse_int(values.get("alarm_input_armed"), 0, _BYTE)
    return (None if motion is None else motion != 0, None if io_in is None else io_in != 0)


def ima_block_align(extradata: bytes | None, channels: int) -> int:
    """IMA ADPCM block size from the WAVEFORMATEX extra field (samples per block)."""
    if extradata is None or len(extradata) < 2:
        return IMA_BLOCK_ALIGN
    samples = int.from_bytes(extradata[:2], "little")
    return (samples - 1) * channels // 2 + 4 * channels if samples > 1 else IMA_BLOCK_ALIGN


# -- videostream.asf -----------------------------------------------------------------------------

_T = TypeVar("_T")
Media = JpegFrame | AudioChunk
# WAVEFORMATEX format tags of the audio codecs the gateway decodes.
_WAVE_CODECS = {0x0011: AudioCodec.IMA_ADPCM, 0x0007: AudioCodec.MULAW, 0x0045: AudioCodec.G726}


def asf_audio_format(wave: WaveFormat) -> AudioFormat | None:
    """How to decode an ASF audio stream; None for one the gateway cannot (video only then)."""
    codec = _WAVE_CODECS.get(wave.format_tag)
    if codec is None:
        return None
    channels = wave.channels or 1
    rate = wave.sample_rate or 8000
    if not (0 < channels <= _MAX_CHANNELS and _MIN_RATE <= rate <= _MAX_RATE):
        return None  # an ASF header no camera writes
    block_align = ima_block_align(wave.extra, channels) if codec is AudioCodec.IMA_ADPCM else 0
    bits = wave.bits_per_sample if codec is AudioCodec.G726 else 0
    return AudioFormat(codec, rate, channels, bits_per_sample=bits, block_align=block_align)


class _AsfMedia:
    """What each object of one videostream.asf becomes: a usable JPEG, audio the gateway can
    decode, or nothing (with a rate-limited line for damage)."""

    def __init__(self, camera: str) -> None:
        self._camera = camera
        self._formats: dict[int, AudioFormat | None] = {}
        self._dropped = ThrottledLog(log)

    def item(self, event: AsfObject | SkippedPacket, arrived: float) -> Media | None:
        if isinstance(event, SkippedPacket):
            self._dropped.log(
                logging.WARNING, "packet", "%s: skipping an ASF packet: %s", self._camera,
                event.reason,
            )  # fmt: skip
            return None
        stream, data = event
        if not data:
            return None
        if stream.kind is StreamKind.VIDEO:
            usable = usable_jpeg(data, self._camera, self._dropped)
            return JpegFrame(data, arrived) if usable else None
        if stream.wave is None:
            return None
        if stream.number not in self._formats:
            self._formats[stream.number] = asf_audio_format(stream.wave)
        audio_format = self._formats[stream.number]
        return AudioChunk(audio_format, data, arrived) if audio_format else None


# -- the driver ---------------------------------------------------------------------------------


class FoscamDriver(CameraDriver):
    dialect = Dialect.FOSCAM
    ptz_geometry = PTZ_GEOMETRY

    def __init__(self, http: CameraHttp, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        super().__init__(http)
        # Polling get_status.cgi is all the dialect offers for events; keep it gentle on the
        # camera's tiny CPU and never slower than every few seconds.
        self.poll_interval = min(5.0, max(0.05, poll_interval))
        self._privilege: Privilege | None = None
        self._input_armed: bool | None = None

    # -- identification -----------------------------------------------------------------------

    @classmethod
    def matches_fingerprint(cls, server: str, realm: str) -> bool:
        return "netwave" in server.lower() or realm.lower().startswith("ipcamera_")

    @classmethod
    async def detect(cls, http: CameraHttp) -> bool:
        try:
            text = await http.get_text("/get_status.cgi")
        except (EndpointNotFound, BadResponse):
            return False
        return looks_like_status(text)

    async def connect(self) -> DeviceInfo:
        info = await self.device_info()
        self._privilege = await self._read_privilege()
        try:
            params = await self._camera_params()
        except (EndpointNotFound, BadResponse) as exc:
            # Picture settings are optional: a unit that does not tell them is still a camera.
            log.info("%s", exc)  # exc names the camera
            params = CameraParams(None, None, None, None, None)
        motion_armed, self._input_armed = await self._alarm_arming()
        resolution = RESOLUTIONS.get(params.resolution) if params.resolution is not None else None
        self.capabilities = Capabilities(
            snapshot=True,
            video=True,
            resolution=resolution,
            audio_in=AUDIO_FORMAT,
            ptz=PtzCapabilities(
                continuous=True,
                relative=True,
                absolute=True,
                presets=PRESET_SLOTS,
                home=True,
            ),
            imaging=imaging_fields(params),
            relay_outputs=1,
            digital_inputs=1,
            # A disarmed alarm never shows in alarm_status; unknown arming (no admin) counts
            # as armed.
            motion_events=motion_armed is not False,
            input_events=self._input_armed is not False,
            get_datetime=True,
            set_datetime=True,
            reboot=True,
            factory_default=True,
        )
        log.debug(
            "%s: Foscam %s, privilege %s", self.http.display_name, info.firmware, self._privilege
        )
        return info

    async def device_info(self) -> DeviceInfo:
        return device_info_from_status(await self._status())

    # -- request helpers ----------------------------------------------------------------------

    def _bad(self, path: str, exc: ValueError) -> BadResponse:
        return BadResponse(f"unexpected reply to {path}: {exc}", camera=self.http.display_name)

    async def _text(
        self, path: str, params: Params | None = None, need: Privilege = Privilege.VISITOR
    ) -> str:
        """A CGI's reply text; a 401 for a user known to be below ``need`` is PermissionDenied."""
        try:
            return await self.http.get_text(path, params)
        except AuthenticationFailed as exc:
            known_low = self._privilege is not None and self._privilege < need
            if isinstance(exc, PermissionDenied) or not known_low:
                raise
            raise PermissionDenied(
                f"{path} needs {need.name.lower()} rights", camera=self.http.display_name
            ) from exc

    async def _parsed(
        self,
        path: str,
        parse: Callable[[str], _T],
        params: Params | None = None,
        need: Privilege = Privilege.VISITOR,
    ) -> _T:
        """A CGI's reply through a pure parser; its ValueError becomes BadResponse."""
        text = await self._text(path, params, need)
        try:
            return parse(text)
        except ValueError as exc:
            raise self._bad(path, exc) from exc

    async def _control(self, path: str, params: Params, need: Privilege) -> None:
        await self._parsed(path, check_ok, params, need)

    async def _decoder(self, command: int, **extra: int) -> None:
        await self._control(
            "/decoder_control.cgi", {"command": int(command), **extra}, Privilege.OPERATOR
        )

    async def _status(self) -> FoscamStatus:
        return await self._parsed("/get_status.cgi", parse_status)

    async def _camera_params(self) -> CameraParams:
        return await self._parsed("/get_camera_params.cgi", parse_camera_params)

    async def _read_privilege(self) -> Privilege | None:
        try:
            return parse_privilege(await self._text("/check_user.cgi"))
        except EndpointNotFound:
            return None  # firmware before x.x.2.2 has no check_user.cgi

    async def _alarm_arming(self) -> tuple[bool | None, bool | None]:
        if self._privilege is not None and self._privilege < Privilege.ADMINISTRATOR:
            return None, None  # get_params.cgi is for administrators only
        try:
            text = await self._text("/get_params.cgi", need=Privilege.ADMINISTRATOR)
        except (AuthenticationFailed, EndpointNotFound):
            return None, None
        return parse_alarm_arming(text)

    # -- media --------------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        return await fetch_jpeg(self.http, "/snapshot.cgi")

    def video_frames(self) -> AsyncGenerator[JpegFrame, None]:
        return mjpeg_frames(self.http, "/videostream.cgi")

    async def media(self) -> AsyncGenerator[Media, None]:
        """Video frames and microphone audio of ``videostream.asf``, in arrival order, over one
        upstream connection (for consumers that want both in step)."""
        camera = self.http.display_name
        parser = AsfParser()
        media = _AsfMedia(camera)
        async with self.http.stream("/videostream.asf") as reply:
            async for chunk in reply.chunks():
                arrived = time.monotonic()
                try:
                    events = parser.feed(chunk)
                except ProtocolError as exc:
                    raise BadResponse(
                        f"videostream.asf is not a readable ASF stream: {exc}", camera=camera
                    ) from exc
                for event in events:
                    item = media.item(event, arrived)
                    if item is not None:
                        yield item
        if not parser.started:
            raise BadResponse(
                "videostream.asf is not a readable ASF stream: it ended within its header",
                camera=camera,
            )

    async def audio_chunks(self) -> AsyncGenerator[AudioChunk, None]:
        async with aclosing(self.media()) as media:
            async for item in media:
                if isinstance(item, AudioChunk):
                    yield item

    # -- PTZ ----------------------------------------------------------------------------------

    def _no_zoom(self, zoom: float) -> None:
        if zoom:
            raise self._unsupported("zoom (the built-in head only pans and tilts)")

    async def continuous_move(self, velocity: PtzVector) -> None:
        self._no_zoom(velocity.zoom)
        await self._decoder(direction_command(velocity.pan, velocity.tilt))

    async def stop(self) -> None:
        await self._decoder(Command.STOP)

    async def relative_move(self, translation: PtzVector, speed: float | None = None) -> PtzVector:
        # The motor has one speed; ``speed`` cannot change it.
        self._no_zoom(translation.zoom)
        moves, made = onestep_moves(translation)
        for command, degrees in moves:
            await self._decoder(command, onestep=1, degree=degrees)
        return made

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        self._no_zoom(position.zoom)
        await self.goto_home()  # the only place the head knows: centre
        await self.relative_move(PtzVector(position.pan, position.tilt))

    async def goto_home(self) -> None:
        await self._decoder(Command.CENTER)

    def _slot(self, token: str) -> int:
        try:
            return preset_slot(token)
        except ValueError as exc:
            raise UnsupportedOperation(
                f"no preset {token[:16]!r}: {exc}", camera=self.http.display_name
            ) from exc

    async def presets(self) -> Sequence[Preset]:
        raise self._unsupported("list presets (it cannot say which slots hold one)")

    async def goto_preset(self, token: str) -> None:
        await self._decoder(Command.GOTO_PRESET + 2 * self._slot(token))

    async def set_preset(self, name: str, token: str | None = None) -> str:
        if token is None:
            raise self._unsupported("choose a free preset slot (it cannot list presets)")
        slot = self._slot(token)
        await self._decoder(Command.SET_PRESET + 2 * slot)
        return str(slot + 1)

    # -- imaging ------------------------------------------------------------------------------

    async def imaging(self) -> ImagingSettings:
        return imaging_from_params(await self._camera_params())

    async def set_imaging(self, settings: ImagingSettings) -> None:
        if settings.saturation is not None or settings.sharpness is not None:
            raise self._unsupported("set saturation or sharpness")
        current_flip = 0
        if settings.mirror is not None or settings.flip is not None:
            flip = (await self._camera_params()).flip
            if flip is None:
                raise BadResponse(
                    "get_camera_params.cgi does not report flip", camera=self.http.display_name
                )
            current_flip = flip
        for param, value in camera_control_params(settings, current_flip):
            await self._control(
                "/camera_control.cgi", {"param": param, "value": value}, Privilege.OPERATOR
            )

    # -- I/O and events -------------------------------------------------------------------------

    async def relay_outputs(self) -> Sequence[RelayOutput]:
        return [RelayOutput(RELAY_TOKEN, None)]  # the firmware never reports the output level

    async def set_relay(self, token: str, active: bool) -> None:
        if token != RELAY_TOKEN:
            raise UnsupportedOperation(
                f"no relay output {token[:16]!r}; this camera has {RELAY_TOKEN!r}",
                camera=self.http.display_name,
            )
        await self._decoder(Command.IO_HIGH if active else Command.IO_LOW)

    async def digital_inputs(self) -> Sequence[DigitalInput]:
        status = await self._status()
        _, active = alarm_flags(status.alarm_status)
        # A disarmed input alarm never shows in alarm_status: its level is then unknown.
        known = self._input_armed is not False and status.alarm_status is not None
        return [DigitalInput(INPUT_TOKEN, active if known else None)]

    async def events(self) -> AsyncGenerator[CameraEvent, None]:
        state = (False, False)
        while True:
            status = await self._status()
            now = alarm_flags(status.alarm_status)
            for event in alarm_events(state, now, time.monotonic()):
                yield event
            state = now
            await asyncio.sleep(self.poll_interval)

    # -- system -------------------------------------------------------------------------------

    async def get_datetime(self) -> datetime.datetime:
        status = await self._status()
        if status.now is None:
            raise BadResponse("get_status.cgi has no clock", camera=self.http.display_name)
        return status.now

    async def set_datetime(self, value: datetime.datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("set_datetime needs an aware datetime")
        await self._control(
            "/set_datetime.cgi", {"now": int(value.timestamp())}, Privilege.ADMINISTRATOR
        )

    async def reboot(self) -> None:
        await self._control("/reboot.cgi", {}, Privilege.ADMINISTRATOR)

    async def factory_default(self) -> None:
        await self._control("/restore_factory.cgi", {}, Privilege.ADMINISTRATOR)
