"""SSDP messages and UPnP device descriptions on bytes, as real searchers and cameras send them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.discovery.sources import Dropped, DropReason
from bridge.discovery.ssdp import (
    DEFAULT_MAX_AGE,
    DEVICE_TYPE,
    MAX_CACHE_AGE,
    MAX_DATAGRAM,
    MAX_DESCRIPTION,
    MAX_HEADERS,
    MAX_MX,
    MAX_VALUE,
    ROOT_DEVICE,
    SSDP_ALL,
    USER_AGENT,
    DeviceDescription,
    Message,
    MSearch,
    Notify,
    Responder,
    SearchResponse,
    UpnpDevice,
    alive,
    answer,
    byebye,
    description_xml,
    msearch,
    notifications,
    notify,
    parse,
    parse_description,
    reply_delay,
    search_response,
    search_targets,
    server_string,
)
from bridge.errors import MessageTooLarge, ProtocolError

UDN = "uuid:4d696e69-444c-164e-9d41-b0c5ca000001"
LOCATION = "http://192.168.1.10:8000/upnp/cam1.xml"
SERVER = "Linux/6 UPnP/1.0 bridge/0.1.0"
DEVICE = UpnpDevice(udn=UDN, location=LOCATION, server=SERVER)
SEARCHER = ("192.168.1.20", 50123)

# What Windows (SSDP Discovery service, and Blue Iris through it) multicasts, byte for byte.
WINDOWS_MSEARCH = (
    b"M-SEARCH * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b'MAN: "ssdp:discover"\r\n'
    b"MX: 1\r\n"
    b"ST: ssdp:all\r\n"
    b"\r\n"
)
WINDOWS_ROOT_MSEARCH = WINDOWS_MSEARCH.replace(b"ssdp:all", b"upnp:rootdevice")
# Windows' SSDP service itself writes no blank after the colons and mixed-case names.
WINDOWS_SSDPSRV_MSEARCH = (
    b"M-SEARCH * HTTP/1.1\r\n"
    b"Host:239.255.255.250:1900\r\n"
    b"ST:urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    b'Man:"ssdp:discover"\r\n'
    b"MX:3\r\n"
    b"\r\n"
)
# miniupnpc's upnpDiscover(): ST before MAN, USER-AGENT-less, MX 2.
MINIUPNPC_MSEARCH = (
    b"M-SEARCH * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    b'MAN: "ssdp:discover"\r\n'
    b"MX: 2\r\n"
    b"\r\n"
)
# A 2009-era camera's announcement: LF-only, lowercase names, spaces around max-age's "=".
CAMERA_ALIVE = (
    b"NOTIFY * HTTP/1.1\n"
    b"host: 239.255.255.250:1900\n"
    b"cache-control: max-age = 1800\n"
    b"location: http://192.168.1.30:80/rootDesc.xml\n"
    b"nt: upnp:rootdevice\n"
    b"nts: ssdp:alive\n"
    b"server: Linux/2.4 UPnP/1.0 IPCam/1.2\n"
    b"usn: uuid:a1b2c3d4-0000-1000-8000-0013e2000001::upnp:rootdevice\n"
    b"\n"
)
CAMERA_BYEBYE = (
    b"NOTIFY * HTTP/1.1\r\n"
    b"HOST: 239.255.255.250:1900\r\n"
    b"NT: upnp:rootdevice\r\n"
    b"NTS: ssdp:byebye\r\n"
    b"USN: uuid:a1b2c3d4-0000-1000-8000-0013e2000001::upnp:rootdevice\r\n"
    b"\r\n"
)
CAMERA_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b'CACHE-CONTROL: no-cache="Ext", max-age=120\r\n'
    b"DATE: Sat, 01 Jan 2000 00:12:45 GMT\r\n"
    b"EXT:\r\n"
    b"LOCATION: http://192.168.1.30:49152/description.xml\r\n"
    b"SERVER: Linux/2.6.21 UPnP/1.0 IPCam/1.2\r\n"
    b"ST: upnp:rootdevice\r\n"
    b"USN: uuid:a1b2c3d4-0000-1000-8000-0013e2000001::upnp:rootdevice\r\n"
    b"\r\n"
)
VALID_MESSAGES = [
    WINDOWS_MSEARCH,
    WINDOWS_SSDPSRV_MSEARCH,
    MINIUPNPC_MSEARCH,
    CAMERA_ALIVE,
    CAMERA_BYEBYE,
    CAMERA_RESPONSE,
    msearch(),
    *alive(DEVICE, boot_id=7),
    *answer(DEVICE, MSearch(SSDP_ALL, 1, '"ssdp:discover"', "", ""), date="x"),
]


def msearch_bytes(*headers: bytes) -> bytes:
    return b"\r\n".join([b"M-SEARCH * HTTP/1.1", *headers]) + b"\r\n\r\n"


def windows_search(st: str = SSDP_ALL) -> MSearch:
    return MSearch(st=st, mx=1, man='"ssdp:discover"', host="239.255.255.250:1900", user_agent="")


# --- parsing real searches -----------------------------------------------------------------


def test_parses_the_windows_search() -> None:
    assert parse(WINDOWS_MSEARCH) == windows_search()
    assert parse(WINDOWS_ROOT_MSEARCH) == windows_search(ROOT_DEVICE)


def test_parses_a_miniupnpc_search_and_the_windows_service_one() -> None:
    igd = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    assert parse(MINIUPNPC_MSEARCH) == MSearch(
        st=igd, mx=2, man='"ssdp:discover"', host="239.255.255.250:1900", user_agent=""
    )
    assert parse(WINDOWS_SSDPSRV_MSEARCH) == MSearch(
        st=igd, mx=3, man='"ssdp:discover"', host="239.255.255.250:1900", user_agent=""
    )


def test_parses_lowercase_names_lf_endings_trailing_blanks_and_unquoted_man() -> None:
    data = (
        b"M-SEARCH * HTTP/1.1  \n"
        b"host:239.255.255.250:1900\n"
        b"man: ssdp:discover \t\n"
        b"mx: 3\n"
        b"st: upnp:rootdevice\n"
        b"user-agent: Foo/1 UPnP/1.1 Bar/2\n"
        b"\n"
    )
    assert parse(data) == MSearch(
        st=ROOT_DEVICE,
        mx=3,
        man="ssdp:discover",
        host="239.255.255.250:1900",
        user_agent="Foo/1 UPnP/1.1 Bar/2",
    )


def test_a_datagram_may_end_without_the_blank_line_and_a_body_is_ignored() -> None:
    assert parse(WINDOWS_MSEARCH.removesuffix(b"\r\n")) == windows_search()
    assert parse(WINDOWS_MSEARCH.removesuffix(b"\r\n\r\n")) == windows_search()
    assert parse(WINDOWS_MSEARCH + b"\x00\xff junk") == windows_search()


@pytest.mark.parametrize(
    ("mx_header", "mx"),
    [
        (None, 0),
        (b"MX: 0", 0),
        (b"MX: 5", 5),
        (b"MX: 121", MAX_MX),
        (b"MX: 9" + b"0" * 900, MAX_MX),
    ],
)
def test_mx_is_clamped_and_missing_means_zero(mx_header: bytes | None, mx: int) -> None:
    headers = [b'MAN: "ssdp:discover"', b"ST: ssdp:all"] + ([mx_header] if mx_header else [])
    search = parse(msearch_bytes(*headers))
    assert isinstance(search, MSearch)
    assert search.mx == mx


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(msearch_bytes(b"MX: 1", b"ST: ssdp:all"), id="no MAN"),
        pytest.param(msearch_bytes(b'MAN: "ssdp:alive"', b"MX: 1", b"ST: x"), id="wrong MAN"),
        pytest.param(msearch_bytes(b'MAN: "ssdp:discover"', b"MX: 1"), id="no ST"),
        pytest.param(msearch_bytes(b'MAN: "ssdp:discover"', b"ST:"), id="empty ST"),
        pytest.param(msearch_bytes(b'MAN: "ssdp:discover"', b"MX: -1", b"ST: x"), id="MX < 0"),
        pytest.param(msearch_bytes(b'MAN: "ssdp:discover"', b"MX: 1.5", b"ST: x"), id="MX 1.5"),
        pytest.param(WINDOWS_MSEARCH.replace(b"HTTP/1.1", b"HTTP/1.0", 1), id="HTTP/1.0"),
        pytest.param(WINDOWS_MSEARCH.replace(b"M-SEARCH", b"m-search"), id="lowercase method"),
        pytest.param(WINDOWS_MSEARCH.replace(b"* ", b"/ "), id="not *"),
        pytest.param(b" " + WINDOWS_MSEARCH, id="leading blank"),
        pytest.param(b"\r\n" + WINDOWS_MSEARCH, id="leading blank line"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="HTTP request"),
        pytest.param(b"", id="empty"),
    ],
)
def test_refuses_bad_searches(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(data)


# --- header syntax and limits --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        pytest.param(b"X-A: ssdp:all\r\n more", "folded", id="folded with SP"),
        pytest.param(b"X-A: ssdp:all\r\n\tmore", "folded", id="folded with HT"),
        pytest.param(b"ST: upnp:rootdevice", "repeated", id="repeated ST"),
        pytest.param(b"X Bad: 1", "malformed", id="blank in name"),
        pytest.param(b"ST : x", "malformed", id="blank before colon"),
        pytest.param(b"no colon here", "malformed", id="no colon"),
        pytest.param(b": empty name", "malformed", id="empty name"),
        pytest.param(b"X-Ctl: a\x01b", "control", id="control char"),
        pytest.param(b"X-Nul: a\x00b", "control", id="NUL"),
        pytest.param(b"X-Del: a\x7fb", "control", id="DEL"),
        pytest.param("X-Name: caf\u00e9".encode(), "non-ASCII", id="UTF-8"),
        pytest.param(b"X-Cr: a\rb", "bare CR", id="bare CR"),
    ],
)
def test_refuses_bad_header_lines(extra: bytes, error: str) -> None:
    data = WINDOWS_MSEARCH.removesuffix(b"\r\n") + extra + b"\r\n\r\n"
    with pytest.raises(ProtocolError, match=error):
        parse(data)


def test_repeats_of_uninterpreted_headers_are_ignored() -> None:
    data = msearch_bytes(b'MAN: "ssdp:discover"', b"ST: ssdp:all", b"X-A: 1", b"x-a: 2", b"EXT:")
    assert isinstance(parse(data), MSearch)


def test_caps() -> None:
    with pytest.raises(MessageTooLarge):
        parse(WINDOWS_MSEARCH + b"\x00" * (MAX_DATAGRAM - len(WINDOWS_MSEARCH) + 1))
    assert parse(WINDOWS_MSEARCH + b"\x00" * (MAX_DATAGRAM - len(WINDOWS_MSEARCH))) == parse(
        WINDOWS_MSEARCH
    )
    search = [b'MAN: "ssdp:discover"', b"ST: ssdp:all"]
    fillers = [b"X-F%d: 1" % i for i in range(MAX_HEADERS - len(search))]
    assert isinstance(parse(msearch_bytes(*search, *fillers)), MSearch)
    with pytest.raises(MessageTooLarge):
        parse(msearch_bytes(*search, *fillers, b"X-One-Too-Many: 1"))
    longest = parse(msearch_bytes(b'MAN: "ssdp:discover"', b"ST: " + b"s" * MAX_VALUE))
    assert isinstance(longest, MSearch)
    assert longest.st == "s" * MAX_VALUE
    with pytest.raises(MessageTooLarge):
        parse(msearch_bytes(b'MAN: "ssdp:discover"', b"ST: " + b"s" * (MAX_VALUE + 1)))


@pytest.mark.parametrize(
    "data",
    [
        msearch_bytes(b'MAN: "SECRET-7f3a"', b"ST: x"),
        msearch_bytes(b'MAN: "ssdp:discover"', b"MX: SECRET-7f3a", b"ST: x"),
        msearch_bytes(b"SECRET-7f3a"),
        b"SECRET-7f3a * HTTP/1.1\r\n\r\n",
        CAMERA_ALIVE.replace(b"http://", b"SECRET-7f3a://"),
        CAMERA_ALIVE.replace(b"ssdp:alive", b"SECRET-7f3a"),
        CAMERA_ALIVE.replace(b"= 1800", b"= SECRET-7f3a"),
    ],
)
def test_errors_do_not_echo_the_peer(data: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(data)
    assert "SECRET" not in str(caught.value)


# --- NOTIFY and search responses -----------------------------------------------------------


def test_parses_a_camera_alive_and_byebye() -> None:
    usn = "uuid:a1b2c3d4-0000-1000-8000-0013e2000001::upnp:rootdevice"
    assert parse(CAMERA_ALIVE) == Notify(
        nt=ROOT_DEVICE,
        nts="ssdp:alive",
        usn=usn,
        location="http://192.168.1.30:80/rootDesc.xml",
        server="Linux/2.4 UPnP/1.0 IPCam/1.2",
        max_age=1800,
    )
    assert parse(CAMERA_BYEBYE) == Notify(
        nt=ROOT_DEVICE, nts="ssdp:byebye", usn=usn, location="", server="", max_age=None
    )


def test_parses_a_camera_search_response() -> None:
    assert parse(CAMERA_RESPONSE) == SearchResponse(
        st=ROOT_DEVICE,
        usn="uuid:a1b2c3d4-0000-1000-8000-0013e2000001::upnp:rootdevice",
        location="http://192.168.1.30:49152/description.xml",
        server="Linux/2.6.21 UPnP/1.0 IPCam/1.2",
        max_age=120,
    )
    http10 = CAMERA_RESPONSE.replace(b"HTTP/1.1 200 OK", b"HTTP/1.0 200")
    assert isinstance(parse(http10), SearchResponse)


@pytest.mark.parametrize(
    ("cache_control", "max_age"),
    [
        (b"max-age=1800", 1800),
        (b"MAX-AGE = 60", 60),
        (b'no-cache="Ext", max-age=5000', 5000),
        (b"max-age=999999999999999999999999", MAX_CACHE_AGE),
        (b"no-cache", None),
    ],
)
def test_reads_max_age(cache_control: bytes, max_age: int | None) -> None:
    data = CAMERA_ALIVE.replace(b"max-age = 1800", cache_control)
    notification = parse(data)
    assert isinstance(notification, Notify)
    assert notification.max_age == max_age
    without = parse(CAMERA_RESPONSE.replace(b'no-cache="Ext", max-age=120', cache_control))
    assert isinstance(without, SearchResponse)
    assert without.max_age == max_age


def test_a_missing_cache_control_reads_as_none() -> None:
    notification = parse(CAMERA_ALIVE.replace(b"cache-control: max-age = 1800\n", b""))
    assert isinstance(notification, Notify)
    assert notification.max_age is None


def test_parses_ssdp_update_and_boot_id() -> None:
    data = CAMERA_ALIVE.replace(b"ssdp:alive", b"ssdp:update").replace(
        b"\n\n", b"\nBOOTID.UPNP.ORG: 2147483647\n\n"
    )
    notification = parse(data)
    assert isinstance(notification, Notify)
    assert (notification.nts, notification.boot_id) == ("ssdp:update", 2**31 - 1)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(CAMERA_ALIVE.replace(b"http://", b"ftp://"), id="ftp LOCATION"),
        pytest.param(CAMERA_ALIVE.replace(b"http://192.168.1.30:80", b"/"), id="relative"),
        pytest.param(CAMERA_ALIVE.replace(b":80/", b":99999/"), id="bad port"),
        pytest.param(CAMERA_ALIVE.replace(b":80/", b":0/"), id="port 0"),
        pytest.param(CAMERA_ALIVE.replace(b"192.168.1.30:80", b"[::1"), id="bad IPv6"),
        pytest.param(CAMERA_ALIVE.replace(b"rootDesc", b"root Desc"), id="blank in URL"),
        pytest.param(
            CAMERA_ALIVE.replace(b"location: http://192.168.1.30:80/rootDesc.xml\n", b""),
            id="alive without LOCATION",
        ),
        pytest.param(CAMERA_ALIVE.replace(b"nts: ssdp:alive", b"nts: ssdp:propchange"), id="NTS"),
        pytest.param(CAMERA_ALIVE.replace(b"nt: upnp:rootdevice\n", b""), id="no NT"),
        pytest.param(CAMERA_ALIVE.replace(b"usn:", b"x-usn:"), id="no USN"),
        pytest.param(CAMERA_ALIVE.replace(b"= 1800", b"= 18OO"), id="bad max-age"),
        pytest.param(CAMERA_ALIVE.replace(b"max-age = 1800", b"max-age"), id="max-age no value"),
        pytest.param(
            CAMERA_ALIVE.replace(b"\n\n", b"\nBOOTID.UPNP.ORG: 2147483648\n\n"), id="BOOTID too big"
        ),
        pytest.param(
            CAMERA_ALIVE.replace(b"\n\n", b"\nlocation: http://evil/\n\n"), id="two LOCATIONs"
        ),
        pytest.param(CAMERA_RESPONSE.replace(b"200 OK", b"404 Not Found"), id="404"),
        pytest.param(
            CAMERA_RESPONSE.replace(b"LOCATION", b"X-LOCATION"), id="response no LOCATION"
        ),
        pytest.param(CAMERA_RESPONSE.replace(b"ST: upnp:rootdevice\r\n", b""), id="response no ST"),
    ],
)
def test_refuses_bad_notifications_and_responses(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(data)


def test_a_byebye_needs_no_location_and_ignores_one() -> None:
    with_location = CAMERA_BYEBYE.replace(b"\r\n\r\n", b"\r\nLOCATION: gopher://x\r\n\r\n")
    notification = parse(with_location)
    assert isinstance(notification, Notify)
    assert notification.location == ""


# --- builders ------------------------------------------------------------------------------


def test_builds_a_search_response_byte_for_byte() -> None:
    data = search_response(
        st=ROOT_DEVICE,
        usn=f"{UDN}::{ROOT_DEVICE}",
        location=LOCATION,
        server=SERVER,
        date="Mon, 01 Jan 2024 00:00:00 GMT",
        boot_id=3,
    )
    assert data == (
        b"HTTP/1.1 200 OK\r\n"
        b"CACHE-CONTROL: max-age=1800\r\n"
        b"DATE: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
        b"EXT:\r\n"
        b"LOCATION: http://192.168.1.10:8000/upnp/cam1.xml\r\n"
        b"SERVER: Linux/6 UPnP/1.0 bridge/0.1.0\r\n"
        b"ST: upnp:rootdevice\r\n"
        b"USN: uuid:4d696e69-444c-164e-9d41-b0c5ca000001::upnp:rootdevice\r\n"
        b"BOOTID.UPNP.ORG: 3\r\n"
        b"\r\n"
    )
    plain = search_response(st="s", usn="u", location=LOCATION, server=SERVER, max_age=60)
    assert b"DATE" not in plain
    assert b"BOOTID" not in plain
    assert parse(plain) == SearchResponse("s", "u", LOCATION, SERVER, 60)


def test_builds_alive_and_byebye_byte_for_byte() -> None:
    assert notify(
        nt=UDN, nts="ssdp:alive", usn=UDN, location=LOCATION, server=SERVER, max_age=900
    ) == (
        b"NOTIFY * HTTP/1.1\r\n"
        b"HOST: 239.255.255.250:1900\r\n"
        b"CACHE-CONTROL: max-age=900\r\n"
        b"LOCATION: http://192.168.1.10:8000/upnp/cam1.xml\r\n"
        b"NT: uuid:4d696e69-444c-164e-9d41-b0c5ca000001\r\n"
        b"NTS: ssdp:alive\r\n"
        b"SERVER: Linux/6 UPnP/1.0 bridge/0.1.0\r\n"
        b"USN: uuid:4d696e69-444c-164e-9d41-b0c5ca000001\r\n"
        b"\r\n"
    )
    assert notify(
        nt=UDN, nts="ssdp:byebye", usn=UDN, location=LOCATION, server=SERVER, boot_id=0
    ) == (
        b"NOTIFY * HTTP/1.1\r\n"
        b"HOST: 239.255.255.250:1900\r\n"
        b"NT: uuid:4d696e69-444c-164e-9d41-b0c5ca000001\r\n"
        b"NTS: ssdp:byebye\r\n"
        b"USN: uuid:4d696e69-444c-164e-9d41-b0c5ca000001\r\n"
        b"BOOTID.UPNP.ORG: 0\r\n"
        b"\r\n"
    )


def test_builds_a_search_byte_for_byte() -> None:
    assert msearch(ROOT_DEVICE, 3, user_agent="Linux/6 UPnP/1.1 bridge/0.1.0") == (
        b"M-SEARCH * HTTP/1.1\r\n"
        b"HOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\n'
        b"MX: 3\r\n"
        b"ST: upnp:rootdevice\r\n"
        b"USER-AGENT: Linux/6 UPnP/1.1 bridge/0.1.0\r\n"
        b"\r\n"
    )
    assert parse(msearch()) == MSearch(
        SSDP_ALL, 2, '"ssdp:discover"', "239.255.255.250:1900", USER_AGENT
    )


def test_server_string() -> None:
    assert server_string("bridge", "0.1.0") == "Linux/6 UPnP/1.0 bridge/0.1.0"
    assert server_string("IPCam", "1.2", platform="Linux/2.4") == "Linux/2.4 UPnP/1.0 IPCam/1.2"
    for bad in [("a b", "1"), ("a/b", "1"), ("a", ""), ("a", "1\r\n")]:
        with pytest.raises(ValueError, match="token"):
            server_string(*bad)
    with pytest.raises(ValueError, match="OS/version"):
        server_string("a", "1", platform="Linux")


INJECTIONS = [
    "x\r\nEVIL: 1",
    "x\nEVIL: 1",
    "x\rEVIL",
    "x\x00",
    "x\x7f",
    "caf\u00e9",
    "",
    " x",
    "x\t",
    "x" * (MAX_VALUE + 1),
]
BUILDERS: dict[str, Callable[[str], bytes]] = {
    "response ST": lambda v: search_response(st=v, usn="u", location=LOCATION, server=SERVER),
    "response USN": lambda v: search_response(st="s", usn=v, location=LOCATION, server=SERVER),
    "response SERVER": lambda v: search_response(st="s", usn="u", location=LOCATION, server=v),
    "response DATE": lambda v: search_response(
        st="s", usn="u", location=LOCATION, server=SERVER, date=v
    ),
    "response LOCATION": lambda v: search_response(
        st="s", usn="u", location=LOCATION + v, server=SERVER
    ),
    "alive NT": lambda v: notify(nt=v, nts="ssdp:alive", usn="u", location=LOCATION, server=SERVER),
    "alive USN": lambda v: notify(
        nt="n", nts="ssdp:alive", usn=v, location=LOCATION, server=SERVER
    ),
    "alive SERVER": lambda v: notify(
        nt="n", nts="ssdp:alive", usn="u", location=LOCATION, server=v
    ),
    "alive LOCATION": lambda v: notify(
        nt="n", nts="ssdp:alive", usn="u", location=LOCATION + v, server=SERVER
    ),
    "byebye NT": lambda v: notify(nt=v, nts="ssdp:byebye", usn="u", location=None, server=SERVER),
    "byebye USN": lambda v: notify(nt="n", nts="ssdp:byebye", usn=v, location=None, server=SERVER),
    "NTS": lambda v: notify(
        nt="n", nts="ssdp:alive" + v, usn="u", location=LOCATION, server=SERVER
    ),
    "search ST": msearch,
    "search USER-AGENT": lambda v: msearch(user_agent=v),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_builders_refuse_header_injection(name: str) -> None:
    for value in INJECTIONS:
        if value == "" and name in ("response LOCATION", "alive LOCATION", "NTS"):
            continue  # these append the value to a valid one
        with pytest.raises(ValueError):  # noqa: PT011 - the message differs by field
            BUILDERS[name](value)


def test_builders_refuse_bad_numbers_and_arguments() -> None:
    common = {"st": "s", "usn": "u", "location": LOCATION, "server": SERVER}
    for bad in [
        {"max_age": -1},
        {"max_age": MAX_CACHE_AGE + 1},
        {"boot_id": -1},
        {"boot_id": 2**31},
    ]:
        with pytest.raises(ValueError, match=r"max_age|boot_id"):
            search_response(**common, **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="LOCATION"):
        search_response(st="s", usn="u", location="ftp://host/x", server=SERVER)
    with pytest.raises(ValueError, match="needs a LOCATION"):
        notify(nt="n", nts="ssdp:alive", usn="u", location=None, server=SERVER)
    with pytest.raises(ValueError, match="nts"):
        notify(nt="n", nts="ssdp:update", usn="u", location=LOCATION, server=SERVER)
    for mx in (0, 6):
        with pytest.raises(ValueError, match="mx"):
            msearch(mx=mx)


def test_the_largest_message_still_fits_a_datagram() -> None:
    biggest = search_response(
        st="s" * MAX_VALUE,
        usn="u" * MAX_VALUE,
        location=LOCATION + "p" * (MAX_VALUE - len(LOCATION)),
        server="v" * MAX_VALUE,
        date="d" * MAX_VALUE,
        boot_id=2**31 - 1,
    )
    assert len(biggest) <= MAX_DATAGRAM
    assert isinstance(parse(biggest), SearchResponse)


# --- a device and what it answers ----------------------------------------------------------


def test_a_root_device_announces_three_targets() -> None:
    assert notifications(DEVICE) == [
        (ROOT_DEVICE, f"{UDN}::upnp:rootdevice"),
        (UDN, UDN),
        (DEVICE_TYPE, f"{UDN}::{DEVICE_TYPE}"),
    ]


def test_search_targets() -> None:
    assert search_targets(DEVICE, SSDP_ALL) == notifications(DEVICE)
    assert search_targets(DEVICE, ROOT_DEVICE) == [(ROOT_DEVICE, f"{UDN}::upnp:rootdevice")]
    assert search_targets(DEVICE, UDN) == [(UDN, UDN)]
    assert search_targets(DEVICE, DEVICE_TYPE) == [(DEVICE_TYPE, f"{UDN}::{DEVICE_TYPE}")]
    for other in [
        "urn:schemas-upnp-org:device:Basic:2",  # a newer version than we are
        "urn:schemas-upnp-org:device:Basic:0",
        "urn:schemas-upnp-org:device:Basic:01",
        "urn:schemas-upnp-org:device:MediaServer:1",
        "urn:schemas-upnp-org:service:Basic:1",
        "urn:example-com:device:Basic:1",
        "urn:schemas-upnp-org:device:basic:1",
        "uuid:4d696e69-444c-164e-9d41-b0c5ca000002",
        UDN.upper(),
        "ssdp:ALL",
        "",
    ]:
        assert search_targets(DEVICE, other) == [], other


def test_a_newer_device_type_answers_older_searches_with_their_version() -> None:
    device = UpnpDevice(
        udn=UDN, location=LOCATION, server=SERVER, device_type="urn:example-com:device:Cam:3"
    )
    for version in (1, 2, 3):
        st = f"urn:example-com:device:Cam:{version}"
        assert search_targets(device, st) == [(st, f"{UDN}::{st}")]
    assert search_targets(device, "urn:example-com:device:Cam:4") == []
    assert search_targets(device, "urn:example-com:device:Cam:99999999999999999999") == []


def test_alive_byebye_and_answer_round_trip() -> None:
    announced = [parse(data) for data in alive(DEVICE, max_age=600, boot_id=5)]
    assert announced == [
        Notify(nt, "ssdp:alive", usn, LOCATION, SERVER, 600, 5) for nt, usn in notifications(DEVICE)
    ]
    withdrawn = [parse(data) for data in byebye(DEVICE, boot_id=5)]
    assert withdrawn == [
        Notify(nt, "ssdp:byebye", usn, "", "", None, 5) for nt, usn in notifications(DEVICE)
    ]
    answers = [parse(data) for data in answer(DEVICE, windows_search(), date="x")]
    assert answers == [
        SearchResponse(st, usn, LOCATION, SERVER, DEFAULT_MAX_AGE)
        for st, usn in notifications(DEVICE)
    ]
    assert [parse(data) for data in answer(DEVICE, windows_search(ROOT_DEVICE))] == [
        SearchResponse(ROOT_DEVICE, f"{UDN}::upnp:rootdevice", LOCATION, SERVER, DEFAULT_MAX_AGE)
    ]
    assert answer(DEVICE, windows_search("urn:schemas-upnp-org:device:Printer:1")) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"udn": "4d696e69-444c"},
        {"udn": "uuid:"},
        {"udn": "uuid:a::b"},
        {"udn": "uuid:a b"},
        {"location": "/desc.xml"},
        {"location": "http://host/\r\nX: 1"},
        {"server": "a\r\nb"},
        {"device_type": "urn:schemas-upnp-org:service:Basic:1"},
        {"device_type": "Basic"},
    ],
)
def test_a_device_is_validated(fields: dict[str, str]) -> None:
    arguments = {"udn": UDN, "location": LOCATION, "server": SERVER} | fields
    with pytest.raises(ValueError):  # noqa: PT011 - the message differs by field
        UpnpDevice(**arguments)


# --- the responder -------------------------------------------------------------------------


def test_the_responder_passes_searches_on() -> None:
    responder = Responder()
    assert responder.receive(WINDOWS_MSEARCH, SEARCHER, 0.0) == windows_search()
    assert responder.receive(MINIUPNPC_MSEARCH, ("fe80::1%eth0", 1900, 0, 2), 0.0) == parse(
        MINIUPNPC_MSEARCH
    )


@pytest.mark.parametrize(
    "source",
    [
        ("239.255.255.250", 1900),
        ("224.0.0.1", 5000),
        ("255.255.255.255", 5000),
        ("0.0.0.0", 5000),
        ("::", 5000),
        ("ff02::c", 5000),
        ("::ffff:239.255.255.250", 5000),
        ("::ffff:255.255.255.255", 5000),
        ("192.168.1.20", 0),
        ("192.168.1.20", 65536),
        ("not-an-address", 5000),
        ("192.168.1.255", 5000),  # the directed broadcast the predicate knows about
    ],
)
def test_the_responder_drops_bad_sources_before_parsing(source: tuple[str, int]) -> None:
    responder = Responder(is_broadcast=lambda host: host == "192.168.1.255")
    assert responder.receive(WINDOWS_MSEARCH, source, 0.0) == Dropped(DropReason.BAD_SOURCE)
    assert responder.receive(b"\x00garbage", source, 0.0) == Dropped(DropReason.BAD_SOURCE)


def test_the_responder_drops_what_is_not_a_search() -> None:
    responder = Responder()
    for data, reason in [
        (b"\x00garbage", DropReason.MALFORMED),
        (WINDOWS_MSEARCH.replace(b"MAN", b"MAM"), DropReason.MALFORMED),
        (WINDOWS_MSEARCH + b" " * MAX_DATAGRAM, DropReason.TOO_LARGE),
        (msearch_bytes(*[b"X: 1"] * (MAX_HEADERS + 1)), DropReason.TOO_LARGE),
        (CAMERA_ALIVE, DropReason.NOT_A_REQUEST),
        (CAMERA_BYEBYE, DropReason.NOT_A_REQUEST),
        (CAMERA_RESPONSE, DropReason.NOT_A_REQUEST),
    ]:
        assert responder.receive(data, SEARCHER, 0.0) == Dropped(reason)


def test_the_responder_limits_each_source() -> None:
    responder = Responder(rate=1.0, burst=3.0)
    for _ in range(3):
        assert isinstance(responder.receive(WINDOWS_MSEARCH, SEARCHER, 10.0), MSearch)
    limited = Dropped(DropReason.RATE_LIMITED)
    assert responder.receive(WINDOWS_MSEARCH, SEARCHER, 10.0) == limited
    assert responder.receive(WINDOWS_MSEARCH, ("192.168.1.20", 1), 10.5) == limited  # same IP
    assert isinstance(responder.receive(WINDOWS_MSEARCH, ("192.168.1.21", 1), 10.5), MSearch)
    assert isinstance(responder.receive(WINDOWS_MSEARCH, SEARCHER, 11.0), MSearch)  # refilled
    assert responder.receive(WINDOWS_MSEARCH, SEARCHER, 11.0) == limited
    # An IPv4 peer seen through a dual-stack socket is the same source.
    assert responder.receive(WINDOWS_MSEARCH, ("::ffff:192.168.1.20", 1), 11.0) == limited


def test_only_searches_spend_tokens() -> None:
    responder = Responder(rate=1.0, burst=1.0)
    for data in (b"garbage", CAMERA_ALIVE, CAMERA_RESPONSE):
        assert responder.receive(data, SEARCHER, 0.0) != Dropped(DropReason.RATE_LIMITED)
    assert isinstance(responder.receive(WINDOWS_MSEARCH, SEARCHER, 0.0), MSearch)


def test_the_responder_forgets_the_oldest_sources() -> None:
    responder = Responder(rate=1.0, burst=1.0, max_sources=2)
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert isinstance(responder.receive(WINDOWS_MSEARCH, (host, 1), 0.0), MSearch)
    # 10.0.0.1 was evicted, so it starts again with a full bucket; 10.0.0.3 has none left.
    assert isinstance(responder.receive(WINDOWS_MSEARCH, ("10.0.0.1", 1), 0.0), MSearch)
    assert responder.receive(WINDOWS_MSEARCH, ("10.0.0.3", 1), 0.0) == Dropped(
        DropReason.RATE_LIMITED
    )


def test_reply_delay_spreads_over_mx_up_to_five_seconds() -> None:
    assert reply_delay(windows_search(), 0.5) == 0.5
    assert reply_delay(MSearch(SSDP_ALL, 3, "ssdp:discover", "", ""), 0.5) == 1.5
    assert reply_delay(MSearch(SSDP_ALL, MAX_MX, "ssdp:discover", "", ""), 1.0) == 5.0
    assert reply_delay(MSearch(SSDP_ALL, 0, "ssdp:discover", "", ""), 0.9) == 0.0
    for fraction in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="random_fraction"):
            reply_delay(windows_search(), fraction)


# --- device descriptions -------------------------------------------------------------------

CAMERA_FIELDS = {
    "udn": UDN,
    "friendly_name": "Garage <north> & yard",
    "manufacturer": "HAMA",
    "model_name": "IPC-100",
    "model_number": "100",
    "serial_number": "00:40:8C:12:34:56",
    "presentation_url": "http://192.168.1.10:8080/",
}


def test_builds_a_description_byte_for_byte() -> None:
    assert description_xml(**CAMERA_FIELDS, manufacturer_url="http://example.com/?a=1&b=2") == (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<root xmlns="urn:schemas-upnp-org:device-1-0">\n'
        b"  <specVersion>\n"
        b"    <major>1</major>\n"
        b"    <minor>0</minor>\n"
        b"  </specVersion>\n"
        b"  <device>\n"
        b"    <deviceType>urn:schemas-upnp-org:device:Basic:1</deviceType>\n"
        b"    <friendlyName>Garage &lt;north&gt; &amp; yard</friendlyName>\n"
        b"    <manufacturer>HAMA</manufacturer>\n"
        b"    <manufacturerURL>http://example.com/?a=1&amp;b=2</manufacturerURL>\n"
        b"    <modelName>IPC-100</modelName>\n"
        b"    <modelNumber>100</modelNumber>\n"
        b"    <serialNumber>00:40:8C:12:34:56</serialNumber>\n"
        b"    <UDN>uuid:4d696e69-444c-164e-9d41-b0c5ca000001</UDN>\n"
        b"    <presentationURL>http://192.168.1.10:8080/</presentationURL>\n"
        b"  </device>\n"
        b"</root>\n"
    )


def test_description_round_trip_and_truncation() -> None:
    data = description_xml(
        **CAMERA_FIELDS | {"friendly_name": "\u00e9" * 100, "model_name": "m" * 40},
        model_description="d" * 200,
    )
    assert parse_description(data) == DeviceDescription(
        device_type=DEVICE_TYPE,
        friendly_name="\u00e9" * 63,  # UDA: "should be < 64 characters"
        manufacturer="HAMA",
        model_name="m" * 31,
        model_number="100",
        serial_number="00:40:8C:12:34:56",
        udn=UDN,
        presentation_url="http://192.168.1.10:8080/",
        model_description="d" * 127,
    )


def test_description_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="udn"):
        description_xml(**CAMERA_FIELDS | {"udn": "12345"})
    with pytest.raises(ValueError, match="device_type"):
        description_xml(**CAMERA_FIELDS, device_type="Basic")
    with pytest.raises(ValueError, match="XML"):
        description_xml(**CAMERA_FIELDS | {"friendly_name": "bell\x07"})


# A 2009 camera's description: no namespace, padded values, URLBase, no serialNumber, a
# serviceList and an embedded device (ignored: only the root device is read).
SLOPPY_DESCRIPTION = b"""<?xml version="1.0"?>
<root>
<specVersion><major>1</major><minor>0</minor></specVersion>
<URLBase>http://192.168.1.30:80</URLBase>
<device>
  <deviceType>urn:schemas-upnp-org:device:Basic:1</deviceType>
  <friendlyName>
      Network Camera (Front)   </friendlyName>
  <manufacturer>IPCam</manufacturer>
  <modelDescription>IPCam <b>MJPEG</b> camera</modelDescription>
  <modelName>CAS-310</modelName>
  <modelNumber>  310 </modelNumber>
  <UDN>uuid:a1b2c3d4-0000-1000-8000-0013e2000001</UDN>
  <vendorExtra firmware="1.2"/>
  <serviceList><service><serviceType>urn:x:service:Dummy:1</serviceType></service></serviceList>
  <deviceList><device><friendlyName>embedded</friendlyName></device></deviceList>
  <presentationURL>/index.htm</presentationURL>
