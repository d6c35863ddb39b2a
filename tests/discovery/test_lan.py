"""Finding legacy cameras: the emulators on their own loopback addresses are the LAN, zeroconf,
SSDP and WS-Discovery responders on loopback announce the rest. Nothing leaves 127.0.0.0/8:
every sweep names loopback targets and every multicast source is given 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
import yaml
from aiohttp import web
from conftest import Serve
from hypothesis import given
from hypothesis import strategies as st
from test_cli import bridge_cli
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from bridge.cameras.base import Dialect
from bridge.cameras.http import CameraHttp, Credentials
from bridge.cameras.identify import driver_for
from bridge.config import load_config, parse_config
from bridge.discovery import lan, ssdp, udp, wsdiscovery
from bridge.discovery.lan import DiscoveryReport, Found, Sighting
from bridge.discovery.udp import Interface
from bridge.errors import ConfigError
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS

PASSWORD = "disc0ver-secret"
CREDENTIALS = Credentials("admin", PASSWORD)
LOOPBACK_24 = ipaddress.IPv4Network("127.0.0.0/24")
LISTEN = 1.0  # seconds the multicast sources listen in these tests
Answer = Callable[[bytes], list[bytes]]


def mac_of(index: int) -> str:
    return f"00:40:8C:00:00:{index + 0x10:02X}"


@pytest.fixture
async def cameras() -> AsyncIterator[list[RunningSimulator]]:
    """One emulator of each dialect, on 127.0.0.11 .. 127.0.0.15, each on a free port."""
    running: list[RunningSimulator] = []
    try:
        for index, dialect in enumerate(Dialect):
            options = SimOptions(password=PASSWORD, mac=mac_of(index))
            camera = SIMULATORS[dialect](options)
            running.append(await start_simulator(camera, f"127.0.0.{11 + index}", 0))
        yield running
    finally:
        for sim in running:
            await sim.stop()


async def device_model(sim: RunningSimulator) -> str:
    """What the camera's own driver reports as its model."""
    async with CameraHttp(sim.url, CREDENTIALS) as http:
        return (await driver_for(Dialect(sim.camera.dialect), http).connect()).model


def by_address(report: DiscoveryReport) -> dict[str, Found]:
    return {f.address: f for f in report.found}


# -- the sweep ----------------------------------------------------------------------------------


async def test_discover_finds_every_dialect_with_device_info(
    cameras: list[RunningSimulator], tmp_path: Path
) -> None:
    ports = [sim.port for sim in cameras]
    report = await lan.discover([LOOPBACK_24], ports, CREDENTIALS, wait=LISTEN)
    print(report.summary())
    assert report.addresses == 254
    assert report.elapsed < 15  # the bound for a /24 on five ports
    found = by_address(report)
    for index, sim in enumerate(cameras):
        record = found[sim.host]
        assert (record.port, record.dialect) == (sim.port, sim.camera.dialect)
        assert record.model == await device_model(sim)
        assert record.mac == mac_of(index)
        assert "http" in record.found_by
        assert record.kind == "camera"

    block = lan.cameras_block(report, "admin")
    path = tmp_path / "found.yaml"
    path.write_text(block, encoding="utf-8")
    config = load_config(path)
    configured = {(c.url, c.dialect) for c in config.cameras}
    assert {(sim.url, sim.camera.dialect) for sim in cameras} <= configured
    ours = [f for f in report.found if f.address in {sim.host for sim in cameras}]
    assert lan.unconfigured(ours, [c.url for c in config.cameras]) == []


async def test_a_sweep_of_a_24_on_five_ports_takes_well_under_15_s(
    cameras: list[RunningSimulator],
) -> None:
    hosts = [str(host) for host in LOOPBACK_24.hosts()]
    started = time.monotonic()
    sightings = await lan.sweep(hosts, [sim.port for sim in cameras], CREDENTIALS)
    elapsed = time.monotonic() - started
    print(f"swept {len(hosts)} addresses x 5 ports in {elapsed:.2f} s")
    assert elapsed < 15
    assert {s.host for s in sightings} >= {sim.host for sim in cameras}


