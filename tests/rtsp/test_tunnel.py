"""The RTSP-over-HTTP tunnel's core on bytes: the heads real clients open each half with,
the base64 stream their POSTs carry, and what a hostile peer sends instead."""

from __future__ import annotations

import base64
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import MessageTooLarge, ProtocolError
from bridge.rtsp.protocol import MAX_HEADER_BLOCK, RtspConnection, RtspRequest
from bridge.rtsp.tunnel import (
    MAX_COOKIE,
    TUNNEL_OPENED,
    Base64Decoder,
    Half,
    TunnelData,
    TunnelHead,
    TunnelReceiver,
    http_refusal,
    speaks_http,
)

# The halves ffmpeg 5.1 and GStreamer 1.22 open, byte for byte, each with the start of its POST's
# body (an OPTIONS request): ffprobe -rtsp_transport http rtsp://127.0.0.1:44399/cam/main and
# gst-launch-1.0 rtspsrc location=rtsph://127.0.0.1:36673/cam/main.
FFMPEG_GET = (
    b"GET /cam/main HTTP/1.1\r\nUser-Agent: Lavf/59.27.100\r\nRange: bytes=0-\r\n"
    b"Connection: close\r\nHost: 127.0.0.1:44399\r\nIcy-MetaData: 1\r\n"
    b"x-sessioncookie: b2b8c4786a4aa58b\r\nAccept: application/x-rtsp-tunnelled\r\n"
    b"Pragma: no-cache\r\nCache-Control: no-cache\r\n\r\n"
)
FFMPEG_POST = (
    b"POST /cam/main HTTP/1.1\r\nUser-Agent: Lavf/59.27.100\r\nAccept: */*\r\n"
    b"Connection: close\r\nHost: 127.0.0.1:44399\r\nIcy-MetaData: 1\r\n"
    b"x-sessioncookie: b2b8c4786a4aa58b\r\nContent-Type: application/x-rtsp-tunnelled\r\n"
    b"Pragma: no-cache\r\nCache-Control: no-cache\r\nContent-Length: 32767\r\n"
    b"Expires: Sun, 9 Jan 1972 00:00:00 GMT\r\n\r\n"
)
FFMPEG_OPTIONS = (
    b"T1BUSU9OUyBydHNwOi8vMTI3LjAuMC4xOjQ0Mzk5L2NhbS9tYWluIFJUU1AvMS4wDQpDU2VxOiAxDQpVc2VyLUFn"
    b"ZW50OiBMYXZmNTkuMjcuMTAwDQoNCg=="
)
GSTREAMER_GET = (
    b"GET /cam/main HTTP/1.0\r\nx-sessioncookie: abostjmiwulwlyblxqnxdtr\r\n"
    b"Accept: application/x-rtsp-tunnelled\r\nCache-Control: no-cache\r\nPragma: no-cache\r\n"
    b"Host: 127.0.0.1:36673\r\nDate: Wed, 02 Dec 2026 10:21:24 GMT\r\n\r\n"
)
GSTREAMER_POST = (
    b"POST /cam/main HTTP/1.0\r\nx-sessioncookie: abostjmiwulwlyblxqnxdtr\r\n"
    b"Accept: application/x-rtsp-tunnelled\r\nContent-Type: application/x-rtsp-tunnelled\r\n"
    b"Cache-Control: no-cache\r\nPragma: no-cache\r\nExpires: Sun, 9 Jan 1972 00:00:00 GMT\r\n"
    b"Content-Length: 32767\r\nHost: 127.0.0.1:36673\r\n"
    b"Date: Wed, 02 Dec 2026 10:21:24 GMT\r\n\r\n"
)
GSTREAMER_OPTIONS = (
    b"T1BUSU9OUyBydHNwOi8vMTI3LjAuMC4xOjM2NjczL2NhbS9tYWluIFJUU1AvMS4wDQpDU2VxOiAxDQpVc2VyLUFn"
    b"ZW50OiBHU3RyZWFtZXIvMS4yMi4wDQpEYXRlOiBXZWQsIDAyIERlYyAyMDI2IDEwOjIxOjI0IEdNVA0KDQo="
)
UA = b"User-Agent: Lavf59.27.100\r\n"
OPTIONS = b"OPTIONS rtsp://127.0.0.1:8554/cam/main RTSP/1.0\r\nCSeq: 1\r\n" + UA + b"\r\n"
DESCRIBE = (
    b"DESCRIBE rtsp://127.0.0.1:8554/cam/main RTSP/1.0\r\n"
    b"Accept: application/sdp\r\nCSeq: 2\r\n" + UA + b"\r\n"
)
KEEPALIVE = b"GET_PARAMETER rtsp://127.0.0.1:8554/cam/main RTSP/1.0\r\nCSeq: 3\r\n" + UA + b"\r\n"


