"""The one parser for XML a peer sent refuses what could hurt or mislead the gateway."""

from __future__ import annotations

import pytest

from bridge.errors import MessageTooLarge, ProtocolError
from bridge.safexml import parse_untrusted


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><x>&a;&a;</x>',  # entity expansion
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',  # external entity
        b"<!DOCTYPE x><x/>",
        b"<e><d:T/></e>",  # an undeclared prefix
        b'<e><d:T/><h xmlns="rel"/></e>',  # ... that libxml2 lets through when a warning follows
        b"<a><b></a>",
        b"",
    ],
)
def test_refuses_what_is_not_plain_well_formed_xml(document: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_untrusted(document, max_bytes=1024)


def test_refuses_a_document_over_the_cap_before_parsing() -> None:
    with pytest.raises(MessageTooLarge):
        parse_untrusted(b"<x>" + b" " * 2000 + b"</x>", max_bytes=1024)


def test_parses_namespaced_xml() -> None:
    root = parse_untrusted(b'<e xmlns="urn:x"><!-- gone --><a/></e>', max_bytes=1024)
    assert [child.tag for child in root] == ["{urn:x}a"]
