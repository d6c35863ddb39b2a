"""Memory freed in the middle of the C heap goes back to the system (finding 9 of issue 9)."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys

import pytest

from bridge import heap

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="other C libraries have no malloc_trim"
)

# In a fresh interpreter, as a closing encoder leaves it: 96 MB of 64 KB blocks (each below
# glibc's mmap threshold, so they live in the heap) freed, all but the last one, which pins the
# top of the heap so glibc cannot shrink it by itself. Prints RSS (MB) after the frees and after
# what argv[1] says.
PROBE = """
import ctypes, sys
from bridge import heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
blocks = [libc.malloc(64 << 10) for _ in range(1536)]
for block in blocks:
    libc.memset(block, 1, 64 << 10)
for block in blocks[:-1]:
    libc.free(block)
freed = rss()
if sys.argv[1] == "give back":
    heap.give_back()
print(freed, rss())
"""


def _rss_after(what: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, what], capture_output=True, text=True, check=True
    )
    freed, after = out.stdout.split()
    return int(freed), int(after)


@glibc_only
def test_freed_heap_memory_is_held_until_given_back() -> None:
    freed, after = _rss_after("nothing")
    assert after > freed - 10  # glibc keeps the ~96 MB
    freed, after = _rss_after("give back")
    assert after < freed - 80


@glibc_only
async def test_releases_close_together_give_back_once_a_moment_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    done = asyncio.Event()

    def counting_trim(pad: int) -> int:
        calls.append(pad)
        loop.call_soon_threadsafe(done.set)
        return 1

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(heap, "_trim", counting_trim)
    for _ in range(4):  # main, sub and jpeg of a camera, and another camera
        heap.give_back_soon(delay=0.05)
    async with asyncio.timeout(5):
        await done.wait()
    assert calls == [0]
    done.clear()
    heap.give_back_soon(delay=0.05)  # a later release gets its own
    async with asyncio.timeout(5):
        await done.wait()
    assert calls == [0, 0]


@glibc_only
async def test_a_running_gateway_gives_back_at_a_steady_pace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streams that keep running fragment the heap too, with no encoder closing."""
    calls: list[int] = []
    twice = asyncio.Event()

    def counting_trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) == 2:
            loop.call_soon_threadsafe(twice.set)
        return 1

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(heap, "_trim", counting_trim)
    task = asyncio.create_task(heap.give_back_periodically(every=0.02))
    async with asyncio.timeout(5):
        await twice.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls[:2] == [0, 0]
