"""Requests as real clients send them, raw over HTTP to a camera's device behind the gateway:
ONVIF 1.x spellings, odd namespaces and order, extensions, missing optional parts, SOAP 1.1
and 1.2 under every content type. Each gets the answer it means (the stream URI a player
then plays, the profile it named); a request whose meaning is unclear gets the fault ONVIF
Core names, in the gateway's words. Every reply, faults included, is checked against the
schemas (and the gateway checks its own before sending them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from lxml import etree
from test_onvif_media import video_stream

from bridge.onvif.schemas import message_schema
from bridge.onvif.soap import SOAP11_NS, SOAP12_NS, Service

TDS = Service.DEVICE.namespace
TRT = Service.MEDIA.namespace
TR2 = Service.MEDIA2.namespace
TT = "http://www.onvif.org/ver10/schema"
SOAP12_TYPE = "application/soap+xml; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str  # without parameters
    element: etree._Element  # the one element in the Body

    @property
    def fault(self) -> tuple[list[str], str]:
        """A SOAP 1.2 Fault's code and subcodes (prefix:local) and its reason; for SOAP 1.1,
        the faultcode and faultstring."""
        if self.element.tag == f"{{{SOAP12_NS}}}Fault":
            codes = [value.text or "" for value in self.element.iter(f"{{{SOAP12_NS}}}Value")]
            return codes, self.element.findtext(f".//{{{SOAP12_NS}}}Text") or ""
        assert self.element.tag == f"{{{SOAP11_NS}}}Fault", etree.tostring(self.element)
        code, reason = (self.element.findtext(name) or "" for name in ("faultcode", "faultstring"))
        return [code], reason

    def text(self, path: str) -> str | None:
        return self.element.findtext(path, namespaces={"tt": TT, "trt": TRT, "tr2": TR2})


@dataclass
class RawClient:
    """Posts bytes to one device as a client would (HTTP Digest with the gateway's user)."""

    session: aiohttp.ClientSession
    port: int

    async def post(
        self,
        payload: bytes,
        *,
        service: Service = Service.MEDIA,
        content_type: str | None = SOAP12_TYPE,
        headers: Mapping[str, str] | None = None,
        expect100: bool = False,
    ) -> Reply:
        sent = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
        url = f"http://127.0.0.1:{self.port}{service.path}"
        async with self.session.post(url, data=payload, headers=sent, expect100=expect100) as r:
            data = await r.read()
        root = etree.fromstring(data)
        (element,) = root.find(f"{{{etree.QName(root).namespace}}}Body")
        if element.tag == f"{{{SOAP11_NS}}}Fault":  # no SOAP 1.1 schema is vendored
            assert [child.tag for child in element] == ["faultcode", "faultstring"]
        else:
            schema = message_schema(*(service.wsdl for service in Service))
            assert schema.validate(element), schema.error_log
        return Reply(r.status, r.content_type, element)


@dataclass
class Camera:
    client: RawClient
    rtsp_port: int

    def stream_uri(self, profile: str = "main", scheme: str = "rtsp") -> str:
        return f"{scheme}://127.0.0.1:{self.rtsp_port}/hama/{profile}"


@pytest.fixture
async def camera(open_device: OpenDevice) -> AsyncIterator[Camera]:
    device = await open_device("hama")
    digest = aiohttp.DigestAuthMiddleware(GATEWAY_USER, GATEWAY_PASSWORD)
    async with aiohttp.ClientSession(middlewares=(digest,)) as session:
        yield Camera(RawClient(session, device.port), device.gateway.rtsp.port)


def soap12(body: str, header: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP12_NS}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def soap11(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11_NS}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def media_stream_uri(stream: str, protocol: str, profile: str = "main") -> str:
    """GetStreamUri as ONVIF 1.x clients and the npm onvif package write it."""
    return (
        f'<GetStreamUri xmlns="{TRT}"><StreamSetup>'
        f'<Stream xmlns="{TT}">{stream}</Stream>'
        f'<Transport xmlns="{TT}"><Protocol>{protocol}</Protocol></Transport>'
        f"</StreamSetup><ProfileToken>{profile}</ProfileToken></GetStreamUri>"
    )


def media2_stream_uri(protocol: str, profile: str = "main") -> str:
    return (
        f'<GetStreamUri xmlns="{TR2}"><Protocol>{protocol}</Protocol>'
        f"<ProfileToken>{profile}</ProfileToken></GetStreamUri>"
    )


# What clients send that the schemas do not allow as written, and that has one meaning.
MEDIA_STREAM_URI_REQUESTS = {
    "onvif-1.x-spelling": media_stream_uri("RTP_unicast", "UDP"),
    "lower-case": media_stream_uri("rtp-unicast", "rtsp"),
    "deprecated-tcp": media_stream_uri("RTP-Unicast", "TCP"),
    "padded-value": media_stream_uri(" RTP-Unicast\n", "RTSP"),
    "all-in-the-operation-namespace": (
        f'<trt:GetStreamUri xmlns:trt="{TRT}"><trt:StreamSetup><trt:Stream>RTP-Unicast'
        "</trt:Stream><trt:Transport><trt:Protocol>RTSP</trt:Protocol></trt:Transport>"
        "</trt:StreamSetup><trt:ProfileToken>main</trt:ProfileToken></trt:GetStreamUri>"
    ),
    "unqualified-children": (
        f'<m:GetStreamUri xmlns:m="{TRT}"><StreamSetup><Stream>RTP-Unicast</Stream>'
        "<Transport><Protocol>UDP</Protocol></Transport></StreamSetup>"
        "<ProfileToken>main</ProfileToken></m:GetStreamUri>"
    ),
    "wrong-order-and-extensions": (
        f'<GetStreamUri xmlns="{TRT}" xmlns:v="urn:vendor" v:client="x">'
        "<ProfileToken>main</ProfileToken><v:Hint>low-latency</v:Hint>"
        f'<StreamSetup v:flag="1"><Transport xmlns="{TT}"><Protocol>RTSP</Protocol>'
        f'<Tunnel/></Transport><Stream xmlns="{TT}">RTP-Unicast</Stream>'
        f'<Extension xmlns="{TT}"><v:Any/></Extension></StreamSetup></GetStreamUri>'
    ),
    "no-stream-setup": (
        f'<GetStreamUri xmlns="{TRT}"><ProfileToken>main</ProfileToken></GetStreamUri>'
    ),
    "no-transport": (
        f'<GetStreamUri xmlns="{TRT}"><StreamSetup><Stream xmlns="{TT}">RTP-Unicast</Stream>'
        "</StreamSetup><ProfileToken>main</ProfileToken></GetStreamUri>"
    ),
}


async def test_every_spelling_of_a_stream_uri_request_gets_the_rtsp_uri(camera: Camera) -> None:
    for case, body in MEDIA_STREAM_URI_REQUESTS.items():
        reply = await camera.client.post(soap12(body))
        assert (case, reply.status) == (case, 200), reply.fault
        assert (case, reply.text("trt:MediaUri/tt:Uri")) == (case, camera.stream_uri())
    reply = await camera.client.post(soap12(media_stream_uri("RTP_unicast", "http")))
    assert reply.text("trt:MediaUri/tt:Uri") == camera.stream_uri(scheme="http")  # the tunnel
    for protocol in ("RtspUnicast", "rtspunicast", "RTSP_UNICAST", "UDP", "tcp", "rtsp"):
        reply = await camera.client.post(
            soap12(media2_stream_uri(protocol)), service=Service.MEDIA2
        )
        assert (protocol, reply.text("tr2:Uri")) == (protocol, camera.stream_uri())
    for protocol in ("RtspOverHttp", "rtsp-over-http", "HTTP"):
        reply = await camera.client.post(
            soap12(media2_stream_uri(protocol)), service=Service.MEDIA2
        )
        assert (protocol, reply.text("tr2:Uri")) == (protocol, camera.stream_uri(scheme="http"))
    missing = f'<GetStreamUri xmlns="{TR2}"><ProfileToken>sub</ProfileToken></GetStreamUri>'
    reply = await camera.client.post(soap12(missing), service=Service.MEDIA2)
    assert reply.text("tr2:Uri") == camera.stream_uri("sub")


async def test_the_uri_an_onvif_1x_client_gets_plays_over_udp(camera: Camera) -> None:
    reply = await camera.client.post(soap12(media_stream_uri("RTP_unicast", "UDP")))
    uri = reply.text("trt:MediaUri/tt:Uri")
    assert uri == camera.stream_uri()
    stream = await video_stream(uri, "udp")
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 640, 480)


