"""The one driver interface every camera dialect implements, and the typed values it speaks.

Scales are normalized here so the rest of the gateway never sees a vendor range:

- PTZ velocities and relative translations: pan/tilt/zoom in [-1, 1] (ONVIF generic spaces).
- PTZ absolute positions: pan/tilt in [-1, 1], zoom in [0, 1].
- PTZ speed: (0, 1], 1 = the camera's fastest.
- Imaging values: 0..100 (ONVIF's customary range); each driver maps its vendor range.

A driver raises :class:`~bridge.errors.UnsupportedOperation` for what its dialect cannot do (the
defaults below do that), and says what it can do through :class:`Capabilities`, which may depend
on what the particular unit reports (``connect`` learns it).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar

from bridge.cameras.fields import normalize_mac, printable
from bridge.cameras.http import CameraHttp
from bridge.errors import UnsupportedOperation


class Dialect(enum.StrEnum):
    HAMA = "hama"
    IPCAMCGI = "ipcamcgi"
    OPENAPI = "openapi"
    FOSCAM = "foscam"
    VAPIX2 = "vapix2"


class CameraState(enum.StrEnum):
    """How the gateway sees a configured camera (status page, metrics, /readyz, logs)."""

    CONNECTING = "connecting"  # not connected yet, and no attempt failed
    ONLINE = "online"  # connected; its stream, when watched, delivers
    OFFLINE = "offline"  # unreachable, or its stream fails and is being retried
    AUTH_FAILED = "auth failed"  # it refuses the configured credentials


class AudioCodec(enum.StrEnum):
    """Camera audio codecs; the values are FFmpeg/PyAV decoder names."""

    GSM = "gsm"  # GSM 06.10 full rate, 33-byte frames of 160 samples
    MULAW = "pcm_mulaw"  # G.711 u-law
    G726 = "g726"  # G.726 ADPCM, bits per sample in AudioFormat.bits_per_sample
    IMA_ADPCM = "adpcm_ima_wav"  # IMA ADPCM in WAV/ASF blocks


@dataclass(frozen=True, slots=True)
class AudioFormat:
    codec: AudioCodec
    sample_rate: int = 8000
    channels: int = 1
    bits_per_sample: int = 0  # G.726 rate selector (2..5); 0 where the codec fixes it
    block_align: int = 0  # IMA ADPCM block size; 0 where not blocked


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Encoded audio as received; ``timestamp`` is ``time.monotonic()`` at arrival."""

    format: AudioFormat
    data: bytes
    timestamp: float


@dataclass(frozen=True, slots=True)
class JpegFrame:
    """One JPEG picture as received; ``timestamp`` is ``time.monotonic()`` at arrival."""

    data: bytes
    timestamp: float


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Who the camera says it is. Every field is camera text, so it is cleaned here, once for
    every dialect: printable and at most :data:`~bridge.cameras.fields.TEXT_LIMIT` characters
    (it ends up in SOAP, discovery scopes, the status page and logs), and ``mac`` a MAC or ""."""

    manufacturer: str
    model: str
    firmware: str
    serial: str  # serial number or the vendor's unique ID; the MAC when the camera has none
    mac: str  # "00:11:22:33:44:55", upper case; "" when the camera does not report it
    hardware_id: str = ""

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            value: str = getattr(self, name)
            clean = normalize_mac(value) if name == "mac" else printable(value)
            if clean != value:
                object.__setattr__(self, name, clean)


@dataclass(frozen=True, slots=True)
class PtzVector:
    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0


@dataclass(frozen=True, slots=True)
class Preset:
    """A stored PTZ position; both fields may come from the camera, so they are cleaned as
    :class:`DeviceInfo`'s are."""

    token: str  # the camera's own preset identifier, as text
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", printable(self.token))
        object.__setattr__(self, "name", printable(self.name))


class ImagingField(enum.StrEnum):
    BRIGHTNESS = "brightness"
    CONTRAST = "contrast"
    SATURATION = "saturation"
    SHARPNESS = "sharpness"
    MIRROR = "mirror"  # horizontal flip
    FLIP = "flip"  # vertical flip


