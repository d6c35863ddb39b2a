"""The gateway's C heap hands big freed buffers back to the system (finding 9 of issue 9)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# In a fresh interpreter: free one big mmapped buffer (as a closing encoder does), then allocate
# a smaller big one (as the next encoder does) and say whether glibc mmapped it (mallinfo2's
# hblkhd counts mmapped bytes) or carved it from an arena, where it would stay once freed.
PROBE = """
import ctypes, sys
from bridge.heap import return_freed_memory
if sys.argv[1] == "fixed":
    return_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(8 << 20))
before = libc.mallinfo2().hblkhd
buffer = libc.malloc(2 << 20)
print(libc.mallinfo2().hblkhd - before >= 2 << 20)
"""


def _mmapped(mode: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc moves its threshold")
def test_big_buffers_stay_mmapped_after_one_is_freed() -> None:
    assert not _mmapped("default")  # glibc raised its threshold: the buffer is in an arena
    assert _mmapped("fixed")
