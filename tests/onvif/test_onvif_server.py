"""The SOAP layer end to end: a tiny ONVIF device on loopback, driven over HTTP by raw SOAP
messages and by onvif-zeep-async (the client Home Assistant uses)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import yarl
from conftest import Serve
from lxml import etree
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from bridge.errors import NoProfile
from bridge.onvif import OnvifRequest, Operations, Service, device_app
from bridge.onvif.schemas import message_schema

USER, PASSWORD = "admin", "s3cret"
DEVICE_INFO = {
    "Manufacturer": "Bridge",
    "Model": "Legacy Cam",
    "FirmwareVersion": "1.0",
    "SerialNumber": "SN-1",
    "HardwareId": "HW-1",
}
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TER = "http://www.onvif.org/ver10/error"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"


class TinyDevice:
    """Handlers answering from fixed values; every request they receive is kept."""

    def __init__(self) -> None:
        self.requests: list[OnvifRequest] = []

    def operations(self) -> Operations:
        ops = Operations()
        ops.add(Service.DEVICE, "GetSystemDateAndTime", self.get_system_date_and_time)
        ops.add(Service.DEVICE, "GetDeviceInformation", self.get_device_information)
        ops.add(Service.DEVICE, "GetServices", self.get_services)
        ops.add(Service.DEVICE, "GetScopes", self.get_scopes)
        ops.add(Service.DEVICE, "SetHostname", self.set_hostname)
        return ops

    async def get_system_date_and_time(self, request: OnvifRequest) -> Mapping[str, Any]:
        self.requests.append(request)
        now = dt.datetime.now(dt.UTC)
        return {
            "SystemDateAndTime": {
                "DateTimeType": "Manual",
                "DaylightSavings": False,
                "TimeZone": {"TZ": "UTC0"},
                "UTCDateTime": {
                    "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second},
                    "Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                },
            }
        }

    async def get_device_information(self, request: OnvifRequest) -> Mapping[str, Any]:
        self.requests.append(request)
        return DEVICE_INFO

    async def get_services(self, request: OnvifRequest) -> Mapping[str, Any]:
        self.requests.append(request)
        xaddr = f"http://{request.host}{Service.DEVICE.path}"
        return {
            "Service": [{"Namespace": TDS, "XAddr": xaddr, "Version": {"Major": 2, "Minor": 0}}]
        }

    async def get_scopes(self, request: OnvifRequest) -> Mapping[str, Any]:
        raise NoProfile()

    async def set_hostname(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"Unexpected": request.params["Name"]}  # not in SetHostnameResponse: a handler bug


@dataclass
class Device:
    url: str
    tiny: TinyDevice

    @property
    def service(self) -> str:
        return self.url + Service.DEVICE.path


@pytest.fixture
async def device(serve: Serve) -> Device:
    tiny = TinyDevice()
    app = device_app(tiny.operations(), {USER: PASSWORD}, max_request_bytes=64 * 1024)
    return Device(await serve(app), tiny)


def envelope(body: str, header: str = "", *, soap: str = SOAP12) -> bytes:
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{soap}" xmlns:tds="{TDS}">{head}<s:Body>{body}</s:Body>'
        f"</s:Envelope>"
    ).encode()


def username_token(
    password: str = PASSWORD,
    *,
    user: str = USER,
    digest: bool = True,
    nonce: bytes | None = None,
    created: dt.datetime | None = None,
) -> str:
    """A wsse:Security header block, PasswordDigest (fresh nonce, now) unless told otherwise."""
    nonce = os.urandom(16) if nonce is None else nonce
    stamp = (created or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if digest:
        raw = nonce + stamp.encode() + password.encode()
        value = base64.b64encode(hashlib.sha1(raw).digest()).decode()
        kind = "PasswordDigest"
    else:
        value, kind = password, "PasswordText"
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="true">'
        f"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"
        f'<wsse:Password Type="{_PROFILE}#{kind}">{value}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def body_element(payload: bytes, soap: str = SOAP12) -> etree._Element:
    """The one element inside a response's Body."""
    root = etree.fromstring(payload)
    assert root.tag == f"{{{soap}}}Envelope"
    (element,) = root.find(f"{{{soap}}}Body")
    return element


def fault_subcodes(payload: bytes) -> list[str]:
    """A SOAP 1.2 Fault's code followed by its subcodes, as prefix:local strings."""
    fault = body_element(payload)
    assert fault.tag == f"{{{SOAP12}}}Fault"
    assert fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text")
    return [value.text or "" for value in fault.iter(f"{{{SOAP12}}}Value")]


def assert_schema_valid(element: etree._Element) -> None:
    schema = message_schema(*(service.wsdl for service in Service))
    assert schema.validate(element), schema.error_log


