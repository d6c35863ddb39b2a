"""Config reload without downtime: what changed, and when to look.

The pure part compares two configs: cameras by name (added, removed, changed: any field of
its entry differs), and the gateway's settings split into those the running gateway can take
(its config user, LAN discovery) and those that need a restart (listening sockets, the
address and ports every device already handed out). The asyncio part watches the file (its
``stat`` polled every second, read once it has stayed the same for one more poll: an
editor's write-and-rename or a half-written file is never read half-way) and SIGHUP, and
runs one reload at a time: a request during a reload queues one more, however many come.

A file that does not load is refused with :func:`~bridge.config.load_config`'s message, the
one ``check-config`` prints, and the running config stays.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bridge.config import CameraConfig, Config, GatewayConfig, load_config
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
# Gateway settings a reload applies; every other one is kept until a restart.
LIVE_GATEWAY_FIELDS = frozenset({"username", "password", "discovery", "discovery_networks"})


@dataclass(frozen=True, slots=True)
class CameraChanges:
    """Camera names, each list in the new config's order (removed ones in the old's)."""

    added: Sequence[str] = ()
    removed: Sequence[str] = ()
    changed: Sequence[str] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def summary(self) -> str:
        """``+1 added (porch), -0 removed, ~2 changed (gate, yard)``."""
        parts = []
        for sign, what, names in (
            ("+", "added", self.added),
            ("-", "removed", self.removed),
            ("~", "changed", self.changed),
        ):
            listed = f" ({', '.join(names)})" if names else ""
            parts.append(f"{sign}{len(names)} {what}{listed}")
        return ", ".join(parts)


def camera_changes(old: Sequence[CameraConfig], new: Sequence[CameraConfig]) -> CameraChanges:
    before = {camera.name: camera for camera in old}
    after = {camera.name: camera for camera in new}
    return CameraChanges(
        added=[name for name in after if name not in before],
        removed=[name for name in before if name not in after],
        changed=[name for name, cam in after.items() if name in before and before[name] != cam],
    )


def gateway_changes(old: GatewayConfig, new: GatewayConfig) -> tuple[list[str], list[str]]:
    """(fields a reload applies, fields that wait for a restart) among those that differ."""
    differ = [
        name for name in GatewayConfig.model_fields if getattr(old, name) != getattr(new, name)
    ]
    return (
        [name for name in differ if name in LIVE_GATEWAY_FIELDS],
        [name for name in differ if name not in LIVE_GATEWAY_FIELDS],
    )


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:  # between an editor's unlink and rename, say
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev


async def file_changes(path: Path, interval: float = POLL_INTERVAL) -> AsyncIterator[None]:
    """Yield each time the file changed and then stayed the same for ``interval``."""
    seen = _signature(path)
    while True:
        await asyncio.sleep(interval)
        current = _signature(path)
        if current is None or current == seen:
            continue
        settled = None
        while settled != current:  # still being written: wait until it holds still
            settled = current
            await asyncio.sleep(interval)
            current = _signature(path)
        if current is not None:
            seen = current
            yield


class Reloadable(Protocol):
    """What :class:`Reloader` drives: the running gateway."""

    async def reload(self, config: Config) -> None: ...

    def refused(self, error: ConfigError) -> None: ...


class Reloader:
    """Reloads ``path`` into ``target`` on :meth:`request`, one reload at a time."""

    def __init__(self, path: Path, target: Reloadable) -> None:
        self.path = path
        self._target = target
        self._wanted = asyncio.Event()

    def request(self) -> None:
        """Reload soon; during a reload, once more after it (requests do not pile up)."""
        self._wanted.set()

    async def run(self, *, poll_interval: float = POLL_INTERVAL) -> None:
        """Serve reload requests, SIGHUP and file changes until cancelled."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.request)
        watcher = asyncio.create_task(self._watch(poll_interval), name="config file watcher")
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()
                await self._reload_once()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, interval: float) -> None:
        async for _ in file_changes(self.path, interval):
            log.info("config file %s changed", self.path)
            self.request()

    async def _reload_once(self) -> None:
        try:
            config = await asyncio.to_thread(load_config, self.path)
        except ConfigError as exc:
            log.error("config not reloaded, the running one stays: %s", exc)
            self._target.refused(exc)
            return
        await self._target.reload(config)
