"""The Media2 (ver20) service end to end, against emulated cameras behind the gateway.

onvif-zeep-async has no Media2 client, so zeep itself (the library beneath it) drives the
service from the gateway's own WSDL, with a WS-Security digest as that library sends it.
Every response is schema-checked; profiles are the ones Media shows (one store).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import zeep
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    Device,
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from test_onvif_media import FIXED, SIZE, UNICAST, expect_fault, video_stream
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.wsse.username import UsernameToken

from bridge.onvif.context import AUDIO_ENCODER_CONFIG, PTZ_CONFIG, VIDEO_SOURCE_CONFIG
from bridge.onvif.profiles import MAX_PROFILES
from bridge.onvif.schemas import load_wsdl
from bridge.onvif.soap import Service

Media2 = tuple[Device, Any, Any]  # the device, its Media2 and its Media service
OpenMedia2 = Callable[[str], Awaitable[Media2]]


@asynccontextmanager
async def own_wsdl_service(
    device: Device,
    service: Service,
    binding: str,
    user: str = GATEWAY_USER,
    password: str = GATEWAY_PASSWORD,
) -> AsyncIterator[Any]:
    """A zeep client of one of the device's services, built from the gateway's own WSDL, as
    ``user``, validating every response."""
    async with httpx.AsyncClient() as http:
        with httpx.Client() as wsdl_http:  # zeep wants one; the WSDL is loaded already
            client = zeep.AsyncClient(
                load_wsdl(service.wsdl),
                transport=AsyncTransport(client=http, wsdl_client=wsdl_http),
                wsse=UsernameToken(user, password, use_digest=True),
                plugins=[device.schema_check],
            )
            # zeep's AsyncClient.create_service builds a synchronous proxy: bind by hand.
            yield AsyncServiceProxy(
                client,
                client.wsdl.bindings[f"{{{service.namespace}}}{binding}"],
                address=f"http://127.0.0.1:{device.port}{service.path}",
            )


def media2_service(
    device: Device, user: str = GATEWAY_USER, password: str = GATEWAY_PASSWORD
) -> contextlib.AbstractAsyncContextManager[Any]:
    """A zeep client of the device's Media2 service as ``user``, validating every response."""
    return own_wsdl_service(device, Service.MEDIA2, "Media2Binding", user, password)


@pytest.fixture
async def open_media2(open_device: OpenDevice) -> AsyncIterator[OpenMedia2]:
    """open_media2(dialect): an emulated camera's device, with Media2 and Media clients."""
    async with contextlib.AsyncExitStack() as clients:

        async def open_media2(dialect: str) -> Media2:
            device = await open_device(dialect)
            media2 = await clients.enter_async_context(media2_service(device))
            return device, media2, await device.service(Service.MEDIA)

        yield open_media2


