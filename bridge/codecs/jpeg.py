"""JPEG marker facts: where a picture ends, and what its frame header declares. No I/O, no PyAV.

A camera's JPEG is read here before anything decodes it, because the decoder believes the
header: a frame header that claims 65000x65000 makes FFmpeg try to allocate gigabytes, and an
encoder opened at that size fails. :func:`read_header` walks the marker segments up to the scan
and says what the frame header declares (refusing truncated or garbled segments, no frame
header, a size of 0); :func:`check_header` also refuses what the gateway will not hand to a
decoder (sizes past :data:`MAX_SIDE`/:data:`MAX_PIXELS`, impossible sample precisions and
component layouts), so one bad picture is dropped where it enters instead of disturbing the
pictures around it.

The caps: 2007-2011 cameras send at most 2-3 megapixels; 4096 a side and H.264 level 5.1's
largest picture (36864 macroblocks, e.g. 4096x2304) leave room for any of them, and every
picture within them can be encoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bridge.errors import ProtocolError

MAX_SIDE = 4096
MAX_PIXELS = 36864 * 16 * 16

SOI = b"\xff\xd8"
_EOI_MARKER = b"\xff\xd9"
_EOI, _SOS = 0xD9, 0xDA
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RSTn, SOI, EOI.
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xDA)])
_NOT_A_MARKER = -1
_PRECISIONS = (8, 12)  # bits per sample of the DCT processes; cameras use 8
_MAX_COMPONENTS = 4  # grey, YCbCr, CMYK
_MAX_SAMPLING = 4  # sampling factors are 1..4 (ITU T.81 B.2.2)


@dataclass(frozen=True, slots=True)
class JpegHeader:
    """What a JPEG's frame header declares."""

    width: int
    height: int
    precision: int  # bits per sample
    sampling: tuple[tuple[int, int], ...]  # (horizontal, vertical) per component, in order

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def plausible_size(width: int, height: int) -> bool:
    """Whether a picture of this size is one a camera of the era could send and the gateway
    can encode; what cameras report about their resolution is held to the same caps."""
    return 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and width * height <= MAX_PIXELS


def _segments(data: bytes | bytearray, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(position, marker, position after the segment) of each marker from ``pos``.

    Stops when fewer than four bytes are left; at a byte that is not a marker it yields
    ``_NOT_A_MARKER`` as the marker and stops. Lengths are as declared: whether a segment is
    all there is the caller's question.
    """
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            yield pos, _NOT_A_MARKER, pos
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            yield pos, marker, pos + 2
            pos += 2
            continue
        after = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        yield pos, marker, after
        pos = after


def jpeg_end(buf: bytes | bytearray, start: int, end: int) -> int:
    """Index just past the EOI of the JPEG starting at ``start``, or -1 if not there yet.

    Segments before the scan carry lengths, so they are skipped whole (an FFD9 inside an
    embedded thumbnail does not end the picture); inside entropy-coded data 0xFF is always
    stuffed or a restart marker, so the first FFD9 there is the real end.
    """
    for _, marker, after in _segments(buf, start + 2, end):
        if marker == _EOI:
            return after
        if marker in (_SOS, _NOT_A_MARKER):
            found = buf.find(_EOI_MARKER, after, end)
            return -1 if found < 0 else found + 2
    return -1


def read_header(data: bytes) -> JpegHeader:
    """What a JPEG's frame header declares, read without decoding the picture;
    :class:`ProtocolError` when the segments up to the scan do not hold one."""
    if not data.startswith(SOI):
        raise ProtocolError("picture does not start with a JPEG SOI marker")
    header: JpegHeader | None = None
    for pos, marker, after in _segments(data, len(SOI), len(data)):
        if marker == _NOT_A_MARKER:
            raise ProtocolError(f"JPEG marker expected at byte {pos}")
        if marker == _EOI:
            break
        if after > len(data) or (after - pos < 4 and marker not in _STANDALONE_MARKERS):
            raise ProtocolError(f"JPEG segment {marker:#04x} at byte {pos} is truncated")
        if marker in _SOF_MARKERS:
            if header is not None:
                raise ProtocolError("JPEG has two frame headers")
            header = _frame_header(data[pos + 4 : after])
        elif marker == _SOS:
            if header is None:
                raise ProtocolError("JPEG scan before its frame header")
            return header
    raise ProtocolError("JPEG ends before its scan")


def _frame_header(segment: bytes) -> JpegHeader:
    if len(segment) < 6:
        raise ProtocolError("JPEG frame header is truncated")
    precision = segment[0]
    height = int.from_bytes(segment[1:3], "big")
    width = int.from_bytes(segment[3:5], "big")
    count = segment[5]
    if not width or not height:  # a height of 0 defers to a DNL marker no camera writes
        raise ProtocolError(f"JPEG frame header gives a {width}x{height} picture")
    if not count or len(segment) < 6 + 3 * count:
        raise ProtocolError(f"JPEG frame header with {count} components is malformed")
    sampling = tuple(
        (segment[7 + 3 * index] >> 4, segment[7 + 3 * index] & 0x0F) for index in range(count)
    )
    return JpegHeader(width, height, precision, sampling)


def check_header(data: bytes) -> JpegHeader:
    """:func:`read_header`, and :class:`ProtocolError` for a picture the gateway will not hand
    to a decoder: one of a size no camera sends, or that no JPEG process can code."""
    header = read_header(data)
    if not plausible_size(header.width, header.height):
        raise ProtocolError(f"JPEG frame header claims a {header.width}x{header.height} picture")
    if header.precision not in _PRECISIONS:
        raise ProtocolError(f"JPEG with {header.precision}-bit samples")
    if len(header.sampling) > _MAX_COMPONENTS:
        raise ProtocolError(f"JPEG with {len(header.sampling)} components")
    if not all(0 < h <= _MAX_SAMPLING and 0 < v <= _MAX_SAMPLING for h, v in header.sampling):
        raise ProtocolError(f"JPEG sampling factors {header.sampling} are impossible")
    return header


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) as a JPEG's frame header declares them, read without decoding."""
    return read_header(data).size
