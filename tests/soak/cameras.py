"""The soak's emulated cameras, all in one process of their own (so the gateway's numbers are
its own): ``python -m soak.cameras --good K --bad M``. Dialects take turns, each camera has its
own password; prints one JSON line describing them once all serve, and stops on SIGTERM.
Misbehaving cameras are told what to do over their ``/__sim__/fault`` control."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from bridge.cameras.base import Dialect
from bridge.commands import wait_for_stop_signal
from bridge.simulator.core import RunningSimulator, SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS
from soak.gateway import CameraSpec

CAMERA_USER = "admin"


def plan(good: int, bad: int) -> list[tuple[str, Dialect, bool]]:
    """(name, dialect, well behaved) of every camera: dialects in turn, the misbehaving ones
    starting where the well-behaved ones left off, so both kinds cover the dialects."""
    dialects = list(Dialect)
    cameras = []
    for index in range(good + bad):
        well_behaved = index < good
        dialect = dialects[index % len(dialects)]
        kind = "good" if well_behaved else "bad"
        cameras.append((f"{kind}-{dialect}-{index}", dialect, well_behaved))
    return cameras


async def serve(good: int, bad: int, options: SimOptions) -> None:
    running: list[RunningSimulator] = []
    specs = []
    try:
        for index, (name, dialect, well_behaved) in enumerate(plan(good, bad)):
            password = f"soak-cam-{index}-pass"
            camera = SIMULATORS[dialect](
                SimOptions(
                    username=CAMERA_USER,
                    password=password,
                    width=options.width,
                    height=options.height,
                    fps=options.fps,
                    mac=f"02:00:00:50:4b:{index:02x}",
                )
            )
            sim = await start_simulator(camera, "127.0.0.1", 0)
            running.append(sim)
            specs.append(CameraSpec(name, dialect, sim.url, CAMERA_USER, password, well_behaved))
        print(json.dumps([asdict(spec) for spec in specs]), flush=True)
        await wait_for_stop_signal()
    finally:
        for sim in running:
            await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--good", type=int, default=3)
    parser.add_argument("--bad", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    options = SimOptions(width=args.width, height=args.height, fps=args.fps)
    asyncio.run(serve(args.good, args.bad, options))


if __name__ == "__main__":
    main()
