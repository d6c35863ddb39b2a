"""RTSP message framing and header values, on bytes, the way real clients send them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import MessageTooLarge, ProtocolError
from bridge.rtsp.protocol import (
    MAX_BODY,
    MAX_HEADER_BLOCK,
    Event,
    Headers,
    InterleavedFrame,
    RtspConnection,
    RtspRequest,
    RtspResponse,
    TransportSpec,
    interleaved_header,
    parse_session,
    parse_transport,
    reason_phrase,
)

# What ffmpeg 5.1 sends, byte for byte (User-Agent shortened).
FFMPEG_OPTIONS = (
    b"OPTIONS rtsp://127.0.0.1:8554/cam1 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n"
)
FFMPEG_SETUP = (
    b"SETUP rtsp://127.0.0.1:8554/cam1/trackID=0 RTSP/1.0\r\n"
    b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    b"CSeq: 3\r\n"
    b"User-Agent: Lavf59.27.100\r\n"
    b"\r\n"
)
# An RTCP receiver report as a client interleaves it on channel 1.
RR_FRAME = b"$\x01\x00\x08" + bytes.fromhex("80c90001deadbeef")


def feed_all(data: bytes, cuts: list[int] | None = None) -> list[Event]:
    conn = RtspConnection()
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts or [])), len(data)]:
        events += conn.feed(data[start:cut])
        start = cut
    assert conn.buffered == 0
    return events


def test_parses_an_ffmpeg_options_request() -> None:
    [request] = feed_all(FFMPEG_OPTIONS)
    assert isinstance(request, RtspRequest)
    assert (request.method, request.uri, request.version) == (
        "OPTIONS",
        "rtsp://127.0.0.1:8554/cam1",
        "RTSP/1.0",
    )
    assert request.cseq == "1"
    assert request.headers["user-agent"] == "Lavf59.27.100"
    assert request.body == b""
    assert request.serialize() == FFMPEG_OPTIONS


def test_requests_and_interleaved_frames_in_one_read() -> None:
    events = feed_all(FFMPEG_OPTIONS + RR_FRAME + FFMPEG_SETUP + RR_FRAME)
    assert [type(e).__name__ for e in events] == [
        "RtspRequest",
        "InterleavedFrame",
        "RtspRequest",
        "InterleavedFrame",
    ]
    assert events[1] == InterleavedFrame(1, bytes.fromhex("80c90001deadbeef"))
    assert isinstance(events[2], RtspRequest)
    assert events[2].headers["Transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1"


def test_every_split_point_gives_the_same_events() -> None:
    data = FFMPEG_OPTIONS + RR_FRAME + FFMPEG_SETUP
    whole = feed_all(data)
    for cut in range(1, len(data)):
        assert feed_all(data, [cut]) == whole
    assert feed_all(data, list(range(len(data)))) == whole  # one byte per read


def test_lf_only_lines_blank_keepalives_folding_and_repeats() -> None:
    data = (
        b"\r\n\r\n"  # CRLF keepalives between messages
        b"GET_PARAMETER rtsp://h/cam RTSP/1.0\n"
        b"cseq: 7\n"
        b"Session: 12345678\n"
        b"X-Note: first part\n"
        b"\t second part\n"
        b"Require: a\n"
        b"Require: b\n"
        b"\n"
    )
    [request] = feed_all(data)
    assert isinstance(request, RtspRequest)
    assert request.cseq == "7"
    assert request.headers["X-NOTE"] == "first part second part"
    assert request.headers.get_all("require") == ["a", "b"]
    assert "session" in request.headers
    assert "Content-Length" not in request.headers


def test_body_by_content_length() -> None:
    body = b"position\r\n"
    data = (
        b"SET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 9\r\nContent-Type: text/parameters\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    [request] = feed_all(data + RR_FRAME)[:1]
    assert isinstance(request, RtspRequest)
    assert request.body == body
    assert request.serialize() == data


def test_response_echoes_cseq_and_sets_content_length() -> None:
    [request] = feed_all(FFMPEG_SETUP)
    assert isinstance(request, RtspRequest)
    response = RtspResponse.reply(
        request,
        200,
        [("CSeq", "999"), ("Content-Type", "application/sdp"), ("Content-Length", "1")],
        b"v=0\r\n",
    )
    assert response.serialize() == (
        b"RTSP/1.0 200 OK\r\n"
        b"CSeq: 3\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 5\r\n"
        b"\r\n"
        b"v=0\r\n"
    )
    assert RtspResponse(454).serialize() == b"RTSP/1.0 454 Session Not Found\r\n\r\n"
    assert RtspResponse(200, "Fine").serialize() == b"RTSP/1.0 200 Fine\r\n\r\n"


def test_response_refuses_header_injection() -> None:
    response = RtspResponse(200, headers=Headers({"Session": "1\r\nX-Evil: 1"}))
    with pytest.raises(ValueError, match="Session"):
        response.serialize()
    with pytest.raises(ValueError, match="cannot be serialized"):
        RtspResponse(200, headers=Headers({"Bad Name": "x"})).serialize()


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (200, "OK"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (451, "Parameter Not Understood"),
        (453, "Not Enough Bandwidth"),
        (454, "Session Not Found"),
        (455, "Method Not Valid in This State"),
        (457, "Invalid Range"),
        (459, "Aggregate Operation Not Allowed"),
        (461, "Unsupported Transport"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (505, "RTSP Version Not Supported"),
    ],
)
def test_reason_phrases(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase


def test_unknown_status_has_no_phrase() -> None:
    with pytest.raises(ValueError, match="299"):
        RtspResponse(299)


def test_interleaved_framing_golden_bytes() -> None:
    assert InterleavedFrame(0, b"\x80\x60").serialize() == b"$\x00\x00\x02\x80\x60"
    assert interleaved_header(255, 65535) == b"$\xff\xff\xff"
    with pytest.raises(ValueError, match="channel"):
        interleaved_header(256, 1)
    with pytest.raises(ValueError, match="16-bit"):
        interleaved_header(0, 65536)
    # A zero-length frame is odd but well-formed.
    assert feed_all(b"$\x02\x00\x00") == [InterleavedFrame(2, b"")]


def test_headers_mapping_behaviour() -> None:
    headers = Headers([("CSeq", "1"), ("Require", "a")])
    headers.add("require", "b")
    headers.set("REQUIRE", "c")
    assert list(headers) == [("CSeq", "1"), ("REQUIRE", "c")]
    assert headers == Headers({"cseq": "1", "require": "c"})
    assert headers.get("missing", "x") == "x"
    assert len(headers) == 2
    with pytest.raises(KeyError):
        headers["missing"]
    assert 1 not in headers


@pytest.mark.parametrize(
    "request_line",
    [
        b"OPTIONS rtsp://h/ HTTP/1.1",  # not RTSP
        b"RTSP/1.0 200 OK",  # a response, but the server sends no requests
        b"OPTIONS rtsp://h/",  # no version
        b"OPTIONS rtsp://h/ RTSP/1.0 extra",
        b"OPT(IONS rtsp://h/ RTSP/1.0",  # method is not a token
        b"\x00\x01\x02",
    ],
)
def test_malformed_request_line(request_line: bytes) -> None:
    with pytest.raises(ProtocolError, match="request line"):
        RtspConnection().feed(request_line + b"\r\nCSeq: 1\r\n\r\n")


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"CSeq 1", "header line"),  # no colon
        (b": value", "header line"),  # empty name
        (b"Bad Name: 1", "header line"),
        (b" folded: first", "continuation"),
        (b"Content-Length: -1", "Content-Length"),
        (b"Content-Length: 12abc", "Content-Length"),
        (b"Content-Length: 1\r\nContent-Length: 2", "Content-Length"),
    ],
)
def test_malformed_headers(header: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        RtspConnection().feed(b"OPTIONS * RTSP/1.0\r\n" + header + b"\r\n\r\n")


@pytest.mark.parametrize(
    "header",
    [
        b"CSeq: 1\rX-Injected: 1",  # a bare CR: would be a second header line once echoed
        b"User-Agent: Lavf\x00",
        b"X-Note: \x7f",
        b"X-Note: first\r\n second\x01",  # in a folded continuation too
    ],
)
def test_control_characters_in_header_values(header: bytes) -> None:
    with pytest.raises(ProtocolError, match="control character"):
        RtspConnection().feed(b"OPTIONS * RTSP/1.0\r\n" + header + b"\r\n\r\n")


def test_tabs_and_latin1_in_header_values_are_fine() -> None:
    [request] = feed_all(b"OPTIONS * RTSP/1.0\r\nCSeq:  12 \r\nX-Note: a\tb\xe9\r\n\r\n")
    assert isinstance(request, RtspRequest)
    assert request.cseq == "12"
    assert request.headers["X-Note"] == "a\tb\xe9"


@pytest.mark.parametrize("cseq", [b"1a", b"-1", b"1 2", b""])
def test_cseq_is_a_number(cseq: bytes) -> None:
    """Every response echoes CSeq: anything but digits is refused before it can be."""
    with pytest.raises(ProtocolError, match="CSeq"):
        RtspConnection().feed(b"OPTIONS * RTSP/1.0\r\nCSeq: " + cseq + b"\r\n\r\n")


@pytest.mark.parametrize("uri", [b"rtsp://h/ca\rm", b"rtsp://h/\x00", b"rtsp://h/caf\xe9"])
def test_request_uri_is_visible_ascii(uri: bytes) -> None:
    with pytest.raises(ProtocolError, match="request line"):
        RtspConnection().feed(b"SETUP " + uri + b" RTSP/1.0\r\nCSeq: 1\r\n\r\n")


@pytest.mark.parametrize(
    "head",
    [
        b"DESCRIBE rtsp://h/cam RTSP/1.0\r\nAuthorization Basic dXNlcjpzM2NyM3Q=",
        b"DESCRIBE rtsp://user:s3cr3t@h/cam HTTP/1.1\r\nCSeq: 1",
        b"DESCRIBE rtsp://h/cam RTSP/1.0\r\nAuthorization: Basic dXNlcjpzM2NyM3Q=\x01",
    ],
)
def test_errors_say_what_was_wrong_not_what_was_sent(head: bytes) -> None:
    """Error messages end up in the log: never with a request's credentials in them."""
    with pytest.raises(ProtocolError) as caught:
        RtspConnection().feed(head + b"\r\n\r\n")
    assert "dXNlcjpzM2NyM3Q" not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_request_repr_hides_its_credentials() -> None:
    [request] = feed_all(
        b"DESCRIBE rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\n"
        b"Authorization: Basic dXNlcjpzM2NyM3Q=\r\n\r\n"
    )
    assert "dXNlcjpzM2NyM3Q" not in repr(request)
    assert "('Authorization', '***')" in repr(request)
    assert request.headers["Authorization"] == "Basic dXNlcjpzM2NyM3Q="


