"""WS-Discovery (the 2005/04 version ONVIF Core uses): the sans-I/O core.

The gateway is a *target service* for each camera device it serves: it answers Probe and
Resolve and announces itself with Hello and Bye. It is also a little of a *client*: it builds a
Probe and reads ProbeMatches, Hello and Bye, so ``bridge discover`` can list the devices on the
LAN that already speak ONVIF.

Bytes in, dataclasses out; dataclasses in, bytes out; time is a ``now`` argument (a
``time.monotonic()`` reading). No sockets, no asyncio, no logging: the UDP layer owns those. Every
datagram a peer sent is untrusted: it is parsed by :func:`bridge.safexml.parse_untrusted`, and
whatever is wrong with it raises :class:`~bridge.errors.ProtocolError` with a fixed message that
never quotes the peer's bytes, so the caller may log it.

Parsing is liberal where real clients are sloppy (SOAP 1.1 or 1.2, either WS-Addressing
namespace, default or prefixed namespaces, undeclared type prefixes, types written as URIs);
building is strict and schema-shaped (``ws-discovery.xsd``), with every prefix used in a ``Types``
list declared on the Envelope, because minidom-based clients resolve them by walking ``xmlns:``
attributes up the tree.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from bridge.discovery.sources import Dropped, DropReason, screened
from bridge.errors import ProtocolError
from bridge.ratelimit import KeyedLimiter, RecentSet
from bridge.safexml import parse_untrusted

WSD_NS = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA_NS = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSA10_NS = "http://www.w3.org/2005/08/addressing"  # what some clients send instead
# Defined here rather than imported from bridge.onvif: discovery must not depend on the SOAP
# service layer (imports point down the architecture, and onvif loads zeep).
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
DN_NS = "http://www.onvif.org/ver10/network/wsdl"
TDS_NS = "http://www.onvif.org/ver10/device/wsdl"

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
MAX_DATAGRAM = 16384
"""The hard cap on a datagram, received (refused unparsed) or built (a ValueError)."""
APP_MAX_DELAY = 0.5
"""Seconds: a reply to a multicast Probe or Resolve first waits a random time up to this
(WS-Discovery 2005/04, "APP_MAX_DELAY"), so that a LAN of devices does not answer at once."""

ADHOC_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
ANONYMOUS = WSA_NS + "/role/anonymous"

RFC3986 = WSD_NS + "/rfc3986"
RFC2396 = WSD_NS + "/rfc2396"
STRCMP0 = WSD_NS + "/strcmp0"
SUPPORTED_RULES = frozenset((RFC3986, RFC2396, STRCMP0, ""))

ACTION_PROBE = WSD_NS + "/Probe"
ACTION_PROBE_MATCHES = WSD_NS + "/ProbeMatches"
ACTION_RESOLVE = WSD_NS + "/Resolve"
ACTION_RESOLVE_MATCHES = WSD_NS + "/ResolveMatches"
ACTION_HELLO = WSD_NS + "/Hello"
ACTION_BYE = WSD_NS + "/Bye"

MAX_ID_CHARS = 256
"""MessageID, RelatesTo, ReplyTo, To and endpoint addresses."""
MAX_ITEM_CHARS = 1024
"""One entry of a Types, Scopes or XAddrs list, and a MatchBy rule."""
MAX_PROBE_ITEMS = 32
"""Types and Scopes of a Probe: each is matched against every device's, so they stay few."""
MAX_SERVICE_ITEMS = 128
"""Types, Scopes and XAddrs describing one device (the datagram cap bounds them anyway)."""
_MAX_UINT = 0xFFFFFFFF  # xs:unsignedInt: MetadataVersion, InstanceId, MessageNumber

