"""Every VMS finds every camera device of the gateway by itself: on a LAN of network
namespaces (tests/netlab.py), with the clients VMS use, never the project's own parsers.

The legacy cameras are emulators on 198.51.100.11-15 (their own namespace), the gateway runs
as ``bridge run`` on 198.51.100.1 (plus macvlan addresses of its own for some camera devices)
and the test itself is the VMS at 198.51.100.100.
"""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import netlab
import pytest
import yaml
from lxml import etree
from netlab import Lan, Program, camera_mac
from onvif import ONVIFCamera
from wsdiscovery import Scope
from wsdiscovery.discovery import ThreadedWSDiscovery
from yarl import URL
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

DIALECTS = ("hama", "ipcamcgi", "openapi", "foscam", "vapix2")
MODELS = {
    "hama": "IP - Cam M360",
    "ipcamcgi": "TV-IP410",
    "openapi": "NC-5212PTZ",
    "foscam": "IP Camera",
    "vapix2": "AXIS 213 PTZ",
}
USER, PASSWORD = "admin", "lab-secret"
OWN_ADDRESSES = ("198.51.100.51", "198.51.100.52")
STREAMING = "onvif://www.onvif.org/Profile/Streaming"
LAB_CAMERAS = str(Path(__file__).parents[1] / "lab_cameras.py")
NPM_PROBE = Path(__file__).parents[1] / "clients" / "onvif_probe.js"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
SEARCH_SECONDS = 2.0
CAMERA_READY = r"camera (\S+): .+ \((\w+)\)$"

pytestmark = pytest.mark.skipif(netlab.available() is not None, reason=str(netlab.available()))


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    """The LAN, with the five legacy cameras up (announcing themselves as their families
    did), for the whole module; each test starts the gateway it needs."""
    lan = Lan()
    lan.build(cameras=len(DIALECTS), devices=OWN_ADDRESSES)
    specs = [f"{d}@{a}:80" for d, a in zip(DIALECTS, lan.camera_addresses, strict=True)]
    cameras = lan.popen_python("cams", LAB_CAMERAS, *specs)
    try:
        assert cameras.stdout is not None
        readable, _, _ = select.select([cameras.stdout], [], [], 30)
        assert readable, "the emulated cameras did not start"
        assert cameras.stdout.readline().strip() == "ready"
        yield lan
    finally:
        cameras.terminate()
        cameras.communicate(timeout=10)
        lan.destroy()


@pytest.fixture
async def vms(lan: Lan) -> AsyncIterator[Lan]:
    """The test runs on the VMS's host; the gateways it started stop after it."""
    with lan.inside("vms"):
        try:
            yield lan
        finally:
            await lan.stop_all()


def camera_entries(lan: Lan, own: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "name": dialect,
            "url": f"http://{address}",
            "dialect": dialect,
            "username": "admin",
            "password": "admin",
        }
        | ({"address": own[dialect]} if own and dialect in own else {})
        for dialect, address in zip(DIALECTS, lan.camera_addresses, strict=True)
    ]


async def start_gateway(
    lan: Lan, config_dir: Path, cameras: list[dict[str, Any]], **gateway: Any
) -> Program:
    """``bridge run`` on the gateway's host; returns once every camera is served and
    announced."""
    config = config_dir / "bridge.yaml"
    settings = {"listen_host": "0.0.0.0", "username": USER, "password": PASSWORD, **gateway}
    config.write_text(yaml.safe_dump({"gateway": settings, "cameras": cameras}))
    program = await lan.spawn_python("gw", "-m", "bridge", "run", "--config", str(config))
    await program.wait_for(CAMERA_READY, count=len(cameras))
    return program


