"""The status page's server side as a browser's requests meet it, in front of emulated cameras:
``/api/cameras``, the page's files, ``/live/<camera>.mjpg`` and the PTZ controls."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from helpers import basic_authorization, decode_jpeg, describe_status

from bridge.app import Gateway
from bridge.commands import demo_config
from bridge.config import Config
from bridge.discovery import lan
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.vapix2 import Vapix2Simulator
from bridge.web import api, live

AUTH = {"Authorization": basic_authorization(GATEWAY_USER, GATEWAY_PASSWORD)}
WAIT = 10.0  # seconds any one wait in these tests may take


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim(start_sim: StartSim) -> RunningSimulator:
    return await start_sim(Vapix2Simulator(SimOptions()))


@pytest.fixture
async def gateway(sim: RunningSimulator, start_gateway: StartGateway) -> Gateway:
    return await start_gateway(sim)


def url(gateway: Gateway, path: str) -> str:
    return f"http://127.0.0.1:{gateway.web_port}{path}"


async def cameras(http: aiohttp.ClientSession, gateway: Gateway) -> dict[str, Any]:
    async with http.get(url(gateway, "/api/cameras"), headers=AUTH) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        status: dict[str, Any] = await response.json()
    return status


async def pictures(response: aiohttp.ClientResponse, count: int) -> list[bytes]:
    """The next ``count`` JPEGs of a multipart/x-mixed-replace live stream."""
    found = []
    async with asyncio.timeout(WAIT):
        while len(found) < count:
            assert await response.content.readline() == f"--{live.BOUNDARY}\r\n".encode()
            headers = {}
            while (line := await response.content.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            found.append(await response.content.readexactly(int(headers["content-length"])))
            assert await response.content.readexactly(2) == b"\r\n"
    return found


async def test_the_api_shows_each_camera_with_its_addresses_and_no_credential(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    async with http.get(url(gateway, "/api/cameras")) as refused:
        assert refused.status == 401
        assert "Digest" in refused.headers.getall("WWW-Authenticate")[0]
    status = await cameras(http, gateway)
    (camera,) = status["cameras"]
    onvif = gateway.cameras["vapix2"].onvif
    assert onvif is not None
    assert camera["name"] == "vapix2"
    assert camera["state"] == "online"
    assert (camera["dialect"], camera["model"]) == ("vapix2", "AXIS 213 PTZ")
    assert camera["onvif_url"] == f"http://127.0.0.1:{onvif.ports.onvif}/onvif/device_service"
    assert [p["url"] for p in camera["profiles"]] == [
        f"rtsp://127.0.0.1:{gateway.rtsp.port}/vapix2/{name}" for name in ("main", "sub", "jpeg")
    ]
    assert camera["ptz"] == {"move": True, "zoom": True, "presets": True}
    assert camera["input_fps"] is None  # nobody watches, so it is not pulled
    assert GATEWAY_PASSWORD not in str(status).replace('"password"', "")
    assert "@" not in str(status)


async def test_the_page_is_served_whole_from_the_gateway(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    async with http.get(url(gateway, "/")) as refused:
        assert refused.status == 401
    bodies = []
    for path, kind in (("/", "text/html"), ("/static/app.js", "text/javascript")):
        async with http.get(url(gateway, path), headers=AUTH) as response:
            assert response.status == 200
            assert response.content_type == kind
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            bodies.append(await response.text())
    assert 'src="static/app.js"' in bodies[0]
    for body in bodies:  # nothing from elsewhere: the CSP would block it anyway
        assert "http://" not in body
        assert "https://" not in body
    async with http.get(url(gateway, "/static/../config.yaml"), headers=AUTH) as response:
        assert response.status == 404


async def test_found_cameras_come_with_a_config_entry_that_passes_check_config(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    gateway.discovered = [lan.Found("192.0.2.9", 80, dialect="hama", model="<b>X</b>")]
    gateway.discovered[0].suggested_name = "hama-1"
    (found,) = (await cameras(http, gateway))["found"]
    assert (found["url"], found["model"]) == ("http://192.0.2.9", "<b>X</b>")
    entry = yaml.safe_load(found["config"])
    entry["cameras"][0]["password"] = "secret"
    config = {"gateway": {"username": "u", "password": "p"}, **entry}
    assert Config.model_validate(config).cameras[0].url == "http://192.0.2.9"


async def test_live_view_passes_the_cameras_own_pictures_and_lists_its_viewer(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    async with http.get(url(gateway, "/live/vapix2.mjpg")) as refused:
        assert refused.status == 401
    async with http.get(url(gateway, "/live/nope.mjpg"), headers=AUTH) as unknown:
        assert unknown.status == 404
    media = gateway.cameras["vapix2"].media
    assert media is not None
    async with media.frames.subscribe(50) as sent:  # what the camera sent meanwhile
        async with http.get(url(gateway, "/live/vapix2.mjpg"), headers=AUTH) as response:
            assert response.status == 200
            assert response.content_type == "multipart/x-mixed-replace"
            first, second = await pictures(response, 2)
            (camera,) = (await cameras(http, gateway))["cameras"]
        assert first != second
        assert (decode_jpeg(first).width, decode_jpeg(first).height) == (640, 480)
        # No transcode: what went out is byte for byte what the camera sent.
        camera_pictures = [(await sent.get()).data for _ in range(sent._queue.qsize())]
        assert first in camera_pictures
        assert second in camera_pictures
    assert camera["live_viewers"] == [{"address": "127.0.0.1", "transport": "mjpeg"}]
    assert camera["input_fps"] > 0
    assert camera["jpeg_bytes"] > 1000
    # One upstream for the live view and everyone else.
    assert media.frames.connects == 1


async def test_live_views_are_capped_per_client_address(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    responses = [
        await http.get(url(gateway, "/live/vapix2.mjpg"), headers=AUTH)
        for _ in range(live.PER_CLIENT)
    ]
    try:
        assert [r.status for r in responses] == [200] * live.PER_CLIENT
        async with http.get(url(gateway, "/live/vapix2.mjpg"), headers=AUTH) as refused:
            assert refused.status == 429
    finally:
        for response in responses:
            response.close()


async def stalled_viewer(gateway: Gateway, path: str) -> asyncio.StreamWriter:
    """A client that asks for ``path`` and then reads nothing (a small receive buffer, so
    what the gateway holds for it shows soon)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gateway.web_port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n".encode()
    )
    return writer


