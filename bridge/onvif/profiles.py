"""The media profiles of one device, shared by its Media (ver10) and Media2 (ver20) services,
and the configurations they hold.

A profile holds configurations by token: the one video source configuration, one of the three
video encoder configurations (``main``, ``sub``, ``jpeg``: the RTSP profiles of
:class:`~bridge.media.source.CameraMedia`), the audio source and encoder configurations where the
camera has sound, the PTZ configuration where it moves, and the audio output and decoder
configurations where it plays audio (what a client's RTSP backchannel reaches). The three fixed
profiles hold all of them; clients create more (up to :data:`MAX_PROFILES` in all), empty, and
fill them. A profile streams the RTSP profile its video encoder configuration names.

What the configurations are now (sizes, rates, kbit/s) is computed here as typed values, and
changes to a video encoder are checked and applied here; each service shapes the values into
its own schema. Only the shapes both schemas share (sources, audio outputs and decoders) are
built here as dicts; the PTZ configuration is the PTZ service's. The audio output has nothing
that can be changed (the legacy talk CGIs have no volume), so a change to it is only checked.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bridge.codecs.jpeg import jpeg_size
from bridge.errors import (
    ActionFailed,
    CameraError,
    DeletionOfFixedProfile,
    InvalidArgVal,
    MaxNVTProfiles,
    NoConfig,
    NoProfile,
    ProtocolError,
)
from bridge.kept import MAX_PROFILES, KeptEncoder, KeptProfile, Kind
from bridge.media.source import (
    DEFAULT_FPS,
    MAX_BITRATE,
    MIN_BITRATE,
    PROFILE_LIMITS,
    SUB_SIZE,
    CameraMedia,
    Profile,
    VideoLimits,
    decimation,
    fit_within,
)
from bridge.media.transcode import MAX_GOP_SECONDS
from bridge.onvif.context import (
    AUDIO_DECODER_CONFIG,
    AUDIO_ENCODER_CONFIG,
    AUDIO_OUTPUT,
    AUDIO_OUTPUT_CONFIG,
    AUDIO_SOURCE,
    AUDIO_SOURCE_CONFIG,
    PTZ_CONFIG,
    VIDEO_SOURCE,
    VIDEO_SOURCE_CONFIG,
    DeviceContext,
)
from bridge.streams import Codec
from bridge.talk import TalkCodec

QUALITY = 5  # no quality knob: x264 is rate-controlled by the bitrate alone
H264_PROFILE = "Baseline"
SESSION_TIMEOUT = "PT60S"
# Sizes offered besides the camera's own (each scaled to the camera's aspect, never up).
RESOLUTION_BOXES: tuple[tuple[int, int], ...] = ((1280, 720), SUB_SIZE, (320, 240))
G711_KBPS = 64  # PCMU and PCMA alike: 8-bit samples at 8 kHz
AAC_BITS_PER_SAMPLE = 3  # bridge.media.audio encodes AAC at 3 bits per sample (24/48 kbit/s)
ENCODER_INSTANCES = {"H264": 2, "JPEG": 1}  # main and sub, jpeg
_RATE_SLACK = 1e-6


@dataclass
class MediaProfile:
    token: str
    name: str
    fixed: bool
    configurations: dict[Kind, str] = field(default_factory=dict)  # kind -> its token

    @property
    def encoder(self) -> Profile | None:
        token = self.configurations.get(Kind.VIDEO_ENCODER)
        return None if token is None else Profile(token)

    def stream(self) -> Profile:
        """The RTSP profile this profile streams, ter:IncompleteConfiguration if none."""
        if Kind.VIDEO_SOURCE not in self.configurations or self.encoder is None:
            raise ActionFailed(
                "The profile needs a video source and a video encoder configuration to stream",
                subcode="IncompleteConfiguration",
            )
        return self.encoder


def available_configurations(device: DeviceContext) -> dict[Kind, tuple[str, ...]]:
    """Every configuration token the device has, by kind."""
    available = {
        Kind.VIDEO_SOURCE: (VIDEO_SOURCE_CONFIG,),
        Kind.VIDEO_ENCODER: tuple(profile.value for profile in Profile),
    }
    if device.media.has_audio:
        available[Kind.AUDIO_SOURCE] = (AUDIO_SOURCE_CONFIG,)
        available[Kind.AUDIO_ENCODER] = (AUDIO_ENCODER_CONFIG,)
    if device.driver.capabilities.ptz.any:
        available[Kind.PTZ] = (PTZ_CONFIG,)
    if has_audio_output(device):
        available[Kind.AUDIO_OUTPUT] = (AUDIO_OUTPUT_CONFIG,)
        available[Kind.AUDIO_DECODER] = (AUDIO_DECODER_CONFIG,)
    return available


def has_audio_output(device: DeviceContext) -> bool:
    """Whether the camera plays a back channel's audio: then it has one audio output, whatever
    its codec (the back channel transcodes to it)."""
    return device.talk


class ProfileStore:
    """One device's media profiles. They live as long as the device; what a VMS made of them
    is kept in the state file (:meth:`kept`) and taken back by the next device of the same
    camera (:meth:`restore`)."""

    def __init__(self, available: Mapping[Kind, tuple[str, ...]], limit: int = MAX_PROFILES):
        self.available = dict(available)
        self.limit = limit
        self.picture_size: tuple[int, int] | None = None  # from a snapshot, if the camera says not
        # Encoders kept by an earlier run that could not be set for want of the camera's
        # picture size, by profile: kept on in the state file until a client sets that one.
        self.deferred_encoders: dict[str, KeptEncoder] = {}
        self._profiles = {profile.value: self._fixed(profile) for profile in Profile}
        self._created = 0

    def _fixed(self, profile: Profile) -> MediaProfile:
        """A fixed profile as it comes: every configuration the device has, and its encoder."""
        held = {kind: tokens[0] for kind, tokens in self.available.items()}
        held[Kind.VIDEO_ENCODER] = profile.value
        return MediaProfile(profile.value, profile.value, True, held)

    def profiles(self) -> list[MediaProfile]:
        return list(self._profiles.values())

    def profile(self, token: str) -> MediaProfile:
        try:
            return self._profiles[token]
        except KeyError:
            raise NoProfile(f"No profile {token!r}") from None

    def create(self, name: str, token: str | None = None) -> MediaProfile:
        if len(self._profiles) >= self.limit:
            raise MaxNVTProfiles()
        if token is None:
            token = self._new_token()
        elif token in self._profiles:
            raise InvalidArgVal(f"A profile {token[:64]!r} exists", subcode="ProfileExists")
        _keepable(token, name)
        profile = MediaProfile(token, name, fixed=False)
        self._profiles[token] = profile
        return profile

    def rename(self, token: str, name: str) -> None:
        profile = self.profile(token)
        _keepable(token, name)
        profile.name = name

    def delete(self, token: str) -> None:
        if self.profile(token).fixed:
            raise DeletionOfFixedProfile()
        del self._profiles[token]

    def check(self, kind: Kind, token: str) -> None:
        """ter:NoConfig unless the device has this configuration."""
        if token not in self.available.get(kind, ()):
            raise NoConfig(f"No {kind.value} configuration {token!r}")

    def add(self, profile_token: str, kind: Kind, token: str) -> None:
        """Put a configuration into a profile, replacing the one of its kind."""
        profile = self.profile(profile_token)
        self.check(kind, token)
        profile.configurations[kind] = token

    def remove(self, profile_token: str, kind: Kind) -> None:
        self.profile(profile_token).configurations.pop(kind, None)

    def use_count(self, kind: Kind, token: str) -> int:
        return sum(1 for p in self._profiles.values() if p.configurations.get(kind) == token)

    def kept(self) -> list[KeptProfile]:
        """The profiles as clients left them, for the state file: those they created and the
        fixed ones they changed (one as it comes is left out: it follows what the camera can
        do, so a camera that gains sound gets it in its fixed profiles)."""
        return [
            KeptProfile(token=p.token, name=p.name, configurations=p.configurations)
            for p in self._profiles.values()
            if not p.fixed or p != self._fixed(Profile(p.token))
        ]

    def restore(self, kept: Iterable[KeptProfile]) -> list[str]:
        """Take back the profiles an earlier run kept; returns what of them no longer fits
        the device (a configuration it lost, a profile beyond its limit): each is dropped."""
        dropped: list[str] = []
        for saved in kept:
            profile = self._profiles.get(saved.token)
            if profile is None:
                if len(self._profiles) >= self.limit:
                    dropped.append(f"profile {saved.token!r}: more than {self.limit} profiles")
                    continue
                profile = self._profiles[saved.token] = MediaProfile(saved.token, "", False)
            profile.name = saved.name
            profile.configurations = {}
            for kind, token in saved.configurations.items():
                if token in self.available.get(kind, ()):
                    profile.configurations[kind] = token
                else:
                    dropped.append(
                        f"profile {saved.token!r}: no {kind.value} configuration {token!r} now"
                    )
        return dropped

    def _new_token(self) -> str:
        while True:
            self._created += 1
            token = f"profile_{self._created}"
            if token not in self._profiles:
                return token


def _keepable(token: str, name: str) -> None:
    """ter:InvalidArgVal for a profile token or name the state file could not keep (tt:Name
    and tt:ReferenceToken: at most 64 characters; a token is one printable word)."""
    try:
        KeptProfile(token=token, name=name)
    except ValidationError as exc:
        field_name = exc.errors()[0]["loc"][0]
        raise InvalidArgVal(
            f"The profile's {field_name} must be at most 64 characters"
            + (", printable, without spaces" if field_name == "token" else "")
        ) from None


# Keyed by the camera's media, which lives exactly as long as its device (a reconnected camera
# gets new ones of both), and weakly, so a closed device's profiles go with it.
_STORES: weakref.WeakKeyDictionary[CameraMedia, ProfileStore] = weakref.WeakKeyDictionary()


def profile_store(device: DeviceContext) -> ProfileStore:
    """The device's profiles: the same store for its Media and its Media2 service."""
    store = _STORES.get(device.media)
    if store is None:
        store = _STORES[device.media] = ProfileStore(available_configurations(device))
    return store