def test_repeated_equal_content_length_is_accepted() -> None:
    data = b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab"
    [request] = feed_all(data)
    assert isinstance(request, RtspRequest)
    assert request.body == b"ab"


def test_header_block_cap_while_streaming_and_when_complete() -> None:
    conn = RtspConnection()
    conn.feed(b"OPTIONS * RTSP/1.0\r\n")
    for _ in range(MAX_HEADER_BLOCK // 11 - 2):
        conn.feed(b"X-Pad: 12\r\n")  # 11 bytes a line
    with pytest.raises(MessageTooLarge, match="8192"):
        conn.feed(b"X-Pad: 12\r\n" * 3)
    big = b"OPTIONS * RTSP/1.0\r\nX-Pad: " + b"a" * MAX_HEADER_BLOCK + b"\r\n\r\n"
    with pytest.raises(MessageTooLarge):
        RtspConnection().feed(big)
    # Exactly at the cap still parses.
    head = b"OPTIONS * RTSP/1.0\r\nX-Pad: \r\n\r\n"
    exact = head.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (MAX_HEADER_BLOCK - len(head)))
    assert len(exact) == MAX_HEADER_BLOCK
    assert len(feed_all(exact)) == 1


def test_body_cap_is_checked_before_the_body_arrives() -> None:
    head = b"ANNOUNCE * RTSP/1.0\r\nContent-Length: %d\r\n\r\n"
    with pytest.raises(MessageTooLarge, match="65537"):
        RtspConnection().feed(head % (MAX_BODY + 1))
    with pytest.raises(MessageTooLarge):
        RtspConnection().feed(head % 10**4000)  # longer than int() would convert
    [request] = feed_all(head % MAX_BODY + b"x" * MAX_BODY)
    assert isinstance(request, RtspRequest)
    assert len(request.body) == MAX_BODY