async def test_without_credentials_the_fingerprint_names_the_dialect(
    cameras: list[RunningSimulator],
) -> None:
    sightings = await lan.sweep([sim.host for sim in cameras], [sim.port for sim in cameras])
    seen = {s.host: s for s in sightings}
    for sim in cameras:
        sighting = seen[sim.host]
        assert (sighting.port, sighting.dialect) == (sim.port, sim.camera.dialect)
        assert not sighting.model  # device info needs credentials
        # Foscam answers its detection request without credentials.
        expected = "" if sim.camera.dialect == Dialect.FOSCAM else "credentials needed"
        assert sighting.detail == expected


async def test_a_wrong_password_is_reported_with_the_dialect(
    cameras: list[RunningSimulator],
) -> None:
    vapix2 = cameras[list(Dialect).index(Dialect.VAPIX2)]
    (sighting,) = await lan.sweep([vapix2.host], [vapix2.port], Credentials("admin", "wrong"))
    assert (sighting.dialect, sighting.detail) == ("vapix2", "credentials rejected")


async def test_a_plain_web_server_is_not_a_camera(serve: Serve) -> None:
    async def home(request: web.Request) -> web.Response:
        return web.Response(text="<html>router</html>", headers={"Server": "lighttpd"})

    app = web.Application()
    app.router.add_get("/", home)
    port = int((await serve(app)).rsplit(":", 1)[1])
    assert await lan.sweep(["127.0.0.1"], [port], CREDENTIALS) == []
    assert await lan.sweep(["127.0.0.1"], [port]) == []


async def test_the_password_goes_only_to_devices_that_look_like_cameras(serve: Serve) -> None:
    authorizations: list[str] = []

    async def router(request: web.Request) -> web.Response:
        authorizations.append(request.headers.get("Authorization", ""))
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="Router"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", router)
    port = int((await serve(app)).rsplit(":", 1)[1])
    assert await lan.sweep(["127.0.0.1"], [port], CREDENTIALS) == []
    assert authorizations  # it was asked, without credentials
    assert set(authorizations) == {""}


@pytest.fixture
async def hostile_port() -> AsyncIterator[Callable[[bool], Awaitable[int]]]:
    """hostile_port(drip): a loopback port that accepts and then says nothing (or drips a
    byte every 100 ms, forever: never silent long enough for a read timeout)."""
    servers: list[asyncio.Server] = []

    async def start(drip: bool) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    if drip:
                        writer.write(b"H")
                        await writer.drain()
                        await asyncio.sleep(0.1)
                    elif not await reader.read(4096):
                        return  # the client gave up
            except ConnectionError:
                return  # the client gave up while we dripped
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_silent_and_dripping_hosts_do_not_stall_the_sweep(
    hostile_port: Callable[[bool], Awaitable[int]],
) -> None:
    ports = [await hostile_port(False), await hostile_port(True)]
    started = time.monotonic()
    sightings = await lan.sweep(
        ["127.0.0.1"], ports, CREDENTIALS, request_timeout=0.5, endpoint_timeout=1.5
    )
    elapsed = time.monotonic() - started
    assert sightings == []
    assert elapsed < 1.5 + 2.0  # the drip is cut at endpoint_timeout; the silence sooner


# -- the command --------------------------------------------------------------------------------


async def test_discover_command_prints_json(cameras: list[RunningSimulator]) -> None:
    ports = ",".join(str(sim.port) for sim in cameras)
    args = ("discover", "127.0.0.0/24", "--ports", ports, "-u", "admin", "-p", PASSWORD)
    code, out, err = await bridge_cli(*args, "--json")
    assert code == 0, err
    assert "swept 254 addresses x 5 ports in" in err
    print(err.strip().splitlines()[-1])
    assert PASSWORD not in out + err
    document = json.loads(out)
    assert document["addresses"] == 254
    devices = {d["url"]: d for d in document["devices"]}
    for index, sim in enumerate(cameras):
        device = devices[sim.url]
        assert (device["dialect"], device["kind"], device["mac"]) == (
            sim.camera.dialect,
            "camera",
            mac_of(index),
        )
        assert device["found_by"] == ["http"]


async def test_discover_command_says_when_nothing_is_found() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = await bridge_cli("discover", "127.0.0.2", "--ports", str(port))
    assert code == 0, err
    assert out.strip() == "no cameras found"
    assert "swept 1 addresses x 1 ports" in err


