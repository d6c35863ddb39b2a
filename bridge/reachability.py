"""Whether a camera nobody watches is still there.

A camera is pulled only while someone watches it, so the failing stream that turns a watched
camera offline says nothing about an unwatched one. While someone looks at the status page
(its script asks for the cameras' states every second), :class:`ReachabilityProbe` opens a TCP
connection to each unwatched camera's HTTP port and closes it again: no request, no
credentials, at most once every :data:`INTERVAL` per camera, one attempt at a time. Nobody
looking, no probes: a legacy camera left alone for years sees no traffic from the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from yarl import URL

INTERVAL = 2.0
TIMEOUT = 2.0  # a LAN camera answers a SYN in milliseconds; this is a camera gone


async def connect_error(host: str, port: int, within: float = TIMEOUT) -> str:
    """Why a TCP connection to host:port cannot be opened within ``within`` seconds, or ""
    when it can (it is closed at once)."""
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no answer within {within:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(within):
            await writer.wait_closed()
    return ""


class ReachabilityProbe:
    """Probes one camera's HTTP port when asked, at most every ``interval`` seconds; each
    result goes to ``on_result`` ("" reachable, else why not)."""

    def __init__(
        self,
        url: str,
        on_result: Callable[[str], None],
        *,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        camera = URL(url)
        self._host = camera.host or ""
        self._port = camera.port or 80
        self._on_result = on_result
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._last = -interval
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Probe now unless a probe runs or the last one began less than ``interval`` ago."""
        now = self._clock()
        if (self._task is not None and not self._task.done()) or now - self._last < self._interval:
            return
        self._last = now
        self._task = asyncio.create_task(self._probe(), name=f"probe {self._host}:{self._port}")

    async def _probe(self) -> None:
        self._on_result(await connect_error(self._host, self._port, self._timeout))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
