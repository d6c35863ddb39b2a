"""The container image as a user runs it: its own entrypoint, user, environment, config volume
and health check, serving a camera's stream to ffprobe.

``.ci/build-image`` builds the image and ``.ci/run`` names it in ``BRIDGE_IMAGE``; without that
variable these tests skip, with it a missing image fails them. No container runtime works on
the CI machines (``podman run`` cannot create cgroups there), so the image is mounted and what
it holds runs in a chroot of it as a runtime would start it: as the image's user, with only its
environment, in its working directory, with a directory bound at ``/config``; on the host's
network, so the emulated camera and ffprobe outside reach it on loopback. Each run lives in a
mount namespace of its own, so its bind mounts vanish with it however the test ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import StartSim
from helpers import TOOL_TIMEOUT, ffprobe, run_command

from bridge.simulator.core import SimOptions
from bridge.simulator.vapix2 import Vapix2Simulator

IMAGE = os.environ.get("BRIDGE_IMAGE", "")
EXAMPLE = Path(__file__).parents[2] / "config" / "bridge.example.yaml"
START_TIMEOUT = 60.0  # seconds for the gateway in the image to import, start and log so
STOP_TIMEOUT = 15.0  # what `docker stop` allows before it kills (10 s) and some slack
PASSWORD = "image-test-secret"

pytestmark = pytest.mark.skipif(
    not IMAGE, reason="BRIDGE_IMAGE is not set (.ci/run builds the image and sets it)"
)


@dataclass(frozen=True)
class Image:
    """What a container runtime takes from the image to start it, and where it is mounted."""

    root: Path
    config: dict[str, Any]  # `podman image inspect`'s .Config: User, Env, Entrypoint ...
    uid: int
    gid: int

    @property
    def default_command(self) -> list[str]:
        return [*self.config["Entrypoint"], *self.config["Cmd"]]

    @property
    def health_command(self) -> list[str]:
        kind, *command = self.config["Healthcheck"]["Test"]
        assert kind == "CMD", self.config["Healthcheck"]  # exec form: no shell needed
        return command

    def command(self, argv: Sequence[str], config_dir: Path, scratch: Path) -> list[str]:
        """``argv`` run in the image as its runtime would, with ``config_dir`` at /config:
        the returned command execs into it, so its pid is the program's (signals reach it)."""
        root = shlex.quote(str(self.root))
        env = [f"HOME={self.config['WorkingDir']}", *self.config["Env"]]
        script = "\n".join(
            [
                f"mount --bind /proc {root}/proc",
                f"mount --rbind /dev {root}/dev",
                f"mount --bind {shlex.quote(str(config_dir))} {root}/config",
                f"mount --bind {shlex.quote(str(scratch))} {root}/tmp",
                shlex.join(
                    [
                        "exec",
                        "chroot",
                        f"--userspec={self.uid}:{self.gid}",
                        str(self.root),
                        "/usr/bin/env",
                        "-i",
                        f"--chdir={self.config['WorkingDir']}",
                        *env,
                        *argv,
                    ]
                ),
            ]
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-euc", script]


def _podman(*args: str) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def _user_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        name, _, uid, gid, *_ = line.split(":")
        if user in (name, uid):
            return int(uid), int(gid)
    pytest.fail(f"the image's USER {user!r} is not in its /etc/passwd")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    if shutil.which("podman") is None or os.geteuid() != 0:
        pytest.fail("BRIDGE_IMAGE is set, but running it needs podman and root (.ci/run)")
    (inspected,) = json.loads(_podman("image", "inspect", IMAGE))
    root = Path(_podman("image", "mount", IMAGE))
    try:
        config = inspected["Config"] | {"Healthcheck": inspected.get("Healthcheck")}
        uid, gid = _user_ids(root, config.get("User") or "root")
        yield Image(root, config, uid, gid)
    finally:
        _podman("image", "unmount", IMAGE)


@pytest.fixture
def volume(tmp_path: Path, image: Image) -> tuple[Path, Path]:
    """A config directory owned by the image's user (as README has users make ./config), and
    a scratch /tmp."""
    config_dir, scratch = tmp_path / "config", tmp_path / "tmp"
    config_dir.mkdir()
    scratch.mkdir(mode=0o1777)
    scratch.chmod(0o1777)
    os.chown(config_dir, image.uid, image.gid)
    return config_dir, scratch


async def _run_to_end(command: list[str]) -> tuple[int, str]:
    async with asyncio.timeout(START_TIMEOUT):
        code, _, err = await run_command(*command)
    return code, err.decode(errors="replace")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_the_image_runs_as_a_user_with_its_config_volume_ports_and_health_check(
    image: Image,
) -> None:
    assert image.uid != 0, f"USER {image.config.get('User')!r} is root"
    assert "/config" in image.config["Volumes"]
    assert image.default_command[:2] == ["bridge", "run"]
    assert "/config/bridge.yaml" in image.default_command
    assert image.health_command[:2] == ["bridge", "healthcheck"]
    # The ports the documented example config uses are the ones the image declares.
    gateway = yaml.safe_load(EXAMPLE.read_text())["gateway"]
    exposed = set(image.config["ExposedPorts"])
    for port in (gateway["rtsp_port"], gateway["web_port"]):
        assert f"{port}/tcp" in exposed
    base = gateway["onvif_base_port"]  # podman keeps a range as one key, docker lists each
    assert f"{base}/tcp" in exposed or any(p.startswith(f"{base}-") for p in exposed), exposed
    assert {"3702/udp", "1900/udp", "5353/udp"} <= exposed  # WS-Discovery, SSDP, mDNS


async def test_a_first_start_with_an_empty_volume_writes_the_example_and_stops(
    image: Image, volume: tuple[Path, Path]
) -> None:
    config_dir, scratch = volume
    code, err = await _run_to_end(image.command(image.default_command, config_dir, scratch))
    assert code == 2, err
    assert "/config/bridge.yaml: there was no config, so a commented example is there now" in err
    written = config_dir / "bridge.yaml"
    assert written.read_bytes() == EXAMPLE.read_bytes()
    assert (written.stat().st_uid, written.stat().st_mode & 0o777) == (image.uid, 0o600)
    check = ["bridge", "check-config", "/config/bridge.yaml"]
    code, err = await _run_to_end(image.command(check, config_dir, scratch))
    assert code == 0, err


async def test_the_gateway_in_the_image_serves_a_camera_to_ffprobe(
    image: Image, volume: tuple[Path, Path], start_sim: StartSim
) -> None:
    config_dir, scratch = volume
    sim = await start_sim(Vapix2Simulator(SimOptions(width=352, height=288)))
    rtsp_port, web_port, onvif_port = _free_ports(3)
    config = {
        "gateway": {
            "listen_host": "127.0.0.1",
            "advertise_host": "127.0.0.1",
            "rtsp_port": rtsp_port,
            "web_port": web_port,
            "onvif_base_port": onvif_port,
            "password": PASSWORD,
            "announce": False,  # nothing leaves loopback
        },
        "cameras": [{"name": "porch", "url": sim.url, "username": "admin", "password": "admin"}],
    }
    (config_dir / "bridge.yaml").write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        *image.command(image.default_command, config_dir, scratch),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []
    started = asyncio.Event()

    async def read_log() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            log.append(line.decode(errors="replace"))
            if "gateway started with 1 camera(s)" in log[-1]:
                started.set()

    reader = asyncio.create_task(read_log())
    try:
        async with asyncio.timeout(START_TIMEOUT):
            await started.wait()
        assert os.stat(f"/proc/{process.pid}").st_uid == image.uid  # runs as the image's user
        code, err = await _run_to_end(image.command(image.health_command, config_dir, scratch))
        assert code == 0, err
        url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{rtsp_port}/porch/main"
        probe = await ffprobe(
            *("-select_streams", "v", "-read_intervals", "%+#5", "-count_frames"),
            *("-show_entries", "stream=codec_name,width,height,nb_read_frames", url),
        )
        (stream,) = probe["streams"]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 352, 288)
        assert int(stream["nb_read_frames"]) >= 3  # pictures decode, not just a description
        # The gateway kept the camera's device identity in the volume, as its user.
        state = config_dir / "bridge.state.yaml"
        assert state.stat().st_uid == image.uid
        # `docker stop`: SIGTERM, and the gateway stops cleanly before it would be killed.
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_TIMEOUT):
            assert await process.wait() == 0, "".join(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader
    assert PASSWORD not in "".join(log)
    code, err = await _run_to_end(image.command(image.health_command, config_dir, scratch))
    assert code == 1
    assert f"unhealthy: http://127.0.0.1:{web_port}/healthz" in err
