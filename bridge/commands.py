"""What each CLI command does, as coroutines returning an exit code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import NoReturn

import aiohttp
from yarl import URL

from bridge.app import Gateway
from bridge.cameras.base import Capabilities, Dialect
from bridge.cameras.http import CameraHttp, Credentials
from bridge.cameras.identify import driver_for, identify
from bridge.config import Config, load_config, state_file_for, users_file_for
from bridge.discovery import lan
from bridge.errors import ConfigError
from bridge.media.source import Profile
from bridge.onvif.soap import Service
from bridge.reload import Reloader
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"
DEMO_CONNECT_TIMEOUT = 10.0


async def wait_for_stop_signal() -> None:
    """Return on Ctrl-C or SIGTERM, so callers shut down in order instead of dying mid-way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def check_config(path: Path) -> int:
    config = load_config(path)
    disabled = sum(not camera.enabled for camera in config.cameras)
    note = f", {disabled} disabled" if disabled else ""
    print(f"{path}: OK, {len(config.cameras)} camera(s){note}")
    return 0


def write_example_config(path: Path) -> NoReturn:
    """A first start (a new container's empty ``/config`` volume): put the commented example
    config where the config belongs and stop with what to do next, rather than run with
    nothing. Never overwrites a file; mode 0600, as the file will hold passwords."""
    example = resources.files("bridge").joinpath("config.example.yaml").read_bytes()
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(example)
    except OSError as exc:
        problem = f"no config, and cannot write an example: {exc.strerror}"
        raise ConfigError(f"{path}: {problem}") from exc
    raise ConfigError(
        f"{path}: there was no config, so a commented example is there now: set your cameras "
        f"and the gateway's password in it, check it with `bridge check-config {path}`, "
        "then start the gateway again"
    )


HEALTH_TIMEOUT = 5.0  # seconds; a container runtime allows a health check 30 s by default
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def _unhealthy(reason: str) -> int:
    print(f"unhealthy: {reason}", file=sys.stderr)
    return 1


async def healthcheck(config_path: Path) -> int:
    """Exit 0 when the gateway of this config answers ``/healthz`` on its web port, else 1
    (also for a config it cannot read: container runtimes reserve exit code 2): the
    container's HEALTHCHECK, which must work with what the image has and whatever port and
    address the config chose."""
    try:
        gateway = load_config(config_path).gateway
    except ConfigError as exc:
        return _unhealthy(str(exc))
    if gateway.web_port == 0:
        return _unhealthy(f"{config_path}: gateway.web_port is 0 (any port): nothing to ask")
    host = _LOOPBACK.get(gateway.listen_host, gateway.listen_host)
    url = URL.build(scheme="http", host=host, port=gateway.web_port, path="/healthz")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)) as http,
            http.get(url) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _unhealthy(f"{url}: {str(exc) or type(exc).__name__}")
    if status != 200:
        return _unhealthy(f"{url}: HTTP {status}")
    return 0


def describe_capabilities(caps: Capabilities) -> list[str]:
    lines = []
    media = [name for name, on in (("snapshot", caps.snapshot), ("video", caps.video)) if on]
    if caps.resolution:
        media.append(f"{caps.resolution[0]}x{caps.resolution[1]}")
    lines.append("media: " + (", ".join(media) or "none"))
    for label, fmt in (("audio in", caps.audio_in), ("audio out", caps.audio_out)):
        if fmt is not None:
            lines.append(f"{label}: {fmt.codec} {fmt.sample_rate} Hz")
    ptz = caps.ptz
    if ptz.any:
        flags = ("continuous", "relative", "absolute", "zoom", "home", "speed")
        kinds = [flag for flag in flags if getattr(ptz, flag)]
        if ptz.presets:
            kinds.append(f"{ptz.presets} presets")
        if ptz.position:
            kinds.append("reports position")
        lines.append("ptz: " + ", ".join(kinds))
    if caps.imaging:
        lines.append("imaging: " + ", ".join(sorted(caps.imaging)))
    io = []
    if caps.relay_outputs:
        io.append(f"{caps.relay_outputs} relay output(s)")
    if caps.digital_inputs:
        io.append(f"{caps.digital_inputs} digital input(s)")
    if caps.motion_events:
        io.append("motion events")
    if caps.input_events:
        io.append("input events")
    if io:
        lines.append("io: " + ", ".join(io))
    system = [
        name
        for name, on in (
            ("get time", caps.get_datetime),
            ("set time", caps.set_datetime),
            ("reboot", caps.reboot),
            ("factory default", caps.factory_default),
        )
        if on
    ]
    if system:
        lines.append("system: " + ", ".join(system))
    return lines


async def probe(url: str, username: str | None, password: str, name: str) -> int:
    creds = Credentials(username, password) if username is not None else None
    async with CameraHttp(url, creds) as http:
        found = await identify(http)
        driver = driver_for(found.dialect, http)
        info = await driver.connect()
    entry_name = name or (info.model or found.dialect).lower()
    entry_name = "".join(c if c.isalnum() else "-" for c in entry_name).strip("-") or "camera"
    print(f"dialect: {found.dialect}  (identified with {found.requests} requests)")
    print(f"manufacturer: {info.manufacturer}")
    print(f"model: {info.model}")
    print(f"firmware: {info.firmware}")
    print(f"serial: {info.serial}")
    print(f"mac: {info.mac}")
    for line in describe_capabilities(driver.capabilities):
        print(line)
    print()
    print("cameras:")
    print(f"  - name: {entry_name}")
    print(f"    url: {http.base_url}")
    print(f"    dialect: {found.dialect}")
    print(f"    username: {username or ''}")
    print('    password: ""            # the camera password you probed with')
    return 0