async def wsdiscovery_search(
    scope: str = STREAMING, *, on_bye: list[str] | None = None, stop: Program | None = None
) -> list[Any]:
    """Home Assistant's search: the WSDiscovery library, searchServices with a scope.
    With ``stop``, that program is stopped while the client listens (for its Byes)."""
    client = ThreadedWSDiscovery()
    client.start()
    try:
        if on_bye is not None:
            client.setRemoteServiceByeCallback(on_bye.append)
        services = await asyncio.to_thread(
            client.searchServices, scopes=[Scope(scope)], timeout=SEARCH_SECONDS
        )
        if stop is not None:
            await stop.stop()
            await asyncio.sleep(0.5)  # the Byes are datagrams in flight: let them land
        return list(services)
    finally:
        client.stop()


def scope_value(service: Any, kind: str) -> str:
    prefix = f"onvif://www.onvif.org/{kind}/"
    return next(str(s) for s in service.getScopes() if str(s).startswith(prefix))[len(prefix) :]


async def device_client(xaddr: str) -> ONVIFCamera:
    url = URL(xaddr)
    camera = ONVIFCamera(url.host, url.port, USER, PASSWORD, no_cache=True, adjust_time=True)
    await camera.update_xaddrs()
    return camera


async def multicast_probe(
    payload: bytes, expect: int, to: str = "239.255.255.250"
) -> list[tuple[bytes, str]]:
    """Send a raw WS-Discovery datagram to the group (or unicast ``to`` an address); the
    replies, with their source address (``expect`` of them, or what came within the window)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((netlab.VMS_ADDRESS, 0))
    loop = asyncio.get_running_loop()
    replies: list[tuple[bytes, str]] = []
    try:
        await loop.sock_sendto(sock, payload, (to, 3702))
        deadline = time.monotonic() + SEARCH_SECONDS
        while len(replies) < expect and (left := deadline - time.monotonic()) > 0:
            try:
                data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), left)
            except TimeoutError:
                break
            replies.append((data, source[0]))
    finally:
        sock.close()
    return replies


def empty_probe() -> bytes:
    """A SOAP 1.2 Probe without types or scopes: every device matches."""
    return (
        f'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:a="{WSA}" '
        f'xmlns:d="{WSD}"><e:Header><a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>'
        f"<a:Action>{WSD}/Probe</a:Action></e:Header><e:Body><d:Probe/></e:Body></e:Envelope>"
    ).encode()


def scopes_of(reply: bytes, kind: str) -> list[str]:
    """The values of one kind of ONVIF scope in a ProbeMatch (read with lxml, not ours)."""
    scopes = (etree.fromstring(reply).findtext(f".//{{{WSD}}}Scopes") or "").split()
    prefix = f"onvif://www.onvif.org/{kind}/"
    return [s[len(prefix) :] for s in scopes if s.startswith(prefix)]


async def test_home_assistant_finds_every_camera_device_and_each_xaddr_is_that_camera(
    vms: Lan, tmp_path: Path
) -> None:
    gateway = await start_gateway(vms, tmp_path, camera_entries(vms))
    services = await wsdiscovery_search()
    by_name = {scope_value(s, "name"): s for s in services}
    assert sorted(by_name) == sorted(DIALECTS)
    assert len({s.getEPR() for s in services}) == len(DIALECTS)  # one endpoint per device
    for index, dialect in enumerate(DIALECTS):
        service = by_name[dialect]
        assert service.getEPR().startswith("urn:uuid:")
        (xaddr,) = service.getXAddrs()
        assert xaddr.startswith(f"http://{netlab.GATEWAY_ADDRESS}:")
        assert scope_value(service, "MAC") == camera_mac(index)
        camera = await device_client(xaddr)
        try:
            devicemgmt = await camera.create_devicemgmt_service()
            info = await devicemgmt.GetDeviceInformation()
            (interface,) = await devicemgmt.GetNetworkInterfaces()
        finally:
            await camera.close()
        assert info.Model == MODELS[dialect]
        assert interface.Info.HwAddress.lower() == camera_mac(index)
    assert "Traceback" not in "".join(gateway.err)


async def test_unifi_protect_client_finds_each_device_once(vms: Lan, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    assert (NPM_PROBE.parent / "node_modules" / "onvif").is_dir(), "npm ci in tests/clients"
    await start_gateway(vms, tmp_path, camera_entries(vms))
    probe = await vms_program(node, str(NPM_PROBE), USER, PASSWORD, str(int(SEARCH_SECONDS * 1000)))
    result = json.loads(probe)
    devices = result["devices"]
    assert len(devices) == len(DIALECTS)
    assert len({d["endpoint"] for d in devices}) == len(DIALECTS)
    models = sorted(d["info"]["model"] for d in devices)
    assert models == sorted(MODELS.values()), devices


async def vms_program(*argv: str) -> str:
    """A client program on the VMS's host (it inherits this thread's namespace); stdout."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode(errors="replace")
    return out.decode()


