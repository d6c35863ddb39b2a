"""The back channel's sans-I/O parts: the Require header's option tags and the SDP sections
(ONVIF Streaming Specification, "Back channel connection")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import ProtocolError
from bridge.rtsp.backchannel import BACKCHANNEL
from bridge.rtsp.protocol import RtspConnection, RtspRequest, parse_require, reason_phrase
from bridge.rtsp.sdp import (
    SessionDescription,
    backchannel_media,
    pcmu_media,
    received_by_client,
)


# The specification's examples: without a space after the colon, and with one.
@pytest.mark.parametrize("separator", [b":", b": "])
def test_require_as_the_specification_writes_it(separator: bytes) -> None:
    (request,) = RtspConnection().feed(
        b"DESCRIBE rtsp://192.168.0.1 RTSP/1.0\r\nCseq: 1\r\n"
        b"Require" + separator + b"www.onvif.org/ver20/backchannel\r\n\r\n"
    )
    assert isinstance(request, RtspRequest)
    assert parse_require(request.headers.get_all("Require")) == [BACKCHANNEL]


def test_require_lists_and_repeated_fields() -> None:
    assert parse_require(["a, b,,a", "c"]) == ["a", "b", "c"]
    assert parse_require([]) == []
    assert parse_require([" , "]) == []


@pytest.mark.parametrize("value", ["www.onvif.org/ver20/backchannel x", "a b, c", "\x7f"])
def test_a_tag_with_white_space_or_controls_is_refused(value: str) -> None:
    with pytest.raises(ProtocolError):
        parse_require([value])


@given(st.lists(st.text(max_size=40), max_size=4))
def test_require_parsing_raises_nothing_but_protocol_errors(values: list[str]) -> None:
    try:
        tags = parse_require(values)
    except ProtocolError:
        return
    assert len(tags) == len(set(tags))
    assert all(tag and "," not in tag and " " not in tag for tag in tags)


def test_option_not_supported_has_its_phrase() -> None:
    assert reason_phrase(551) == "Option not supported"


def test_backchannel_section_golden() -> None:
    assert backchannel_media(control="trackID=2").lines() == [
        "m=audio 0 RTP/AVP 0 8",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=control:trackID=2",
        "a=sendonly",
    ]


def test_a_session_with_the_back_channel_reads_back() -> None:
    sdp = SessionDescription(
        media=(
            received_by_client(pcmu_media(control="trackID=0")),
            backchannel_media(control="trackID=1"),
        ),
        host="127.0.0.1",
    )
    parsed = SessionDescription.parse(sdp.serialize())
    sent, talk = parsed.media
    assert ("recvonly", None) in sent.attributes
    assert ("sendonly", None) not in sent.attributes
    assert ("sendonly", None) in talk.attributes
    assert talk.formats == (0, 8)
    assert (talk.rtpmap(0), talk.rtpmap(8)) == ("PCMU/8000", "PCMA/8000")
    assert talk.control == "trackID=1"