def receive(*chunks: bytes) -> list[TunnelHead | TunnelData]:
    receiver = TunnelReceiver()
    events: list[TunnelHead | TunnelData] = []
    for chunk in chunks:
        receiver.receive_data(chunk)
        while (event := receiver.next_event()) is not None:
            events.append(event)
    return events


def decoded(events: list[TunnelHead | TunnelData]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, TunnelData))


@pytest.mark.parametrize(
    ("prefix", "verdict"),
    [
        (b"GET ", True),
        (b"POST /x HTTP/1.0", True),
        (b"G", None),
        (b"POS", None),
        (b"GET", None),
        (b"GET_PARAMETER rtsp://h/ RTSP/1.0", False),  # RTSP, however it begins
        (b"OPTIONS", False),
        (b"$\x00\x00\x04", False),
        (b"get ", False),  # HTTP methods are case-sensitive
        (b"PUT ", False),
    ],
)
def test_tells_a_tunnel_half_from_rtsp_by_its_first_bytes(
    prefix: bytes, verdict: bool | None
) -> None:
    assert speaks_http(prefix) is verdict


@pytest.mark.parametrize(
    ("get", "post", "options", "cookie"),
    [
        (FFMPEG_GET, FFMPEG_POST, FFMPEG_OPTIONS, "b2b8c4786a4aa58b"),
        (GSTREAMER_GET, GSTREAMER_POST, GSTREAMER_OPTIONS, "abostjmiwulwlyblxqnxdtr"),
    ],
    ids=["ffmpeg", "gstreamer"],
)
def test_real_clients_open_both_halves(
    get: bytes, post: bytes, options: bytes, cookie: str
) -> None:
    assert receive(get) == [TunnelHead(Half.GET, "/cam/main", cookie)]
    events = receive(post + options)
    assert events[0] == TunnelHead(Half.POST, "/cam/main", cookie)
    (request,) = RtspConnection().feed(decoded(events))
    assert isinstance(request, RtspRequest)
    assert (request.method, request.cseq) == ("OPTIONS", "1")


def test_bytes_after_a_get_are_ignored() -> None:
    # gortsplib announces a Content-Length on its GET; nothing sent there means anything.
    receiver = TunnelReceiver()
    receiver.receive_data(FFMPEG_GET + base64.b64encode(OPTIONS))
    assert isinstance(receiver.next_event(), TunnelHead)
    receiver.receive_data(b"junk" * 1000)
    assert receiver.next_event() is None
    assert receiver.buffered == 0


def test_an_ffmpeg_post_carries_separately_encoded_requests() -> None:
    # Each request is encoded on its own: DESCRIBE's ends in '=' padding mid-stream.
    body = b"".join(base64.b64encode(r) for r in (OPTIONS, DESCRIBE, KEEPALIVE))
    assert base64.b64encode(DESCRIBE).endswith(b"=")
    events = receive(FFMPEG_POST + body)
    assert events[0] == TunnelHead(Half.POST, "/cam/main", "b2b8c4786a4aa58b")
    requests = RtspConnection().feed(decoded(events))
    assert [r.method for r in requests if isinstance(r, RtspRequest)] == [
        "OPTIONS",
        "DESCRIBE",
        "GET_PARAMETER",
    ]


def test_line_breaks_and_spaces_in_the_base64_are_skipped() -> None:
    # Some clients wrap their base64 at 76 characters, as MIME does.
    wrapped = base64.encodebytes(OPTIONS).replace(b"\n", b"\r\n") + b" \t\r\n"
    assert decoded(receive(FFMPEG_POST, wrapped)) == OPTIONS


def test_a_quantum_split_across_reads_waits_for_its_end() -> None:
    receiver = TunnelReceiver()
    receiver.receive_data(FFMPEG_POST + b"T1BU")
    assert receiver.next_event() is not None  # the head
    assert receiver.next_event() == TunnelData(b"OPT")
    receiver.receive_data(b"SU")
    assert receiver.next_event() is None
    assert receiver.buffered == 2
    receiver.receive_data(b"9O")
    assert receiver.next_event() == TunnelData(b"ION")


@pytest.mark.parametrize(
    "text",
    [
        b"T1B*",  # outside the alphabet
        b"T1BU\x00AAA",
        b"=AAA",  # padding first
        b"T===",  # one character cannot encode a byte
        b"QQ=A",  # data after padding within a quantum
        b"-_-_",  # the URL-safe alphabet is another encoding
    ],
)
def test_garbage_in_the_base64_is_a_protocol_error(text: bytes) -> None:
    with pytest.raises(ProtocolError, match="not base64"):
        receive(FFMPEG_POST, text)