async def test_soap11_probe_with_full_uri_types_is_answered_in_soap11(
    vms: Lan, tmp_path: Path
) -> None:
    await start_gateway(vms, tmp_path, camera_entries(vms))
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP11}" xmlns:a="{WSA}" xmlns:d="{WSD}"><s:Header>'
        f"<a:Action>{WSD}/Probe</a:Action><a:MessageID>{message_id}</a:MessageID>"
        f"<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header><s:Body><d:Probe>"
        f"<d:Types>http://www.onvif.org/ver10/network/wsdl/NetworkVideoTransmitter "
        f"http://www.onvif.org/ver10/device/wsdl/Device</d:Types>"
        f"</d:Probe></s:Body></s:Envelope>"
    ).encode()
    replies = await multicast_probe(probe, expect=len(DIALECTS))
    assert len(replies) == len(DIALECTS)
    endpoints = set()
    for data, _ in replies:
        root = etree.fromstring(data)
        assert root.tag == f"{{{SOAP11}}}Envelope"
        assert root.findtext(f".//{{{WSA}}}RelatesTo") == message_id
        assert root.findtext(f".//{{{WSD}}}Action") is None
        (match,) = root.iter(f"{{{WSD}}}ProbeMatch")
        endpoints.add(match.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address"))
    assert len(endpoints) == len(DIALECTS)


async def test_bye_when_the_gateway_stops(vms: Lan, tmp_path: Path) -> None:
    gateway = await start_gateway(vms, tmp_path, camera_entries(vms))
    byes: list[str] = []
    services = await wsdiscovery_search(on_bye=byes, stop=gateway)
    assert len(services) == len(DIALECTS)
    assert sorted(byes) == sorted(s.getEPR() for s in services)
    assert gateway.process.returncode == 0


async def test_non_discoverable_device_is_silent_and_stays_so(vms: Lan, tmp_path: Path) -> None:
    cameras = camera_entries(vms)
    gateway = await start_gateway(vms, tmp_path, cameras)
    services = {scope_value(s, "name"): s for s in await wsdiscovery_search()}
    (xaddr,) = services["foscam"].getXAddrs()
    camera = await device_client(xaddr)
    try:
        devicemgmt = await camera.create_devicemgmt_service()
        await devicemgmt.SetDiscoveryMode({"DiscoveryMode": "NonDiscoverable"})
        assert await devicemgmt.GetDiscoveryMode() == "NonDiscoverable"
    finally:
        await camera.close()
    names = sorted(scope_value(s, "name") for s in await wsdiscovery_search())
    assert names == sorted(set(DIALECTS) - {"foscam"})
    await gateway.stop()
    await start_gateway(vms, tmp_path, cameras)  # the mode is kept across a restart
    names = sorted(scope_value(s, "name") for s in await wsdiscovery_search())
    assert names == sorted(set(DIALECTS) - {"foscam"})


async def test_cameras_on_their_own_addresses_are_hosts_of_their_own(
    vms: Lan, tmp_path: Path
) -> None:
    own_names = ("hama", "vapix2")
    own = dict(zip(own_names, OWN_ADDRESSES, strict=True))
    await start_gateway(vms, tmp_path, camera_entries(vms, own))
    services = {scope_value(s, "name"): s for s in await wsdiscovery_search()}
    for dialect, address in own.items():
        (xaddr,) = services[dialect].getXAddrs()
        assert xaddr == f"http://{address}:80/onvif/device_service"
        camera = await device_client(xaddr)
        try:
            media = await camera.create_media_service()
            (profile, *_) = await media.GetProfiles()
            uri = await media.GetStreamUri(
                {
                    "ProfileToken": profile.token,
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                }
            )
        finally:
            await camera.close()
        assert uri.Uri.startswith(f"rtsp://{address}:8554/{dialect}/")
    # Its discovery answer comes from its address too: that is the MAC the VMS learns.
    sources = {}
    for data, source in await multicast_probe(empty_probe(), expect=len(DIALECTS)):
        root = etree.fromstring(data)
        xaddrs = root.findtext(f".//{{{WSD}}}XAddrs") or ""
        sources[xaddrs.split("//")[1].split(":")[0]] = source
    assert sources == {
        **dict.fromkeys(sorted(set(sources) - set(OWN_ADDRESSES)), netlab.GATEWAY_ADDRESS),
        **{address: address for address in OWN_ADDRESSES},
    }
    assert len(sources) == 3  # the gateway's address, and the two of their own
    # A probe sent to one address is answered by the devices at that address only.
    (own,) = await multicast_probe(empty_probe(), expect=2, to=OWN_ADDRESSES[0])
    assert own[1] == OWN_ADDRESSES[0]
    assert scopes_of(own[0], "name") == ["hama"]
    shared = await multicast_probe(empty_probe(), expect=len(DIALECTS), to=netlab.GATEWAY_ADDRESS)
    assert {source for _, source in shared} == {netlab.GATEWAY_ADDRESS}
    assert sorted(n for data, _ in shared for n in scopes_of(data, "name")) == sorted(
        set(DIALECTS) - set(own_names)
    )
    # The VMS sees each of them at a MAC of its own (what UniFi Protect tells devices by).
    seen = vms.neighbours("vms")
    assert seen[netlab.GATEWAY_ADDRESS] == vms.mac_of("gw", "eth0")
    for index, address in enumerate(OWN_ADDRESSES):
        assert seen[address] == vms.mac_of("gw", f"cam{index}")


async def test_reordering_the_config_changes_no_identity(vms: Lan, tmp_path: Path) -> None:
    async def identities() -> dict[str, tuple[str, str]]:
        services = await wsdiscovery_search()
        return {scope_value(s, "name"): (s.getEPR(), s.getXAddrs()[0]) for s in services}

    cameras = camera_entries(vms)
    gateway = await start_gateway(vms, tmp_path, cameras, onvif_base_port=8000)
    before = await identities()
    await gateway.stop()
    assert (tmp_path / "bridge.state.yaml").exists()
    await start_gateway(vms, tmp_path, cameras[::-1], onvif_base_port=8000)
    after = await identities()
    assert after == before
    assert len({xaddr for _, xaddr in after.values()}) == len(DIALECTS)


async def test_upnp_search_finds_each_camera_device_and_its_description(
    vms: Lan, tmp_path: Path
) -> None:
    await start_gateway(vms, tmp_path, camera_entries(vms))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((netlab.VMS_ADDRESS, 0))
    search = (
        b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
        b"MX: 1\r\nST: upnp:rootdevice\r\n\r\n"
    )
    loop = asyncio.get_running_loop()
    locations: dict[str, str] = {}
    try:
        await loop.sock_sendto(sock, search, ("239.255.255.250", 1900))
        deadline = time.monotonic() + 3
        while (left := deadline - time.monotonic()) > 0:
            try:
                data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 8192), left)
            except TimeoutError:
                break
            headers = dict(
                line.split(": ", 1) for line in data.decode().split("\r\n")[1:] if ": " in line
            )
            locations[headers["LOCATION"]] = source[0]
    finally:
        sock.close()
    gateway_locations = [url for url, source in locations.items() if ":80/" not in url]
    assert len(gateway_locations) == len(DIALECTS)  # and the emulators answer on port 80
    upnp = "{urn:schemas-upnp-org:device-1-0}"
    models = []
    async with aiohttp.ClientSession() as session:
        for url in gateway_locations:
            async with session.get(url) as response:
                description = etree.fromstring(await response.read())
            device = description.find(f"{upnp}device")
            assert device is not None
            models.append(device.findtext(f"{upnp}modelName"))
            name = device.findtext(f"{upnp}friendlyName") or ""
            assert name.split(" ")[0] in DIALECTS
            assert (device.findtext(f"{upnp}presentationURL") or "").startswith("http://")
    assert sorted(models) == sorted(MODELS.values())


