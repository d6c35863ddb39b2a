"""H.264 RTP payloads (RFC 6184 mode 1) and SPS parsing, on hand-made and x264-made bytes."""

from __future__ import annotations

import base64
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codecs.h264 import (
    NAL_IDR,
    NAL_PPS,
    NAL_SEI,
    NAL_SLICE,
    NAL_SPS,
    SpsInfo,
    is_idr,
    nal_type,
    parse_sps,
    split_annexb,
)
from bridge.errors import MessageTooLarge, ProtocolError
from bridge.rtsp.h264 import H264Depacketizer, packetize, profile_level_id, sprop_parameter_sets

WIDTH, HEIGHT, FRAMES = 320, 240, 5


def depacketize(payloads: list[bytes]) -> list[bytes]:
    depacketizer = H264Depacketizer()
    return [nal for payload in payloads for nal in depacketizer.feed(payload)]


@pytest.fixture(scope="module")
def x264_access_units() -> list[bytes]:
    """Noise frames from libx264, as the gateway's transcoder will configure it."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.gop_size = 3
    codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
    rng = np.random.default_rng(1)
    units = []
    for index in range(FRAMES):
        image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        units += [bytes(packet) for packet in codec.encode(frame)]
    units += [bytes(packet) for packet in codec.encode(None)]
    return units


def test_x264_access_units_round_trip(x264_access_units: list[bytes]) -> None:
    assert len(x264_access_units) == FRAMES
    first = split_annexb(x264_access_units[0])
    kinds = [nal_type(nal) for nal in first]
    assert kinds[:2] == [NAL_SPS, NAL_PPS]
    assert NAL_SEI in kinds
    assert kinds.count(NAL_IDR) >= 2  # zerolatency: sliced threads, several slices a frame
    assert any(is_idr(nal) for nal in split_annexb(x264_access_units[3]))  # gop 3
    assert parse_sps(first[0]) == SpsInfo(66, 0xC0, 13, WIDTH, HEIGHT)
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for access_unit in x264_access_units:
        nal_units = split_annexb(access_unit)
        for stap_a in (False, True):
            payloads = packetize(nal_units, stap_a=stap_a)
            assert max(len(payload) for payload in payloads) <= 1400
            assert depacketize(payloads) == nal_units
        annexb = b"".join(b"\x00\x00\x00\x01" + nal for nal in depacketize(payloads))
        decoded += decoder.decode(av.Packet(annexb))
    decoded += decoder.decode(None)
    assert [(f.width, f.height) for f in decoded] == [(WIDTH, HEIGHT)] * FRAMES


def test_single_nal_unit_packets_pass_through() -> None:
    units = [b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80", b"\x65" + b"x" * 1399]
    assert packetize(units) == units


def test_fu_a_golden() -> None:
    nal = b"\x65ABCDEFG"  # IDR, NRI 3
    assert packetize([nal], max_payload=5) == [
        b"\x7c\x85ABC",  # FU indicator NRI 3 type 28; S=1, type 5
        b"\x7c\x05DEF",
        b"\x7c\x45G",  # E=1
    ]
    assert packetize([b"\x41ABCDEF"], max_payload=5) == [b"\x5c\x81ABC", b"\x5c\x41DEF"]
    assert depacketize(packetize([nal], max_payload=5)) == [nal]


def test_stap_a_golden() -> None:
    sps, pps, sei, idr = b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80", b"\x06\x05\x01", b"\x65" * 20
    assert packetize([sps, pps, idr], stap_a=True) == [
        b"\x78\x00\x04" + sps + b"\x00\x04" + pps + b"\x00\x14" + idr
    ]
    # NRI is the maximum of the units'; a unit too big to share a packet ends the run.
    assert packetize([sei, pps, idr], max_payload=14, stap_a=True) == [
        b"\x78\x00\x03" + sei + b"\x00\x04" + pps,
        b"\x7c\x85" + b"\x65" * 12,
        b"\x7c\x45" + b"\x65" * 7,
    ]
    # A full STAP-A is flushed (here, one unit: sent alone) and a new one begun.
    assert packetize([sps, pps, sei], max_payload=12, stap_a=True) == [
        sps,
        b"\x78\x00\x04" + pps + b"\x00\x03" + sei,
    ]
    # A lone small unit is not wrapped.
    assert packetize([sps], stap_a=True) == [sps]
    assert depacketize(packetize([sei, sps, pps, idr], max_payload=30, stap_a=True)) == [
        sei,
        sps,
        pps,
        idr,
    ]


def test_packetize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_payload"):
        packetize([b"\x65"], max_payload=2)
    with pytest.raises(ValueError, match="empty"):
        packetize([b""])


@pytest.mark.parametrize(
    ("payloads", "match"),
    [
        ([b""], "empty"),
        ([b"\x7c\x05DEF"], "out of order"),  # middle without a start
        ([b"\x7c\x45G"], "out of order"),  # end without a start
        ([b"\x7c\x85ABC", b"\x7c\x85ABC"], "out of order"),  # a second start
        ([b"\x7c\xc5ABC"], "out of order"),  # start and end at once
        ([b"\x7c\x85ABC", b"\x41x"], "interrupted"),
        ([b"\x7c\x85"], "truncated"),
        ([b"\x78\x00\x05\x67\x42"], "does not fit"),
        ([b"\x78\x00\x00"], "does not fit"),
        ([b"\x78\x00"], "unit size"),
        ([b"\x78"], "without units"),
        ([b"\x79\x00\x01\x67"], "type 25"),  # STAP-B: interleaved mode only
        ([b"\x7d\x85\x00\x01A"], "type 29"),  # FU-B
        ([b"\x60"], "type 0"),
    ],
)
def test_depacketizer_errors(payloads: list[bytes], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        depacketize(payloads)


def test_depacketizer_recovers_after_loss_and_caps_units() -> None:
    depacketizer = H264Depacketizer(max_nal_size=8)
    depacketizer.feed(b"\x7c\x85ABC")
    with pytest.raises(ProtocolError):
        depacketizer.feed(b"\x41x")  # the end fragment was lost
    assert depacketizer.feed(b"\x41y") == [b"\x41y"]
    depacketizer.feed(b"\x7c\x85ABCD")
    with pytest.raises(MessageTooLarge, match="8 bytes"):
        depacketizer.feed(b"\x7c\x05EFGH")
    assert depacketizer.feed(b"\x7c\x85AB") == []
    assert depacketizer.feed(b"\x7c\x45C") == [b"\x65ABC"]


_nal_units = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 23), st.binary(max_size=4000)).map(
        lambda t: bytes(((t[0] << 5) | t[1],)) + t[2]
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(nal_units=_nal_units, max_payload=st.integers(3, 1500), stap_a=st.booleans())
def test_packetize_depacketize_round_trip(
    nal_units: list[bytes], max_payload: int, stap_a: bool
) -> None:
    payloads = packetize(nal_units, max_payload, stap_a=stap_a)
    assert all(len(payload) <= max_payload for payload in payloads)
    assert depacketize(payloads) == nal_units


# -- SPS -----------------------------------------------------------------------------------


def test_sdp_parameter_helpers() -> None:
    sps = base64.b64decode("Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==")
    pps = base64.b64decode("aM4PyA==")
    assert profile_level_id(sps) == "42c00d"
    assert sprop_parameter_sets(sps, pps) == "Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==,aM4PyA=="
    with pytest.raises(ProtocolError, match="picture parameter set"):
        sprop_parameter_sets(sps, sps)
    assert profile_level_id(b"\x67\x64\x00\x28") == "640028"  # High, level 4.0
    with pytest.raises(ProtocolError, match="sequence parameter set"):
        profile_level_id(b"\x67\x42")
    assert nal_type(b"\x41") == NAL_SLICE
    assert not is_idr(b"\x41")
