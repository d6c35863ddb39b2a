"""The SOAP layer: envelopes in, operations identified and decoded, responses and faults out.

Sans-I/O: bytes in, bytes out. Requests are parsed and responses built against the vendored
WSDLs through zeep's bindings (an operation's input body element parses the request, its output
message serializes the response), so a response is schema-shaped by construction. Handlers never
see zeep or lxml objects: they get an :class:`OnvifRequest` with plain values and return a
mapping of the response element's children.

Liberal in what it accepts, strict in what it sends: a SOAP 1.1 or 1.2 envelope in any
encoding the HTTP charset or the document names, the operation found by the body's element
(by its local name when its namespace is off, with the request's action and path to tell
services apart), the element read tolerantly (:mod:`bridge.onvif.tolerant`) and only then
validated; the reply goes out in the request's SOAP version.
"""

from __future__ import annotations

import codecs
import email.message
import enum
import functools
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.xsd.context import XmlParserContext

from bridge.errors import (
    ActionNotSupported,
    InvalidArgs,
    MessageTooLarge,
    MustUnderstand,
    OnvifFault,
    ProtocolError,
    RequestTooLarge,
    VersionMismatch,
    WellFormed,
)
from bridge.onvif.schemas import enumerations, load_wsdl, message_schema, zeep_settings
from bridge.onvif.tolerant import RequestReader, schema_fault
from bridge.safexml import parse_untrusted

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TER_NS = "http://www.onvif.org/ver10/error"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSA_NAMESPACES = frozenset(
    ("http://www.w3.org/2005/08/addressing", "http://schemas.xmlsoap.org/ws/2004/08/addressing")
)
MAX_REQUEST_BYTES = 1 << 20
_XML_NS = "http://www.w3.org/XML/1998/namespace"
# The start of a document that names its own encoding (a byte order mark, or an XML
# declaration with an encoding), which then wins over the HTTP charset.
_SELF_DESCRIBED = re.compile(rb"(\xef\xbb\xbf|\xfe\xff|\xff\xfe|<\?xml[^>]*encoding)")


class SoapVersion(enum.Enum):
    """The envelope version of a request; its reply (and fault) uses the same."""

    SOAP11 = SOAP11_NS
    SOAP12 = SOAP12_NS

    @property
    def content_type(self) -> str:
        return "text/xml" if self is SoapVersion.SOAP11 else "application/soap+xml"

    @classmethod
    def guess(cls, content_type: str, data: bytes) -> SoapVersion:
        """The version to answer a request in before its envelope is parsed (or when it cannot
        be): the envelope namespace the bytes name, else the content type's (text/xml is 1.1).
        """
        if SOAP11_NS.encode() in data and SOAP12_NS.encode() not in data:
            return cls.SOAP11
        if SOAP12_NS.encode() in data:
            return cls.SOAP12
        return cls.SOAP11 if content_type == "text/xml" else cls.SOAP12


class Service(enum.Enum):
    """The ONVIF services the gateway serves: namespace, WSDL (under wsdl/) and HTTP path."""

    DEVICE = (
        "http://www.onvif.org/ver10/device/wsdl",
        "ver10/device/wsdl/devicemgmt.wsdl",
        "/onvif/device_service",
    )
    MEDIA = (
        "http://www.onvif.org/ver10/media/wsdl",
        "ver10/media/wsdl/media.wsdl",
        "/onvif/media_service",
    )
    MEDIA2 = (
        "http://www.onvif.org/ver20/media/wsdl",
        "ver20/media/wsdl/media.wsdl",
        "/onvif/media2_service",
    )
    PTZ = ("http://www.onvif.org/ver20/ptz/wsdl", "ver20/ptz/wsdl/ptz.wsdl", "/onvif/ptz_service")
    IMAGING = (
        "http://www.onvif.org/ver20/imaging/wsdl",
        "ver20/imaging/wsdl/imaging.wsdl",
        "/onvif/imaging_service",
    )
    EVENTS = (
        "http://www.onvif.org/ver10/events/wsdl",
        "ver10/events/wsdl/event.wsdl",
        "/onvif/events_service",
    )
    DEVICEIO = (
        "http://www.onvif.org/ver10/deviceIO/wsdl",
        "ver10/deviceio.wsdl",
        "/onvif/deviceio_service",
    )

    def __init__(self, namespace: str, wsdl: str, path: str) -> None:
        self.namespace = namespace
        self.wsdl = wsdl
        self.path = path