ENVELOPES = {
    # SOAP 1.1 as .NET and gSOAP clients send it: text/xml and a SOAPAction header.
    "soap11-soapaction": (
        soap11(f'<GetDeviceInformation xmlns="{TDS}"/>'),
        "text/xml; charset=utf-8",
        {"SOAPAction": f'"{TDS}/GetDeviceInformation"'},
    ),
    # SOAP 1.2 with the action in the content type, in another case, with a stray ';'.
    "soap12-action-param": (
        soap12(f'<GetDeviceInformation xmlns="{TDS}"/>'),
        f'Application/SOAP+XML; Charset=UTF-8; action="{TDS}/GetDeviceInformation";',
        {},
    ),
    "application-xml": (soap12(f'<GetDeviceInformation xmlns="{TDS}"/>'), "application/xml", {}),
    "no-content-type": (soap12(f'<GetDeviceInformation xmlns="{TDS}"/>'), None, {}),
    "soap11-as-soap12-type": (soap11(f'<GetDeviceInformation xmlns="{TDS}"/>'), SOAP12_TYPE, {}),
    "blank-before-declaration": (
        b"\r\n  " + soap12(f'<GetDeviceInformation xmlns="{TDS}"/>'),
        SOAP12_TYPE,
        {},
    ),
    # No namespace on the operation: the path says which service it is.
    "unqualified-operation": (soap12("<GetDeviceInformation/>"), SOAP12_TYPE, {}),
}


