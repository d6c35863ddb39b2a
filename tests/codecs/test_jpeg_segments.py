"""The one JPEG marker walker, byte by byte: every marker the three walkers it replaced handled
(the header check, the RTP/JPEG payloader, the emulators' picture damage), and how each of its
users reads the same bytes."""

from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.codecs.jpeg import (
    MAX_SIDE,
    NOT_A_MARKER,
    SOF_MARKERS,
    STANDALONE_MARKERS,
    Segment,
    check_header,
    jpeg_end,
    read_header,
    segments,
)
from bridge.errors import ProtocolError
from bridge.rtsp.jpeg import parse_jpeg
from bridge.simulator import media as simulated
from bridge.simulator.faults import OVERSIZED_SIDE, Damage, damaged_jpeg, oversized_jpeg

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"


def seg(marker: int, body: bytes) -> bytes:
    """A marker segment with a length field."""
    return bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body


def sof(marker: int, width: int, height: int) -> bytes:
    """A 3-component 8-bit frame header, luma 2x1 (4:2:2) on table 0, chroma on table 1."""
    body = bytes((8,)) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x03"
    return seg(marker, body + b"\x01\x21\x00\x02\x11\x01\x03\x11\x01")


SOS_BODY = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
SCAN = b"\x12\xff\x00\x34\xff\xd0\x56"  # entropy-coded bytes: a stuffed 0xFF and an RST0
HEADERS = (
    seg(0xE0, b"JFIF\x00\x01\x02")  # APP0
    + seg(0xE1, b"Exif\x00\x00" + SOI + b"thumb" + EOI)  # APP1 holding a thumbnail's EOI
    + seg(0xFE, b"a comment")  # COM
    + seg(0xDB, bytes(65))  # DQT
    + seg(0xDD, b"\x00\x04")  # DRI: restart every 4 MCUs
    + b"\xff\xff\xff"  # fill bytes before the next marker
    + sof(0xC0, 64, 32)
    + seg(0xC4, b"\x00" + bytes(16))  # DHT
    + b"\xff\x01"  # TEM: no length field
    + b"\xff\xd3"  # a stray RST3 between segments: no length field either
)
PICTURE = SOI + HEADERS + seg(0xDA, SOS_BODY) + SCAN + EOI
EMULATED = simulated.TestPattern(64, 48).render(1, datetime.datetime(2010, 1, 1))  # a real one


def markers(data: bytes, start: int = 2, end: int = -1) -> list[int]:
    return [s.marker for s in segments(data, start, end)]


def test_every_segment_before_the_scan_in_order() -> None:
    assert markers(PICTURE) == [
        0xE0, 0xE1, 0xFE, 0xDB, 0xDD, 0xC0, 0xC4, 0x01, 0xD3, 0xDA,
    ]  # fmt: skip
    walked = list(segments(PICTURE))
    assert all(s.complete(len(PICTURE)) for s in walked)
    sos = walked[-1]
    assert PICTURE[sos.end :] == SCAN + EOI  # the walk stops where entropy-coded data starts
    app1 = walked[1]
    assert app1.body(PICTURE) == b"Exif\x00\x00" + SOI + b"thumb" + EOI
    fill = PICTURE.index(b"\xff\xff\xff")
    assert walked[5].start == fill + 3  # the SOF's own 0xFF, after three fill bytes
    assert [s.end - s.start for s in walked[7:9]] == [2, 2]  # TEM and RST: marker only


def test_the_walk_ends_at_eoi() -> None:
    data = SOI + seg(0xFE, b"x") + EOI + seg(0xFE, b"after the end")
    assert list(segments(data)) == [Segment(2, 0xFE, 7), Segment(7, 0xD9, 9)]


def test_a_byte_that_starts_no_marker() -> None:
    data = SOI + seg(0xFE, b"x") + b"\x00\xff\xda"
    assert list(segments(data))[-1] == Segment(7, NOT_A_MARKER, 7)
    with pytest.raises(ProtocolError, match="marker expected at byte 7"):
        read_header(data)
    with pytest.raises(ProtocolError, match="marker expected at byte 7"):
        parse_jpeg(data)


@pytest.mark.parametrize(
    ("cut", "last"),
    [
        (len(SOI) + 1, None),  # half a marker: nothing to yield
        (len(SOI) + 3, Segment(2, 0xE0, 6)),  # the length field cut: marked as running past
        (len(SOI) + 6, Segment(2, 0xE0, 13)),  # the body cut
    ],
)
def test_truncated_input_yields_incomplete_segments(cut: int, last: Segment | None) -> None:
    data = PICTURE[:cut]
    walked = list(segments(data))
    assert (walked[-1] if walked else None) == last
    assert not any(s.complete(len(data)) for s in walked)
    with pytest.raises(ProtocolError, match=r"truncated|ends before its scan"):
        read_header(data)
    with pytest.raises(ProtocolError, match="truncated"):
        parse_jpeg(data)
    assert jpeg_end(data, 0, len(data)) == -1  # a stream waits for more bytes


