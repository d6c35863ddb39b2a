"""A camera whose pictures arrive unevenly, as on Wi-Fi: one encoder all along, and a viewer
gets evenly spaced, strictly increasing RTP timestamps.

The gateway runs in front of an emulated camera sending 15 fps with every interval drawn
from 0.6 to 1.4 of the nominal one; the viewer is a raw RTSP client reading the RTP headers.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import struct
import time

from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from helpers import RawClient, basic_authorization

from bridge.media.source import Profile
from bridge.simulator.core import SimOptions
from bridge.simulator.registry import SIMULATORS

FPS = 15.0
STEP = 90_000 / FPS  # RTP ticks between pictures at the camera's rate
JITTER = 0.4
PICTURES = 60  # 4 s of pictures
TCP = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}


async def _picture_times(port: int, path: str, count: int) -> list[tuple[int, float]]:
    """(RTP timestamp, arrival) of the first ``count`` whole pictures a viewer of ``path``
    receives: the marker bit ends a picture."""
    client = await RawClient.connect(port, basic_authorization(GATEWAY_USER, GATEWAY_PASSWORD))
    base = f"rtsp://127.0.0.1:{port}/{path}"
    pictures: list[tuple[int, float]] = []
    try:
        status, headers, _ = await client.request("SETUP", f"{base}/trackID=0", TCP)
        assert status == 200
        session = headers["Session"].partition(";")[0]
        assert (await client.request("PLAY", f"{base}/", {"Session": session}))[0] == 200
        async with asyncio.timeout(30):  # far past the 4 s it takes, even on a loaded host
            while len(pictures) < count:
                channel, packet = await client.frame()
                if channel == 0 and packet[1] & 0x80:
                    pictures.append((struct.unpack_from("!I", packet, 4)[0], time.monotonic()))
    finally:
        await client.close()
    return pictures


async def test_a_jittery_camera_keeps_one_encoder_and_smooth_timestamps(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    options = SimOptions(width=320, height=240, fps=FPS, jitter=JITTER)
    gateway = await start_gateway(await start_sim(SIMULATORS["hama"](options)))
    pictures = await _picture_times(gateway.rtsp.port, "hama/main", PICTURES)

    media = gateway.cameras["hama"].media
    assert media is not None
    assert media.encoding[Profile.MAIN].opens == 1, "jitter must not reopen the encoder"

    stamps = [stamp for stamp, _ in pictures]
    steps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert all(step > 0 for step in steps), steps
    # The pictures did arrive unevenly (the emulator's spread, and the host's on top) ...
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(pictures)]
    assert max(gaps) - min(gaps) > JITTER / FPS, gaps
    # ... yet their timestamps advance at the camera's rate, nearly evenly: a player shows
    # steady motion instead of the arrival jitter.
    assert abs(statistics.median(steps) - STEP) < 0.05 * STEP, steps
    even = sum(abs(step - STEP) <= 0.2 * STEP for step in steps)
    assert even >= 0.9 * len(steps), steps
    # And they stay on real time: the media clock runs at the arrival clock's pace.
    elapsed = pictures[-1][1] - pictures[0][1]
    assert abs((stamps[-1] - stamps[0]) / 90_000 - elapsed) < 0.25 + 0.1 * elapsed
