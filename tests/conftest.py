"""Fixtures shared by the whole suite: emulated cameras on loopback, drivers bound to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from bridge.cameras.http import CameraHttp, Credentials
from bridge.simulator.core import RunningSimulator, SimulatedCamera, start_simulator

StartSim = Callable[[SimulatedCamera], Awaitable[RunningSimulator]]
OpenHttp = Callable[..., CameraHttp]
Serve = Callable[[web.Application], Awaitable[str]]


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