def test_a_length_shorter_than_its_field_is_incomplete() -> None:
    data = SOI + b"\xff\xfe\x00\x01" + PICTURE[2:]
    first = next(segments(data))
    assert first == Segment(2, 0xFE, 5)
    assert not first.complete(len(data))
    with pytest.raises(ProtocolError, match="truncated"):
        read_header(data)
    with pytest.raises(ProtocolError, match="truncated"):
        parse_jpeg(data)


def test_end_bounds_the_walk_like_a_buffer_not_yet_full() -> None:
    sos = PICTURE.index(b"\xff\xda")
    assert markers(PICTURE, 2, sos)[-1] == 0xD3  # SOS is past the end: not yielded
    assert jpeg_end(PICTURE, 0, sos + 4) == -1
    # The thumbnail's EOI inside APP1 does not end the picture; the EOI after the scan does.
    assert jpeg_end(PICTURE, 0, len(PICTURE)) == len(PICTURE)
    # Markers one byte apart from a buffer's start: a picture after other bytes.
    framed = b"--boundary\r\n\r\n" + PICTURE + b"\r\n"
    assert jpeg_end(framed, 14, len(framed)) == 14 + len(PICTURE)


@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2])
def test_the_frame_header_of_every_coding(marker: int) -> None:
    data = PICTURE.replace(sof(0xC0, 64, 32), sof(marker, 64, 32))
    header = check_header(data)
    assert (header.size, header.sampling) == ((64, 32), ((2, 1), (1, 1), (1, 1)))


def test_which_codings_rtp_jpeg_carries() -> None:
    picture = EMULATED
    assert parse_jpeg(picture).width == 64  # the emulators' baseline JPEG
    extended = picture.replace(b"\xff\xc0", b"\xff\xc1", 1)  # SOF1 with 8-bit tables: baseline
    assert parse_jpeg(extended).scan == parse_jpeg(picture).scan
    progressive = picture.replace(b"\xff\xc0", b"\xff\xc2", 1)
    with pytest.raises(ProtocolError, match="0xc2 is not baseline"):
        parse_jpeg(progressive)


def test_restart_interval_and_rst_markers_reach_the_payloader() -> None:
    picture = EMULATED
    sos = picture.index(b"\xff\xda")
    with_dri = picture[:sos] + seg(0xDD, b"\x00\x02") + picture[sos:]
    frame = parse_jpeg(with_dri)
    assert frame.restart_interval == 2
    assert frame.type == parse_jpeg(picture).type + 64


def test_the_size_caps() -> None:
    assert check_header(PICTURE.replace(sof(0xC0, 64, 32), sof(0xC0, MAX_SIDE, 16))).width == 4096
    with pytest.raises(ProtocolError, match="claims a 4097x16"):
        check_header(PICTURE.replace(sof(0xC0, 64, 32), sof(0xC0, MAX_SIDE + 1, 16)))


def test_the_emulators_damage_where_the_walker_points() -> None:
    picture = EMULATED
    big = read_header(oversized_jpeg(picture))
    assert big.size == (OVERSIZED_SIDE, OVERSIZED_SIDE)
    bad = damaged_jpeg(picture, Damage.BAD_SEGMENT, random.Random(1))
    first = next(segments(bad))
    assert bad[first.start + 2 : first.start + 4] == b"\xff\xff"
    with pytest.raises(ProtocolError, match="truncated"):
        read_header(bad)


def test_standalone_and_frame_marker_sets() -> None:
    assert {0x01, *range(0xD0, 0xDA)} == STANDALONE_MARKERS  # TEM, RST0-7, SOI, EOI
    assert 0xC4 not in SOF_MARKERS  # DHT
    assert {0xC8, 0xCC} & SOF_MARKERS == set()  # JPG, DAC
    assert {0xC0, 0xC1, 0xC2, 0xC3, 0xCF} <= SOF_MARKERS


@given(st.binary(max_size=64), st.integers(0, 70), st.integers(-1, 70))
def test_any_bytes_walk_forward_and_end(noise: bytes, start: int, end: int) -> None:
    data = SOI + noise
    end = min(end, len(data))  # ``end`` bounds the data a buffer holds, never past it
    limit = len(data) if end < 0 else end
    previous = start - 1
    for segment in segments(data, start, end):
        assert segment.start > previous
        assert segment.start + 2 <= limit or segment.marker == NOT_A_MARKER
        previous = segment.start
