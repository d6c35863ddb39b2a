"""The gateway under test: its own process (``python -m bridge run``), its config and users, its
log, and what /proc says about it (RSS, open fds, threads, CPU), so what is measured is the
gateway alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).absolute().parents[2]
TESTS = REPO / "tests"
START_TIMEOUT = 60.0  # from spawning the gateway to every camera's ONVIF device serving
STOP_TIMEOUT = 15.0  # SIGTERM to exit; longer is a hang worth failing the run for
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_STARTED = re.compile(r"RTSP on port (\d+), web on port (\d+)")
_DEVICE = re.compile(r"camera (\S+): ONVIF device on port (\d+)")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str
    level: str  # Administrator, Operator or User


# Each client role has its own account, so the per-user limits of one never starve another;
# every password is a secret the log must never show.
ADMIN = User("admin", "soak-Gw-pass-7f3a", "Administrator")
VIEWER = User("soak-viewer", "soak-View-pass-19c2", "User")
ONVIF_CLIENT = User("soak-onvif", "soak-Onvif-pass-5be0", "Operator")
FUZZER = User("soak-fuzzer", "soak-Fuzz-pass-e41d", "Operator")
USERS = (VIEWER, ONVIF_CLIENT, FUZZER)


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """One emulated camera as the cameras process reports it."""

    name: str
    dialect: str
    url: str
    username: str
    password: str
    well_behaved: bool


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic()
    rss_mb: float
    fds: int
    threads: int
    cpu_s: float  # user + system, since the process started


def sample(pid: int) -> Sample | None:
    """The process's numbers now; None once it is gone."""
    proc = Path(f"/proc/{pid}")
    try:
        status = (proc / "status").read_text()
        stat = (proc / "stat").read_text()
        fds = len(os.listdir(proc / "fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    # Fields after the command name, which may itself hold spaces and parentheses.
    after_name = stat.rsplit(")", 1)[1].split()
    utime, stime = int(after_name[11]), int(after_name[12])
    return Sample(
        at=time.monotonic(),
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
        fds=fds,
        threads=int(fields["Threads"]),
        cpu_s=(utime + stime) / _CLOCK_TICKS,
    )


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout's package and the tests' modules first, whatever is installed."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(TESTS), env.get("PYTHONPATH", "")) if p
    )
    return env


class GatewayProcess:
    """Writes the config (and the users file) into ``workdir``, runs the gateway on loopback
    with free ports, learns the ports from its log, and stops it with SIGTERM."""

    def __init__(
        self,
        workdir: Path,
        cameras: list[CameraSpec],
        *,
        stream_idle_seconds: float = 2.0,
        diagnose_every: float = 0.0,
        diagnose_options: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.cameras = cameras
        self.config_path = workdir / "bridge.yaml"
        self.log_path = workdir / "gateway.log"
        self.diagnosis_path = workdir / "diagnosis.txt"
        self._stream_idle_seconds = stream_idle_seconds
        self._diagnose_every = diagnose_every
        self._diagnose_options = diagnose_options
        self._env = env or {}
        self._process: asyncio.subprocess.Process | None = None
        self.rtsp_port = 0
        self.web_port = 0
        self.onvif_ports: dict[str, int] = {}
        self.exit_code: int | None = None
        self.stopped_by_us = False

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def write_config(self) -> None:
        config = {
            "gateway": {
                "advertise_host": "127.0.0.1",
                "listen_host": "127.0.0.1",
                "rtsp_port": 0,
                "web_port": 0,
                "onvif_base_port": 0,
                "username": ADMIN.name,
                "password": ADMIN.password,
                "stream_idle_seconds": self._stream_idle_seconds,
                "announce": False,
                "discovery": False,
            },
            "cameras": [
                {
                    "name": camera.name,
                    "url": camera.url,
                    "dialect": camera.dialect,
                    "username": camera.username,
                    "password": camera.password,
                }
                for camera in self.cameras
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config))
        users = {
            "users": [{"username": u.name, "password": u.password, "level": u.level} for u in USERS]
        }
        users_path = self.config_path.with_name(f"{self.config_path.stem}.users.yaml")
        users_path.write_text(yaml.safe_dump(users))
        users_path.chmod(0o600)

    def command(self) -> list[str]:
        if self._diagnose_every:
            return [
                sys.executable,
                "-m",
                "soak.diagnose",
                "--config",
                str(self.config_path),
                "--every",
                str(self._diagnose_every),
                "--report",
                str(self.diagnosis_path),
                *self._diagnose_options,
            ]
        return [sys.executable, "-m", "bridge", "run", "--config", str(self.config_path)]

    async def start(self) -> None:
        self.write_config()
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=REPO,
                env=child_environment(self._env),
            )
        async with asyncio.timeout(START_TIMEOUT):
            await self._learn_ports()

    async def _learn_ports(self) -> None:
        """Read the log until the servers and every camera's ONVIF device are up. The log is a
        file the gateway writes without waiting for anyone, so it is polled here, at start."""
        names = {camera.name for camera in self.cameras}
        while True:
            text = self.log_text()
            if match := _STARTED.search(text):
                self.rtsp_port, self.web_port = int(match[1]), int(match[2])
            self.onvif_ports = {m[1]: int(m[2]) for m in _DEVICE.finditer(text) if m[1] in names}
            if self.rtsp_port and set(self.onvif_ports) == names:
                return
            if not self.running:
                raise RuntimeError(f"the gateway exited at start:\n{text[-3000:]}")
            await asyncio.sleep(0.1)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        """SIGTERM, then wait; a gateway that does not stop in time is killed (and the exit
        code says so)."""
        process = self._process
        if process is None or process.returncode is not None:
            self.exit_code = process.returncode if process is not None else None
            return
        self.stopped_by_us = True
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                self.exit_code = await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            self.exit_code = None  # "did not stop"


class Sampler:
    """Samples the gateway about every ``interval`` seconds while it runs."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self._pid = pid
        self._interval = interval
        self.samples: list[Sample] = []
        self.gone = asyncio.Event()

    def take(self) -> Sample | None:
        taken = sample(self._pid)
        if taken is None:
            self.gone.set()
        else:
            self.samples.append(taken)
        return taken

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set or the process is gone."""
        while not stop.is_set() and self.take() is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]
