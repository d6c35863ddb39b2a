"""What the ONVIF tests share: emulated cameras behind the real Gateway, driven by
onvif-zeep-async (the client Home Assistant uses), and checked through the emulators' logs.

Every response a client of a :class:`Device` receives, faults included, is validated against
the WSDL schemas. Test modules import its ``open_device`` fixture by its function's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from lxml import etree
from onvif import ONVIFCamera
from onvif.client import ONVIFService
from onvif.definition import SERVICES
from zeep import Plugin
from zeep.exceptions import Fault

from bridge.app import Gateway
from bridge.cameras.base import CameraDriver, Dialect
from bridge.onvif.context import DeviceContext
from bridge.onvif.schemas import message_schema
from bridge.onvif.soap import SOAP12_NS, Service
from bridge.simulator.core import SIM_PREFIX, RunningSimulator, SimOptions, SimulatedCamera
from bridge.simulator.hama import HamaSimulator
from bridge.simulator.registry import SIMULATORS

DIALECTS = list(Dialect)


class HamaWithoutPtz(HamaSimulator):
    """A unit of the hama family whose parameters say it has no pan/tilt head."""

    def params(self, http_port: int = 80) -> dict[str, str]:
        return {**super().params(http_port), "Properties.PTZ.PTZ": "no"}


@dataclass(frozen=True)
class Cgi:
    """A request a camera must receive: its path and some of its query or form fields
    (``{token}`` in a value stands for a token known only once the test runs)."""

    path: str
    params: Mapping[str, str]

    def seen_in(self, requests: Iterable[Mapping[str, Any]], token: str = "") -> bool:
        wanted = {name: value.format(token=token) for name, value in self.params.items()}
        return any(
            r["path"] == self.path and all(r["params"].get(k) == v for k, v in wanted.items())
            for r in requests
        )


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


class CheckedCamera(ONVIFCamera):  # type: ignore[misc]
    """A client as Home Assistant builds it, each of whose services checks its responses."""

    def __init__(self, port: int, user: str, password: str, check: SchemaCheck) -> None:
        super().__init__("127.0.0.1", port, user, password, no_cache=True, adjust_time=True)
        self.schema_check = check

    async def create_onvif_service(self, name: str, *args: Any, **kwargs: Any) -> ONVIFService:
        service = await super().create_onvif_service(name, *args, **kwargs)
        for client in (service.zeep_client, service.zeep_client_authless):
            if self.schema_check not in client.plugins:
                client.plugins.append(self.schema_check)
        return service


@dataclass
class Device:
    """One camera's virtual ONVIF device, its emulator and the gateway serving it."""

    sim: RunningSimulator
    gateway: Gateway
    schema_check: SchemaCheck = field(default_factory=SchemaCheck)
    clients: list[ONVIFCamera] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.sim.camera.dialect)  # demo_config names each camera so

    @property
    def context(self) -> DeviceContext:
        context = self.gateway.cameras[self.name].onvif
        assert context is not None
        return context

    @property
    def driver(self) -> CameraDriver:
        return self.context.driver

    @property
    def port(self) -> int:
        return self.context.ports.onvif

    def client(self, user: str = GATEWAY_USER, password: str = GATEWAY_PASSWORD) -> ONVIFCamera:
        """A new client of the device, closed when the test ends."""
        camera = CheckedCamera(self.port, user, password, self.schema_check)
        self.clients.append(camera)
        return camera

    async def service(self, service: Service, client: ONVIFCamera | None = None) -> Any:
        """A client's service object (a new client's unless one is given).

        Its address is set directly, as GetServices would give it, so the tests of one
        service do not depend on the device service.
        """
        client = client or self.client()
        client.xaddrs[service.namespace] = f"http://127.0.0.1:{self.port}{service.path}"
        name = next(name for name, spec in SERVICES.items() if spec["ns"] == service.namespace)
        return await client.create_onvif_service(name)

    async def _sim(self, method: str, what: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.sim.url}{SIM_PREFIX}{what}") as response,
        ):
            assert response.status == 200
            return await response.json()

    async def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """The CGI requests (for ``path``, else all) the camera received since the last
        clear, each with its query and form fields merged under ``params``."""
        recorded: list[dict[str, Any]] = await self._sim("GET", "requests")
        return [
            {**r, "params": {**r["query"], **r["form"]}}
            for r in recorded
            if path is None or r["path"] == path
        ]

    async def clear_requests(self) -> None:
        await self._sim("DELETE", "requests")

    async def expect(self, *cgis: Cgi, token: str = "") -> None:
        """Every one of these requests reached the camera since the last check."""
        requests = await self.requests()
        for cgi in cgis:
            assert cgi.seen_in(requests, token), (cgi, requests)
        await self.clear_requests()

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self._sim("GET", "state")
        return state

    async def cause(self, what: str) -> None:
        """Play the outside world: ``motion?active=1&level=80``, ``input?port=1&active=1``."""
        await self._sim("POST", what)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class OpenDevice:
    """open_device(camera, **gateway_options): an emulated camera (a dialect stands for its
    emulator with the default options) behind its own gateway (start_gateway's options)."""

    def __init__(self, start_sim: StartSim, start_gateway: StartGateway) -> None:
        self._start_sim = start_sim
        self._start_gateway = start_gateway
        self._opened: list[Device] = []

    async def __call__(self, camera: str | SimulatedCamera, **gateway_options: Any) -> Device:
        (device,) = await self.behind_one_gateway(camera, **gateway_options)
        return device

    async def behind_one_gateway(
        self, *cameras: str | SimulatedCamera, **gateway_options: Any
    ) -> list[Device]:
        sims = [
            await self._start_sim(
                SIMULATORS[Dialect(camera)](SimOptions()) if isinstance(camera, str) else camera
            )
            for camera in cameras
        ]
        gateway = await self._start_gateway(*sims, **gateway_options)
        devices = [Device(sim, gateway) for sim in sims]
        self._opened += devices
        return devices

    async def close(self) -> None:
        for device in self._opened:
            await device.close()


@pytest.fixture(name="open_device")
async def open_device_fixture(
    start_sim: StartSim, start_gateway: StartGateway
) -> AsyncIterator[OpenDevice]:
    """Emulated cameras behind gateways, their clients closed after the test."""
    opener = OpenDevice(start_sim, start_gateway)
    yield opener
    await opener.close()


def fault_codes(fault: Fault) -> list[str]:
    """A zeep Fault's ONVIF subcodes, local names only (ActionNotSupported ...)."""
    return [subcode.localname for subcode in fault.subcodes or []]


async def fault_of(call: Awaitable[Any]) -> list[str]:
    """The subcodes of the fault a call gets."""
    with pytest.raises(Fault) as caught:
        await call
    return fault_codes(caught.value)
