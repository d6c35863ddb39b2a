"""The fan-out: one upstream per camera, bounded per-viewer queues, reconnect, idle release."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from conftest import OpenHttp, StartSim

from bridge.cameras.base import JpegFrame
from bridge.cameras.hama import HamaDriver
from bridge.errors import CameraUnreachable
from bridge.fanout import Backoff, Fanout
from bridge.simulator.core import SimOptions
from bridge.simulator.hama import HamaSimulator

FAST_RETRY = Backoff(initial=0.05, maximum=0.2)


class Counter:
    """An upstream that counts how often it was opened and yields numbers at a steady rate."""

    def __init__(self, interval: float = 0.01, fail_after: int | None = None) -> None:
        self.opened = 0
        self.interval = interval
        self.fail_after = fail_after
        self.numbers = itertools.count()
        self.reopened = asyncio.Event()

    async def stream(self) -> AsyncIterator[int]:
        self.opened += 1
        if self.opened > 1:
            self.reopened.set()
        for sent in itertools.count():
            if self.fail_after is not None and sent == self.fail_after:
                raise CameraUnreachable("camera went away")
            await asyncio.sleep(self.interval)
            yield next(self.numbers)


async def test_many_subscribers_share_one_upstream() -> None:
    source = Counter()
    fanout = Fanout(source.stream, name="t", idle_grace=0.1)
    subs = [fanout.subscribe() for _ in range(4)]
    firsts = await asyncio.gather(*(sub.get() for sub in subs))
    assert source.opened == 1
    assert len(set(firsts)) <= 2  # everyone sees the same items, at most one apart
    for sub in subs:
        sub.close()
    await fanout.close()


async def test_slow_subscriber_drops_old_items_without_delaying_others() -> None:
    fanout = Fanout(Counter(interval=0.005).stream, name="t")
    slow = fanout.subscribe(depth=2)
    fast = fanout.subscribe(depth=2)
    received = [await fast.get() for _ in range(40)]
    assert received == list(range(received[0], received[0] + 40))  # no gap for the fast one
    assert slow.dropped >= 30  # the one that never read lost items, holding at most 2
    assert slow._queue.qsize() <= 2
    assert fanout.dropped == slow.dropped + fast.dropped  # what /metrics reads
    assert fanout.items >= 40
    slow.close()
    fast.close()
    await fanout.close()


async def test_upstream_failure_reconnects_and_subscribers_keep_receiving() -> None:
    source = Counter(fail_after=5)
    fanout = Fanout(source.stream, name="t", backoff=FAST_RETRY)
    changes: list[bool] = []
    fanout.on_failing = changes.append
    async with fanout.subscribe() as sub:
        items = [await asyncio.wait_for(sub.get(), 2) for _ in range(12)]
    assert source.opened >= 3
    assert items == sorted(items)
    assert fanout.last_error.endswith("camera went away")
    # each failure is told, and so is each first item after one (a camera offline, online)
    assert changes[:4] == [True, False, True, False]
    assert fanout.reconnects == source.opened - 1
    await fanout.close()


async def test_stalled_upstream_is_reopened() -> None:
    source = Counter(interval=0.5)
    fanout = Fanout(source.stream, name="t", stall_timeout=0.1, backoff=FAST_RETRY)
    sub = fanout.subscribe()
    await asyncio.wait_for(source.reopened.wait(), 3)
    assert "no data" in fanout.last_error
    sub.close()
    await fanout.close()


async def test_upstream_released_after_idle_grace_and_reopened_on_demand() -> None:
    source = Counter()
    fanout = Fanout(source.stream, name="t", idle_grace=0.1)
    sub = fanout.subscribe()
    await sub.get()
    sub.close()
    assert fanout.running  # still within the grace period
    await asyncio.sleep(0.3)
    assert not fanout.running
    again = fanout.subscribe()
    await again.get()
    assert source.opened == 2
    again.close()
    await fanout.close()


async def test_four_viewers_of_an_emulated_camera_make_one_request(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(HamaSimulator(SimOptions(fps=10)))
    driver = HamaDriver(open_http(sim.url, "admin", "admin"))
    await driver.connect()  # as the gateway does first; it also settles the auth scheme
    sim.camera.requests.clear()
    fanout: Fanout[JpegFrame] = Fanout(driver.video_frames, name="hama", idle_grace=0.1)
    subs = [fanout.subscribe() for _ in range(4)]
    frames = await asyncio.gather(*(asyncio.wait_for(s.get(), 5) for s in subs))
    assert all(f.data.startswith(b"\xff\xd8") for f in frames)
    assert [r.path for r in sim.camera.requests] == ["/mjpg/video.mjpg"]
    for sub in subs:
        sub.close()
    await fanout.close()


@pytest.mark.parametrize("depth", [1, 3])
async def test_subscription_depth_bounds_memory(depth: int) -> None:
    fanout = Fanout(Counter(interval=0.001).stream, name="t")
    sub = fanout.subscribe(depth=depth)
    await asyncio.sleep(0.1)
    assert sub._queue.qsize() <= depth
    sub.close()
    await fanout.close()