async def post(
    url: str,
    payload: bytes,
    *,
    content_type: str = "application/soap+xml; charset=utf-8",
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        response = await stack.enter_async_context(
            session.post(url, data=payload, headers={"Content-Type": content_type})
        )
        return response.status, dict(response.headers), await response.read()


GET_TIME = "<tds:GetSystemDateAndTime/>"
GET_INFO = "<tds:GetDeviceInformation/>"


def assert_device_information(payload: bytes) -> None:
    element = body_element(payload)
    assert element.tag == f"{{{TDS}}}GetDeviceInformationResponse"
    assert {etree.QName(child).localname: child.text for child in element} == DEVICE_INFO
    assert_schema_valid(element)


def assert_fault(status: int, headers: Mapping[str, str], payload: bytes, *chain: str) -> None:
    assert headers["Content-Type"] == "application/soap+xml; charset=utf-8"
    assert fault_subcodes(payload) == list(chain)
    assert_schema_valid(body_element(payload))
    assert status == (400 if chain[0] == "env:Sender" else 500)


async def test_pre_auth_operation_needs_no_credentials(device: Device) -> None:
    status, headers, payload = await post(device.service, envelope(GET_TIME))
    assert status == 200
    assert headers["Content-Type"] == "application/soap+xml; charset=utf-8"
    element = body_element(payload)
    assert element.tag == f"{{{TDS}}}GetSystemDateAndTimeResponse"
    assert_schema_valid(element)
    assert device.tiny.requests[0].user is None


async def test_call_without_credentials_gets_401_with_digest_challenge(device: Device) -> None:
    status, headers, payload = await post(device.service, envelope(GET_INFO))
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Digest ")
    assert 'qop="auth"' in headers["WWW-Authenticate"]
    assert fault_subcodes(payload) == ["env:Sender", "ter:NotAuthorized"]
    assert device.tiny.requests == []


async def test_http_digest_authenticates(device: Device) -> None:
    middleware = aiohttp.DigestAuthMiddleware(USER, PASSWORD)
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        status, _, payload = await post(device.service, envelope(GET_INFO), session=session)
    assert status == 200
    assert_device_information(payload)
    assert device.tiny.requests[0].user == USER


async def test_http_digest_wrong_password_is_challenged_again(device: Device) -> None:
    middleware = aiohttp.DigestAuthMiddleware(USER, "wrong")
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        status, headers, payload = await post(device.service, envelope(GET_INFO), session=session)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Digest ")
    assert fault_subcodes(payload) == ["env:Sender", "ter:NotAuthorized"]


@pytest.mark.parametrize("digest", [True, False], ids=["PasswordDigest", "PasswordText"])
async def test_ws_security_username_token_authenticates(device: Device, digest: bool) -> None:
    payload = envelope(GET_INFO, username_token(digest=digest))
    status, _, reply = await post(device.service, payload)
    assert status == 200
    assert_device_information(reply)
    assert device.tiny.requests[0].user == USER


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: username_token("wrong"), id="wrong-password"),
        pytest.param(lambda: username_token(user="nobody"), id="unknown-user"),
        pytest.param(lambda: username_token("wrong", digest=False), id="wrong-text"),
        pytest.param(
            lambda: username_token(created=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)),
            id="stale-created",
        ),
        pytest.param(
            lambda: username_token(created=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)),
            id="future-created",
        ),
    ],
)
async def test_ws_security_refusals_are_not_authorized_faults(
    device: Device, token: Callable[[], str]
) -> None:
    status, headers, payload = await post(device.service, envelope(GET_INFO, token()))
    assert_fault(status, headers, payload, "env:Sender", "ter:NotAuthorized")
    assert device.tiny.requests == []


async def test_replayed_nonce_is_refused(device: Device) -> None:
    payload = envelope(GET_INFO, username_token())
    status, _, _ = await post(device.service, payload)
    assert status == 200
    status, headers, reply = await post(device.service, payload)
    assert_fault(status, headers, reply, "env:Sender", "ter:NotAuthorized")


