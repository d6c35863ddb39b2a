"""The C heap of a gateway that runs for years: memory freed when encoders close goes back to
the system.

A closing encoder frees megabytes of codec buffers (x264's pictures and lookahead, FFmpeg's
frames). glibc keeps freed memory in its arenas (one per thread that allocated, up to eight per
core) and gives pages back only from the top of the main heap, so cameras whose viewers come and
go left RSS ratcheting up: measured with ``tests/soak/diagnose.py``, the bytes in use fell back to
~40 MB whenever the gateway idled while the arenas kept growing (137 MB, 98 MB of it free).
``malloc_trim`` hands the free pages of every arena back; it is done once, on a worker thread, a
moment after encoders close (never per picture: it walks every arena, 0.6 ms typically, up to
~150 ms on a loaded 2-core host), and every half minute besides: streams that keep running
fragment the arenas too (a camera that reconnects, viewers that come and go on a shared encoder,
clients that fail), and the soak's diagnosis measured each periodic trim giving back 8-12 MB
that had accumulated since the one before (``tests/soak/diagnose.py --trim``; 2-7 ms per trim).
Two alternatives measured worse side by side (3 cameras, 10 cycles of 60 s of viewers then
none): ``MALLOC_ARENA_MAX=2`` grew faster, and a fixed ``M_MMAP_THRESHOLD`` (big buffers
always mmapped) cost ~10 % more CPU, since the transcoder then allocated a whole picture per
frame (it now refills one picture per encoder where it need not scale, see
:class:`~bridge.media.transcode.Yuv420Canvas`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

GIVE_BACK_DELAY = 1.0  # seconds: lets the closed encoder's thread finish and free its codec
GIVE_BACK_EVERY = 30.0  # seconds between the periodic give-backs


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_trim = _malloc_trim()
_pending: asyncio.TimerHandle | None = None


def give_back() -> bool:
    """Return the C heap's free pages to the system now (blocking); False if there is no
    way to, or nothing was given back."""
    return _trim is not None and _trim(0) == 1


def give_back_soon(delay: float = GIVE_BACK_DELAY) -> None:
    """Call :func:`give_back` on a worker thread ``delay`` seconds from now, once for every
    release that comes meanwhile (several profiles of a camera close together)."""
    global _pending  # noqa: PLW0603  # the C heap is one per process, and so is its timer
    if _trim is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # outside the gateway's loop (a test, a script): the heap dies with the process
    # A timer past its time never ran: the loop that had it stopped first.
    if _pending is not None and _pending.when() >= loop.time():
        return
    _pending = loop.call_later(delay, _start, loop)


def _start(loop: asyncio.AbstractEventLoop) -> None:
    global _pending  # noqa: PLW0603
    _pending = None
    loop.run_in_executor(None, give_back)


async def give_back_periodically(every: float = GIVE_BACK_EVERY) -> None:
    """Call :func:`give_back` on a worker thread every ``every`` seconds, until cancelled."""
    if _trim is None:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every)
        await loop.run_in_executor(None, give_back)
