"""A small LAN inside this machine, for the tests of what crosses a network (discovery).

Four network namespaces made for one test, joined by a Linux bridge: ``gw`` (the gateway's
host: 198.51.100.1, plus macvlan interfaces with MACs of their own for camera devices on
their own addresses), ``cams`` (legacy cameras: 198.51.100.11 and up), ``vms`` (the clients:
198.51.100.100) and ``sw`` (the switch). No namespace has a route off this LAN, so no packet
of a test can leave the machine. The test body runs inside ``vms``: its sockets, the threads
it starts and the processes it spawns live there, as on a VMS's host; ``spawn(NS, ...)``
starts a program in another namespace. Needs root (CI is root).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "198.51.100"
PREFIX = 24
GATEWAY_ADDRESS = f"{SUBNET}.1"
VMS_ADDRESS = f"{SUBNET}.100"
CLONE_NEWNET = 0x40000000
NAMESPACES = ("sw", "gw", "cams", "vms")
STOP_TIMEOUT = 10.0

_libc = ctypes.CDLL(None, use_errno=True)


def camera_mac(index: int) -> str:
    """The MAC of the index-th legacy camera of the LAN (its interface's, and the one its
    emulator reports)."""
    return f"00:40:8c:00:00:{index + 1:02x}"


def available() -> str | None:
    """Why the lab cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not Path("/usr/sbin/ip").exists() and not Path("/sbin/ip").exists():
        return "iproute2 is not installed"
    return None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Lan:
    """One test's LAN; ``name(role)`` is a namespace's name (for ``ip netns exec``)."""

    tag: str = field(default_factory=lambda: f"bt{os.getpid() % 100000}")
    programs: list[Program] = field(default_factory=list)
    camera_addresses: list[str] = field(default_factory=list)
    device_addresses: list[str] = field(default_factory=list)

    def name(self, role: str) -> str:
        return f"{self.tag}-{role}"

    def build(self, cameras: int = 5, devices: Sequence[str] = ()) -> None:
        """The LAN, with ``cameras`` addresses in ``cams`` and one macvlan per address in
        ``devices`` (camera devices on their own addresses) in ``gw``."""
        self.destroy()  # what a killed earlier run may have left
        for role in NAMESPACES:
            _ip("netns", "add", self.name(role))
            _ip("-n", self.name(role), "link", "set", "lo", "up")
        sw = self.name("sw")
        _ip("-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        _ip("-n", sw, "link", "set", "br0", "up")
        for role, address in (("gw", GATEWAY_ADDRESS), ("vms", VMS_ADDRESS), ("cams", None)):
            ns = self.name(role)
            _ip("-n", sw, "link", "add", f"p-{role}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)  # fmt: skip
            _ip("-n", sw, "link", "set", f"p-{role}", "master", "br0", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
            if address is not None:
                _ip("-n", ns, "addr", "add", f"{address}/{PREFIX}", "dev", "eth0")
            # ONVIF Core: an explicit route for multicast (there is no default route here).
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        # Each legacy camera is a host of its own: a macvlan with the camera's MAC.
        self.camera_addresses = [f"{SUBNET}.{11 + i}" for i in range(cameras)]
        for index, address in enumerate(self.camera_addresses):
            self._macvlan("cams", f"cam{index}", address, camera_mac(index))
        # Camera devices of the gateway on addresses of their own, as the README sets them up.
        self.device_addresses = list(devices)
        for index, address in enumerate(devices):
            self._macvlan("gw", f"cam{index}", address)

    def _macvlan(self, role: str, link: str, address: str, mac: str | None = None) -> None:
        ns = self.name(role)
        # What the README asks of such a host: each address is answered (ARP) only by its
        # own interface, with its own MAC.
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
             "net.ipv4.conf.all.arp_announce=2"],
            check=True, capture_output=True, timeout=10,
        )  # fmt: skip
        _ip("-n", ns, "link", "add", link, "link", "eth0", "type", "macvlan", "mode", "bridge")
        if mac is not None:
            _ip("-n", ns, "link", "set", link, "address", mac)
        _ip("-n", ns, "addr", "add", f"{address}/{PREFIX}", "dev", link)
        _ip("-n", ns, "link", "set", link, "up")

    def destroy(self) -> None:
        for role in NAMESPACES:
            subprocess.run(
                ["ip", "netns", "del", self.name(role)], capture_output=True, check=False
            )

    def neighbours(self, role: str) -> dict[str, str]:
        """The MAC a namespace learned for each address it talked to (its ARP table)."""
        out = subprocess.run(
            ["ip", "-n", self.name(role), "neigh", "show"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {
            fields[0]: fields[fields.index("lladdr") + 1]
            for fields in (line.split() for line in out.splitlines())
            if "lladdr" in fields
        }

    def mac_of(self, role: str, link: str) -> str:
        out = subprocess.run(
            ["ip", "-n", self.name(role), "-br", "link", "show", link],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return out[2]

    @contextlib.contextmanager
    def inside(self, role: str) -> Iterator[None]:
        """Run this thread (and what it starts) in a namespace of the LAN."""
        with (
            open("/proc/thread-self/ns/net", "rb") as home,
            open(f"/run/netns/{self.name(role)}", "rb") as target,
        ):
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())

    async def spawn(self, role: str, *argv: str) -> Program:
        """A program in a namespace of the LAN (stopped by :meth:`stop_all`)."""
        process = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            self.name(role),
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        program = Program(process)
        self.programs.append(program)
        return program

    async def spawn_python(self, role: str, *argv: str) -> Program:
        return await self.spawn(role, sys.executable, *argv)

    def popen_python(self, role: str, *argv: str) -> subprocess.Popen[str]:
        """A Python program in a namespace, for fixtures outside an event loop; stopped by
        the caller."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name(role), sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def stop_all(self) -> None:
        for program in self.programs:
            await program.stop()
        self.programs.clear()


class Program:
    """A running program whose output is read as it comes (a full pipe would stall it)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = asyncio.Condition()
        assert process.stdout is not None
        assert process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(process.stdout, self.out)),
            asyncio.create_task(self._read(process.stderr, self.err)),
        ]

    async def _read(self, stream: asyncio.StreamReader, lines: list[str]) -> None:
        while line := await stream.readline():
            async with self._changed:
                lines.append(line.decode(errors="replace"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(
        self, pattern: str, count: int = 1, *, stream: str = "err", within: float = 30.0
    ) -> list[re.Match[str]]:
        """Wait (at most ``within`` s) until ``count`` lines of stderr (or "out") match."""
        lines = self.err if stream == "err" else self.out

        def matches() -> list[re.Match[str]]:
            return [m for line in lines if (m := re.search(pattern, line))]

        async with asyncio.timeout(within), self._changed:
            while len(matches()) < count:
                if all(reader.done() for reader in self._readers):
                    raise AssertionError(
                        f"exited before {count} lines like {pattern!r}:\n{''.join(self.err[-40:])}"
                    )
                await self._changed.wait()
        return matches()

    async def stop(self) -> int:
        """SIGTERM (a clean stop: Bye, byebye ...); killed if it lingers. Its exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        await asyncio.gather(*self._readers)
        return self.process.returncode or 0
