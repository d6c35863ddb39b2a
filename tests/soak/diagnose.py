"""The gateway with its memory watched, for finding what grows during a soak:
``python -m soak.diagnose --config FILE --every SECONDS --report FILE [--trace] [--trim]``
(``run.py --diagnose SECONDS [--trace] [--trim]``).

It runs ``bridge run`` in this process and every SECONDS appends to the report: RSS; the C
heap as glibc counts it (``mallinfo2``: bytes in use and free in its arenas, bytes in mmapped
chunks), which also holds what FFmpeg and x264 allocate; the live objects by type that grew
most since the first report and since the previous one (``gc.get_objects()``); and the threads
by name. ``--trace`` adds tracemalloc (the Python allocation sites that grew most), which slows
the gateway down several times and takes much memory itself: compare such a run only with
itself. ``--collect`` runs a full garbage collection after each report and says what it found and
what that gave back: memory held by garbage in reference cycles. ``--trim`` then hands the
free memory of glibc's arenas back to the system (``malloc_trim(0)``) and says how much RSS
that gave back: memory that is free but held.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import re
import sys
import threading
import time
import tracemalloc
import types
from collections import Counter
from pathlib import Path

FRAMES = 8
TOP = 15
CYCLES = 8


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def libc() -> ctypes.CDLL:
    library = ctypes.CDLL("libc.so.6")
    library.mallinfo2.restype = _MallInfo2
    return library


def c_heap() -> str:
    info = libc().mallinfo2()
    mb = 1024 * 1024
    return (
        f"C heap: {info.uordblks / mb:.1f} MB in use, {info.fordblks / mb:.1f} MB free in "
        f"{info.arena / mb:.1f} MB of arenas, {info.hblkhd / mb:.1f} MB in {info.hblks} "
        "mmapped chunks"
    )


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match[1]) / 1024 if match else 0.0


def object_counts() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def garbage_origins() -> list[str]:
    """What the garbage in reference cycles is and where its frames ran: the functions whose
    frames are kept alive only by a cycle (an exception's traceback held by a local of the
    frame it went through is the classic one), and the exception types in it."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    kinds = Counter(type(o).__qualname__ for o in garbage)
    frames = Counter(
        f"{Path(o.f_code.co_filename).name}:{o.f_code.co_name}"
        for o in garbage
        if isinstance(o, types.FrameType)
    )
    errors = Counter(type(o).__qualname__ for o in garbage if isinstance(o, BaseException))
    cycles = [shortest_cycle(error, garbage) for error in _one_per_origin(garbage)]
    del garbage
    lines = [
        "--- garbage in reference cycles: "
        + ", ".join(f"{name} x{n}" for name, n in kinds.most_common(TOP))
    ]
    lines.append("    frames: " + ", ".join(f"{n} {name}" for name, n in frames.most_common(TOP)))
    lines.append("    exceptions: " + ", ".join(f"{n} {name}" for name, n in errors.most_common()))
    lines += [f"    cycle: {cycle}" for cycle in cycles if cycle]
    return lines


def _one_per_origin(garbage: list[object]) -> list[BaseException]:
    """One exception of each type and innermost raising function, at most CYCLES."""
    seen: dict[tuple[str, str], BaseException] = {}
    for o in garbage:
        if isinstance(o, BaseException) and o.__traceback__ is not None:
            tb = o.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            seen.setdefault((type(o).__qualname__, tb.tb_frame.f_code.co_name), o)
    return list(seen.values())[:CYCLES]


def _describe(o: object) -> str:
    if isinstance(o, types.FrameType):
        return f"frame {Path(o.f_code.co_filename).name}:{o.f_code.co_name}:{o.f_lineno}"
    if isinstance(o, BaseException):
        return f"{type(o).__qualname__}"
    return type(o).__qualname__


