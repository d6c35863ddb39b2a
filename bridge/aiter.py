"""Async iterator plumbing shared by the layers (cameras' event streams, media's tracks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import NamedTuple, TypeVar

T = TypeVar("T")


class _Failure(NamedTuple):
    error: Exception


class _Ended(NamedTuple):
    pass


_ENDED = _Ended()


async def merge(*sources: AsyncIterator[T], depth: int = 16) -> AsyncGenerator[T, None]:
    """Items of several iterators as they come, until every one has ended; a failure of any
    ends the merge with that failure. Each source is closed when its pump stops, however the
    merge ends (``depth`` items wait at most: a slow consumer holds the sources back)."""
    queue: asyncio.Queue[T | _Failure | _Ended] = asyncio.Queue(depth)

    async def pump(source: AsyncIterator[T]) -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put(_Failure(exc))
            return
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await queue.put(_ENDED)

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if isinstance(item, _Failure):
                raise item.error
            if isinstance(item, _Ended):
                running -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
