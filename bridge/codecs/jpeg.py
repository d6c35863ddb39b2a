"""JPEG marker facts: the segments before the scan, where a picture ends, and what its frame
header declares. No I/O, no PyAV.

:func:`segments` is the one walker over a JPEG's marker segments: the multipart parser finds a
picture's end with it, the header check and the RTP/JPEG payloader read the segments it yields,
and the emulators damage pictures where it points. So fill bytes, markers without a length
(TEM, RSTn, SOI, EOI) and lengths cut short mean the same everywhere.

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
from typing import NamedTuple

from bridge.errors import ProtocolError

MAX_SIDE = 4096
MAX_PIXELS = 36864 * 16 * 16

SOI = b"\xff\xd8"
_EOI_MARKER = b"\xff\xd9"
# Marker codes (the byte after 0xFF; ITU T.81 table B.1).
EOI, SOS, DHT, DQT, DRI = 0xD9, 0xDA, 0xC4, 0xDB, 0xDD
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RSTn, SOI, EOI.
STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xDA)])
NOT_A_MARKER = -1  # the "marker" :func:`segments` yields at a byte that starts none
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


class Segment(NamedTuple):
    """One marker segment before the scan: where its 0xFF is, its marker code, and where it ends
    as its length field declares (maybe past the data, or before its own length field when
    the length is garbage: :meth:`complete` says)."""

    start: int
    marker: int
    end: int

    def complete(self, size: int) -> bool:
        """Whether the segment lies within ``size`` bytes and its length covers at least the
        length field itself."""
        return self.end <= size and (
            self.marker in STANDALONE_MARKERS or self.end - self.start >= 4
        )

    def body(self, data: bytes) -> bytes:
        """What follows the length field, up to the declared end."""
        return data[self.start + 4 : self.end]


def segments(data: bytes | bytearray, start: int = len(SOI), end: int = -1) -> Iterator[Segment]:
    """The marker segments of ``data[start:end]`` (``end`` -1: all of it), up to and
    including SOS or EOI, after which come entropy-coded bytes, not segments.

    Fill bytes (0xFF before a marker) are skipped. At a byte that is not 0xFF it yields
    :data:`NOT_A_MARKER` and stops. A segment whose length field is cut off by ``end`` is
    yielded as ending 4 bytes on (past ``end``), so every caller sees it as incomplete;
    the walk stops when fewer than 2 bytes are left or a segment runs past ``end``.
    """
    if end < 0:
        end = len(data)
    pos = start
    while pos + 2 <= end:
        if data[pos] != 0xFF:
            yield Segment(pos, NOT_A_MARKER, pos)
            return
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in STANDALONE_MARKERS:
            after = pos + 2
        elif pos + 4 > end:
            after = pos + 4
        else:
            after = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        yield Segment(pos, marker, after)
        if marker in (SOS, EOI):
            return
        pos = max(after, pos + 2)


def jpeg_end(buf: bytes | bytearray, start: int, end: int) -> int:
    """Index just past the EOI of the JPEG starting at ``start``, or -1 if not there yet.

    Segments before the scan carry lengths, so they are skipped whole (an FFD9 inside an
    embedded thumbnail does not end the picture); inside entropy-coded data 0xFF is always
    stuffed or a restart marker, so the first FFD9 there is the real end.
    """
    for segment in segments(buf, start + len(SOI), end):
        if segment.marker == EOI:
            return segment.end
        if segment.marker in (SOS, NOT_A_MARKER):
            found = buf.find(_EOI_MARKER, segment.end, end)
            return -1 if found < 0 else found + 2
    return -1


def read_header(data: bytes) -> JpegHeader:
    """What a JPEG's frame header declares, read without decoding the picture;
    :class:`ProtocolError` when the segments up to the scan do not hold one."""
    if not data.startswith(SOI):
        raise ProtocolError("picture does not start with a JPEG SOI marker")
    header: JpegHeader | None = None
    for segment in segments(data):
        pos, marker, _ = segment
        if marker == NOT_A_MARKER:
            raise ProtocolError(f"JPEG marker expected at byte {pos}")
        if marker == EOI:
            break
        if not segment.complete(len(data)):
            raise ProtocolError(f"JPEG segment {marker:#04x} at byte {pos} is truncated")
        if marker in SOF_MARKERS:
            if header is not None:
                raise ProtocolError("JPEG has two frame headers")
            header = _frame_header(segment.body(data))
        elif marker == SOS:
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
