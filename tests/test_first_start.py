"""A first start and a health check, as a container runs them (README, "Docker and systemd"):
``bridge run --example-if-missing`` with no config, and ``bridge healthcheck``."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import yaml
from conftest import StartGateway, StartSim
from test_cli import bridge_cli

from bridge.simulator.core import SimOptions
from bridge.simulator.vapix2 import Vapix2Simulator

EXAMPLE = Path(__file__).parent.parent / "config" / "bridge.example.yaml"


async def test_a_first_start_writes_the_documented_example_and_stops(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    code, out, err = await bridge_cli("run", "--config", str(config), "--example-if-missing")
    assert code == 2
    assert f"error: {config}: there was no config, so a commented example is there now" in err
    assert f"check it with `bridge check-config {config}`" in err
    assert "Traceback" not in err
    assert config.read_bytes() == EXAMPLE.read_bytes()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it will hold passwords
    code, out, err = await bridge_cli("check-config", str(config))
    assert (code, out) == (0, f"{config}: OK, 1 camera(s)\n"), err


async def test_without_the_option_a_missing_config_is_an_error_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bridge.yaml"
    code, _, err = await bridge_cli("run", "--config", str(config))
    assert code == 2
    assert f"error: {config}: cannot read: No such file or directory" in err
    assert not config.exists()


async def test_an_unwritable_config_place_says_so(tmp_path: Path) -> None:
    config = tmp_path / "missing-directory" / "bridge.yaml"
    code, _, err = await bridge_cli("run", "--config", str(config), "--example-if-missing")
    assert code == 2
    assert f"error: {config}: no config, and cannot write an example" in err


def _config_file(tmp_path: Path, web_port: int) -> Path:
    # A wildcard listen address: the check asks loopback, as a container health check must.
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"gateway": {"listen_host": "0.0.0.0", "web_port": web_port}}))
    return config


async def test_healthcheck_passes_while_the_gateway_serves(
    start_sim: StartSim, start_gateway: StartGateway, tmp_path: Path
) -> None:
    gateway = await start_gateway(await start_sim(Vapix2Simulator(SimOptions())))
    code, out, err = await bridge_cli(
        "healthcheck", "--config", str(_config_file(tmp_path, gateway.web_port))
    )
    assert (code, out, err) == (0, "", "")


async def test_healthcheck_fails_when_nothing_serves(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = await bridge_cli("healthcheck", "--config", str(_config_file(tmp_path, port)))
    assert code == 1
    assert f"unhealthy: http://127.0.0.1:{port}/healthz" in err


async def test_healthcheck_without_a_config_is_unhealthy_not_a_reserved_exit_code(
    tmp_path: Path,
) -> None:
    # Docker reserves exit code 2 of a health check; a usage error must not produce it.
    code, _, err = await bridge_cli("healthcheck", "--config", str(tmp_path / "bridge.yaml"))
    assert code == 1
    assert "unhealthy: " in err
    assert "cannot read" in err


async def test_healthcheck_of_a_gateway_that_does_not_answer_fails_in_time(
    tmp_path: Path,
) -> None:
    # A listening socket nobody reads: what a wedged event loop looks like from outside.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, _, err = await bridge_cli(
            "healthcheck", "--config", str(_config_file(tmp_path, port))
        )
    assert code == 1
    assert f"unhealthy: http://127.0.0.1:{port}/healthz: TimeoutError" in err
