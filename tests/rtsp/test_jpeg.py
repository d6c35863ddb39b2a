"""RTP/JPEG payloads checked byte by byte and by decoding what a receiver would rebuild.

A receiver (RFC 2435 appendix A) rebuilds the JPEG headers from the RTP/JPEG header alone, so
the decisive test is: rebuild, decode with FFmpeg, compare with decoding the original. FFmpeg's
own encoder makes the 4:2:0 cases; its 4:2:2 is luma 2x2 + chroma 1x2, which RFC 2435 cannot
carry, so a small baseline encoder here makes the 4:2:2 (luma 2x1) JPEGs cameras send.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from bridge.errors import ProtocolError
from bridge.rtsp.jpeg import STANDARD_HUFFMAN_TABLES, packetize, parse_jpeg

_TYPE_LAYOUT = {0: (2, 1), 1: (2, 2)}  # luma sampling per RFC 2435 type


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def _headers(
    width: int, height: int, luma: tuple[int, int], tables: bytes, restart_interval: int
) -> bytes:
    """SOI up to the SOS of a 3-component baseline JPEG with the standard Huffman tables."""
    out = b"\xff\xd8" + _segment(0xDB, b"\x00" + tables[:64] + b"\x01" + tables[64:128])
    components = bytes((1, luma[0] << 4 | luma[1], 0, 2, 0x11, 1, 3, 0x11, 1))
    out += _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components)
    dht = b"".join(
        bytes((kind << 4 | table,)) + STANDARD_HUFFMAN_TABLES[(kind, table)]
        for kind, table in ((0, 0), (1, 0), (0, 1), (1, 1))
    )
    out += _segment(0xC4, dht)
    if restart_interval:
        out += _segment(0xDD, struct.pack(">H", restart_interval))
    return out + _segment(0xDA, bytes((3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0)))


def _main_header(payload: bytes) -> tuple[int, int, int, int, int]:
    """(fragment offset, type, Q, width/8, height/8)."""
    offset, kind, q, width, height = struct.unpack_from(">IBBBB", payload)
    assert offset >> 24 == 0  # type-specific
    return offset, kind, q, width, height


def _receive(payloads: list[bytes]) -> bytes:
    """What an RFC 2435 receiver rebuilds from one frame's payloads."""
    scan = bytearray()
    tables = b""
    restart_interval = 0
    for payload in payloads:
        offset, kind, q, width, height = _main_header(payload)
        assert q == 255
        pos = 8
        if kind >= 64:
            restart_interval, flags_count = struct.unpack_from(">HH", payload, pos)
            assert flags_count == 0xFFFF  # F=L=1, count 0x3FFF: not aligned to intervals
            pos += 4
        if offset == 0:
            mbz, precision, length = struct.unpack_from(">BBH", payload, pos)
            assert (mbz, precision, length) == (0, 0, 128)
            tables = payload[pos + 4 : pos + 4 + length]
            pos += 4 + length
        assert offset == len(scan)
        scan += payload[pos:]
    layout = _TYPE_LAYOUT[kind & 63]
    return _headers(8 * width, 8 * height, layout, tables, restart_interval) + scan + b"\xff\xd9"


def _decode(jpeg: bytes) -> av.VideoFrame:
    codec = av.CodecContext.create("mjpeg", "r")
    [frame] = codec.decode(av.Packet(jpeg))
    return frame


def _planes(frame: av.VideoFrame) -> list[bytes]:
    return [bytes(plane) for plane in frame.planes]


