"""RTP packets against hand-written bytes, and the sequencer's wraps and counters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import ProtocolError
from bridge.rtsp.rtcp import SenderReport
from bridge.rtsp.rtp import RtpExtension, RtpPacket, RtpSequencer

# V=2, M=1 PT=96, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304
GOLDEN_HEADER = bytes.fromhex("80e01234deadbeef01020304")


def test_golden_header() -> None:
    packet = RtpPacket(96, 0x1234, 0xDEADBEEF, 0x01020304, marker=True, payload=b"ab")
    assert packet.serialize() == GOLDEN_HEADER + b"ab"
    assert RtpPacket.parse(GOLDEN_HEADER + b"ab") == packet


def test_golden_csrc_and_extension() -> None:
    packet = RtpPacket(
        0,
        1,
        2,
        3,
        payload=b"\xff",
        csrc=(0xAABBCCDD, 5),
        extension=RtpExtension(0xBEDE, b"\x10\x01\x00\x00"),
    )
    expected = (
        bytes.fromhex("920000010000000200000003")  # V=2 X=1 CC=2
        + bytes.fromhex("aabbccdd00000005")
        + bytes.fromhex("bede000110010000")
        + b"\xff"
    )
    assert packet.serialize() == expected
    assert RtpPacket.parse(expected) == packet


def test_padding_is_stripped() -> None:
    padded = bytes.fromhex("a06000010000000200000003") + b"data" + b"\x00\x00\x03"
    packet = RtpPacket.parse(padded)
    assert packet.payload == b"data"
    assert (packet.payload_type, packet.sequence_number, packet.marker) == (96, 1, False)
    # Padding may take the whole payload.
    assert RtpPacket.parse(bytes.fromhex("a0600001000000020000000301")).payload == b""


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter than its header"),
        (GOLDEN_HEADER[:11], "shorter than its header"),
        (b"\x40" + GOLDEN_HEADER[1:], "version 1 is not 2"),
        (b"\x00" + GOLDEN_HEADER[1:], "version 0 is not 2"),
        (b"\x82" + GOLDEN_HEADER[1:] + b"\x00\x00\x00\x01", "2 CSRCs"),
        (b"\x90" + GOLDEN_HEADER[1:] + b"\xbe\xde", "header extension"),
        (b"\x90" + GOLDEN_HEADER[1:] + b"\xbe\xde\x00\x02" + b"\x00" * 4, "header extension"),
        (b"\xa0" + GOLDEN_HEADER[1:] + b"ab\x00", "padding of 0"),
        (b"\xa0" + GOLDEN_HEADER[1:] + b"ab\x04", "padding of 4"),
    ],
)
def test_parse_errors(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        RtpPacket.parse(data)


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match="payload type"):
        RtpPacket(128, 0, 0, 0)
    with pytest.raises(ValueError, match="CSRC"):
        RtpPacket(0, 0, 0, 0, csrc=tuple(range(16)))
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(0, 0, 0, 0, extension=RtpExtension(1, b"abc"))
    with pytest.raises(ValueError, match="payload type"):
        RtpSequencer(1, -1, 8000)


_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFFFFFF)


@given(
    packet=st.builds(
        RtpPacket,
        payload_type=st.integers(0, 127),
        sequence_number=_u16,
        timestamp=_u32,
        ssrc=_u32,
        marker=st.booleans(),
        payload=st.binary(max_size=64),
        csrc=st.lists(_u32, max_size=15).map(tuple),
        extension=st.none()
        | st.builds(RtpExtension, _u16, st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])),
    )
)
def test_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.serialize()) == packet


def test_sequencer_wraps_sequence_and_timestamp() -> None:
    seq = RtpSequencer(
        0xCAFE, 96, 90000, initial_sequence=0xFFFE, initial_timestamp=0xFFFFFFFF - 1799
    )
    first = seq.frame([b"a", b"bb", b"ccc"], 0.0)
    second = seq.frame([b"dddd"], 0.04)  # one frame at 25 fps: 3600 ticks later
    packets = [RtpPacket.parse(p) for p in first + second]
    assert [p.sequence_number for p in packets] == [0xFFFE, 0xFFFF, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFF8F8] * 3 + [(0xFFFFF8F8 + 3600) % 2**32]
    assert [p.marker for p in packets] == [False, False, True, True]
    assert [p.payload for p in packets] == [b"a", b"bb", b"ccc", b"dddd"]
    assert {(p.ssrc, p.payload_type) for p in packets} == {(0xCAFE, 96)}
    assert (seq.packet_count, seq.octet_count) == (4, 10)
    assert seq.sequence_number == 2
    assert first[0] == bytes.fromhex("8060fffefffff8f80000cafe") + b"a"


def test_sequencer_single_packets_and_empty_frames() -> None:
    seq = RtpSequencer(7, 0, 8000, initial_sequence=10, initial_timestamp=100)
    assert seq.frame([], 1.0) == []
    talk = RtpPacket.parse(seq.packet(b"\x7f" * 160, 0.02, marker=True))
    more = RtpPacket.parse(seq.packet(b"\x7f" * 160, 0.04))
    assert (talk.sequence_number, talk.timestamp, talk.marker) == (10, 260, True)
    assert (more.sequence_number, more.timestamp, more.marker) == (11, 420, False)
    assert (seq.packet_count, seq.octet_count) == (2, 320)


def test_sender_report_from_sequencer() -> None:
    seq = RtpSequencer(0x01020304, 96, 90000, initial_timestamp=1000)
    seq.frame([b"x" * 100, b"y" * 50], 0.0)
    report = seq.sender_report(1_700_000_000.5, 2.0)
    assert report == SenderReport(
        ssrc=0x01020304,
        ntp_seconds=0xE8FE6F80,
        ntp_fraction=0x80000000,
        rtp_timestamp=1000 + 180000,
        packet_count=2,
        octet_count=150,
    )