async def discover(
    targets: Sequence[str],
    ports: Sequence[int],
    username: str | None,
    password: str,
    *,
    as_json: bool,
    show_all: bool,
    wait: float,
    concurrency: int,
) -> int:
    """Find cameras on the LAN; exit 0 whether or not any is found."""
    if wait <= 0 or concurrency < 1:
        raise ConfigError("--timeout must be positive and --concurrency at least 1")
    networks = await asyncio.to_thread(lan.parse_targets, targets) if targets else None
    creds = Credentials(username, password) if username is not None else None
    bar = lan.ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = await lan.discover(
            networks, ports, creds, concurrency=concurrency, wait=wait, progress=bar
        )
    finally:
        if bar is not None:
            bar.clear()
    print(report.summary(), file=sys.stderr)
    if as_json:
        print(lan.report_json(report))
        return 0
    table = lan.format_table(report, show_all=show_all)
    print(table or "no cameras found")
    block = lan.cameras_block(report, username or "")
    if block:
        print()
        print(block, end="")
    return 0


async def _start_simulators(
    dialects: Sequence[Dialect], host: str, base_port: int, options: SimOptions
) -> list[RunningSimulator]:
    running = []
    try:
        for index, dialect in enumerate(dialects):
            port = base_port + index if base_port else 0
            # Each emulated unit is a camera of its own, with a MAC of its own.
            mac = options.mac if len(dialects) == 1 else f"{options.mac[:-2]}{index + 1:02x}"
            camera = SIMULATORS[dialect](replace(options, mac=mac))
            running.append(await start_simulator(camera, host, port, announce_it=True))
    except BaseException:
        for sim in running:
            await sim.stop()
        raise
    return running


async def simulate(dialect: Dialect, host: str, port: int, options: SimOptions) -> int:
    (sim,) = await _start_simulators([dialect], host, port, options)
    print(f"emulated {dialect} camera at {sim.url}/ (user {options.username}); Ctrl-C stops it")
    sys.stdout.flush()
    try:
        await wait_for_stop_signal()
    finally:
        await sim.stop()
    return 0


def demo_config(
    sims: Sequence[RunningSimulator], host: str, rtsp_port: int, web_port: int, onvif_base_port: int
) -> Config:
    """The gateway in front of the emulators, each camera named after its dialect."""
    credentials = {"username": DEMO_USERNAME, "password": DEMO_PASSWORD}
    return Config.model_validate(
        {
            "gateway": {
                "advertise_host": host,
                "listen_host": host,
                "rtsp_port": rtsp_port,
                "web_port": web_port,
                "onvif_base_port": onvif_base_port,
                **credentials,
            },
            "cameras": [
                {"name": sim.camera.dialect, "url": sim.url, "dialect": sim.camera.dialect}
                | credentials
                for sim in sims
            ],
        }
    )


async def demo(
    host: str, base_port: int, rtsp_port: int, web_port: int, onvif_base_port: int
) -> int:
    options = SimOptions(username=DEMO_USERNAME, password=DEMO_PASSWORD)
    sims = await _start_simulators(list(Dialect), host, base_port, options)
    gateway: Gateway | None = None
    try:
        gateway = Gateway(demo_config(sims, host, rtsp_port, web_port, onvif_base_port))
        await gateway.start()
        # Local emulators answer at once; the URLs are printed once they play.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DEMO_CONNECT_TIMEOUT):
                for camera in gateway.cameras.values():
                    await camera.ready.wait()
        authority = f"{DEMO_USERNAME}:{DEMO_PASSWORD}@{host}"
        print(f"gateway user {DEMO_USERNAME}, password {DEMO_PASSWORD}; Ctrl-C stops everything")
        print(f"status page  http://{authority}:{gateway.web_port}/")
        for sim in sims:
            name = sim.camera.dialect
            print(f"{name}:")
            print(f"  camera    {sim.url}/")
            for profile in Profile:
                print(f"  {profile:<9} rtsp://{authority}:{gateway.rtsp.port}/{name}/{profile}")
            print(f"  snapshot  http://{authority}:{gateway.web_port}/snapshot/{name}.jpg")
            device = gateway.cameras[name].onvif
            if device is not None:
                print(f"  onvif     http://{host}:{device.ports.onvif}{Service.DEVICE.path}")
        sys.stdout.flush()
        await wait_for_stop_signal()
    finally:
        if gateway is not None:
            await gateway.stop()
        for sim in sims:
            await sim.stop()
    return 0


async def run(config_path: Path) -> int:
    config = load_config(config_path)
    gateway = Gateway(
        config,
        users_file=users_file_for(config_path),
        state_file=state_file_for(config_path),
    )
    await gateway.start()
    reloads = asyncio.create_task(Reloader(config_path, gateway).run(), name="config reloads")
    try:
        await wait_for_stop_signal()
    finally:
        reloads.cancel()
        await asyncio.gather(reloads, return_exceptions=True)
        await gateway.stop()
    return 0