def test_connection_is_dead_after_an_error() -> None:
    conn = RtspConnection()
    with pytest.raises(ProtocolError):
        conn.feed(b"garbage\r\n\r\n")
    with pytest.raises(ProtocolError, match="already failed"):
        conn.feed(FFMPEG_OPTIONS)


def test_next_event_answers_pipelined_requests_before_raising() -> None:
    conn = RtspConnection()
    conn.receive_data(FFMPEG_OPTIONS + RR_FRAME + b"junk\r\n\r\n")
    assert isinstance(conn.next_event(), RtspRequest)
    assert isinstance(conn.next_event(), InterleavedFrame)
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_incomplete_input_waits() -> None:
    conn = RtspConnection()
    assert conn.feed(FFMPEG_OPTIONS[:-1]) == []
    [request] = conn.feed(FFMPEG_OPTIONS[-1:] + RR_FRAME[:5])  # request done, frame is not
    assert isinstance(request, RtspRequest)
    assert conn.buffered == 5
    assert conn.feed(RR_FRAME[5:]) == [InterleavedFrame(1, RR_FRAME[4:])]


# -- arbitrary streams ---------------------------------------------------------------------

_TOKENS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12)
# Visible ASCII and obs-text (RFC 7230 field-vchar): what a header value may hold.
_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=40,
)


