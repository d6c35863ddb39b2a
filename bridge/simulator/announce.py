"""How an emulated camera makes itself known on the LAN, as its family did (2007-2011):

- UPnP/SSDP: a root device that answers M-SEARCH and sends NOTIFY alive/byebye, with a device
  description naming manufacturer and model (Axis units, their OEMs, D-Link-style CAS-3xx
  units with "UPnPEnable", the "Open API" firmware);
- Bonjour/mDNS: Axis units advertised ``_axis-video._tcp`` with their MAC in the TXT record.

Foscam FI89xx units found each other with a vendor UDP broadcast the emulator does not speak:
they are found by the HTTP sweep alone. Everything goes out on the interface holding the
emulator's address, from that address only.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from bridge.discovery import ssdp
from bridge.discovery.mdns import Advertisement, Advertiser
from bridge.discovery.sources import Dropped
from bridge.discovery.udp import MulticastPort, Source, ipv4_interfaces

if TYPE_CHECKING:
    from bridge.simulator.core import SimulatedCamera

DESCRIPTION_PATH = "/rootdesc.xml"
MAX_AGE = 1800
_NAMESPACE = uuid.UUID("1b7e6f0e-58a4-4c3c-9d43-0a4c8b6d2f11")


def udn_of(camera: SimulatedCamera) -> str:
    return f"uuid:{uuid.uuid5(_NAMESPACE, camera.options.mac.lower())}"


async def description(camera: SimulatedCamera, request: web.Request) -> web.Response:
    """The device description its SSDP LOCATION points at (served without credentials)."""
    presence = camera.presence
    if presence is None or not presence.ssdp:
        raise web.HTTPNotFound()
    body = ssdp.description_xml(
        udn=udn_of(camera),
        friendly_name=f"{presence.model} - {camera.options.mac.upper()}",
        manufacturer=presence.manufacturer,
        model_name=presence.model,
        model_number=presence.model,
        serial_number=camera.options.serial or camera.options.mac.replace(":", "").upper(),
        presentation_url="/",
    )
    return web.Response(body=body, content_type="text/xml")


class Announcements:
    """The running announcements of one emulated camera at ``host:port``."""

    def __init__(self, camera: SimulatedCamera, host: str, port: int) -> None:
        self._camera = camera
        self._host = host
        self._port = port
        self._ssdp: MulticastPort | None = None
        self._responder = ssdp.Responder()
        self._advertiser: Advertiser | None = None
        self._renewal: asyncio.Task[None] | None = None
        self._device = ssdp.UpnpDevice(
            udn=udn_of(camera),
            location=f"http://{host}:{port}{DESCRIPTION_PATH}",
            server=f"Linux/2.4 UPnP/1.0 {camera.server_header.replace(' ', '_')}",
        )

    async def start(self) -> None:
        presence = self._camera.presence
        if presence is None:
            return
        interfaces = [i for i in ipv4_interfaces() if i.address == self._host]
        if presence.ssdp and interfaces:
            self._ssdp = MulticastPort(
                ssdp.MULTICAST_GROUP,
                ssdp.PORT,
                self._on_ssdp,
                ttl=2,
                max_datagram=ssdp.MAX_DATAGRAM,
            )
            self._ssdp.start()
            self._ssdp.join(interfaces)
            self._ssdp.add_address(self._host)
            self._renewal = asyncio.create_task(self._keep_alive())
        if presence.mdns_type and interfaces:
            self._advertiser = Advertiser([self._host])
            self._advertiser.start()
            mac = self._camera.options.mac.replace(":", "").upper()
            self._advertiser.advertise(
                Advertisement(
                    presence.mdns_type,
                    f"{presence.model} - {mac}",
                    (self._host,),
                    self._port,
                    (("macaddress", mac),),
                )
            )

    async def stop(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
        if self._ssdp is not None:
            for message in ssdp.byebye(self._device):
                self._ssdp.multicast(message, source=self._host)
            self._ssdp.close()
            self._ssdp = None
        if self._advertiser is not None:
            await self._advertiser.stop()

    async def _keep_alive(self) -> None:
        while True:
            if self._ssdp is not None:
                for message in ssdp.alive(self._device, max_age=MAX_AGE):
                    self._ssdp.multicast(message, source=self._host)
            await asyncio.sleep(MAX_AGE / 3)

    def _on_ssdp(self, data: bytes, source: Source, local_address: str | None) -> None:
        search = self._responder.receive(data, source, time.monotonic())
        if isinstance(search, Dropped):
            return
        replies = ssdp.answer(self._device, search, date=email.utils.formatdate(usegmt=True))
        if replies:
            asyncio.get_running_loop().call_later(
                ssdp.reply_delay(search, random.random()), self._send, replies, source
            )

    def _send(self, replies: list[bytes], destination: Source) -> None:
        if self._ssdp is not None:
            for reply in replies:
                self._ssdp.send(reply, destination, source=self._host)
