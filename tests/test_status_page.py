"""The status page: every camera with its state and the addresses a VMS uses, behind the
gateway's users, never a credential, every value escaped."""

from __future__ import annotations

import aiohttp
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim

from bridge.simulator.core import SimOptions
from bridge.simulator.vapix2 import Vapix2Simulator
from bridge.web.app import CameraStatus, FoundCamera, Status, render_status


async def test_status_page_lists_cameras_and_their_addresses(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    sim = await start_sim(Vapix2Simulator(SimOptions()))
    gateway = await start_gateway(sim)
    url = f"http://127.0.0.1:{gateway.web_port}/"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as refused:
            assert refused.status == 401
        authorization = aiohttp.encode_basic_auth(GATEWAY_USER, GATEWAY_PASSWORD)
        async with session.get(url, headers={"Authorization": authorization}) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
    assert "<td>vapix2</td><td>ready</td>" in page
    assert "AXIS 213 PTZ" in page
    assert f"rtsp://127.0.0.1:{gateway.rtsp.port}/vapix2/main" in page
    onvif = gateway.cameras["vapix2"].onvif
    assert onvif is not None
    assert f"http://127.0.0.1:{onvif.ports.onvif}/onvif/device_service" in page
    assert "@" not in page  # no credentials in any URL


def test_status_page_escapes_what_cameras_and_config_say() -> None:
    page = render_status(
        Status(
            [CameraStatus("porch", "connecting", "auto", "<script>alert(1)</script>")],
            [FoundCamera("http://192.0.2.9", "hama", "<img src=x onerror=alert(1)>")],
        )
    )
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;" in page
    assert "Found on the LAN, not configured" in page
