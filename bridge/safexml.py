"""The one way the gateway parses XML a peer sent: SOAP requests, WS-Discovery datagrams,
UPnP device descriptions.

Untrusted input: no entity expansion, no DTD (a document that declares one is refused, the
classic "billion laughs" and external-entity attacks need it), no network access, no huge
trees, and a hard size cap checked before parsing starts.
"""

from __future__ import annotations

from lxml import etree

from bridge.errors import MessageTooLarge, ProtocolError


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(data: bytes, *, max_bytes: int) -> etree._Element:
    """The document's root element; :class:`MessageTooLarge` past ``max_bytes``,
    :class:`ProtocolError` when it is not well-formed or declares a DTD."""
    if len(data) > max_bytes:
        raise MessageTooLarge(f"XML document larger than {max_bytes} bytes")
    parser = _hardened_parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ProtocolError("not well-formed XML") from exc
    # libxml2 reports some errors without raising when a warning follows them (an undeclared
    # prefix then leaves an element named "d:T" that lxml's QName refuses): any error refuses.
    if any(entry.level >= etree.ErrorLevels.ERROR for entry in parser.error_log):
        raise ProtocolError("not well-formed XML")
    if root.getroottree().docinfo.internalDTD is not None:
        raise ProtocolError("document type declarations are not allowed")
    return root