_WSA_NAMESPACES = (WSA_NS, WSA10_NS)
_XML_SPACE = " \t\r\n"  # XML's whitespace; a list type splits on exactly these
_SPLIT = re.compile(r"[ \t\r\n]+")
_UNSIGNED = re.compile(r"\+?[0-9]{1,10}")
_NCNAME = re.compile(r"[^\W\d][\w.\-]*")
# RFC 3986 appendix B: splits any string into its components and never fails.
_URI = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?[^#]*)?(?:#.*)?", re.DOTALL)
_PREFIXES = {DN_NS: "dn", TDS_NS: "tds"}  # the names ONVIF's examples give these namespaces


@dataclass(frozen=True, slots=True)
class QName:
    """A qualified name; ``namespace`` "" in a Probe means "match by local name"."""

    namespace: str
    local: str


NETWORK_VIDEO_TRANSMITTER = QName(DN_NS, "NetworkVideoTransmitter")
DEVICE = QName(TDS_NS, "Device")


class SoapVersion(enum.Enum):
    """The envelope version of a request; its reply uses the same."""

    SOAP11 = SOAP11_NS
    SOAP12 = SOAP12_NS


@dataclass(frozen=True, slots=True)
class TargetService:
    """One discoverable device: what a ProbeMatch, ResolveMatch or Hello describes."""

    # The stable EndpointReference address, a "urn:uuid:..." (ONVIF Core, "Endpoint reference").
    endpoint: str
    types: tuple[QName, ...]
    scopes: tuple[str, ...]
    xaddrs: tuple[str, ...]
    metadata_version: int


@dataclass(frozen=True, slots=True)
class AppSequence:
    """The header that orders one sender's messages: a fresh ``instance_id`` each time the
    sender starts (so it must grow across restarts), then ``message_number`` 1, 2, 3 ..."""

    instance_id: int
    message_number: int


@dataclass(frozen=True, slots=True)
class Probe:
    """A search: devices of all ``types`` with all ``scopes`` (under ``match_by``) answer."""

    message_id: str
    version: SoapVersion
    types: tuple[QName, ...]
    scopes: tuple[str, ...]
    match_by: str
    reply_to: str | None


@dataclass(frozen=True, slots=True)
class Resolve:
    """A request for the current XAddrs of the device whose endpoint address is given."""

    message_id: str
    version: SoapVersion
    endpoint: str
    reply_to: str | None


@dataclass(frozen=True, slots=True)
class ProbeMatches:
    message_id: str
    relates_to: str
    matches: tuple[TargetService, ...]


@dataclass(frozen=True, slots=True)
class ResolveMatches:
    message_id: str
    relates_to: str
    matches: tuple[TargetService, ...]


@dataclass(frozen=True, slots=True)
class Hello:
    message_id: str
    service: TargetService


@dataclass(frozen=True, slots=True)
class Bye:
    message_id: str
    endpoint: str


Message = Probe | Resolve | ProbeMatches | ResolveMatches | Hello | Bye


# --------------------------------------------------------------------------------------------
# Parsing


def parse(data: bytes) -> Message:
    """The message in one datagram.

    Raises :class:`MessageTooLarge` past :data:`MAX_DATAGRAM` and :class:`ProtocolError` for
    anything else that is not a WS-Discovery 2005/04 message (the caller ignores both).
    """
    root = parse_untrusted(data, max_bytes=MAX_DATAGRAM)
    namespace, local = _name(root)
    if local != "Envelope" or namespace not in (SOAP11_NS, SOAP12_NS):
        raise ProtocolError("not a SOAP envelope")
    version = SoapVersion(namespace)
    body = _child(root, (version.value,), "Body")
    if body is None:
        raise ProtocolError("SOAP Body missing")
    elements = list(_elements(body))
    if len(elements) != 1:
        raise ProtocolError("SOAP Body must hold exactly one element")
    (content,) = elements
    namespace, local = _name(content)
    reader = _READERS.get(local) if namespace == WSD_NS else None
    if reader is None:
        raise ProtocolError("not a WS-Discovery 2005/04 message")
    header = _child(root, (version.value,), "Header")
    headers = _Headers.read(header)
    # The Action is redundant with the body element; one that contradicts it is a confused or
    # hostile sender. A missing Action is tolerated: the body alone is unambiguous.
    if headers.action is not None and headers.action != f"{WSD_NS}/{local}":
        raise ProtocolError("Action does not match the body")
    return reader(content, headers, version)


@dataclass(frozen=True, slots=True)
class _Headers:
    message_id: str
    action: str | None
    relates_to: str | None
    reply_to: str | None

    @classmethod
    def read(cls, header: etree._Element | None) -> _Headers:
        def value(local: str) -> str | None:
            element = _child(header, _WSA_NAMESPACES, local) if header is not None else None
            return None if element is None else _uri(element, MAX_ID_CHARS)

        message_id = value("MessageID")
        if message_id is None:
            raise ProtocolError("MessageID missing")
        reply_to = None
        element = _child(header, _WSA_NAMESPACES, "ReplyTo") if header is not None else None
        if element is not None:
            # ReplyTo is an endpoint reference (WS-Addressing); python-wsdiscovery writes the
            # address as the element's text instead, so take either.
            address = _child(element, _WSA_NAMESPACES, "Address")
            reply_to = _uri(address if address is not None else element, MAX_ID_CHARS)
        return cls(message_id, value("Action"), value("RelatesTo"), reply_to)


def _read_probe(content: etree._Element, headers: _Headers, version: SoapVersion) -> Probe:
    types_element = _child(content, (WSD_NS,), "Types")
    scopes_element = _child(content, (WSD_NS,), "Scopes")
    types = _types(types_element, MAX_PROBE_ITEMS) if types_element is not None else ()
    scopes: tuple[str, ...] = ()
    # WS-Discovery's default rule when MatchBy is absent is RFC 2396, which ONVIF Core
    # ("Probe and Probe Match") replaces by RFC 3986.
    match_by = RFC3986
    if scopes_element is not None:
        scopes = _items(_text(scopes_element), MAX_PROBE_ITEMS)
        rule = scopes_element.get("MatchBy")
        if rule is not None:
            match_by = rule.strip(_XML_SPACE)
            if len(match_by) > MAX_ITEM_CHARS:
                raise ProtocolError("MatchBy too long")
    return Probe(headers.message_id, version, types, scopes, match_by, headers.reply_to)


def _read_resolve(content: etree._Element, headers: _Headers, version: SoapVersion) -> Resolve:
    return Resolve(headers.message_id, version, _endpoint(content), headers.reply_to)


def _read_probe_matches(
    content: etree._Element, headers: _Headers, version: SoapVersion
) -> ProbeMatches:
    return ProbeMatches(headers.message_id, _relates_to(headers), _matches(content, "ProbeMatch"))


def _read_resolve_matches(
    content: etree._Element, headers: _Headers, version: SoapVersion
) -> ResolveMatches:
    matches = _matches(content, "ResolveMatch")
    return ResolveMatches(headers.message_id, _relates_to(headers), matches)


def _read_hello(content: etree._Element, headers: _Headers, version: SoapVersion) -> Hello:
    return Hello(headers.message_id, _service(content))


def _read_bye(content: etree._Element, headers: _Headers, version: SoapVersion) -> Bye:
    return Bye(headers.message_id, _endpoint(content))


_READERS: Mapping[str, Callable[[etree._Element, _Headers, SoapVersion], Message]] = {
    "Probe": _read_probe,
    "Resolve": _read_resolve,
    "ProbeMatches": _read_probe_matches,
    "ResolveMatches": _read_resolve_matches,
    "Hello": _read_hello,
    "Bye": _read_bye,
}


def _relates_to(headers: _Headers) -> str:
    if headers.relates_to is None:
        raise ProtocolError("RelatesTo missing")
    return headers.relates_to


def _matches(content: etree._Element, local: str) -> tuple[TargetService, ...]:
    return tuple(
        _service(element) for element in _elements(content) if element.tag == f"{{{WSD_NS}}}{local}"
    )


def _service(element: etree._Element) -> TargetService:
    """A ProbeMatch, ResolveMatch or Hello; the optional parts default to empty (and a missing
    MetadataVersion, which only sloppy devices omit, to 0)."""
    types_element = _child(element, (WSD_NS,), "Types")
    scopes_element = _child(element, (WSD_NS,), "Scopes")
    xaddrs_element = _child(element, (WSD_NS,), "XAddrs")
    version_element = _child(element, (WSD_NS,), "MetadataVersion")
    return TargetService(
        endpoint=_endpoint(element),
        types=_types(types_element, MAX_SERVICE_ITEMS) if types_element is not None else (),
        scopes=(
            _items(_text(scopes_element), MAX_SERVICE_ITEMS) if scopes_element is not None else ()
        ),
        xaddrs=(
            _items(_text(xaddrs_element), MAX_SERVICE_ITEMS) if xaddrs_element is not None else ()
        ),
        metadata_version=_unsigned(version_element) if version_element is not None else 0,
    )


def _endpoint(element: etree._Element) -> str:
    reference = _child(element, _WSA_NAMESPACES, "EndpointReference")
    address = _child(reference, _WSA_NAMESPACES, "Address") if reference is not None else None
    if address is None:
        raise ProtocolError("EndpointReference address missing")
    return _uri(address, MAX_ID_CHARS)


def _types(element: etree._Element, max_items: int) -> tuple[QName, ...]:
    """A ``Types`` list (xs:QName items) resolved against the namespaces in scope there."""
    nsmap = element.nsmap
    return tuple(_qname(item, nsmap) for item in _items(_text(element), max_items))


def _qname(item: str, nsmap: Mapping[str | None, str]) -> QName:
    """One type as clients really write them: ``prefix:Local``, ``Local`` (default namespace),
    Clark ``{ns}Local``, or the namespace URI and local name joined by '/', '#' or ':'."""
    if item.startswith("{"):
        namespace, brace, local = item[1:].partition("}")
        if not brace:
            raise ProtocolError("malformed type name")
    elif item.count(":") > 1 or "/" in item or "#" in item:
        # Not a QName (its local part has none of these): a URI ending in the local name.
        scheme_end = item.find(":") + 1
        if item.startswith("//", scheme_end):
            scheme_end += 2
        cut = max(item.rfind(separator) for separator in "/#:")
        if cut < scheme_end:
            raise ProtocolError("malformed type name")
        namespace, local = item[:cut], item[cut + 1 :]
    elif ":" in item:
        prefix, _, local = item.partition(":")
        if not prefix:
            raise ProtocolError("malformed type name")
        # An undeclared prefix (clients send "dn:NetworkVideoTransmitter" without declaring
        # dn) keeps the local name alone, which matching treats as "any namespace".
        namespace = nsmap.get(prefix, "")
    else:
        namespace, local = nsmap.get(None, ""), item
    if not local:
        raise ProtocolError("malformed type name")
    return QName(namespace, local)


def _unsigned(element: etree._Element) -> int:
    text = _text(element)
    if not _UNSIGNED.fullmatch(text) or int(text) > _MAX_UINT:
        raise ProtocolError("not an unsigned 32-bit integer")
    return int(text)


def _uri(element: etree._Element, max_chars: int) -> str:
    """A single required value (an address or id), surrounding whitespace dropped."""
    text = _text(element)
    if not text:
        raise ProtocolError("empty address or id")
    if len(text) > max_chars:
        raise ProtocolError("address or id too long")
    return text


def _items(text: str, max_items: int) -> tuple[str, ...]:
    """An xs:list: items separated by XML whitespace, bounded in number and length."""
    items = tuple(item for item in _SPLIT.split(text) if item)
    if len(items) > max_items:
        raise ProtocolError("too many list items")
    if any(len(item) > MAX_ITEM_CHARS for item in items):
        raise ProtocolError("list item too long")
    return items


def _text(element: etree._Element) -> str:
    if len(element):
        raise ProtocolError("element content where a value belongs")
    return (element.text or "").strip(_XML_SPACE)


def _elements(parent: etree._Element) -> Iterable[etree._Element]:
    return (child for child in parent if isinstance(child.tag, str))


def _name(element: etree._Element) -> tuple[str, str]:
    """Namespace and local name. Not ``etree.QName``: libxml2 lets an element with an
    undeclared prefix through, tagged ``"p:Local"``, which ``etree.QName`` refuses to take."""
    tag = str(element.tag)
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _child(parent: etree._Element, namespaces: Sequence[str], local: str) -> etree._Element | None:
    """The one child element named ``local`` in one of ``namespaces``; a repeated one is an
    error, since which of them counts would be a guess."""
    found = [
        child
        for child in _elements(parent)
        if _name(child)[1] == local and _name(child)[0] in namespaces
    ]
    if len(found) > 1:
        raise ProtocolError("repeated element")
    return found[0] if found else None


# --------------------------------------------------------------------------------------------
# Matching


def matches(service: TargetService, probe: Probe) -> bool:
    """Whether ``service`` answers ``probe`` (WS-Discovery 2005/04, "Probe"): it has every
    type asked for, and every scope asked for matches one of its scopes under the probe's rule.
    Empty Types and Scopes match every device.

    A rule the device does not support matches nothing, whatever the scopes. ONVIF Core ("SOAP
    Fault Messages") allows a fault instead, but only for unicast probes, and discourages any
    reply to a bad multicast one (packet storms); silence is what every client copes with.
    """
    if probe.match_by not in SUPPORTED_RULES:
        return False
    return all(
        any(_same_type(wanted, offered) for offered in service.types) for wanted in probe.types
    ) and all(
        any(scope_matches(wanted, offered, probe.match_by) for offered in service.scopes)
        for wanted in probe.scopes
    )


def _same_type(wanted: QName, offered: QName) -> bool:
    if wanted.local != offered.local:
        return False
    # Namespace "" is a type whose prefix the client forgot to declare: the local name decides.
    # A trailing '/' is dropped because a type written as a URI splits the namespace off there.
    return not wanted.namespace or (
        wanted.namespace.removesuffix("/") == offered.namespace.removesuffix("/")
    )


def scope_matches(probe_scope: str, service_scope: str, rule: str) -> bool | None:
    """Whether a scope in a Probe matches a device's scope under ``rule``; None when the rule is
    not supported (the device then does not answer the probe).

    RFC 3986 (which ONVIF Core, "Probe and Probe Match", requires in place of WS-Discovery's
    RFC 2396 rule; both, and an empty MatchBy, are treated alike), after WS-Discovery's rule:
    schemes and authorities equal ignoring case, the probe's path a segment-wise (not string)
    prefix of the device's, so ``onvif://www.onvif.org/hardware/D1`` does not match
    ``.../hardware/D1-566``; segments compared after percent-decoding; no match when either has
    a "." or ".." segment; query and fragment ignored. STRCMP0: the very same string.
    """
    if rule == STRCMP0:
        return probe_scope == service_scope
    if rule not in SUPPORTED_RULES:
        return None
    wanted, offered = _uri_parts(probe_scope), _uri_parts(service_scope)
    if wanted is None or offered is None:
        return False
    (scheme, authority, path), (offered_scheme, offered_authority, offered_path) = wanted, offered
    return (
        scheme == offered_scheme
        and authority == offered_authority
        and offered_path[: len(path)] == path
    )


def _uri_parts(uri: str) -> tuple[str, str, tuple[str, ...]] | None:
    """Scheme and authority (lower case) and the decoded path segments of an absolute URI;
    None for what the RFC 3986 rule cannot match (no scheme, a dot segment)."""
    match = _URI.fullmatch(uri)
    if match is None or not match.group(1):
        return None
    scheme, authority, path = match.group(1), match.group(2) or "", match.group(3)
    # "/a/b/" has the segments of "/a/b": a trailing '/' adds no segment.
    path = path.removeprefix("/").removesuffix("/")
    # surrogateescape: undecodable escapes ("%FF" and "%FE") stay distinct instead of both
    # becoming U+FFFD.
    segments = (
        tuple(unquote(segment, errors="surrogateescape") for segment in path.split("/"))
        if path
        else ()
    )
    if any(segment in (".", "..") for segment in segments):
        return None
    return scheme.lower(), authority.lower(), segments


# --------------------------------------------------------------------------------------------
# Building


def probe_matches(
    service: TargetService,
    *,
    relates_to: str,
    to: str | None,
    version: SoapVersion,
    sequence: AppSequence,
    message_id: str,
) -> bytes:
    """A ProbeMatches holding ONE ProbeMatch: npm ``onvif`` (UniFi Protect) reads
    ``probeMatches.probeMatch`` as a single object and breaks on several, so a gateway of
    several devices sends one datagram per device.

    ``to`` is the probe's ReplyTo address, None for the anonymous one. Raises ValueError for a
    service that cannot be written (see :func:`_check_service`) or a datagram too large.
    """
    return _reply(
        "ProbeMatches",
        service,
        relates_to=relates_to,
        to=to,
        version=version,
        sequence=sequence,
        message_id=message_id,
        xaddrs_required=False,
    )


def resolve_matches(
    service: TargetService,
    *,
    relates_to: str,
    to: str | None,
    version: SoapVersion,
    sequence: AppSequence,
    message_id: str,
) -> bytes:
    """A ResolveMatches holding the one ResolveMatch (its XAddrs is required by the schema)."""
    return _reply(
        "ResolveMatches",
        service,
        relates_to=relates_to,
        to=to,
        version=version,
        sequence=sequence,
        message_id=message_id,
        xaddrs_required=True,
    )


def hello(service: TargetService, *, sequence: AppSequence, message_id: str) -> bytes:
    """The multicast announcement of a device joining (SOAP 1.2, to the ad-hoc address)."""
    _check_service(service)
    envelope, body = _envelope(
        SoapVersion.SOAP12, ACTION_HELLO, message_id, ADHOC_TO, service.types, sequence=sequence
    )
    _describe(etree.SubElement(body, f"{{{WSD_NS}}}Hello"), service, xaddrs_required=False)
    return _serialize(envelope)


def bye(service: TargetService, *, sequence: AppSequence, message_id: str) -> bytes:
    """The multicast announcement of a device leaving: its endpoint reference is all a client
    needs to forget it, so the optional Types/Scopes/XAddrs/MetadataVersion are left out."""
    _check_service(service)
    envelope, body = _envelope(
        SoapVersion.SOAP12, ACTION_BYE, message_id, ADHOC_TO, (), sequence=sequence
    )
    _endpoint_reference(etree.SubElement(body, f"{{{WSD_NS}}}Bye"), service.endpoint)
    return _serialize(envelope)


def probe(
    types: Sequence[QName],
    scopes: Sequence[str],
    *,
    message_id: str,
    version: SoapVersion = SoapVersion.SOAP12,
    match_by: str | None = None,
) -> bytes:
    """A multicast Probe (client side); ``match_by`` None leaves the default rule, RFC 3986."""
    _check_types(types)
    _check_items(scopes, MAX_PROBE_ITEMS, "scopes")
    envelope, body = _envelope(version, ACTION_PROBE, message_id, ADHOC_TO, types)
    element = etree.SubElement(body, f"{{{WSD_NS}}}Probe")
    if types:
        types_text = _types_text(element, types, MAX_PROBE_ITEMS)
        etree.SubElement(element, f"{{{WSD_NS}}}Types").text = types_text
    if scopes:
        scopes_element = etree.SubElement(element, f"{{{WSD_NS}}}Scopes")
        scopes_element.text = " ".join(scopes)
        if match_by is not None:
            scopes_element.set("MatchBy", match_by)
    return _serialize(envelope)


def _reply(
    kind: str,
    service: TargetService,
    *,
    relates_to: str,
    to: str | None,
    version: SoapVersion,
    sequence: AppSequence,
    message_id: str,
    xaddrs_required: bool,
) -> bytes:
    _check_service(service)
    _check_id(relates_to, "relates_to")
    envelope, body = _envelope(
        version,
        f"{WSD_NS}/{kind}",
        message_id,
        ANONYMOUS if to is None else to,
        service.types,
        relates_to=relates_to,
        sequence=sequence,
    )
    container = etree.SubElement(body, f"{{{WSD_NS}}}{kind}")
    match = etree.SubElement(container, f"{{{WSD_NS}}}{kind.removesuffix('es')}")
    _describe(match, service, xaddrs_required=xaddrs_required)
    return _serialize(envelope)


def _envelope(
    version: SoapVersion,
    action: str,
    message_id: str,
    to: str,
    types: Iterable[QName],
    *,
    relates_to: str | None = None,
    sequence: AppSequence | None = None,
) -> tuple[etree._Element, etree._Element]:
    """Envelope and Body, with the header blocks, and the prefixes ``types`` will need declared
    on the Envelope (a Types list is text: only declarations in scope give it meaning)."""
    _check_id(message_id, "message_id")
    _check_id(to, "to")
    nsmap = {"SOAP-ENV": version.value, "wsa": WSA_NS, "d": WSD_NS}
    generated = 0
    for namespace in dict.fromkeys(qname.namespace for qname in types if qname.namespace):
        if namespace in nsmap.values():
            continue
        prefix = _PREFIXES.get(namespace)
        if prefix is None:
            prefix, generated = f"ns{generated}", generated + 1
        nsmap[prefix] = namespace
    envelope = etree.Element(f"{{{version.value}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(envelope, f"{{{version.value}}}Header")
    etree.SubElement(header, f"{{{WSA_NS}}}MessageID").text = message_id
    if relates_to is not None:
        etree.SubElement(header, f"{{{WSA_NS}}}RelatesTo").text = relates_to
    etree.SubElement(header, f"{{{WSA_NS}}}To").text = to
    etree.SubElement(header, f"{{{WSA_NS}}}Action").text = action
    if sequence is not None:
        if not (
            0 <= sequence.instance_id <= _MAX_UINT and 0 <= sequence.message_number <= _MAX_UINT
        ):
            raise ValueError("AppSequence numbers are unsigned 32-bit integers")
        etree.SubElement(
            header,
            f"{{{WSD_NS}}}AppSequence",
            InstanceId=str(sequence.instance_id),
            MessageNumber=str(sequence.message_number),
        )
    return envelope, etree.SubElement(envelope, f"{{{version.value}}}Body")


def _describe(parent: etree._Element, service: TargetService, *, xaddrs_required: bool) -> None:
    """The content of a ProbeMatch, ResolveMatch or Hello, in schema order."""
    _endpoint_reference(parent, service.endpoint)
    if service.types:
        types_text = _types_text(parent, service.types, MAX_SERVICE_ITEMS)
        etree.SubElement(parent, f"{{{WSD_NS}}}Types").text = types_text
    if service.scopes:
        etree.SubElement(parent, f"{{{WSD_NS}}}Scopes").text = " ".join(service.scopes)
    if service.xaddrs or xaddrs_required:
        etree.SubElement(parent, f"{{{WSD_NS}}}XAddrs").text = " ".join(service.xaddrs)
    etree.SubElement(parent, f"{{{WSD_NS}}}MetadataVersion").text = str(service.metadata_version)


def _endpoint_reference(parent: etree._Element, address: str) -> None:
    reference = etree.SubElement(parent, f"{{{WSA_NS}}}EndpointReference")
    etree.SubElement(reference, f"{{{WSA_NS}}}Address").text = address


def _types_text(parent: etree._Element, types: Iterable[QName], max_items: int) -> str:
    """``types`` as xs:QName text, with the prefixes in scope at ``parent``."""
    prefixes = {namespace: prefix for prefix, namespace in parent.nsmap.items()}
    items = [
        f"{prefixes[qname.namespace]}:{qname.local}" if qname.namespace else qname.local
        for qname in types
    ]
    _check_items(items, max_items, "types")
    return " ".join(items)


def _check_service(service: TargetService) -> None:
    """Refuse (ValueError) a device description that would not come back unchanged from
    :func:`parse`: whitespace inside an address or list item (the lists are
    whitespace-separated), more or longer items than the parser takes, a type local name that
    is not an NCName, a version that is not an unsigned 32-bit integer."""
    _check_id(service.endpoint, "endpoint")
    _check_types(service.types)
    _check_items(service.scopes, MAX_SERVICE_ITEMS, "scopes")
    _check_items(service.xaddrs, MAX_SERVICE_ITEMS, "xaddrs")
    if not 0 <= service.metadata_version <= _MAX_UINT:
        raise ValueError("metadata_version is an unsigned 32-bit integer")


def _check_types(types: Iterable[QName]) -> None:
    for qname in types:
        if not _NCNAME.fullmatch(qname.local) or _has_space(qname.namespace):
            raise ValueError(f"{qname} cannot be written as an xs:QName")


def _check_items(items: Sequence[str], max_items: int, what: str) -> None:
    if len(items) > max_items:
        raise ValueError(f"more than {max_items} {what}")
    for item in items:
        if not item or _has_space(item) or len(item) > MAX_ITEM_CHARS:
            raise ValueError(f"{what}: an item is empty, has whitespace or is too long")


def _check_id(value: str, what: str) -> None:
    if not value or _has_space(value) or len(value) > MAX_ID_CHARS:
        raise ValueError(f"{what} must be 1-{MAX_ID_CHARS} characters without whitespace")


def _has_space(text: str) -> bool:
    return any(character in _XML_SPACE for character in text)


def _serialize(envelope: etree._Element) -> bytes:
    data = bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))
    if len(data) > MAX_DATAGRAM:
        raise ValueError(f"message larger than {MAX_DATAGRAM} bytes")
    return data


