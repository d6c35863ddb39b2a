"""Two-way audio through the gateway, as a VMS's talk button uses it: a raw RTSP client asks
for the ONVIF back channel, sends a 1 kHz tone, and the emulated camera's speaker plays it,
while an ffmpeg viewer of the same camera keeps getting pictures."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import aiohttp
import numpy as np
import pytest
from conftest import StartGateway, StartSim
from helpers import RawClient, dominant_frequency
from test_gateway_streaming import (
    AUTH,
    FrameWatch,
    rtsp_url,
    watch,  # noqa: F401 (a fixture)
)

from bridge.app import Gateway
from bridge.cameras.base import AudioCodec, Dialect
from bridge.rtsp.backchannel import BACKCHANNEL
from bridge.rtsp.protocol import InterleavedFrame
from bridge.rtsp.rtp import RtpPacket
from bridge.rtsp.sdp import SessionDescription
from bridge.simulator.core import RunningSimulator, SimOptions
from bridge.simulator.media import TalkRecorder, ToneEncoder
from bridge.simulator.openapi import OpenApiSimulator
from bridge.simulator.registry import SIMULATORS
from bridge.simulator.vapix2 import Vapix2Simulator

REQUIRE = {"Require": BACKCHANNEL}
TONE = 1000.0
TALK_SECONDS = 3.0
PACKET_SECONDS = 0.02
MAX_GAP = 1.0  # what a viewer may go without a picture while someone talks


def speaker(sim: RunningSimulator) -> TalkRecorder:
    """What the emulated camera's speaker recorded."""
    camera = sim.camera
    if isinstance(camera, Vapix2Simulator):
        return camera.settings.talk
    assert isinstance(camera, OpenApiSimulator)
    return camera.unit.talk


def base(gateway: Gateway, dialect: str) -> str:
    return f"rtsp://127.0.0.1:{gateway.rtsp.port}/{dialect}/main"


async def describe_talk(client: RawClient, url: str) -> str:
    """The back channel's control URL, from a DESCRIBE that requires it."""
    status, headers, body = await client.request("DESCRIBE", url, REQUIRE)
    assert status == 200
    talk = SessionDescription.parse(body.decode()).media[-1]
    assert ("sendonly", None) in talk.attributes
    assert talk.control is not None
    return headers["Content-Base"] + talk.control


class Talker:
    """A raw RTSP client talking over UDP or TCP interleaved (channels 4-5)."""

    def __init__(self, client: RawClient, transport: str) -> None:
        self.client = client
        self.transport = transport
        self.session = ""
        self._udp: socket.socket | None = None
        self._server_rtp = 0
        self._sequence = 0

    async def setup(self, url: str) -> int:
        """SETUP of the back channel; the status."""
        if self.transport == "udp":
            if self._udp is None:
                self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._udp.bind(("127.0.0.1", 0))
            port = self._udp.getsockname()[1]
            spec = f"RTP/AVP;unicast;client_port={port}-{port + 1}"
        else:
            spec = "RTP/AVP/TCP;unicast;interleaved=4-5"
        status, headers, _ = await self.client.request("SETUP", url, {"Transport": spec, **REQUIRE})
        if status == 200:
            self.session = headers["Session"].partition(";")[0]
            answer = headers["Transport"]
            if self._udp is not None:
                self._server_rtp = int(answer.rpartition("server_port=")[2].split("-")[0])
        return status

    async def play(self, url: str) -> None:
        status, _, _ = await self.client.request("PLAY", url, {"Session": self.session, **REQUIRE})
        assert status == 200

    def send(self, payload: bytes, payload_type: int = 0) -> None:
        self._sequence += 1
        data = RtpPacket(
            payload_type, self._sequence, self._sequence * len(payload), 0x5EED, payload=payload
        ).serialize()
        self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data, ("127.0.0.1", self._server_rtp))
        else:
            self.client.writer.write(InterleavedFrame(4, data).serialize())

    async def teardown(self, url: str) -> None:
        status, _, _ = await self.client.request(
            "TEARDOWN", url, {"Session": self.session, **REQUIRE}
        )
        assert status == 200

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()


async def viewers_shown(gateway: Gateway, camera: str) -> int:
    """The viewers the status page lists for the camera, over all its profiles."""
    api = f"http://127.0.0.1:{gateway.web_port}/api/cameras"
    async with aiohttp.ClientSession() as http, http.get(api, headers={"Authorization": AUTH}) as r:
        status = await r.json()
    entry = next(c for c in status["cameras"] if c["name"] == camera)
    return sum(len(profile["viewers"]) for profile in entry["profiles"])


