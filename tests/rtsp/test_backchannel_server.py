"""The ONVIF audio back channel on RtspServer, from a raw RTSP client on loopback: DESCRIBE
with the Require tag, SETUP over UDP and TCP interleaved, PLAY, RTP in; what reaches the
camera's speaker (here a line that keeps what it is sent), and what is refused."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from helpers import RawClient
from rtsp_rig import (
    BASIC,
    TCP_TRANSPORT,
    StartServer,
    base,
    setup_session,
    source_fixture,  # noqa: F401 (a fixture)
    start_server_fixture,  # noqa: F401 (a fixture)
)

from bridge.rtsp.backchannel import BACKCHANNEL
from bridge.rtsp.protocol import InterleavedFrame
from bridge.rtsp.rtp import Dropped, RtpPacket
from bridge.rtsp.sdp import SessionDescription
from bridge.rtsp.server import RtspServer
from bridge.talk import TalkCodec, TalkSink

REQUIRE = {"Require": BACKCHANNEL}
TALK_TRACK = 2  # after the synthetic source's video and audio
TALK_TCP = {"Transport": "RTP/AVP/TCP;unicast;interleaved=4-5", **REQUIRE}
PACKET = 160


@dataclass(eq=False)
class Speaker:
    """A camera's speaker as the RTSP layer sees it: what each claim was sent, in order."""

    holder: Sink | None = None
    claims: int = 0
    played: asyncio.Queue[tuple[TalkCodec, bytes]] = field(default_factory=asyncio.Queue)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def claim(self) -> TalkSink | None:
        if self.holder is not None:
            return None
        self.claims += 1
        self.released.clear()
        self.holder = Sink(self)
        return self.holder

    async def next(self) -> tuple[TalkCodec, bytes]:
        async with asyncio.timeout(5):
            return await self.played.get()


@dataclass(eq=False)
class Sink:
    speaker: Speaker

    def send(self, codec: TalkCodec, payload: bytes) -> None:
        assert self.speaker.holder is self, "sent after its close"
        self.speaker.played.put_nowait((codec, payload))

    def close(self) -> None:
        self.speaker.holder = None
        self.speaker.released.set()


def rtp(sequence: int, payload: bytes = b"\xff" * PACKET, pt: int = 0) -> bytes:
    return RtpPacket(pt, sequence, sequence * PACKET, 0xABCD, payload=payload).serialize()


@pytest.fixture
def speaker() -> Speaker:
    return Speaker()


@pytest.fixture
async def talk_server(start_server: StartServer, speaker: Speaker) -> RtspServer:
    return await start_server(talk=lambda path: speaker if path == "cam/main" else None)


@pytest.fixture
async def client(talk_server: RtspServer) -> AsyncIterator[RawClient]:
    raw = await RawClient.connect(talk_server.port, BASIC)
    yield raw
    await raw.close()


def talk_uri(server: RtspServer) -> str:
    return f"{base(server)}/trackID={TALK_TRACK}"


async def setup_talk(client: RawClient, server: RtspServer, session: str | None = None) -> str:
    headers = TALK_TCP | ({"Session": session} if session else {})
    status, answer, _ = await client.request("SETUP", talk_uri(server), headers)
    assert status == 200
    assert answer["Transport"] == "RTP/AVP/TCP;unicast;interleaved=4-5"
    return answer["Session"].partition(";")[0]


async def play(client: RawClient, server: RtspServer, session: str) -> dict[str, str]:
    status, headers, _ = await client.request(
        "PLAY", base(server) + "/", {"Session": session, **REQUIRE}
    )
    assert status == 200
    return dict(headers)


def send_interleaved(client: RawClient, *packets: bytes, channel: int = 4) -> None:
    client.writer.write(b"".join(InterleavedFrame(channel, p).serialize() for p in packets))


async def test_describe_with_require_adds_a_sendonly_section(
    client: RawClient, talk_server: RtspServer
) -> None:
    status, _, body = await client.request("DESCRIBE", base(talk_server), REQUIRE)
    assert status == 200
    video, audio, talk = SessionDescription.parse(body.decode()).media
    for sent in (video, audio):
        assert ("recvonly", None) in sent.attributes
    assert talk.media == "audio"
    assert talk.formats == (0, 8)
    assert (talk.rtpmap(0), talk.rtpmap(8)) == ("PCMU/8000", "PCMA/8000")
    assert talk.control == f"trackID={TALK_TRACK}"
    assert ("sendonly", None) in talk.attributes


async def test_without_require_the_sdp_is_as_without_a_speaker(
    client: RawClient, talk_server: RtspServer, start_server: StartServer
) -> None:
    plain = await start_server()
    other = await RawClient.connect(plain.port, BASIC)
    try:
        _, _, without_speaker = await other.request("DESCRIBE", base(plain))
    finally:
        await other.close()
    _, _, with_speaker = await client.request("DESCRIBE", base(talk_server))
    expected = SessionDescription.parse(without_speaker.decode())
    assert SessionDescription.parse(with_speaker.decode()).media == expected.media
    assert len(expected.media) == 2
    assert b"sendonly" not in with_speaker
    assert b"recvonly" not in with_speaker


async def test_a_camera_without_a_speaker_answers_551(start_server: StartServer) -> None:
    server = await start_server()  # no speaker anywhere
    raw = await RawClient.connect(server.port, BASIC)
    try:
        status, headers, body = await raw.request("DESCRIBE", base(server), REQUIRE)
        assert (status, headers["Unsupported"], body) == (551, BACKCHANNEL, b"")
        status, _, _ = await raw.request("SETUP", talk_uri(server), TALK_TCP)
        assert status == 404
    finally:
        await raw.close()


