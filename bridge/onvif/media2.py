"""ONVIF Media2 (ver20): the same profiles as Media (one store), in Media2's shapes.

Media2 names configurations by type (tr2:ConfigurationEnumeration) and adds or removes them
with one AddConfiguration / RemoveConfiguration; encoders are tt:VideoEncoder2Configuration and
tt:AudioEncoder2Configuration, with MIME names for encodings and fractional frame rates. A camera
that plays audio has an AudioOutput and an AudioDecoder configuration (the decoder's options
are the encodings the RTSP backchannel takes); a camera that does not has none, and the options
and Set operations of those two are not served for it (ter:ActionNotSupported).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from bridge.errors import InvalidArgVal, NoConfig
from bridge.kept import Kind
from bridge.onvif.context import DeviceContext, kept_after
from bridge.onvif.media import CONFIGURATION_KINDS, ConfigurationShapes
from bridge.onvif.profiles import (
    DECODER_ENCODINGS,
    DECODER_SAMPLE_RATE_KHZ,
    ENCODER_INSTANCES,
    G711_KBPS,
    H264_PROFILE,
    QUALITY,
    AudioEncoding,
    EncoderState,
    MediaProfile,
    audio_choice,
    camera_video,
    carried,
    encoder_options,
    has_audio_output,
    profile_store,
)
from bridge.onvif.soap import OnvifRequest, Operations, Service

Values = Mapping[str, Any]
ALL = "All"
# The first two get the gateway's one RTSP URI (its server takes RTP over UDP and TCP),
# RtspOverHttp the tunnel's http:// URI. Older spellings (Media's UDP, TCP, HTTP, any case)
# reach here as these: the tolerant reader maps them.
STREAM_PROTOCOLS = frozenset({"RtspUnicast", "RTSP", "RtspOverHttp"})


class Media2Service(ConfigurationShapes):
    digits = 2  # Media2 carries frame rates as floats; two decimals tell a camera's rates apart

    def audio_name(self, encoding: AudioEncoding) -> str:
        return encoding.mime_name

    def rate_control(self, state: EncoderState) -> dict[str, Any]:
        return {
            "FrameRateLimit": carried(state.fps, self.digits),
            "BitrateLimit": state.bitrate_kbps,
        }

    def encoder_details(self, state: EncoderState) -> dict[str, Any]:
        if state.gov_length is None:
            return {}
        return {"GovLength": state.gov_length, "Profile": H264_PROFILE}

    def h264_settings(self, configuration: Mapping[str, Any]) -> tuple[int | None, str | None]:
        return configuration.get("GovLength"), configuration.get("Profile")

    async def profile(self, profile: MediaProfile, kinds: frozenset[Kind] | None) -> Values:
        """tr2:MediaProfile with the configurations of ``kinds`` (None: no configurations)."""
        shaped: dict[str, Any] = {
            "token": profile.token,
            "fixed": profile.fixed,
            "Name": profile.name,
        }
        if kinds is not None:
            shaped["Configurations"] = {
                kind.value: await self.configuration(kind, token)
                for kind, token in profile.configurations.items()
                if kind in kinds
            }
        return shaped

    def references(self, refs: Iterable[Mapping[str, Any]] | None) -> list[tuple[Kind, str]]:
        """tr2:ConfigurationRef entries as configurations the device has (ter:NoConfig for
        any other); "All" entries are ignored, and a missing token names the only
        configuration of its type."""
        resolved = []
        for ref in refs or ():
            if ref["Type"] == ALL:
                continue
            try:
                kind = Kind(ref["Type"])
            except ValueError:
                raise NoConfig(f"No {ref['Type']} configuration") from None
            token = ref.get("Token")
            if token is None:
                tokens = self.store.available.get(kind, ())
                if not tokens:
                    raise NoConfig(f"No {kind.value} configuration")
                if len(tokens) > 1:
                    raise NoConfig(f"Which {kind.value} configuration? A Token is needed")
                token = tokens[0]
            self.store.check(kind, token)
            resolved.append((kind, token))
        return resolved

    # -- handlers ---------------------------------------------------------------------------

    async def get_service_capabilities(self, request: OnvifRequest) -> Values:
        return {
            "Capabilities": {
                "ProfileCapabilities": {
                    "MaximumNumberOfProfiles": self.store.limit,
                    "ConfigurationsSupported": [kind.value for kind in self.store.available],
                },
                "StreamingCapabilities": {
                    "RTSPStreaming": True,
                    "RTPMulticast": False,
                    "RTP_RTSP_TCP": True,
                    "NonAggregateControl": False,
                    "AutoStartMulticast": False,
                    "SecureRTSPStreaming": False,
                },
                "SnapshotUri": True,
                "Rotation": False,
                "VideoSourceMode": False,
                "OSD": False,
                "TemporaryOSDText": False,
                "Mask": False,
                "SourceMask": False,
            }
        }

    async def get_profiles(self, request: OnvifRequest) -> Values:
        token, types = request.params.get("Token"), request.params.get("Type") or []
        profiles = self.store.profiles() if token is None else [self.store.profile(token)]
        kinds: frozenset[Kind] | None = None
        if types:
            kinds = frozenset(Kind) if ALL in types else frozenset(_kinds(types))
        return {"Profiles": [await self.profile(profile, kinds) for profile in profiles]}

    async def create_profile(self, request: OnvifRequest) -> Values:
        references = self.references(request.params.get("Configuration"))
        profile = self.store.create(request.params["Name"])
        for kind, token in references:
            self.store.add(profile.token, kind, token)
        return {"Token": profile.token}

    async def delete_profile(self, request: OnvifRequest) -> None:
        self.store.delete(request.params["Token"])

    async def add_configuration(self, request: OnvifRequest) -> None:
        profile = self.store.profile(request.params["ProfileToken"])
        references = self.references(request.params.get("Configuration"))  # NoConfig first
        if request.params.get("Name") is not None:
            self.store.rename(profile.token, request.params["Name"])
        for kind, token in references:
            self.store.add(profile.token, kind, token)

    async def remove_configuration(self, request: OnvifRequest) -> None:
        profile = self.store.profile(request.params["ProfileToken"])
        types = [ref["Type"] for ref in request.params["Configuration"]]
        for kind in Kind if ALL in types else _kinds(types):
            self.store.remove(profile.token, kind)

    async def get_configurations(self, kind: Kind, request: OnvifRequest) -> Values:
        if request.params.get("ProfileToken") is not None:
            # Every configuration the device has fits every profile.
            self.store.profile(request.params["ProfileToken"])
        token = request.params.get("ConfigurationToken")
        if token is None:
            return {"Configurations": await self.configurations(kind)}
        self.store.check(kind, token)
        return {"Configurations": [await self.configuration(kind, token)]}

    async def get_video_encoder_configuration_options(self, request: OnvifRequest) -> Values:
        video = await camera_video(self.device, self.store)
        options: dict[str, dict[str, Any]] = {}
        # The first profile of each encoding speaks for it: main offers every H.264 choice.
        for profile in self.option_profiles(request.params):
            choice = encoder_options(self.device, profile, video, self.digits)
            if choice.encoding in options:
                continue
            low, high = choice.bitrate_range_kbps
            shaped: dict[str, Any] = {
                "Encoding": choice.encoding,
                "QualityRange": {"Min": QUALITY, "Max": QUALITY},
                "ResolutionsAvailable": [{"Width": w, "Height": h} for w, h in choice.resolutions],
                "BitrateRange": {"Min": low, "Max": high},
                "FrameRatesSupported": list(choice.frame_rates),
            }
            if choice.encoding == "H264":
                shaped["GovLengthRange"] = list(choice.gov_range)
                shaped["ProfilesSupported"] = [H264_PROFILE]
            options[choice.encoding] = shaped
        return {"Options": list(options.values())}

    async def get_video_encoder_instances(self, request: OnvifRequest) -> Values:
        self.store.check(Kind.VIDEO_SOURCE, request.params["ConfigurationToken"])
        codecs = [{"Encoding": name, "Number": n} for name, n in ENCODER_INSTANCES.items()]
        return {"Info": {"Codec": codecs, "Total": sum(ENCODER_INSTANCES.values())}}

    async def get_audio_encoder_configuration_options(self, request: OnvifRequest) -> Values:
        options = self.audio_options(request.params)
        assert options  # registered for cameras with sound only
        return {"Options": options}

    async def get_audio_decoder_configuration_options(self, request: OnvifRequest) -> Values:
        self.check_option_tokens(Kind.AUDIO_DECODER, request.params)
        options = [
            audio_choice(name, G711_KBPS, DECODER_SAMPLE_RATE_KHZ) for name in DECODER_ENCODINGS
        ]
        return {"Options": options}

    async def get_stream_uri(self, request: OnvifRequest) -> Values:
        profile = self.store.profile(request.params["ProfileToken"])
        if request.params["Protocol"] not in STREAM_PROTOCOLS:
            raise InvalidArgVal(
                f"Protocol must be one of {', '.join(sorted(STREAM_PROTOCOLS))}",
                subcode="InvalidStreamSetup",
            )
        tunnelled = request.params["Protocol"] == "RtspOverHttp"
        return {"Uri": self.device.stream_uri(request, profile.stream(), tunnelled=tunnelled)}

    async def get_snapshot_uri(self, request: OnvifRequest) -> Values:
        self.store.profile(request.params["ProfileToken"])
        return {"Uri": self.device.snapshot_uri(request)}


def _kinds(types: Iterable[str]) -> list[Kind]:
    """The configuration types the device knows, of those named (others hold nothing here)."""
    known = {kind.value: kind for kind in Kind}
    return [known[name] for name in types if name in known]


def register(operations: Operations, device: DeviceContext) -> None:
    """Add this service's handlers for one device."""
    media2 = Media2Service(device, profile_store(device))
    handlers = {
        "GetServiceCapabilities": media2.get_service_capabilities,
        "GetProfiles": media2.get_profiles,
        "CreateProfile": media2.create_profile,
        "DeleteProfile": media2.delete_profile,
        "AddConfiguration": media2.add_configuration,
        "RemoveConfiguration": media2.remove_configuration,
        "GetVideoEncoderConfigurationOptions": media2.get_video_encoder_configuration_options,
        "SetVideoEncoderConfiguration": media2.set_video_encoder_configuration,
        "GetVideoEncoderInstances": media2.get_video_encoder_instances,
        "GetStreamUri": media2.get_stream_uri,
        "GetSnapshotUri": media2.get_snapshot_uri,
    }
    for kind in CONFIGURATION_KINDS:
        handlers[f"Get{kind.value}Configurations"] = partial(media2.get_configurations, kind)
    if device.media.has_audio:
        handlers["GetAudioEncoderConfigurationOptions"] = (
            media2.get_audio_encoder_configuration_options
        )
    if has_audio_output(device):
        handlers |= {
            "GetAudioOutputConfigurationOptions": media2.get_audio_output_configuration_options,
            "SetAudioOutputConfiguration": media2.set_audio_output_configuration,
            "GetAudioDecoderConfigurationOptions": media2.get_audio_decoder_configuration_options,
            "SetAudioDecoderConfiguration": media2.set_audio_decoder_configuration,
        }
    kept = {
        "CreateProfile",
        "DeleteProfile",
        "AddConfiguration",
        "RemoveConfiguration",
        "SetVideoEncoderConfiguration",
    }
    for operation, handler in handlers.items():
        operations.add(
            Service.MEDIA2, operation, kept_after(device, handler) if operation in kept else handler
        )
