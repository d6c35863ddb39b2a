"""The soak fuzzer's mutations, driven by hypothesis (which shrinks a failure to its smallest
case), fed straight to the sans-I/O cores: a mutated message gives events or the project's
ProtocolError/OnvifFault, never another exception, and nothing a core lets through can break
the answer to it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import OnvifFault, ProtocolError
from bridge.onvif.soap import parse_envelope
from bridge.rtsp.protocol import (
    MAX_BODY,
    MAX_HEADER_BLOCK,
    RtspConnection,
    RtspRequest,
    RtspResponse,
)
from soak.fuzz import MUTATIONS, rtsp_seeds, soap_seeds

URL = "rtsp://127.0.0.1:8554/cam/main"

mutated_with = st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=4)


def mutate(data: bytes, names: list[str], rng: object) -> bytes:
    for name in names:
        data = MUTATIONS[name](data, rng)  # type: ignore[arg-type]
    return data


@settings(max_examples=400, deadline=None)
@given(
    seed=st.sampled_from(rtsp_seeds(URL, 5000)),
    names=mutated_with,
    rng=st.randoms(use_true_random=False),
    chunk=st.integers(1, 512),
)
def test_a_mutated_rtsp_request_gives_requests_that_can_be_answered_or_a_protocol_error(
    seed: bytes, names: list[str], rng: object, chunk: int
) -> None:
    data = mutate(seed, names, rng)
    connection = RtspConnection()
    events = []
    try:
        for at in range(0, len(data), chunk):
            events += connection.feed(data[at : at + chunk])
            assert connection.buffered <= MAX_HEADER_BLOCK + MAX_BODY + chunk
    except ProtocolError:
        pass
    for event in events:
        if isinstance(event, RtspRequest):
            for name, value in event.headers:
                assert not set(name + value) & {"\r", "\n", "\0"}
            # Finding 7 of issue 9: echoing what the core let through never breaks the answer.
            assert RtspResponse.reply(event, 400).serialize().endswith(b"\r\n\r\n")


def _body(http_message: bytes) -> bytes:
    return http_message.split(b"\r\n\r\n", 1)[1]


@settings(max_examples=300, deadline=None)
@given(
    seed=st.sampled_from([_body(m) for m in soap_seeds()]),
    names=mutated_with,
    rng=st.randoms(use_true_random=False),
)
def test_a_mutated_soap_envelope_parses_or_gets_an_onvif_fault(
    seed: bytes, names: list[str], rng: object
) -> None:
    data = mutate(seed, names, rng)
    outcome: object
    try:
        outcome = parse_envelope(data).body
    except OnvifFault as fault:
        outcome = str(fault)  # the reason the client is told
    assert outcome is not None
    assert outcome != ""
