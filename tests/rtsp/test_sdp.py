"""SDP for DESCRIBE: exact text for our tracks, and reading FFmpeg's SDP back."""

from __future__ import annotations

import base64

import pytest

from bridge.codecs.h264 import parse_sps
from bridge.errors import ProtocolError
from bridge.rtsp.h264 import profile_level_id
from bridge.rtsp.sdp import (
    MediaDescription,
    SessionDescription,
    aac_media,
    h264_media,
    jpeg_media,
    pcmu_media,
)

SPS = base64.b64decode("Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==")  # x264 baseline 320x240
PPS = base64.b64decode("aM4PyA==")

# Written by `ffmpeg ... -f rtp rtp://127.0.0.1:9 ... -f rtp rtp://127.0.0.1:11 -sdp_file`
# (FFmpeg 5.1): per-media c= lines, "; " between format parameters, upper-case hex.
FFMPEG_H264_PCMU = (
    "v=0\r\n"
    "o=- 0 0 IN IP4 127.0.0.1\r\n"
    "s=No Name\r\n"
    "t=0 0\r\n"
    "a=tool:libavformat LIBAVFORMAT_VERSION\r\n"
    "m=video 9 RTP/AVP 96\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1; "
    "sprop-parameter-sets=Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==,aM4PyA==; profile-level-id=42C00D\r\n"
    "m=audio 11 RTP/AVP 0\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "b=AS:64\r\n"
)
FFMPEG_AAC_IPV6 = (
    "v=0\n"
    "o=- 0 0 IN IP6 ::1\n"
    "s=No Name\n"
    "c=IN IP6 ::1\n"
    "t=0 0\n"
    "a=tool:libavformat LIBAVFORMAT_VERSION\n"
    "m=audio 9 RTP/AVP 97\n"
    "b=AS:128\n"
    "a=rtpmap:97 MPEG4-GENERIC/48000/2\n"
    "a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
    "indexdeltalength=3; config=119056E500\n"
)


def test_h264_and_pcmu_golden() -> None:
    session = SessionDescription(
        media=(h264_media(SPS, PPS, framerate=25), pcmu_media()),
        host="192.0.2.10",
        session_id=1234567890,
        session_version=1,
        name="Front door",
    )
    assert session.serialize() == (
        "v=0\r\n"
        "o=- 1234567890 1 IN IP4 192.0.2.10\r\n"
        "s=Front door\r\n"
        "c=IN IP4 0.0.0.0\r\n"
        "t=0 0\r\n"
        "a=control:*\r\n"
        "a=range:npt=now-\r\n"
        "m=video 0 RTP/AVP 96\r\n"
        "a=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;profile-level-id=42c00d;"
        "sprop-parameter-sets=Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==,aM4PyA==\r\n"
        "a=framerate:25\r\n"
        "a=x-dimensions:320,240\r\n"
        "a=control:trackID=0\r\n"
        "m=audio 0 RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=control:trackID=1\r\n"
    )
    assert SessionDescription.parse(session.serialize()) == session


def test_aac_and_jpeg_media_golden() -> None:
    aac = aac_media(48000, 2, bytes.fromhex("1190"))
    assert aac.lines() == [
        "m=audio 0 RTP/AVP 97",
        "a=rtpmap:97 MPEG4-GENERIC/48000/2",
        "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;"
        "indexlength=3;indexdeltalength=3;config=1190",
        "a=control:trackID=1",
    ]
    assert jpeg_media(framerate=12.5).lines() == [
        "m=video 0 RTP/AVP 26",
        "a=rtpmap:26 JPEG/90000",
        "a=framerate:12.5",
        "a=control:trackID=0",
    ]
    assert jpeg_media(control="trackID=5").control == "trackID=5"


@pytest.mark.parametrize(
    ("host", "origin", "connection"),
    [
        ("[2001:db8::1]", "IN IP6 2001:db8::1", "IN IP6 ::"),
        ("fe80::1", "IN IP6 fe80::1", "IN IP6 ::"),
        ("cam.example", "IN IP4 cam.example", "IN IP4 0.0.0.0"),
    ],
)
def test_address_types(host: str, origin: str, connection: str) -> None:
    text = SessionDescription((jpeg_media(),), host=host).serialize()
    assert f"o=- 0 0 {origin}\r\n" in text
    assert f"c={connection}\r\n" in text


def test_parse_ffmpeg_h264_and_pcmu() -> None:
    session = SessionDescription.parse(FFMPEG_H264_PCMU)
    assert (session.host, session.name, session.connection) == ("127.0.0.1", "No Name", None)
    assert session.attribute("tool") == "libavformat LIBAVFORMAT_VERSION"
    video, audio = session.media
    assert (video.media, video.port, video.protocol, video.formats) == (
        "video",
        9,
        "RTP/AVP",
        (96,),
    )
    assert video.rtpmap(96) == "H264/90000"
    fmtp = video.fmtp(96)
    sps_b64, pps_b64 = fmtp["sprop-parameter-sets"].split(",")
    sps = base64.b64decode(sps_b64)
    assert fmtp["profile-level-id"].lower() == profile_level_id(sps)
    assert parse_sps(sps)[3:] == (320, 240)
    assert base64.b64decode(pps_b64) == PPS
    assert (audio.formats, audio.rtpmap(0), audio.fmtp(0), audio.control) == ((0,), None, {}, None)


def test_parse_ffmpeg_aac_over_ipv6_with_lf_lines() -> None:
    session = SessionDescription.parse(FFMPEG_AAC_IPV6)
    assert (session.host, session.connection) == ("::1", "::1")
    [audio] = session.media
    assert audio.rtpmap(97) == "MPEG4-GENERIC/48000/2"
    assert audio.fmtp(97)["config"] == "119056E500"
    assert audio.fmtp(97)["sizelength"] == "13"
    assert audio.rtpmap(96) is None


def test_our_aac_session_parses_back() -> None:
    session = SessionDescription(
        (h264_media(SPS, PPS), aac_media(16000, 1, b"\x14\x08")), host="::1", session_version=7
    )
    parsed = SessionDescription.parse(session.serialize())
    assert parsed == session
    assert parsed.media[1].fmtp(97)["mode"] == "AAC-hbr"
    assert parsed.attribute("control") == "*"


def test_flag_attributes_and_unknown_lines() -> None:
    text = "v=0\no=- 1 2 IN IP4 h\ns=x\ni=info\nm=video 0 RTP/AVP 26\na=recvonly\nb=AS:1\n"
    [media] = SessionDescription.parse(text).media
    assert media == MediaDescription("video", (26,), (("recvonly", None),))
    assert media.lines()[1] == "a=recvonly"


def test_serialize_refuses_line_injection() -> None:
    session = SessionDescription((pcmu_media(),), host="h", name="cam\r\na=evil")
    with pytest.raises(ValueError, match="line break"):
        session.serialize()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("v=0\ns=x\n", "o= line"),
        ("v=0\no=- x 0 IN IP4 h\n", "origin"),
        ("v=0\nthis is not sdp\n", "malformed SDP line"),
        ("v=0\no=- 0 0 IN IP4 h\nm=video RTP/AVP 96\n", "media line"),
        ("v=0\no=- 0 0 IN IP4 h\nm=video 0 RTP/AVP 200\n", "payload type"),
        ("v=0\no=- 0 0 IN IP4 h\nm=video 0 RTP/AVP x\n", "payload type"),
    ],
)
def test_parse_errors(text: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        SessionDescription.parse(text)