# -- what the video configurations are now -------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraVideo:
    """The camera's pictures as the encoders meet them."""

    size: tuple[int, int]
    fps: float  # measured once the camera has streamed; a default before


async def camera_video(device: DeviceContext, store: ProfileStore) -> CameraVideo:
    """The camera's picture size (from a snapshot when neither a picture nor the camera's own
    report tells it yet) and rate."""
    size = device.media.camera_size() or store.picture_size
    if size is None:
        try:
            size = jpeg_size(await device.media.snapshot())
        except (CameraError, ProtocolError, TimeoutError) as exc:
            raise ActionFailed("The camera's picture size is not known yet") from exc
        store.picture_size = size
    return CameraVideo(size, device.media.fps or DEFAULT_FPS)


@dataclass(frozen=True, slots=True)
class EncoderState:
    """What a video encoder configuration produces now."""

    encoding: str  # "H264" or "JPEG", the same word in both schemas
    size: tuple[int, int]
    fps: float
    bitrate_kbps: int
    gov_length: int | None  # None: every JPEG picture stands alone


def encoder_state(device: DeviceContext, profile: Profile, video: CameraVideo) -> EncoderState:
    if profile is Profile.JPEG:
        return EncoderState("JPEG", video.size, video.fps, _jpeg_kbps(device, video.fps), None)
    settings = device.media.encoder_settings(profile, video.size)
    return EncoderState(
        "H264",
        (settings.width, settings.height),
        settings.fps,
        round(settings.bitrate / 1000),
        settings.gop,
    )


