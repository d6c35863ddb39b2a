"""The emulated camera's scene: calm until the outside world makes motion, then its box moves
(for every dialect, whether or not its CGI reports motion)."""

from __future__ import annotations

import numpy as np
from helpers import decode_jpeg

from bridge.simulator.core import FrameHub, SimOptions, SimState

# Rows of the default 640x480 picture clear of the clock and the counter, where the box starts.
MIDDLE = slice(120, 360)


async def middle_rows(hub: FrameHub) -> np.ndarray:
    frame = decode_jpeg(await hub.render()).to_ndarray(format="gray")
    return frame[MIDDLE].astype(np.float64)


def moved(before: np.ndarray, after: np.ndarray) -> bool:
    return float(np.mean(np.abs(before - after))) > 0.5


async def test_the_box_moves_only_while_there_is_motion() -> None:
    state = SimState()
    hub = FrameHub(SimOptions(), state)
    calm = [await middle_rows(hub) for _ in range(3)]
    assert not moved(calm[0], calm[2])

    state.motion_active = True
    moving = [await middle_rows(hub) for _ in range(3)]
    assert moved(calm[2], moving[0])
    assert moved(moving[0], moving[2])

    state.motion_active = False
    stopped = [await middle_rows(hub) for _ in range(3)]
    assert not moved(stopped[0], stopped[2])
    assert moved(calm[0], stopped[0])  # it stands where it got to
    await hub.close()
