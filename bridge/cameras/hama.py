"""Driver for the ``hama`` dialect: HAMA's OEM of an Axis-like firmware (HAMA IP Camera CGI V1.1).

What the dialect offers, and how the driver fills the gaps:

- Identity and features come from ``/camera-cgi/admin/param.cgi?action=list&group=...`` in
  Axis ``name=value`` lines; the firmware prints some groups with the ``root.`` prefix and some
  without, and pads values with spaces, so both forms are read.
- Video is MJPEG server push (``/mjpg/video.mjpg``), snapshots ``/jpg/image.jpg``, audio raw
  GSM 06.10 frames (``/camera-cgi/audio/receive.cgi``). Talk is advertised by the unit but has no
  documented transmit CGI, so there is no audio out.
- PTZ has only single steps in eight directions plus ``center``. Continuous moves repeat a step
  until stopped (:mod:`bridge.cameras.stepping`), relative moves send a number of steps,
  absolute moves go to the centre and step from there. The camera cannot report its position
  or list its presets, so presets are listed from what this driver stored, and mirror/flip
  from what it last set.
- Settings go through the web UI's form handler (``/form/enet``), which answers with a redirect
  back to the page named in ``enet_source``.
- There are no picture controls besides mirror/flip, no I/O, no motion detection, no clock and no
  reboot CGI in the document: those stay unsupported.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import ClassVar

from bridge.cameras.base import (
    AudioChunk,
    AudioCodec,
    AudioFormat,
    CameraDriver,
    Capabilities,
    DeviceInfo,
    Dialect,
    ImagingField,
    ImagingSettings,
    JpegFrame,
    Preset,
    PtzCapabilities,
    PtzGeometry,
    PtzVector,
)
from bridge.cameras.fields import normalize_mac, parse_int, parse_resolution, printable
from bridge.cameras.http import CameraHttp, Params, StreamReply
from bridge.cameras.mjpeg import fetch_jpeg, mjpeg_frames
from bridge.cameras.stepping import SteppedMove
from bridge.errors import (
    BadResponse,
    CameraUnreachable,
    EndpointNotFound,
)

log = logging.getLogger(__name__)

PARAM_PATH = "/camera-cgi/admin/param.cgi"
PTZ_PATH = "/camera-cgi/com/ptz.cgi"
PTZ_CONFIG_PATH = "/camera-cgi/com/ptzconfig.cgi"
FORM_PATH = "/form/enet"
FORM_SOURCE = "cp.asp"  # the web page whose form the settings CGI pretends to come from
SNAPSHOT_PATH = "/jpg/image.jpg"
VIDEO_PATH = "/mjpg/video.mjpg"
AUDIO_PATH = "/camera-cgi/audio/receive.cgi"

GSM_FRAME_BYTES = 33
AUDIO_FORMAT = AudioFormat(AudioCodec.GSM, 8000)

# Groups read for DeviceInfo, and the extra ones connect() reads for Capabilities.
DEVICE_GROUPS = ("Brand", "Properties.Firmware", "Network.Interface.I0.Active.MACAddress")
CAPABILITY_GROUPS = ("Properties.Audio", "Properties.PTZ.PTZ", "Properties.Image")
RESOLUTION_GROUP = "Image.I0.Appearance"

# One move= step turns the head by this much of the normalized [-1, 1] range (about a tenth of
# the travel each side of centre on the family's pan/tilt heads).
STEP = 0.1
FULL_TRAVEL_STEPS = round(2 / STEP)  # end to end: more steps in one direction move nothing
# Continuous moves repeat a step this often at full velocity, less often at lower velocities.
FASTEST_STEP_INTERVAL = 0.25
SLOWEST_STEP_INTERVAL = 1.0
# A component this much smaller than the other one still counts (tan 22.5 degrees): velocities
# snap to the nearest of the eight step directions.
DIAGONAL_RATIO = math.tan(math.radians(22.5))
PRESET_SLOTS = 8
# enet_avs_pt_speed values from slowest to fastest.
PT_SPEED_LEVELS = (9, 7, 5, 3, 1)

_DIRECTIONS: dict[tuple[int, int], str] = {
    (-1, 0): "left",
    (1, 0): "right",
    (0, 1): "up",
    (0, -1): "down",
    (-1, 1): "upleft",
    (1, 1): "upright",
    (-1, -1): "downleft",
    (1, -1): "downright",
}
HOME_COMMAND = "center"

# The family's head, as far as its steps tell: 350 x 120 degrees of travel, a 50 x 38 degree
# picture, and a step repeated every FASTEST_STEP_INTERVAL at velocity 1.
PTZ_GEOMETRY = PtzGeometry(
    pan_degrees=350.0,
    tilt_degrees=120.0,
    fov=(50.0, 38.0),
    pan_rate=STEP / FASTEST_STEP_INTERVAL * 350.0 / 2,
    tilt_rate=STEP / FASTEST_STEP_INTERVAL * 120.0 / 2,
)
PTZ_CAPABILITIES = PtzCapabilities(
    continuous=True,
    relative=True,
    absolute=True,
    zoom=False,
    presets=PRESET_SLOTS,
    home=True,
    set_home=False,  # "center" is the mechanical centre; nothing moves it
    speed=True,
    position=False,
)
_PICTURE_CONTROLS = ("brightness", "contrast", "saturation", "sharpness")
_YES = frozenset({"yes", "1", "true", "on"})
_MAX_ERROR_TEXT = 200


# -- pure parsing and formatting ------------------------------------------------------------


def parse_params(text: str) -> dict[str, str]:
    """``name=value`` lines of a param.cgi listing, names without ``root.``, values trimmed.

    The firmware (and its manual) mixes prefixed and bare names, indents lines and pads values;
    names never contain spaces, so any inside one are line-wrap damage and are dropped. Error
    lines (``# Error: ...``) and anything without ``=`` are skipped.
    """
    params: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = "".join(name.split())
        if not sep or not name:
            continue
        params[name.removeprefix("root.")] = value.strip()
    return params


def command_error(text: str) -> str | None:
    """The firmware's error message when a CGI reply is one, else None."""
    for raw in text.splitlines():
        line = raw.strip()
        if line:
            bare = line.lstrip("#").strip()
            return printable(bare, _MAX_ERROR_TEXT) if bare.lower().startswith("error") else None
    return None


def _is_yes(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _YES


def device_info_from_params(params: Mapping[str, str]) -> DeviceInfo:
    """DeviceInfo from the Brand, Properties.Firmware and MAC groups; missing values are ""."""
    mac = normalize_mac(params.get("Network.Interface.I0.Active.MACAddress", ""))
    return DeviceInfo(
        manufacturer=params.get("Brand.Brand", ""),
        model=params.get("Brand.ProdShortName") or params.get("Brand.ProdFullName", ""),
        firmware=params.get("Properties.Firmware.Version", ""),
        serial=mac,  # the family has no serial number
        mac=mac,
        hardware_id=params.get("Brand.ProdNbr") or params.get("Properties.Firmware.ModelID", ""),
    )


def capabilities_from_params(params: Mapping[str, str]) -> Capabilities:
    """What the unit says it has: audio (GSM only), PTZ, flip mode, current MJPEG size."""
    codec = params.get("Properties.Audio.AudioCodec", "GSM 06.10")
    audio = _is_yes(params.get("Properties.Audio")) and "gsm" in codec.lower()
    flip = _is_yes(params.get("Properties.Image.FlipMode"))
    return Capabilities(
        resolution=parse_resolution(params.get("Image.I0.Appearance.Resolution", "")),
        audio_in=AUDIO_FORMAT if audio else None,
        audio_out=None,
        ptz=PTZ_CAPABILITIES if _is_yes(params.get("Properties.PTZ.PTZ")) else PtzCapabilities(),
        imaging=frozenset({ImagingField.MIRROR, ImagingField.FLIP}) if flip else frozenset(),
    )


def flip_mode_of(mirror: bool, flip: bool) -> int:
    """enet_avs_flip_mode: 0 normal, 1 vertical (flip), 2 horizontal (mirror), 3 both."""
    return (2 if mirror else 0) | (1 if flip else 0)


def pt_speed_of(speed: float) -> int:
    """enet_avs_pt_speed for a normalized speed in (0, 1]: 1 is fastest, 9 slowest."""
    if not 0.0 < speed <= 1.0:
        raise ValueError(f"PTZ speed must be in (0, 1], not {speed}")
    return PT_SPEED_LEVELS[round(speed * (len(PT_SPEED_LEVELS) - 1))]


async def _audio_bytes(reply: StreamReply) -> AsyncIterator[tuple[bytes, float]]:
    """Audio bytes with their arrival time: the document calls the reply a multipart stream
    but shows bare frames, so take either."""
    if reply.content_type.lower().startswith("multipart/"):
        async for part, arrived in reply.parts():
            yield part.body, arrived
    else:
        async for chunk in reply.chunks():
            yield chunk, time.monotonic()


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def direction_of(pan: float, tilt: float) -> str | None:
    """The step direction nearest to a pan/tilt velocity; None when it is zero."""
    largest = max(abs(pan), abs(tilt))
    if largest == 0:
        return None

    def axis(value: float) -> int:
        return _sign(value) if abs(value) >= largest * DIAGONAL_RATIO else 0

    return _DIRECTIONS[(axis(pan), axis(tilt))]


def step_count(value: float, *, nudge: bool = False) -> int:
    """Signed number of steps covering ``value`` (clamped to [-1, 1]) normalized units.

    With ``nudge`` a non-zero value moves at least one step, so small relative moves are not lost.
    """
    # Half a step rounds up; rounding the quotient first keeps 0.35 / 0.1 from being 3.4999...
    steps = math.floor(round(min(1.0, abs(value)) / STEP, 9) + 0.5)
    if nudge and value and not steps:
        steps = 1
    return _sign(value) * steps


def plan_steps(pan_steps: int, tilt_steps: int) -> list[str]:
    """Step commands covering a signed pan/tilt step count, diagonals first."""
    pan_sign, tilt_sign = _sign(pan_steps), _sign(tilt_steps)
    diagonal = min(abs(pan_steps), abs(tilt_steps))
    plan = [_DIRECTIONS[(pan_sign, tilt_sign)]] * diagonal if diagonal else []
    if abs(pan_steps) > diagonal:
        plan += [_DIRECTIONS[(pan_sign, 0)]] * (abs(pan_steps) - diagonal)
    if abs(tilt_steps) > diagonal:
        plan += [_DIRECTIONS[(0, tilt_sign)]] * (abs(tilt_steps) - diagonal)
    return plan


def step_interval(velocity: PtzVector) -> float:
    """Seconds between repeated steps for a continuous move at ``velocity``."""
    magnitude = min(1.0, max(abs(velocity.pan), abs(velocity.tilt)))
    return min(SLOWEST_STEP_INTERVAL, FASTEST_STEP_INTERVAL / magnitude)


# -- the driver -------------------------------------------------------------------------------


class HamaDriver(CameraDriver):
    dialect: ClassVar[Dialect] = Dialect.HAMA
    ptz_geometry = PTZ_GEOMETRY

    def __init__(self, http: CameraHttp) -> None:
        super().__init__(http)
        self._steps = SteppedMove(http.display_name)
        # The camera cannot read it back; it holds what this driver last wrote. (Nor can it
        # read its presets back: the gateway names them, bridge.ptz.PtzHead.)
        self._orientation = ImagingSettings()

    # -- identification -------------------------------------------------------------------

    @classmethod
    def matches_fingerprint(cls, server: str, realm: str) -> bool:
        # The family's GoAhead web server asks for the realm of its OEM's firmware.
        realm = realm.strip().lower()
        return realm == "internet camera" or "hama" in realm or "hama" in server.lower()

    @classmethod
    async def detect(cls, http: CameraHttp) -> bool:
        try:
            text = await http.get_text(PARAM_PATH, {"action": "list", "group": "Brand"})
        except (EndpointNotFound, BadResponse):
            return False
        return any(name.startswith("Brand.") for name in parse_params(text))

    async def _list(self, group: str) -> dict[str, str]:
        """One param group; empty when the unit does not have it."""
        text = await self.http.get_text(PARAM_PATH, {"action": "list", "group": group})
        return parse_params(text)

    async def _read_groups(self, groups: Sequence[str]) -> dict[str, str]:
        # One at a time: parallel first requests would all meet the 401 that teaches CameraHttp
        # the auth scheme, and only the one that learnt it would be retried.
        merged: dict[str, str] = {}
        for group in groups:
            merged.update(await self._list(group))
        if not merged:
            raise BadResponse("param.cgi listed no parameters", camera=self.http.display_name)
        return merged

    async def connect(self) -> DeviceInfo:
        params = await self._read_groups((*DEVICE_GROUPS, *CAPABILITY_GROUPS, RESOLUTION_GROUP))
        self.capabilities = capabilities_from_params(params)
        return device_info_from_params(params)

    async def device_info(self) -> DeviceInfo:
        return device_info_from_params(await self._read_groups(DEVICE_GROUPS))

    # -- media ----------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        return await fetch_jpeg(self.http, SNAPSHOT_PATH)

    def video_frames(self) -> AsyncIterator[JpegFrame]:
        return mjpeg_frames(self.http, VIDEO_PATH)

    async def audio_chunks(self) -> AsyncIterator[AudioChunk]:
        async with self.http.stream(AUDIO_PATH) as reply:
            if reply.content_type.lower().startswith("text/"):
                raise BadResponse(f"{AUDIO_PATH} sent text", camera=self.http.display_name)
            pending = bytearray()  # under one GSM frame between reads
            async for data, now in _audio_bytes(reply):
                pending += data
                whole = len(pending) - len(pending) % GSM_FRAME_BYTES
                if whole:
                    yield AudioChunk(AUDIO_FORMAT, bytes(pending[:whole]), now)
                    del pending[:whole]
        raise CameraUnreachable(f"{AUDIO_PATH} ended", camera=self.http.display_name)

    # -- commands -------------------------------------------------------------------------

    async def _command(self, path: str, params: Params) -> None:
        """A CGI that answers with nothing, an error text, or (forms) a redirect."""
        reply = await self.http.request(
            "GET", path, params=params, accept_status=frozenset({302, 303})
        )
        error = command_error(reply.text())
        if error is not None:
            raise BadResponse(f"{path}: {error}", camera=self.http.display_name)

    async def _set_form(self, **fields: int | str) -> None:
        await self._command(FORM_PATH, {"enet_source": FORM_SOURCE, **fields})

    # -- PTZ ------------------------------------------------------------------------------

    def _no_zoom(self, zoom: float) -> None:
        if zoom:
            raise self._unsupported("zoom")

    async def _step(self, direction: str) -> None:
        await self._command(PTZ_PATH, {"move": direction})

    async def _halt(self) -> None:
        """End a running continuous move (every new move replaces it)."""
        await self._steps.stop()

    async def close(self) -> None:
        await self._halt()

    async def continuous_move(self, velocity: PtzVector) -> None:
        self._no_zoom(velocity.zoom)
        await self._halt()
        direction = direction_of(velocity.pan, velocity.tilt)
        if direction is None:
            return  # a zero velocity is a stop
        await self._steps.start(
            partial(self._step, direction), step_interval(velocity), FULL_TRAVEL_STEPS
        )

    async def stop(self) -> None:
        await self._halt()

    async def _walk(self, pan_steps: int, tilt_steps: int, speed: float | None) -> None:
        if speed is not None:
            await self.set_ptz_speed(speed)
        for direction in plan_steps(pan_steps, tilt_steps):
            await self._step(direction)

    async def relative_move(self, translation: PtzVector, speed: float | None = None) -> PtzVector:
        self._no_zoom(translation.zoom)
        await self._halt()
        pan = step_count(translation.pan, nudge=True)
        tilt = step_count(translation.tilt, nudge=True)
        await self._walk(pan, tilt, speed)
        return PtzVector(pan * STEP, tilt * STEP)

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        self._no_zoom(position.zoom)
        await self._halt()
        # The centre is the one position the camera knows, so every absolute move starts there.
        await self._step(HOME_COMMAND)
        await self._walk(step_count(position.pan), step_count(position.tilt), speed)

    async def goto_home(self) -> None:
        await self._halt()
        await self._step(HOME_COMMAND)

    async def set_ptz_speed(self, speed: float) -> None:
        await self._set_form(enet_avs_pt_speed=pt_speed_of(speed))

    def _preset_slot(self, token: str) -> int:
        slot = parse_int(token, 1, PRESET_SLOTS)
        if slot is None:
            raise self._unsupported(f"use preset {token[:16]!r} (slots are 1..{PRESET_SLOTS})")
        return slot

    async def presets(self) -> Sequence[Preset]:
        raise self._unsupported("list presets (it cannot read them back)")

    async def goto_preset(self, token: str) -> None:
        slot = self._preset_slot(token)
        await self._halt()
        await self._command(PTZ_PATH, {"gotoserverpresetIndex": slot})

    async def set_preset(self, name: str, token: str | None = None) -> str:
        if token is None:
            raise self._unsupported("choose a free preset slot (it cannot list presets)")
        slot = self._preset_slot(token)
        name = name.strip() or f"preset{slot}"
        await self._command(PTZ_CONFIG_PATH, {"setserverpresetname": name, "presetNo": slot})
        return str(slot)

    async def remove_preset(self, token: str, name: str = "") -> None:
        slot = self._preset_slot(token)
        await self._command(PTZ_CONFIG_PATH, {"removeserverpresetname": name, "presetNo": slot})

    # -- imaging --------------------------------------------------------------------------

    async def imaging(self) -> ImagingSettings:
        return self._orientation

    async def set_imaging(self, settings: ImagingSettings) -> None:
        asked = [name for name in _PICTURE_CONTROLS if getattr(settings, name) is not None]
        if asked:
            raise self._unsupported(f"change {', '.join(asked)}")
        if settings.mirror is None and settings.flip is None:
            return
        known = self._orientation
        mirror = known.mirror if settings.mirror is None else settings.mirror
        flip = known.flip if settings.flip is None else settings.flip
        if mirror is None or flip is None:
            # One flip-mode value sets both; guessing the other could turn a ceiling mount over.
            raise self._unsupported("change mirror or flip alone before both were set once")
        await self._set_form(enet_avs_flip_mode=flip_mode_of(mirror, flip))
        self._orientation = ImagingSettings(mirror=mirror, flip=flip)
