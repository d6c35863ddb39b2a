"""``gateway.discovery: true``: the running gateway finds cameras that are not in its config,
says so once, and never adds them by itself. On loopback addresses only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from conftest import StartGateway

from bridge.cameras.base import Dialect
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS

PORT = 8081  # one of the ports cameras of that era used, which the sweep knocks on


@pytest.fixture
async def two_cameras() -> AsyncIterator[tuple[RunningSimulator, RunningSimulator]]:
    configured = await start_simulator(SIMULATORS[Dialect.HAMA](SimOptions()), "127.0.0.21", PORT)
    other = await start_simulator(
        SIMULATORS[Dialect.VAPIX2](SimOptions(mac="00:40:8c:00:00:22")), "127.0.0.22", PORT
    )
    yield configured, other
    await other.stop()
    await configured.stop()


async def test_cameras_not_in_the_config_are_logged_once_and_listed(
    two_cameras: tuple[RunningSimulator, RunningSimulator],
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configured, other = two_cameras
    caplog.set_level(logging.INFO, logger="bridge.app")
    said = asyncio.Event()

    class Listener(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "not in the config" in record.getMessage():
                said.set()

    listener = Listener()
    logging.getLogger("bridge.app").addHandler(listener)
    try:
        gateway = await start_gateway(
            configured, discovery=True, discovery_networks=["127.0.0.16/28"]
        )
        await asyncio.wait_for(said.wait(), 30)
    finally:
        logging.getLogger("bridge.app").removeHandler(listener)
    (found,) = gateway.discovered
    assert (found.url, found.dialect) == (other.url, "vapix2")
    lines = [r.getMessage() for r in caplog.records if "not in the config" in r.getMessage()]
    assert lines == [f"found a camera that is not in the config: {other.url}, vapix2"]
    assert list(gateway.cameras) == ["hama"]  # never added by itself