</device>
</root>
"""


def test_parses_a_sloppy_camera_description() -> None:
    assert parse_description(SLOPPY_DESCRIPTION) == DeviceDescription(
        device_type=DEVICE_TYPE,
        friendly_name="Network Camera (Front)",
        manufacturer="IPCam",
        model_name="CAS-310",
        model_number="310",
        serial_number="",
        udn="uuid:a1b2c3d4-0000-1000-8000-0013e2000001",
        presentation_url="/index.htm",
        model_description="IPCam MJPEG camera",
    )


def test_parses_a_prefixed_namespace_and_latin1() -> None:
    data = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?>'
        b'<u:root xmlns:u="urn:schemas-upnp-org:device-1-0"><u:device>'
        b"<u:friendlyName>Caf\xe9</u:friendlyName><x:UDN xmlns:x='urn:other'>uuid:x</x:UDN>"
        b"</u:device></u:root>"
    )
    description = parse_description(data)
    assert (description.friendly_name, description.udn) == ("Caf\u00e9", "")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not xml", id="not XML"),
        pytest.param(b"<root><device>", id="truncated"),
        pytest.param(b"<html><body>401</body></html>", id="not a root"),
        pytest.param(b'<root xmlns="urn:schemas-upnp-org:service-1-0"><device/></root>', id="ns"),
        pytest.param(b"<root><specVersion/></root>", id="no device"),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b"<root><device><friendlyName>&c;</friendlyName></device></root>",
            id="entity bomb",
        ),
        pytest.param(
            b'<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<root><device><friendlyName>&x;</friendlyName></device></root>",
            id="external entity",
        ),
        pytest.param(b'<!DOCTYPE root SYSTEM "http://x/d.dtd"><root><device/></root>', id="DTD"),
        pytest.param(b"<root><device><UDN>&undeclared;</UDN></device></root>", id="entity"),
        pytest.param(b"<root>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</root>", id="deep nesting"),
    ],
)
def test_refuses_what_is_not_a_description(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_description(data)


def test_description_cap() -> None:
    padding = b" " * (MAX_DESCRIPTION - len(SLOPPY_DESCRIPTION))
    assert parse_description(SLOPPY_DESCRIPTION + padding).model_name == "CAS-310"
    with pytest.raises(MessageTooLarge):
        parse_description(SLOPPY_DESCRIPTION + padding + b" ")


# --- properties ----------------------------------------------------------------------------

INSERTS = [b"\r", b"\n", b"\x00", b"\r\n", b"\n\n", b" ", b"\t", b":", b"\xff", b"\n ", b'"']


@st.composite
def mutations(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    """A valid input after a few truncations, byte flips, inserts and huge values."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["truncate", "flip", "insert", "huge"]))
        if operation == "truncate":
            del data[at:]
        elif operation == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif operation == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif operation == "huge":
            data[at:at] = b"A" * draw(st.sampled_from([MAX_VALUE, MAX_VALUE + 1, 5000, 9000]))
    return bytes(data)