@dataclass(frozen=True, slots=True)
class ImagingSettings:
    """Normalized picture settings; ``None`` means unknown (on get) or unchanged (on set)."""

    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    sharpness: float | None = None
    mirror: bool | None = None
    flip: bool | None = None


@dataclass(frozen=True, slots=True)
class RelayOutput:
    token: str  # the camera's port number/name as text
    active: bool | None = None  # None when the camera cannot report it


@dataclass(frozen=True, slots=True)
class DigitalInput:
    token: str
    active: bool | None = None


class EventKind(enum.StrEnum):
    MOTION = "motion"
    DIGITAL_INPUT = "digital_input"
    RELAY = "relay"


@dataclass(frozen=True, slots=True)
class CameraEvent:
    """A state change seen on the camera.

    ``source`` is the input/relay token ("" for motion); ``level`` is the motion level in
    0..100 where the camera reports one.
    """

    kind: EventKind
    active: bool
    timestamp: float
    source: str = ""
    level: float | None = None


@dataclass(frozen=True, slots=True)
class PtzCapabilities:
    continuous: bool = False
    relative: bool = False
    absolute: bool = False
    zoom: bool = False
    presets: int = 0  # how many presets the camera can store; 0 = no presets
    home: bool = False  # go to home
    set_home: bool = False
    speed: bool = False
    position: bool = False  # the camera reports its position

    @property
    def any(self) -> bool:
        return self.continuous or self.relative or self.absolute or self.presets > 0


