"""The back channel's RTP receive core on bytes: what it lets through, what it drops and why,
and that no input makes it raise."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtsp.rtp import (
    MAX_DROPOUT,
    MAX_RECEIVED_PACKET,
    Dropped,
    Received,
    RtpPacket,
    RtpReceiver,
)

PCMU, PCMA = 0, 8
SSRC = 0x11223344
AUDIO = bytes(range(160))


def packet(sequence: int, timestamp: int, *, pt: int = PCMU, ssrc: int = SSRC) -> bytes:
    return RtpPacket(pt, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc, payload=AUDIO).serialize()


def receiver() -> RtpReceiver:
    return RtpReceiver((PCMU, PCMA))


def test_a_stream_in_order_passes_with_its_payloads() -> None:
    rtp = receiver()
    got = [rtp.receive(packet(seq, 160 * seq, pt=PCMA if seq % 2 else PCMU)) for seq in range(5)]
    assert got == [Received(PCMA if seq % 2 else PCMU, AUDIO, 160 * seq, 0) for seq in range(5)]
    assert rtp.accepted == 5
    assert not rtp.dropped


def test_golden_bytes() -> None:
    # V=2, PT 8, seq 0x0102, ts 0x0A0B0C0D, SSRC 0xCAFEBABE, two payload bytes.
    data = bytes.fromhex("800801020a0b0c0dcafebabed5d5")
    assert receiver().receive(data) == Received(PCMA, b"\xd5\xd5", 0x0A0B0C0D, 0)


def test_loss_is_reported_and_the_sequence_wraps() -> None:
    rtp = receiver()
    assert rtp.receive(packet(0xFFFE, 0)) is not None
    got = rtp.receive(packet(0x0002, 4 * 160))  # 0xFFFF, 0x0000, 0x0001 lost
    assert got is not None
    assert got.lost == 3


def test_repeated_and_late_packets_are_dropped() -> None:
    rtp = receiver()
    for seq in (10, 11, 12):
        assert rtp.receive(packet(seq, 160 * seq)) is not None
    assert rtp.receive(packet(12, 160 * 12)) is None
    assert rtp.receive(packet(11, 160 * 11)) is None
    assert rtp.dropped == {Dropped.LATE: 2}
    assert rtp.receive(packet(13, 160 * 13)) is not None


def test_what_is_not_offered_or_not_rtp_is_dropped() -> None:
    rtp = receiver()
    assert rtp.receive(packet(1, 0, pt=96)) is None  # not in the SDP
    assert rtp.receive(b"\x40" + packet(2, 0)[1:]) is None  # version 1
    assert rtp.receive(packet(3, 0)[:11]) is None  # shorter than the header
    assert rtp.receive(packet(4, 0)[:12]) is None  # no payload
    assert rtp.receive(packet(5, 0) + bytes(MAX_RECEIVED_PACKET)) is None
    assert rtp.dropped == {
        Dropped.PAYLOAD_TYPE: 1,
        Dropped.MALFORMED: 2,
        Dropped.EMPTY: 1,
        Dropped.TOO_LARGE: 1,
    }
    assert rtp.accepted == 0


def test_a_timestamp_running_back_is_dropped() -> None:
    rtp = receiver()
    assert rtp.receive(packet(1, 8000)) is not None
    assert rtp.receive(packet(2, 7840)) is None
    assert rtp.dropped == {Dropped.TIMESTAMP: 1}
    assert rtp.receive(packet(3, 8320)) is not None  # silence suppressed: a jump forward is fine


def test_another_ssrc_takes_over_only_when_it_continues() -> None:
    rtp = receiver()
    assert rtp.receive(packet(1, 0)) is not None
    assert rtp.receive(packet(500, 0, ssrc=7)) is None  # a stray packet does not switch
    assert rtp.receive(packet(2, 160)) is not None
    assert rtp.receive(packet(900, 0, ssrc=7)) is None
    assert rtp.receive(packet(901, 160, ssrc=7)) is not None  # the restarted stream
    assert rtp.receive(packet(3, 320)) is None  # the old one is over
    assert rtp.dropped == {Dropped.UNSYNCED: 3}


def test_a_sequence_jump_resynchronizes_on_the_packet_after_it() -> None:
    rtp = receiver()
    assert rtp.receive(packet(1, 0)) is not None
    jump = 1 + MAX_DROPOUT + 10
    assert rtp.receive(packet(jump, 160)) is None
    got = rtp.receive(packet(jump + 1, 320))
    assert got is not None
    assert got.lost == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_garbage_never_raises_and_every_packet_is_counted(datagrams: list[bytes]) -> None:
    rtp = receiver()
    passed = sum(rtp.receive(data) is not None for data in datagrams)
    assert passed == rtp.accepted
    assert rtp.accepted + rtp.dropped.total() == len(datagrams)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 0xFFFF),
    st.permutations(list(range(40))),
    st.lists(st.integers(0, 39), max_size=10),
)
def test_what_passes_is_in_order_however_packets_come(
    start: int, order: list[int], repeats: list[int]
) -> None:
    """Reordered and repeated packets: the ones let through are strictly increasing, and
    their reported losses add up to the gaps between them."""
    rtp = receiver()
    passed: list[tuple[int, int]] = []
    for index in [*order, *repeats]:
        got = rtp.receive(packet(start + index, 160 * index))
        if got is not None:
            passed.append((index, got.lost))
    indexes = [index for index, _ in passed]
    assert indexes == sorted(set(indexes))
    assert sum(lost for _, lost in passed[1:]) == indexes[-1] - indexes[0] - (len(indexes) - 1)


def test_padding_is_removed_from_the_payload() -> None:
    header = struct.pack("!BBHII", 0xA0, PCMU, 1, 0, SSRC)  # P=1
    got = receiver().receive(header + b"\x01\x02" + b"\x00\x03")  # 3 bytes of padding
    assert got is not None
    assert got.payload == b"\x01"