@dataclass(frozen=True, slots=True)
class OnvifRequest:
    """One decoded ONVIF call, as a handler receives it.

    ``params`` holds the request element's children as plain values (dicts, lists, str, int,
    bool, Decimal, datetime ...), keyed by their schema names; attributes by their names; the
    content of an ``xs:any`` the schemas do not know stays an lxml element under ``_value_1``.
    ``user`` is the authenticated user, None for an anonymous pre-auth call. ``host`` is the
    Host header the client sent and ``path`` the request path (subscription addresses live
    under a service path).
    """

    service: Service
    operation: str
    params: dict[str, Any]
    user: str | None
    host: str
    path: str


Handler = Callable[[OnvifRequest], Awaitable[Mapping[str, Any] | None]]
"""Answers one operation with the response element's children (None: an empty response).

Values are plain: nested dicts for complex types, lists for repeated elements, attributes by
name, e.g. ``{"Profiles": [{"token": "main", "Name": "main", ...}]}``. Raise an
:class:`~bridge.errors.OnvifFault` subclass to answer with that fault.
"""


class Operations:
    """Which handler answers each (service, operation); service modules fill it in."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[Service, str], Handler] = {}

    def add(self, service: Service, operation: str, handler: Handler) -> None:
        """Register ``handler``; the operation must exist in the service's WSDL."""
        if operation not in catalog().operation_names(service):
            raise ValueError(f"{service.name} has no operation {operation!r}")
        if (service, operation) in self._handlers:
            raise ValueError(f"{service.name} {operation} already has a handler")
        self._handlers[service, operation] = handler

    def get(self, service: Service, operation: str) -> Handler | None:
        return self._handlers.get((service, operation))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed request envelope: its version, header blocks and the one body element."""

    version: SoapVersion
    headers: tuple[etree._Element, ...]
    body: etree._Element

    def header(self, tag: str) -> etree._Element | None:
        return next((block for block in self.headers if block.tag == tag), None)

    def actions(self, soap_action: str | None, content_type: str | None) -> tuple[str, ...]:
        """The action URIs the request names: its SOAPAction header (SOAP 1.1), its content
        type's ``action`` parameter (SOAP 1.2), its WS-Addressing Action header. Only hints:
        the body decides, and clients misspell these (ONVIF Device Manager did)."""
        parsed = email.message.Message()
        parsed["Content-Type"] = content_type or ""
        action = parsed.get_param("action", header="Content-Type")
        addressed = (self.header(f"{{{ns}}}Action") for ns in sorted(WSA_NAMESPACES))
        texts = [soap_action, action if isinstance(action, str) else None]
        texts += [block.text for block in addressed if block is not None]
        return tuple(text.strip().strip('"') for text in texts if text and text.strip('" '))


def parse_envelope(
    data: bytes, *, max_bytes: int = MAX_REQUEST_BYTES, charset: str | None = None
) -> Envelope:
    """Check and parse an untrusted request body, raising the fault it deserves.

    ``charset`` (the HTTP content type's) decodes a document that does not name its own
    encoding; blanks before the XML declaration, which some clients send, are skipped.
    """
    data = data.lstrip(b" \t\r\n")
    if charset is not None and _SELF_DESCRIBED.match(data) is None:
        data = _to_utf8(data, charset, max_bytes)
    try:
        root = parse_untrusted(data, max_bytes=max_bytes)
    except MessageTooLarge as exc:
        raise RequestTooLarge(f"Request larger than {max_bytes} bytes") from exc
    except ProtocolError as exc:
        raise WellFormed(f"Request refused: {exc}") from exc
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP11_NS, SOAP12_NS):
        raise VersionMismatch("Expected a SOAP 1.1 or 1.2 Envelope")
    version = SoapVersion(qname.namespace)
    ns = version.value
    header = root.find(f"{{{ns}}}Header")
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        raise InvalidArgs("SOAP Body missing")
    children = [child for child in body if isinstance(child.tag, str)]
    if len(children) != 1:
        raise InvalidArgs("SOAP Body must hold exactly one element")
    headers = tuple(b for b in (header if header is not None else ()) if isinstance(b.tag, str))
    for block in headers:
        if _must_understand(block, version) and not _understood(block):
            raise MustUnderstand(f"Header {etree.QName(block).localname} not understood")
    return Envelope(version, headers, children[0])


def _to_utf8(data: bytes, charset: str, max_bytes: int) -> bytes:
    """The document re-encoded from the charset HTTP names (an unknown one is ignored: the
    document is then read as XML's default, UTF-8)."""
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        return data
    if codec.name in ("utf-8", "ascii"):
        return data
    try:
        text = data.decode(codec.name)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WellFormed(f"Request is not {charset}") from exc
    encoded = text.encode("utf-8")
    if len(encoded) > max_bytes:  # Latin-1 text grows when re-encoded
        raise RequestTooLarge(f"Request larger than {max_bytes} bytes")
    return encoded


def _must_understand(block: etree._Element, version: SoapVersion) -> bool:
    return block.get(f"{{{version.value}}}mustUnderstand", "").strip() in ("1", "true")


def _understood(block: etree._Element) -> bool:
    namespace = etree.QName(block).namespace
    return block.tag == f"{{{WSSE_NS}}}Security" or namespace in WSA_NAMESPACES


@dataclass(frozen=True, slots=True)
class Operation:
    """One WSDL operation of a service, with what it takes to decode and encode it."""

    service: Service
    name: str
    _binding_operation: Any
    _schema: etree.XMLSchema
    _reader: RequestReader

    def decode(self, body: etree._Element) -> dict[str, Any]:
        """The request element as plain values, read tolerantly (it is rewritten in place);
        what is still wrong then is ter:InvalidArgs or ter:InvalidArgVal.

        zeep's parser is lenient (a missing required element, "maybe" for a boolean), so the
        element is validated against the schemas first.
        """
        self._reader.read(body, self._binding_operation.input.body, self.name)
        if not self._schema.validate(body):
            raise schema_fault(self.name, body, self._schema.error_log)
        message = self._binding_operation.input
        element = message.body
        context = XmlParserContext(settings=zeep_settings())  # type: ignore[no-untyped-call]
        try:
            value = element.parse(body, message.wsdl.types, context=context)
        except (zeep.exceptions.Error, ValueError, TypeError, ArithmeticError) as exc:
            raise InvalidArgs(f"Invalid {self.name} request") from exc
        plain = zeep.helpers.serialize_object(value, dict)  # type: ignore[no-untyped-call]
        return plain if isinstance(plain, dict) else {}

    def encode(self, values: Mapping[str, Any] | None, version: SoapVersion) -> bytes:
        """The response envelope. Values the schema does not allow raise zeep's errors or
        TypeError: a handler bug, which the caller turns into a Receiver fault."""
        envelope = self._binding_operation.output.serialize(**dict(values or {})).content
        if version is SoapVersion.SOAP11:
            envelope = _rewrap(envelope, SOAP11_NS)
        return _to_bytes(envelope)


class Catalog:
    """Every operation of every service, found by its request element.

    Dispatch goes by the body element, not by path, so a client that posts an operation to
    another service's address of the same device is still understood.
    """

    def __init__(self) -> None:
        self._by_tag: dict[str, Operation] = {}
        self._by_name: dict[str, list[Operation]] = {}
        self._names: dict[Service, frozenset[str]] = {}
        schema = message_schema(*(service.wsdl for service in Service))
        reader = RequestReader(enumerations())
        for service in Service:
            document = load_wsdl(service.wsdl)
            names: set[str] = set()
            for qname, binding in document.bindings.items():
                if etree.QName(qname).namespace != service.namespace:
                    continue  # bindings a WSDL imports belong to their own service
                for name, binding_operation in binding._operations.items():
                    body = binding_operation.input.body
                    if body is None:
                        continue
                    names.add(name)
                    operation = Operation(service, name, binding_operation, schema, reader)
                    if body.qname.text not in self._by_tag:
                        self._by_tag[body.qname.text] = operation
                        self._by_name.setdefault(body.qname.localname, []).append(operation)
            self._names[service] = frozenset(names)

    def operation(
        self, body: etree._Element, *, path: str = "", actions: Iterable[str] = ()
    ) -> Operation:
        """The operation a body element asks for: by its qualified name, else (a client that
        put it in another namespace, or none) by its local name, among the services the
        request's actions name, then the one its path serves, then all of them, as long as
        only one fits."""
        exact = self._by_tag.get(body.tag)
        if exact is not None:
            return exact
        local = etree.QName(body).localname
        candidates = self._by_name.get(local, [])
        hinted = [
            *(s for action in actions for s in Service if action.startswith(s.namespace)),
            *(s for s in Service if path == s.path or path.startswith(s.path + "/")),
        ]
        for service in hinted:
            fits = [operation for operation in candidates if operation.service is service]
            if fits:
                return fits[0]
        if len(candidates) == 1:
            return candidates[0]
        raise ActionNotSupported(f"Unknown operation {local}")

    def operation_names(self, service: Service) -> frozenset[str]:
        return self._names[service]


@functools.cache
def catalog() -> Catalog:
    """The catalog of all services, built once per process (about half a second)."""
    return Catalog()


def service_capabilities_element(
    service: Service, capabilities: Mapping[str, Any]
) -> etree._Element:
    """A service's ``Capabilities`` element, as its GetServiceCapabilities response holds it.

    The device's GetServices embeds it in an untyped (``xs:any``) slot, which zeep can only
    fill with an element, so it is built here from the plain values; the handler passes it on
    as an opaque value.
    """
    request = etree.Element(f"{{{service.namespace}}}GetServiceCapabilities")
    binding_operation = catalog().operation(request)._binding_operation
    envelope = binding_operation.output.serialize(Capabilities=dict(capabilities)).content
    (response,) = envelope.find(f"{{{SOAP12_NS}}}Body")
    (element,) = response
    return element


def fault_envelope(fault: OnvifFault, version: SoapVersion) -> bytes:
    """A Fault envelope: SOAP 1.2 with the ONVIF subcode chain, or SOAP 1.1 with the nearest
    faultcode (the 1.1 fault has no place for subcodes, so the reason names the first)."""
    ns = version.value
    envelope = etree.Element(f"{{{ns}}}Envelope", nsmap={"env": ns, "ter": TER_NS})
    body = etree.SubElement(envelope, f"{{{ns}}}Body")
    element = etree.SubElement(body, f"{{{ns}}}Fault")
    if version is SoapVersion.SOAP12:
        parent = etree.SubElement(element, f"{{{ns}}}Code")
        etree.SubElement(parent, f"{{{ns}}}Value").text = f"env:{fault.code}"
        for subcode in fault.chain:
            parent = etree.SubElement(parent, f"{{{ns}}}Subcode")
            etree.SubElement(parent, f"{{{ns}}}Value").text = f"ter:{subcode}"
        reason = etree.SubElement(element, f"{{{ns}}}Reason")
        text = etree.SubElement(reason, f"{{{ns}}}Text")
        text.set(f"{{{_XML_NS}}}lang", "en")
        text.text = fault.reason
    else:
        code = {"Sender": "Client", "Receiver": "Server"}.get(fault.code, fault.code)
        etree.SubElement(element, "faultcode").text = f"env:{code}"
        suffix = f" (ter:{fault.chain[0]})" if fault.chain else ""
        etree.SubElement(element, "faultstring").text = fault.reason + suffix
    return _to_bytes(envelope)


def declare_prefix(service: Service, prefix: str, namespace: str) -> None:
    """Declare ``prefix`` on the envelope of every response of ``service``: for QNames in text
    content (an event's ``tns1:VideoSource/MotionAlarm`` topic), which need it in scope."""
    load_wsdl(service.wsdl).types.set_ns_prefix(prefix, namespace)  # type: ignore[no-untyped-call]


def _rewrap(envelope: etree._Element, ns: str) -> etree._Element:
    """The same body in an envelope of another SOAP version."""
    # Prefixes declared on the envelope stay in scope (see declare_prefix).
    declared = {prefix: uri for prefix, uri in envelope.nsmap.items() if uri != SOAP12_NS}
    rewrapped = etree.Element(f"{{{ns}}}Envelope", nsmap={**declared, "env": ns})
    body = etree.SubElement(rewrapped, f"{{{ns}}}Body")
    source = envelope.find(f"{{{SOAP12_NS}}}Body")
    body.extend(list(source) if source is not None else [])
    return rewrapped


def _to_bytes(envelope: etree._Element) -> bytes:
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))