@dataclass(frozen=True, slots=True)
class PtzGeometry:
    """How a head's normalized scales relate to degrees, to its picture and to time.

    Legacy cameras report none of this, so each dialect states its family's values (a unit
    may refine the travel from the limits it reports). The gateway needs them to move by a
    fraction of the field of view (what trackers ask for), to time moves on heads that only
    move continuously, and to estimate where a head that cannot report its position is.
    """

    pan_degrees: float = 340.0  # what the normalized pan range [-1, 1] spans
    tilt_degrees: float = 120.0  # ... and the tilt range
    fov: tuple[float, float] = (50.0, 38.0)  # horizontal, vertical degrees at the widest zoom
    zoom_ratio: float = 1.0  # optical magnification at zoom 1 (1: the head does not zoom)
    pan_rate: float = 60.0  # degrees per second of a continuous move at velocity 1
    tilt_rate: float = 30.0
    zoom_rate: float = 0.25  # normalized zoom per second at velocity 1


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this dialect, and this unit as far as it reports, can do."""

    snapshot: bool = True
    video: bool = True
    resolution: tuple[int, int] | None = None  # current video size when the camera reports it
    audio_in: AudioFormat | None = None  # what audio_chunks() yields; None = no audio
    audio_out: AudioFormat | None = None  # what send_audio() accepts; None = no talk
    ptz: PtzCapabilities = field(default_factory=PtzCapabilities)
    imaging: frozenset[ImagingField] = frozenset()
    relay_outputs: int = 0
    digital_inputs: int = 0
    motion_events: bool = False
    input_events: bool = False
    get_datetime: bool = False
    set_datetime: bool = False
    reboot: bool = False
    factory_default: bool = False


class CameraDriver:
    """A legacy camera of one dialect, reached through one :class:`CameraHttp`.

    Subclasses set ``dialect`` and override what their dialect offers. Every method may raise
    the :class:`~bridge.errors.CameraError` family. Drivers hold no sockets themselves: every
    request goes through ``self.http``, which owns auth, timeouts and status mapping.
    """

    dialect: ClassVar[Dialect]

    ptz_geometry: PtzGeometry = PtzGeometry()  # the dialect's; ``connect`` may refine it

    def __init__(self, http: CameraHttp) -> None:
        self.http = http
        self.capabilities = Capabilities()

    def _unsupported(self, operation: str) -> UnsupportedOperation:
        return UnsupportedOperation(
            f"the {self.dialect} dialect cannot {operation}", camera=self.http.display_name
        )

    # -- identification -----------------------------------------------------------------

    @classmethod
    def matches_fingerprint(cls, server: str, realm: str) -> bool:
        """Whether the Server header or auth realm of the camera's root page suggests this
        dialect; probing tries suggested dialects first."""
        return False

    @classmethod
    async def detect(cls, http: CameraHttp) -> bool:
        """One request that tells whether the camera speaks this dialect.

        Returns False for "not this dialect"; raises AuthenticationFailed when the request is
        this dialect's but the credentials are wrong.
        """
        raise NotImplementedError

    async def connect(self) -> DeviceInfo:
        """Read device info and fill ``self.capabilities`` from what the unit reports."""
        raise NotImplementedError

    async def device_info(self) -> DeviceInfo:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop background work the driver started (e.g. an emulated continuous move).

        The HTTP client is closed by whoever created it."""

    # -- media ----------------------------------------------------------------------------

    async def snapshot(self) -> bytes:
        raise self._unsupported("take a snapshot")

    def video_frames(self) -> AsyncIterator[JpegFrame]:
        """The camera's live JPEG frames over one upstream connection, until closed."""
        raise self._unsupported("stream video")

    def audio_chunks(self) -> AsyncIterator[AudioChunk]:
        """The camera's live encoded audio over one upstream connection, until closed."""
        raise self._unsupported("stream audio")

    async def send_audio(self, chunks: AsyncIterable[bytes]) -> None:
        """Play encoded audio (in ``capabilities.audio_out``) on the camera's speaker."""
        raise self._unsupported("play audio")

    # -- PTZ ------------------------------------------------------------------------------

    async def continuous_move(self, velocity: PtzVector) -> None:
        raise self._unsupported("move continuously")

    async def stop(self) -> None:
        raise self._unsupported("stop a move")

    async def relative_move(self, translation: PtzVector, speed: float | None = None) -> PtzVector:
        """Move by ``translation``; returns the translation made (a head that moves in steps
        rounds it to them), which is how the gateway follows a head that cannot report its
        position."""
        raise self._unsupported("move relatively")

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        raise self._unsupported("move to an absolute position")

    async def ptz_position(self) -> PtzVector:
        raise self._unsupported("report its PTZ position")

    async def presets(self) -> Sequence[Preset]:
        raise self._unsupported("list presets")

    async def goto_preset(self, token: str) -> None:
        raise self._unsupported("go to a preset")

    async def set_preset(self, name: str, token: str | None = None) -> str:
        """Store the current position; returns the token the preset got."""
        raise self._unsupported("store a preset")

    async def remove_preset(self, token: str, name: str = "") -> None:
        """Remove a preset; ``name`` is what it was stored as (a CGI that removes by name,
        of a camera that cannot read its presets back, needs the gateway to say it)."""
        raise self._unsupported("remove a preset")

    async def goto_home(self) -> None:
        raise self._unsupported("go to its home position")

    async def set_home(self) -> None:
        raise self._unsupported("store a home position")

    async def set_ptz_speed(self, speed: float) -> None:
        raise self._unsupported("set its PTZ speed")

    # -- imaging --------------------------------------------------------------------------

    async def imaging(self) -> ImagingSettings:
        raise self._unsupported("report imaging settings")

    async def set_imaging(self, settings: ImagingSettings) -> None:
        raise self._unsupported("change imaging settings")

    # -- I/O and events ---------------------------------------------------------------------

    async def relay_outputs(self) -> Sequence[RelayOutput]:
        raise self._unsupported("report relay outputs")

    async def set_relay(self, token: str, active: bool) -> None:
        raise self._unsupported("switch a relay output")

    async def digital_inputs(self) -> Sequence[DigitalInput]:
        raise self._unsupported("report digital inputs")

    def events(self) -> AsyncIterator[CameraEvent]:
        """Motion and digital-input changes, until closed (streamed or polled)."""
        raise self._unsupported("report events")

    # -- system ---------------------------------------------------------------------------

    async def get_datetime(self) -> datetime.datetime:
        """The camera's clock as an aware UTC datetime."""
        raise self._unsupported("report its clock")

    async def set_datetime(self, value: datetime.datetime) -> None:
        raise self._unsupported("set its clock")

    async def reboot(self) -> None:
        raise self._unsupported("reboot")

    async def factory_default(self) -> None:
        raise self._unsupported("reset to factory defaults")