def _jpeg_kbps(device: DeviceContext, fps: float) -> int:
    """What the camera's own pictures take at its rate; 0 until one has been seen."""
    latest = device.media.frames.latest
    return 0 if latest is None else round(len(latest.data) * 8 * fps / 1000)


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """What a video encoder configuration can be set to."""

    encoding: str
    resolutions: tuple[tuple[int, int], ...]  # largest first
    frame_rates: tuple[float, ...]  # fastest first, as the protocol carries them
    gov_range: tuple[int, int]
    bitrate_range_kbps: tuple[int, int]


def carried(rate: float, digits: int) -> float:
    """A frame rate as a protocol carries it: Media's are whole numbers (digits=0), never 0."""
    return max(round(rate, digits), 10.0**-digits)


def _divided_rates(camera_fps: float) -> list[float]:
    """The rates an encoder can run at: the camera's divided by a whole number, down to 1."""
    return [camera_fps / n for n in range(1, max(1, math.floor(camera_fps)) + 1)]


def _resolution_boxes(
    device: DeviceContext, profile: Profile, video: CameraVideo
) -> dict[tuple[int, int], tuple[int, int] | None]:
    """Each size an H.264 profile can encode, with the box (VideoLimits.max_size) giving it.

    Scaling to a box is not idempotent (sides are rounded down to even numbers), so a size
    asked for is set as the box it came from, never as a box of its own.
    """
    boxes: dict[tuple[int, int], tuple[int, int] | None] = {}
    for box in (None, *RESOLUTION_BOXES, device.media.limits(profile).max_size):
        boxes.setdefault(fit_within(video.size, box), box)
    return dict(sorted(boxes.items(), key=lambda item: item[0][0] * item[0][1], reverse=True))