@pytest.mark.parametrize(
    ("head", "error", "message"),
    [
        (b"GET /cam/main HTTP/1.1\r\nHost: h\r\n\r\n", ProtocolError, "x-sessioncookie"),
        (
            b"GET / HTTP/1.1\r\nx-sessioncookie: a\r\nx-sessioncookie: b\r\n\r\n",
            ProtocolError,
            "x-sessioncookie",
        ),
        (b"GET / HTTP/1.1\r\nx-sessioncookie:\r\n\r\n", ProtocolError, "empty"),
        (b"GET / HTTP/1.1\r\nx-sessioncookie: a b\r\n\r\n", ProtocolError, "visible ASCII"),
        (b"GET / HTTP/2.0\r\nx-sessioncookie: a\r\n\r\n", ProtocolError, "request line"),
        (b"GET  HTTP/1.1\r\nx-sessioncookie: a\r\n\r\n", ProtocolError, "request line"),
        (b"GET / RTSP/1.0\r\nx-sessioncookie: a\r\n\r\n", ProtocolError, "request line"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", ProtocolError, "header line 2"),
        (b"GET / HTTP/1.1\r\nx-sessioncookie: a\x01\r\n\r\n", ProtocolError, "control"),
        (
            b"GET / HTTP/1.1\r\nx-sessioncookie: " + b"c" * (MAX_COOKIE + 1) + b"\r\n\r\n",
            MessageTooLarge,
            "x-sessioncookie longer",
        ),
    ],
)
def test_malformed_heads_are_refused_without_quoting_them(
    head: bytes, error: type[ProtocolError], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        receive(head)
    for line in head.decode("latin-1").split("\r\n")[1:]:
        assert not line or line not in str(raised.value)


def test_a_cookie_of_the_longest_length_is_taken() -> None:
    head = b"POST / HTTP/1.0\r\nx-sessioncookie: " + b"c" * MAX_COOKIE + b"\r\n\r\n"
    assert receive(head) == [TunnelHead(Half.POST, "/", "c" * MAX_COOKIE)]


def test_an_endless_head_is_refused_at_the_cap() -> None:
    receiver = TunnelReceiver()
    request_line, line = b"GET / HTTP/1.1\r\n", b"X-Filler: 0123456789\r\n"
    receiver.receive_data(request_line)
    for _ in range((MAX_HEADER_BLOCK - len(request_line)) // len(line)):
        receiver.receive_data(line)
        assert receiver.next_event() is None
    receiver.receive_data(line)
    with pytest.raises(MessageTooLarge, match="HTTP head"):
        receiver.next_event()


def test_a_head_past_the_cap_is_refused_even_when_complete() -> None:
    filler = b"X-Filler: " + b"f" * MAX_HEADER_BLOCK + b"\r\n"
    with pytest.raises(MessageTooLarge):
        receive(b"GET / HTTP/1.1\r\nx-sessioncookie: a\r\n" + filler + b"\r\n")


def test_the_get_answer_and_refusals_are_complete_http_responses() -> None:
    status, _, rest = TUNNEL_OPENED.partition(b"\r\n")
    assert status == b"HTTP/1.0 200 OK"
    assert b"Content-Type: application/x-rtsp-tunnelled\r\n" in rest
    assert b"Content-Length" not in rest  # the body ends with the connection
    assert TUNNEL_OPENED.endswith(b"\r\n\r\n")
    assert http_refusal(404) == b"HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\n"


_messages = st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=8)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(
    messages=_messages,
    cuts=st.lists(st.integers(0, 4000), max_size=20),
    separators=st.lists(st.sampled_from([b"", b"\r\n", b"\n", b" ", b"\t"]), min_size=8),
)
def test_any_chunking_decodes_to_the_same_bytes(
    messages: list[bytes], cuts: list[int], separators: list[bytes]
) -> None:
    text = b"".join(
        base64.b64encode(m) + separators[i % len(separators)] for i, m in enumerate(messages)
    )
    decoder = Base64Decoder()
    out = b"".join(decoder.decode(piece) for piece in _split(text, cuts))
    assert out == b"".join(messages)
    assert decoder.pending == 0


@given(
    message=st.binary(min_size=1, max_size=300),
    cuts=st.lists(st.integers(0, 600), max_size=10),
)
def test_any_chunking_of_a_whole_post_gives_one_head_and_the_requests(
    message: bytes, cuts: list[int]
) -> None:
    events = receive(*_split(FFMPEG_POST + base64.b64encode(message), cuts))
    assert [e for e in events if isinstance(e, TunnelHead)] == [
        TunnelHead(Half.POST, "/cam/main", "b2b8c4786a4aa58b")
    ]
    assert decoded(events) == message


@given(
    message=st.binary(min_size=1, max_size=120),
    position=st.integers(0, 200),
    garbage=st.sampled_from([b"*", b"\x00", b"-", b"_", b"\xff", b"%", b".", b"\x7f"]),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_garbage_anywhere_is_a_clean_error(
    message: bytes, position: int, garbage: bytes, cuts: list[int]
) -> None:
    # Inserted before the last character, the garbage always lands in a complete quantum.
    text = base64.b64encode(message)
    at = position % len(text)
    decoder = Base64Decoder()
    pieces = _split(text[:at] + garbage + text[at:], cuts)
    with pytest.raises(ProtocolError, match="not base64"):
        b"".join(decoder.decode(piece) for piece in pieces)