def shortest_cycle(start: object, garbage: list[object]) -> str:
    """The shortest chain of references from ``start`` back to itself within the garbage:
    what keeps it in a cycle."""
    members = {id(o) for o in garbage}
    parents: dict[int, object] = {id(start): start}
    came_from: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following = []
        for o in frontier:
            for r in gc.get_referents(o):
                if r is start:
                    chain = [o]
                    while id(chain[-1]) != id(start):
                        chain.append(parents[came_from[id(chain[-1])]])
                    return " <- ".join(_describe(x) for x in chain)
                if id(r) in members and id(r) not in parents:
                    parents[id(r)] = r
                    came_from[id(r)] = id(o)
                    following.append(r)
        frontier = following
    return ""


class Reporter:
    def __init__(self, path: Path, every: float, *, trace: bool, collect: bool, trim: bool) -> None:
        self._path = path
        self._every = every
        self._trace = trace
        self._collect = collect
        self._trim = trim
        self._first: tracemalloc.Snapshot | None = None
        self._previous: tracemalloc.Snapshot | None = None
        self._first_counts: Counter[str] = Counter()
        self._previous_counts: Counter[str] = Counter()

    def start(self) -> None:
        threading.Thread(target=self._run, name="soak diagnosis", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self._every)
            self.report()

    def report(self) -> None:
        snapshot = (
            tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            if self._trace
            else None
        )
        counts = object_counts()
        traced = ""
        if self._trace:
            size, peak = tracemalloc.get_traced_memory()
            traced = f"; traced by tracemalloc {size / 2**20:.1f} MB (peak {peak / 2**20:.1f} MB)"
        lines = [
            f"=== {time.strftime('%H:%M:%S')}  RSS {rss_mb():.1f} MB; {c_heap()}{traced}",
            "gc collections by generation: "
            + ", ".join(str(g["collections"]) for g in gc.get_stats())
            + f"; tracked objects {len(gc.get_objects())}",
            "threads: "
            + ", ".join(
                f"{name} x{n}"
                for name, n in Counter(
                    re.sub(r"_?\d+$", "", t.name) for t in threading.enumerate()
                ).most_common()
            ),
        ]
        if self._first_counts:
            for label, base, base_counts in (
                ("since the first report", self._first, self._first_counts),
                ("since the previous report", self._previous, self._previous_counts),
            ):
                lines.append(f"--- allocation sites that grew most {label}")
                grew = snapshot.compare_to(base, "traceback") if snapshot and base else []
                for stat in grew[:TOP]:
                    if stat.size_diff <= 0:
                        break
                    frames = " <- ".join(
                        f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[-6:][::-1]
                    )
                    size, count = stat.size_diff / 1024, stat.count_diff
                    lines.append(f"  {size:+9.1f} KiB {count:+7d} blocks  {frames}")
                grown = (counts - base_counts).most_common(TOP)
                lines.append(f"--- live objects by type that grew most {label}")
                lines += [f"  {n:+8d}  {name} (now {counts[name]})" for name, n in grown]
        else:
            self._first, self._first_counts = snapshot, counts
        self._previous, self._previous_counts = snapshot, counts
        del snapshot
        if self._collect:
            before = rss_mb(), c_heap()
            lines += garbage_origins()
            unreachable = gc.collect()
            lines.append(
                f"gc.collect(): {unreachable} unreachable objects; RSS {before[0]:.1f} -> "
                f"{rss_mb():.1f} MB; {before[1]} -> {c_heap()}"
            )
        if self._trim:
            before, began = rss_mb(), time.perf_counter()
            libc().malloc_trim(0)
            took = (time.perf_counter() - began) * 1000
            lines.append(f"malloc_trim(0): RSS {before:.1f} -> {rss_mb():.1f} MB in {took:.1f} ms")
        with self._path.open("a") as report:
            report.write("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--collect", action="store_true")
    parser.add_argument("--trim", action="store_true")
    args = parser.parse_args()
    if args.trace:
        tracemalloc.start(FRAMES)
    from bridge.cli import main as bridge_main  # noqa: PLC0415 - traced from its first import

    Reporter(
        args.report, args.every, trace=args.trace, collect=args.collect, trim=args.trim
    ).start()
    return bridge_main(["run", "--config", args.config])


if __name__ == "__main__":
    sys.exit(main())
