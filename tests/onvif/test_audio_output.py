"""The audio output and decoder of cameras that play audio (what the RTSP backchannel feeds), in
Media and DeviceIO through onvif-zeep-async, in Media2 and the current DeviceIO through zeep with
the gateway's WSDLs; and their absence on a camera that plays none. Every response, faults
included, is schema-checked."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from gateway_devices import (
    Device,
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from test_access import PASSWORD, add_user
from test_onvif_media import FIXED
from test_onvif_media2 import media2_service, own_wsdl_service
from zeep.helpers import serialize_object

from bridge.cameras.base import Dialect
from bridge.onvif.context import AUDIO_DECODER_CONFIG, AUDIO_OUTPUT, AUDIO_OUTPUT_CONFIG
from bridge.onvif.soap import Service

TALKING = [Dialect.VAPIX2, Dialect.OPENAPI]  # their emulators take audio on their talk CGI
SILENT = Dialect.IPCAMCGI
AUTO = "www.onvif.org/ver20/HalfDuplex/Auto"
LEVEL = 100  # no talk CGI has a volume: the one level there is


async def expect_fault(call: Awaitable[Any], *chain: str) -> None:
    assert (await fault_of(call))[-len(chain) :] == list(chain)


def plays_audio(device: Device) -> bool:
    return device.driver.capabilities.audio_out is not None


def in_extension(profile: Any) -> list[str]:
    """The tokens of the configurations a tt:Profile holds in its Extension. onvif-zeep-async
    reads them as the unknown elements of the Extension's leading xs:any (as zeep does with
    every such sequence), not as its AudioOutput/AudioDecoderConfiguration."""
    extension = profile.Extension
    if extension is None:
        return []
    return [held.token for held in extension._value_1 or ()]


@pytest.mark.parametrize("dialect", TALKING)
async def test_media_reads_the_audio_output_and_decoder(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    assert plays_audio(device)
    media = await device.service(Service.MEDIA)  # onvif-zeep-async, as Home Assistant builds it

    assert [output.token for output in await media.GetAudioOutputs()] == [AUDIO_OUTPUT]
    (output,) = await media.GetAudioOutputConfigurations()
    assert (output.token, output.OutputToken, output.OutputLevel) == (
        AUDIO_OUTPUT_CONFIG,
        AUDIO_OUTPUT,
        LEVEL,
    )
    assert (output.SendPrimacy, output.UseCount) == (AUTO, len(FIXED))
    one = await media.GetAudioOutputConfiguration({"ConfigurationToken": AUDIO_OUTPUT_CONFIG})
    assert one.token == AUDIO_OUTPUT_CONFIG
    compatible = await media.GetCompatibleAudioOutputConfigurations({"ProfileToken": "main"})
    assert [c.token for c in compatible] == [AUDIO_OUTPUT_CONFIG]
    options = await media.GetAudioOutputConfigurationOptions({})
    assert options.OutputTokensAvailable == [AUDIO_OUTPUT]
    assert (options.OutputLevelRange.Min, options.OutputLevelRange.Max) == (LEVEL, LEVEL)
    assert options.SendPrimacyOptions == [AUTO]

    (decoder,) = await media.GetAudioDecoderConfigurations()
    assert (decoder.token, decoder.UseCount) == (AUDIO_DECODER_CONFIG, len(FIXED))
    one = await media.GetAudioDecoderConfiguration({"ConfigurationToken": AUDIO_DECODER_CONFIG})
    assert one.Name == decoder.Name
    compatible = await media.GetCompatibleAudioDecoderConfigurations({"ProfileToken": "sub"})
    assert [c.token for c in compatible] == [AUDIO_DECODER_CONFIG]
    decoding = await media.GetAudioDecoderConfigurationOptions({"ProfileToken": "main"})
    g711 = decoding.G711DecOptions  # the backchannel's PCMU and PCMA
    assert (g711.Bitrate.Items, g711.SampleRateRange.Items) == ([64], [8])
    assert (decoding.AACDecOptions, decoding.G726DecOptions) == (None, None)

    # The fixed profiles hold both (ONVIF 2.0 put them in the profile's Extension).
    for profile in await media.GetProfiles():
        assert in_extension(profile) == [AUDIO_OUTPUT_CONFIG, AUDIO_DECODER_CONFIG]
    assert device.schema_check.checked == 10


async def test_media_adds_removes_and_sets_only_what_is_true(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.OPENAPI)
    media = await device.service(Service.MEDIA)
    profile = (await media.CreateProfile({"Name": "intercom"})).token
    for kind, token in (("Output", AUDIO_OUTPUT_CONFIG), ("Decoder", AUDIO_DECODER_CONFIG)):
        adding = {"ProfileToken": profile, "ConfigurationToken": token}
        await getattr(media, f"AddAudio{kind}Configuration")(adding)
    held = await media.GetProfile({"ProfileToken": profile})
    assert in_extension(held) == [AUDIO_OUTPUT_CONFIG, AUDIO_DECODER_CONFIG]
    assert held.Extension._value_1[0].UseCount == len(FIXED) + 1
    await media.RemoveAudioDecoderConfiguration({"ProfileToken": profile})
    held = await media.GetProfile({"ProfileToken": profile})
    assert in_extension(held) == [AUDIO_OUTPUT_CONFIG]
    await expect_fault(
        media.AddAudioOutputConfiguration({"ProfileToken": profile, "ConfigurationToken": "x"}),
        "InvalidArgVal",
        "NoConfig",
    )

    output = await media.GetAudioOutputConfiguration({"ConfigurationToken": AUDIO_OUTPUT_CONFIG})
    await media.SetAudioOutputConfiguration({"Configuration": output, "ForcePersistence": True})
    for field, value in (("OutputLevel", 50), ("SendPrimacy", AUTO.replace("Auto", "Client"))):
        changed = {**serialize_object(output, dict), field: value}
        await expect_fault(
            media.SetAudioOutputConfiguration({"Configuration": changed, "ForcePersistence": True}),
            "InvalidArgVal",
            "ConfigModify",
        )
    decoder = await media.GetAudioDecoderConfiguration({"ConfigurationToken": AUDIO_DECODER_CONFIG})
    await media.SetAudioDecoderConfiguration({"Configuration": decoder, "ForcePersistence": True})
    unchanged = await media.GetAudioOutputConfiguration({"ConfigurationToken": AUDIO_OUTPUT_CONFIG})
    assert (unchanged.OutputLevel, unchanged.SendPrimacy) == (LEVEL, AUTO)


async def test_media_on_a_camera_that_plays_no_audio(open_device: OpenDevice) -> None:
    device = await open_device(SILENT)
    assert not plays_audio(device)
    media = await device.service(Service.MEDIA)
    assert await media.GetAudioOutputs() == []
    assert await media.GetAudioOutputConfigurations() == []
    assert await media.GetAudioDecoderConfigurations() == []
    assert await media.GetCompatibleAudioOutputConfigurations({"ProfileToken": "main"}) == []
    assert all(in_extension(profile) == [] for profile in await media.GetProfiles())
    on_main = {"ProfileToken": "main", "ConfigurationToken": AUDIO_OUTPUT_CONFIG}
    output = {"token": AUDIO_OUTPUT_CONFIG, "Name": "Audio output", "UseCount": 0}
    output |= {"OutputToken": AUDIO_OUTPUT, "OutputLevel": LEVEL}
    decoder = {"token": AUDIO_DECODER_CONFIG, "Name": "Audio decoder", "UseCount": 0}
    calls: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (lambda: media.GetAudioOutputConfiguration({"ConfigurationToken": AUDIO_OUTPUT_CONFIG}),
         "AudioOutputNotSupported"),
        (lambda: media.GetAudioOutputConfigurationOptions({}), "AudioOutputNotSupported"),
        (lambda: media.AddAudioOutputConfiguration(on_main), "AudioOutputNotSupported"),
        (lambda: media.RemoveAudioOutputConfiguration({"ProfileToken": "main"}),
         "AudioOutputNotSupported"),
        (lambda: media.SetAudioOutputConfiguration(
            {"Configuration": output, "ForcePersistence": True}), "AudioOutputNotSupported"),
        (lambda: media.GetAudioDecoderConfiguration({"ConfigurationToken": AUDIO_DECODER_CONFIG}),
         "AudioDecodingNotSupported"),
        (lambda: media.GetAudioDecoderConfigurationOptions({}), "AudioDecodingNotSupported"),
        (lambda: media.AddAudioDecoderConfiguration(
            {**on_main, "ConfigurationToken": AUDIO_DECODER_CONFIG}), "AudioDecodingNotSupported"),
        (lambda: media.SetAudioDecoderConfiguration(
            {"Configuration": decoder, "ForcePersistence": True}), "AudioDecodingNotSupported"),
    ]  # fmt: skip
    for call, subcode in calls:
        await expect_fault(call(), "ActionNotSupported", subcode)


@pytest.mark.parametrize("dialect", [*TALKING, SILENT])
async def test_media2_audio_output_and_decoder(open_device: OpenDevice, dialect: Dialect) -> None:
    device = await open_device(dialect)
    talks = plays_audio(device)
    async with media2_service(device) as media2:
        supported = (await media2.GetServiceCapabilities()).ProfileCapabilities
        kinds = {"AudioOutput", "AudioDecoder"}
        assert (kinds <= set(supported.ConfigurationsSupported)) == talks
        outputs = await media2.GetAudioOutputConfigurations()
        decoders = await media2.GetAudioDecoderConfigurations()
        if not talks:
            assert (outputs, decoders) == ([], [])
            await expect_fault(media2.GetAudioOutputConfigurationOptions(), "ActionNotSupported")
            await expect_fault(media2.GetAudioDecoderConfigurationOptions(), "ActionNotSupported")
            await expect_fault(
                media2.AddConfiguration(
                    ProfileToken="main", Configuration=[{"Type": "AudioOutput"}]
                ),
                "InvalidArgVal",
                "NoConfig",
            )
            (main,) = await media2.GetProfiles(Token="main", Type=["All"])
            assert (main.Configurations.AudioOutput, main.Configurations.AudioDecoder) == (
                None,
                None,
            )
            return

        (output,) = outputs
        assert (output.token, output.OutputToken, output.OutputLevel) == (
            AUDIO_OUTPUT_CONFIG,
            AUDIO_OUTPUT,
            LEVEL,
        )
        assert [d.token for d in decoders] == [AUDIO_DECODER_CONFIG]
        mine = await media2.GetAudioOutputConfigurations(ConfigurationToken=AUDIO_OUTPUT_CONFIG)
        assert [o.token for o in mine] == [AUDIO_OUTPUT_CONFIG]
        options = await media2.GetAudioOutputConfigurationOptions(ProfileToken="main")
        assert (options.OutputTokensAvailable, options.OutputLevelRange.Max) == (
            [AUDIO_OUTPUT],
            LEVEL,
        )
        decoding = await media2.GetAudioDecoderConfigurationOptions()
        assert [(d.Encoding, d.SampleRateList.Items, d.BitrateList.Items) for d in decoding] == [
            ("PCMU", [8], [64]),
            ("PCMA", [8], [64]),
        ]

        # A profile made for talking: the output and its decoder, added in one call.
        profile = await media2.CreateProfile(Name="talk")
        await media2.AddConfiguration(
            ProfileToken=profile,
            Configuration=[
                {"Type": "AudioOutput", "Token": AUDIO_OUTPUT_CONFIG},
                {"Type": "AudioDecoder"},  # the only one
            ],
        )
        (talk,) = await media2.GetProfiles(Token=profile, Type=["All"])
        assert talk.Configurations.AudioOutput.token == AUDIO_OUTPUT_CONFIG
        assert talk.Configurations.AudioDecoder.token == AUDIO_DECODER_CONFIG
        assert talk.Configurations.AudioOutput.UseCount == len(FIXED) + 1
        assert talk.Configurations.VideoSource is None
        (talk,) = await media2.GetProfiles(Token=profile, Type=["AudioDecoder"])
        assert (talk.Configurations.AudioOutput, talk.Configurations.AudioDecoder.token) == (
            None,
            AUDIO_DECODER_CONFIG,
        )
        await media2.RemoveConfiguration(
            ProfileToken=profile, Configuration=[{"Type": "AudioDecoder"}]
        )
        (talk,) = await media2.GetProfiles(Token=profile, Type=["All"])
        assert talk.Configurations.AudioDecoder is None
        assert talk.Configurations.AudioOutput is not None
        for held in await media2.GetProfiles(Type=["AudioOutput"]):
            assert (held.Configurations.AudioOutput is not None) == (
                held.token in [*FIXED, profile]
            )

        await media2.SetAudioOutputConfiguration(Configuration=output)
        output.OutputLevel = LEVEL // 2
        await expect_fault(
            media2.SetAudioOutputConfiguration(Configuration=output),
            "InvalidArgVal",
            "ConfigModify",
        )
        (decoder,) = decoders
        await media2.SetAudioDecoderConfiguration(Configuration=decoder)
        decoder.token = "another"
        await expect_fault(
            media2.SetAudioDecoderConfiguration(Configuration=decoder), "InvalidArgVal", "NoConfig"
        )
    assert device.schema_check.checked > 15


@pytest.mark.parametrize("dialect", [*TALKING, SILENT])
async def test_deviceio_audio_outputs(open_device: OpenDevice, dialect: Dialect) -> None:
    device = await open_device(dialect)
    talks = plays_audio(device)
    camera = device.client()
    await camera.update_xaddrs()
    deviceio = await camera.create_deviceio_service()
    assert (await deviceio.GetServiceCapabilities()).AudioOutputs == int(talks)
    outputs = [AUDIO_OUTPUT] if talks else []
    # onvif-zeep-async's DeviceIO WSDL is older: its GetAudioOutputs is Media's element (and
    # answered as Media's); the current one has its own, answered with tokens.
    assert [output.token for output in await deviceio.GetAudioOutputs()] == outputs
    async with own_wsdl_service(device, Service.DEVICEIO, "DeviceIOBinding") as current:
        assert await current.GetAudioOutputs() == outputs
    asked = {"AudioOutputToken": AUDIO_OUTPUT}
    if not talks:
        await expect_fault(
            deviceio.GetAudioOutputConfiguration(asked), "InvalidArgVal", "NoAudioOutput"
        )
        await expect_fault(
            deviceio.GetAudioOutputConfigurationOptions(asked), "InvalidArgVal", "NoAudioOutput"
        )
        return
    configuration = (await deviceio.GetAudioOutputConfiguration(asked)).AudioOutputConfiguration
    assert (configuration.token, configuration.OutputLevel) == (AUDIO_OUTPUT_CONFIG, LEVEL)
    options = (await deviceio.GetAudioOutputConfigurationOptions(asked)).AudioOutputOptions
    assert options.OutputTokensAvailable == [AUDIO_OUTPUT]
    await deviceio.SetAudioOutputConfiguration(
        {"Configuration": configuration, "ForcePersistence": True}
    )
    configuration.OutputToken = "speaker 2"
    await expect_fault(
        deviceio.SetAudioOutputConfiguration(
            {"Configuration": configuration, "ForcePersistence": True}
        ),
        "InvalidArgVal",
        "ConfigModify",
    )
    await expect_fault(
        deviceio.GetAudioOutputConfiguration({"AudioOutputToken": "speaker 2"}),
        "InvalidArgVal",
        "NoAudioOutput",
    )


async def test_a_user_reads_the_audio_output_but_cannot_change_it(
    open_device: OpenDevice,
) -> None:
    device = await add_user(await open_device(Dialect.VAPIX2), "viewer", "User")
    await add_user(device, "operator", "Operator")
    viewer = device.client("viewer", PASSWORD)
    media = await device.service(Service.MEDIA, viewer)
    deviceio = await device.service(Service.DEVICEIO, viewer)
    read = await media.GetAudioOutputConfiguration({"ConfigurationToken": AUDIO_OUTPUT_CONFIG})
    output = serialize_object(read, dict)  # as every service's client takes it
    assert [o.token for o in await media.GetAudioDecoderConfigurations()] == [AUDIO_DECODER_CONFIG]
    assert (await deviceio.GetServiceCapabilities()).AudioOutputs == 1
    profile = (await media.GetProfiles())[0].token
    on_profile = {"ProfileToken": profile, "ConfigurationToken": AUDIO_OUTPUT_CONFIG}
    setting = {"Configuration": output, "ForcePersistence": True}
    async with contextlib.AsyncExitStack() as stack:
        media2 = await stack.enter_async_context(media2_service(device, "viewer", PASSWORD))
        assert len(await media2.GetAudioOutputConfigurations()) == 1
        removal = [{"Type": "AudioOutput"}]
        refused: list[Callable[[], Awaitable[Any]]] = [
            lambda: media.AddAudioOutputConfiguration(on_profile),
            lambda: media.RemoveAudioOutputConfiguration({"ProfileToken": profile}),
            lambda: media.SetAudioOutputConfiguration(setting),
            lambda: deviceio.SetAudioOutputConfiguration(setting),
            lambda: media2.AddConfiguration(ProfileToken=profile, Configuration=removal),
            lambda: media2.RemoveConfiguration(ProfileToken=profile, Configuration=removal),
            lambda: media2.SetAudioOutputConfiguration(Configuration=output),
        ]
        for call in refused:
            assert await fault_of(call()) == ["NotAuthorized"]
        (held,) = await media2.GetProfiles(Token=profile, Type=["AudioOutput"])
        assert held.Configurations.AudioOutput is not None  # the user changed nothing
        operator = await stack.enter_async_context(media2_service(device, "operator", PASSWORD))
        await operator.RemoveConfiguration(ProfileToken=profile, Configuration=removal)
        await operator.SetAudioOutputConfiguration(Configuration=output)
        (held,) = await media2.GetProfiles(Token=profile, Type=["AudioOutput"])
        assert held.Configurations is None  # the operator's change: no audio output left