def _entropy_coded_segment(jpeg: bytes) -> bytes:
    """The bytes between the SOS header and EOI, found independently of the module."""
    pos = 2
    while jpeg[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    start = pos + 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    assert jpeg.endswith(b"\xff\xd9")
    return jpeg[start:-2]


def _image(width: int, height: int, seed: int) -> NDArray[np.uint8]:
    """A gradient with noise: nonzero AC coefficients everywhere, still compressible."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(height) * 3, np.arange(width) * 2)
    image = np.stack([ramp, ramp[::-1], ramp[:, ::-1]], axis=-1) % 256
    noise = rng.integers(-20, 20, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _ffmpeg_jpeg(
    width: int, height: int, pix_fmt: str = "yuvj420p", *, threads: int = 0, **options: str
) -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pix_fmt
    codec.time_base = Fraction(1, 25)
    codec.thread_count = threads
    # Single-threaded FFmpeg optimizes Huffman tables unless told not to.
    codec.options = {"huffman": "default", **options}
    rgb = av.VideoFrame.from_ndarray(_image(width, height, seed=width), format="rgb24")
    frame = rgb.reformat(format=pix_fmt)
    return b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))


# -- a minimal baseline encoder, for the 4:2:2 layout FFmpeg does not write ------------------


def _zigzag_key(index: int) -> tuple[int, int]:
    row, column = divmod(index, 8)
    diagonal = row + column
    return diagonal, row if diagonal % 2 else column  # odd diagonals run down-left


_ZIGZAG = np.array(sorted(range(64), key=_zigzag_key))  # zig-zag position -> natural index
_DCT = np.array(
    [
        [np.sqrt((1 if k else 0.5) / 4) * np.cos((2 * n + 1) * k * np.pi / 16) for n in range(8)]
        for k in range(8)
    ]
)
_LUMA_Q = np.add.outer(np.arange(8), np.arange(8)) * 2 + 3  # natural order
_CHROMA_Q = np.add.outer(np.arange(8), np.arange(8)) * 3 + 4


def _huffman_codes(spec: bytes) -> dict[int, tuple[int, int]]:
    codes, code, index = {}, 0, 16
    for length in range(1, 17):
        for _ in range(spec[length - 1]):
            codes[spec[index]] = (code, length)
            code, index = code + 1, index + 1
        code <<= 1
    return codes


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self._acc = 0
        self._bits = 0

    def put(self, value: int, length: int) -> None:
        self._acc = (self._acc << length) | value
        self._bits += length
        while self._bits >= 8:
            self._bits -= 8
            byte = (self._acc >> self._bits) & 0xFF
            self.out += b"\xff\x00" if byte == 0xFF else bytes((byte,))
        self._acc &= (1 << self._bits) - 1

    def align(self) -> None:
        if self._bits:
            self.put((1 << (8 - self._bits)) - 1, 8 - self._bits)  # pad with 1 bits


def _category(value: int) -> tuple[int, int]:
    size = abs(value).bit_length()
    return size, value if value >= 0 else value + (1 << size) - 1


def _encode_422(image: NDArray[np.uint8], *, restart_interval: int = 0) -> bytes:
    """A baseline JPEG with luma 2x1 and chroma 1x1 sampling (MCU 16x8), standard tables."""
    height, width = image.shape[:2]
    rgb = image.astype(float)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 128 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    cb, cr = (plane.reshape(height, width // 2, 2).mean(axis=2) for plane in (cb, cr))
    dc = [_huffman_codes(STANDARD_HUFFMAN_TABLES[(0, t)]) for t in (0, 1)]
    ac = [_huffman_codes(STANDARD_HUFFMAN_TABLES[(1, t)]) for t in (0, 1)]
    bits = _BitWriter()
    predictors = [0, 0, 0]

    def block(plane: NDArray[np.float64], top: int, left: int, component: int) -> None:
        table = min(component, 1)
        quant = _LUMA_Q if table == 0 else _CHROMA_Q
        coefficients = _DCT @ (plane[top : top + 8, left : left + 8] - 128) @ _DCT.T
        zigzag = np.rint(coefficients / quant).astype(int).ravel()[_ZIGZAG]
        size, value = _category(int(zigzag[0]) - predictors[component])
        predictors[component] = int(zigzag[0])
        bits.put(*dc[table][size])
        bits.put(value, size)
        run = 0
        for coefficient in map(int, zigzag[1:]):
            if coefficient == 0:
                run += 1
                continue
            while run > 15:
                bits.put(*ac[table][0xF0])
                run -= 16
            size, value = _category(coefficient)
            bits.put(*ac[table][(run << 4) | size])
            bits.put(value, size)
            run = 0
        if run:
            bits.put(*ac[table][0x00])  # EOB

    mcus = [(top, left) for top in range(0, height, 8) for left in range(0, width, 16)]
    for index, (top, left) in enumerate(mcus):
        if restart_interval and index and index % restart_interval == 0:
            bits.align()
            bits.out += bytes((0xFF, 0xD0 + (index // restart_interval - 1) % 8))
            predictors = [0, 0, 0]
        block(y, top, left, 0)
        block(y, top, left + 8, 0)
        block(cb, top, left // 2, 1)
        block(cr, top, left // 2, 2)
    bits.align()
    tables = bytes(_LUMA_Q.ravel()[_ZIGZAG].tolist() + _CHROMA_Q.ravel()[_ZIGZAG].tolist())
    return _headers(width, height, (2, 1), tables, restart_interval) + bits.out + b"\xff\xd9"


# -- tests ---------------------------------------------------------------------------------


def _check_round_trip(jpeg: bytes, expected_type: int, max_payload: int = 1400) -> list[bytes]:
    frame = parse_jpeg(jpeg)
    payloads = packetize(jpeg, max_payload)
    assert frame.type == expected_type
    assert frame.scan == _entropy_coded_segment(jpeg)
    assert all(len(payload) <= max_payload for payload in payloads)
    headers = [_main_header(payload) for payload in payloads]
    size = ((frame.width + 7) // 8, (frame.height + 7) // 8)
    assert {header[1:] for header in headers} == {(expected_type, 255, *size)}
    assert headers[0][0] == 0
    assert [h[0] for h in headers] == sorted(h[0] for h in headers)
    rebuilt = _receive(payloads)
    if frame.width % 8 == 0 and frame.height % 8 == 0:
        assert _planes(_decode(rebuilt)) == _planes(_decode(jpeg))
    return payloads


def test_ffmpeg_420_with_restart_markers_is_type_65() -> None:
    jpeg = _ffmpeg_jpeg(320, 240)  # sliced threads write a DRI and RST markers
    frame = parse_jpeg(jpeg)
    assert frame.restart_interval > 0
    payloads = _check_round_trip(jpeg, 65)
    first = payloads[0]
    assert struct.unpack_from(">HH", first, 8) == (frame.restart_interval, 0xFFFF)
    assert struct.unpack_from(">BBH", first, 12) == (0, 0, 128)
    assert first[16:144] == frame.quantization_tables
    # FFmpeg quantizes both planes with its one table; RFC 2435 sends it as luma and chroma.
    assert frame.quantization_tables[:64] == frame.quantization_tables[64:]
    # Only the first packet carries the tables.
    assert all(len(p) == 1400 for p in payloads[:-1])
    assert _main_header(payloads[1])[0] == 1400 - 8 - 4 - 4 - 128


def test_ffmpeg_420_without_restart_markers_is_type_1() -> None:
    jpeg = _ffmpeg_jpeg(320, 240, threads=1)
    payloads = _check_round_trip(jpeg, 1)
    assert struct.unpack_from(">BBH", payloads[0], 8) == (0, 0, 128)
    assert _main_header(payloads[1])[0] == 1400 - 8 - 4 - 128


def test_camera_style_422_is_type_0_and_64() -> None:
    image = _image(64, 48, seed=3)
    for restart_interval, expected_type in ((0, 0), (2, 64)):
        jpeg = _encode_422(image, restart_interval=restart_interval)
        decoded = _decode(jpeg)
        assert (decoded.format.name, decoded.width, decoded.height) == ("yuvj422p", 64, 48)
        rgb = decoded.to_ndarray(format="rgb24").astype(int)
        assert np.abs(rgb - image).mean() < 12  # the test encoder itself is sound
        _check_round_trip(jpeg, expected_type, max_payload=300)


def test_size_not_a_multiple_of_8_is_rounded_up() -> None:
    jpeg = _ffmpeg_jpeg(100, 60)
    [first, *_] = _check_round_trip(jpeg, 65)
    assert _main_header(first)[3:] == (13, 8)
    original, rebuilt = _decode(jpeg), _decode(_receive(packetize(jpeg)))
    assert (rebuilt.width, rebuilt.height) == (104, 64)
    # Same MCUs, so the visible picture is identical.
    luma = [
        np.frombuffer(bytes(f.planes[0]), np.uint8).reshape(f.height, -1)
        for f in (original, rebuilt)
    ]
    assert (luma[0][:60, :100] == luma[1][:60, :100]).all()


def test_largest_size_and_one_beyond() -> None:
    [first, *_] = packetize(_ffmpeg_jpeg(2040, 16))
    assert _main_header(first)[3:] == (255, 2)
    with pytest.raises(ProtocolError, match="2048x16 does not fit"):
        parse_jpeg(_ffmpeg_jpeg(2048, 16))


def test_ffmpeg_422_layout_is_refused() -> None:
    with pytest.raises(ProtocolError, match="sampling 2x2, 1x2, 1x2 has no RFC 2435 type"):
        packetize(_ffmpeg_jpeg(64, 48, "yuvj422p"))


def test_optimized_huffman_tables_are_refused() -> None:
    with pytest.raises(ProtocolError, match="not the standard one"):
        packetize(_ffmpeg_jpeg(64, 48, threads=1, huffman="optimal"))


def test_no_dht_means_standard_tables() -> None:
    """Some cameras strip the DHT ("AVI1" MJPEG); decoders then use the standard tables."""
    jpeg = _ffmpeg_jpeg(64, 48)
    start = jpeg.index(b"\xff\xc4")
    stripped = jpeg[:start] + jpeg[start + 2 + int.from_bytes(jpeg[start + 2 : start + 4], "big") :]
    assert parse_jpeg(stripped).scan == parse_jpeg(jpeg).scan


def _overwrite(jpeg: bytes, at: bytes, replacement: bytes) -> bytes:
    """The JPEG with the bytes from the first occurrence of ``at`` on overwritten."""
    start = jpeg.index(at)
    return jpeg[:start] + replacement + jpeg[start + len(replacement) :]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda j: j[2:], "no SOI"),
        (lambda j: j[:20], "truncated"),
        (lambda j: j[:2] + b"\x00" + j[3:], "marker expected"),
        (lambda j: j[:-2], "no EOI"),
        (lambda j: j[:2] + b"\xff\xd9", "ends before its scan"),
        (lambda j: _overwrite(j, b"\xff\xc0", b"\xff\xc2"), "not baseline Huffman"),
        (lambda j: _overwrite(j, b"\xff\xdb\x00\x43", b"\xff\xdb\x00\x43\x10"), "16-bit"),
        (lambda j: j[:-2] + b"\xff\xda\x00\x02" + b"\xff\xd9", "several scans"),
        (lambda j: _overwrite(j, b"\xff\xc0", bytes.fromhex("ffc0000b080030004001")), "1 comp"),
    ],
)
def test_malformed_jpegs(mutate: Callable[[bytes], bytes], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_jpeg(mutate(_ffmpeg_jpeg(64, 48)))


def test_scan_must_be_the_standard_interleaved_layout() -> None:
    jpeg = _ffmpeg_jpeg(64, 48)
    sos = jpeg.index(b"\xff\xda")
    swapped = jpeg[: sos + 5] + b"\x01\x11" + jpeg[sos + 7 :]  # luma on chroma tables
    with pytest.raises(ProtocolError, match="interleaved baseline scan"):
        parse_jpeg(swapped)


def test_max_payload_must_leave_room() -> None:
    with pytest.raises(ValueError, match="no room"):
        packetize(_ffmpeg_jpeg(64, 48), max_payload=144)
    assert len(packetize(_ffmpeg_jpeg(64, 48), max_payload=145)[0]) == 145
