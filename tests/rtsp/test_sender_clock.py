"""RTCP Sender Reports map the media clock to Unix time with one offset: a unit's RTP timestamp
maps to when its picture or sound was captured, however late the pipeline hands it over, on
every track alike (what a player lines audio and video up with, and a VMS dates footage by)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from helpers import RawClient
from rtsp_rig import (  # noqa: F401 (a fixture)
    BASIC,
    StartServer,
    SyntheticH264Source,
    base,
    play,
    setup_session,
    start_server_fixture,
)

from bridge.rtsp.rtcp import SenderReport, parse_compound
from bridge.rtsp.rtp import RtpPacket

LAG = 3.0  # seconds each unit spends "in the pipeline" before the server gets it
NTP_UNIX_OFFSET = 2_208_988_800


@pytest.fixture(name="source")
async def lagging_source_fixture() -> AsyncIterator[SyntheticH264Source]:
    synthetic = SyntheticH264Source(lag=LAG)
    yield synthetic
    await synthetic.close()


def unix_time(report: SenderReport, timestamp: int, clock_rate: int) -> float:
    """When an RTP timestamp happened, by the Sender Report's mapping."""
    ticks = (timestamp - report.rtp_timestamp) & 0xFFFFFFFF
    if ticks >= 1 << 31:
        ticks -= 1 << 32
    sent = report.ntp_seconds - NTP_UNIX_OFFSET + report.ntp_fraction / 2**32
    return sent + ticks / clock_rate


async def test_timestamps_map_to_capture_time_not_to_sending_time(
    start_server: StartServer,
) -> None:
    server = await start_server()
    client = await RawClient.connect(server.port, BASIC)
    try:
        session = await setup_session(client, server)
        audio = {"Transport": "RTP/AVP/TCP;unicast;interleaved=2-3", "Session": session}
        assert (await client.request("SETUP", f"{base(server)}/trackID=1", audio))[0] == 200
        await play(client, server, session)
        first: dict[int, tuple[int, float]] = {}  # RTP channel -> (timestamp, received at)
        reports: dict[int, SenderReport] = {}  # RTP channel -> its first SR
        async with asyncio.timeout(10):
            while len(first) < 2 or len(reports) < 2:
                channel, payload = await client.frame()
                if channel % 2 == 0:
                    first.setdefault(channel, (RtpPacket.parse(payload).timestamp, time.time()))
                else:
                    report = next(p for p in parse_compound(payload) if isinstance(p, SenderReport))
                    reports.setdefault(channel - 1, report)
    finally:
        await client.close()
    for channel, clock_rate in ((0, 90_000), (2, 8_000)):
        timestamp, received = first[channel]
        captured = unix_time(reports[channel], timestamp, clock_rate)
        # Captured LAG seconds before it could be sent; loopback and a loaded host add little.
        assert LAG - 0.1 < received - captured < LAG + 1.0, (channel, received - captured)
