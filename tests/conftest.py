"""Fixtures shared by the whole suite: emulated cameras on loopback, drivers bound to them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bridge.app import Gateway
from bridge.cameras.http import CameraHttp, Credentials
from bridge.commands import demo_config
from bridge.simulator.core import RunningSimulator, SimulatedCamera, start_simulator

GATEWAY_USER, GATEWAY_PASSWORD = "admin", "admin"  # what demo_config gives the gateway
StartSim = Callable[[SimulatedCamera], Awaitable[RunningSimulator]]
StartGateway = Callable[..., Awaitable[Gateway]]
OpenHttp = Callable[..., CameraHttp]
Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """Undo what a test's in-process `bridge` command does to the root logger: its handler
    writes to the stderr that pytest captured for that test, closed once the test ends."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start emulated cameras on 127.0.0.1 with free ports; all stopped after the test."""
    running: list[RunningSimulator] = []

    async def start(camera: SimulatedCamera) -> RunningSimulator:
        sim = await start_simulator(camera)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        await sim.stop()


@pytest.fixture
async def open_http() -> AsyncIterator[OpenHttp]:
    """CameraHttp clients (closed after the test): open_http(url, user, password, **kwargs)."""
    clients: list[CameraHttp] = []

    def open_(
        url: str, username: str | None = None, password: str = "", **kwargs: object
    ) -> CameraHttp:
        creds = Credentials(username, password) if username is not None else None
        http = CameraHttp(url, creds, **kwargs)  # type: ignore[arg-type]
        clients.append(http)
        return http

    yield open_
    for http in clients:
        await http.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Plain HTTP servers on loopback (foreign devices, odd replies): serve(app) -> base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    """A gateway on loopback (free ports) in front of running emulators, as ``bridge demo``
    builds it: start_gateway(sim, ..., camera_options={...}, **gateway_overrides) (camera
    options apply to every camera; ``state_file``: where it keeps identities and settings,
    none by default). Returns once every camera is connected and its ONVIF
    device serving; stopped after the test. Every ONVIF response is checked against the
    schemas (one that does not fit is answered with ter:Action)."""
    gateways: list[Gateway] = []

    async def start(
        *sims: RunningSimulator,
        camera_options: dict[str, object] | None = None,
        state_file: Path | None = None,
        **overrides: object,
    ) -> Gateway:
        # Announcing (WS-Discovery, SSDP, zeroconf) is for the discovery tests to switch on.
        overrides = {"onvif_validate_responses": True, "announce": False, **overrides}
        config = demo_config(sims, "127.0.0.1", 0, 0, 0)
        config = config.model_copy(
            update={
                "gateway": config.gateway.model_copy(update=overrides),
                "cameras": [c.model_copy(update=camera_options) for c in config.cameras],
            }
        )
        gateway = Gateway(config, state_file=state_file)
        gateways.append(gateway)
        await gateway.start()
        for camera in gateway.cameras.values():
            async with asyncio.timeout(10):
                await camera.ready.wait()
        return gateway

    yield start
    for gateway in gateways:
        await gateway.stop()