@pytest.mark.parametrize(
    "args",
    [["10.0.0.0/33"], ["127.0.0.2", "--ports", "80,http"], ["127.0.0.2", "--timeout", "0"]],
)
async def test_discover_command_refuses_bad_targets_and_options(args: list[str]) -> None:
    code, out, err = await bridge_cli("discover", *args)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err


# -- mDNS ---------------------------------------------------------------------------------------


@pytest.fixture
async def announce_mdns() -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """announce_mdns(type, instance, address, port, **txt) on 127.0.0.1 only."""
    responder = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)

    async def announce(
        service_type: str, instance: str, address: str, port: int, **txt: str
    ) -> None:
        info = AsyncServiceInfo(
            service_type,
            f"{instance}.{service_type}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties=txt,
            server=f"{uuid.uuid4().hex}.local.",
        )
        async with asyncio.timeout(10):
            await responder.async_register_service(info)

    yield announce
    await responder.async_unregister_all_services()
    await responder.async_close()


async def test_browse_mdns_sees_an_axis_style_camera(
    announce_mdns: Callable[..., Awaitable[None]],
) -> None:
    instance = f"AXIS 213 - 00408C123456 {uuid.uuid4().hex[:6]}"
    await announce_mdns(
        "_axis-video._tcp.local.", instance, "127.0.0.31", 8031, macaddress="00408C123456"
    )
    sightings = await lan.browse_mdns(["127.0.0.1"], LISTEN)
    (sighting,) = [s for s in sightings if s.name == instance]
    assert sighting == Sighting(
        "127.0.0.31",
        8031,
        "mdns",
        mac="00:40:8C:12:34:56",
        name=instance,
        detail="_axis-video._tcp",
    )


async def test_an_announced_camera_on_an_unswept_port_is_identified(
    announce_mdns: Callable[..., Awaitable[None]],
) -> None:
    sim = await start_simulator(
        SIMULATORS[Dialect.HAMA](SimOptions(password=PASSWORD)), "127.0.0.32"
    )
    try:
        await announce_mdns("_http._tcp.local.", f"hama {uuid.uuid4().hex[:6]}", sim.host, sim.port)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        report = await lan.discover([LOOPBACK_24], [closed], CREDENTIALS, wait=LISTEN)
    finally:
        await sim.stop()
    record = by_address(report)[sim.host]
    assert (record.port, record.dialect, record.found_by) == (sim.port, "hama", {"http", "mdns"})


# -- SSDP and WS-Discovery ----------------------------------------------------------------------


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer, heard: list[bytes]) -> None:
        self.answer = answer
        self.heard = heard
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self.heard.append(data)
        # Only ever answers loopback, whatever else the socket might hear.
        if self.transport is not None and str(addr[0]).startswith("127."):
            for reply in self.answer(data):
                self.transport.sendto(reply, addr)


@pytest.fixture
async def responder() -> AsyncIterator[Callable[[Answer], Awaitable[tuple[int, list[bytes]]]]]:
    """responder(answer) -> (port, datagrams heard): a member of 239.255.255.250 on 127.0.0.1
    only, on a free port, answering each datagram with what ``answer`` returns."""
    transports: list[asyncio.BaseTransport] = []

    async def start(answer: Answer) -> tuple[int, list[bytes]]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 0))
        group = socket.inet_aton(ssdp.MULTICAST_GROUP) + socket.inet_aton("127.0.0.1")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        heard: list[bytes] = []
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Responder(answer, heard), sock=sock
        )
        transports.append(transport)
        return int(sock.getsockname()[1]), heard

    yield start
    for transport in transports:
        transport.close()


async def test_multicast_query_sends_twice_and_keeps_bounded_replies(
    responder: Callable[[Answer], Awaitable[tuple[int, list[bytes]]]],
) -> None:
    port, heard = await responder(lambda data: [b"pong", b"x" * 2000])
    replies = await udp.multicast_query(
        ssdp.MULTICAST_GROUP, port, b"ping", ["127.0.0.1"], 0.5, max_datagram=1000
    )
    assert heard == [b"ping", b"ping"]
    assert [(data, source[0]) for data, source in replies] == [(b"pong", "127.0.0.1")] * 2


