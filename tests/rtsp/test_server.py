"""RtspServer against real clients (ffprobe, ffmpeg) and raw sockets, all on loopback."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from helpers import RawClient
from rtsp_rig import (
    BASIC,
    FPS,
    StartServer,
    base,
    client_fixture,  # noqa: F401 (a fixture)
    play,
    server_fixture,  # noqa: F401 (a fixture)
    setup_session,
    source_fixture,  # noqa: F401 (a fixture)
    start_server_fixture,  # noqa: F401 (a fixture)
)

from bridge.rtsp.rtcp import SenderReport, parse_compound
from bridge.rtsp.server import RtspServer


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
async def test_ffmpeg_decodes_nearly_every_frame(start_server: StartServer, transport: str) -> None:
    # ffmpeg keeps one connection and, over UDP, says nothing on it for half the session
    # timeout: a playing session must keep that connection past the idle timeout.
    server = await start_server(idle_timeout=1.0)
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


async def test_options_lists_public_methods(client: RawClient, server: RtspServer) -> None:
    status, headers, _ = await client.request("OPTIONS", base(server), auth=False)
    assert status == 200
    assert headers["CSeq"] == "1"
    assert {m.strip() for m in headers["Public"].split(",")} == {
        "OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN",
        "GET_PARAMETER", "SET_PARAMETER",
    }  # fmt: skip


async def test_describe_without_credentials_is_challenged(
    client: RawClient, server: RtspServer
) -> None:
    status, headers, _ = await client.request("DESCRIBE", base(server), auth=False)
    assert status == 401
    challenges = headers.get_all("WWW-Authenticate")
    assert any(c.startswith("Digest ") and 'qop="auth"' in c for c in challenges)
    assert any(c.startswith("Basic ") for c in challenges)


async def test_describe_returns_sdp(client: RawClient, server: RtspServer) -> None:
    status, headers, body = await client.request("DESCRIBE", base(server))
    assert status == 200
    assert headers["Content-Type"] == "application/sdp"
    assert headers["Content-Base"] == base(server) + "/"
    sdp = body.decode()
    assert "a=control:*" in sdp
    assert "a=control:trackID=0" in sdp
    assert "a=control:trackID=1" in sdp
    assert "sprop-parameter-sets=" in sdp


async def test_unknown_path_is_404(client: RawClient, server: RtspServer) -> None:
    uri = f"rtsp://127.0.0.1:{server.port}/nocam/main"
    assert (await client.request("DESCRIBE", uri))[0] == 404


async def test_unknown_session_is_454(client: RawClient, server: RtspServer) -> None:
    status, _, _ = await client.request("PLAY", base(server) + "/", {"Session": "deadbeef"})
    assert status == 454


async def test_unsupported_transport_is_461(client: RawClient, server: RtspServer) -> None:
    uri = f"{base(server)}/trackID=0"
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
    assert (await client.request("OPTIONS", base(server)))[0] == 200


async def test_keepalive_resets_session_timeout(start_server: StartServer) -> None:
    rtsp = await start_server(session_timeout=1.5)
    raw = await RawClient.connect(rtsp.port, BASIC)
    try:
        session = await setup_session(raw, rtsp)
        for _ in range(3):  # 3 s in all, twice the timeout: only the keepalives keep it
            await asyncio.sleep(1.0)
            status, _, _ = await raw.request("GET_PARAMETER", base(rtsp), {"Session": session})
            assert status == 200
        await asyncio.sleep(2.5)
        status, _, _ = await raw.request("GET_PARAMETER", base(rtsp), {"Session": session})
        assert status == 454
    finally:
        await raw.close()


async def test_play_sends_rtp_and_sender_reports(client: RawClient, server: RtspServer) -> None:
    session = await setup_session(client, server)
    await play(client, server, session)
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
    session = await setup_session(client, server)
    await play(client, server, session)
    status, _, _ = await client.request("TEARDOWN", base(server) + "/", {"Session": session})
    assert status == 200
    assert not server.sessions
    status, _, _ = await client.request("GET_PARAMETER", base(server), {"Session": session})
    assert status == 454