def encoder_options(
    device: DeviceContext, profile: Profile, video: CameraVideo, digits: int
) -> EncoderOptions:
    if profile is Profile.JPEG:
        kbps = _jpeg_kbps(device, video.fps)
        return EncoderOptions(
            "JPEG", (video.size,), (carried(video.fps, digits),), (1, 1), (kbps, kbps)
        )
    rates = dict.fromkeys(carried(rate, digits) for rate in _divided_rates(video.fps))
    return EncoderOptions(
        "H264",
        tuple(_resolution_boxes(device, profile, video)),
        tuple(rates),
        (1, max(1, math.floor(MAX_GOP_SECONDS * video.fps))),
        (MIN_BITRATE // 1000, MAX_BITRATE // 1000),
    )


@dataclass(frozen=True, slots=True)
class EncoderRequest:
    """A SetVideoEncoderConfiguration in typed values; None where the request leaves it out."""

    encoding: str
    size: tuple[int, int]
    fps: float | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None
    h264_profile: str | None = None


def _refuse(reason: str) -> InvalidArgVal:
    return InvalidArgVal(reason, subcode="ConfigModify")


def apply_encoder(
    device: DeviceContext,
    profile: Profile,
    video: CameraVideo,
    request: EncoderRequest,
    digits: int,
) -> None:
    """Change what a profile encodes (its encoder reopens at the next picture).

    Encoding, size, GOV length and H.264 profile must be among the options (else
    ter:ConfigModify). Rate control adapts, as ONVIF allows: a frame rate is rounded down to the
    next one the camera's rate divides into (a rate above the camera's follows the camera), a
    bitrate is clamped to the range, and a bitrate left at the automatic value stays automatic,
    so it follows a new size or rate. The jpeg profile passes the camera's pictures through and
    only takes its own values back.
    """
    options = encoder_options(device, profile, video, digits)
    if request.encoding != options.encoding:
        raise _refuse(f"The {profile} encoder encodes {options.encoding} only")
    if request.size not in options.resolutions:
        raise _refuse(f"The {profile} encoder cannot encode {request.size[0]}x{request.size[1]}")
    if request.h264_profile not in (None, H264_PROFILE):
        raise _refuse(f"Only the H.264 {H264_PROFILE} profile is supported")
    if profile is Profile.JPEG:
        return
    gov_min, gov_max = options.gov_range
    if request.gov_length is not None and not gov_min <= request.gov_length <= gov_max:
        raise _refuse(f"GovLength must be within {gov_min}..{gov_max}")
    limits = device.media.limits(profile)
    max_fps = limits.max_fps if request.fps is None else _max_fps(video.fps, request.fps, digits)
    fps = video.fps / decimation(video.fps, max_fps)
    bitrate = limits.bitrate
    current = encoder_state(device, profile, video)
    if request.bitrate_kbps is not None and not (
        bitrate is None and request.bitrate_kbps == current.bitrate_kbps
    ):
        bitrate = min(MAX_BITRATE, max(MIN_BITRATE, request.bitrate_kbps * 1000))
    gop_seconds = limits.gop_seconds
    if request.gov_length is not None:
        gop_seconds = min(MAX_GOP_SECONDS, request.gov_length / fps)
    boxes = _resolution_boxes(device, profile, video)
    device.media.set_limits(
        profile,
        VideoLimits(
            max_size=boxes[request.size], max_fps=max_fps, bitrate=bitrate, gop_seconds=gop_seconds
        ),
    )
    profile_store(device).deferred_encoders.pop(profile.value, None)


def _max_fps(camera_fps: float, requested: float, digits: int) -> float | None:
    """The VideoLimits.max_fps giving the fastest rate that does not exceed ``requested`` as
    the protocol carries it; None (the camera's own rate) when that is the camera's."""
    rates = _divided_rates(camera_fps)
    for n, rate in enumerate(rates, 1):
        if carried(rate, digits) <= requested + _RATE_SLACK:
            return None if n == 1 else rate
    raise _refuse(f"The frame rate limit must be at least {carried(rates[-1], digits)}")


# -- kept across restarts ---------------------------------------------------------------------


def kept_encoders(device: DeviceContext, store: ProfileStore) -> list[KeptEncoder]:
    """The H.264 encoders clients changed, for the state file, each with the size it encodes
    (what GetVideoEncoderConfigurationOptions offered and the client chose), and those still
    deferred from an earlier run."""
    kept = dict(store.deferred_encoders)
    size = device.media.camera_size() or store.picture_size
    for profile, default in PROFILE_LIMITS.items():
        limits = device.media.limits(profile)
        if limits == default or size is None:  # no size: set only by a deferred restore
            continue
        settings = device.media.encoder_settings(profile, size)
        kept[profile.value] = KeptEncoder(
            profile=profile.value,
            width=settings.width,
            height=settings.height,
            max_fps=limits.max_fps,
            bitrate=limits.bitrate,
            gop_seconds=limits.gop_seconds,
        )
    return list(kept.values())


async def restore_encoders(
    device: DeviceContext, store: ProfileStore, kept: Iterable[KeptEncoder]
) -> list[str]:
    """Set the encoders as an earlier run kept them; returns what no longer fits the camera
    (a size it does not offer now, a value out of range): each is dropped whole, and that
    encoder keeps its defaults. Without the camera's picture size (no picture, no report, no
    snapshot) nothing can be checked: they are deferred, not dropped."""
    kept = list(kept)
    if not kept:
        return []
    try:
        video = await camera_video(device, store)
    except ActionFailed:
        store.deferred_encoders = {saved.profile: saved for saved in kept}
        return []
    dropped: list[str] = []
    for saved in kept:
        profile = next((p for p in PROFILE_LIMITS if p.value == saved.profile), None)
        size = (saved.width, saved.height)
        if profile is None:
            dropped.append(f"encoder {saved.profile!r}: not an H.264 profile")
            continue
        if saved.bitrate is not None and not MIN_BITRATE <= saved.bitrate <= MAX_BITRATE:
            dropped.append(f"{profile} encoder: {saved.bitrate} bit/s is out of range")
            continue
        if saved.gop_seconds > MAX_GOP_SECONDS:
            dropped.append(f"{profile} encoder: a GOP of {saved.gop_seconds} s is too long")
            continue
        boxes = _resolution_boxes(device, profile, video)
        if size not in boxes:
            dropped.append(f"{profile} encoder: {size[0]}x{size[1]} is not a size it offers")
            continue
        device.media.set_limits(
            profile, VideoLimits(boxes[size], saved.max_fps, saved.bitrate, saved.gop_seconds)
        )
    return dropped


# -- audio ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioEncoding:
    """How the camera's sound is served in every profile."""

    codec: Codec  # PCMU or AAC
    sample_rate: int  # Hz
    bitrate_kbps: int

    @property
    def sample_rate_khz(self) -> int:
        return self.sample_rate // 1000

    @property
    def media_name(self) -> str:
        """Media's tt:AudioEncoding."""
        return "AAC" if self.codec is Codec.AAC else "G711"

    @property
    def mime_name(self) -> str:
        """Media2's encoding: the RTP payload format's MIME subtype."""
        return "mpeg4-generic" if self.codec is Codec.AAC else "PCMU"

    def options(self, name: str) -> dict[str, Any]:
        """The one choice there is (tt:AudioEncoderConfigurationOption and its Media2 twin),
        under the encoding ``name`` the service uses."""
        return audio_choice(name, self.bitrate_kbps, self.sample_rate_khz)


def audio_choice(name: str, bitrate_kbps: int, sample_rate_khz: int) -> dict[str, Any]:
    """One encoding at one rate: tt:AudioEncoderConfigurationOption or
    tt:AudioEncoder2ConfigurationOptions (Media2 lists decoder encodings in the latter too)."""
    return {
        "Encoding": name,
        "BitrateList": {"Items": [bitrate_kbps]},
        "SampleRateList": {"Items": [sample_rate_khz]},
    }


def audio_encoding(device: DeviceContext) -> AudioEncoding | None:
    track = device.media.audio_track
    if track is None:
        return None
    if track.codec is Codec.AAC:
        kbps = AAC_BITS_PER_SAMPLE * track.sample_rate // 1000
        return AudioEncoding(Codec.AAC, track.sample_rate, kbps)
    return AudioEncoding(Codec.PCMU, track.sample_rate, G711_KBPS)


# -- the configurations both schemas shape alike ---------------------------------------------


def configuration_entity(store: ProfileStore, kind: Kind, token: str, name: str) -> dict[str, Any]:
    """What every configuration has (tt:ConfigurationEntity): its token, name and use count."""
    return {"token": token, "Name": name, "UseCount": store.use_count(kind, token)}


def video_source(video: CameraVideo) -> dict[str, Any]:
    """tt:VideoSource."""
    width, height = video.size
    return {
        "token": VIDEO_SOURCE,
        "Framerate": video.fps,
        "Resolution": {"Width": width, "Height": height},
    }


def video_source_configuration(store: ProfileStore, video: CameraVideo) -> dict[str, Any]:
    """tt:VideoSourceConfiguration: the whole picture."""
    width, height = video.size
    return {
        **configuration_entity(store, Kind.VIDEO_SOURCE, VIDEO_SOURCE_CONFIG, "Video source"),
        "SourceToken": VIDEO_SOURCE,
        "Bounds": {"x": 0, "y": 0, "width": width, "height": height},
    }


def audio_source() -> dict[str, Any]:
    """tt:AudioSource."""
    return {"token": AUDIO_SOURCE, "Channels": 1}


def audio_source_configuration(store: ProfileStore) -> dict[str, Any]:
    """tt:AudioSourceConfiguration."""
    return {
        **configuration_entity(store, Kind.AUDIO_SOURCE, AUDIO_SOURCE_CONFIG, "Audio source"),
        "SourceToken": AUDIO_SOURCE,
    }


def multicast() -> dict[str, Any]:
    """tt:MulticastConfiguration of a device that does not multicast."""
    return {
        "Address": {"Type": "IPv4", "IPv4Address": "0.0.0.0"},
        "Port": 0,
        "TTL": 0,
        "AutoStart": False,
    }


# -- the audio output (the camera's speaker) and its decoder -----------------------------------

# The talk CGIs take audio at the level it comes and have no volume of their own to set, so
# the output level is one fixed value: the whole of the camera's own volume.
OUTPUT_LEVEL = 100
# The gateway sends the camera's sound to viewers while a client talks (the backchannel is a
# session of its own): how the two directions share the camera is up to the device.
SEND_PRIMACY = "www.onvif.org/ver20/HalfDuplex/Auto"
# What the RTSP backchannel takes from a client (ONVIF Streaming: G.711 at 8 kHz), by Media2's
# names (RTP payload formats); Media calls both G711.
DECODER_ENCODINGS = tuple(codec.name for codec in TalkCodec)
DECODER_SAMPLE_RATE_KHZ = 8


def audio_outputs(store: ProfileStore) -> list[str]:
    """The tokens of the device's audio outputs: one where the camera plays audio."""
    return [AUDIO_OUTPUT] if Kind.AUDIO_OUTPUT in store.available else []


def audio_output_configuration(store: ProfileStore) -> dict[str, Any]:
    """tt:AudioOutputConfiguration."""
    return {
        **configuration_entity(store, Kind.AUDIO_OUTPUT, AUDIO_OUTPUT_CONFIG, "Audio output"),
        "OutputToken": AUDIO_OUTPUT,
        "SendPrimacy": SEND_PRIMACY,
        "OutputLevel": OUTPUT_LEVEL,
    }


def audio_output_options() -> dict[str, Any]:
    """tt:AudioOutputConfigurationOptions: the one output, at its one level."""
    return {
        "OutputTokensAvailable": [AUDIO_OUTPUT],
        "SendPrimacyOptions": [SEND_PRIMACY],
        "OutputLevelRange": {"Min": OUTPUT_LEVEL, "Max": OUTPUT_LEVEL},
    }


def audio_decoder_configuration(store: ProfileStore) -> dict[str, Any]:
    """tt:AudioDecoderConfiguration (it has nothing to configure: it decodes what comes)."""
    return configuration_entity(store, Kind.AUDIO_DECODER, AUDIO_DECODER_CONFIG, "Audio decoder")


def check_audio_output_change(store: ProfileStore, configuration: Mapping[str, Any]) -> None:
    """A SetAudioOutputConfiguration: ter:NoConfig for a configuration the device lacks,
    ter:ConfigModify for anything but what it is (the options allow nothing else)."""
    store.check(Kind.AUDIO_OUTPUT, configuration["token"])
    _check_name(configuration, audio_output_configuration(store))
    if configuration["OutputToken"] != AUDIO_OUTPUT:
        raise _refuse(f"No audio output {configuration['OutputToken'][:64]!r}")
    if configuration["OutputLevel"] != OUTPUT_LEVEL:
        raise _refuse(f"The camera's output level cannot be set: it stays {OUTPUT_LEVEL}")
    if configuration.get("SendPrimacy") not in (None, SEND_PRIMACY):
        raise _refuse(f"The only send primacy is {SEND_PRIMACY}")


def check_audio_decoder_change(store: ProfileStore, configuration: Mapping[str, Any]) -> None:
    """A SetAudioDecoderConfiguration: as :func:`check_audio_output_change` (a decoder has
    only its name)."""
    store.check(Kind.AUDIO_DECODER, configuration["token"])
    _check_name(configuration, audio_decoder_configuration(store))


def _check_name(configuration: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    if configuration["Name"] != current["Name"]:
        raise _refuse(f"The configuration's name is fixed: {current['Name']}")
