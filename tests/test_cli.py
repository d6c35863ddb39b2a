"""The `bridge` commands as a user runs them: real subprocesses against emulated cameras."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest
from aiohttp import web
from conftest import Serve, StartSim

from bridge.cameras.base import Dialect
from bridge.simulator.core import SimOptions
from bridge.simulator.registry import SIMULATORS

PASSWORD = "pr0be-secret"


async def bridge_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("dialect", list(Dialect))
async def test_probe_identifies_each_dialect_and_prints_a_config_entry(
    start_sim: StartSim, dialect: Dialect
) -> None:
    options = SimOptions(password=PASSWORD, mac="00:40:8C:12:34:56")
    sim = await start_sim(SIMULATORS[dialect](options))
    code, out, err = await bridge_cli("probe", sim.url, "-u", "admin", "-p", PASSWORD)
    assert code == 0, err
    assert out.startswith(f"dialect: {dialect}")
    assert "manufacturer: " in out
    assert "mac: 00:40:8C:12:34:56" in out
    assert f"    dialect: {dialect}\n" in out
    assert f"    url: {sim.url}" in out
    assert PASSWORD not in out + err


@pytest.mark.parametrize("dialect", list(Dialect))
async def test_probe_with_wrong_password_is_a_clear_auth_error(
    start_sim: StartSim, dialect: Dialect
) -> None:
    sim = await start_sim(SIMULATORS[dialect](SimOptions(password=PASSWORD)))
    code, _, err = await bridge_cli("probe", sim.url, "-u", "admin", "-p", "not-it")
    assert code == 1
    assert "credentials rejected" in err
    assert "not-it" not in err
    assert "Traceback" not in err


@pytest.fixture
async def plain_web_server(serve: Serve) -> str:
    async def home(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    app = web.Application()
    app.router.add_get("/", home)
    return await serve(app)


async def test_probe_of_a_plain_web_server_says_unknown(plain_web_server: str) -> None:
    code, _, err = await bridge_cli("probe", plain_web_server, "-u", "admin", "-p", "x")
    assert code == 1
    assert "not a known camera" in err


async def test_probe_of_nothing_listening_says_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = await bridge_cli("probe", f"http://127.0.0.1:{port}")
    assert code == 1
    assert "connection failed" in err


async def test_simulate_command_serves_a_camera_until_interrupted() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "simulate",
        "vapix2",
        "--port",
        str(port),
        "--password",
        PASSWORD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"http://127.0.0.1:{port}/" in banner.decode()
        code, out, err = await bridge_cli(
            "probe", f"http://127.0.0.1:{port}", "-u", "admin", "-p", PASSWORD
        )
        assert code == 0, err
        assert out.startswith("dialect: vapix2")
    finally:
        process.send_signal(2)  # Ctrl-C
        returncode = await asyncio.wait_for(process.wait(), 15)
    assert returncode == 0
