"""Continuous moves on heads that only take single steps (``hama``, ``ipcamcgi``).

The camera has no "move until stopped" command, so the driver repeats a step in the
background until ``stop``. The step count is bounded by the head's travel (after that many
steps it stands at its end stop whatever the start); how long the move may last is not the
driver's business: the gateway's PTZ owner (:mod:`bridge.ptz`) times every move and stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from bridge.errors import CameraError

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[None]]


class SteppedMove:
    """The one repeated-step move of a driver; a new one replaces the one running."""

    def __init__(self, camera: str) -> None:
        self._camera = camera
        self._task: asyncio.Task[None] | None = None

    async def start(self, step: Step, interval: float, steps: int) -> None:
        """Step now (a refused step fails the caller), then every ``interval`` s until
        stopped or ``steps`` steps in all were made."""
        await self.stop()
        await step()
        self._task = asyncio.create_task(self._repeat(step, interval, steps - 1), name="ptz-steps")

    async def _repeat(self, step: Step, interval: float, steps: int) -> None:
        try:
            for _ in range(steps):
                await asyncio.sleep(interval)
                await step()
        except CameraError as exc:
            log.warning("%s: continuous move ended early: %s", self._camera, exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
