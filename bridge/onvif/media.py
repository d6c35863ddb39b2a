"""ONVIF Media (ver10): the device's media profiles, their configurations and stream URIs.

Profiles and what they hold live in the device's :class:`~bridge.onvif.profiles.ProfileStore`,
shared with Media2; this module shapes them into Media's schema (tt:Profile,
tt:VideoEncoderConfiguration ...). Changing a video encoder configuration changes what the
gateway's encoder of that RTSP profile produces. A camera that plays audio has one audio output
with one output and one decoder configuration (what the RTSP backchannel feeds); for one that
does not, Media's audio output and decoder operations answer ter:AudioOutputNotSupported and
ter:AudioDecodingNotSupported, and their lists are empty.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from functools import partial
from typing import Any

from bridge.errors import ActionNotSupported, InvalidArgVal
from bridge.kept import Kind
from bridge.media.source import Profile
from bridge.onvif.context import AUDIO_ENCODER_CONFIG, DeviceContext, kept_after
from bridge.onvif.profiles import (
    DECODER_SAMPLE_RATE_KHZ,
    ENCODER_INSTANCES,
    G711_KBPS,
    H264_PROFILE,
    QUALITY,
    SESSION_TIMEOUT,
    AudioEncoding,
    EncoderOptions,
    EncoderRequest,
    EncoderState,
    MediaProfile,
    ProfileStore,
    apply_encoder,
    audio_decoder_configuration,
    audio_encoding,
    audio_output_configuration,
    audio_output_options,
    audio_outputs,
    audio_source,
    audio_source_configuration,
    camera_video,
    carried,
    check_audio_decoder_change,
    check_audio_output_change,
    configuration_entity,
    encoder_options,
    encoder_state,
    multicast,
    profile_store,
    video_source,
    video_source_configuration,
)
from bridge.onvif.ptz import ptz_configuration
from bridge.onvif.soap import OnvifRequest, Operations, Service

Values = Mapping[str, Any]
# The configurations the media services serve Get<kind>Configuration(s) and Media's
# GetCompatible<kind>... for (the PTZ configuration is the PTZ service's).
CONFIGURATION_KINDS = (
    Kind.VIDEO_SOURCE,
    Kind.VIDEO_ENCODER,
    Kind.AUDIO_SOURCE,
    Kind.AUDIO_ENCODER,
    Kind.AUDIO_OUTPUT,
    Kind.AUDIO_DECODER,
)
# Configurations tt:Profile holds in its Extension (they came with ONVIF 2.0).
_EXTENSION_KINDS = frozenset({Kind.AUDIO_OUTPUT, Kind.AUDIO_DECODER})
# Media's fault subcode for an audio output or decoder operation on a camera without audio out.
_NOT_SUPPORTED = {
    Kind.AUDIO_OUTPUT: "AudioOutputNotSupported",
    Kind.AUDIO_DECODER: "AudioDecodingNotSupported",
}
# The gateway's RTSP server takes RTP over UDP and interleaved in the RTSP connection (RTSP;
# TCP, deprecated, is RTP over TCP: the same), so these get its rtsp:// URI; HTTP (RTSP
# tunnelled in HTTP) gets the tunnel's http:// URI.
_STREAMING_TRANSPORTS = frozenset({"UDP", "TCP", "RTSP", "HTTP"})


def media_uri(uri: str) -> dict[str, Any]:
    """tt:MediaUri of a URI that stays valid (ONVIF asks for exactly these lifetimes)."""
    return {
        "Uri": uri,
        "InvalidAfterConnect": False,
        "InvalidAfterReboot": False,
        "Timeout": "PT0S",
    }


class ConfigurationShapes(abc.ABC):
    """One configuration of the device as a media service's schema shapes it. Media and Media2
    shape the sources and the PTZ configuration alike and the encoders each their own way."""

    def __init__(self, device: DeviceContext, store: ProfileStore) -> None:
        self.device = device
        self.store = store

    digits: int  # how many decimals of a frame rate the service carries

    def require(self, kind: Kind) -> None:
        """ter:ActionNotSupported for an audio output or decoder operation on a camera that
        plays no audio (Media has those operations on every device; Media2 only where the
        camera plays audio)."""
        subcode = _NOT_SUPPORTED.get(kind)
        if subcode is not None and kind not in self.store.available:
            raise ActionNotSupported("The camera plays no audio", subcode=subcode)

    @abc.abstractmethod
    def audio_name(self, encoding: AudioEncoding) -> str:
        """The service's name for the audio encoding."""

    @abc.abstractmethod
    def rate_control(self, state: EncoderState) -> dict[str, Any]:
        """tt:VideoRateControl or tt:VideoRateControl2."""

    @abc.abstractmethod
    def encoder_details(self, state: EncoderState) -> dict[str, Any]:
        """What the service's encoder configuration adds to :meth:`video_encoder`'s."""

    @abc.abstractmethod
    def h264_settings(self, configuration: Mapping[str, Any]) -> tuple[int | None, str | None]:
        """GOP length and H.264 profile of an encoder configuration the client sent."""

    async def video_encoder(self, profile: Profile) -> dict[str, Any]:
        """tt:VideoEncoderConfiguration or tt:VideoEncoder2Configuration."""
        state = encoder_state(self.device, profile, await camera_video(self.device, self.store))
        width, height = state.size
        configuration: dict[str, Any] = {
            **configuration_entity(self.store, Kind.VIDEO_ENCODER, profile.value, profile.value),
            "Encoding": state.encoding,
            "Resolution": {"Width": width, "Height": height},
            "Quality": QUALITY,
            "RateControl": self.rate_control(state),
            "Multicast": multicast(),
        }
        return configuration | self.encoder_details(state)

    def audio_encoder(self) -> dict[str, Any]:
        """tt:AudioEncoderConfiguration or tt:AudioEncoder2Configuration."""
        encoding = audio_encoding(self.device)
        assert encoding is not None  # the store has no audio configurations without audio
        return {
            **configuration_entity(
                self.store, Kind.AUDIO_ENCODER, AUDIO_ENCODER_CONFIG, "Audio encoder"
            ),
            "Encoding": self.audio_name(encoding),
            "Bitrate": encoding.bitrate_kbps,
            "SampleRate": encoding.sample_rate_khz,
            "Multicast": multicast(),
        }

    async def configuration(self, kind: Kind, token: str) -> dict[str, Any]:
        """One configuration the device has (the store checked the token)."""
        match kind:
            case Kind.VIDEO_SOURCE:
                video = await camera_video(self.device, self.store)
                return video_source_configuration(self.store, video)
            case Kind.VIDEO_ENCODER:
                return await self.video_encoder(Profile(token))
            case Kind.AUDIO_SOURCE:
                return audio_source_configuration(self.store)
            case Kind.AUDIO_ENCODER:
                return self.audio_encoder()
            case Kind.PTZ:
                configuration = ptz_configuration(self.device)
                assert configuration is not None  # the store has no PTZ configuration then
                return configuration
            case Kind.AUDIO_OUTPUT:
                return audio_output_configuration(self.store)
            case Kind.AUDIO_DECODER:
                return audio_decoder_configuration(self.store)

    async def configurations(self, kind: Kind) -> list[dict[str, Any]]:
        """Every configuration of a kind the device has."""
        tokens = self.store.available.get(kind, ())
        return [await self.configuration(kind, token) for token in tokens]

    def option_profiles(self, params: Mapping[str, Any]) -> list[Profile]:
        """The encoders Get(VideoEncoder)ConfigurationOptions is about: the configuration
        named, else the one of the profile named, else all."""
        token, profile_token = params.get("ConfigurationToken"), params.get("ProfileToken")
        encoder = None
        if profile_token is not None:
            encoder = self.store.profile(profile_token).encoder
        if token is not None:
            self.store.check(Kind.VIDEO_ENCODER, token)
            encoder = Profile(token)
        return list(Profile) if encoder is None else [encoder]

    def check_option_tokens(self, kind: Kind, params: Mapping[str, Any]) -> None:
        """The tokens a Get<kind>ConfigurationOptions names exist (every configuration of the
        device fits every profile, so the options do not depend on them)."""
        if params.get("ConfigurationToken") is not None:
            self.store.check(kind, params["ConfigurationToken"])
        if params.get("ProfileToken") is not None:
            self.store.profile(params["ProfileToken"])

    def audio_options(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """GetAudioEncoderConfigurationOptions' choices (none for a camera without sound)."""
        self.check_option_tokens(Kind.AUDIO_ENCODER, params)
        encoding = audio_encoding(self.device)
        return [] if encoding is None else [encoding.options(self.audio_name(encoding))]

    async def set_video_encoder_configuration(self, request: OnvifRequest) -> None:
        configuration = request.params["Configuration"]
        token = configuration["token"]
        self.store.check(Kind.VIDEO_ENCODER, token)
        rate_control = configuration.get("RateControl") or {}
        resolution = configuration["Resolution"]
        gov_length, h264_profile = self.h264_settings(configuration)
        change = EncoderRequest(
            encoding=configuration["Encoding"],
            size=(resolution["Width"], resolution["Height"]),
            fps=rate_control.get("FrameRateLimit"),
            bitrate_kbps=rate_control.get("BitrateLimit"),
            gov_length=gov_length,
            h264_profile=h264_profile,
        )
        video = await camera_video(self.device, self.store)
        apply_encoder(self.device, Profile(token), video, change, self.digits)

    async def get_audio_output_configuration_options(self, request: OnvifRequest) -> Values:
        self.require(Kind.AUDIO_OUTPUT)
        self.check_option_tokens(Kind.AUDIO_OUTPUT, request.params)
        return {"Options": audio_output_options()}

    async def set_audio_output_configuration(self, request: OnvifRequest) -> None:
        self.require(Kind.AUDIO_OUTPUT)
        check_audio_output_change(self.store, request.params["Configuration"])

    async def set_audio_decoder_configuration(self, request: OnvifRequest) -> None:
        self.require(Kind.AUDIO_DECODER)
        check_audio_decoder_change(self.store, request.params["Configuration"])


class MediaService(ConfigurationShapes):
    digits = 0  # Media carries frame rates as whole numbers

    def audio_name(self, encoding: AudioEncoding) -> str:
        return encoding.media_name

    def rate_control(self, state: EncoderState) -> dict[str, Any]:
        return {
            "FrameRateLimit": int(carried(state.fps, self.digits)),
            "EncodingInterval": 1,
            "BitrateLimit": state.bitrate_kbps,
        }

    def encoder_details(self, state: EncoderState) -> dict[str, Any]:
        details: dict[str, Any] = {"SessionTimeout": SESSION_TIMEOUT}
        if state.gov_length is not None:
            details["H264"] = {"GovLength": state.gov_length, "H264Profile": H264_PROFILE}
        return details

    def h264_settings(self, configuration: Mapping[str, Any]) -> tuple[int | None, str | None]:
        h264 = configuration.get("H264") or {}
        return h264.get("GovLength"), h264.get("H264Profile")

    def audio_encoder(self) -> dict[str, Any]:
        return {**super().audio_encoder(), "SessionTimeout": SESSION_TIMEOUT}

    async def profile(self, profile: MediaProfile) -> dict[str, Any]:
        """tt:Profile."""
        shaped: dict[str, Any] = {
            "token": profile.token,
            "fixed": profile.fixed,
            "Name": profile.name,
        }
        for kind, token in profile.configurations.items():
            held = shaped.setdefault("Extension", {}) if kind in _EXTENSION_KINDS else shaped
            held[f"{kind.value}Configuration"] = await self.configuration(kind, token)
        return shaped

    # -- handlers ---------------------------------------------------------------------------

    async def get_service_capabilities(self, request: OnvifRequest) -> Values:
        return {
            "Capabilities": {
                "ProfileCapabilities": {"MaximumNumberOfProfiles": self.store.limit},
                "StreamingCapabilities": {
                    "RTPMulticast": False,
                    "RTP_TCP": True,
                    "RTP_RTSP_TCP": True,
                    "NonAggregateControl": False,
                    "NoRTSPStreaming": False,
                },
                "SnapshotUri": True,
                "Rotation": False,
                "VideoSourceMode": False,
                "OSD": False,
                "TemporaryOSDText": False,
                "EXICompression": False,
            }
        }

    async def get_profiles(self, request: OnvifRequest) -> Values:
        return {"Profiles": [await self.profile(profile) for profile in self.store.profiles()]}

    async def get_profile(self, request: OnvifRequest) -> Values:
        return {"Profile": await self.profile(self.store.profile(request.params["ProfileToken"]))}

    async def create_profile(self, request: OnvifRequest) -> Values:
        profile = self.store.create(request.params["Name"], request.params.get("Token"))
        return {"Profile": await self.profile(profile)}

    async def delete_profile(self, request: OnvifRequest) -> None:
        self.store.delete(request.params["ProfileToken"])

    async def add_configuration(self, kind: Kind, request: OnvifRequest) -> None:
        self.require(kind)
        params = request.params
        self.store.add(params["ProfileToken"], kind, params["ConfigurationToken"])

    async def remove_configuration(self, kind: Kind, request: OnvifRequest) -> None:
        self.require(kind)
        self.store.remove(request.params["ProfileToken"], kind)

    async def get_configurations(self, kind: Kind, request: OnvifRequest) -> Values:
        return {"Configurations": await self.configurations(kind)}

    async def get_configuration(self, kind: Kind, request: OnvifRequest) -> Values:
        self.require(kind)
        token = request.params["ConfigurationToken"]
        self.store.check(kind, token)
        return {"Configuration": await self.configuration(kind, token)}

    async def get_compatible_configurations(self, kind: Kind, request: OnvifRequest) -> Values:
        # Every configuration of the device fits every profile: there is one source of each
        # kind, and the three encoders all encode it.
        self.store.profile(request.params["ProfileToken"])
        return {"Configurations": await self.configurations(kind)}

    async def get_video_sources(self, request: OnvifRequest) -> Values:
        return {"VideoSources": [video_source(await camera_video(self.device, self.store))]}

    async def get_audio_sources(self, request: OnvifRequest) -> Values:
        return {
            "AudioSources": [audio_source()] if Kind.AUDIO_SOURCE in self.store.available else []
        }

    async def get_video_encoder_configuration_options(self, request: OnvifRequest) -> Values:
        video = await camera_video(self.device, self.store)
        options: dict[str, Any] = {"QualityRange": {"Min": QUALITY, "Max": QUALITY}}
        extension: dict[str, Any] = {}
        # The first profile of each encoding speaks for it: main offers every H.264 choice.
        for profile in self.option_profiles(request.params):
            choice = encoder_options(self.device, profile, video, self.digits)
            if choice.encoding not in options:
                options[choice.encoding], extension[choice.encoding] = _encoding_options(choice)
        options["Extension"] = extension
        return {"Options": options}

    async def get_guaranteed_number_of_video_encoder_instances(
        self, request: OnvifRequest
    ) -> Values:
        self.store.check(Kind.VIDEO_SOURCE, request.params["ConfigurationToken"])
        return {"TotalNumber": sum(ENCODER_INSTANCES.values()), **ENCODER_INSTANCES}

    async def get_audio_encoder_configuration_options(self, request: OnvifRequest) -> Values:
        return {"Options": {"Options": self.audio_options(request.params)}}

    async def get_audio_outputs(self, request: OnvifRequest) -> Values:
        return {"AudioOutputs": [{"token": token} for token in audio_outputs(self.store)]}

    async def get_audio_decoder_configuration_options(self, request: OnvifRequest) -> Values:
        self.require(Kind.AUDIO_DECODER)
        self.check_option_tokens(Kind.AUDIO_DECODER, request.params)
        # tt:G711DecOptions covers both laws (PCMU and PCMA) the backchannel takes.
        g711 = {
            "Bitrate": {"Items": [G711_KBPS]},
            "SampleRateRange": {"Items": [DECODER_SAMPLE_RATE_KHZ]},
        }
        return {"Options": {"G711DecOptions": g711}}

    async def get_stream_uri(self, request: OnvifRequest) -> Values:
        profile = self.store.profile(request.params["ProfileToken"])
        setup = request.params["StreamSetup"]
        if setup["Stream"] != "RTP-Unicast" or setup["Transport"]["Protocol"] not in (
            _STREAMING_TRANSPORTS
        ):
            raise InvalidArgVal(
                "Only RTP unicast (over UDP, TCP, RTSP or HTTP) is supported",
                subcode="InvalidStreamSetup",
            )
        tunnelled = setup["Transport"]["Protocol"] == "HTTP"
        uri = self.device.stream_uri(request, profile.stream(), tunnelled=tunnelled)
        return {"MediaUri": media_uri(uri)}

    async def get_snapshot_uri(self, request: OnvifRequest) -> Values:
        self.store.profile(request.params["ProfileToken"])
        return {"MediaUri": media_uri(self.device.snapshot_uri(request))}


def _encoding_options(options: EncoderOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """tt:JpegOptions or tt:H264Options, and the same with the bitrate range (the Extension's
    JpegOptions2 / H264Options2)."""
    shaped: dict[str, Any] = {
        "ResolutionsAvailable": [{"Width": w, "Height": h} for w, h in options.resolutions],
        "FrameRateRange": {
            "Min": int(min(options.frame_rates)),
            "Max": int(max(options.frame_rates)),
        },
        "EncodingIntervalRange": {"Min": 1, "Max": 1},
    }
    if options.encoding == "H264":
        gov_min, gov_max = options.gov_range
        shaped["GovLengthRange"] = {"Min": gov_min, "Max": gov_max}
        shaped["H264ProfilesSupported"] = [H264_PROFILE]
    low, high = options.bitrate_range_kbps
    return shaped, {**shaped, "BitrateRange": {"Min": low, "Max": high}}


def register(operations: Operations, device: DeviceContext) -> None:
    """Add this service's handlers for one device."""
    media = MediaService(device, profile_store(device))
    handlers = {
        "GetServiceCapabilities": media.get_service_capabilities,
        "GetProfiles": media.get_profiles,
        "GetProfile": media.get_profile,
        "CreateProfile": media.create_profile,
        "DeleteProfile": media.delete_profile,
        "GetVideoSources": media.get_video_sources,
        "GetAudioSources": media.get_audio_sources,
        "GetVideoEncoderConfigurationOptions": media.get_video_encoder_configuration_options,
        "SetVideoEncoderConfiguration": media.set_video_encoder_configuration,
        "GetGuaranteedNumberOfVideoEncoderInstances": (
            media.get_guaranteed_number_of_video_encoder_instances
        ),
        "GetAudioEncoderConfigurationOptions": media.get_audio_encoder_configuration_options,
        "GetAudioOutputs": media.get_audio_outputs,
        "GetAudioOutputConfigurationOptions": media.get_audio_output_configuration_options,
        "SetAudioOutputConfiguration": media.set_audio_output_configuration,
        "GetAudioDecoderConfigurationOptions": media.get_audio_decoder_configuration_options,
        "SetAudioDecoderConfiguration": media.set_audio_decoder_configuration,
        "GetStreamUri": media.get_stream_uri,
        "GetSnapshotUri": media.get_snapshot_uri,
    }
    for kind in Kind:
        handlers[f"Add{kind.value}Configuration"] = partial(media.add_configuration, kind)
        handlers[f"Remove{kind.value}Configuration"] = partial(media.remove_configuration, kind)
    for kind in CONFIGURATION_KINDS:
        name = f"{kind.value}Configuration"
        handlers[f"Get{name}s"] = partial(media.get_configurations, kind)
        handlers[f"Get{name}"] = partial(media.get_configuration, kind)
        handlers[f"GetCompatible{name}s"] = partial(media.get_compatible_configurations, kind)
    kept = {"CreateProfile", "DeleteProfile", "SetVideoEncoderConfiguration"}
    kept |= {f"{change}{kind.value}Configuration" for kind in Kind for change in ("Add", "Remove")}
    for operation, handler in handlers.items():
        operations.add(
            Service.MEDIA, operation, kept_after(device, handler) if operation in kept else handler
        )
