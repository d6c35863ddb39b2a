"""One upstream, many consumers: the camera is pulled once however many viewers there are.

:class:`Fanout` opens its upstream (an async iterator factory, e.g. a driver's
``video_frames``) when the first subscriber arrives and closes it ``idle_grace`` seconds after
the last one leaves. Each subscriber has a small bounded queue; when it falls behind, its oldest
item is dropped, so a slow consumer loses items but never grows memory or delays the others.

When the upstream fails or ends, the fan-out reconnects with jittered exponential backoff while
subscribers stay subscribed: they just see a gap, then items resume. A stall (no item within
``stall_timeout``) counts as a failure.

Every layer fans out (``media/`` the camera's pictures and sound, ``rtsp/`` each profile's
packetized units, ``onvif/`` the camera's events), and none of them may import another's
modules for it, so the fan-out lives here, beside them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from bridge.errors import BridgeError
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2  # +-20 %, so cameras that dropped together do not retry together

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay * random.uniform(1 - self.jitter, 1 + self.jitter)
            delay = min(self.maximum, delay * self.factor)


class Subscription(Generic[T]):
    """A consumer's view of a fan-out; iterate it, and close it (or use ``async with``)."""

    def __init__(self, fanout: Fanout[T], depth: int) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=depth)
        self.dropped = 0

    def offer(self, item: T) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            self._fanout.dropped += 1
        self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            yield await self._queue.get()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._fanout.unsubscribe(self)


class Fanout(Generic[T]):
    def __init__(
        self,
        open_upstream: Callable[[], AsyncIterator[T]],
        *,
        name: str,
        idle_grace: float = 10.0,
        stall_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._open_upstream = open_upstream
        self.name = name
        self.idle_grace = idle_grace
        self.stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._subscribers: set[Subscription[T]] = set()
        self._task: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.connects = 0  # how many times the upstream was opened
        self.reconnects = 0  # ... of them after it failed (not after an idle release)
        self.items = 0  # items the upstream delivered (metrics)
        self.dropped = 0  # items a lagging subscriber lost (metrics)
        self.last_error = ""
        self.failing = False  # the upstream failed and no item came since
        # The last failure's type, when a BridgeError (not the exception: its traceback would
        # keep the failed upstream's frames alive).
        self.failure: type[BridgeError] | None = None
        # Called with True on every failure and with False on the first item after one (a
        # camera's offline/online).
        self.on_failing: Callable[[bool], None] | None = None
        self._failures = ThrottledLog(log)
        self.latest: T | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, depth: int = 2) -> Subscription[T]:
        subscription = Subscription(self, depth)
        self._subscribers.add(subscription)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if not self.running:
            self._task = asyncio.create_task(self._pump(), name=f"fanout {self.name}")
        return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        self._subscribers.discard(subscription)
        if not self._subscribers and self.running and self._idle_timer is None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self.idle_grace, self._release)

    def _release(self) -> None:
        self._idle_timer = None
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _pump(self) -> None:
        delays = self._backoff.delays()
        loop = asyncio.get_running_loop()
        opened = self.connects
        while True:
            upstream = self._open_upstream()
            self.reconnects += self.connects > opened
            self.connects += 1
            self.failure = None
            try:
                # One deadline pushed forward per item: asyncio.wait_for would add a task per
                # frame and, on 3.11, can swallow a cancellation that races a completed item.
                async with asyncio.timeout(self.stall_timeout) as deadline:
                    async for item in upstream:
                        deadline.reschedule(loop.time() + self.stall_timeout)
                        self.latest = item
                        self.items += 1
                        if self.failing:
                            self._set_failing(False)
                        for subscriber in self._subscribers:
                            subscriber.offer(item)
                        delays = self._backoff.delays()  # a working stream resets the backoff
                self.last_error = "upstream ended"
            except TimeoutError:
                self.last_error = f"no data for {self.stall_timeout:g} s"
            except BridgeError as exc:
                self.last_error = str(exc)
                self.failure = type(exc)
            except Exception as exc:
                # A driver bug must not end streaming for good: log it and reconnect.
                log.exception("%s: upstream failed unexpectedly", self.name)
                self.last_error = f"internal error ({type(exc).__name__})"
            finally:
                aclose = getattr(upstream, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            delay = next(delays)
            self._set_failing(True)
            # A camera that stays away fails again every few seconds: one line per error now
            # and then, not one per retry.
            self._failures.log(
                logging.WARNING,
                "upstream",
                "%s: %s; reconnecting in %.1f s",
                self.name,
                self.last_error,
                delay,
            )
            await asyncio.sleep(delay)

    def _set_failing(self, failing: bool) -> None:
        self.failing = failing
        if self.on_failing is not None:
            self.on_failing(failing)
