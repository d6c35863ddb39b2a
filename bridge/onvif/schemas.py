"""The vendored ONVIF WSDLs and schemas, loaded with no network access.

The files under ``wsdl/`` are byte-for-byte ONVIF's (their licence grants no right to modify
them), so the few imports that name a remote URL are mapped to the local copies here, for zeep
(:class:`LocalTransport`) and for lxml's schema validator (:func:`message_schema`) alike. Any
location outside the map or the directory is refused instead of fetched.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import zeep
from lxml import etree
from zeep.settings import Settings
from zeep.wsdl import Document

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"

# Remote location (an exact URL, or a prefix ending in "/") -> path under WSDL_DIR. The OASIS
# prefixes cover both the absolute imports in ONVIF's files and the relative ones inside the
# OASIS files, which resolve against the URL they were loaded from.
_REMOTE: tuple[tuple[str, str], ...] = (
    ("http://docs.oasis-open.org/wsn/", "external/"),
    ("http://docs.oasis-open.org/wsrf/", "external/"),
    ("http://www.w3.org/2005/08/addressing/ws-addr.xsd", "external/ws-addr.xsd"),
    ("http://schemas.xmlsoap.org/ws/2004/08/addressing", "external/addressing"),
    ("http://www.w3.org/2001/xml.xsd", "external/xml.xsd"),
    ("https://www.w3.org/2005/05/xmlmime", "external/xmlmime"),
    ("https://www.w3.org/2004/08/xop/include", "external/include"),
    ("https://www.w3.org/2003/05/soap-envelope", "local/soap-envelope.xsd"),
)

_EMBEDDED = "bridge-embedded:"
_XS = "http://www.w3.org/2001/XMLSchema"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_PARTICLES = frozenset(
    f"{{{_XS}}}{name}" for name in ("element", "group", "choice", "sequence", "any")
)


class SchemaLocationRefused(LookupError):
    """A WSDL or schema names a location that is neither vendored nor mapped."""


def local_path(location: str) -> Path:
    """The vendored file for a location (a path or file URL inside WSDL_DIR, or a mapped URL)."""
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        for remote, local in _REMOTE:
            if location == remote or (remote.endswith("/") and location.startswith(remote)):
                candidate = WSDL_DIR / (local + location[len(remote) :])
                break
        else:
            raise SchemaLocationRefused(location)
    elif parsed.scheme == "file":
        candidate = Path(parsed.path)
    elif parsed.scheme:
        raise SchemaLocationRefused(location)
    else:
        candidate = Path(location)
    resolved = candidate.resolve()
    if not resolved.is_relative_to(WSDL_DIR) or not resolved.is_file():
        raise SchemaLocationRefused(location)
    return resolved


class LocalTransport(zeep.Transport):
    """A zeep transport that only reads vendored files; it never opens a connection."""

    def load(self, url: str) -> bytes:
        return local_path(url).read_bytes()


def zeep_settings() -> Settings:
    """Strict parsing (unexpected elements are errors), no DTDs, entities or huge trees.

    ``force_https`` is off because it rewrites the http imports inside an https-loaded schema
    to https URLs, which are not the ones mapped to local files.
    """
    return Settings(
        strict=True,
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        force_https=False,
    )


@functools.cache
def load_wsdl(relative: str) -> Document:
    """The zeep document of one vendored WSDL (path relative to WSDL_DIR), loaded once."""
    transport = LocalTransport()  # type: ignore[no-untyped-call]
    return Document(str(WSDL_DIR / relative), transport, settings=zeep_settings())  # type: ignore[arg-type]


class _LocalResolver(etree.Resolver):  # type: ignore[misc]
    def __init__(self, embedded: dict[str, tuple[bytes, str]]) -> None:
        super().__init__()
        self._embedded = embedded

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        if system_url in self._embedded:
            text, base = self._embedded[system_url]
        else:
            path = local_path(system_url)
            text, base = path.read_bytes(), str(path)
        tree = etree.fromstring(text, _parser(), base_url=base)
        _narrow_trailing_wildcards(tree)
        return self.resolve_string(etree.tostring(tree), context, base_url=base)


def _narrow_trailing_wildcards(schema: etree._Element) -> None:
    """Make ONVIF's ``##any`` extension points pass libxml2's XSD 1.0 checks.

    ONVIF mixes optional elements and a wildcard that also matches its own namespace
    (``##any``, ``##targetNamespace``) in one sequence, which breaks XSD 1.0's Unique Particle
    Attribution rule (XSD 1.1 allows it; libxml2 implements 1.0). In the validator's in-memory
    copy such a wildcard accepts ``##other`` namespaces only, so extension elements in the
    schema's own namespace, which the gateway never sends, are rejected.
    """
    for wildcard in schema.iter(f"{{{_XS}}}any"):
        namespaces = wildcard.get("namespace", "##any").split()
        own = "##any" in namespaces or "##targetNamespace" in namespaces
        siblings = [
            node for node in wildcard.itersiblings(preceding=False) if node.tag in _PARTICLES
        ] + [node for node in wildcard.itersiblings(preceding=True) if node.tag in _PARTICLES]
        if own and siblings:
            wildcard.set("namespace", "##other")


@functools.cache
def message_schema(*wsdl_files: str) -> etree.XMLSchema:
    """An lxml validator for the messages of the given WSDLs (paths relative to WSDL_DIR),
    plus the SOAP 1.2 envelope (so faults validate too).

    A WSDL's own types live inside it, so each embedded ``xs:schema`` is served to libxml2
    under a made-up location, with the WSDL's path as its base for relative imports.
    """
    embedded: dict[str, tuple[bytes, str]] = {}
    imports: list[tuple[str, str]] = [
        ("http://www.w3.org/2003/05/soap-envelope", "https://www.w3.org/2003/05/soap-envelope")
    ]
    for relative in wsdl_files:
        path = WSDL_DIR / relative
        tree = etree.parse(str(path), _parser())
        for index, schema in enumerate(tree.iterfind(f"{{{_WSDL}}}types/{{{_XS}}}schema")):
            location = f"{_EMBEDDED}{relative}#{index}"
            embedded[location] = (etree.tostring(schema), str(path))
            imports.append((schema.get("targetNamespace", ""), location))
    root = etree.Element(f"{{{_XS}}}schema", nsmap={"xs": _XS})
    for namespace, location in imports:
        etree.SubElement(root, f"{{{_XS}}}import", namespace=namespace, schemaLocation=location)
    parser = _parser()
    parser.resolvers.add(_LocalResolver(embedded))
    document = etree.fromstring(etree.tostring(root), parser, base_url=str(WSDL_DIR) + "/")
    return etree.XMLSchema(document)


@functools.cache
def enumerations() -> dict[str, tuple[str, ...]]:
    """The allowed values of every named simple type of the vendored files that enumerates
    them, by qualified name (``{namespace}name`` text); a type that restricts an enumerated
    one without listing values of its own has its base's.

    lxml's validator checks enumerations but does not expose them, and zeep ignores facets:
    the tolerant reader (:mod:`bridge.onvif.tolerant`) needs them to recognize a value spelled
    another way.
    """
    found: dict[str, tuple[str, ...]] = {}
    bases: dict[str, str] = {}
    for path in sorted(WSDL_DIR.rglob("*")):
        if path.suffix not in (".xsd", ".wsdl"):
            continue
        for schema in etree.parse(str(path), _parser()).iter(f"{{{_XS}}}schema"):
            namespace = schema.get("targetNamespace", "")
            for simple in schema.iterfind(f"{{{_XS}}}simpleType[@name]"):
                restriction = simple.find(f"{{{_XS}}}restriction")
                if restriction is None:
                    continue
                name = etree.QName(namespace or None, simple.get("name", "")).text
                values = restriction.xpath("xs:enumeration/@value", namespaces={"xs": _XS})
                if values:
                    found[name] = tuple(str(value) for value in values)
                elif (base := restriction.get("base")) is not None:
                    prefix, _, local = base.rpartition(":")
                    bases[name] = etree.QName(restriction.nsmap.get(prefix or None), local).text
    for name, base in bases.items():
        root, seen = base, {name}
        while root in bases and root not in seen:  # a chain of restrictions, never a loop
            seen.add(root)
            root = bases[root]
        if root in found:
            found[name] = found[root]
    return found


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
