"""RtspServer against real clients (ffprobe, ffmpeg) and raw sockets, all on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from fractions import Fraction

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from helpers import RawClient, basic_authorization

from bridge.rtsp.h264 import is_idr, split_annexb
from bridge.rtsp.rtcp import SenderReport, parse_compound
from bridge.rtsp.server import RtspServer
from bridge.rtsp.stream import AccessUnit, Codec, FanoutSource, MediaTrack, StreamSource

WIDTH, HEIGHT, FPS = 320, 240, 15
USERS = {"user": "pw"}
BASIC = basic_authorization("user", "pw")
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

    Encoding runs in a worker thread, never on the event loop.
    """

    def __init__(self, *, audio: bool = True) -> None:
        self._force_idr = threading.Event()
        self._audio = audio
        tracks = [MediaTrack(Codec.H264, framerate=FPS)]
        if audio:
            tracks.append(MediaTrack(Codec.PCMU))
        super().__init__(
            tracks,
            self._frames,
            name="synthetic",
            request_keyframe=self._force_idr.set,
            idle_grace=1.0,
        )

    async def _frames(self) -> AsyncIterator[AccessUnit]:
        encoder = await asyncio.to_thread(_open_encoder)
        loop = asyncio.get_running_loop()
        start = loop.time()
        audio_time = 0.0
        index = 0
        while True:
            force = self._force_idr.is_set()
            self._force_idr.clear()
            for data in await asyncio.to_thread(_encode, encoder, index, force):
                nal_units = split_annexb(data)
                keyframe = any(is_idr(nal) for nal in nal_units)
                yield AccessUnit(0, nal_units, index / FPS, keyframe)
            index += 1
            while self._audio and audio_time < index / FPS:
                yield AccessUnit(1, TONE, audio_time, True)
                audio_time += AUDIO_CHUNK
            await asyncio.sleep(max(0.0, start + index / FPS - loop.time()))


@pytest.fixture
async def source() -> AsyncIterator[SyntheticH264Source]:
    synthetic = SyntheticH264Source()
    yield synthetic
    await synthetic.close()


def _resolver(source: StreamSource) -> Callable[[str], StreamSource | None]:
    return lambda path: source if path == "cam/main" else None


@pytest.fixture
async def server(source: SyntheticH264Source) -> AsyncIterator[RtspServer]:
    rtsp = RtspServer(_resolver(source), host="127.0.0.1", port=0, users=USERS)
    await rtsp.start()
    yield rtsp
    await rtsp.stop()