# --------------------------------------------------------------------------------------------
# The target service's rules


class Responder:
    """The target-service side of one gateway: which datagrams deserve an answer, and the
    answers, in the order of their AppSequence numbers.

    ``instance_id`` must grow each time the gateway starts (WS-Discovery, "Application
    Sequencing": receivers order messages by it, then by MessageNumber). One message counter
    serves every device of the gateway; it starts at 1. ``is_broadcast`` tells the directed
    subnet broadcast addresses the caller knows of (from its interfaces), never answered either.

    The caller decides which devices are discoverable and what their XAddrs are, and does the
    timing: it waits a random 0 to :data:`APP_MAX_DELAY` seconds before answering a multicast
    Probe (so that many devices do not answer at once) and repeats datagrams as SOAP-over-UDP
    says, sending the same bytes (a repeat must keep its MessageID).
    """

    def __init__(
        self,
        instance_id: int,
        *,
        max_seen: int = 4096,
        rate: float = 5.0,
        burst: float = 20.0,
        max_sources: int = 1024,
        is_broadcast: Callable[[str], bool] | None = None,
    ) -> None:
        if not 0 <= instance_id <= _MAX_UINT:
            raise ValueError("instance_id is an unsigned 32-bit integer")
        self._instance_id = instance_id
        self._message_number = 0
        self._seen: RecentSet[str] = RecentSet(max_seen)
        self._limiter: KeyedLimiter[str] = KeyedLimiter(rate, burst, max_keys=max_sources)
        self._is_broadcast = is_broadcast

    def receive(
        self, data: bytes, source: tuple[str, int], now: float
    ) -> Probe | Resolve | Dropped:
        """The request in a datagram from ``source`` (host, port; the rest of an IPv6 address
        tuple is ignored), or why it is ignored."""
        checked = screened(data, source, parse, self._is_broadcast)
        if isinstance(checked, Dropped):
            return checked
        host, message = checked
        if not isinstance(message, Probe | Resolve):
            return Dropped(DropReason.NOT_A_REQUEST)
        # SOAP-over-UDP repeats every multicast message (with the same MessageID) against
        # loss; the device answers once. Checked before the rate limit, so a repeat costs no
        # token.
        if not self._seen.add(message.message_id):
            return Dropped(DropReason.DUPLICATE)
        if not self._limiter.allow(host, now):
            return Dropped(DropReason.RATE_LIMITED)
        return message

    def answer(self, request: Probe | Resolve, services: Iterable[TargetService]) -> list[bytes]:
        """The datagrams answering ``request``: a ProbeMatches per matching device, or the
        ResolveMatches of the device with the resolved endpoint; none when nothing matches.

        A service the builders refuse raises ValueError: a configuration error, which the
        caller catches once by building each service's Hello before it starts answering.
        """
        if isinstance(request, Probe):
            chosen = [service for service in services if matches(service, request)]
            build = probe_matches
        else:
            chosen = [service for service in services if service.endpoint == request.endpoint][:1]
            build = resolve_matches
        return [
            build(
                service,
                relates_to=request.message_id,
                to=request.reply_to,
                version=request.version,
                sequence=self._next_sequence(),
                message_id=_new_message_id(),
            )
            for service in chosen
        ]

    def hello(self, service: TargetService) -> bytes:
        return hello(service, sequence=self._next_sequence(), message_id=_new_message_id())

    def bye(self, service: TargetService) -> bytes:
        return bye(service, sequence=self._next_sequence(), message_id=_new_message_id())

    def _next_sequence(self) -> AppSequence:
        self._message_number += 1
        return AppSequence(self._instance_id, self._message_number)


def _new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"