@st.composite
def _requests(draw: st.DrawFn) -> RtspRequest:
    names = draw(st.lists(st.sampled_from(["CSeq", "Session", "Transport", "X-Y"]), max_size=4))
    cseq = st.integers(0, 2**31).map(str)  # the one value the parser wants digits in
    headers = Headers([(name, draw(cseq if name == "CSeq" else _VALUES)) for name in names])
    return RtspRequest(
        draw(_TOKENS),
        "rtsp://host/" + draw(st.text(alphabet="abc/=0123456789", max_size=20)),
        "RTSP/1.0",
        headers,
        draw(st.binary(max_size=300)),
    )


_frames = st.builds(InterleavedFrame, st.integers(0, 255), st.binary(max_size=300))


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(st.one_of(_requests(), _frames), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    lf_only=st.booleans(),
)
def test_arbitrary_streams_split_anywhere(
    events: list[Event], cuts: list[int], lf_only: bool
) -> None:
    chunks = []
    for event in events:
        raw = event.serialize()
        if lf_only and isinstance(event, RtspRequest):
            head, _, body = raw.partition(b"\r\n\r\n")
            raw = head.replace(b"\r\n", b"\n") + b"\n\n" + body
        chunks.append(raw)
    data = b"".join(chunks)
    parsed = feed_all(data, [cut for cut in cuts if cut < len(data)])
    # Compared serialized: a parsed request also carries the Content-Length it arrived with.
    assert [event.serialize() for event in parsed] == [event.serialize() for event in events]
    assert [type(event) for event in parsed] == [type(event) for event in events]


# -- header values -------------------------------------------------------------------------


def test_transport_alternatives_in_preference_order() -> None:
    specs = parse_transport(
        "RTP/AVP/TCP;unicast;interleaved=0-1, "
        'RTP/AVP;unicast;client_port=5000-5001;ssrc=0A0b0C0d;mode="PLAY",'
        "rtp/avp/udp;multicast;client_port=6000"
    )
    assert specs == [
        TransportSpec("RTP/AVP", "TCP", "unicast", interleaved=(0, 1)),
        TransportSpec(
            "RTP/AVP", None, "unicast", client_port=(5000, 5001), ssrc=0x0A0B0C0D, mode="PLAY"
        ),
        TransportSpec("RTP/AVP", "UDP", "multicast", client_port=(6000, 6001)),
    ]
    assert specs[0].is_tcp
    assert not specs[1].is_tcp
    assert not specs[2].is_tcp


def test_transport_ignores_unknown_and_third_party_destination() -> None:
    [spec] = parse_transport(
        "RTP/AVP;unicast;destination=10.0.0.9;client_port=4588-4589;x-foo=bar;append"
    )
    assert spec == TransportSpec("RTP/AVP", None, "unicast", client_port=(4588, 4589))


def test_transport_serialize_golden() -> None:
    reply = TransportSpec(
        "RTP/AVP",
        "UDP",
        "unicast",
        client_port=(5000, 5001),
        server_port=(6970, 6971),
        ssrc=0x1234ABCD,
    )
    assert reply.serialize() == (
        "RTP/AVP/UDP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1234ABCD"
    )
    tcp = TransportSpec("RTP/AVP", "TCP", "unicast", interleaved=(2, 3), mode="PLAY")
    assert tcp.serialize() == "RTP/AVP/TCP;unicast;interleaved=2-3;mode=PLAY"
    assert parse_transport(tcp.serialize()) == [tcp]
    assert parse_transport(reply.serialize()) == [reply]


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ",
        "RTP",
        "RTP/AVP/TCP/X",
        "RTP/AVP;client_port=70000-70001",
        "RTP/AVP;client_port=5001-5000",
        "RTP/AVP;client_port=65535",  # RTCP would be on port 65536
        "RTP/AVP;client_port=abc",
        "RTP/AVP/TCP;interleaved=255",
        "RTP/AVP/TCP;interleaved=0-256",
        "RTP/AVP;ssrc=123456789",
        "RTP/AVP;ssrc=xyz",
    ],
)
def test_bad_transport(value: str) -> None:
    with pytest.raises(ProtocolError):
        parse_transport(value)


def test_session_header() -> None:
    assert parse_session("12345678") == ("12345678", None)
    assert parse_session(" 4f3c.a_b-$+ ; timeout=60") == ("4f3c.a_b-$+", 60)
    assert parse_session("ABC;foo=1;Timeout=5") == ("ABC", 5)
    for bad in ("", "a b", "abc;timeout=x", "abc;timeout=-1", "abc;timeout=9999999999"):
        with pytest.raises(ProtocolError):
            parse_session(bad)
