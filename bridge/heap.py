"""The C heap of a gateway that runs for years: memory an encoder frees goes back to the system.

glibc serves a big allocation (x264's picture buffers, FFmpeg's frames) with its own mmap until
one such chunk is freed; then it raises its mmap threshold (up to 32 MiB) and serves the next
ones from its arenas, where each encoder that closes leaves holes the next one cannot fill.
Measured with ``tests/soak/diagnose.py``, cameras whose viewers come and go: the bytes in use fell
back to ~40 MB whenever the gateway idled, while the arenas kept growing (137 MB, 98 MB of it
free) and RSS with them, 165 -> 242 MB over 12 load cycles. A fixed threshold keeps big buffers
in mmapped chunks, unmapped when freed: idle RSS stayed within 165-180 MB in the same cycles.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, now fixed


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library is not glibc
    (musl and others have no such threshold to fix)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        log.warning("the C library refused a fixed mmap threshold; freed memory may stay held")
        return False
    return True