def outcome(data: bytes) -> Message | ProtocolError:
    try:
        return parse(data)
    except ProtocolError as exc:
        return exc


def assert_parses_or_refuses(data: bytes) -> None:
    """ProtocolError with a short message of our own, or a message of sane values."""
    message = outcome(data)
    if isinstance(message, ProtocolError):
        assert len(str(message)) < 60
        assert "AAAA" not in str(message)
        return
    if isinstance(message, MSearch):
        assert 0 <= message.mx <= MAX_MX
        assert message.st
        strings = [message.st, message.man, message.host, message.user_agent]
    else:
        assert message.max_age is None or 0 <= message.max_age <= MAX_CACHE_AGE
        assert message.usn
        strings = [message.usn, message.location, message.server]
    for value in strings:
        assert value == value.strip(" \t")
        assert len(value) <= MAX_VALUE
        assert value.isascii()
        assert value.replace("\t", " ").isprintable()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=MAX_DATAGRAM + 8))
def test_random_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    assert_parses_or_refuses(data)


@settings(max_examples=200, deadline=None)
@given(mutations(VALID_MESSAGES))
def test_mutated_messages_parse_or_raise_protocol_error(data: bytes) -> None:
    assert_parses_or_refuses(data)


@settings(max_examples=100, deadline=None)
@given(
    mutations(VALID_MESSAGES),
    st.tuples(st.sampled_from(["10.0.0.1", "224.0.0.9"]), st.integers(0, 65535)),
)
def test_the_responder_never_raises(data: bytes, source: tuple[str, int]) -> None:
    result = Responder(burst=1.0).receive(data, source, 0.0)
    assert isinstance(result, MSearch | Dropped)


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
header_values = st.text(printable, min_size=1, max_size=60).map(str.strip).filter(bool)
locations = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["http", "https"]),
    st.sampled_from(["192.168.1.30", "cam.local", "[fe80::1]", "a-b.example"]),
    st.sampled_from(["", ":80", ":49152"]),
    st.text(st.sampled_from("abcXYZ019._~/?=&%-"), max_size=40),
)
boot_ids = st.none() | st.integers(0, 2**31 - 1)