@pytest.mark.parametrize("dialect", ["hama", "ipcamcgi"])
async def test_profiles_and_configurations(open_media2: OpenMedia2, dialect: str) -> None:
    device, media2, _ = await open_media2(dialect)
    has_audio = dialect == "hama"
    capabilities = await media2.GetServiceCapabilities()
    assert capabilities.ProfileCapabilities.MaximumNumberOfProfiles == MAX_PROFILES
    kinds = ["VideoSource", "VideoEncoder", "PTZ"] + has_audio * ["AudioSource", "AudioEncoder"]
    assert sorted(capabilities.ProfileCapabilities.ConfigurationsSupported) == sorted(kinds)
    assert capabilities.StreamingCapabilities.RTP_RTSP_TCP is True
    assert capabilities.SnapshotUri is True

    bare = await media2.GetProfiles()
    assert [(p.token, p.fixed, p.Configurations) for p in bare] == [(t, True, None) for t in FIXED]
    full = await media2.GetProfiles(Type=["All"])
    for profile in full:
        held = profile.Configurations
        assert held.VideoSource.token == VIDEO_SOURCE_CONFIG
        assert held.VideoEncoder.token == profile.token
        assert held.PTZ.token == PTZ_CONFIG
        assert (held.AudioSource is not None) == (held.AudioEncoder is not None) == has_audio
    (sub,) = await media2.GetProfiles(Token="sub", Type=["VideoEncoder"])
    encoder = sub.Configurations.VideoEncoder
    assert sub.Configurations.VideoSource is None
    assert (encoder.Encoding, encoder.Resolution.Width, encoder.Resolution.Height) == (
        "H264",
        480,
        360,
    )
    assert (encoder.Profile, encoder.GovLength >= 1) == ("Baseline", True)
    assert encoder.RateControl.FrameRateLimit > 0

    encoders = await media2.GetVideoEncoderConfigurations()
    assert [(e.token, e.Encoding) for e in encoders] == [
        ("main", "H264"),
        ("sub", "H264"),
        ("jpeg", "JPEG"),
    ]
    (jpeg,) = await media2.GetVideoEncoderConfigurations(ConfigurationToken="jpeg")
    assert (jpeg.Resolution.Width, jpeg.Resolution.Height) == SIZE
    options = await media2.GetVideoEncoderConfigurationOptions()
    h264, jpeg_options = options
    assert (h264.Encoding, jpeg_options.Encoding) == ("H264", "JPEG")
    assert (h264.ResolutionsAvailable[0].Width, h264.ResolutionsAvailable[0].Height) == SIZE
    assert h264.ProfilesSupported == ["Baseline"]
    assert h264.BitrateRange.Min == 256
    assert len(h264.GovLengthRange) == 2
    assert h264.FrameRatesSupported == sorted(h264.FrameRatesSupported, reverse=True)
    (sources,) = await media2.GetVideoSourceConfigurations()
    assert (sources.Bounds.width, sources.Bounds.height) == SIZE
    instances = await media2.GetVideoEncoderInstances(ConfigurationToken=VIDEO_SOURCE_CONFIG)
    assert instances.Total == 3

    audio = await media2.GetAudioEncoderConfigurations()
    if has_audio:
        assert [(a.token, a.Encoding, a.SampleRate) for a in audio] == [
            (AUDIO_ENCODER_CONFIG, "PCMU", 8)
        ]
        (option,) = await media2.GetAudioEncoderConfigurationOptions()
        assert (option.Encoding, option.SampleRateList.Items) == ("PCMU", [8])
    else:
        assert audio == []
        await expect_fault(media2.GetAudioEncoderConfigurationOptions(), "ActionNotSupported")
    await expect_fault(
        media2.GetVideoEncoderConfigurations(ConfigurationToken="nope"), "InvalidArgVal", "NoConfig"
    )
    assert device.schema_check.checked > 10


async def test_stream_and_snapshot_uris(open_media2: OpenMedia2) -> None:
    _, media2, media = await open_media2("hama")
    for profile in FIXED:
        uris = {
            await media2.GetStreamUri(Protocol=protocol, ProfileToken=profile)
            for protocol in ("RtspUnicast", "RTSP")
        }
        media_uri = await media.GetStreamUri({"ProfileToken": profile, "StreamSetup": UNICAST})
        assert uris == {media_uri.Uri}
        # The tunnel's URI: the same host, port and path over http://, as Media gives it.
        tunnel = await media2.GetStreamUri(Protocol="RtspOverHttp", ProfileToken=profile)
        assert tunnel == media_uri.Uri.replace("rtsp://", "http://")
        http = {**UNICAST, "Transport": {"Protocol": "HTTP"}}
        media_tunnel = await media.GetStreamUri({"ProfileToken": profile, "StreamSetup": http})
        assert media_tunnel.Uri == tunnel
    stream = await video_stream(await media2.GetStreamUri(Protocol="RTSP", ProfileToken="jpeg"))
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", *SIZE)
    await expect_fault(
        media2.GetStreamUri(Protocol="RtspMulticast", ProfileToken="main"),
        "InvalidArgVal",
        "InvalidStreamSetup",
    )
    snapshot = await media2.GetSnapshotUri(ProfileToken="main")
    assert snapshot == (await media.GetSnapshotUri({"ProfileToken": "main"})).Uri


