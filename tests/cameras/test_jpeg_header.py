"""JPEG headers read before any decoder sees them: real pictures pass, hostile ones are refused."""

from __future__ import annotations

import contextlib
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codecs.jpeg import (
    MAX_SIDE,
    check_header,
    jpeg_end,
    jpeg_size,
    plausible_size,
    read_header,
)
from bridge.errors import ProtocolError
from bridge.simulator import media as simulated

PICTURE = simulated.TestPattern(320, 240).render(7, datetime.datetime(2010, 1, 1))
SOF = PICTURE.index(b"\xff\xc0")
SOS = PICTURE.index(b"\xff\xda")


def claiming(width: int, height: int, jpeg: bytes = PICTURE) -> bytes:
    """``jpeg`` with a frame header that claims another size (the scan is unchanged)."""
    at = jpeg.index(b"\xff\xc0") + 5
    return jpeg[:at] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[at + 4 :]


def with_frame_header(body: bytes) -> bytes:
    """PICTURE with its SOF0 segment's body replaced by ``body``."""
    length = int.from_bytes(PICTURE[SOF + 2 : SOF + 4], "big")
    segment = b"\xff\xc0" + (len(body) + 2).to_bytes(2, "big") + body
    return PICTURE[:SOF] + segment + PICTURE[SOF + 2 + length :]


def test_a_camera_picture_is_read_without_decoding() -> None:
    header = check_header(PICTURE)
    assert read_header(PICTURE) == header
    assert (header.width, header.height, header.precision) == (320, 240, 8)
    assert header.sampling == ((2, 1), (1, 1), (1, 1))  # 4:2:2, as cameras and emulators send
    assert jpeg_size(PICTURE) == (320, 240)
    assert jpeg_end(PICTURE, 0, len(PICTURE)) == len(PICTURE)
    assert jpeg_end(PICTURE, 0, len(PICTURE) - 1) == -1


def test_a_size_of_zero_is_no_picture() -> None:
    for size in ((0, 240), (320, 0)):  # a height of 0 means "in a DNL marker": no camera
        with pytest.raises(ProtocolError, match="gives a"):
            read_header(claiming(*size))


@pytest.mark.parametrize(
    ("size", "allowed"),
    [
        ((65000, 65000), False),  # the attack: gigabytes for the decoder
        ((MAX_SIDE + 2, 240), False),
        ((4096, 4096), False),  # past the largest picture H.264 level 5.1 takes
        ((4096, 2304), True),
        ((2048, 1536), True),  # the largest legacy cameras: 3 megapixels
        ((1, 1), True),
    ],
)
def test_sizes_are_held_to_the_caps(size: tuple[int, int], allowed: bool) -> None:
    assert plausible_size(*size) is allowed
    assert jpeg_size(claiming(*size)) == size  # what the header declares
    if allowed:
        assert check_header(claiming(*size)).size == size
    else:
        with pytest.raises(ProtocolError, match="claims"):
            check_header(claiming(*size))


Y_CB_CR = b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"


@pytest.mark.parametrize(
    ("jpeg", "complaint"),
    [
        (b"not a jpeg", "SOI"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated"),  # cut inside APP0
        (PICTURE[:SOF], "ends before its scan"),
        (PICTURE[: SOF + 8], "truncated"),
        (PICTURE[:SOF] + b"\x00garbage", "marker expected"),
        (PICTURE[:2] + b"\xff\xe0\x00\x01" + PICTURE[2:], "truncated"),  # length below 2
        (PICTURE[:SOF] + PICTURE[SOS:], "scan before its frame header"),
        (PICTURE[:SOS] + PICTURE[SOF:SOS] + PICTURE[SOS:], "two frame headers"),
        (PICTURE[:2] + b"\xff\xd9" + PICTURE[2:], "ends before its scan"),
        (with_frame_header(b"\x10\x00\xf0\x01\x40\x03" + Y_CB_CR), "16-bit"),
        (with_frame_header(b"\x08\x00\xf0\x01\x40\x00"), "0 components"),
        (with_frame_header(b"\x08\x00\xf0\x01\x40\x05" + Y_CB_CR * 2), "5 components"),
        (with_frame_header(b"\x08\x00\xf0\x01\x40\x03" + Y_CB_CR[:6]), "3 components"),
        (with_frame_header(b"\x08\x00\xf0\x01\x40\x03\x01\x50\x00" + Y_CB_CR[3:]), "sampling"),
        (with_frame_header(b"\x08\x00\xf0\x01\x40\x03\x01\x20\x00" + Y_CB_CR[3:]), "sampling"),
    ],
)
def test_garbled_headers_are_refused(jpeg: bytes, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        check_header(jpeg)


@settings(database=None)
@given(st.data())
def test_damaged_headers_raise_only_protocol_errors(data: st.DataObject) -> None:
    picture = bytearray(PICTURE)
    for _ in range(data.draw(st.integers(1, 8))):
        picture[data.draw(st.integers(0, SOS + 20))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(picture)))
    try:
        header = check_header(bytes(picture[:cut]))
    except ProtocolError:
        return
    assert plausible_size(header.width, header.height)


@given(st.binary(max_size=300))
def test_any_bytes_raise_only_protocol_errors(noise: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        check_header(b"\xff\xd8" + noise)
    assert jpeg_end(b"\xff\xd8" + noise, 0, len(noise) + 2) <= len(noise) + 2