async def test_zeroconf_lists_each_camera_stream(vms: Lan, tmp_path: Path) -> None:
    gateway = await start_gateway(vms, tmp_path, camera_entries(vms))
    zeroconf = AsyncZeroconf(interfaces=[netlab.VMS_ADDRESS], ip_version=IPVersion.V4Only)
    seen: set[str] = set()
    gone: set[str] = set()
    all_seen, all_gone = asyncio.Event(), asyncio.Event()

    def changed(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        (gone if state_change is ServiceStateChange.Removed else seen).add(name)
        if len(seen) >= len(DIALECTS):
            all_seen.set()
        if len(gone) >= len(DIALECTS):
            all_gone.set()

    browser = AsyncServiceBrowser(zeroconf.zeroconf, "_rtsp._tcp.local.", handlers=[changed])
    try:
        await asyncio.wait_for(all_seen.wait(), 15)
        paths = {}
        for name in seen:
            info = AsyncServiceInfo("_rtsp._tcp.local.", name)
            assert await info.async_request(zeroconf.zeroconf, 3000)
            assert info.port == 8554
            paths[name] = (info.properties[b"path"] or b"").decode()
        assert sorted(paths.values()) == sorted(f"/{d}/main" for d in DIALECTS)
        await gateway.stop()  # withdrawn: goodbye packets
        await asyncio.wait_for(all_gone.wait(), 10)
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()


async def test_bridge_discover_finds_the_legacy_cameras_and_the_onvif_devices(
    vms: Lan, tmp_path: Path
) -> None:
    # The gateway serving one camera is on the LAN too: an ONVIF device, no gateway needed.
    await start_gateway(vms, tmp_path, camera_entries(vms)[-1:])
    subnet = f"{netlab.SUBNET}.0/24"
    # Without credentials: dialects from fingerprints, MACs from the VMS's neighbour table.
    report = json.loads(await bridge("discover", subnet, "--json"))
    assert report["elapsed_seconds"] < 15  # a /24 on five ports, with real LAN timeouts
    devices = {d["address"]: d for d in report["devices"]}
    for index, (dialect, address) in enumerate(zip(DIALECTS, vms.camera_addresses, strict=True)):
        found = devices[address]
        assert (found["kind"], found["dialect"]) == ("camera", dialect)
        assert found["mac"].lower() == camera_mac(index)
        announced = {"vapix2": {"ssdp", "mdns"}, "foscam": set()}.get(dialect, {"ssdp"})
        assert set(found["found_by"]) == {"http"} | announced
    gateway = devices[netlab.GATEWAY_ADDRESS]
    assert gateway["kind"] == "onvif"
    assert "wsd" in gateway["found_by"]

    # With credentials, the block to paste names every camera and passes check-config.
    text = await bridge("discover", subnet, "-u", "admin", "-p", "admin")
    block = text[text.index("cameras:") :].split("\n\n")[0]
    config = yaml.safe_load(block)
    assert sorted(c["dialect"] for c in config["cameras"]) == sorted(DIALECTS)
    path = tmp_path / "found.yaml"
    path.write_text(block + "\n")
    assert "OK, 5 camera(s)" in await bridge("check-config", str(path))


async def bridge(*args: str) -> str:
    """A ``bridge`` command run on the VMS's host; its stdout."""
    return await vms_program(sys.executable, "-m", "bridge", *args)
