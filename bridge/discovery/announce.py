"""Being found: every camera device of the gateway, announced the ways VMS look for cameras.

- WS-Discovery (ONVIF Core "Device discovery"): one target service per camera device, on
  239.255.255.250:3702; Hello when a device comes up, changes (scopes, discovery mode) or when
  the address it is reached at changes, ProbeMatches / ResolveMatches to whoever asks, Bye
  when it goes or the gateway stops. A device in NonDiscoverable mode neither says Hello nor
  answers (Core: "shall not listen to [WS-Discovery] messages or send such messages").
- SSDP/UPnP (what Blue Iris's "Find/inspect" searches with): each device answers M-SEARCH and
  sends NOTIFY alive (again every third of its max-age) and byebye; its LOCATION is a device
  description served by the device's own HTTP server, naming the camera and its model.
- zeroconf: ``_rtsp._tcp`` per camera, ``_http._tcp`` for the gateway's web page.

A device with its own address (``cameras[i].address``) is announced from that address only,
with that address in every URL. The others share the gateway's addresses: their URLs carry
``advertise_host``, or with ``auto`` the gateway's address facing the client (for a Hello or
NOTIFY, the address of the interface it goes out on). Only the interfaces the gateway listens
on are used.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge import __version__
from bridge.discovery import ssdp, wsdiscovery
from bridge.discovery.mdns import HTTP_TYPE, RTSP_TYPE, Advertisement, Advertiser
from bridge.discovery.sources import Dropped
from bridge.discovery.udp import (
    Interface,
    MulticastPort,
    Source,
    interfaces_for,
    ipv4_interfaces,
    is_directed_broadcast,
    listens_on,
    local_address_towards,
)
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

DEVICE_TYPES = (wsdiscovery.NETWORK_VIDEO_TRANSMITTER, wsdiscovery.DEVICE)
DESCRIPTION_PATH = "/upnp/device.xml"
WSD_TTL = 1  # SOAP-over-UDP: the link only
SSDP_TTL = 2  # UDA 1.1
SSDP_MAX_AGE = ssdp.DEFAULT_MAX_AGE
INTERFACE_POLL_SECONDS = 30.0
MAX_PENDING_REPLIES = 256  # SSDP answers waiting for their MX delay
_REPEAT_GAP = 0.2  # UDP loses datagrams: announcements go out twice, this far apart


@dataclass(eq=False)
class AnnouncedDevice:
    """What the announcements say about one camera device; ``scopes`` and ``discoverable``
    are read live (ONVIF changes them)."""

    name: str
    endpoint: str  # urn:uuid:...
    address: str | None  # its own address, if it has one
    port: int  # its ONVIF (HTTP) port
    device_path: str  # the device service's path
    rtsp_port: int
    rtsp_path: str
    manufacturer: str
    model: str
    serial: str
    scopes: Callable[[], Sequence[str]]
    discoverable: Callable[[], bool]
    metadata_version: int = 1
    advertisements: list[Advertisement] = field(default_factory=list)

    @property
    def udn(self) -> str:
        return "uuid:" + self.endpoint.removeprefix("urn:uuid:")


class Announcer:
    """Announces the devices it is given, on the interfaces the gateway listens on.

    ``device_addresses`` are the cameras' own addresses from the config: they are not the
    gateway's to announce the other devices on.
    """

    def __init__(
        self,
        *,
        listen_host: str,
        advertise_host: str,
        web_port: int,
        device_addresses: Sequence[str] = (),
        wsd_port: int = wsdiscovery.PORT,
        ssdp_port: int = ssdp.PORT,
        interfaces: Callable[[], list[Interface]] = ipv4_interfaces,
    ) -> None:
        self._listen_host = listen_host
        self._advertise_host = advertise_host
        self._web_port = web_port
        self._device_addresses = frozenset(device_addresses)
        self._list_interfaces = interfaces
        self._interfaces: list[Interface] = []  # the gateway's, one per subnet
        self._gateway_addresses: set[str] = set()  # all of the gateway's
        self._all_interfaces: list[Interface] = []
        self._devices: dict[str, AnnouncedDevice] = {}
        self._instance = int(time.time()) & 0xFFFFFFFF  # new at every start (WS-D AppSequence)
        self._wsd = wsdiscovery.Responder(self._instance, is_broadcast=self._is_broadcast)
        self._ssdp = ssdp.Responder(is_broadcast=self._is_broadcast)
        self._wsd_port = MulticastPort(
            wsdiscovery.MULTICAST_GROUP,
            wsd_port,
            self._on_wsd,
            ttl=WSD_TTL,
            max_datagram=wsdiscovery.MAX_DATAGRAM,
        )
        self._ssdp_port = MulticastPort(
            ssdp.MULTICAST_GROUP,
            ssdp_port,
            self._on_ssdp,
            ttl=SSDP_TTL,
            max_datagram=ssdp.MAX_DATAGRAM,
        )
        self._advertiser: Advertiser | None = None
        self._server = ssdp.server_string("bridge", __version__)
        self._dropped = ThrottledLog(log)
        self._pending: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._refresh_interfaces()
        self._wsd_port.start()
        try:
            self._ssdp_port.start()
        except OSError:
            self._wsd_port.close()
            raise
        self._bind()
        gateway = [interface.address for interface in self._interfaces]
        self._advertiser = Advertiser(
            [i.address for i in self._all_interfaces if self._listens_on(i.address)]
        )
        self._advertiser.start()
        if gateway:
            self._advertiser.advertise(
                Advertisement(
                    HTTP_TYPE, f"bridge on {socket.gethostname()}", _public(gateway), self._web_port
                )
            )
        self._spawn(self._watch_interfaces(), "announce: interfaces")
        self._spawn(self._renew_ssdp(), "announce: ssdp renewal")

    async def stop(self) -> None:
        """Bye and byebye for every device (and goodbyes from zeroconf), then the sockets
        close."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        await asyncio.gather(*(self.remove(d) for d in list(self._devices.values())))
        if self._advertiser is not None:
            await self._advertiser.stop()
        self._wsd_port.close()
        self._ssdp_port.close()

    async def add(self, device: AnnouncedDevice) -> None:
        """Start announcing a device (its HTTP server is listening already)."""
        if device.address is not None:
            try:
                self._wsd_port.add_address(device.address)
                self._ssdp_port.add_address(device.address)
            except OSError as exc:
                log.error(
                    "camera %s: cannot announce it from %s: %s", device.name, device.address, exc
                )
                self._wsd_port.remove_address(device.address)
                return
            self._refresh_interfaces()
            self._bind()
        self._devices[device.name] = device
        device.advertisements = [self._stream_advertisement(device)]
        if device.discoverable():
            await self._announce(device)

    async def changed(self, device: AnnouncedDevice) -> None:
        """Its scopes or discovery mode changed: a Hello with the new metadata (or silence
        from now on, for a device made NonDiscoverable)."""
        device.metadata_version += 1
        if self._advertiser is None:
            return
        if device.discoverable():
            await self._announce(device)
        else:
            for advertisement in device.advertisements:
                await self._advertiser.withdraw(advertisement)

    async def remove(self, device: AnnouncedDevice) -> None:
        if self._devices.pop(device.name, None) is None:
            return
        if device.discoverable():
            byes = [
                (src, self._wsd.bye(self._service(device, host)))
                for src, host in self._sources(device)
            ]
            byebyes = [
                (src, msg)
                for src, host in self._sources(device)
                for msg in ssdp.byebye(self._upnp(device, host), boot_id=self._instance)
            ]
            await self._multicast_twice(self._wsd_port, byes)
            await self._multicast_twice(self._ssdp_port, byebyes)
        if self._advertiser is not None:
            for advertisement in device.advertisements:
                await self._advertiser.withdraw(advertisement)
        if device.address is not None:
            self._wsd_port.remove_address(device.address)
            self._ssdp_port.remove_address(device.address)

    def describe(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The handler of a device's UPnP description (``DESCRIPTION_PATH`` on its HTTP
        server), which SSDP's LOCATION points at."""

        async def description(request: web.Request) -> web.Response:
            device = self._devices.get(name)
            if device is None:
                raise web.HTTPNotFound()
            host = device.address or request.url.host or ""
            body = ssdp.description_xml(
                udn=device.udn,
                friendly_name=f"{device.name} ({device.model})",
                manufacturer=device.manufacturer,
                model_name=device.model,
                model_number=device.model,
                serial_number=device.serial,
                presentation_url=f"http://{host}:{self._web_port}/",
            )
            return web.Response(body=body, content_type="text/xml", charset="utf-8")

        return description

    # -- announcing -------------------------------------------------------------------------

    async def _announce(self, device: AnnouncedDevice) -> None:
        """Hello, NOTIFY alive and the zeroconf records of one device."""
        hellos = [
            (src, self._wsd.hello(self._service(device, host)))
            for src, host in self._sources(device)
        ]
        await self._multicast_twice(self._wsd_port, hellos)
        await self._multicast_twice(self._ssdp_port, self._alive(device))
        if self._advertiser is not None:
            for advertisement in device.advertisements:
                self._advertiser.advertise(advertisement)

    def _alive(self, device: AnnouncedDevice) -> list[tuple[str, bytes]]:
        return [
            (source, message)
            for source, host in self._sources(device)
            for message in ssdp.alive(
                self._upnp(device, host), max_age=SSDP_MAX_AGE, boot_id=self._instance
            )
        ]

    async def _multicast_twice(
        self, port: MulticastPort, messages: list[tuple[str, bytes]]
    ) -> None:
        """Send each message, then the same datagrams again (SOAP-over-UDP and UDA both
        repeat multicast: the same MessageID, so a receiver drops the copy)."""
        for attempt in range(2):
            if attempt:
                await asyncio.sleep(_REPEAT_GAP)
            for source, message in messages:
                port.multicast(message, source=source)

    def _sources(self, device: AnnouncedDevice) -> list[tuple[str, str]]:
        """Where a device's multicast leaves from, each with the host its URLs carry there."""
        if device.address is not None:
            return [(device.address, device.address)]
        return [(i.address, self._url_host(i.address)) for i in self._interfaces]

    def _url_host(self, local_address: str) -> str:
        return local_address if self._advertise_host == "auto" else self._advertise_host

    def _service(self, device: AnnouncedDevice, host: str) -> wsdiscovery.TargetService:
        return wsdiscovery.TargetService(
            endpoint=device.endpoint,
            types=DEVICE_TYPES,
            scopes=tuple(device.scopes()),
            xaddrs=(f"http://{host}:{device.port}{device.device_path}",),
            metadata_version=device.metadata_version,
        )

    def _upnp(self, device: AnnouncedDevice, host: str) -> ssdp.UpnpDevice:
        return ssdp.UpnpDevice(
            udn=device.udn,
            location=f"http://{host}:{device.port}{DESCRIPTION_PATH}",
            server=self._server,
        )

    def _stream_advertisement(self, device: AnnouncedDevice) -> Advertisement:
        addresses = (
            (device.address,) if device.address else _public([i.address for i in self._interfaces])
        )
        return Advertisement(
            RTSP_TYPE,
            device.name,
            addresses,
            device.rtsp_port,
            (("path", device.rtsp_path), ("model", device.model)),
        )

    # -- answering --------------------------------------------------------------------------

    def _answering(self, local_address: str | None) -> list[AnnouncedDevice]:
        """The devices that answer a search: every discoverable one for a multicast search;
        for one sent to an address, the devices reached at that address."""
        return [
            device
            for device in self._devices.values()
            if device.discoverable()
            and (
                local_address is None
                or device.address == local_address
                or (device.address is None and local_address not in self._device_addresses)
            )
        ]

    def _reply_source(
        self, device: AnnouncedDevice, client: str, local_address: str | None
    ) -> tuple[str, str] | None:
        """The address a device answers this client from, and the host its URLs carry there:
        its own address; else the gateway address the search came to, or the gateway's
        address on the client's subnet, or the one the route to the client leaves from."""
        if device.address is not None:
            return device.address, device.address
        ours = self._wsd_port.addresses - self._device_addresses
        source = local_address if local_address in ours else None
        if source is None:
            try:
                ip = ipaddress.IPv4Address(client)
            except ValueError:
                return None
            source = next((i.address for i in self._interfaces if ip in i.network), None)
        if source is None:
            source = local_address_towards(client)
        return (source, self._url_host(source)) if source in ours else None

    def _on_wsd(self, data: bytes, source: Source, local_address: str | None) -> None:
        request = self._wsd.receive(data, source, time.monotonic())
        if isinstance(request, Dropped):
            self._note_drop("WS-Discovery", request.reason.name, source)
            return
        replies: list[tuple[str, bytes]] = []
        for device in self._answering(local_address):
            if (where := self._reply_source(device, source[0], local_address)) is not None:
                sender, host = where
                replies += [
                    (sender, reply)
                    for reply in self._wsd.answer(request, [self._service(device, host)])
                ]
        # WS-Discovery: wait a random time up to APP_MAX_DELAY, so a LAN of devices that all
        # match one multicast Probe does not answer in the same instant.
        delay = random.uniform(0, wsdiscovery.APP_MAX_DELAY)
        self._reply_later(self._wsd_port, replies, source, delay)

    def _on_ssdp(self, data: bytes, source: Source, local_address: str | None) -> None:
        search = self._ssdp.receive(data, source, time.monotonic())
        if isinstance(search, Dropped):
            self._note_drop("SSDP", search.reason.name, source)
            return
        date = email.utils.formatdate(usegmt=True)
        replies: list[tuple[str, bytes]] = []
        for device in self._answering(local_address):
            if (where := self._reply_source(device, source[0], local_address)) is not None:
                sender, host = where
                replies += [
                    (sender, message)
                    for message in ssdp.answer(
                        self._upnp(device, host),
                        search,
                        max_age=SSDP_MAX_AGE,
                        boot_id=self._instance,
                        date=date,
                    )
                ]
        self._reply_later(
            self._ssdp_port, replies, source, ssdp.reply_delay(search, random.random())
        )

    def _reply_later(
        self,
        port: MulticastPort,
        replies: list[tuple[str, bytes]],
        destination: Source,
        delay: float,
    ) -> None:
        """Send the answers to one search after ``delay``, each from its device's address;
        at most MAX_PENDING_REPLIES searches wait at once."""
        if not replies:
            return
        if len(self._pending) >= MAX_PENDING_REPLIES:
            self._dropped.log(
                logging.WARNING,
                "backlog",
                "too many searches waiting for an answer; %s ignored",
                destination[0],
            )
            return
        handle: asyncio.TimerHandle

        def send() -> None:
            self._pending.discard(handle)
            for from_address, message in replies:
                port.send(message, destination, source=from_address)

        handle = asyncio.get_running_loop().call_later(delay, send)
        self._pending.add(handle)

    def _note_drop(self, protocol: str, reason: str, source: Source) -> None:
        """Malformed or flooding datagrams leave a rate-limited line; the ordinary traffic
        of a multicast group (others' answers, repeats) none."""
        if reason in ("MALFORMED", "TOO_LARGE", "RATE_LIMITED", "BAD_SOURCE"):
            self._dropped.log(
                logging.INFO,
                f"{protocol}-{reason}",
                "%s: dropped a datagram from %s:%d (%s)",
                protocol,
                source[0],
                source[1],
                reason.lower().replace("_", " "),
            )

    # -- the network around ----------------------------------------------------------------

    def _listens_on(self, address: str) -> bool:
        return address in self._device_addresses or listens_on(self._listen_host, address)

    def _refresh_interfaces(self) -> bool:
        """Re-read the host's interfaces; True when the gateway's own addresses changed.

        The gateway answers from each of its addresses, but announces once per subnet it is
        on (from its first address there): a second address on the same LAN would only make
        every client see each device twice.
        """
        self._all_interfaces = self._list_interfaces()
        gateway = [
            interface
            for interface in interfaces_for(self._listen_host, self._all_interfaces)
            if interface.address not in self._device_addresses
        ]
        per_subnet: dict[ipaddress.IPv4Network, Interface] = {}
        for interface in gateway:
            per_subnet.setdefault(interface.network, interface)
        addresses = {interface.address for interface in gateway}
        changed = addresses != self._gateway_addresses
        self._gateway_addresses = addresses
        self._interfaces = list(per_subnet.values())
        return changed

    def _bind(self) -> None:
        """Group membership on the gateway's interfaces and on those of the devices' own
        addresses (a copy that arrives on two of them is dropped as a repeat), and a socket
        on each of the gateway's addresses (those gone are closed)."""
        interfaces = [i for i in self._all_interfaces if self._listens_on(i.address)]
        for port in (self._wsd_port, self._ssdp_port):
            port.join(interfaces)
            for address in port.addresses - self._gateway_addresses - self._device_addresses:
                port.remove_address(address)
            for address in self._gateway_addresses - port.addresses:
                try:
                    port.add_address(address)
                except OSError as exc:
                    log.warning("cannot answer %s searches on %s: %s", port.group, address, exc)

    def _is_broadcast(self, address: str) -> bool:
        return is_directed_broadcast(address, self._all_interfaces)

    async def _watch_interfaces(self) -> None:
        """A new or changed address of the gateway (DHCP, a cable plugged in): the devices
        reached there say Hello again, with new metadata (their XAddrs changed)."""
        while True:
            await asyncio.sleep(INTERFACE_POLL_SECONDS)
            if not self._refresh_interfaces():
                continue
            self._bind()
            for device in list(self._devices.values()):
                if device.address is None:
                    await self.changed(device)

    async def _renew_ssdp(self) -> None:
        """NOTIFY alive again before the max-age runs out (UDA: within half of it)."""
        while True:
            await asyncio.sleep(SSDP_MAX_AGE / 3)
            for device in list(self._devices.values()):
                if device.discoverable():
                    await self._multicast_twice(self._ssdp_port, self._alive(device))

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _public(addresses: Sequence[str]) -> tuple[str, ...]:
    """The addresses worth advertising: not loopback, unless there is nothing else."""
    public = tuple(a for a in addresses if not ipaddress.IPv4Address(a).is_loopback)
    return public or tuple(addresses)
