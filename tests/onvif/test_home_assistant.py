"""Home Assistant's ONVIF integration, as it sets a camera up with onvif-zeep-async, against
the gateway in front of each emulated camera: the device and media steps, in its order, and
the stream URI it is handed played by ffprobe. (Its PTZ and event steps are in test_ptz.py and
test_events.py.) The gateway checks every response it sends against the schemas."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from gateway_devices import DIALECTS, start_device
from helpers import FFPROBE, ffprobe, with_userinfo

from bridge.cameras.base import Dialect

pytestmark = pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_home_assistant_sets_up_the_camera(
    start_sim: StartSim, start_gateway: StartGateway, dialect: Dialect
) -> None:
    device = await start_device(start_sim, start_gateway, dialect)
    async with device.client() as camera:
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
        request = media.create_type("GetStreamUri")
        request.ProfileToken = h264[0].token
        request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        stream_uri = (await media.GetStreamUri(request)).Uri
        snapshot = await camera.get_snapshot(h264[0].token)

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
    # The first frames of its video (the camera's sound, where it has some, plays beside it).
    probe = await ffprobe(
        "-select_streams", "v", "-read_intervals", "%+#3", "-count_frames",
        "-show_entries", "stream=codec_name,nb_read_frames",
        with_userinfo(stream_uri, GATEWAY_USER, GATEWAY_PASSWORD),
    )  # fmt: skip
    assert probe["streams"] == [{"codec_name": "h264", "nb_read_frames": "3"}]
