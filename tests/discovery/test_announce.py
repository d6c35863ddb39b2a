"""The gateway's announcements on loopback (the LAN tests in test_found_on_the_lan.py run the
real clients): what goes out, what is answered, what is refused, with real sockets on free
ports of 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from conftest import Serve
from lxml import etree

from bridge.discovery.announce import DESCRIPTION_PATH, AnnouncedDevice, Announcer
from bridge.discovery.udp import Interface

GROUP = "239.255.255.250"
LOOPBACK = Interface("lo", "127.0.0.1", 8)
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WAIT = 2.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ports:
    wsd: int
    ssdp: int


@pytest.fixture
def ports() -> Ports:
    return Ports(free_udp_port(), free_udp_port())


class Listener:
    """A client socket on loopback: sends to the group, collects what comes back, and (when
    ``joined``) what is multicast to the group on that port."""

    def __init__(self, port: int, *, joined: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(
            socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1")
        )
        if joined:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("", port))
            membership = socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1")
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        else:
            self.sock.bind(("127.0.0.1", 0))
        self.port = port

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, (GROUP, self.port))

    async def receive(self, count: int, within: float = WAIT) -> list[bytes]:
        """Up to ``count`` datagrams, whatever arrived within the window."""
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(within):
                while len(got) < count:
                    got.append((await loop.sock_recvfrom(self.sock, 65536))[0])
        except TimeoutError:
            pass
        return got


@pytest.fixture
def client(ports: Ports) -> Iterator[Listener]:
    listener = Listener(ports.wsd, joined=False)
    yield listener
    listener.sock.close()


def device(name: str, *, discoverable: bool = True) -> AnnouncedDevice:
    state = {"discoverable": discoverable}
    announced = AnnouncedDevice(
        name=name,
        endpoint=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_DNS, name)}",
        address=None,
        port=8000,
        device_path="/onvif/device_service",
        rtsp_port=8554,
        rtsp_path=f"/{name}/main",
        manufacturer="AXIS",
        model="AXIS 213 PTZ",
        serial="00408C000001",
        scopes=lambda: [
            "onvif://www.onvif.org/Profile/Streaming",
            f"onvif://www.onvif.org/name/{name}",
        ],
        discoverable=lambda: state["discoverable"],
    )
    announced.state = state  # type: ignore[attr-defined]
    return announced


@pytest.fixture
async def announcer(ports: Ports) -> AsyncIterator[Announcer]:
    running = Announcer(
        listen_host="127.0.0.1",
        advertise_host="auto",
        web_port=8080,
        wsd_port=ports.wsd,
        ssdp_port=ports.ssdp,
        interfaces=lambda: [LOOPBACK],
    )
    await running.start()
    yield running
    await running.stop()


def probe(message_id: str | None = None, scope: str = "") -> bytes:
    scopes = f"<d:Scopes>{scope}</d:Scopes>" if scope else ""
    return (
        f'<e:Envelope xmlns:e="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}"><e:Header>'
        f"<a:MessageID>{message_id or f'urn:uuid:{uuid.uuid4()}'}</a:MessageID>"
        f"<a:Action>{WSD}/Probe</a:Action></e:Header><e:Body><d:Probe>{scopes}</d:Probe>"
        f"</e:Body></e:Envelope>"
    ).encode()


def endpoints(replies: list[bytes]) -> list[str]:
    return [
        etree.fromstring(reply).findtext(f".//{{{WSA}}}EndpointReference/{{{WSA}}}Address") or ""
        for reply in replies
    ]


async def test_each_device_answers_a_probe_with_its_own_probe_matches(
    announcer: Announcer, client: Listener
) -> None:
    porch, garden = device("porch"), device("garden")
    await announcer.add(porch)
    await announcer.add(garden)
    await client.send(probe())
    replies = await client.receive(3)
    assert sorted(endpoints(replies)) == sorted([porch.endpoint, garden.endpoint])
    xaddrs = {etree.fromstring(r).findtext(f".//{{{WSD}}}XAddrs") for r in replies}
    assert xaddrs == {"http://127.0.0.1:8000/onvif/device_service"}

    await client.send(probe(scope="onvif://www.onvif.org/name/garden"))
    assert endpoints(await client.receive(2)) == [garden.endpoint]


async def test_repeated_probes_are_answered_once(announcer: Announcer, client: Listener) -> None:
    await announcer.add(device("porch"))
    message = probe("urn:uuid:1f2e3d4c-0000-4000-8000-000000000001")
    for _ in range(4):  # SOAP-over-UDP repeats a multicast message
        await client.send(message)
    assert len(await client.receive(4)) == 1


async def test_a_flood_from_one_source_is_answered_only_up_to_its_rate(
    announcer: Announcer, client: Listener
) -> None:
    await announcer.add(device("porch"))
    for _ in range(200):
        await client.send(probe())
    answered = await client.receive(200)
    assert 0 < len(answered) <= 25  # the burst, plus what the rate refills meanwhile


async def test_a_non_discoverable_device_neither_answers_nor_says_hello(
    announcer: Announcer, client: Listener, ports: Ports
) -> None:
    hidden = device("attic", discoverable=False)
    group = Listener(ports.wsd, joined=True)
    try:
        await announcer.add(hidden)
        await client.send(probe())
        assert await client.receive(1) == []
        hidden.state["discoverable"] = True  # type: ignore[attr-defined]
        await announcer.changed(hidden)  # SetDiscoveryMode Discoverable: a Hello at once
        hellos = [
            h
            for h in await group.receive(10)
            if etree.fromstring(h).find(f".//{{{WSD}}}Hello") is not None
        ]
        assert endpoints(hellos)[:1] == [hidden.endpoint]
        versions = {etree.fromstring(h).findtext(f".//{{{WSD}}}MetadataVersion") for h in hellos}
        assert versions == {"2"}  # its metadata changed
    finally:
        group.sock.close()


async def test_bye_on_stop(ports: Ports) -> None:
    group = Listener(ports.wsd, joined=True)
    announcer = Announcer(
        listen_host="127.0.0.1",
        advertise_host="auto",
        web_port=8080,
        wsd_port=ports.wsd,
        ssdp_port=ports.ssdp,
        interfaces=lambda: [LOOPBACK],
    )
    await announcer.start()
    porch = device("porch")
    await announcer.add(porch)
    await announcer.stop()
    try:
        messages = [etree.fromstring(m) for m in await group.receive(10)]
    finally:
        group.sock.close()
    byes = [m for m in messages if m.find(f".//{{{WSD}}}Bye") is not None]
    assert byes
    assert {m.findtext(f".//{{{WSA}}}Address") for m in byes} == {porch.endpoint}


async def test_malformed_datagrams_are_dropped_with_one_log_line(
    announcer: Announcer, client: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    await announcer.add(device("porch"))
    caplog.set_level(logging.INFO, logger="bridge.discovery.announce")
    for _ in range(50):
        await client.send(b"<not-soap>" + b"x" * 100)
    await client.send(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    await client.send(probe())  # still answered afterwards
    assert len(await client.receive(1)) == 1
    drops = [r for r in caplog.records if "dropped a datagram" in r.getMessage()]
    assert len(drops) == 1


async def test_ssdp_search_is_answered_and_location_describes_the_camera(
    announcer: Announcer, ports: Ports, serve: Serve
) -> None:
    porch = device("porch")
    await announcer.add(porch)
    searcher = Listener(ports.ssdp, joined=False)
    try:
        await searcher.send(
            b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
            b"MX: 1\r\nST: ssdp:all\r\n\r\n"
        )
        answers = await searcher.receive(3)
    finally:
        searcher.sock.close()
    assert len(answers) == 3  # root device, its UDN and its device type
    heads = [
        dict(line.split(": ", 1) for line in a.decode().split("\r\n")[1:] if ": " in line)
        for a in answers
    ]
    assert {h["LOCATION"] for h in heads} == {f"http://127.0.0.1:8000{DESCRIPTION_PATH}"}
    assert {h["USN"].split("::")[0] for h in heads} == {porch.udn}

    app = web.Application()
    app.router.add_get(DESCRIPTION_PATH, announcer.describe("porch"))
    base = await serve(app)
    async with aiohttp.ClientSession() as session, session.get(base + DESCRIPTION_PATH) as reply:
        description = etree.fromstring(await reply.read())
    upnp = "{urn:schemas-upnp-org:device-1-0}"
    assert description.findtext(f"{upnp}device/{upnp}modelName") == "AXIS 213 PTZ"
    assert description.findtext(f"{upnp}device/{upnp}UDN") == porch.udn
    assert (description.findtext(f"{upnp}device/{upnp}friendlyName") or "").startswith("porch")


async def test_resolve_is_answered_by_the_device_it_names(
    announcer: Announcer, client: Listener
) -> None:
    porch, garden = device("porch"), device("garden")
    await announcer.add(porch)
    await announcer.add(garden)
    message_id = f"urn:uuid:{uuid.uuid4()}"
    await client.send(
        (
            f'<e:Envelope xmlns:e="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}"><e:Header>'
            f"<a:MessageID>{message_id}</a:MessageID><a:Action>{WSD}/Resolve</a:Action>"
            f"</e:Header><e:Body><d:Resolve><a:EndpointReference><a:Address>{garden.endpoint}"
            f"</a:Address></a:EndpointReference></d:Resolve></e:Body></e:Envelope>"
        ).encode()
    )
    (reply,) = await client.receive(2)
    root = etree.fromstring(reply)
    assert root.find(f".//{{{WSD}}}ResolveMatch") is not None
    assert root.findtext(f".//{{{WSA}}}RelatesTo") == message_id
    assert endpoints([reply]) == [garden.endpoint]
