"""The WS-Discovery core on bytes: real clients' probes in, answers their own parsers accept
out, the target service's rules, and hostile datagrams that only ever raise ProtocolError."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from wsdiscovery.actions.probe import constructProbe, createProbeMessage
from wsdiscovery.message import parseSOAPMessage
from wsdiscovery.qname import QName as LibQName
from wsdiscovery.scope import Scope as LibScope

import bridge
from bridge.discovery.sources import Dropped, DropReason
from bridge.discovery.wsdiscovery import (
    ADHOC_TO,
    ANONYMOUS,
    DEVICE,
    DN_NS,
    MAX_DATAGRAM,
    MAX_ID_CHARS,
    MAX_ITEM_CHARS,
    MAX_PROBE_ITEMS,
    NETWORK_VIDEO_TRANSMITTER,
    RFC2396,
    RFC3986,
    SOAP11_NS,
    SOAP12_NS,
    STRCMP0,
    TDS_NS,
    WSA_NS,
    WSD_NS,
    AppSequence,
    Bye,
    Hello,
    Probe,
    ProbeMatches,
    QName,
    Resolve,
    ResolveMatches,
    Responder,
    SoapVersion,
    TargetService,
    bye,
    hello,
    matches,
    parse,
    probe,
    probe_matches,
    resolve_matches,
    scope_matches,
)
from bridge.errors import MessageTooLarge, ProtocolError

CAMERA = TargetService(
    endpoint="urn:uuid:6a0d1a55-1b0e-4c53-9d5a-3f2a4b5c6d7e",
    types=(NETWORK_VIDEO_TRANSMITTER, DEVICE),
    scopes=(
        "onvif://www.onvif.org/Profile/Streaming",
        "onvif://www.onvif.org/hardware/D1-566",
        "onvif://www.onvif.org/location/country/china",
        "onvif://www.onvif.org/name/ARV-453",
    ),
    xaddrs=("http://192.0.2.10:8000/onvif/device_service",),
    metadata_version=3,
)
PRINTER = TargetService(
    endpoint="urn:uuid:00000000-0000-4000-8000-000000000002",
    types=(QName("http://example.com/printing", "Printer"),),
    scopes=("ldap:///ou=floor1",),
    xaddrs=("http://192.0.2.20/print",),
    metadata_version=1,
)
SOURCE = ("192.0.2.50", 3702)

# npm onvif 0.8.3 (lib/discovery.js), what UniFi Protect embeds: byte for byte.
NPM_MESSAGE_ID = "urn:uuid:2f1b3d3e-6a7b-4c8d-9e0f-a1b2c3d4e5f6"
NPM_PROBE = (
    b'<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"'
    b' xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
    b"<Header>"
    b'<wsa:MessageID xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
    + NPM_MESSAGE_ID.encode()
    + b"</wsa:MessageID>"
    b'<wsa:To xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
    b"urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>"
    b'<wsa:Action xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
    b"http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>"
    b"</Header>"
    b"<Body>"
    b'<Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery"'
    b' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    b"<Types>dn:NetworkVideoTransmitter</Types>"
    b"<Scopes />"
    b"</Probe>"
    b"</Body>"
    b"</Envelope>"
)


def envelope(
    body: str,
    *,
    headers: str | None = None,
    soap: str = SOAP12_NS,
    wsa: str = WSA_NS,
    declarations: str = "",
) -> bytes:
    """A prefixed envelope (s, a, d) around ``body``; the default headers have no Action (it
    is optional), so any body goes with them."""
    if headers is None:
        headers = (
            "<a:MessageID>urn:uuid:00000000-0000-4000-8000-0000000000aa</a:MessageID>"
            f"<a:To>{ADHOC_TO}</a:To>"
        )
    return (
        f'<s:Envelope xmlns:s="{soap}" xmlns:a="{wsa}" xmlns:d="{WSD_NS}"{declarations}>'
        f"<s:Header>{headers}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def probe_with_types(types: str, declarations: str = "") -> Probe:
    message = parse(
        envelope(f"<d:Probe><d:Types>{types}</d:Types></d:Probe>", declarations=declarations)
    )
    assert isinstance(message, Probe)
    return message


def probe_with_scopes(scopes: str, match_by: str | None = None) -> Probe:
    rule = "" if match_by is None else f' MatchBy="{match_by}"'
    message = parse(envelope(f"<d:Probe><d:Scopes{rule}>{scopes}</d:Scopes></d:Probe>"))
    assert isinstance(message, Probe)
    return message


def answer(
    request: bytes, services: list[TargetService], responder: Responder | None = None
) -> list[bytes]:
    responder = responder or Responder(1)
    received = responder.receive(request, SOURCE, 0.0)
    assert isinstance(received, Probe | Resolve)
    return responder.answer(received, services)


def only_match(datagram: bytes) -> ProbeMatches:
    message = parse(datagram)
    assert isinstance(message, ProbeMatches)
    return message


# --------------------------------------------------------------------------------------------
# Real clients' probes


def test_npm_onvif_probe_is_understood_and_answered_per_device() -> None:
    assert parse(NPM_PROBE) == Probe(
        message_id=NPM_MESSAGE_ID,
        version=SoapVersion.SOAP12,
        types=(NETWORK_VIDEO_TRANSMITTER,),
        scopes=(),
        match_by=RFC3986,
        reply_to=None,
    )
    second = TargetService(
        "urn:uuid:00000000-0000-4000-8000-000000000003",
        (NETWORK_VIDEO_TRANSMITTER,),
        (),
        ("http://192.0.2.11/onvif/device_service",),
        0,
    )
    datagrams = answer(NPM_PROBE, [CAMERA, PRINTER, second])
    # One device per ProbeMatches: npm onvif reads probeMatches.probeMatch as a single object.
    assert [only_match(d).matches for d in datagrams] == [(CAMERA,), (second,)]
    for datagram in datagrams:
        reply = only_match(datagram)
        assert reply.relates_to == NPM_MESSAGE_ID
        root = etree.fromstring(datagram)
        assert root.tag == f"{{{SOAP12_NS}}}Envelope"
        assert root.findtext(f".//{{{WSA_NS}}}To") == ANONYMOUS
        assert root.findtext(f".//{{{WSA_NS}}}Action") == f"{WSD_NS}/ProbeMatches"
        assert datagram.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert only_match(datagrams[0]).message_id != only_match(datagrams[1]).message_id


NPM_ONVIF = Path("/tmp/clients/node_modules/onvif")
NODE = shutil.which("node")
NPM_READER = """
const utils = require(process.argv[1] + '/lib/utils');
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => utils.parseSOAPString(input, (err, data) => {
  if (err) { console.log(JSON.stringify({error: String(err)})); return; }
  const match = utils.linerase(data).probeMatches.probeMatch;
  console.log(JSON.stringify({address: match.endpointReference.address, xaddrs: match.XAddrs}));
}, 200));
"""


@pytest.mark.skipif(NODE is None or not NPM_ONVIF.is_dir(), reason="node and npm onvif needed")
def test_npm_onvif_reads_the_probe_match_as_its_discovery_does() -> None:
    service = TargetService(
        CAMERA.endpoint,
        CAMERA.types,
        CAMERA.scopes,
        (
            "http://192.0.2.10:8000/onvif/device_service",
            "http://[2001:db8::10]:8000/onvif/device_service",
        ),
        3,
    )
    (datagram,) = answer(NPM_PROBE, [service])
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", NPM_READER, str(NPM_ONVIF)],
        input=datagram,
        capture_output=True,
        check=True,
        timeout=30,
    )
    read = json.loads(result.stdout)
    assert read["address"] == service.endpoint
    # discovery.js splits XAddrs on single spaces and builds a URL from each.
    assert read["xaddrs"].split(" ") == list(service.xaddrs)


def test_python_wsdiscovery_probe_is_understood() -> None:
    """Home Assistant's client: pretty-printed with tabs and newlines around every value, and a
    random prefix for a type it has no prefix for."""
    env = constructProbe(
        [LibQName(DN_NS, "NetworkVideoTransmitter")],
        [LibScope("onvif://www.onvif.org/name/ARV-453")],
    )
    data = createProbeMessage(env).encode()
    assert b"\t" in data
    request = parse(data)
    assert request == Probe(
        message_id=env.getMessageId(),
        version=SoapVersion.SOAP12,
        types=(NETWORK_VIDEO_TRANSMITTER,),
        scopes=("onvif://www.onvif.org/name/ARV-453",),
        match_by=RFC3986,
        reply_to=None,
    )
    (datagram,) = answer(data, [CAMERA, PRINTER])
    reply = parseSOAPMessage(datagram, "198.51.100.1")
    assert reply.getRelatesTo() == env.getMessageId()


def test_python_wsdiscovery_reply_to_as_text_is_where_the_answer_goes() -> None:
    env = constructProbe([], [])
    env.setReplyTo("soap.udp://198.51.100.7:40000")
    data = createProbeMessage(env).encode()
    request = parse(data)
    assert isinstance(request, Probe)
    assert request.reply_to == "soap.udp://198.51.100.7:40000"
    (datagram,) = answer(data, [CAMERA])
    assert etree.fromstring(datagram).findtext(f".//{{{WSA_NS}}}To") == request.reply_to


def test_reply_to_endpoint_reference_and_2005_addressing_are_understood() -> None:
    a10 = "http://www.w3.org/2005/08/addressing"
    data = envelope(
        "<d:Probe/>",
        wsa=a10,
        headers=(
            "<a:Action>\n http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe \n</a:Action>"
            "<a:MessageID> urn:uuid:1 </a:MessageID>"
            "<a:ReplyTo><a:Address>http://198.51.100.7:5000/</a:Address></a:ReplyTo>"
        ),
    )
    assert parse(data) == Probe(
        "urn:uuid:1", SoapVersion.SOAP12, (), (), RFC3986, "http://198.51.100.7:5000/"
    )


def test_soap11_probe_with_uri_types_is_answered_in_soap11() -> None:
    data = envelope(
        "<d:Probe><d:Types>\n  http://www.onvif.org/ver10/network/wsdl/NetworkVideoTransmitter\n"
        "  http://www.onvif.org/ver10/device/wsdl#Device\n</d:Types></d:Probe>",
        soap=SOAP11_NS,
    )
    request = parse(data)
    assert isinstance(request, Probe)
    assert request.version is SoapVersion.SOAP11
    assert request.types == (NETWORK_VIDEO_TRANSMITTER, DEVICE)
    (datagram,) = answer(data, [CAMERA, PRINTER])
    root = etree.fromstring(datagram)
    assert root.tag == f"{{{SOAP11_NS}}}Envelope"
    assert root.find(f"{{{SOAP11_NS}}}Body/{{{WSD_NS}}}ProbeMatches") is not None
    assert only_match(datagram).matches == (CAMERA,)


@pytest.mark.parametrize(
    ("types", "declarations", "expected"),
    [
        ("dn:NetworkVideoTransmitter", f' xmlns:dn="{DN_NS}"', NETWORK_VIDEO_TRANSMITTER),
        ("x:NetworkVideoTransmitter", f' xmlns:x="{DN_NS}"', NETWORK_VIDEO_TRANSMITTER),
        ("dn:NetworkVideoTransmitter", "", QName("", "NetworkVideoTransmitter")),
        ("Device", f' xmlns="{TDS_NS}"', DEVICE),
        ("Device", "", QName("", "Device")),
        (f"{{{TDS_NS}}}Device", "", DEVICE),
        (f"{DN_NS}/NetworkVideoTransmitter", "", NETWORK_VIDEO_TRANSMITTER),
        (f"{DN_NS}#NetworkVideoTransmitter", "", NETWORK_VIDEO_TRANSMITTER),
        (f"{DN_NS}:NetworkVideoTransmitter", "", NETWORK_VIDEO_TRANSMITTER),
        ("urn:example:types:Camera", "", QName("urn:example:types", "Camera")),
    ],
)
def test_type_forms_clients_send(types: str, declarations: str, expected: QName) -> None:
    assert probe_with_types(types, declarations).types == (expected,)


@pytest.mark.parametrize(
    "types", ["{urn:x", "{urn:x}", ":Device", "http://host", "http://host/a/", "dn:"]
)
def test_unusable_type_names_are_protocol_errors(types: str) -> None:
    with pytest.raises(ProtocolError):
        probe_with_types(types)


def test_type_matching() -> None:
    nvt_by_name = probe_with_types("dn:NetworkVideoTransmitter")  # dn undeclared
    assert matches(CAMERA, nvt_by_name)
    assert matches(CAMERA, probe_with_types(f"{DN_NS}/NetworkVideoTransmitter"))
    assert matches(
        CAMERA,
        probe_with_types(
            "dn:NetworkVideoTransmitter tds:Device", f' xmlns:dn="{DN_NS}/" xmlns:tds="{TDS_NS}"'
        ),
    )
    assert not matches(
        CAMERA, probe_with_types("x:NetworkVideoTransmitter", ' xmlns:x="urn:other"')
    )
    assert not matches(CAMERA, probe_with_types("dn:NetworkVideoTransmitter dn:Printer"))
    assert not matches(PRINTER, nvt_by_name)


@pytest.mark.parametrize(
    "body",
    [
        "<d:Probe/>",
        "<d:Probe><d:Types/><d:Scopes/></d:Probe>",
        "<d:Probe><d:Types> </d:Types><d:Scopes>\n</d:Scopes></d:Probe>",
    ],
)
def test_empty_probe_matches_every_device(body: str) -> None:
    datagrams = answer(envelope(body), [CAMERA, PRINTER])
    assert [only_match(d).matches for d in datagrams] == [(CAMERA,), (PRINTER,)]


def test_unsupported_matching_rule_matches_nothing() -> None:
    ldap = f"{WSD_NS}/ldap"
    assert not matches(CAMERA, probe_with_scopes("onvif://www.onvif.org", ldap))
    assert not matches(CAMERA, probe_with_scopes("", ldap))
    assert answer(envelope(f'<d:Probe><d:Scopes MatchBy="{ldap}"/></d:Probe>'), [CAMERA]) == []
    assert matches(CAMERA, probe_with_scopes("onvif://www.onvif.org/name/ARV-453", STRCMP0))


# --------------------------------------------------------------------------------------------
# Scope matching


@pytest.mark.parametrize(
    ("scope", "expected"),
    [  # ONVIF Core, "Scopes": the device's example scopes against three probes
        ("onvif://www.onvif.org", True),
        ("onvif://www.onvif.org/location/country/china", True),
        ("onvif://www.onvif.org/hardware/D1", False),
        ("onvif://www.onvif.org/", True),
        ("onvif://www.onvif.org/location", True),
        ("onvif://www.onvif.org/location/country/china/", True),
        ("onvif://www.onvif.org/location/country/china/beijing", False),
        ("onvif://www.onvif.org/name/ARV-453 onvif://www.onvif.org/Profile/Streaming", True),
        ("onvif://www.onvif.org/name/ARV-453 onvif://www.onvif.org/Profile/G", False),
    ],
)
def test_onvif_core_scope_examples(scope: str, expected: bool) -> None:
    assert matches(CAMERA, probe_with_scopes(scope)) is expected


@pytest.mark.parametrize(
    ("probe_scope", "service_scope", "expected"),
    [
        ("ONVIF://WWW.ONVIF.ORG/name", "onvif://www.onvif.org/name/x", True),  # case-blind
        ("onvif://www.onvif.org/Name", "onvif://www.onvif.org/name/x", False),  # path is not
        ("onvif://www.onvif.org/name/ARV%2D453", "onvif://www.onvif.org/name/ARV-453", True),
        ("onvif://www.onvif.org/name/a%20b", "onvif://www.onvif.org/name/a%20b/c", True),
        ("onvif://www.onvif.org/a%2Fb", "onvif://www.onvif.org/a/b", False),  # one segment
        ("onvif://www.onvif.org/a/./b", "onvif://www.onvif.org/a/b", False),
        ("onvif://www.onvif.org/a", "onvif://www.onvif.org/a/../b", False),
        ("onvif://www.onvif.org/a", "onvif://www.onvif.org/a/%2E%2E", False),
        ("onvif://www.onvif.org/a?x=1#f", "onvif://www.onvif.org/a/b?y=2", True),
        ("onvif://other.example/a", "onvif://www.onvif.org/a", False),
        ("http://www.onvif.org/a", "onvif://www.onvif.org/a", False),
        ("onvif://www.onvif.org:80/a", "onvif://www.onvif.org/a", False),
        ("urn:example:a", "urn:example:a", True),
        ("urn:example", "urn:example:a", False),
        ("name/x", "name/x", False),  # relative: no scheme, nothing to compare
    ],
)
def test_rfc3986_rule(probe_scope: str, service_scope: str, expected: bool) -> None:
    for rule in (RFC3986, RFC2396, ""):
        assert scope_matches(probe_scope, service_scope, rule) is expected


def test_strcmp0_and_unknown_rules() -> None:
    assert scope_matches("onvif://a/b", "onvif://a/b", STRCMP0) is True
    assert scope_matches("onvif://a/b", "onvif://a/b/c", STRCMP0) is False
    assert scope_matches("onvif://A/b", "onvif://a/b", STRCMP0) is False
    assert scope_matches("onvif://a/b", "onvif://a/b", f"{WSD_NS}/ldap") is None
    assert scope_matches("onvif://a/b", "onvif://a/b", "urn:made:up") is None


segment = st.text(st.sampled_from("abcXYZ09-_~%"), min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)


@settings(max_examples=100, deadline=None)
@given(segments=st.lists(segment, max_size=5), cut=st.integers(0, 5), trailing=st.booleans())
def test_a_segment_prefix_always_matches(segments: list[str], cut: int, trailing: bool) -> None:
    service_scope = "/".join(["onvif://www.onvif.org", *segments])
    probe_scope = "/".join(["onvif://WWW.onvif.org", *segments[:cut]]) + ("/" if trailing else "")
    assert scope_matches(probe_scope, service_scope, RFC3986) is True


@settings(max_examples=150, deadline=None)
@given(
    probe_scope=st.text(max_size=40),
    service_scope=st.text(max_size=40),
    rule=st.sampled_from([RFC3986, RFC2396, STRCMP0, "", "x"]),
)
def test_scope_matching_takes_any_text(probe_scope: str, service_scope: str, rule: str) -> None:
    result = scope_matches(probe_scope, service_scope, rule)
    assert result is None if rule == "x" else isinstance(result, bool)


# --------------------------------------------------------------------------------------------
# What we build, read by the real python client and by the schema


def test_probe_matches_golden_bytes() -> None:
    data = probe_matches(
        CAMERA,
        relates_to="urn:uuid:00000000-0000-4000-8000-0000000000aa",
        to=None,
        version=SoapVersion.SOAP12,
        sequence=AppSequence(instance_id=7, message_number=2),
        message_id="urn:uuid:00000000-0000-4000-8000-0000000000bb",
    )
    assert data == (
        b"<?xml version='1.0' encoding='utf-8'?>\n"
        b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"'
        b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
        b' xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"'
        b' xmlns:dn="http://www.onvif.org/ver10/network/wsdl"'
        b' xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        b"<SOAP-ENV:Header>"
        b"<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-0000000000bb</wsa:MessageID>"
        b"<wsa:RelatesTo>urn:uuid:00000000-0000-4000-8000-0000000000aa</wsa:RelatesTo>"
        b"<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
        b"<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>"
        b'<d:AppSequence InstanceId="7" MessageNumber="2"/>'
        b"</SOAP-ENV:Header>"
        b"<SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch>"
        b"<wsa:EndpointReference>"
        b"<wsa:Address>urn:uuid:6a0d1a55-1b0e-4c53-9d5a-3f2a4b5c6d7e</wsa:Address>"
        b"</wsa:EndpointReference>"
        b"<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
        b"<d:Scopes>onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/hardware/D1-566"
        b" onvif://www.onvif.org/location/country/china onvif://www.onvif.org/name/ARV-453"
        b"</d:Scopes>"
        b"<d:XAddrs>http://192.0.2.10:8000/onvif/device_service</d:XAddrs>"
        b"<d:MetadataVersion>3</d:MetadataVersion>"
        b"</d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


def lib_types(env_or_match: object) -> list[str]:
    return [t.getFullname() for t in env_or_match.getTypes()]  # type: ignore[attr-defined]


def test_python_wsdiscovery_parses_our_probe_matches() -> None:
    service = TargetService(
        CAMERA.endpoint,
        (*CAMERA.types, QName("http://example.com/x", "Extra")),
        CAMERA.scopes,
        CAMERA.xaddrs,
        3,
    )
    data = probe_matches(
        service,
        relates_to="urn:uuid:probe",
        to=None,
        version=SoapVersion.SOAP12,
        sequence=AppSequence(9, 4),
        message_id="urn:uuid:reply",
    )
    env = parseSOAPMessage(data, "198.51.100.1")
    assert env.getMessageId() == "urn:uuid:reply"
    assert env.getRelatesTo() == "urn:uuid:probe"
    assert (env.getInstanceId(), env.getMessageNumber()) == ("9", "4")
    (match,) = env.getProbeResolveMatches()
    assert match.getEPR() == service.endpoint
    assert lib_types(match) == [
        f"{DN_NS}:NetworkVideoTransmitter",
        f"{TDS_NS}:Device",
        "http://example.com/x:Extra",
    ]
    assert [s.getValue() for s in match.getScopes()] == list(service.scopes)
    assert match.getXAddrs() == list(service.xaddrs)
    assert match.getMetadataVersion() == "3"


def test_python_wsdiscovery_parses_our_resolve_matches_hello_and_bye() -> None:
    sequence = AppSequence(9, 5)
    data = resolve_matches(
        PRINTER,
        relates_to="urn:uuid:r",
        to=None,
        version=SoapVersion.SOAP12,
        sequence=sequence,
        message_id="urn:uuid:m1",
    )
    (match,) = parseSOAPMessage(data, "198.51.100.1").getProbeResolveMatches()
    assert (match.getEPR(), match.getXAddrs()) == (PRINTER.endpoint, list(PRINTER.xaddrs))
    bare = TargetService("urn:uuid:bare", (), (), (), 0)
    (match,) = parseSOAPMessage(
        resolve_matches(
            bare,
            relates_to="urn:uuid:r",
            to=None,
            version=SoapVersion.SOAP12,
            sequence=sequence,
            message_id="urn:uuid:m2",
        ),
        "x",
    ).getProbeResolveMatches()
    assert match.getXAddrs() == []  # ResolveMatch's XAddrs is required: present, empty

    env = parseSOAPMessage(hello(CAMERA, sequence=sequence, message_id="urn:uuid:m3"), "x")
    assert (env.getEPR(), env.getTo(), env.getMetadataVersion()) == (CAMERA.endpoint, ADHOC_TO, "3")
    assert lib_types(env) == [f"{DN_NS}:NetworkVideoTransmitter", f"{TDS_NS}:Device"]
    assert env.getXAddrs() == list(CAMERA.xaddrs)
    env = parseSOAPMessage(bye(CAMERA, sequence=sequence, message_id="urn:uuid:m4"), "x")
    assert (env.getEPR(), env.getMessageId()) == (CAMERA.endpoint, "urn:uuid:m4")


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """The vendored ws-discovery.xsd, its WS-Addressing import resolved to the vendored copy."""
    directory = Path(bridge.__file__).parent / "onvif/wsdl/external"

    class Local(etree.Resolver):  # type: ignore[misc]
        def resolve(self, system_url: str, public_id: str, context: object) -> object:
            if system_url == WSA_NS:
                return self.resolve_filename(str(directory / "addressing"), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Local())
    return etree.XMLSchema(etree.parse(str(directory / "ws-discovery.xsd"), parser))


def assert_schema_valid(schema: etree.XMLSchema, data: bytes) -> None:
    root = etree.fromstring(data)
    for element in (*root[0], *root[1]):  # every header block and the body element
        assert schema.validate(element), schema.error_log.last_error


def test_what_we_build_is_schema_valid(schema: etree.XMLSchema) -> None:
    sequence = AppSequence(1, 1)
    bare = TargetService("urn:uuid:bare", (), (), (), 0)
    for service in (CAMERA, PRINTER, bare):
        for version in SoapVersion:
            for build in (probe_matches, resolve_matches):
                data = build(
                    service,
                    relates_to="urn:uuid:r",
                    to="http://198.51.100.7/",
                    version=version,
                    sequence=sequence,
                    message_id="urn:uuid:m",
                )
                assert_schema_valid(schema, data)
        assert_schema_valid(schema, hello(service, sequence=sequence, message_id="urn:uuid:m"))
        assert_schema_valid(schema, bye(service, sequence=sequence, message_id="urn:uuid:m"))
    assert_schema_valid(
        schema,
        probe(
            [NETWORK_VIDEO_TRANSMITTER, QName("", "Local")],
            ["onvif://a/b"],
            message_id="urn:uuid:m",
            match_by=STRCMP0,
        ),
    )
    assert_schema_valid(schema, probe([], [], message_id="urn:uuid:m"))


@pytest.mark.parametrize(
    "service",
    [
        TargetService("urn:uuid:a b", (), (), (), 0),
        TargetService("", (), (), (), 0),
        TargetService("urn:uuid:a", (QName(DN_NS, "a:b"),), (), (), 0),
        TargetService("urn:uuid:a", (QName("urn:a b", "T"),), (), (), 0),
        TargetService("urn:uuid:a", (), ("onvif://a b",), (), 0),
        TargetService("urn:uuid:a", (), ("",), (), 0),
        TargetService("urn:uuid:a", (), (), ("x" * (MAX_ITEM_CHARS + 1),), 0),
        TargetService("urn:uuid:a", (), (), (), 1 << 32),
        TargetService("urn:uuid:a", (), tuple(f"onvif://x/{i:0900d}" for i in range(20)), (), 0),
    ],
)
def test_builders_refuse_what_would_not_come_back(service: TargetService) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct messages
        hello(service, sequence=AppSequence(1, 1), message_id="urn:uuid:m")


def test_builders_refuse_bad_ids_and_sequences() -> None:
    kwargs: dict[str, Any] = {"relates_to": "urn:uuid:r", "to": None, "version": SoapVersion.SOAP12}
    with pytest.raises(ValueError, match="message_id"):
        probe_matches(
            CAMERA, **kwargs, sequence=AppSequence(1, 1), message_id="x" * (MAX_ID_CHARS + 1)
        )
    with pytest.raises(ValueError, match="AppSequence"):
        probe_matches(CAMERA, **kwargs, sequence=AppSequence(1 << 32, 1), message_id="urn:uuid:m")
    with pytest.raises(ValueError, match="types"):
        probe([DEVICE] * (MAX_PROBE_ITEMS + 1), [], message_id="urn:uuid:m")


# --------------------------------------------------------------------------------------------
# Client side: what other devices send


def test_probe_matches_from_a_sloppy_device_are_read_with_defaults() -> None:
    data = envelope(
        "<d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:cam</a:Address>"
        "</a:EndpointReference></d:ProbeMatch></d:ProbeMatches>",
        headers=f"<a:MessageID>urn:uuid:m</a:MessageID><a:RelatesTo>urn:uuid:p</a:RelatesTo><a:Action>{WSD_NS}/ProbeMatches</a:Action>",
    )
    assert parse(data) == ProbeMatches(
        "urn:uuid:m", "urn:uuid:p", (TargetService("urn:uuid:cam", (), (), (), 0),)
    )
    empty = envelope(
        "<d:ProbeMatches/>",
        headers="<a:MessageID>urn:uuid:m</a:MessageID><a:RelatesTo>urn:uuid:p</a:RelatesTo>",
    )
    assert parse(empty) == ProbeMatches("urn:uuid:m", "urn:uuid:p", ())
    with pytest.raises(ProtocolError, match="RelatesTo"):
        parse(envelope("<d:ProbeMatches/>", headers="<a:MessageID>urn:uuid:m</a:MessageID>"))


def test_hello_and_bye_from_other_devices_are_read() -> None:
    sequence = AppSequence(3, 1)
    assert parse(hello(CAMERA, sequence=sequence, message_id="urn:uuid:h")) == Hello(
        "urn:uuid:h", CAMERA
    )
    assert parse(bye(CAMERA, sequence=sequence, message_id="urn:uuid:b")) == Bye(
        "urn:uuid:b", CAMERA.endpoint
    )
    data = resolve_matches(
        CAMERA,
        relates_to="urn:uuid:r",
        to=None,
        version=SoapVersion.SOAP11,
        sequence=sequence,
        message_id="urn:uuid:m",
    )
    assert parse(data) == ResolveMatches("urn:uuid:m", "urn:uuid:r", (CAMERA,))


# --------------------------------------------------------------------------------------------
# Malformed and hostile datagrams


LONG = "x" * (MAX_ITEM_CHARS + 1)
TOO_MANY = " ".join(["dn:T"] * (MAX_PROBE_ITEMS + 1))


def hello_with_version(text: str) -> bytes:
    return envelope(
        "<d:Hello><a:EndpointReference><a:Address>u</a:Address></a:EndpointReference>"
        f"<d:MetadataVersion>{text}</d:MetadataVersion></d:Hello>"
    )


def with_headers(headers: str) -> bytes:
    return envelope("<d:Probe/>", headers=headers)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "well-formed", id="empty"),
        pytest.param(b"<not xml", "well-formed", id="not-xml"),
        pytest.param(b"<a/>", "SOAP envelope", id="not-envelope"),
        pytest.param(f'<s:Envelope xmlns:s="{SOAP12_NS}"/>'.encode(), "Body missing", id="no-body"),
        pytest.param(envelope("<d:Probe/><d:Probe/>"), "exactly one", id="two-bodies"),
        pytest.param(with_headers(""), "MessageID missing", id="no-message-id"),
        pytest.param(with_headers("<a:MessageID> </a:MessageID>"), "empty", id="blank-id"),
        pytest.param(
            with_headers(f"<a:MessageID>{'u' * (MAX_ID_CHARS + 1)}</a:MessageID>"),
            "too long",
            id="long-id",
        ),
        pytest.param(
            with_headers("<a:MessageID>a</a:MessageID><a:MessageID>b</a:MessageID>"),
            "repeated",
            id="two-ids",
        ),
        pytest.param(with_headers("<a:MessageID><x/></a:MessageID>"), "element", id="nested"),
        pytest.param(
            with_headers(f"<a:MessageID>m</a:MessageID><a:Action>{WSD_NS}/Hello</a:Action>"),
            "Action",
            id="wrong-action",
        ),
        pytest.param(
            with_headers("<a:MessageID>m</a:MessageID><a:Action>urn:x</a:Action>"),
            "Action",
            id="unknown-action",
        ),
        pytest.param(
            envelope("<d:Probe/>", wsa="urn:not:addressing"), "MessageID missing", id="no-wsa"
        ),
        pytest.param(
            envelope('<x:Probe xmlns:x="http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"/>'),
            "2005/04",
            id="ws-discovery-1.1",
        ),
        pytest.param(envelope("<d:Fault/>"), "2005/04", id="unknown-body"),
        pytest.param(
            # libxml2 lets an undeclared prefix through when a namespace warning follows it
            # (here: a relative namespace URI); lxml's QName() would then raise ValueError.
            (
                f'<s:Envelope xmlns:s="{SOAP12_NS}"><q:Header/>'
                f'<s:Body><d:Probe xmlns:d="{WSD_NS}"/></s:Body><x xmlns="relative"/></s:Envelope>'
            ).encode(),
            "not well-formed",  # refused by the hardened parser itself
            id="undeclared-prefix",
        ),
        pytest.param(
            envelope(f"<d:Probe><d:Types>{TOO_MANY}</d:Types></d:Probe>"),
            "too many",
            id="many-types",
        ),
        pytest.param(
            envelope(f"<d:Probe><d:Scopes>{TOO_MANY}</d:Scopes></d:Probe>"),
            "too many",
            id="many-scopes",
        ),
        pytest.param(
            envelope(f"<d:Probe><d:Scopes>{LONG}</d:Scopes></d:Probe>"), "too long", id="long-scope"
        ),
        pytest.param(
            envelope(f'<d:Probe><d:Scopes MatchBy="{LONG}"/></d:Probe>'), "MatchBy", id="long-rule"
        ),
        pytest.param(
            envelope("<d:Probe><d:Types/><d:Types/></d:Probe>"), "repeated", id="two-types"
        ),
        pytest.param(envelope("<d:Resolve/>"), "EndpointReference", id="resolve-nothing"),
        pytest.param(hello_with_version("-1"), "unsigned", id="negative-version"),
        pytest.param(hello_with_version("4294967296"), "unsigned", id="huge-version"),
        pytest.param(hello_with_version("1_0"), "unsigned", id="python-int-syntax"),
        pytest.param(hello_with_version("\u0661"), "unsigned", id="arabic-digit"),
    ],
)
def test_malformed_datagrams_are_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse(data)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol3;</s:Body></s:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY id SYSTEM "file:///etc/hostname">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<s:Header><a:MessageID>&id;</a:MessageID></s:Header><s:Body><d:Probe/></s:Body></s:Envelope>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_doctypes_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="document type"):
        parse(data)
    assert Responder(1).receive(data, SOURCE, 0.0) == Dropped(DropReason.MALFORMED)


def test_oversize_datagrams_are_refused_unparsed() -> None:
    padding = " " * (MAX_DATAGRAM - len(NPM_PROBE) + 1)
    data = NPM_PROBE.replace(b"<Body>", b"<Body>" + padding.encode())
    assert len(data) == MAX_DATAGRAM + 1
    with pytest.raises(MessageTooLarge):
        parse(data)
    assert Responder(1).receive(data, SOURCE, 0.0) == Dropped(DropReason.TOO_LARGE)
    one_byte_less = data.replace(b"<Body> ", b"<Body>", 1)
    assert isinstance(parse(one_byte_less), Probe)


# --------------------------------------------------------------------------------------------
# The responder's rules


def new_probe(message_id: str | None = None) -> bytes:
    return probe(
        [NETWORK_VIDEO_TRANSMITTER], [], message_id=message_id or f"urn:uuid:{uuid.uuid4()}"
    )


def test_a_repeated_message_id_is_answered_once() -> None:
    responder = Responder(1)
    data = new_probe("urn:uuid:00000000-0000-4000-8000-00000000000f")
    assert isinstance(responder.receive(data, SOURCE, 0.0), Probe)
    # SOAP-over-UDP repeats a multicast message; from anywhere, it is the same message.
    assert responder.receive(data, SOURCE, 0.1) == Dropped(DropReason.DUPLICATE)
    assert responder.receive(data, ("192.0.2.51", 3702), 0.2) == Dropped(DropReason.DUPLICATE)


def test_rate_limit_is_per_source_and_recovers() -> None:
    responder = Responder(1, rate=1.0, burst=3.0)
    for _ in range(3):
        assert isinstance(responder.receive(new_probe(), SOURCE, 10.0), Probe)
    assert responder.receive(new_probe(), SOURCE, 10.0) == Dropped(DropReason.RATE_LIMITED)
    # Another host is not punished for this one, and a duplicate costs no token.
    other = ("192.0.2.99", 50000)
    assert isinstance(responder.receive(new_probe(), other, 10.0), Probe)
    assert responder.receive(new_probe(), (SOURCE[0], 9999), 10.0) == Dropped(
        DropReason.RATE_LIMITED
    )
    assert isinstance(responder.receive(new_probe(), SOURCE, 11.0), Probe)
    assert responder.receive(new_probe(), SOURCE, 11.0) == Dropped(DropReason.RATE_LIMITED)


def test_duplicates_do_not_consume_tokens() -> None:
    responder = Responder(1, rate=0.001, burst=2.0)
    data = new_probe()
    assert isinstance(responder.receive(data, SOURCE, 0.0), Probe)
    for _ in range(5):
        assert responder.receive(data, SOURCE, 0.0) == Dropped(DropReason.DUPLICATE)
    assert isinstance(responder.receive(new_probe(), SOURCE, 0.0), Probe)


@pytest.mark.parametrize(
    "source",
    [
        ("239.255.255.250", 3702),
        ("224.0.0.1", 3702),
        ("255.255.255.255", 3702),
        ("0.0.0.0", 3702),
        ("::", 3702),
        ("ff02::c", 3702),
        ("::ffff:239.255.255.250", 3702),
        ("::ffff:255.255.255.255", 3702),
        ("192.0.2.50", 0),
        ("192.0.2.50", 70000),
        ("not-an-address", 3702),
        ("192.168.1.255", 3702),  # a directed broadcast the caller knows of
    ],
)
def test_never_answer_a_multicast_or_broadcast_source(source: tuple[str, int]) -> None:
    responder = Responder(1, is_broadcast=lambda address: address == "192.168.1.255")
    # Even a malformed datagram: the source is judged first.
    assert responder.receive(new_probe(), source, 0.0) == Dropped(DropReason.BAD_SOURCE)
    assert responder.receive(b"junk", source, 0.0) == Dropped(DropReason.BAD_SOURCE)


@pytest.mark.parametrize(
    "source",
    [
        ("fe80::1%eth0", 3702),
        ("fe80::1%eth0", 3702, 0, 2),  # asyncio's IPv6 address tuple
        ("2001:db8::7", 3702),
        ("192.168.1.254", 1),
        ("127.0.0.1", 3702),
    ],
)
def test_unicast_sources_are_answered(source: tuple[str, int]) -> None:
    responder = Responder(1, is_broadcast=lambda address: address == "192.168.1.255")
    assert isinstance(responder.receive(new_probe(), source, 0.0), Probe)


def test_messages_that_are_not_requests_are_dropped() -> None:
    responder = Responder(1)
    sequence = AppSequence(5, 1)
    for data in (
        hello(CAMERA, sequence=sequence, message_id="urn:uuid:h"),
        bye(CAMERA, sequence=sequence, message_id="urn:uuid:b"),
        probe_matches(
            CAMERA,
            relates_to="urn:uuid:p",
            to=None,
            version=SoapVersion.SOAP12,
            sequence=sequence,
            message_id="urn:uuid:m",
        ),
    ):
        assert responder.receive(data, SOURCE, 0.0) == Dropped(DropReason.NOT_A_REQUEST)
    assert responder.receive(b"<junk", SOURCE, 0.0) == Dropped(DropReason.MALFORMED)


def test_resolve_is_answered_by_the_device_it_names() -> None:
    def resolve(endpoint: str) -> bytes:
        return envelope(
            f"<d:Resolve><a:EndpointReference><a:Address>{endpoint}</a:Address></a:EndpointReference></d:Resolve>",
            soap=SOAP11_NS,
            headers=f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID><a:Action>{WSD_NS}/Resolve</a:Action>",
        )

    (datagram,) = answer(resolve(PRINTER.endpoint), [CAMERA, PRINTER])
    reply = parse(datagram)
    assert isinstance(reply, ResolveMatches)
    assert reply.matches == (PRINTER,)
    assert etree.fromstring(datagram).tag == f"{{{SOAP11_NS}}}Envelope"
    assert answer(resolve("urn:uuid:nobody"), [CAMERA, PRINTER]) == []


def test_one_message_counter_orders_everything_sent() -> None:
    responder = Responder(42)
    sent = [responder.hello(CAMERA), responder.hello(PRINTER)]
    request = responder.receive(new_probe(), SOURCE, 0.0)
    assert isinstance(request, Probe)
    sent += responder.answer(request, [CAMERA, PRINTER])
    sent.append(responder.bye(CAMERA))
    sequences = [etree.fromstring(d).find(f".//{{{WSD_NS}}}AppSequence") for d in sent]
    assert [(s.get("InstanceId"), s.get("MessageNumber")) for s in sequences] == [
        ("42", "1"),
        ("42", "2"),
        ("42", "3"),
        ("42", "4"),
    ]
    message_ids = [parse(d).message_id for d in sent]
    assert len(set(message_ids)) == len(message_ids)
    assert all(uuid.UUID(m.removeprefix("urn:uuid:")).version == 4 for m in message_ids)
    assert isinstance(parse(sent[0]), Hello)
    assert parse(sent[-1]) == Bye(message_ids[-1], CAMERA.endpoint)


# --------------------------------------------------------------------------------------------
# Properties


LETTERS = "ABCXYZabcxyz_"
ncname = st.builds(str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + "019.-", max_size=15))
namespaces = st.one_of(
    st.sampled_from([DN_NS, TDS_NS, WSD_NS, WSA_NS, SOAP12_NS, "urn:example:types", ""]),
    st.text("abc019/", max_size=12).map("http://example.com/".__add__),
)
qnames = st.builds(QName, namespaces, ncname)
# List items: any XML characters but whitespace (what separates them) and controls.
items = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)
ids = st.one_of(st.uuids().map(lambda u: f"urn:uuid:{u}"), items)
services = st.builds(
    TargetService,
    endpoint=ids,
    types=st.lists(qnames, max_size=5).map(tuple),
    scopes=st.lists(items, max_size=5).map(tuple),
    xaddrs=st.lists(items, max_size=3).map(tuple),
    metadata_version=st.integers(0, 0xFFFFFFFF),
)
sequences = st.builds(AppSequence, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))


reply_headers = st.fixed_dictionaries(
    {
        "relates_to": ids,
        "to": st.none() | ids,
        "version": st.sampled_from(SoapVersion),
        "sequence": sequences,
        "message_id": ids,
    }
)


@settings(max_examples=60, deadline=None)
@given(service=services, headers=reply_headers)
def test_round_trips(service: TargetService, headers: dict[str, Any]) -> None:
    message_id, relates_to, sequence = (
        headers["message_id"],
        headers["relates_to"],
        headers["sequence"],
    )
    assert parse(probe_matches(service, **headers)) == ProbeMatches(
        message_id, relates_to, (service,)
    )
    assert parse(resolve_matches(service, **headers)) == ResolveMatches(
        message_id, relates_to, (service,)
    )
    assert parse(hello(service, sequence=sequence, message_id=message_id)) == Hello(
        message_id, service
    )
    assert parse(bye(service, sequence=sequence, message_id=message_id)) == Bye(
        message_id, service.endpoint
    )


@settings(max_examples=60, deadline=None)
@given(
    types=st.lists(qnames, max_size=5),
    scopes=st.lists(items, max_size=5),
    version=st.sampled_from(SoapVersion),
    message_id=ids,
    match_by=st.none() | st.sampled_from([RFC3986, STRCMP0, "urn:x"]),
)
def test_probe_round_trips(
    types: list[QName],
    scopes: list[str],
    version: SoapVersion,
    message_id: str,
    match_by: str | None,
) -> None:
    data = probe(types, scopes, message_id=message_id, version=version, match_by=match_by)
    rule = RFC3986 if match_by is None or not scopes else match_by
    assert parse(data) == Probe(message_id, version, tuple(types), tuple(scopes), rule, None)


MARKER = "ZQ9MARK"
SEEDS = [
    NPM_PROBE,
    new_probe("urn:uuid:00000000-0000-4000-8000-000000000001"),
    probe(
        [DEVICE, QName("", "X")],
        ["onvif://www.onvif.org/a"],
        message_id="urn:uuid:s",
        version=SoapVersion.SOAP11,
        match_by=STRCMP0,
    ),
    probe_matches(
        CAMERA,
        relates_to="urn:uuid:p",
        to=None,
        version=SoapVersion.SOAP12,
        sequence=AppSequence(1, 1),
        message_id="urn:uuid:m",
    ),
    resolve_matches(
        PRINTER,
        relates_to="urn:uuid:p",
        to="http://x/",
        version=SoapVersion.SOAP11,
        sequence=AppSequence(1, 1),
        message_id="urn:uuid:m",
    ),
    hello(CAMERA, sequence=AppSequence(1, 1), message_id="urn:uuid:h"),
    bye(CAMERA, sequence=AppSequence(1, 1), message_id="urn:uuid:b"),
    envelope(
        f"<d:Resolve><a:EndpointReference><a:Address>{CAMERA.endpoint}</a:Address></a:EndpointReference></d:Resolve>"
    ),
    createProbeMessage(
        constructProbe([LibQName(DN_NS, "NetworkVideoTransmitter")], [LibScope("onvif://x/y")])
    ).encode(),
]
_D = f'xmlns:d="{WSD_NS}"'
_A = f'xmlns:a="{WSA_NS}"'
# Each declares what it uses, so that inserted anywhere it is still namespace-well-formed.
FRAGMENTS = [
    f"<d:Types {_D}>dn:{MARKER} {{{MARKER}</d:Types>",
    f"<d:Types {_D} xmlns:dn='{DN_NS}'>http://{MARKER}/ {MARKER}:x dn:T{MARKER}</d:Types>",
    f"<d:Scopes {_D} MatchBy='{MARKER}'>onvif://{MARKER}/a</d:Scopes>",
    f"<d:Scopes {_D}>onvif://www.onvif.org/{MARKER}/%2E%2E</d:Scopes>",
    f"<a:MessageID {_A}>{MARKER}</a:MessageID>",
    f"<a:Action {_A}>{MARKER}</a:Action>",
    f"<a:Action {_A}>{WSD_NS}/Hello</a:Action>",
    f"<a:RelatesTo {_A}>{MARKER}</a:RelatesTo>",
    f"<a:ReplyTo {_A}><a:Address>{MARKER}</a:Address></a:ReplyTo>",
    f"<a:ReplyTo {_A}><x/></a:ReplyTo>",
    f"<d:MetadataVersion {_D}>{MARKER}</d:MetadataVersion>",
    f"<d:MetadataVersion {_D}>99999999999</d:MetadataVersion>",
    f"<d:ProbeMatch {_D} {_A}><a:EndpointReference><a:Address>{MARKER}</a:Address>"
    "</a:EndpointReference></d:ProbeMatch>",
    f"<a:EndpointReference {_A}><a:Address>{MARKER}</a:Address></a:EndpointReference>",
    f'<x:{MARKER} xmlns:x="urn:{MARKER}">{MARKER}</x:{MARKER}>',
    f'<Types xmlns="{WSD_NS}">{MARKER}:x</Types>',
    f"<d:Probe {_D}/>",
    f"<d:Hello {_D}/>",
    f"<{MARKER}/>",
    "<![CDATA[<d:Probe/>]]>",
    "&amp;&lt;&#x1F600;",
]
ATTRIBUTES = [
    f'MatchBy="{MARKER}"',
    f'MatchBy="{STRCMP0}"',
    'MatchBy=""',
    f'InstanceId="{MARKER}"',
    f'xmlns="urn:{MARKER}"',
    f'xmlns:dn="urn:{MARKER}"',
    f'xmlns:d="{WSD_NS}"',
    f'xmlns:wsa="{WSA_NS}"',
    f'xmlns:a="{WSA_NS}"',
    f'xmlns:s="{SOAP11_NS}"',
    f'{MARKER}="1"',
]


def start_tag_ends(data: bytearray) -> list[int]:
    """Where the start tags end (the '>', or the '/' of '/>'): room for an attribute."""
    ends = []
    for match in re.finditer(rb"<[A-Za-z_][^<>]*?(/?)>", data):
        ends.append(match.end() - 1 - len(match.group(1)))
    return ends


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    """A real message with 1-3 changes; most keep it well-formed, so they reach the
    WS-Discovery layer rather than stopping at the XML parser."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    kinds = ["element"] * 4 + ["attribute"] * 3 + ["text"] * 2 + ["truncate", "flip", "delete"]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        tag_ends = [i + 1 for i, byte in enumerate(data) if byte == ord(">")]
        if kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete" and data:
            at = draw(st.integers(0, len(data) - 1))
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "element" and tag_ends:
            at = draw(st.sampled_from(tag_ends))
            data[at:at] = draw(st.sampled_from(FRAGMENTS)).encode()
        elif kind == "attribute" and start_tag_ends(data):
            at = draw(st.sampled_from(start_tag_ends(data)))
            data[at:at] = b" " + draw(st.sampled_from(ATTRIBUTES)).encode()
        elif kind == "text" and tag_ends:
            at = draw(st.sampled_from(tag_ends))
            text = draw(st.text(max_size=20)) + MARKER
            data[at:at] = (escape(text) if draw(st.booleans()) else text).encode()
    return bytes(data)


def assert_only_protocol_errors(data: bytes) -> None:
    try:
        parse(data)
    except ProtocolError as exc:
        error = str(exc)
    else:
        error = ""
    assert MARKER not in error  # the messages never quote the peer
    assert len(error) < 80
    assert isinstance(Responder(1).receive(data, SOURCE, 0.0), Probe | Resolve | Dropped)


@settings(max_examples=300, deadline=None)
@given(data=mutations())
def test_mutated_messages_only_raise_protocol_errors(data: bytes) -> None:
    assert_only_protocol_errors(data)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=400)
    | st.text(st.sampled_from("<>/=\"': abdsxmlnP&;#\n"), max_size=200).map(str.encode)
)
def test_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    assert_only_protocol_errors(data)


def test_seeds_are_valid_messages() -> None:
    """The fuzzers start from real messages, so what they mutate reaches the deep paths."""
    assert all(parse(seed) for seed in SEEDS)
