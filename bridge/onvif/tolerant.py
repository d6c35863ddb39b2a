"""The tolerant reader: a request as real clients send it, made into one the schemas accept.

ONVIF clients of every age talk to the gateway, and few send exactly what the schemas say: ONVIF
1.x spellings (``RTP_unicast``), children in another namespace than the schema's (or all in
the operation's), in another order, with vendor extensions, ``True`` for ``true``, a
GetStreamUri without its StreamSetup. Each of these has one meaning, so rather than refuse them
the SOAP layer has this reader rewrite the request element in place, guided by the operation's
schema (zeep's model of it), before the element is validated and decoded; no handler ever
sees the difference:

- a child is matched to the schema's child of the same qualified name, else of the same local
  name in another namespace (or none), else of the same name in another case, when exactly
  one fits; a child that also exists under its exact name is an extension, not a second copy;
- children are put in the schema's order;
- elements and attributes the schema does not declare are dropped (extensions nobody here
  reads), except where the schema's content is nothing but a wildcard (a Filter's topic
  expressions): there they are the content;
- enumerated values match regardless of case, ``-``, ``_`` and blanks, and through a small
  table of older spellings (:data:`ALIASES`); booleans regardless of case and blanks;
- a required child whose absence has one meaning is added (:data:`DEFAULTS`).

What is still wrong after that has no single meaning and is refused with the fault ONVIF Core
names (ter:InvalidArgs for a missing, repeated or mistyped argument, ter:InvalidArgVal for a
value that is not allowed), in words of the gateway's own: never the validator's message.
An element that names its own type (``xsi:type``) is left as sent, to the validator and zeep,
which honour it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree
from zeep.xsd import ComplexType
from zeep.xsd.elements import Any as AnyElement
from zeep.xsd.elements import Choice, Element, Group
from zeep.xsd.elements.indicators import OrderIndicator
from zeep.xsd.types.builtins import Boolean

from bridge.errors import InvalidArgs, InvalidArgVal, SenderFault

_TT = "http://www.onvif.org/ver10/schema"
_TRT = "http://www.onvif.org/ver10/media/wsdl"
_TR2 = "http://www.onvif.org/ver20/media/wsdl"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{_XSI}}}type"


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


# Older or foreign spellings of enumerated values (folded, see _fold), per enumeration type,
# where folding alone does not find the value: Media2 clients that still speak Media's
# transport names (the npm onvif package translates them itself because cameras refuse them).
ALIASES: Mapping[str, Mapping[str, str]] = {
    _q(_TR2, "TransportProtocol"): {"udp": "RtspUnicast", "tcp": "RTSP", "http": "RtspOverHttp"},
}

# Values the schemas type as xs:string but document as one of an enumeration, by (parent type,
# element): spelled another way they are recognized, but a value outside the list is left to
# the handler (vendors may add their own).
STRING_ENUMERATIONS: Mapping[tuple[str, str], str] = {
    (_q(_TR2, "GetStreamUri"), _q(_TR2, "Protocol")): _q(_TR2, "TransportProtocol"),
    (_q(_TR2, "GetProfiles"), _q(_TR2, "Type")): _q(_TR2, "ConfigurationEnumeration"),
    (_q(_TR2, "ConfigurationRef"), _q(_TR2, "Type")): _q(_TR2, "ConfigurationEnumeration"),
}

# Required children whose absence has one meaning, by (parent type, element): their text ("":
# an element filled in by its own defaults). A stream URI asked for without saying how is the
# RTSP one, which every client can play (RTP unicast, over the RTSP connection).
DEFAULTS: Mapping[tuple[str, str], str] = {
    (_q(_TRT, "GetStreamUri"), _q(_TRT, "StreamSetup")): "",
    (_q(_TT, "StreamSetup"), _q(_TT, "Stream")): "RTP-Unicast",
    (_q(_TT, "StreamSetup"), _q(_TT, "Transport")): "",
    (_q(_TT, "Transport"), _q(_TT, "Protocol")): "RTSP",
    (_q(_TR2, "GetStreamUri"), _q(_TR2, "Protocol")): "RTSP",
}

_FOLD = str.maketrans("", "", "-_ \t\r\n")
_QUOTED_LIMIT = 40  # characters of a refused value quoted back in a fault's reason


def _fold(value: str) -> str:
    return value.translate(_FOLD).casefold()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass(frozen=True, slots=True)
class _Content:
    """What the reader needs of one complex type: its child elements in schema order (and
    which are required), its attributes, and how to find each by a looser name."""

    elements: Mapping[str, Any]  # qualified name -> zeep Element
    order: Mapping[str, int]  # qualified name -> place in the schema's order
    required: frozenset[str]
    wildcard_only: bool  # no declared children, but a wildcard: children are content as sent
    attributes: Mapping[str, Any]  # qualified name -> zeep Attribute

    def element(self, tag: str, exact: frozenset[str]) -> str | None:
        """The declared child a child named ``tag`` stands for, if exactly one fits; one
        present under its own name is not a candidate for a look-alike."""
        if tag in self.elements:
            return tag
        candidates = [name for name in self.elements if name not in exact]
        fits = [name for name in candidates if _local(name) == _local(tag)]
        if not fits:
            fits = [
                name for name in candidates if _local(name).casefold() == _local(tag).casefold()
            ]
        return fits[0] if len(fits) == 1 else None

    def attribute(self, name: str) -> str | None:
        if name in self.attributes:
            return name
        fits = [q for q in self.attributes if _local(q).casefold() == _local(name).casefold()]
        return fits[0] if len(fits) == 1 else None


def _particles(particle: Any, required: bool) -> Iterator[tuple[Any, bool]]:
    """The elements and wildcards of a content model in document order, each with whether
    the model requires it (nothing inside a choice is required by itself)."""
    if isinstance(particle, Element | AnyElement):
        yield particle, required and particle.min_occurs >= 1
    elif isinstance(particle, Group):
        yield from _particles(particle.child, required and particle.min_occurs >= 1)
    elif isinstance(particle, OrderIndicator):
        inner = required and particle.min_occurs >= 1 and not isinstance(particle, Choice)
        for child in particle:
            yield from _particles(child, inner)


class RequestReader:
    """Rewrites request elements in place; one per process (it caches what it learns of
    each schema type, a bounded set)."""

    def __init__(self, enumerations: Mapping[str, tuple[str, ...]]) -> None:
        self._enumerations = enumerations
        self._contents: dict[Any, _Content] = {}  # by zeep type (hashed by identity)

    def read(self, body: etree._Element, element: Any, operation: str) -> None:
        """Make ``body`` the request the schemas accept for ``element`` (zeep's input body
        element of ``operation``), or raise the fault it deserves."""
        body.tag = element.qname.text  # dispatch may have matched it by its local name
        self._element(body, element, None, operation)

    def _element(self, node: etree._Element, element: Any, parent: str | None, path: str) -> None:
        if node.get(_XSI_TYPE) is not None:
            return
        kind = element.type
        if not isinstance(kind, ComplexType):
            if len(node) == 0:
                override = STRING_ENUMERATIONS.get((parent, element.qname.text)) if parent else None
                node.text = self._value(node.text or "", kind, override, path)
            return
        content = self._content(kind)
        self._attributes(node, content, path)
        if isinstance(kind._element, Element):  # simple content: a value with attributes
            if len(node) == 0:
                node.text = self._value(node.text or "", kind._element.type, None, path)
            return
        if not content.wildcard_only:
            self._children(node, kind.qname.text if kind.qname else "", content, path)

    def _children(self, node: etree._Element, owner: str, content: _Content, path: str) -> None:
        sent = [(child, child.tag) for child in node]
        exact = frozenset(tag for _, tag in sent if tag in content.elements)
        kept: list[tuple[etree._Element, str]] = []
        for child, tag in sent:
            name = content.element(tag, exact) if isinstance(tag, str) else None
            if name is None:
                node.remove(child)  # an extension (or a stray node) nobody here reads
                continue
            if name != tag:
                child.tag = name
            kept.append((child, name))
        counts = Counter(name for _, name in kept)
        for name, count in counts.items():
            limit = content.elements[name].max_occurs
            if isinstance(limit, int) and count > limit:
                raise InvalidArgs(f"{path}/{_local(name)} is given {count} times")
        for name in content.required - counts.keys():
            default = DEFAULTS.get((owner, name))
            if default is None:
                raise InvalidArgs(f"{path}/{_local(name)} is missing")
            added = etree.SubElement(node, name)
            added.text = default or None
            kept.append((added, name))
        places = [content.order[name] for _, name in kept]
        if places != sorted(places):
            kept.sort(key=lambda pair: content.order[pair[1]])  # stable: repeats keep theirs
            for child, _ in kept:
                node.append(child)  # moves it (with its tail) to the end: the schema's order
        for child, name in kept:
            self._element(child, content.elements[name], owner, f"{path}/{_local(name)}")

    def _attributes(self, node: etree._Element, content: _Content, path: str) -> None:
        for name, value in list(node.attrib.items()):
            if name.startswith(f"{{{_XSI}}}"):
                continue  # instructions to the validator (xsi:nil), not data
            declared = content.attribute(name)
            del node.attrib[name]
            if declared is not None and declared not in node.attrib:
                kind = content.attributes[declared].type
                node.set(declared, self._value(value, kind, None, f"{path}@{_local(declared)}"))

    def _value(self, text: str, kind: Any, enumeration: str | None, path: str) -> str:
        """A simple value spelled the schema's way where it has one meaning; a value outside
        a schema-typed enumeration is ter:InvalidArgVal."""
        strict = enumeration is None
        qname = getattr(kind, "qname", None)
        if enumeration is None and qname is not None:
            enumeration = qname.text
        values = self._enumerations.get(enumeration or "")
        if values is not None:
            if text in values:
                return text
            folded = _fold(text)
            aliases = ALIASES.get(enumeration or "", {})
            fits = [value for value in values if _fold(value) == folded]
            if not fits and folded in aliases:
                fits = [aliases[folded]]
            if len(fits) == 1:
                return fits[0]
            if strict:
                quoted = repr(text[:_QUOTED_LIMIT])
                raise InvalidArgVal(f"{path}: {quoted} is not one of {', '.join(values)}")
            return text
        if isinstance(kind, Boolean) and text.strip().casefold() in ("true", "false"):
            return text.strip().casefold()
        return text

    def _content(self, kind: Any) -> _Content:
        cached = self._contents.get(kind)
        if cached is not None:
            return cached
        elements: dict[str, Any] = {}
        required: set[str] = set()
        wildcard = False
        model = kind._element if isinstance(kind._element, OrderIndicator | Group) else None
        for particle, needed in _particles(model, True) if model is not None else ():
            if isinstance(particle, AnyElement):
                wildcard = True
                continue
            elements.setdefault(particle.qname.text, particle)
            if needed:
                required.add(particle.qname.text)
        attributes = {
            attribute.qname.text: attribute
            for _, attribute in kind.attributes
            if getattr(attribute, "qname", None) is not None
        }
        content = _Content(
            elements,
            {name: index for index, name in enumerate(elements)},
            frozenset(required),
            wildcard and not elements,
            attributes,
        )
        self._contents[kind] = content
        return content


# libxml2's names for a value that has the right type but breaks one of its facets.
_FACETS = frozenset(
    {
        "SCHEMAV_CVC_ENUMERATION_VALID",
        "SCHEMAV_CVC_PATTERN_VALID",
        "SCHEMAV_CVC_LENGTH_VALID",
        "SCHEMAV_CVC_MINLENGTH_VALID",
        "SCHEMAV_CVC_MAXLENGTH_VALID",
        "SCHEMAV_CVC_MININCLUSIVE_VALID",
        "SCHEMAV_CVC_MAXINCLUSIVE_VALID",
        "SCHEMAV_CVC_MINEXCLUSIVE_VALID",
        "SCHEMAV_CVC_MAXEXCLUSIVE_VALID",
        "SCHEMAV_CVC_TOTALDIGITS_VALID",
        "SCHEMAV_CVC_FRACTIONDIGITS_VALID",
    }
)
_STEP = re.compile(r"\*(?:\[(\d+)\])?")


def schema_fault(operation: str, body: etree._Element, errors: Any) -> SenderFault:
    """The fault for a request the schemas refuse after reading: ter:InvalidArgVal when a
    value breaks a facet (a range, a length, a pattern), else ter:InvalidArgs; the reason
    names the element, in the gateway's words."""
    error = errors[0] if len(errors) else None
    where = _where(body, getattr(error, "path", None) or "", operation)
    if error is not None and error.type_name in _FACETS:
        return InvalidArgVal(f"{where} has a value that is not allowed")
    return InvalidArgs(f"{where} is not valid")


def _where(body: etree._Element, path: str, operation: str) -> str:
    """The element a validator's node path (``/*/*[2]/*``, from the validated element) points
    at, as local names from the operation down."""
    names = [operation]
    node = body
    for step in path.split("/")[2:]:
        match = _STEP.fullmatch(step)
        children = [child for child in node if isinstance(child.tag, str)]
        index = int(match.group(1) or 1) - 1 if match else len(children)
        if index >= len(children):
            break
        node = children[index]
        names.append(_local(node.tag))
    return "/".join(names)
