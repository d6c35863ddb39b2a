"""Run the soak by hand: ``python tests/soak/run.py --minutes 60``.

Prints the summary table (and writes ``result.json`` in the work directory); exits 1 when the
run failed, 0 when it passed. ``--diagnose SECONDS`` runs the gateway under
``tests/soak/diagnose.py``, which writes what grew every SECONDS to ``diagnosis.txt`` in the work
directory (the C heap, live objects by type, threads; ``--trace`` adds tracemalloc, ``--trim``
malloc_trim). ``--env NAME=VALUE`` sets the gateway's environment (``MALLOC_ARENA_MAX=2`` ...).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).absolute().parents[2]),
    str(Path(__file__).absolute().parents[1]),
]

from soak.harness import SoakOptions, judge, soak, table  # noqa: E402


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def options_from(argv: list[str] | None = None) -> SoakOptions:
    parser = argparse.ArgumentParser(description=__doc__)
    defaults = SoakOptions()
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="of load")
    parser.add_argument("--cameras", type=int, default=defaults.good, help="well-behaved ones")
    parser.add_argument("--bad", type=int, default=defaults.bad, help="misbehaving ones")
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds")
    parser.add_argument("--idle", type=float, default=defaults.idle, help="seconds, at most")
    parser.add_argument("--size", default=f"{defaults.width}x{defaults.height}")
    parser.add_argument("--fps", type=float, default=defaults.fps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--fuzz-rate", type=float, default=defaults.fuzz_rate)
    parser.add_argument("--fault-seconds", type=float, default=defaults.fault_seconds)
    parser.add_argument("--watch", type=_pair, default=defaults.watch, help="MIN,MAX seconds")
    parser.add_argument("--diagnose", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--trace", action="store_true", help="with --diagnose: tracemalloc")
    parser.add_argument("--collect", action="store_true", help="with --diagnose: gc.collect")
    parser.add_argument("--trim", action="store_true", help="with --diagnose: malloc_trim")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--workdir", type=Path, help="kept after the run")
    args = parser.parse_args(argv)
    width, _, height = args.size.partition("x")
    return SoakOptions(
        minutes=args.minutes,
        good=args.cameras,
        bad=args.bad,
        warmup=args.warmup,
        idle=args.idle,
        width=int(width),
        height=int(height),
        fps=args.fps,
        seed=args.seed,
        fuzz_rate=args.fuzz_rate,
        fault_seconds=args.fault_seconds,
        watch=args.watch,
        diagnose_every=args.diagnose,
        diagnose_options=tuple(f"--{o}" for o in ("trace", "collect", "trim") if getattr(args, o)),
        env=dict(item.split("=", 1) for item in args.env),
        workdir=args.workdir,
    )


def main() -> int:
    result = asyncio.run(soak(options_from()))
    print(table(result))
    return 1 if judge(result) else 0


if __name__ == "__main__":
    sys.exit(main())