async def test_a_slow_live_viewer_loses_pictures_and_delays_no_other(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    media = gateway.cameras["vapix2"].media
    assert media is not None
    stalled = await stalled_viewer(gateway, "/live/vapix2.mjpg")
    try:
        async with http.get(url(gateway, "/live/vapix2.mjpg"), headers=AUTH) as reader:
            assert reader.status == 200
            dropped = media.frames.dropped
            start = time.monotonic()
            # The stalled one reads nothing while the other takes 40 pictures (4 s at 10 fps):
            # its socket fills, then its queue of DEPTH pictures drops its oldest.
            got = await pictures(reader, 40)
            elapsed = time.monotonic() - start
            assert len(set(got)) == 40
            assert elapsed < 5.5  # at the camera's rate, not held back by the stalled viewer
            assert media.frames.dropped > dropped + 10
            queued = [s._queue.qsize() for s in media.frames._subscribers]
            assert len(queued) == 2
            assert max(queued) <= live.DEPTH
    finally:
        stalled.close()


async def test_live_views_end_when_the_gateway_stops(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    async with http.get(url(gateway, "/live/vapix2.mjpg"), headers=AUTH) as response:
        await pictures(response, 1)
        start = time.monotonic()
        await gateway.stop()
        async with asyncio.timeout(WAIT):
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.content.read()  # to the end of the stream
        assert time.monotonic() - start < 1.5  # not the 2 s aiohttp waits for handlers


async def sim_requests(http: aiohttp.ClientSession, sim: RunningSimulator) -> list[str]:
    """The query strings of the PTZ CGI requests the emulator received."""
    async with http.get(f"{sim.url}/__sim__/requests") as response:
        return [r["query_string"] for r in await response.json() if r["path"].endswith("ptz.cgi")]


async def ptz(
    http: aiohttp.ClientSession, gateway: Gateway, body: object, **headers: str
) -> tuple[int, str]:
    async with http.post(
        url(gateway, "/api/cameras/vapix2/ptz"),
        json=body,
        headers={**AUTH, **headers},
    ) as response:
        return response.status, await response.text()


async def test_a_ptz_press_moves_the_camera_and_a_lost_release_stops_it(
    http: aiohttp.ClientSession, gateway: Gateway, sim: RunningSimulator
) -> None:
    async with http.delete(f"{sim.url}/__sim__/requests"):
        pass
    assert await ptz(http, gateway, {"action": "move", "pan": 1, "tilt": -0.5}) == (204, "")
    assert await sim_requests(http, sim) == ["continuouspantiltmove=100,-50&continuouszoommove=0"]
    assert sim.camera.state.ptz.velocity.pan == 1.0
    # No stop comes (the tab was closed): the gateway stops the head itself.
    async with asyncio.timeout(api.MOVE_TIMEOUT + 2):
        while sim.camera.state.ptz.velocity.pan:
            await sim.camera.state.wait_changed(sim.camera.state.version, within=1.0)
    assert (await sim_requests(http, sim))[-1].startswith("continuouspantiltmove=0,0")


async def test_ptz_refuses_cross_site_requests_bad_input_and_missing_users(
    http: aiohttp.ClientSession, gateway: Gateway, sim: RunningSimulator
) -> None:
    async with http.delete(f"{sim.url}/__sim__/requests"):
        pass
    endpoint = url(gateway, "/api/cameras/vapix2/ptz")
    move = {"action": "move", "pan": 1}
    async with http.post(endpoint, json=move) as response:
        assert response.status == 401
    # What a form on another site can send: a simple content type, credentials attached.
    async with http.post(endpoint, data="action=move&pan=1", headers=AUTH) as response:
        assert response.status == 415
    assert (await ptz(http, gateway, move, Origin="http://evil.example"))[0] == 403
    assert (await ptz(http, gateway, move, **{"Sec-Fetch-Site": "cross-site"}))[0] == 403
    for bad in (
        {"action": "dance"},
        {"action": "move", "pan": 5},
        {"action": "move", "pan": "1"},
        {"action": "move", "tilt": True},
        {"action": "preset", "token": "x" * 100},
        {"action": "preset"},
        [1, 2],
    ):
        assert (await ptz(http, gateway, bad))[0] == 400, bad
    async with http.post(
        endpoint, data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    async with http.post(
        url(gateway, "/api/cameras/nope/ptz"), json=move, headers=AUTH
    ) as response:
        assert response.status == 404
    assert await sim_requests(http, sim) == []  # none of them reached the camera
    origin = f"http://127.0.0.1:{gateway.web_port}"
    assert (await ptz(http, gateway, {"action": "stop"}, Origin=origin))[0] == 204


async def test_an_unwatched_camera_turns_offline_and_back_while_the_page_looks(
    http: aiohttp.ClientSession, gateway: Gateway, sim: RunningSimulator
) -> None:
    async def state_within(seconds: float, wanted: str) -> None:
        """Ask as the open page does (its requests are what start the probes)."""
        async with asyncio.timeout(seconds):
            while True:
                if (await cameras(http, gateway))["cameras"][0]["state"] == wanted:
                    return
                await asyncio.sleep(0.25)

    await sim.stop()
    await state_within(5.0, "offline")
    (camera,) = (await cameras(http, gateway))["cameras"]
    assert camera["last_error"].startswith("unreachable")
    back = await start_simulator(sim.camera, sim.host, sim.port)
    try:
        await state_within(5.0, "online")
    finally:
        await back.stop()


async def test_a_disabled_camera_is_listed_not_served_and_readiness_does_not_wait_for_it(
    http: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    """``enabled: false`` keeps a camera in the config but takes it offline on purpose: the
    page lists it as disabled, nothing of it is served, /readyz does not wait for it, and a
    reload turns it on and off as if it were added and removed."""
    config = demo_config([sim], "127.0.0.1", 0, 0, 0)
    (entry,) = config.cameras
    spare = entry.model_copy(update={"name": "spare", "enabled": False})
    gateway = Gateway(config.model_copy(update={"cameras": [spare, entry]}))
    await gateway.start()
    try:
        assert list(gateway.cameras) == ["vapix2"]
        async with asyncio.timeout(WAIT):
            await gateway.cameras["vapix2"].ready.wait()
        listed = (await cameras(http, gateway))["cameras"]
        assert [camera["name"] for camera in listed] == ["spare", "vapix2"]  # the config's order
        off = listed[0]
        assert (off["state"], off["camera_url"], off["onvif_url"]) == ("disabled", sim.url, "")
        assert off["profiles"] == []
        async with http.get(url(gateway, "/readyz")) as response:
            assert (response.status, await response.text()) == (200, "ready\n")
        for path in ("/snapshot/spare.jpg", "/live/spare.mjpg"):
            async with http.get(url(gateway, path), headers=AUTH) as response:
                assert response.status == 404, path
        async with http.get(url(gateway, "/metrics"), headers=AUTH) as response:
            assert 'camera="spare"' not in await response.text()
        assert await describe_status(gateway.rtsp.port, "spare/jpeg", AUTH["Authorization"]) == 404

        await gateway.reload(config.model_copy(update={"cameras": [entry, spare]}))
        assert list(gateway.cameras) == ["vapix2"]  # nothing to do: it stays off
        on = spare.model_copy(update={"enabled": True})
        await gateway.reload(config.model_copy(update={"cameras": [on, entry]}))
        async with asyncio.timeout(WAIT):
            await gateway.cameras["spare"].ready.wait()
        assert (await cameras(http, gateway))["cameras"][0]["state"] == "online"
        assert await describe_status(gateway.rtsp.port, "spare/jpeg", AUTH["Authorization"]) == 200

        turned_off = time.time()
        await gateway.reload(config.model_copy(update={"cameras": [spare, entry]}))
        assert list(gateway.cameras) == ["vapix2"]
        off = (await cameras(http, gateway))["cameras"][0]
        assert off["state"] == "disabled"
        assert off["since"] >= turned_off
        assert await describe_status(gateway.rtsp.port, "spare/jpeg", AUTH["Authorization"]) == 404
        async with http.get(url(gateway, "/readyz")) as response:
            assert response.status == 200
    finally:
        await gateway.stop()