async def talk_tone(talker: Talker) -> None:
    """TALK_SECONDS of a 1 kHz u-law tone in 20 ms packets, at the pace a microphone makes
    them, with garbage among them (which must change nothing)."""
    tone = ToneEncoder(AudioCodec.MULAW, frequency=TONE)
    start = time.monotonic()
    for index in range(round(TALK_SECONDS / PACKET_SECONDS)):
        talker.send(tone.next_chunk(PACKET_SECONDS))
        if index % 25 == 0:
            talker.send_raw(b"\x80\x60garbage")  # truncated, and a payload type not offered
            talker.send_raw(bytes(64))  # RTP version 0
        await asyncio.sleep(max(0.0, start + (index + 1) * PACKET_SECONDS - time.monotonic()))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("dialect", [Dialect.VAPIX2, Dialect.OPENAPI])
async def test_a_tone_reaches_the_camera_and_viewers_see_no_gap(
    start_sim: StartSim,
    start_gateway: StartGateway,
    watch: Callable[[str], Awaitable[FrameWatch]],  # noqa: F811 (the fixture)
    dialect: Dialect,
    transport: str,
) -> None:
    sim = await start_sim(SIMULATORS[dialect](SimOptions()))
    gateway = await start_gateway(sim)
    viewer = await watch(rtsp_url(gateway, f"{dialect}/main"))
    await viewer.frames_after(0.0, 3, limit=30)  # the viewer is watching
    client = await RawClient.connect(gateway.rtsp.port, AUTH)
    talker = Talker(client, transport)
    try:
        url = base(gateway, dialect)
        assert await talker.setup(await describe_talk(client, url)) == 200
        await talker.play(url)
        assert await viewers_shown(gateway, dialect) == 1  # a talker is not a viewer
        started = time.monotonic()
        await talk_tone(talker)
        stopped = time.monotonic()
        await talker.teardown(url)
    finally:
        talker.close()
        await client.close()

    recorder = speaker(sim)
    async with asyncio.timeout(10):
        await recorder.ended.wait()  # the upload closed with the talk
    pcm = recorder.pcm
    assert len(pcm) >= 0.9 * TALK_SECONDS * recorder.sample_rate
    assert dominant_frequency(pcm, recorder.sample_rate, min_peak_ratio=20) == pytest.approx(
        TONE, abs=10
    )
    assert recorder.garbage == 0

    after = await viewer.frames_after(stopped, 1, limit=10)
    times = [t for t in viewer.times if started <= t <= after[0]]
    gaps = np.diff([started, *times])
    assert gaps.max() <= MAX_GAP, f"a viewer went {gaps.max():.2f} s without a picture"


async def test_a_camera_without_a_speaker_answers_551(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    sim = await start_sim(SIMULATORS[Dialect.IPCAMCGI](SimOptions()))
    gateway = await start_gateway(sim)
    client = await RawClient.connect(gateway.rtsp.port, AUTH)
    try:
        url = base(gateway, Dialect.IPCAMCGI)
        status, headers, _ = await client.request("DESCRIBE", url, REQUIRE)
        assert (status, headers["Unsupported"]) == (551, BACKCHANNEL)
        status, _, body = await client.request("DESCRIBE", url)  # as without the tag
        assert status == 200
        assert b"sendonly" not in body
    finally:
        await client.close()


async def test_a_second_talker_gets_453(start_sim: StartSim, start_gateway: StartGateway) -> None:
    sim = await start_sim(SIMULATORS[Dialect.VAPIX2](SimOptions()))
    gateway = await start_gateway(sim)
    url = base(gateway, Dialect.VAPIX2)
    first = Talker(await RawClient.connect(gateway.rtsp.port, AUTH), "tcp")
    second = Talker(await RawClient.connect(gateway.rtsp.port, AUTH), "udp")
    try:
        talk_url = await describe_talk(first.client, url)
        assert await first.setup(talk_url) == 200
        await first.play(url)
        assert await second.setup(talk_url) == 453
        await first.teardown(url)
        assert await second.setup(talk_url) == 200
    finally:
        for talker in (first, second):
            talker.close()
            await talker.client.close()
