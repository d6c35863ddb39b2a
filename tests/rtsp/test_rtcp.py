"""RTCP against hand-written bytes: what the server sends, what clients send back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import ProtocolError
from bridge.rtsp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_compound,
    serialize_compound,
)

SR = SenderReport(
    ssrc=0x01020304,
    ntp_seconds=0xE8FE6F80,
    ntp_fraction=0x80000000,
    rtp_timestamp=0x00015F90,
    packet_count=3,
    octet_count=0x1000,
)
SR_BYTES = bytes.fromhex(
    "80c80006"  # V=2, RC=0, PT=200, 6 words follow
    "01020304"
    "e8fe6f80"
    "80000000"  # NTP
    "00015f90"  # RTP timestamp
    "00000003"
    "00001000"  # packet and octet counts
)
SDES_BYTES = bytes.fromhex(
    "81ca0004"  # SC=1, PT=202, 4 words follow
    "01020304"
    "0106" + b"bridge".hex() + "00000000"  # CNAME "bridge", end null, pad to 32 bits
)
# A receiver report as VLC/ffmpeg send it: one block about our stream, then their SDES.
RR_BYTES = bytes.fromhex(
    "81c90007"  # RC=1, PT=201, 7 words
    "deadbeef"  # reporter
    "01020304"  # about our SSRC
    "10fffffe"  # 16/256 lost, cumulative -2
    "0001ffff"  # extended highest sequence
    "00000020"  # jitter
    "6f808000"  # LSR
    "00010000"  # DLSR: one second
    "81ca0002"
    "deadbeef"
    "0100"
    "0000"  # SDES with an empty CNAME
)
APP_BYTES = bytes.fromhex("80cc0002deadbeef" + b"name".hex())
XR_BYTES = bytes.fromhex("80cf0002deadbeef04000001")


def test_ntp_timestamp() -> None:
    assert ntp_timestamp(0.0) == (2_208_988_800, 0)
    assert ntp_timestamp(1_700_000_000.5) == (0xE8FE6F80, 0x80000000)
    assert ntp_timestamp(0.25) == (2_208_988_800, 0x40000000)
    # 2036-02-07T06:28:16Z starts NTP era 1: the seconds wrap to 0.
    assert ntp_timestamp(2_085_978_496.0) == (0, 0)
    assert ntp_timestamp(0.9999999999999999)[1] <= 0xFFFFFFFF


def test_sender_report_golden() -> None:
    assert SR.serialize() == SR_BYTES
    assert parse_compound(SR_BYTES) == [SR]


def test_sdes_cname_golden() -> None:
    sdes = SourceDescription.for_cname(0x01020304, "bridge")
    assert sdes.serialize() == SDES_BYTES
    [parsed] = parse_compound(SDES_BYTES)
    assert parsed == sdes
    assert isinstance(parsed, SourceDescription)
    assert parsed.chunks[0].cname == "bridge"


def test_bye_golden() -> None:
    assert Bye((0x01020304,)).serialize() == bytes.fromhex("81cb000101020304")
    with_reason = Bye((1, 2), "teardown")
    expected = bytes.fromhex("82cb0005000000010000000208") + b"teardown" + b"\0\0\0"
    assert with_reason.serialize() == expected
    assert parse_compound(expected) == [with_reason]


def test_client_receiver_report_with_sdes() -> None:
    rr, sdes = parse_compound(RR_BYTES)
    assert rr == ReceiverReport(
        0xDEADBEEF,
        (ReportBlock(0x01020304, 16, -2, 0x1FFFF, 32, 0x6F808000, 0x10000),),
    )
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks == (SdesChunk(0xDEADBEEF, ((1, ""),)),)
    assert isinstance(rr, ReceiverReport)
    assert rr.serialize() == RR_BYTES[:32]


def test_unknown_types_are_skipped() -> None:
    data = RR_BYTES[:32] + APP_BYTES + XR_BYTES + SDES_BYTES
    assert [type(p).__name__ for p in parse_compound(data)] == [
        "ReceiverReport",
        "SourceDescription",
    ]


def test_padding_on_the_last_packet() -> None:
    padded = bytes.fromhex("a0c90002deadbeef00000004")  # P=1, 4 bytes of padding
    assert parse_compound(padded) == [ReceiverReport(0xDEADBEEF)]


def test_compound_serialize() -> None:
    sdes = SourceDescription.for_cname(0x01020304, "bridge")
    assert serialize_compound([SR, sdes]) == SR_BYTES + SDES_BYTES
    assert parse_compound(SR_BYTES + SDES_BYTES) == [SR, sdes]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x80\xc9\x00", "header truncated"),
        (bytes.fromhex("40c9000100000000"), "version 1"),
        (bytes.fromhex("80c90002deadbeef"), "claims 8 bytes, 4 remain"),
        (bytes.fromhex("a0c90001deadbe00"), "padding of 0"),
        (bytes.fromhex("a0c90001deadbe09"), "padding of 9"),
        (bytes.fromhex("80c80001deadbeef"), "sender report"),
        (bytes.fromhex("81c90001deadbeef"), "receiver report"),
        (bytes.fromhex("81ca0001deadbeef"), "SDES item list"),
        (bytes.fromhex("81ca0002deadbeef01090000"), "SDES item"),
        (bytes.fromhex("82cb000100000001"), "BYE"),
        (bytes.fromhex("81cb00020000000105616263"), "BYE reason"),
    ],
)
def test_parse_errors(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_compound(data)


def test_serialize_errors() -> None:
    with pytest.raises(ValueError, match="24 signed bits"):
        ReportBlock(1, 0, 2**23, 0, 0, 0, 0).serialize()
    with pytest.raises(ValueError, match="cannot carry 32"):
        Bye(tuple(range(32))).serialize()
    with pytest.raises(ValueError, match="255"):
        Bye((1,), "x" * 256).serialize()
    with pytest.raises(ValueError, match="SDES item"):
        SdesChunk(1, ((1, "x" * 256),)).serialize()


_u32 = st.integers(0, 0xFFFFFFFF)
_blocks = st.builds(
    ReportBlock,
    _u32,
    st.integers(0, 255),
    st.integers(-(2**23), 2**23 - 1),
    _u32,
    _u32,
    _u32,
    _u32,
)
_block_lists = st.lists(_blocks, max_size=31).map(tuple)
_text = st.text(max_size=60).filter(lambda t: len(t.encode()) <= 255)
_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(SenderReport, _u32, _u32, _u32, _u32, _u32, _u32, _block_lists),
    st.builds(ReceiverReport, _u32, _block_lists),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                _u32,
                st.lists(st.tuples(st.integers(1, 8), _text), max_size=4).map(tuple),
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(Bye, st.lists(_u32, max_size=31).map(tuple), _text),
)


@given(st.lists(_packets, max_size=5))
def test_compound_round_trip(packets: list[RtcpPacket]) -> None:
    assert parse_compound(serialize_compound(packets)) == packets
