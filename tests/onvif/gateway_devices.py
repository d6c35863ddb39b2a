"""What the ONVIF device tests share: one emulated camera behind a real Gateway, driven by
onvif-zeep-async (the client Home Assistant uses) and checked through the emulator's log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from bridge.app import Gateway
from bridge.cameras.base import Dialect
from bridge.onvif.context import DeviceContext
from bridge.simulator.core import RunningSimulator, SimOptions
from bridge.simulator.registry import SIMULATORS

DIALECTS = list(Dialect)


@dataclass
class Device:
    """One camera's virtual ONVIF device, its emulator and the gateway serving it."""

    sim: RunningSimulator
    gateway: Gateway

    @property
    def context(self) -> DeviceContext:
        context = self.gateway.cameras[self.sim.camera.dialect].onvif  # demo_config's names
        assert context is not None
        return context

    @property
    def port(self) -> int:
        return self.context.ports.onvif

    @asynccontextmanager
    async def client(
        self, user: str = GATEWAY_USER, password: str = GATEWAY_PASSWORD
    ) -> AsyncIterator[ONVIFCamera]:
        """A client as Home Assistant builds it, closed on leaving."""
        camera = ONVIFCamera(
            "127.0.0.1", self.port, user, password, no_cache=True, adjust_time=True
        )
        try:
            yield camera
        finally:
            await camera.close()

    async def sim_requests(self, path: str) -> list[dict[str, Any]]:
        """The CGI requests for ``path`` the emulator received, from its ``/__sim__/requests``."""
        url = f"{self.sim.url}/__sim__/requests"
        async with aiohttp.ClientSession() as session, session.get(url) as reply:
            log: list[dict[str, Any]] = await reply.json()
        return [entry for entry in log if entry["path"] == path]

    async def clear_sim_requests(self) -> None:
        url = f"{self.sim.url}/__sim__/requests"
        async with aiohttp.ClientSession() as session, session.delete(url) as reply:
            assert reply.status < 300


async def start_device(
    start_sim: StartSim, start_gateway: StartGateway, dialect: Dialect, **options: Any
) -> Device:
    """An emulated camera of ``dialect`` (``options``: SimOptions) behind its own gateway,
    which checks every ONVIF response against the schemas."""
    sim = await start_sim(SIMULATORS[dialect](SimOptions(**options)))
    return Device(sim, await start_gateway(sim))


def fault_codes(fault: Fault) -> list[str]:
    """A zeep Fault's ONVIF subcodes, local names only (ActionNotSupported ...)."""
    return [subcode.localname for subcode in fault.subcodes or []]
