"""One emulated camera behind the real gateway, driven by onvif-zeep-async: what the tests of
the camera-facing ONVIF services (PTZ, imaging ...) share.

Every response the client receives, faults included, is validated against the WSDL schemas;
what reached the camera is read from the emulator's request log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from lxml import etree
from onvif import ONVIFCamera
from onvif.definition import SERVICES
from zeep import Plugin

from bridge.app import Gateway
from bridge.onvif.schemas import message_schema
from bridge.onvif.soap import SOAP12_NS, Service
from bridge.simulator.core import SIM_PREFIX, RunningSimulator, SimulatedCamera


class SchemaCheck(Plugin):  # type: ignore[misc]
    """A zeep plugin that validates the body of every response against the schemas."""

    def __init__(self) -> None:
        self.checked = 0

    def ingress(
        self, envelope: etree._Element, http_headers: Mapping[str, str], operation: Any
    ) -> tuple[etree._Element, Mapping[str, str]]:
        schema = message_schema(*(service.wsdl for service in Service))
        body = envelope.find(f"{{{SOAP12_NS}}}Body")
        assert body is not None
        for element in body:
            assert schema.validate(element), schema.error_log
        self.checked += 1
        return envelope, http_headers


@dataclass
class EmulatedDevice:
    sim: RunningSimulator
    gateway: Gateway
    client: ONVIFCamera
    schema_check: SchemaCheck = field(default_factory=SchemaCheck)

    @property
    def name(self) -> str:
        return str(self.sim.camera.dialect)

    async def service(self, service: Service) -> Any:
        """The client's service object, validating every response it gets.

        Its address is set directly, as GetServices would give it, so these tests do not
        depend on the device service.
        """
        context = self.gateway.cameras[self.name].onvif
        assert context is not None
        self.client.xaddrs[service.namespace] = (
            f"http://127.0.0.1:{context.ports.onvif}{service.path}"
        )
        name = next(name for name, spec in SERVICES.items() if spec["ns"] == service.namespace)
        client = await self.client.create_onvif_service(name)
        client.zeep_client.plugins.append(self.schema_check)
        return client

    async def _sim(self, method: str, what: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.sim.url}{SIM_PREFIX}{what}") as response,
        ):
            assert response.status == 200
            return await response.json()

    async def requests(self) -> list[dict[str, Any]]:
        """The CGI requests the camera received since the last clear, each with its query
        and form fields merged under ``params``."""
        recorded: list[dict[str, Any]] = await self._sim("GET", "requests")
        return [{**r, "params": {**r["query"], **r["form"]}} for r in recorded]

    async def clear_requests(self) -> None:
        await self._sim("DELETE", "requests")

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self._sim("GET", "state")
        return state


OpenDevice = Callable[[SimulatedCamera], Awaitable[EmulatedDevice]]


@asynccontextmanager
async def emulated_devices(
    start_sim: StartSim, start_gateway: StartGateway
) -> AsyncIterator[OpenDevice]:
    """open_device(camera): the camera emulated, a gateway in front, a client for its device."""
    clients: list[ONVIFCamera] = []

    async def open_device(camera: SimulatedCamera) -> EmulatedDevice:
        sim = await start_sim(camera)
        gateway = await start_gateway(sim)
        context = gateway.cameras[str(camera.dialect)].onvif
        assert context is not None
        client = ONVIFCamera(
            "127.0.0.1", context.ports.onvif, GATEWAY_USER, GATEWAY_PASSWORD, no_cache=True
        )
        clients.append(client)
        return EmulatedDevice(sim, gateway, client)

    try:
        yield open_device
    finally:
        for client in clients:
            await client.close()