response_fields = st.fixed_dictionaries(
    {
        "st": header_values,
        "usn": header_values,
        "location": locations,
        "server": header_values,
        "max_age": st.integers(0, MAX_CACHE_AGE),
        "boot_id": boot_ids,
    },
    optional={"date": header_values},
)


@settings(max_examples=100, deadline=None)
@given(response_fields)
def test_search_responses_round_trip(fields: dict[str, Any]) -> None:
    expected = {name: value for name, value in fields.items() if name != "date"}
    assert parse(search_response(**fields)) == SearchResponse(**expected)


@settings(max_examples=100, deadline=None)
@given(response_fields)
def test_notifications_round_trip(fields: dict[str, Any]) -> None:
    nt, usn, boot_id = fields["st"], fields["usn"], fields["boot_id"]
    sent = notify(
        nt=nt,
        nts="ssdp:alive",
        usn=usn,
        location=fields["location"],
        server=fields["server"],
        max_age=fields["max_age"],
        boot_id=boot_id,
    )
    assert parse(sent) == Notify(
        nt, "ssdp:alive", usn, fields["location"], fields["server"], fields["max_age"], boot_id
    )
    gone = notify(
        nt=nt, nts="ssdp:byebye", usn=usn, location=None, server=fields["server"], boot_id=boot_id
    )
    assert parse(gone) == Notify(nt, "ssdp:byebye", usn, "", "", None, boot_id)