@pytest.mark.parametrize("expect100", [False, True], ids=["plain", "expect-100-continue"])
async def test_any_envelope_and_content_type_is_answered_in_its_soap_version(
    camera: Camera, expect100: bool
) -> None:
    for case, (payload, content_type, headers) in ENVELOPES.items():
        reply = await camera.client.post(
            payload,
            service=Service.DEVICE,
            content_type=content_type,
            headers=headers,
            expect100=expect100,
        )
        assert (case, reply.status) == (case, 200), reply.fault
        assert reply.text(f"{{{TDS}}}Manufacturer") == "Hama GmbH & Co. KG", case
        soap11_sent = SOAP11_NS.encode() in payload
        assert reply.content_type == ("text/xml" if soap11_sent else "application/soap+xml")


async def test_a_service_operation_without_namespace_is_found_by_action_or_path(
    camera: Camera,
) -> None:
    capabilities = soap12("<GetServiceCapabilities/>")
    reply = await camera.client.post(capabilities, service=Service.MEDIA)
    assert reply.element.tag == f"{{{TRT}}}GetServiceCapabilitiesResponse"
    media = {"SOAPAction": f"{TRT}/GetServiceCapabilities"}
    reply = await camera.client.post(capabilities, service=Service.DEVICE, headers=media)
    assert reply.element.tag == f"{{{TRT}}}GetServiceCapabilitiesResponse"
    addressed = soap12(
        "<GetServiceCapabilities/>",
        f'<a:Action xmlns:a="http://www.w3.org/2005/08/addressing">{TR2}/GetServiceCapabilities'
        "</a:Action>",
    )
    reply = await camera.client.post(addressed, service=Service.DEVICE)
    assert reply.element.tag == f"{{{TR2}}}GetServiceCapabilitiesResponse"


