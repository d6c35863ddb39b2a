"""The multipart parser against every quirk legacy cameras send, on bytes, with no sockets."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cameras.multipart import MultipartParser, Part, boundary_from_content_type
from bridge.errors import MessageTooLarge, ProtocolError


def _real_jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))


JPEG_A = _real_jpeg(seed=1)
JPEG_B = _real_jpeg(seed=2)
# A JPEG whose APP1 segment embeds a thumbnail, so an FFD9 appears before the real end.
JPEG_WITH_THUMB = JPEG_A[:2] + b"\xff\xe1\x00\x08\xff\xd8\xff\xd9" + JPEG_A[2:]


def feed_in_pieces(parser: MultipartParser, data: bytes, cuts: list[int]) -> list[Part]:
    parts: list[Part] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        parts += parser.feed(data[start:cut])
        start = cut
    return parts


def stream(
    bodies: list[bytes],
    *,
    delimiter: bytes = b"--myboundary",
    eol: bytes = b"\r\n",
    content_length: bool = True,
    header_case: str = "Content-Type",
    preamble: bytes = b"",
    between: bytes = b"\r\n",
) -> bytes:
    out = bytearray(preamble)
    for body in bodies:
        out += delimiter + eol + header_case.encode() + b": image/jpeg" + eol
        if content_length:
            out += b"Content-Length: %d" % len(body) + eol
        out += eol + body + between
    out += delimiter + eol
    return bytes(out)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/x-mixed-replace; boundary=myboundary", "myboundary"),
        ('multipart/x-mixed-replace;boundary="myboundary"', "myboundary"),
        ("multipart/x-mixed-replace; boundary=--myboundary", "--myboundary"),
        ("multipart/x-mixed-replace;boundary=--video boundary--", "--video boundary--"),
        ("multipart/x-mixed-replace; BOUNDARY=abc; charset=x", "abc"),
        ("image/jpeg", None),
    ],
)
def test_boundary_is_read_from_any_declared_form(content_type: str, expected: str | None) -> None:
    assert boundary_from_content_type(content_type) == expected


@pytest.mark.parametrize(
    ("declared", "delimiter"),
    [
        ("myboundary", b"--myboundary"),
        ("--myboundary", b"--myboundary"),
        ("--myboundary", b"----myboundary"),  # declared with dashes, then prefixed again
        ("--video boundary--", b"--video boundary--"),
        ('"quoted"', b"--quoted"),
        (None, b"--sniffed"),
    ],
)
def test_every_boundary_form_yields_the_frames(declared: str | None, delimiter: bytes) -> None:
    parser = MultipartParser(declared.strip('"') if declared else None)
    parts = parser.feed(stream([JPEG_A, JPEG_B], delimiter=delimiter))
    assert [p.body for p in parts] == [JPEG_A, JPEG_B]
    assert parts[0].content_type == "image/jpeg"


def test_jpeg_without_content_length_is_emitted_at_its_end_marker() -> None:
    parser = MultipartParser("myboundary")
    head = b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n"
    # No delimiter after the body yet: the frame must come out anyway (no added latency).
    assert [p.body for p in parser.feed(head + JPEG_A)] == [JPEG_A]


def test_end_marker_inside_an_embedded_thumbnail_does_not_cut_the_frame() -> None:
    parser = MultipartParser("myboundary")
    data = stream([JPEG_WITH_THUMB, JPEG_B], content_length=False)
    assert [p.body for p in parser.feed(data)] == [JPEG_WITH_THUMB, JPEG_B]


def test_text_part_without_length_ends_at_next_delimiter_even_without_crlf() -> None:
    parser = MultipartParser("--video boundary--")
    data = (
        b"--video boundary--\nContent-type: text/plain\n\nlevel=5"
        b"--video boundary--\r\nContent-Type: text/plain\r\n\r\nlevel=7\r\n--video boundary--\r\n"
    )
    assert [p.body for p in parser.feed(data)] == [b"level=5", b"level=7"]


def test_lf_only_lines_extra_blank_lines_and_junk_preamble() -> None:
    parser = MultipartParser("myboundary")
    data = stream(
        [JPEG_A, JPEG_B],
        eol=b"\n",
        preamble=b"HTTP junk the camera printed\r\n\r\n",
        between=b"\r\n\r\n\n",
    )
    assert [p.body for p in parser.feed(data)] == [JPEG_A, JPEG_B]


def test_missing_blank_line_after_headers_still_finds_the_jpeg() -> None:
    parser = MultipartParser("myboundary")
    data = b"--myboundary\r\nContent-Type: image/jpeg\r\n" + JPEG_A + b"\r\n--myboundary\r\n"
    assert [p.body for p in parser.feed(data)] == [JPEG_A]


def test_missing_crlf_between_body_and_delimiter() -> None:
    parser = MultipartParser("myboundary")
    data = stream([JPEG_A, JPEG_B], between=b"")
    assert [p.body for p in parser.feed(data)] == [JPEG_A, JPEG_B]


@pytest.mark.parametrize("case", ["content-type", "CONTENT-TYPE", "Content-type"])
def test_header_names_in_any_case(case: str) -> None:
    parser = MultipartParser("myboundary")
    data = stream([JPEG_A], header_case=case).replace(b"Content-Length", b"content-LENGTH")
    (part,) = parser.feed(data)
    assert part.headers["content-type"] == "image/jpeg"
    assert part.headers["content-length"] == str(len(JPEG_A))


def test_per_part_headers_are_kept() -> None:
    parser = MultipartParser("--video boundary--")
    data = (
        b"--video boundary--\r\nContent-type: image/jpeg\r\nContent-Length: %d\r\n"
        b"Date: 01-01-2010 10:00:00 IO_00000000_PT_170_045\r\n\r\n" % len(JPEG_A) + JPEG_A + b"\r\n"
    )
    (part,) = parser.feed(data)
    assert part.headers["date"] == "01-01-2010 10:00:00 IO_00000000_PT_170_045"


def test_oversized_part_is_an_error_not_unbounded_memory() -> None:
    parser = MultipartParser("myboundary", max_part_size=10_000)
    parser.feed(b"--myboundary\r\nContent-Type: text/plain\r\n\r\n")
    for _ in range(10):
        parser.feed(b"x" * 1000)
    with pytest.raises(MessageTooLarge):
        parser.feed(b"x" * 1000)
    assert parser.buffered < 20_000


def test_declared_length_over_the_cap_is_refused_at_once() -> None:
    parser = MultipartParser("myboundary", max_part_size=10_000)
    with pytest.raises(MessageTooLarge):
        parser.feed(b"--myboundary\r\nContent-Length: 999999\r\n\r\n")


@pytest.mark.parametrize(
    "length",
    [b"\xb2", b"\xb9\xb3", b"9" * 5000, b"-5", b"12 kB"],
    ids=["superscript-2", "superscript-13", "5000-digits", "negative", "with-unit"],
)
def test_a_length_that_is_no_number_is_ignored(length: bytes) -> None:
    """Byte 0xB2 is "²" in latin-1: str.isdigit() takes it, int() does not; 5000 digits are
    past what int() reads. The part is still found by its end marker."""
    data = b"--myboundary\r\nContent-Length: " + length + b"\r\n\r\n" + JPEG_A + b"\r\n"
    parts = MultipartParser("myboundary").feed(data)
    assert [part.body for part in parts] == [JPEG_A]


def test_stream_that_never_yields_a_part_is_an_error() -> None:
    parser = MultipartParser("myboundary", max_part_size=10_000)
    garbage = b"garbage line with no delimiter\r\n" * 40
    for _ in range(8):  # 8 x 1320 bytes, less the kept tail, stays under the cap
        parser.feed(garbage)
    with pytest.raises(MessageTooLarge):
        parser.feed(garbage)
    assert parser.buffered < 2_000


def test_empty_boundary_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        MultipartParser("--")


def test_parses_a_stream_written_by_pyav_mpjpeg_muxer() -> None:
    """Bytes from an independent writer (FFmpeg's mpjpeg muxer), not our own fixtures."""
    sink = io.BytesIO()
    with av.open(sink, "w", format="mpjpeg") as container:
        out = container.add_stream("mjpeg", rate=10)
        out.width, out.height, out.pix_fmt = 64, 48, "yuvj420p"
        for index in range(3):
            image = np.full((48, 64, 3), index * 60, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in out.encode(frame):
                container.mux(packet)
        for packet in out.encode(None):
            container.mux(packet)
    parts = MultipartParser("ffmpeg").feed(sink.getvalue())
    assert len(parts) == 3
    assert all(p.body.startswith(b"\xff\xd8") and p.body.endswith(b"\xff\xd9") for p in parts)


quirky_streams = st.sampled_from(
    [
        ("myboundary", stream([JPEG_A, JPEG_B, JPEG_WITH_THUMB])),
        ("myboundary", stream([JPEG_A, JPEG_B, JPEG_WITH_THUMB], content_length=False)),
        (
            "--video boundary--",
            stream([JPEG_A, JPEG_B, JPEG_WITH_THUMB], delimiter=b"--video boundary--", eol=b"\n"),
        ),
        (None, stream([JPEG_A, JPEG_B, JPEG_WITH_THUMB], preamble=b"junk\r\n", between=b"")),
    ]
)


@settings(max_examples=300, deadline=None)
@given(case=quirky_streams, data=st.data())
def test_any_read_split_gives_the_same_frames(
    case: tuple[str | None, bytes], data: st.DataObject
) -> None:
    boundary, raw = case
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=40))
    parts = feed_in_pieces(MultipartParser(boundary), raw, cuts)
    assert [p.body for p in parts] == [JPEG_A, JPEG_B, JPEG_WITH_THUMB]


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=20))
def test_arbitrary_bytes_never_crash_or_grow(noise: bytes, cuts: list[int]) -> None:
    parser = MultipartParser("myboundary", max_part_size=4096)
    try:
        feed_in_pieces(parser, b"--myboundary\r\n" + noise, cuts)
    except ProtocolError:
        return
    assert parser.buffered <= 4096 + 16 * 1024
