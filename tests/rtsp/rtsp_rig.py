"""What the RTSP server tests run against: a live synthetic stream, servers in front of it
with their users, and the raw-socket steps most tests begin with.

The fixtures are imported by the test modules that use them (``# noqa: F401 (a fixture)``),
as in tests/onvif: a conftest.py here would shadow the suite's own ``conftest`` module.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from helpers import RawClient, basic_authorization

from bridge.codecs.h264 import is_idr, split_annexb
from bridge.rtsp.server import RtspServer
from bridge.rtsp.stream import FanoutSource, StreamSource
from bridge.streams import AccessUnit, Codec, MediaTrack, StreamSpec

USERS = {"user": "pw", "mallory": "m4ll0ry"}
BASIC = basic_authorization("user", "pw")
MALLORY = basic_authorization("mallory", "m4ll0ry")
TCP_TRANSPORT = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
StartServer = Callable[..., Awaitable[RtspServer]]  # the start_server fixture
WIDTH, HEIGHT, FPS = 320, 240, 15
AUDIO_CHUNK = 0.02  # 160 u-law samples at 8 kHz


def _ulaw(samples: np.ndarray) -> bytes:
    """G.711 u-law encoding of 16-bit samples."""
    x = samples.astype(np.int32)
    sign = (x < 0).astype(np.int32) << 7
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8))


# 400 Hz fits exactly 8 periods in 20 ms, so one chunk repeats seamlessly.
TONE = _ulaw(8000 * np.sin(2 * np.pi * 400 * np.arange(160) / 8000))


def _open_encoder() -> av.VideoCodecContext:
    encoder = av.VideoCodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.framerate = Fraction(FPS, 1)
    encoder.gop_size = FPS
    encoder.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "x264-params": "repeat-headers=1",
    }
    encoder.open()
    return encoder


def _encode(encoder: av.VideoCodecContext, index: int, force_idr: bool) -> list[bytes]:
    picture = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)
    picture[:HEIGHT] = 40
    x = (index * 8) % (WIDTH - 32)
    picture[:HEIGHT, x : x + 32] = 220  # a bar sweeping across, so P-frames carry motion
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    frame.pts = index
    if force_idr:
        frame.pict_type = PictureType.I
    return [bytes(packet) for packet in encoder.encode(frame)]


class SyntheticH264Source(FanoutSource):
    """A live 320x240 15 fps H.264 stream (plus an optional PCMU tone), paced in real time.

    Media times are on the media clock, ``time.monotonic()``, as a camera's are; with ``lag``
    every unit is handed out that many seconds after its media time, as from a slow pipeline.
    Encoding runs in a worker thread, never on the event loop.
    """

    def __init__(self, *, audio: bool = True, lag: float = 0.0) -> None:
        self._force_idr = threading.Event()
        self._audio = audio
        self._lag = lag
        tracks = [MediaTrack(Codec.H264, framerate=FPS)]
        if audio:
            tracks.append(MediaTrack(Codec.PCMU))
        super().__init__(
            StreamSpec(
                "synthetic",
                tuple(tracks),
                self._frames,
                request_keyframe=self._force_idr.set,
                idle_grace=1.0,
            )
        )

    async def _frames(self) -> AsyncIterator[AccessUnit]:
        encoder = await asyncio.to_thread(_open_encoder)
        start = time.monotonic() - self._lag
        audio_time = start
        index = 0
        while True:
            force = self._force_idr.is_set()
            self._force_idr.clear()
            for data in await asyncio.to_thread(_encode, encoder, index, force):
                nal_units = split_annexb(data)
                keyframe = any(is_idr(nal) for nal in nal_units)
                if keyframe:
                    self.tracks[0].learn_parameter_sets(nal_units)
                yield AccessUnit(0, nal_units, start + index / FPS, keyframe)
            index += 1
            while self._audio and audio_time < start + index / FPS:
                yield AccessUnit(1, TONE, audio_time, True)
                audio_time += AUDIO_CHUNK
            await asyncio.sleep(max(0.0, start + self._lag + index / FPS - time.monotonic()))


def resolver(source: StreamSource) -> Callable[[str], StreamSource | None]:
    return lambda path: source if path == "cam/main" else None


def base(server: RtspServer) -> str:
    """The stream's URL, without credentials."""
    return f"rtsp://127.0.0.1:{server.port}/cam/main"


async def setup_session(
    client: RawClient, server: RtspServer, transport: dict[str, str] = TCP_TRANSPORT
) -> str:
    """SETUP the video track (TCP interleaved unless told); the new session's id."""
    status, headers, _ = await client.request("SETUP", f"{base(server)}/trackID=0", transport)
    assert status == 200
    if transport is TCP_TRANSPORT:
        assert "interleaved=0-1" in headers["Transport"]
    session, _, timeout = headers["Session"].partition(";")
    assert timeout.startswith("timeout=")
    return session


async def play(client: RawClient, server: RtspServer, session: str) -> None:
    status, headers, _ = await client.request("PLAY", base(server) + "/", {"Session": session})
    assert status == 200
    assert headers["Range"] == "npt=now-"
    assert re.fullmatch(r"url=\S+;seq=\d+;rtptime=\d+", headers["RTP-Info"])


@pytest.fixture(name="source")
async def source_fixture() -> AsyncIterator[SyntheticH264Source]:
    synthetic = SyntheticH264Source()
    yield synthetic
    await synthetic.close()


@pytest.fixture(name="start_server")
async def start_server_fixture(source: SyntheticH264Source) -> AsyncIterator[StartServer]:
    """start_server(**options): an RtspServer on 127.0.0.1 serving ``cam/main`` to USERS, with
    RtspServer's keyword options (limits, timeouts); stopped after the test."""
    servers: list[RtspServer] = []

    async def start(**options: Any) -> RtspServer:
        rtsp = RtspServer(resolver(source), host="127.0.0.1", port=0, users=USERS, **options)
        await rtsp.start()
        servers.append(rtsp)
        return rtsp

    yield start
    for rtsp in servers:
        await rtsp.stop()


@pytest.fixture(name="server")
async def server_fixture(start_server: StartServer) -> RtspServer:
    return await start_server()


@pytest.fixture(name="client")
async def client_fixture(server: RtspServer) -> AsyncIterator[RawClient]:
    raw = await RawClient.connect(server.port, BASIC)
    yield raw
    await raw.close()