async def _run(*argv: str, limit: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _url(server: RtspServer, password: str = "pw", path: str = "cam/main") -> str:
    return f"rtsp://user:{password}@127.0.0.1:{server.port}/{path}"


# -- real clients ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_ffprobe_sees_h264_and_pcmu(server: RtspServer, transport: str) -> None:
    code, out, err = await _run(
        "ffprobe", "-v", "error", "-rtsp_transport", transport,
        "-show_streams", "-of", "json", _url(server),
        limit=20,
    )  # fmt: skip
    assert code == 0, err
    streams = json.loads(out)["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    assert [(s["codec_name"], s["width"], s["height"]) for s in video] == [("h264", 320, 240)]
    assert [s["codec_name"] for s in streams if s["codec_type"] == "audio"] == ["pcm_mulaw"]


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_ffmpeg_decodes_nearly_every_frame(server: RtspServer, transport: str) -> None:
    code, _, err = await _run(
        "ffmpeg", "-nostdin", "-hide_banner", "-rtsp_transport", transport,
        "-i", _url(server), "-t", "3", "-f", "null", "-",
        limit=25,
    )  # fmt: skip
    assert code == 0, err
    frames = [int(n) for n in re.findall(r"frame=\s*(\d+)", err)]
    assert frames, err
    assert frames[-1] >= 0.9 * 3 * FPS, err


async def test_ffprobe_wrong_password_is_refused(server: RtspServer) -> None:
    code, _, err = await _run(
        "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams",
        _url(server, password="wrong"),
        limit=15,
    )  # fmt: skip
    assert code != 0
    assert "401" in err


# -- raw sockets ----------------------------------------------------------------------------


@pytest.fixture
async def client(server: RtspServer) -> AsyncIterator[RawClient]:
    raw = await RawClient.connect(server.port, BASIC)
    yield raw
    await raw.close()


def _base(server: RtspServer) -> str:
    return f"rtsp://127.0.0.1:{server.port}/cam/main"


TCP_TRANSPORT = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}


async def _setup(client: RawClient, server: RtspServer) -> str:
    status, headers, _ = await client.request("SETUP", f"{_base(server)}/trackID=0", TCP_TRANSPORT)
    assert status == 200
    assert "interleaved=0-1" in headers["Transport"]
    session, _, timeout = headers["Session"].partition(";")
    assert timeout.startswith("timeout=")
    return session


async def test_options_lists_public_methods(client: RawClient, server: RtspServer) -> None:
    status, headers, _ = await client.request("OPTIONS", _base(server), auth=False)
    assert status == 200
    assert headers["CSeq"] == "1"
    assert {m.strip() for m in headers["Public"].split(",")} == {
        "OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN",
        "GET_PARAMETER", "SET_PARAMETER",
    }  # fmt: skip


async def test_describe_without_credentials_is_challenged(
    client: RawClient, server: RtspServer
) -> None:
    status, headers, _ = await client.request("DESCRIBE", _base(server), auth=False)
    assert status == 401
    challenges = headers.get_all("WWW-Authenticate")
    assert any(c.startswith("Digest ") and 'qop="auth"' in c for c in challenges)
    assert any(c.startswith("Basic ") for c in challenges)


async def test_describe_returns_sdp(client: RawClient, server: RtspServer) -> None:
    status, headers, body = await client.request("DESCRIBE", _base(server))
    assert status == 200
    assert headers["Content-Type"] == "application/sdp"
    assert headers["Content-Base"] == _base(server) + "/"
    sdp = body.decode()
    assert "a=control:*" in sdp
    assert "a=control:trackID=0" in sdp
    assert "a=control:trackID=1" in sdp
    assert "sprop-parameter-sets=" in sdp


async def test_unknown_path_is_404(client: RawClient, server: RtspServer) -> None:
    uri = f"rtsp://127.0.0.1:{server.port}/nocam/main"
    assert (await client.request("DESCRIBE", uri))[0] == 404


async def test_unknown_session_is_454(client: RawClient, server: RtspServer) -> None:
    status, _, _ = await client.request("PLAY", _base(server) + "/", {"Session": "deadbeef"})
    assert status == 454


async def test_unsupported_transport_is_461(client: RawClient, server: RtspServer) -> None:
    uri = f"{_base(server)}/trackID=0"
    status, _, _ = await client.request("SETUP", uri, {"Transport": "RTP/AVP;multicast"})
    assert status == 461
    status, _, _ = await client.request("SETUP", uri, {"Transport": "RAW/RAW/UDP;unicast"})
    assert status == 461
    assert not server.sessions


async def test_malformed_request_closes_only_its_connection(
    client: RawClient, server: RtspServer
) -> None:
    bad = await RawClient.connect(server.port, BASIC)
    try:
        bad.writer.write(b"THIS IS NOT RTSP\r\n\r\n")
        status, _, _ = await bad.response()
        assert status == 400
        async with asyncio.timeout(5):
            assert await bad.reader.read() == b""
    finally:
        await bad.close()
    assert (await client.request("OPTIONS", _base(server)))[0] == 200


async def test_keepalive_resets_session_timeout(source: SyntheticH264Source) -> None:
    rtsp = RtspServer(_resolver(source), port=0, users=USERS, session_timeout=1.5)
    await rtsp.start()
    raw = await RawClient.connect(rtsp.port, BASIC)
    try:
        session = await _setup(raw, rtsp)
        for _ in range(3):  # 3 s in all, twice the timeout: only the keepalives keep it
            await asyncio.sleep(1.0)
            status, _, _ = await raw.request("GET_PARAMETER", _base(rtsp), {"Session": session})
            assert status == 200
        await asyncio.sleep(2.5)
        status, _, _ = await raw.request("GET_PARAMETER", _base(rtsp), {"Session": session})
        assert status == 454
    finally:
        await raw.close()
        await rtsp.stop()


async def _play(client: RawClient, server: RtspServer, session: str) -> None:
    status, headers, _ = await client.request("PLAY", _base(server) + "/", {"Session": session})
    assert status == 200
    assert headers["Range"] == "npt=now-"
    assert re.fullmatch(r"url=\S+;seq=\d+;rtptime=\d+", headers["RTP-Info"])


async def test_play_sends_rtp_and_sender_reports(client: RawClient, server: RtspServer) -> None:
    session = await _setup(client, server)
    await _play(client, server, session)
    rtp = 0
    report: SenderReport | None = None
    async with asyncio.timeout(6):
        while report is None or not rtp:
            channel, payload = await client.frame()
            if channel == 0:
                rtp += 1
            elif channel == 1:
                report = next(p for p in parse_compound(payload) if isinstance(p, SenderReport))
    assert report.ntp_seconds > 0


async def test_teardown_ends_the_session(client: RawClient, server: RtspServer) -> None:
    session = await _setup(client, server)
    await _play(client, server, session)
    status, _, _ = await client.request("TEARDOWN", _base(server) + "/", {"Session": session})
    assert status == 200
    assert not server.sessions
    status, _, _ = await client.request("GET_PARAMETER", _base(server), {"Session": session})
    assert status == 454
