"""``python -m benchmarks``: the gateway against its references on camera-like pictures.

Progress goes to stderr, the tables (Markdown) to stdout. Run it on a quiet machine: anything
else running skews every number.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.run import Options, run


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="each measured window")
    parser.add_argument("--rounds", type=int, default=2, help="A B A B rounds per scenario")
    parser.add_argument("--fps", type=float, default=15.0, help="every camera's frame rate")
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.2,
        help="arrival spread: 0.2 makes inter-frame gaps vary +-20%% (default)",
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="s of running before each window (after joining)"
    )
    parser.add_argument(
        "--max-cameras", type=int, help="cap every scenario's cameras (a smoke run)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every scenario with one camera, one round of 0.5 s windows: checks it runs",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="where the rendered pictures are kept (default $BRIDGE_BENCH_CACHE or "
        "~/.cache/bridge-bench)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.jitter < 1:
        parser.error("--jitter must be in [0, 1)")
    if args.quick:
        return Options(0.5, 1, args.fps, args.jitter, 0.2, 1, args.cache)
    return Options(
        args.seconds, args.rounds, args.fps, args.jitter, args.settle, args.max_cameras, args.cache
    )


def main(argv: list[str] | None = None) -> int:
    print(run(parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