async def test_an_unknown_required_option_answers_551(
    client: RawClient, talk_server: RtspServer
) -> None:
    headers = {"Require": f"{BACKCHANNEL}, com.example.teleport"}
    status, answer, _ = await client.request("DESCRIBE", base(talk_server), headers)
    assert (status, answer["Unsupported"]) == (551, "com.example.teleport")


async def test_a_user_who_may_not_operate_cannot_talk(
    start_server: StartServer, speaker: Speaker
) -> None:
    server = await start_server(talk=lambda path: speaker, may_talk=lambda user: False)
    raw = await RawClient.connect(server.port, BASIC)
    try:
        status, headers, _ = await raw.request("DESCRIBE", base(server), REQUIRE)
        assert (status, headers["Unsupported"]) == (551, BACKCHANNEL)
        status, _, _ = await raw.request("SETUP", talk_uri(server), TALK_TCP)
        assert status == 403
        assert (await raw.request("DESCRIBE", base(server)))[0] == 200  # viewing is fine
    finally:
        await raw.close()
    assert speaker.claims == 0
    assert not server.sessions


async def test_talking_over_tcp_interleaved(
    client: RawClient, talk_server: RtspServer, speaker: Speaker
) -> None:
    session = await setup_talk(client, talk_server)
    send_interleaved(client, rtp(1))  # before PLAY: the client must wait, so it is dropped
    headers = await play(client, talk_server, session)
    assert "RTP-Info" not in headers  # nothing is sent to a session that only talks
    garbage = [
        b"",
        b"\x00" * 40,  # RTP version 0
        rtp(3, pt=96),  # not offered
        rtp(4, payload=b""),
        b"\x80",
    ]
    send_interleaved(client, rtp(2, b"\x01" * PACKET), *garbage, rtp(3, b"\x02" * PACKET, pt=8))
    send_interleaved(client, rtp(3, b"\x03" * PACKET))  # a repeat
    send_interleaved(client, rtp(4, b"\x04" * PACKET))
    assert await speaker.next() == (TalkCodec.PCMU, b"\x01" * PACKET)
    assert await speaker.next() == (TalkCodec.PCMA, b"\x02" * PACKET)
    assert await speaker.next() == (TalkCodec.PCMU, b"\x04" * PACKET)
    talk = talk_server.sessions[session].backchannel
    assert talk is not None
    assert talk.receiver.dropped == {
        Dropped.MALFORMED: 3,
        Dropped.PAYLOAD_TYPE: 1,
        Dropped.EMPTY: 1,
        Dropped.LATE: 1,
    }
    status, _, _ = await client.request(
        "TEARDOWN", base(talk_server) + "/", {"Session": session, **REQUIRE}
    )
    assert status == 200
    assert speaker.holder is None
    assert speaker.played.empty()


async def test_talking_over_udp(
    client: RawClient, talk_server: RtspServer, speaker: Speaker
) -> None:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    port = sender.getsockname()[1]
    try:
        transport = {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}", **REQUIRE}
        status, answer, _ = await client.request("SETUP", talk_uri(talk_server), transport)
        assert status == 200
        spec = answer["Transport"]
        assert spec.startswith(f"RTP/AVP;unicast;client_port={port}-{port + 1};server_port=")
        assert "ssrc=" not in spec  # the client's stream: it picks the SSRC
        server_rtp = int(spec.rpartition("server_port=")[2].split("-")[0])
        session = answer["Session"].partition(";")[0]
        await play(client, talk_server, session)
        for sequence in range(5):
            sender.sendto(rtp(sequence, bytes([sequence]) * PACKET), ("127.0.0.1", server_rtp))
        played = [await speaker.next() for _ in range(5)]
        assert played == [(TalkCodec.PCMU, bytes([s]) * PACKET) for s in range(5)]
    finally:
        sender.close()


async def test_a_second_talker_gets_453_until_the_first_leaves(
    client: RawClient, talk_server: RtspServer, speaker: Speaker
) -> None:
    first = await setup_talk(client, talk_server)
    await play(client, talk_server, first)
    second = await RawClient.connect(talk_server.port, BASIC)
    try:
        status, _, _ = await second.request("SETUP", talk_uri(talk_server), TALK_TCP)
        assert status == 453
        assert len(talk_server.sessions) == 1  # the refused SETUP left no session behind
        viewer = await setup_session(second, talk_server)  # viewing is not talking
        await client.close()  # the first talker's connection carried its session
        async with asyncio.timeout(5):
            await speaker.released.wait()
        await setup_talk(second, talk_server, viewer)
    finally:
        await second.close()
    assert speaker.claims == 2


async def test_watching_and_talking_in_one_session(
    client: RawClient, talk_server: RtspServer, speaker: Speaker
) -> None:
    session = await setup_session(client, talk_server, TCP_TRANSPORT)
    await setup_talk(client, talk_server, session)
    headers = await play(client, talk_server, session)
    assert headers["RTP-Info"].startswith(f"url={base(talk_server)}/trackID=0;")
    assert "," not in headers["RTP-Info"]  # only the video track was set up to be sent
    send_interleaved(client, rtp(7))
    assert await speaker.next() == (TalkCodec.PCMU, b"\xff" * PACKET)
    async with asyncio.timeout(5):
        while (await client.frame())[0] != 0:  # the video keeps coming
            pass