async def test_profiles_are_shared_with_media(open_media2: OpenMedia2) -> None:
    _, media2, media = await open_media2("hama")
    token = await media2.CreateProfile(
        Name="vms",
        Configuration=[{"Type": "VideoSource"}, {"Type": "VideoEncoder", "Token": "jpeg"}],
    )
    seen = await media.GetProfile({"ProfileToken": token})  # Media sees Media2's profile
    assert (seen.Name, seen.fixed, seen.VideoEncoderConfiguration.token) == ("vms", False, "jpeg")
    assert seen.AudioSourceConfiguration is None
    jpeg = await media2.GetStreamUri(Protocol="RTSP", ProfileToken="jpeg")
    assert await media2.GetStreamUri(Protocol="RTSP", ProfileToken=token) == jpeg

    await media2.AddConfiguration(
        ProfileToken=token,
        Name="renamed",
        Configuration=[{"Type": "AudioSource"}, {"Type": "PTZ", "Token": PTZ_CONFIG}],
    )
    (profile,) = await media2.GetProfiles(Token=token, Type=["All"])
    assert profile.Name == "renamed"
    assert profile.Configurations.AudioSource is not None
    assert profile.Configurations.PTZ.UseCount == 4
    await expect_fault(
        media2.AddConfiguration(ProfileToken=token, Configuration=[{"Type": "VideoEncoder"}]),
        "InvalidArgVal",
        "NoConfig",  # which of the three?
    )
    await expect_fault(
        media2.AddConfiguration(
            ProfileToken=token, Configuration=[{"Type": "Metadata", "Token": "m"}]
        ),
        "InvalidArgVal",
        "NoConfig",
    )
    await media2.RemoveConfiguration(ProfileToken=token, Configuration=[{"Type": "All"}])
    (profile,) = await media2.GetProfiles(Token=token, Type=["All"])
    assert profile.Configurations is None  # zeep's reading of an empty one
    await expect_fault(
        media2.GetStreamUri(Protocol="RTSP", ProfileToken=token),
        "Action",
        "IncompleteConfiguration",
    )

    created = await media.CreateProfile({"Name": "from media"})
    assert created.token in [p.token for p in await media2.GetProfiles()]
    await media2.DeleteProfile(Token=created.token)
    await expect_fault(media2.DeleteProfile(Token="main"), "Action", "DeletionOfFixedProfile")
    for n in range(MAX_PROFILES - len(FIXED) - 1):
        await media2.CreateProfile(Name=f"extra {n}")
    await expect_fault(media2.CreateProfile(Name="one too many"), "Action", "MaxNVTProfiles")
    await media2.DeleteProfile(Token=token)
    await expect_fault(media2.GetProfiles(Token=token), "InvalidArgVal", "NoProfile")


async def test_set_video_encoder_configuration(open_media2: OpenMedia2) -> None:
    _, media2, media = await open_media2("openapi")
    (main,) = await media2.GetVideoEncoderConfigurations(ConfigurationToken="main")
    (options, _) = await media2.GetVideoEncoderConfigurationOptions()
    slowest = options.FrameRatesSupported[-1]
    main.Resolution.Width, main.Resolution.Height = 320, 240
    main.RateControl.FrameRateLimit = slowest
    await media2.SetVideoEncoderConfiguration(Configuration=main)
    (changed,) = await media2.GetVideoEncoderConfigurations(ConfigurationToken="main")
    assert (changed.Resolution.Width, changed.Resolution.Height) == (320, 240)
    assert changed.RateControl.FrameRateLimit == pytest.approx(slowest)
    seen = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "main"})
    assert (seen.Resolution.Width, seen.Resolution.Height) == (320, 240)

    changed.Encoding = "JPEG"
    await expect_fault(
        media2.SetVideoEncoderConfiguration(Configuration=changed), "InvalidArgVal", "ConfigModify"
    )
