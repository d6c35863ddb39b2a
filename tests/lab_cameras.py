"""Emulated cameras for the network lab, in one process: ``lab_cameras.py DIALECT@HOST:PORT
...``. Each announces itself as its family did; prints ``ready`` once all serve, and stops
(byebye included) on SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from netlab import camera_mac

from bridge.cameras.base import Dialect
from bridge.commands import wait_for_stop_signal
from bridge.simulator.core import SimOptions, start_simulator
from bridge.simulator.registry import SIMULATORS


async def main(specs: list[str]) -> None:
    running = []
    try:
        for number, spec in enumerate(specs):
            dialect, _, where = spec.partition("@")
            host, _, port = where.rpartition(":")
            options = SimOptions(mac=camera_mac(number))
            camera = SIMULATORS[Dialect(dialect)](options)
            running.append(await start_simulator(camera, host, int(port), announce_it=True))
        print("ready", flush=True)
        await wait_for_stop_signal()
    finally:
        for sim in running:
            await sim.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
