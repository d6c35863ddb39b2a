"""The Media (ver10) service end to end: onvif-zeep-async asks each emulated camera's virtual
device for its profiles, and the stream and snapshot URIs it hands out play in ffprobe and
aiohttp at the sizes the configurations advertise. Every response is schema-checked."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from typing import Any

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from helpers import ffprobe, jpeg_size, with_userinfo

from bridge.cameras.base import Dialect
from bridge.onvif.context import (
    AUDIO_ENCODER_CONFIG,
    AUDIO_SOURCE,
    AUDIO_SOURCE_CONFIG,
    PTZ_CONFIG,
    PTZ_NODE,
    VIDEO_SOURCE,
    VIDEO_SOURCE_CONFIG,
)
from bridge.onvif.profiles import MAX_PROFILES
from bridge.onvif.soap import Service

SIZE = (640, 480)  # the emulators' picture
HAS_AUDIO = {"hama": True, "ipcamcgi": False, "openapi": True, "foscam": True, "vapix2": True}
FIXED = ["main", "sub", "jpeg"]
UNICAST = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


# ffprobe's default five seconds of analysis are not needed: the SDP or the first pictures
# carry the size.
ANALYZE = ("-analyzeduration", "500000", "-select_streams", "v")


async def video_stream(uri: str, transport: str = "tcp") -> dict[str, Any]:
    """What ffprobe sees of the video stream of an RTSP URI handed out by the device."""
    probe = await ffprobe(
        "-rtsp_transport", transport, *ANALYZE,
        "-show_entries", "stream=codec_name,width,height",
        with_userinfo(uri, GATEWAY_USER, GATEWAY_PASSWORD),
    )  # fmt: skip
    (stream,) = probe["streams"]
    return dict(stream)


async def frame_interval(uri: str, frames: int = 5) -> float:
    """The median time between the first video frames of an RTSP URI, in seconds."""
    probe = await ffprobe(
        "-rtsp_transport", "tcp", *ANALYZE, "-read_intervals", f"%+#{frames}",
        "-show_entries", "packet=pts_time", with_userinfo(uri, GATEWAY_USER, GATEWAY_PASSWORD),
    )  # fmt: skip
    times = [float(packet["pts_time"]) for packet in probe["packets"] if "pts_time" in packet]
    return statistics.median(b - a for a, b in itertools.pairwise(times))


async def expect_fault(call: Any, *chain: str) -> None:
    assert (await fault_of(call))[-len(chain) :] == list(chain)


@pytest.mark.parametrize("dialect", list(HAS_AUDIO))
async def test_profiles_hold_what_each_camera_has(open_device: OpenDevice, dialect: str) -> None:
    device = await open_device(dialect)
    media = await device.service(Service.MEDIA)
    profiles = await media.GetProfiles()
    assert [p.token for p in profiles] == FIXED
    assert all(p.fixed for p in profiles)

    encoders = {p.token: p.VideoEncoderConfiguration for p in profiles}
    assert {token: (e.token, e.Encoding) for token, e in encoders.items()} == {
        "main": ("main", "H264"),
        "sub": ("sub", "H264"),
        "jpeg": ("jpeg", "JPEG"),
    }
    sizes = {token: (e.Resolution.Width, e.Resolution.Height) for token, e in encoders.items()}
    assert sizes == {"main": SIZE, "sub": (480, 360), "jpeg": SIZE}  # sub fits 640x360
    for encoder in encoders.values():
        assert encoder.RateControl.FrameRateLimit >= 1
        assert encoder.RateControl.EncodingInterval == 1
        assert encoder.Multicast.Port == 0
        assert encoder.Multicast.Address.IPv4Address == "0.0.0.0"
        assert encoder.SessionTimeout == dt.timedelta(seconds=60)
    for token in ("main", "sub"):
        assert encoders[token].H264.H264Profile == "Baseline"
        assert encoders[token].H264.GovLength >= 1
        assert encoders[token].RateControl.BitrateLimit >= 256
    assert encoders["jpeg"].H264 is None

    for profile in profiles:
        source = profile.VideoSourceConfiguration
        assert (source.token, source.SourceToken, source.UseCount) == (
            VIDEO_SOURCE_CONFIG,
            VIDEO_SOURCE,
            3,
        )
        assert (source.Bounds.x, source.Bounds.y) == (0, 0)
        assert (source.Bounds.width, source.Bounds.height) == SIZE
        assert profile.PTZConfiguration.token == PTZ_CONFIG  # every emulated camera moves
        assert profile.PTZConfiguration.NodeToken == PTZ_NODE
        if HAS_AUDIO[dialect]:
            assert profile.AudioSourceConfiguration.token == AUDIO_SOURCE_CONFIG
            assert profile.AudioSourceConfiguration.SourceToken == AUDIO_SOURCE
            audio = profile.AudioEncoderConfiguration
            assert (audio.token, audio.Encoding, audio.SampleRate, audio.Bitrate) == (
                AUDIO_ENCODER_CONFIG,
                "G711",
                8,
                64,
            )
        else:
            assert profile.AudioSourceConfiguration is None
            assert profile.AudioEncoderConfiguration is None

    (source,) = await media.GetVideoSources()
    assert (source.token, source.Resolution.Width, source.Resolution.Height) == (
        VIDEO_SOURCE,
        *SIZE,
    )
    assert len(await media.GetAudioSources()) == HAS_AUDIO[dialect]
    assert len(await media.GetAudioSourceConfigurations()) == HAS_AUDIO[dialect]
    assert len(await media.GetAudioEncoderConfigurations()) == HAS_AUDIO[dialect]
    options = await media.GetAudioEncoderConfigurationOptions()  # None: an empty Options
    encodings = [o.Encoding for o in options.Options] if options is not None else []
    assert encodings == (["G711"] if HAS_AUDIO[dialect] else [])
    assert device.schema_check.checked == 6


async def test_configurations_and_capabilities(open_device: OpenDevice) -> None:
    media = await (await open_device("hama")).service(Service.MEDIA)
    capabilities = await media.GetServiceCapabilities()
    assert capabilities.SnapshotUri is True
    assert capabilities.Rotation is False
    assert capabilities.StreamingCapabilities.RTP_RTSP_TCP is True
    assert capabilities.StreamingCapabilities.RTPMulticast is False
    assert capabilities.ProfileCapabilities.MaximumNumberOfProfiles == MAX_PROFILES

    encoders = await media.GetVideoEncoderConfigurations()
    assert [e.token for e in encoders] == FIXED
    sub = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "sub"})
    assert (sub.Resolution.Width, sub.Resolution.Height) == (480, 360)
    compatible = await media.GetCompatibleVideoEncoderConfigurations({"ProfileToken": "main"})
    assert [e.token for e in compatible] == FIXED
    (source,) = await media.GetCompatibleVideoSourceConfigurations({"ProfileToken": "sub"})
    assert source.token == VIDEO_SOURCE_CONFIG
    assert (
        await media.GetAudioEncoderConfiguration({"ConfigurationToken": AUDIO_ENCODER_CONFIG})
    ).Encoding == "G711"
    instances = await media.GetGuaranteedNumberOfVideoEncoderInstances(
        {"ConfigurationToken": VIDEO_SOURCE_CONFIG}
    )
    assert (instances.TotalNumber, instances.H264, instances.JPEG) == (3, 2, 1)

    options = await media.GetVideoEncoderConfigurationOptions({"ConfigurationToken": "sub"})
    assert options.JPEG is None
    resolutions = [(r.Width, r.Height) for r in options.H264.ResolutionsAvailable]
    assert resolutions == [SIZE, (480, 360), (320, 240)]  # fitting 640x360 and 320x240 too
    assert options.H264.FrameRateRange.Min == 1
    assert options.H264.H264ProfilesSupported == ["Baseline"]
    jpeg = await media.GetVideoEncoderConfigurationOptions({"ProfileToken": "jpeg"})
    assert [(r.Width, r.Height) for r in jpeg.JPEG.ResolutionsAvailable] == [SIZE]
    generic = await media.GetVideoEncoderConfigurationOptions()
    assert generic.H264 is not None
    assert generic.JPEG is not None

    await expect_fault(media.GetProfile({"ProfileToken": "nope"}), "InvalidArgVal", "NoProfile")
    await expect_fault(
        media.GetVideoEncoderConfiguration({"ConfigurationToken": "nope"}),
        "InvalidArgVal",
        "NoConfig",
    )
    await expect_fault(
        media.GetGuaranteedNumberOfVideoEncoderInstances({"ConfigurationToken": "main"}),
        "InvalidArgVal",
        "NoConfig",
    )


async def test_stream_uris_play_at_the_advertised_size(open_device: OpenDevice) -> None:
    device = await open_device("hama")
    media = await device.service(Service.MEDIA)
    rtsp_port = device.gateway.rtsp.port
    for profile in await media.GetProfiles():
        encoder = profile.VideoEncoderConfiguration
        udp = await media.GetStreamUri(
            {
                "ProfileToken": profile.token,
                "StreamSetup": {**UNICAST, "Transport": {"Protocol": "UDP"}},
            }
        )
        tcp = await media.GetStreamUri({"ProfileToken": profile.token, "StreamSetup": UNICAST})
        assert udp.Uri == tcp.Uri == f"rtsp://127.0.0.1:{rtsp_port}/hama/{profile.token}"
        assert (tcp.InvalidAfterConnect, tcp.InvalidAfterReboot) == (False, False)
        stream = await video_stream(tcp.Uri, "udp" if profile.token == "main" else "tcp")
        codec = "h264" if encoder.Encoding == "H264" else "mjpeg"
        assert (stream["codec_name"], stream["width"], stream["height"]) == (
            codec,
            encoder.Resolution.Width,
            encoder.Resolution.Height,
        )
    multicast = {**UNICAST, "Stream": "RTP-Multicast"}
    await expect_fault(
        media.GetStreamUri({"ProfileToken": "main", "StreamSetup": multicast}),
        "InvalidArgVal",
        "InvalidStreamSetup",
    )


async def test_snapshot_uri_gives_the_cameras_picture(open_device: OpenDevice) -> None:
    device = await open_device("vapix2")
    media = await device.service(Service.MEDIA)
    snapshot = await media.GetSnapshotUri({"ProfileToken": "sub"})
    assert snapshot.Uri == f"http://127.0.0.1:{device.gateway.web_port}/snapshot/vapix2.jpg"
    async with aiohttp.ClientSession() as session, session.get(snapshot.Uri) as response:
        assert response.status == 401
    digest = aiohttp.DigestAuthMiddleware(GATEWAY_USER, GATEWAY_PASSWORD)
    async with (
        aiohttp.ClientSession(middlewares=(digest,)) as session,
        session.get(snapshot.Uri) as response,
    ):
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        assert jpeg_size(await response.read()) == SIZE


async def test_set_video_encoder_configuration_changes_the_sub_stream(
    open_device: OpenDevice,
) -> None:
    device = await open_device("foscam")
    media = await device.service(Service.MEDIA)
    sub = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "sub"})
    sub.Resolution.Width, sub.Resolution.Height = 320, 240
    sub.RateControl.FrameRateLimit = 3
    sub.H264.GovLength = 6
    await media.SetVideoEncoderConfiguration({"Configuration": sub, "ForcePersistence": True})

    changed = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "sub"})
    assert (changed.Resolution.Width, changed.Resolution.Height) == (320, 240)
    assert changed.RateControl.FrameRateLimit == 3
    assert changed.H264.GovLength == 6
    main = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "main"})
    assert (main.Resolution.Width, main.Resolution.Height) == SIZE  # only sub changed

    uri = (await media.GetStreamUri({"ProfileToken": "sub", "StreamSetup": UNICAST})).Uri
    stream = await video_stream(uri)
    assert (stream["width"], stream["height"]) == (320, 240)
    # At most 3 fps: every 4th of the camera's 10 fps (the default sub takes every 2nd).
    assert 1 / 3 - 0.02 < await frame_interval(uri) < 0.5

    # What the options do not offer is refused, and changes nothing.
    for field, value in (("Width", 333), ("Height", 100)):
        wrong = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "sub"})
        setattr(wrong.Resolution, field, value)
        await expect_fault(
            media.SetVideoEncoderConfiguration({"Configuration": wrong, "ForcePersistence": True}),
            "InvalidArgVal",
            "ConfigModify",
        )
    wrong = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "sub"})
    wrong.H264.H264Profile = "High"
    await expect_fault(
        media.SetVideoEncoderConfiguration({"Configuration": wrong, "ForcePersistence": True}),
        "InvalidArgVal",
        "ConfigModify",
    )
    jpeg = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "jpeg"})
    await media.SetVideoEncoderConfiguration({"Configuration": jpeg, "ForcePersistence": True})
    jpeg.Resolution.Width, jpeg.Resolution.Height = 320, 240  # a passthrough cannot scale
    await expect_fault(
        media.SetVideoEncoderConfiguration({"Configuration": jpeg, "ForcePersistence": True}),
        "InvalidArgVal",
        "ConfigModify",
    )
    still = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "sub"})
    assert (still.Resolution.Width, still.Resolution.Height) == (320, 240)


async def test_created_profiles_up_to_the_limit(open_device: OpenDevice) -> None:
    device = await open_device("ipcamcgi")
    media = await device.service(Service.MEDIA)
    created = await media.CreateProfile({"Name": "vms", "Token": "vms1"})
    assert (created.token, created.Name, created.fixed) == ("vms1", "vms", False)
    assert created.VideoEncoderConfiguration is None
    await expect_fault(
        media.GetStreamUri({"ProfileToken": "vms1", "StreamSetup": UNICAST}),
        "Action",
        "IncompleteConfiguration",
    )

    # The calls a VMS makes after CreateProfile make it streamable: sub's stream.
    await media.AddVideoSourceConfiguration(
        {"ProfileToken": "vms1", "ConfigurationToken": VIDEO_SOURCE_CONFIG}
    )
    await media.AddVideoEncoderConfiguration({"ProfileToken": "vms1", "ConfigurationToken": "sub"})
    await media.AddPTZConfiguration({"ProfileToken": "vms1", "ConfigurationToken": PTZ_CONFIG})
    await expect_fault(  # ipcamcgi has no sound
        media.AddAudioSourceConfiguration(
            {"ProfileToken": "vms1", "ConfigurationToken": AUDIO_SOURCE_CONFIG}
        ),
        "InvalidArgVal",
        "NoConfig",
    )
    profile = await media.GetProfile({"ProfileToken": "vms1"})
    assert profile.VideoEncoderConfiguration.token == "sub"
    assert profile.VideoEncoderConfiguration.UseCount == 2
    assert profile.PTZConfiguration.NodeToken == PTZ_NODE
    uri = await media.GetStreamUri({"ProfileToken": "vms1", "StreamSetup": UNICAST})
    sub = await media.GetStreamUri({"ProfileToken": "sub", "StreamSetup": UNICAST})
    assert uri.Uri == sub.Uri
    await media.RemovePTZConfiguration({"ProfileToken": "vms1"})
    assert (await media.GetProfile({"ProfileToken": "vms1"})).PTZConfiguration is None

    await expect_fault(
        media.CreateProfile({"Name": "again", "Token": "vms1"}), "InvalidArgVal", "ProfileExists"
    )
    for n in range(MAX_PROFILES - len(FIXED) - 1):
        await media.CreateProfile({"Name": f"extra {n}"})
    assert len(await media.GetProfiles()) == MAX_PROFILES
    await expect_fault(media.CreateProfile({"Name": "one too many"}), "Action", "MaxNVTProfiles")

    await expect_fault(
        media.DeleteProfile({"ProfileToken": "main"}), "Action", "DeletionOfFixedProfile"
    )
    await media.DeleteProfile({"ProfileToken": "vms1"})
    await expect_fault(media.GetProfile({"ProfileToken": "vms1"}), "InvalidArgVal", "NoProfile")
    assert len(await media.GetProfiles()) == MAX_PROFILES - 1
    assert (await media.CreateProfile({"Name": "room again"})).fixed is False


async def test_aac_audio_is_advertised_as_aac(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.VAPIX2, camera_options={"audio": "aac"})
    media = await device.service(Service.MEDIA)
    (audio,) = await media.GetAudioEncoderConfigurations()
    assert (audio.Encoding, audio.SampleRate, audio.Bitrate) == ("AAC", 8, 24)
    (option,) = (await media.GetAudioEncoderConfigurationOptions()).Options
    assert (option.Encoding, option.SampleRateList.Items) == ("AAC", [8])