@settings(max_examples=100, deadline=None)
@given(header_values, st.integers(1, 5), header_values)
def test_searches_round_trip(target: str, mx: int, user_agent: str) -> None:
    expected = MSearch(target, mx, '"ssdp:discover"', "239.255.255.250:1900", user_agent)
    assert parse(msearch(target, mx, user_agent=user_agent)) == expected


@settings(max_examples=100, deadline=None)
@given(
    header_values,
    st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x1b", "\x85", "\u2028"]),
    st.data(),
)
def test_builders_refuse_control_characters_anywhere(
    value: str, bad: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(value)))
    with pytest.raises(ValueError, match="printable ASCII"):
        msearch(value[:at] + bad + value[at:])


xml_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Cn"]), max_size=80)


LIMITS = {
    "friendly_name": 63,  # UDA 1.0 §2.1: "should be < 64 characters"
    "manufacturer": 63,
    "model_name": 31,
    "model_number": 31,
    "serial_number": 63,
    "presentation_url": None,
}


@settings(max_examples=100, deadline=None)
@given(st.fixed_dictionaries(dict.fromkeys(LIMITS, xml_text)))
def test_descriptions_round_trip(fields: dict[str, str]) -> None:
    expected = {name: value[: LIMITS[name]].strip() for name, value in fields.items()}
    assert parse_description(description_xml(udn=UDN, **fields)) == DeviceDescription(
        device_type=DEVICE_TYPE, udn=UDN, **expected
    )


VALID_DESCRIPTIONS = [SLOPPY_DESCRIPTION, description_xml(**CAMERA_FIELDS)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512) | mutations(VALID_DESCRIPTIONS))
def test_fuzzed_descriptions_parse_or_raise_protocol_error(data: bytes) -> None:
    try:
        description = parse_description(data)
    except ProtocolError:
        return
    assert isinstance(description, DeviceDescription)