async def test_a_latin1_request_keeps_its_letters(camera: Camera) -> None:
    create = (
        f'<CreateProfile xmlns="{TRT}"><Name>Küche</Name><Token>kitchen</Token></CreateProfile>'
    )
    payload = soap12(create).replace(b'encoding="utf-8"', b"").decode().encode("latin-1")
    reply = await camera.client.post(payload, content_type="text/xml; charset=ISO-8859-1")
    assert reply.status == 200, reply.fault
    get = f'<GetProfile xmlns="{TRT}"><profiletoken>kitchen</profiletoken></GetProfile>'
    reply = await camera.client.post(soap12(get))
    assert reply.text("trt:Profile/tt:Name") == "Küche"


UNCLEAR = {
    # (request, SOAP 1.2 fault code and subcodes)
    "unknown-stream-type": (
        media_stream_uri("RTP-Broadcast", "RTSP"),
        ["env:Sender", "ter:InvalidArgVal"],
    ),
    "unknown-transport": (
        media_stream_uri("RTP-Unicast", "SCTP"),
        ["env:Sender", "ter:InvalidArgVal"],
    ),
    "multicast": (
        media_stream_uri("RTP_multicast", "UDP"),
        ["env:Sender", "ter:InvalidArgVal", "ter:InvalidStreamSetup"],
    ),
    "two-profiles": (
        f'<GetStreamUri xmlns="{TRT}"><ProfileToken>main</ProfileToken>'
        "<ProfileToken>sub</ProfileToken></GetStreamUri>",
        ["env:Sender", "ter:InvalidArgs"],
    ),
    "no-profile": (f'<GetStreamUri xmlns="{TRT}"/>', ["env:Sender", "ter:InvalidArgs"]),
    "token-too-long": (
        media_stream_uri("RTP-Unicast", "RTSP", "p" * 65),
        ["env:Sender", "ter:InvalidArgVal"],
    ),
    "elements-for-a-value": (
        f'<GetProfile xmlns="{TRT}"><ProfileToken><a/><b/></ProfileToken></GetProfile>',
        ["env:Sender", "ter:InvalidArgs"],
    ),
    "unknown-profile": (
        media_stream_uri("RTP_unicast", "UDP", "nope"),
        ["env:Sender", "ter:InvalidArgVal", "ter:NoProfile"],
    ),
}
# What libxml2's messages say; a fault's reason must not pass them on.
VALIDATOR_WORDS = ("Element '", "facet", "not an element of the set", "Expected is", "atomic type")


async def test_unclear_requests_get_the_fault_onvif_names_in_plain_words(camera: Camera) -> None:
    for case, (body, codes) in UNCLEAR.items():
        reply = await camera.client.post(soap12(body))
        chain, reason = reply.fault
        assert (case, reply.status, chain) == (case, 400, codes)
        assert reason, case
        assert not any(word in reason for word in VALIDATOR_WORDS), (case, reason)
    reply = await camera.client.post(soap12(media_stream_uri("RTP-Broadcast", "RTSP")))
    assert "StreamSetup/Stream" in reply.fault[1]
    assert "RTP-Unicast" in reply.fault[1]  # what would have been understood
    secure = soap12(media2_stream_uri("RtspsUnicast"))
    reply = await camera.client.post(secure, service=Service.MEDIA2)
    assert reply.fault[0] == ["env:Sender", "ter:InvalidArgVal", "ter:InvalidStreamSetup"]


async def test_a_soap11_request_gets_its_fault_in_soap11(camera: Camera) -> None:
    reply = await camera.client.post(
        soap11(media_stream_uri("RTP-Broadcast", "RTSP")), content_type="text/xml"
    )
    assert (reply.status, reply.content_type) == (500, "text/xml")
    (code,), reason = reply.fault
    assert code == "env:Client"
    assert reason.endswith("(ter:InvalidArgVal)")
    reply = await camera.client.post(b"<soap:Envelope", content_type="text/xml")
    assert (reply.status, reply.content_type) == (500, "text/xml")
    reply = await camera.client.post(
        f'<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Body>'.encode(),
        content_type="application/soap+xml",
    )
    assert reply.content_type == "text/xml"  # the namespace it names, though cut short
