"""Rate limits for what peers can make the gateway do: answer them, or log about them.

Sans-I/O and clock-injected (``now`` is a ``time.monotonic()`` reading), so the rules are
tested without waiting. Every table is bounded: a flood of spoofed sources evicts the oldest
entries instead of growing memory.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_Key = TypeVar("_Key", bound=Hashable)


@dataclass
class TokenBucket:
    """``rate`` actions per second on average, ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def allow(self, now: float) -> bool:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class KeyedLimiter(Generic[_Key]):
    """One :class:`TokenBucket` per key (a source address ...), at most ``max_keys`` kept:
    the least recently seen key is forgotten first (it starts again with a full bucket)."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 1024) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[_Key, TokenBucket] = OrderedDict()

    def allow(self, key: _Key, now: float) -> bool:
        bucket = self._buckets.pop(key, None) or TokenBucket(self._rate, self._burst)
        self._buckets[key] = bucket
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return bucket.allow(now)

    def __len__(self) -> int:
        return len(self._buckets)


class RecentSet(Generic[_Key]):
    """The last ``size`` keys seen, for dropping repeats (message ids ...)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[_Key, None] = OrderedDict()

    def add(self, key: _Key) -> bool:
        """Remember ``key``; False when it was already among the recent ones."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class ThrottledLog:
    """A log line per kind of trouble at most every ``interval`` seconds, saying how many
    were suppressed since, so a flood of bad input cannot flood the log."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log unless ``kind`` was logged within the interval; True when it was logged."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (%d more like it suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args)
        return True
