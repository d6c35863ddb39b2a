"""Zeroconf (mDNS/DNS-SD) advertisements: each camera's RTSP stream as ``_rtsp._tcp`` and the
gateway's web port as ``_http._tcp``, so players and home-automation hubs that browse for
them list every camera; withdrawn (goodbye packets) when a camera goes or the gateway stops.

python-zeroconf does the protocol; this module only says what to advertise and where. Only
the interfaces the gateway listens on are used, never every interface of the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from zeroconf import IPVersion, NonUniqueNameException
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

RTSP_TYPE = "_rtsp._tcp.local."
HTTP_TYPE = "_http._tcp.local."
_REGISTER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One service instance: ``name`` is its instance label (a camera's name)."""

    service_type: str
    name: str
    addresses: tuple[str, ...]
    port: int
    properties: tuple[tuple[str, str], ...] = ()

    def info(self) -> AsyncServiceInfo:
        host = "".join(c if c.isalnum() else "-" for c in self.name).strip("-") or "bridge"
        return AsyncServiceInfo(
            self.service_type,
            f"{self.name}.{self.service_type}",
            addresses=[socket.inet_aton(address) for address in self.addresses],
            port=self.port,
            properties=dict(self.properties),
            server=f"{host}.local.",
        )


class Advertiser:
    """The gateway's zeroconf responder on ``interfaces`` (IPv4 addresses)."""

    def __init__(self, interfaces: Sequence[str]) -> None:
        self._interfaces = list(interfaces)
        self._zeroconf: AsyncZeroconf | None = None
        self._registered: dict[Advertisement, AsyncServiceInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._interfaces:
            self._zeroconf = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)

    def advertise(self, advertisement: Advertisement) -> None:
        """Register in the background: zeroconf first probes the name for a few hundred ms
        (and renames ours on a clash: two gateways may both have a camera called porch)."""
        if self._zeroconf is None or advertisement in self._registered:
            return
        info = advertisement.info()
        self._registered[advertisement] = info
        task = asyncio.create_task(self._register(self._zeroconf, info))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _register(zeroconf: AsyncZeroconf, info: AsyncServiceInfo) -> None:
        try:
            async with asyncio.timeout(_REGISTER_TIMEOUT):
                await zeroconf.async_register_service(info, allow_name_change=True)
        except (TimeoutError, NonUniqueNameException, OSError) as exc:
            log.warning("zeroconf: cannot advertise %s: %s", info.name, exc)

    async def withdraw(self, advertisement: Advertisement) -> None:
        info = self._registered.pop(advertisement, None)
        if info is not None and self._zeroconf is not None:
            with contextlib.suppress(KeyError, OSError):
                await self._zeroconf.async_unregister_service(info)

    async def stop(self) -> None:
        """Goodbye packets for everything advertised, then the responder stops."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
            self._zeroconf = None
        self._registered.clear()
