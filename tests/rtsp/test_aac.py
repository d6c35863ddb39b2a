"""RFC 3640 AAC-hbr payloads, byte for byte."""

from __future__ import annotations

import pytest

from bridge.rtsp.aac import MAX_ACCESS_UNIT, depacketize, packetize


def test_one_access_unit_gets_one_sixteen_bit_header() -> None:
    frame = bytes(range(200))
    payload = packetize(frame)
    # 16 bits of AU headers; AU-size 200 << 3 = 0x0640, index 0.
    assert payload[:4] == b"\x00\x10\x06\x40"
    assert payload[4:] == frame
    assert depacketize(payload) == [frame]


def test_two_access_units_read_back_in_order() -> None:
    payload = b"\x00\x20" + (3 << 3).to_bytes(2, "big") + (2 << 3).to_bytes(2, "big") + b"abcde"
    assert depacketize(payload) == [b"abc", b"de"]


@pytest.mark.parametrize("frame", [b"", bytes(MAX_ACCESS_UNIT + 1)])
def test_empty_or_oversized_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(ValueError, match="AAC access unit"):
        packetize(frame)


@pytest.mark.parametrize("payload", [b"\x00", b"\x00\x0f", b"\x00\x10\x00", b"\x00\x10\x00\x50abc"])
def test_malformed_payloads_raise(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"AU|AAC"):
        depacketize(payload)
