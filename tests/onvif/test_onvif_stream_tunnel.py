"""GetStreamUri's RTSP-over-HTTP URI, asked for as ONVIF clients ask (Media through
onvif-zeep-async, Media2 through zeep), plays through the tunnel in ffprobe. Every response
is schema-checked."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway_devices import (
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from test_onvif_media import UNICAST, video_stream
from test_onvif_media2 import media2_service

from bridge.onvif.soap import Service


def as_tunnel_client_plays_it(uri: str) -> str:
    """What ffmpeg opens for a tunnel URI: its host, port and path as rtsp://, which ffmpeg
    tunnels with ``-rtsp_transport http``."""
    parts = urlsplit(uri)
    assert parts.scheme == "http"
    return parts._replace(scheme="rtsp").geturl()


async def test_the_tunnel_uris_of_media_and_media2_play_through_the_tunnel(
    open_device: OpenDevice,
) -> None:
    device = await open_device("openapi")
    media = await device.service(Service.MEDIA)
    http = {**UNICAST, "Transport": {"Protocol": "HTTP"}}
    answer = await media.GetStreamUri({"ProfileToken": "main", "StreamSetup": http})
    assert answer.Uri == f"http://127.0.0.1:{device.gateway.rtsp.port}/openapi/main"
    assert (answer.InvalidAfterConnect, answer.InvalidAfterReboot) == (False, False)
    async with media2_service(device) as media2:
        assert await media2.GetStreamUri(Protocol="RtspOverHttp", ProfileToken="main") == (
            answer.Uri
        )
        sub = await media2.GetStreamUri(Protocol="RtspOverHttp", ProfileToken="sub")
    assert device.schema_check.checked >= 3
    main = await video_stream(as_tunnel_client_plays_it(answer.Uri), "http")
    assert (main["codec_name"], main["width"], main["height"]) == ("h264", 640, 480)
    stream = await video_stream(as_tunnel_client_plays_it(sub), "http")
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 480, 360)
