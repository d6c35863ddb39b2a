"""Home Assistant's ONVIF integration, as it sets a camera up and uses it with
onvif-zeep-async, against the gateway in front of each emulated camera, in its order: the clock
before any credentials, the capabilities, then (with digest credentials) the MAC, the device,
the profiles, the stream and snapshot URIs, PTZ moves and presets, and a pull point for the
camera's motion. Every response is schema-checked on both ends."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    DIALECTS,
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from helpers import FFPROBE, ffprobe, with_userinfo
from test_events import motion, pull_until
from test_ptz import DIALECTS as PTZ_DIALECTS
from test_ptz import pan_tilt

from bridge.cameras.base import Dialect

pytestmark = pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_home_assistant_sets_up_and_uses_the_camera(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    camera = device.client()
    # Before any credentials: the clock (to sign WS-Security tokens with the device's
    # time), then the services and capabilities.
    clock = await (await camera.create_devicemgmt_service()).authless_GetSystemDateAndTime()
    await camera.update_xaddrs()  # builds a new device service client, time-adjusted
    capabilities = await camera.get_capabilities()
    # With credentials: the MAC (Home Assistant's unique id), the device, the profiles.
    devicemgmt = await camera.create_devicemgmt_service()
    interfaces = await devicemgmt.GetNetworkInterfaces()
    info = await devicemgmt.GetDeviceInformation()
    media = await camera.create_media_service()
    profiles = await media.GetProfiles()
    h264 = [
        profile
        for profile in profiles
        if profile.VideoEncoderConfiguration is not None
        and profile.VideoEncoderConfiguration.Encoding == "H264"
    ]
    assert h264, "no H264 profile"
    profile = h264[0]
    request = media.create_type("GetStreamUri")
    request.ProfileToken = profile.token
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    stream_uri = (await media.GetStreamUri(request)).Uri
    snapshot = await camera.get_snapshot(profile.token)  # GetSnapshotUri, then the picture

    utc = clock.UTCDateTime
    assert utc.Date.Year == dt.datetime.now(dt.UTC).year
    assert capabilities["Media"]["XAddr"].startswith(f"http://127.0.0.1:{device.port}/")
    enabled = [interface for interface in interfaces if interface.Enabled]
    assert enabled[0].Info.HwAddress == device.sim.camera.options.mac
    assert (info.Manufacturer, info.Model) == (
        device.context.info.manufacturer,
        device.context.info.model,
    )
    assert stream_uri.startswith(f"rtsp://127.0.0.1:{device.gateway.rtsp.port}/")
    assert GATEWAY_PASSWORD not in stream_uri
    assert snapshot is not None
    assert snapshot.startswith(b"\xff\xd8")

    # PTZ on the profile that carries it: a preset to go to, then the moves HA's service
    # calls make, each reaching the camera as its own CGI.
    assert profile.PTZConfiguration is not None  # every emulated camera moves
    ptz = await camera.create_ptz_service()
    spec = PTZ_DIALECTS[dialect]
    token = await ptz.SetPreset({"ProfileToken": profile.token, "PresetName": "door"})
    presets = await ptz.GetPresets({"ProfileToken": profile.token})
    assert token in [preset.token for preset in presets]
    await device.clear_requests()
    await ptz.ContinuousMove({"ProfileToken": profile.token, "Velocity": pan_tilt(0.5, 0.0)})
    await ptz.Stop({"ProfileToken": profile.token, "PanTilt": True, "Zoom": False})
    await ptz.GotoPreset({"ProfileToken": profile.token, "PresetToken": token})
    await device.expect(*spec.continuous, *spec.stop, *spec.goto_preset, token=token)

    # Events: a pull point, and motion caused in the camera (its CGI reports it, or the
    # gateway sees it in the pictures: hama).
    assert capabilities["Events"]["WSPullPointSupport"]
    manager = await camera.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
    try:
        await manager.set_synchronization_point()
        pull_point = manager.get_service()
        await pull_until(pull_point, *motion(False, "Initialized"))
        await device.cause("motion?active=1&level=80")
        await pull_until(pull_point, *motion(True))
    finally:
        await manager.shutdown()

    # The first frames of its video (the camera's sound, where it has some, plays beside it).
    probe = await ffprobe(
        "-select_streams", "v", "-read_intervals", "%+#3", "-count_frames",
        "-show_entries", "stream=codec_name,nb_read_frames",
        with_userinfo(stream_uri, GATEWAY_USER, GATEWAY_PASSWORD),
    )  # fmt: skip
    assert probe["streams"] == [{"codec_name": "h264", "nb_read_frames": "3"}]
    assert device.schema_check.checked > 10