async def test_refusals_are_logged_rate_limited_and_without_credentials(
    device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    guesses = [f"guess-{n}-Secret" for n in range(5)]
    for guess in guesses:  # a client guessing passwords in clear
        payload = envelope(GET_INFO, username_token(guess, digest=False))
        status, _, _ = await post(device.service, payload)
        assert status == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.onvif.server"]
    assert len(lines) == 1
    assert "UsernameToken refused" in lines[0]
    assert not any(guess in lines[0] for guess in guesses)


async def test_pre_auth_operation_ignores_failing_credentials(device: Device) -> None:
    stale = username_token(created=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    status, _, payload = await post(device.service, envelope(GET_TIME, stale))
    assert status == 200
    assert body_element(payload).tag == f"{{{TDS}}}GetSystemDateAndTimeResponse"
    assert device.tiny.requests[0].user is None


async def test_handlers_receive_plain_values(device: Device) -> None:
    body = "<tds:GetServices><tds:IncludeCapability>true</tds:IncludeCapability></tds:GetServices>"
    status, _, payload = await post(device.service, envelope(body))
    assert status == 200
    (request,) = device.tiny.requests
    assert request.service is Service.DEVICE
    assert request.operation == "GetServices"
    assert request.params == {"IncludeCapability": True}
    assert type(request.params) is dict
    assert request.path == Service.DEVICE.path
    element = body_element(payload)
    assert_schema_valid(element)
    assert element.findtext(f"{{{TDS}}}Service/{{{TDS}}}XAddr") == device.service


async def test_malformed_xml_is_a_well_formed_fault_and_serving_goes_on(device: Device) -> None:
    for payload in (b"<s:Envelope", b"\xff\xfe garbage", b""):
        status, headers, reply = await post(device.service, payload)
        assert_fault(status, headers, reply, "env:Sender", "ter:WellFormed")
    status, _, _ = await post(device.service, envelope(GET_TIME))
    assert status == 200


async def test_huge_body_is_refused_and_serving_goes_on(device: Device) -> None:
    padding = "<!--" + "x" * (100 * 1024) + "-->"
    status, _, reply = await post(device.service, envelope(GET_TIME + padding))
    assert status == 413
    assert fault_subcodes(reply) == ["env:Sender"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap is met mid-read
        for _ in range(10):
            yield b" " * 16 * 1024

    async with aiohttp.ClientSession() as session, session.post(device.service, data=chunks()) as r:
        assert r.status == 413
        assert fault_subcodes(await r.read()) == ["env:Sender"]
    status, _, _ = await post(device.service, envelope(GET_TIME))
    assert status == 200


class _Said(logging.Handler):
    """What one logger said, and an event for its first line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.first = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.first.set()


async def test_a_client_that_leaves_mid_body_is_no_error_and_serving_goes_on(
    device: Device,
) -> None:
    """A VMS that crashes, or a fuzzer, closing the connection halfway through a request."""
    url = yarl.URL(device.service)
    server_log = logging.getLogger("bridge.onvif.server")
    said = _Said()
    server_log.addHandler(said)
    level = server_log.level
    server_log.setLevel(logging.DEBUG)
    try:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        body = envelope(GET_TIME)
        writer.write(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Content-Type: application/soap+xml\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:40]
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""  # no answer: nobody is there to read it
        async with asyncio.timeout(5):
            await said.first.wait()
        status, _, _ = await post(device.service, envelope(GET_TIME))
    finally:
        server_log.removeHandler(said)
        server_log.setLevel(level)
    assert status == 200
    assert said.lines == [
        f"ONVIF client 127.0.0.1 left before its request to {url.path} was complete"
    ]


async def test_entity_expansion_is_refused(device: Device) -> None:
    laughs = "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' if i else '<!ENTITY lol0 "lol">'
        for i in range(10)
    )
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE s:Envelope [{laughs}]>'.encode()
        + envelope("<tds:GetHostname>&lol9;</tds:GetHostname>").split(b"?>", 1)[1]
    )
    status, headers, reply = await post(device.service, bomb)
    assert_fault(status, headers, reply, "env:Sender", "ter:WellFormed")
    assert b"lollol" not in reply

    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    xxe += envelope("<tds:GetHostname>&e;</tds:GetHostname>").split(b"?>", 1)[1]
    status, headers, reply = await post(device.service, xxe)
    assert_fault(status, headers, reply, "env:Sender", "ter:WellFormed")
    assert b"root:" not in reply
    status, _, _ = await post(device.service, envelope(GET_TIME))
    assert status == 200


async def test_unknown_or_unimplemented_operation_is_action_not_supported(device: Device) -> None:
    header = username_token()
    unknown = envelope('<x:Frobnicate xmlns:x="urn:example"/>', header)
    status, headers, reply = await post(device.service, unknown)
    assert_fault(status, headers, reply, "env:Receiver", "ter:ActionNotSupported")
    unimplemented = envelope("<tds:SystemReboot/>", username_token())
    status, headers, reply = await post(device.service, unimplemented)
    assert_fault(status, headers, reply, "env:Receiver", "ter:ActionNotSupported")


async def test_request_against_the_schema_is_invalid_args(device: Device) -> None:
    body = "<tds:GetServices><tds:IncludeCapability>maybe</tds:IncludeCapability></tds:GetServices>"
    status, headers, reply = await post(device.service, envelope(body))
    assert_fault(status, headers, reply, "env:Sender", "ter:InvalidArgs")
    status, headers, reply = await post(device.service, envelope("<tds:GetServices/>"))
    assert_fault(status, headers, reply, "env:Sender", "ter:InvalidArgs")
    assert device.tiny.requests == []


async def test_handler_faults_and_bugs_become_faults(device: Device) -> None:
    status, headers, reply = await post(
        device.service, envelope("<tds:GetScopes/>", username_token())
    )
    assert_fault(status, headers, reply, "env:Sender", "ter:InvalidArgVal", "ter:NoProfile")
    bad = envelope("<tds:SetHostname><tds:Name>cam</tds:Name></tds:SetHostname>", username_token())
    status, headers, reply = await post(device.service, bad)
    assert_fault(status, headers, reply, "env:Receiver", "ter:Action")
    assert b"Unexpected" not in reply


async def test_soap_envelope_errors(device: Device) -> None:
    status, headers, reply = await post(device.service, b"<Envelope/>")
    assert headers["Content-Type"] == "application/soap+xml; charset=utf-8"
    assert status == 500
    assert fault_subcodes(reply) == ["env:VersionMismatch"]
    header = '<x:Must xmlns:x="urn:example" s:mustUnderstand="true"/>'
    status, _, reply = await post(device.service, envelope(GET_TIME, header))
    assert status == 500
    assert fault_subcodes(reply) == ["env:MustUnderstand"]


async def test_soap_11_request_gets_soap_11_reply(device: Device) -> None:
    payload = envelope(GET_INFO, username_token(), soap=SOAP11)
    status, headers, reply = await post(device.service, payload, content_type="text/xml")
    assert status == 200
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert body_element(reply, SOAP11).tag == f"{{{TDS}}}GetDeviceInformationResponse"
    status, headers, reply = await post(
        device.service, envelope("<tds:SystemReboot/>", username_token(), soap=SOAP11)
    )
    assert status == 500
    fault = body_element(reply, SOAP11)
    assert fault.tag == f"{{{SOAP11}}}Fault"
    assert fault.findtext("faultcode") == "env:Server"


async def test_get_is_method_not_allowed_without_html(device: Device) -> None:
    async with aiohttp.ClientSession() as session, session.get(device.service) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert response.content_type == "application/soap+xml"
        assert fault_subcodes(await response.read()) == ["env:Sender"]


async def test_every_service_path_is_served(device: Device) -> None:
    for service in Service:
        status, _, _ = await post(device.url + service.path, envelope(GET_TIME))
        assert status == 200
    status, _, _ = await post(
        device.url + "/onvif/events_service/subscription/7", envelope(GET_TIME)
    )
    assert status == 200
    assert device.tiny.requests[-1].path == "/onvif/events_service/subscription/7"


def test_operations_must_exist_in_the_wsdl() -> None:
    ops = Operations()
    with pytest.raises(ValueError, match="no operation"):
        ops.add(Service.PTZ, "GetDeviceInformation", TinyDevice().get_device_information)
    ops.add(Service.DEVICE, "GetDeviceInformation", TinyDevice().get_device_information)
    with pytest.raises(ValueError, match="already"):
        ops.add(Service.DEVICE, "GetDeviceInformation", TinyDevice().get_device_information)


@pytest.fixture
async def onvif_camera(device: Device) -> AsyncIterator[Callable[[str], Any]]:
    """onvif-zeep-async ONVIFCamera objects for the device, as Home Assistant builds them."""
    cameras: list[Any] = []

    def open_(password: str) -> Any:
        port = int(device.url.rsplit(":", 1)[1])
        camera = ONVIFCamera("127.0.0.1", port, USER, password, no_cache=True, adjust_time=True)
        cameras.append(camera)
        return camera

    yield open_
    for camera in cameras:
        await camera.close()


async def test_onvif_zeep_async_client(onvif_camera: Callable[[str], Any]) -> None:
    camera = onvif_camera(PASSWORD)
    devicemgmt = await camera.create_devicemgmt_service()
    clock = await devicemgmt.authless_GetSystemDateAndTime()
    assert clock.UTCDateTime.Date.Year == dt.datetime.now(dt.UTC).year
    info = await devicemgmt.GetDeviceInformation()
    assert {key: getattr(info, key) for key in DEVICE_INFO} == DEVICE_INFO


async def test_onvif_zeep_async_client_wrong_password(onvif_camera: Callable[[str], Any]) -> None:
    devicemgmt = await onvif_camera("wrong").create_devicemgmt_service()
    with pytest.raises(Fault) as caught:
        await devicemgmt.GetDeviceInformation()
    assert caught.value.subcodes[0].localname == "NotAuthorized"