async def test_search_ssdp_reads_each_description_once(
    responder: Callable[[Answer], Awaitable[tuple[int, list[bytes]]]], serve: Serve
) -> None:
    fetched: list[str] = []

    async def description(request: web.Request) -> web.Response:
        fetched.append(request.path)
        body = ssdp.description_xml(
            udn="uuid:7a3e0a2c-0000-4000-8000-00408c123456",
            friendly_name="Porch camera",
            manufacturer="Foscam",
            model_name="FI8918W",
            model_number="",
            serial_number="00408C123456",
            presentation_url="/",
        )
        return web.Response(body=body, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/desc.xml", description)
    base = await serve(app)
    web_port = int(base.rsplit(":", 1)[1])

    def answer(data: bytes) -> list[bytes]:
        search = ssdp.parse(data)
        assert isinstance(search, ssdp.MSearch)
        assert search.st == ssdp.SSDP_ALL
        return [
            ssdp.search_response(
                st=st, usn=f"uuid:x::{st}", location=location, server="Linux/2.4 UPnP/1.0 x/1"
            )
            for st in (ssdp.ROOT_DEVICE, ssdp.DEVICE_TYPE)
            for location in (f"{base}/desc.xml", f"http://127.0.0.2:{web_port}/desc.xml")
        ]

    port, _ = await responder(answer)
    sightings = await lan.search_ssdp(["127.0.0.1"], LISTEN, port=port)
    assert fetched == ["/desc.xml"]  # once, and never where the answer did not come from
    assert sorted(sightings, key=lambda s: s.model) == [
        Sighting("127.0.0.1", None, "ssdp"),
        Sighting(
            "127.0.0.1",
            web_port,
            "ssdp",
            manufacturer="Foscam",
            model="FI8918W",
            serial="00408C123456",
            name="Porch camera",
        ),
    ]


async def test_probe_onvif_lists_video_transmitters(
    responder: Callable[[Answer], Awaitable[tuple[int, list[bytes]]]],
) -> None:
    service = wsdiscovery.TargetService(
        endpoint="urn:uuid:6a0d1a55-1b0e-4c53-9d5a-3f2a4b5c6d7e",
        types=(wsdiscovery.NETWORK_VIDEO_TRANSMITTER,),
        scopes=(
            "onvif://www.onvif.org/name/Front%20Door",
            "onvif://www.onvif.org/hardware/M1054",
            "onvif://www.onvif.org/MAC/00408c123456",
        ),
        xaddrs=("http://127.0.0.1:8000/onvif/device_service",),
        metadata_version=1,
    )

    def answer(data: bytes) -> list[bytes]:
        probe = wsdiscovery.parse(data)
        assert isinstance(probe, wsdiscovery.Probe)
        return [
            wsdiscovery.probe_matches(
                service,
                relates_to=relates_to,
                to=None,
                version=probe.version,
                sequence=wsdiscovery.AppSequence(1, 1),
                message_id=f"urn:uuid:{uuid.uuid4()}",
            )
            for relates_to in (probe.message_id, "urn:uuid:someone-elses-probe")
        ]

    port, _ = await responder(answer)
    sightings = await lan.probe_onvif(["127.0.0.1"], LISTEN, port=port)
    assert sightings == [
        Sighting(
            "127.0.0.1",
            None,
            "wsd",
            model="M1054",
            mac="00:40:8C:12:34:56",
            name="Front Door",
            onvif_xaddrs=service.xaddrs,
        )
    ]


# -- pure parts ---------------------------------------------------------------------------------


def test_parse_targets() -> None:
    assert lan.parse_targets(["192.0.2.0/24", "192.0.2.7", "10.1.2.3/30", "localhost"]) == [
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("192.0.2.7/32"),
        ipaddress.IPv4Network("10.1.2.0/30"),
        ipaddress.IPv4Network("127.0.0.1/32"),
    ]
    for garbage in ("192.0.2.0/33", "1.2.3", "300.1.2.3", "fd00::1", "-x", "a..b", "no such!"):
        with pytest.raises(ConfigError, match="not an IPv4 address"):
            lan.parse_targets([garbage])
    with pytest.raises(ConfigError, match="at most 65536"):
        lan.parse_targets(["10.0.0.0/16", "10.1.0.0/24"])


def test_parse_ports() -> None:
    assert lan.parse_ports("80, 8080,80") == (80, 8080)
    for garbage in ("", "80,", "65536", "http"):
        with pytest.raises(ConfigError, match="not a port number"):
            lan.parse_ports(garbage)


INTERFACES = [
    Interface("lo", "127.0.0.1", 8),
    Interface("eth0", "192.168.1.20", 24),
    Interface("wlan0", "10.20.30.40", 16),
    Interface("eth1", "169.254.3.4", 16),
]


def test_default_targets_are_the_own_subnets_narrowed_to_a_24() -> None:
    plan = lan.plan(None, INTERFACES)
    assert len(plan.hosts) == 2 * 254 - 2  # two /24s without this machine's own addresses
    assert {"192.168.1.20", "10.20.30.40", "127.0.0.1"}.isdisjoint(plan.hosts)
    assert "10.20.30.1" in plan.hosts
    assert "10.20.31.1" not in plan.hosts
    assert plan.multicast_from == ("192.168.1.20", "10.20.30.40")
    assert plan.notes == (
        "10.20.0.0/16 on wlan0 is larger than /22: sweeping 10.20.30.0/24 only "
        "(name a range to sweep more)",
    )
    assert plan.covers("10.20.99.9")  # multicast answers count from all of the subnet
    assert not plan.covers("192.168.1.20")
    assert not plan.covers("8.8.8.8")


def test_explicit_targets_multicast_only_from_interfaces_inside_them() -> None:
    plan = lan.plan([LOOPBACK_24], INTERFACES)
    assert plan.multicast_from == ("127.0.0.1",)
    assert len(plan.hosts) == 254
    assert "127.0.0.1" in plan.hosts
    remote = lan.plan([ipaddress.IPv4Network("192.0.2.9/32")], INTERFACES)
    assert (remote.hosts, remote.multicast_from) == (("192.0.2.9",), ())


def test_parse_arp_table() -> None:
    text = (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "192.168.1.1      0x1         0x2         00:40:8c:aa:bb:cc     *        eth0\n"
        "192.168.1.9      0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "192.168.1.10     0x1         0x2         00:00:00:00:00:00     *        eth0\n"
        "192.168.1.11     0x1         0x0         00:40:8c:aa:bb:dd     *        eth0\n"
    )
    assert lan.parse_arp_table(text) == {"192.168.1.1": "00:40:8C:AA:BB:CC"}


def test_normalize_mac() -> None:
    assert lan.normalize_mac("00408c123456") == "00:40:8C:12:34:56"
    assert lan.normalize_mac("00-40-8C-12-34-56") == "00:40:8C:12:34:56"
    assert lan.normalize_mac("00408c12345") == ""
    assert lan.normalize_mac("not a mac at all, 00408c123456") == ""


def test_merge_joins_sources_of_one_address() -> None:
    found = lan.merge(
        [
            Sighting(
                "192.0.2.5", None, "ssdp", manufacturer="Foscam", model="FI8918W", name="Porch"
            ),
            Sighting("192.0.2.5", 81, "mdns", name="porch-cam"),
            Sighting("192.0.2.5", 81, "http", dialect="foscam", firmware="11.37.2.49"),
            Sighting(
                "192.0.2.10", None, "wsd", onvif_xaddrs=("http://192.0.2.10/onvif/device_service",)
            ),
            Sighting("192.0.2.4", None, "mdns", name="printer"),
        ],
        {"192.0.2.5": "00:40:8C:AA:BB:CC"},
    )
    assert [(f.address, f.kind) for f in found] == [
        ("192.0.2.4", "other"),
        ("192.0.2.5", "camera"),
        ("192.0.2.10", "onvif"),
    ]
    camera = found[1]
    assert (camera.port, camera.dialect, camera.model, camera.firmware) == (
        81,
        "foscam",
        "FI8918W",
        "11.37.2.49",
    )
    assert (camera.name, camera.mac, camera.found_by) == (
        "Porch",  # SSDP's friendly name: SSDP tells more than mDNS
        "00:40:8C:AA:BB:CC",
        {"http", "ssdp", "mdns"},
    )
    assert camera.url == "http://192.0.2.5:81"


def test_merge_keeps_two_cameras_on_two_ports_of_one_address_apart() -> None:
    found = lan.merge(
        [
            Sighting("192.0.2.5", 80, "http", dialect="hama", model="IP - Cam M360"),
            Sighting("192.0.2.5", 8080, "http", dialect="hama", model="IP - Cam M360"),
            Sighting("192.0.2.5", 8080, "mdns", name="second"),
            Sighting("192.0.2.5", None, "ssdp", name="the box"),
        ]
    )
    assert [(f.url, f.name, f.suggested_name) for f in found] == [
        ("http://192.0.2.5", "the box", "ip-cam-m360-192-0-2-5-80"),
        ("http://192.0.2.5:8080", "second", "ip-cam-m360-192-0-2-5-8080"),
    ]


@given(
    st.lists(
        st.tuples(st.text(max_size=80), st.sampled_from(list(Dialect)), st.integers(1, 65535)),
        max_size=12,
    ),
    st.text(max_size=20),
)
def test_cameras_block_always_passes_the_config_check(
    cameras: list[tuple[str, Dialect, int]], username: str
) -> None:
    sightings = [
        Sighting(f"192.0.2.{index % 3 + 1}", port, "http", dialect=dialect, model=model)
        for index, (model, dialect, port) in enumerate(cameras)
    ]
    found = lan.merge(sightings)
    report = DiscoveryReport(found, addresses=3, ports=(80,), elapsed=0.1)
    block = lan.cameras_block(report, username)
    config = parse_config(yaml.safe_load(block) if block else None, "block")
    assert len(config.cameras) == len(found)
    assert [c.username for c in config.cameras] == [username] * len(found)


def test_unconfigured_compares_host_and_port() -> None:
    found = lan.merge(
        [
            Sighting("192.0.2.5", 80, "http", dialect="hama"),
            Sighting("192.0.2.6", 8080, "http", dialect="foscam"),
            Sighting("192.0.2.7", 81, "http", dialect="vapix2"),
            Sighting("192.0.2.8", None, "wsd", onvif_xaddrs=("http://192.0.2.8/onvif",)),
        ]
    )
    configured = ["http://192.0.2.5", "http://192.0.2.6:8080/", "http://192.0.2.7"]
    assert [f.url for f in lan.unconfigured(found, configured)] == ["http://192.0.2.7:81"]


def test_table_and_json() -> None:
    found = lan.merge(
        [
            Sighting("192.0.2.5", 80, "http", dialect="hama", detail="credentials needed"),
            Sighting("192.0.2.5", 80, "mdns", mac="00:40:8C:AA:BB:CC"),
            Sighting("192.0.2.10", None, "wsd", model="M1054", onvif_xaddrs=("http://x/onvif",)),
            Sighting("192.0.2.4", None, "mdns", name="printer"),
        ]
    )
    report = DiscoveryReport(found, addresses=254, ports=(80, 81), elapsed=2.345)
    assert lan.format_table(report).splitlines() == [
        "address     dialect                    model  MAC                found by    note",
        "192.0.2.5   hama                       -      00:40:8C:AA:BB:CC  http, mdns  "
        "credentials needed",
        "192.0.2.10  ONVIF (no gateway needed)  M1054  -                  wsd",
    ]
    assert "printer" in lan.format_table(report, show_all=True)
    assert report.summary() == "swept 254 addresses x 2 ports in 2.3 s"
    document = json.loads(lan.report_json(report))
    assert [(d["address"], d["kind"], d["found_by"]) for d in document["devices"]] == [
        ("192.0.2.4", "other", ["mdns"]),
        ("192.0.2.5", "camera", ["http", "mdns"]),
        ("192.0.2.10", "onvif", ["wsd"]),
    ]
    empty = DiscoveryReport([], addresses=1, ports=(80,), elapsed=0.0)
    assert lan.format_table(empty) == lan.cameras_block(empty, "admin") == ""


def test_progress_bar_is_throttled_and_clears_its_line() -> None:
    stream = io.StringIO()
    bar = lan.ProgressBar(stream, width=10, interval=60.0)
    for done in range(1, 1001):
        bar(done, 1000, 3)
    frames = stream.getvalue().split("\r")[1:]
    assert frames == [
        "[..........] 1/1000 probed, 3 found",
        "[##########] 1000/1000 probed, 3 found",
    ]
    bar.clear()
    assert stream.getvalue().endswith("\r" + " " * len(frames[-1]) + "\r")
