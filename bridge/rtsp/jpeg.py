"""RTP/JPEG (RFC 2435) payloader for the baseline JPEGs legacy cameras send.

RFC 2435 carries only the entropy-coded scan; the receiver rebuilds the JPEG headers from an
8-byte header (type, Q, size in 8-pixel blocks), assuming the standard Annex K Huffman tables,
table 0 for luma and 1 for chroma, and one of two layouts: type 0 = 4:2:2 (luma 2x1, MCU 16x8)
and type 1 = 4:2:0 (luma 2x2, MCU 16x16), chroma 1x1. Types 64/65 are the same with restart
markers (a DRI segment). Q=255 sends the JPEG's exact quantization tables in-band with every
frame, so any camera quality setting survives.

A JPEG the receiver could not rebuild bit-exactly is refused with ProtocolError instead of being
sent as garbage: other sampling (FFmpeg's own 4:2:2 is luma 2x2 + chroma 1x2), grayscale,
progressive or arithmetic coding, 16-bit tables, optimized Huffman tables, several scans, or a
side over 2040 pixels (the 8-bit size fields). Such a camera needs transcoding to H.264.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.codecs.jpeg import (
    DHT,
    DQT,
    DRI,
    EOI,
    NOT_A_MARKER,
    SOF_MARKERS,
    SOI,
    SOS,
    STANDALONE_MARKERS,
    segments,
)
from bridge.errors import ProtocolError

DEFAULT_MAX_PAYLOAD = 1400
MAX_DIMENSION = 2040  # 255 blocks of 8 pixels
Q_INLINE_TABLES = 255  # tables sent in every frame's first packet and reloaded by the receiver

# Annex K.3 tables, keyed (class: 0 DC / 1 AC, table id: 0 luma / 1 chroma); values are the
# DHT body of one table: 16 code-length counts, then the symbols.
STANDARD_HUFFMAN_TABLES: Mapping[tuple[int, int], bytes] = {
    (0, 0): bytes.fromhex("00010501010101010100000000000000000102030405060708090a0b"),
    (0, 1): bytes.fromhex("00030101010101010101010000000000000102030405060708090a0b"),
    (1, 0): bytes.fromhex(
        "0002010303020403050504040000017d"
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
        "535455565758595a636465666768696a737475767778797a838485868788898a"
        "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
        "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
    ),
    (1, 1): bytes.fromhex(
        "00020102040403040705040400010277"
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"
    ),
}

_MAIN_HEADER = struct.Struct("!IBBBB")  # type-specific=0 | 24-bit offset, type, Q, width/8, h/8
_RESTART_HEADER = struct.Struct("!HH")  # restart interval, F=1|L=1|count=0x3FFF
_QUANT_HEADER = struct.Struct("!BBH")  # MBZ, precision bits (0: all 8-bit), length
_WHOLE_FRAME_RESTART = 0xFFFF  # F and L set, count 0x3FFF: packets not aligned to intervals
_MAX_SCAN = 1 << 24  # the fragment offset field

_SOF_BASELINE = (0xC0, 0xC1)  # SOF1 with 8-bit tables codes exactly like baseline
# Inside the scan, 0xFF is followed by 0x00 (stuffing) or RSTn; anything else ends it (fill
# bytes 0xFF may precede the marker). Spelled with a literal first byte, not ``\xff+``, so the
# regex engine jumps between 0xFF bytes: 30 times faster on a 400 KB frame.
_SCAN_END = re.compile(rb"\xff\xff*[^\x00\xd0-\xd7\xff]")
# Luma sampling (h, v) -> RFC 2435 type, chroma always 1x1.
_TYPES = {(2, 1): 0, (2, 2): 1}
_RESTART_TYPE_FLAG = 64


@dataclass(frozen=True, slots=True)
class JpegFrame:
    """What RFC 2435 carries of one JPEG."""

    type: int  # 0 (4:2:2) or 1 (4:2:0), plus 64 when restart markers are present
    width: int  # pixels
    height: int
    quantization_tables: bytes  # luma then chroma, 64 bytes each, zig-zag order as in DQT
    restart_interval: int  # in MCUs; 0 without restart markers
    scan: bytes  # the entropy-coded segment with its RST markers, without EOI


class _Layout:
    """What the headers before the scan declare, filled in while walking them."""

    def __init__(self) -> None:
        self.tables: dict[int, bytes] = {}
        self.restart_interval = 0
        self.size: tuple[int, int] | None = None
        self.components: list[tuple[int, int, int, int]] = []  # id, h, v, quant table

    def quantization(self, segment: bytes) -> None:
        pos = 0
        while pos < len(segment):
            precision, table_id = segment[pos] >> 4, segment[pos] & 0x0F
            if precision:
                raise ProtocolError("JPEG 16-bit quantization tables are not baseline")
            table = segment[pos + 1 : pos + 65]
            if len(table) != 64:
                raise ProtocolError("JPEG DQT segment truncated")
            self.tables[table_id] = table
            pos += 65

    def frame(self, segment: bytes) -> None:
        if len(segment) < 6 or segment[0] != 8:
            raise ProtocolError("JPEG frame header is not 8-bit baseline")
        height, width, count = (
            int.from_bytes(segment[1:3]),
            int.from_bytes(segment[3:5]),
            segment[5],
        )
        if count != 3 or len(segment) < 6 + 3 * count:
            raise ProtocolError(f"JPEG with {count} components: RTP/JPEG needs Y, Cb, Cr")
        self.size = (width, height)
        self.components = []
        for index in range(count):
            ident, sampling, table = segment[6 + 3 * index : 9 + 3 * index]
            self.components.append((ident, sampling >> 4, sampling & 0x0F, table))

    def restart(self, segment: bytes) -> None:
        if len(segment) < 2:
            raise ProtocolError("JPEG DRI segment truncated")
        self.restart_interval = int.from_bytes(segment[:2])

    def check_scan_header(self, segment: bytes) -> None:
        count = segment[0] if segment else 0
        if len(segment) < 4 + 2 * count:
            raise ProtocolError("JPEG scan header truncated")
        selectors = [tuple(segment[1 + 2 * i : 3 + 2 * i]) for i in range(count)]
        # The receiver writes SOS with components 1, 2, 3 on tables 0, 1, 1, in SOF order.
        expected = [
            (ident, 0x00 if i == 0 else 0x11) for i, (ident, *_) in enumerate(self.components)
        ]
        ss, se = segment[1 + 2 * count], segment[2 + 2 * count]
        if selectors != expected or (ss, se) != (0, 63):
            raise ProtocolError("JPEG scan is not one interleaved baseline scan on tables 0/1/1")


def _check_huffman(segment: bytes) -> None:
    pos = 0
    while pos < len(segment):
        key = (segment[pos] >> 4, segment[pos] & 0x0F)
        counts = segment[pos + 1 : pos + 17]
        end = pos + 17 + sum(counts)
        if len(counts) != 16 or end > len(segment):
            raise ProtocolError("JPEG DHT segment truncated")
        if STANDARD_HUFFMAN_TABLES.get(key) != segment[pos + 1 : end]:
            raise ProtocolError(
                f"JPEG Huffman table {key} is not the standard one RTP/JPEG receivers assume"
            )
        pos = end


def parse_jpeg(data: bytes) -> JpegFrame:
    """Split a baseline JPEG into what RFC 2435 sends, refusing what it cannot carry."""
    if not data.startswith(SOI):
        raise ProtocolError("not a JPEG: no SOI marker")
    layout = _Layout()
    for segment in segments(data):
        pos, marker, end = segment
        if marker == NOT_A_MARKER:
            raise ProtocolError(f"JPEG marker expected at byte {pos}")
        if marker == EOI:
            raise ProtocolError("JPEG ends before its scan")
        if not segment.complete(len(data)):
            raise ProtocolError(f"JPEG segment {marker:#04x} truncated")
        if marker in STANDALONE_MARKERS:
            continue
        body = segment.body(data)
        if marker == DQT:
            layout.quantization(body)
        elif marker in _SOF_BASELINE:
            layout.frame(body)
        elif marker in SOF_MARKERS:
            raise ProtocolError(f"JPEG coding {marker:#04x} is not baseline Huffman")
        elif marker == DHT:
            _check_huffman(body)
        elif marker == DRI:
            layout.restart(body)
        elif marker == SOS:
            if layout.size is None:
                raise ProtocolError("JPEG scan before its frame header")
            layout.check_scan_header(body)
            return _frame(layout, *layout.size, data, end)
    raise ProtocolError("JPEG truncated before its scan")


def _frame(layout: _Layout, width: int, height: int, data: bytes, scan_start: int) -> JpegFrame:
    (_, luma_h, luma_v, luma_table), cb, cr = layout.components
    jpeg_type = _TYPES.get((luma_h, luma_v))
    if jpeg_type is None or cb[1:3] != (1, 1) or cr[1:3] != (1, 1):
        sampling = ", ".join(f"{h}x{v}" for _, h, v, _ in layout.components)
        raise ProtocolError(
            f"JPEG sampling {sampling} has no RFC 2435 type (needs luma 2x1 or 2x2, chroma 1x1)"
        )
    if cb[3] != cr[3] or luma_table not in layout.tables or cb[3] not in layout.tables:
        raise ProtocolError("JPEG chroma components need one shared, defined quantization table")
    if not 0 < width <= MAX_DIMENSION or not 0 < height <= MAX_DIMENSION:
        raise ProtocolError(
            f"JPEG of {width}x{height} does not fit RTP/JPEG's limit of {MAX_DIMENSION} pixels"
        )
    end = _SCAN_END.search(data, scan_start)
    if end is None:
        raise ProtocolError("JPEG truncated: no EOI after the scan")
    if data[end.end() - 1] != EOI:
        raise ProtocolError("JPEG with several scans or a DNL cannot be sent over RTP/JPEG")
    scan = data[scan_start : end.start()]
    if not scan or len(scan) >= _MAX_SCAN:
        raise ProtocolError(f"JPEG scan of {len(scan)} bytes cannot be sent over RTP/JPEG")
    if layout.restart_interval:
        jpeg_type += _RESTART_TYPE_FLAG
    return JpegFrame(
        type=jpeg_type,
        width=width,
        height=height,
        quantization_tables=layout.tables[luma_table] + layout.tables[cb[3]],
        restart_interval=layout.restart_interval,
        scan=scan,
    )


def packetize(jpeg: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one JPEG, in order; the marker goes on the last."""
    frame = parse_jpeg(jpeg)
    restart = b""
    if frame.restart_interval:
        restart = _RESTART_HEADER.pack(frame.restart_interval, _WHOLE_FRAME_RESTART)
    tables = frame.quantization_tables
    quant = _QUANT_HEADER.pack(0, 0, len(tables)) + tables
    overhead = _MAIN_HEADER.size + len(restart)
    if max_payload <= overhead + len(quant):
        raise ValueError(f"max_payload {max_payload} leaves no room for JPEG data")
    # Ceil: the MCU grid of the rebuilt headers then covers exactly the coded MCUs.
    size = ((frame.width + 7) // 8, (frame.height + 7) // 8)
    scan = memoryview(frame.scan)
    first = max_payload - overhead - len(quant)
    payloads = [
        _MAIN_HEADER.pack(0, frame.type, Q_INLINE_TABLES, *size) + restart + quant + scan[:first]
    ]
    step = max_payload - overhead
    payloads += [
        _MAIN_HEADER.pack(offset, frame.type, Q_INLINE_TABLES, *size)
        + restart
        + scan[offset : offset + step]
        for offset in range(first, len(scan), step)
    ]
    return payloads
