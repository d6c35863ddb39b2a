"""Sans-I/O SSDP and UPnP device descriptions: datagram bytes in, messages out; messages to bytes.

SSDP is the discovery step of the UPnP Device Architecture (UDA 1.0 §1, UDA 1.1 §1): HTTP-shaped
messages in single UDP datagrams, multicast to 239.255.255.250:1900. Blue Iris's "Find/inspect"
and many other VMS find cameras this way, and so did many 2007-2011 IP cameras announce
themselves. This module is used in both directions:

- being found: :class:`UpnpDevice` describes one announced camera; :func:`alive` / :func:`byebye`
  build its NOTIFYs, :class:`Responder` screens incoming datagrams and :func:`answer` builds the
  replies to an M-SEARCH; :func:`description_xml` is the document its LOCATION serves;
- finding: :func:`msearch` builds a search; :func:`parse` reads the answers and NOTIFYs heard;
  :func:`parse_description` reads what a LOCATION serves (tolerantly: real cameras are sloppy).

No sockets, clocks or logging here: the asyncio layer owns those and passes ``now``.

Parsing rules (every violation raises :class:`~bridge.errors.ProtocolError`, a cap
:class:`~bridge.errors.MessageTooLarge`; messages never echo the peer's bytes):

- one datagram is one message, at most :data:`MAX_DATAGRAM` bytes; the header block ends at the
  first blank line or at the end of the datagram (some devices omit the final CRLF); anything
  after the blank line is ignored (SSDP messages have no body, UDA 1.1 §1.1);
- CRLF or LF line endings; trailing blanks are ignored; a line starting with a blank would be an
  obsolete folded continuation (RFC 7230 §3.2.4), which SSDP never sends: refused;
- only printable ASCII (and HT between words) in the header block; header names are tokens;
  at most :data:`MAX_HEADERS` header lines, each value at most :data:`MAX_VALUE` bytes;
- header names are case-insensitive; a header this module interprets may appear only once (two
  LOCATIONs or STs are ambiguous, and different consumers might pick different ones); repeats of
  other headers are ignored;
- ``CACHE-CONTROL`` is read for its ``max-age`` directive only (``max-age=N`` or
  ``max-age = N``); other directives are ignored (UDA 1.1 §1.2.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import urlsplit

from lxml import etree

from bridge import __version__
from bridge.discovery.sources import Dropped, DropReason, screened
from bridge.errors import MessageTooLarge, ProtocolError
from bridge.ratelimit import KeyedLimiter
from bridge.safexml import parse_untrusted

MULTICAST_GROUP: Final = "239.255.255.250"
PORT: Final = 1900
MAX_DATAGRAM: Final = 8192
MAX_DESCRIPTION: Final = 65536
ROOT_DEVICE: Final = "upnp:rootdevice"
SSDP_ALL: Final = "ssdp:all"
DEVICE_TYPE: Final = "urn:schemas-upnp-org:device:Basic:1"
DEFAULT_MAX_AGE: Final = 1800

ALIVE: Final = "ssdp:alive"
BYEBYE: Final = "ssdp:byebye"
UPDATE: Final = "ssdp:update"
DEVICE_NAMESPACE: Final = "urn:schemas-upnp-org:device-1-0"

MAX_HEADERS: Final = 64
MAX_VALUE: Final = 1024
MAX_MX: Final = 120
MAX_REPLY_DELAY: Final = 5  # UDA 1.1 §1.3.2: treat an MX above 5 as 5
MAX_CACHE_AGE: Final = 86400  # a day: a spoofed NOTIFY cannot pin a cache entry for years
MAX_BOOT_ID: Final = 2**31 - 1  # UDA 1.1 §1.2.2: BOOTID.UPNP.ORG is a 31-bit value

_HOST: Final = f"{MULTICAST_GROUP}:{PORT}"
_DISCOVER: Final = "ssdp:discover"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_END_OF_HEAD = re.compile(rb"\n\r?\n")
_FORBIDDEN_BYTE = re.compile(rb"[^\t\r\n\x20-\x7e]")
_DIGITS = re.compile(r"[0-9]+")
_STATUS_LINE = re.compile(r"HTTP/1\.[01] 200(?: [\t\x20-\x7e]*)?")
# What the builders write: non-empty printable ASCII, no blanks at either end (they would not
# survive a parse), so no CR/LF and no header injection.
_SAFE_VALUE = re.compile(r"[!-~](?:[ -~]*[!-~])?")
# "uuid:" and anything printable but ":" and blanks: USNs join the UDN and a type with "::".
_UDN = re.compile(r"uuid:[!-9;-~]+")
# UDA 1.0 §2.1: urn:domain-name:device:deviceType:v, the type at most 64 characters.
_DEVICE_URN = re.compile(r"(urn:[A-Za-z0-9.-]+:device:[A-Za-z0-9_-]{1,64}):([1-9][0-9]*)")
_PLATFORM = re.compile(rf"{_TOKEN.pattern}/{_TOKEN.pattern}")

# Headers this module reads: each may appear at most once.
_INTERPRETED = frozenset(
    {
        "host",
        "man",
        "mx",
        "st",
        "user-agent",
        "nt",
        "nts",
        "usn",
        "location",
        "server",
        "cache-control",
        "bootid.upnp.org",
    }
)


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MSearch:
    """A search request (UDA 1.0 §1.2, UDA 1.1 §1.3.2).

    ``mx`` is the MX header clamped to 0..120; a missing MX reads as 0. UDA 1.1 §1.3.2 says a
    *multicast* search without MX must be ignored while a *unicast* one needs none and is
    answered at once; only the socket layer knows which it was, so it decides (an explicit
    ``MX: 0`` is as invalid for multicast). ``host`` and ``user_agent`` are "" when absent.
    """

    st: str
    mx: int
    man: str
    host: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class Notify:
    """An advertisement (UDA 1.0 §1.1, UDA 1.1 §1.2.2-1.2.4).

    ``nts`` is ``ssdp:alive``, ``ssdp:byebye`` or ``ssdp:update``. For alive and update
    ``location`` is a checked http(s) URL; a byebye carries none (UDA 1.1 §1.2.3), so it is "" and
    its ``max_age`` None. ``max_age`` is None when CACHE-CONTROL has no max-age (the caller
    picks a default, e.g. :data:`DEFAULT_MAX_AGE`); it is capped at :data:`MAX_CACHE_AGE`.
    """

    nt: str
    nts: str
    usn: str
    location: str
    server: str
    max_age: int | None
    boot_id: int | None = None


@dataclass(frozen=True, slots=True)
class SearchResponse:
    """A device's unicast answer to an M-SEARCH (UDA 1.0 §1.2, UDA 1.1 §1.3.3).

    ``location`` is a checked http(s) URL; ``max_age`` as in :class:`Notify`.
    """

    st: str
    usn: str
    location: str
    server: str
    max_age: int | None
    boot_id: int | None = None


Message: TypeAlias = MSearch | Notify | SearchResponse


def parse(data: bytes) -> Message:
    """The SSDP message in one datagram; see the module docstring for the rules."""
    lines = _head_lines(data)
    if not lines:
        raise ProtocolError("empty SSDP datagram")
    start = lines[0].rstrip(" \t")
    fields = _header_fields(lines[1:])
    if start == "M-SEARCH * HTTP/1.1":
        return _msearch(fields)
    if start == "NOTIFY * HTTP/1.1":
        return _notify(fields)
    if _STATUS_LINE.fullmatch(start):
        return _search_response(fields)
    raise ProtocolError("not an SSDP start line")


def _head_lines(data: bytes) -> list[str]:
    """The start line and header lines, line endings removed."""
    if len(data) > MAX_DATAGRAM:
        raise MessageTooLarge(f"SSDP datagram larger than {MAX_DATAGRAM} bytes")
    head = _END_OF_HEAD.split(data, maxsplit=1)[0]
    if _FORBIDDEN_BYTE.search(head):
        raise ProtocolError("control or non-ASCII byte in SSDP header")
    lines = [line.removesuffix("\r") for line in head.decode("ascii").split("\n")]
    if lines[-1] == "":  # the last line ended in a newline but no blank line followed
        lines.pop()
    if any("\r" in line for line in lines):
        raise ProtocolError("bare CR in SSDP header")
    return lines


def _header_fields(lines: list[str]) -> dict[str, str]:
    if len(lines) > MAX_HEADERS:
        raise MessageTooLarge(f"more than {MAX_HEADERS} SSDP header lines")
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith((" ", "\t")):
            raise ProtocolError("folded SSDP header line")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError("malformed SSDP header line")
        value = value.strip(" \t")
        if len(value) > MAX_VALUE:
            raise MessageTooLarge(f"SSDP header value longer than {MAX_VALUE} bytes")
        key = name.lower()
        if key not in fields:
            fields[key] = value
        elif key in _INTERPRETED:
            raise ProtocolError(f"repeated {key.upper()} header")
    return fields


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise ProtocolError(f"missing {name.upper()} header")
    return value


def _msearch(fields: dict[str, str]) -> MSearch:
    man = _required(fields, "man")
    if man not in (f'"{_DISCOVER}"', _DISCOVER):
        raise ProtocolError('MAN is not "ssdp:discover"')
    mx_text = fields.get("mx")
    if mx_text is None:
        mx = 0
    elif _DIGITS.fullmatch(mx_text):
        mx = min(int(mx_text), MAX_MX)
    else:
        raise ProtocolError("MX is not a number")
    return MSearch(
        st=_required(fields, "st"),
        mx=mx,
        man=man,
        host=fields.get("host", ""),
        user_agent=fields.get("user-agent", ""),
    )


def _notify(fields: dict[str, str]) -> Notify:
    nt = _required(fields, "nt")
    nts = _required(fields, "nts")
    usn = _required(fields, "usn")
    if nts not in (ALIVE, BYEBYE, UPDATE):
        raise ProtocolError("unknown NTS")
    byebye = nts == BYEBYE
    return Notify(
        nt=nt,
        nts=nts,
        usn=usn,
        location="" if byebye else _location(fields),
        server=fields.get("server", ""),
        max_age=None if byebye else _max_age(fields),
        boot_id=_boot_id(fields),
    )


def _search_response(fields: dict[str, str]) -> SearchResponse:
    return SearchResponse(
        st=_required(fields, "st"),
        usn=_required(fields, "usn"),
        location=_location(fields),
        server=fields.get("server", ""),
        max_age=_max_age(fields),
        boot_id=_boot_id(fields),
    )


def _location(fields: dict[str, str]) -> str:
    value = _required(fields, "location")
    if not is_http_url(value):
        raise ProtocolError("LOCATION is not an http(s) URL")
    return value


def _max_age(fields: dict[str, str]) -> int | None:
    for directive in fields.get("cache-control", "").split(","):
        name, equals, argument = directive.partition("=")
        if name.strip(" \t").lower() == "max-age":
            argument = argument.strip(" \t")
            if not equals or not _DIGITS.fullmatch(argument):
                raise ProtocolError("CACHE-CONTROL max-age is not a number")
            return min(int(argument), MAX_CACHE_AGE)
    return None


def _boot_id(fields: dict[str, str]) -> int | None:
    value = fields.get("bootid.upnp.org")
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or int(value) > MAX_BOOT_ID:
        raise ProtocolError("BOOTID.UPNP.ORG is not a 31-bit number")
    return int(value)


def is_http_url(value: str) -> bool:
    """True for an absolute http(s) URL with a host (what a LOCATION must be, UDA 1.1 §1.2.2)."""
    if any(char in value for char in " \t"):
        return False
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port that is not 0..65535
    except ValueError:
        return False
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.hostname)
        and (port is None or port > 0)
    )


# --- builders ---------------------------------------------------------------------------------


def server_string(product: str, version: str, *, platform: str = "Linux/6") -> str:
    """A SERVER / USER-AGENT value, ``OS/version UPnP/1.0 product/version`` (UDA 1.0 §1.1).

    ``platform`` is a parameter rather than read from the host so the output is deterministic
    and an emulated 2008 camera can say ``Linux/2.4``.
    """
    if not _TOKEN.fullmatch(product) or not _TOKEN.fullmatch(version):
        raise ValueError("product and version must be HTTP tokens (no '/' or blanks)")
    if not _PLATFORM.fullmatch(platform):
        raise ValueError("platform must look like OS/version")
    return f"{platform} UPnP/1.0 {product}/{version}"


USER_AGENT: Final = server_string("bridge", __version__)


def _checked(name: str, value: str) -> str:
    """``value`` if it can go into a header as is; ValueError otherwise (header injection)."""
    if len(value) > MAX_VALUE or not _SAFE_VALUE.fullmatch(value):
        raise ValueError(
            f"{name} must be 1..{MAX_VALUE} printable ASCII characters without CR/LF or blanks "
            "at either end"
        )
    return value


def _checked_location(location: str) -> str:
    if not is_http_url(_checked("LOCATION", location)):
        raise ValueError("LOCATION must be an absolute http(s) URL")
    return location


def _cache_control(max_age: int) -> str:
    if not 0 <= max_age <= MAX_CACHE_AGE:
        raise ValueError(f"max_age must be 0..{MAX_CACHE_AGE} seconds")
    return f"max-age={max_age}"


def _checked_boot_id(boot_id: int) -> str:
    if not 0 <= boot_id <= MAX_BOOT_ID:
        raise ValueError(f"boot_id must be 0..{MAX_BOOT_ID}")
    return str(boot_id)


def _message(start_line: str, fields: list[tuple[str, str]]) -> bytes:
    """CRLF-terminated lines and the blank line; values were checked by the caller. At most
    five free values of at most MAX_VALUE bytes each, so it always fits MAX_DATAGRAM."""
    lines = [start_line, *(f"{name}: {value}" if value else f"{name}:" for name, value in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def search_response(
    *,
    st: str,
    usn: str,
    location: str,
    server: str,
    max_age: int = DEFAULT_MAX_AGE,
    boot_id: int | None = None,
    date: str | None = None,
) -> bytes:
    """A search response in the header order of UDA 1.1 §1.3.3 (``EXT:`` is empty on purpose:
    it confirms the MAN header was understood).

    ``date`` is an RFC 1123 date (``email.utils.formatdate(usegmt=True)``), omitted when None;
    ``boot_id`` adds the UDA 1.1 ``BOOTID.UPNP.ORG`` header.
    """
    fields = [("CACHE-CONTROL", _cache_control(max_age))]
    if date is not None:
        fields.append(("DATE", _checked("DATE", date)))
    fields += [
        ("EXT", ""),
        ("LOCATION", _checked_location(location)),
        ("SERVER", _checked("SERVER", server)),
        ("ST", _checked("ST", st)),
        ("USN", _checked("USN", usn)),
    ]
    if boot_id is not None:
        fields.append(("BOOTID.UPNP.ORG", _checked_boot_id(boot_id)))
    return _message("HTTP/1.1 200 OK", fields)


def notify(
    *,
    nt: str,
    nts: str,
    usn: str,
    location: str | None,
    server: str,
    max_age: int = DEFAULT_MAX_AGE,
    boot_id: int | None = None,
) -> bytes:
    """An ``ssdp:alive`` (UDA 1.1 §1.2.2) or ``ssdp:byebye`` (UDA 1.1 §1.2.3) NOTIFY.

    A byebye carries only HOST, NT, NTS and USN (plus BOOTID.UPNP.ORG when given), so
    ``location``, ``server`` and ``max_age`` are not used for it. ``ssdp:update`` (UDA 1.1
    §1.2.4) is not built: a device whose LOCATION changes sends byebye, then alive.
    """
    fields = [("HOST", _HOST)]
    if nts == ALIVE:
        if location is None:
            raise ValueError("an ssdp:alive NOTIFY needs a LOCATION")
        fields += [
            ("CACHE-CONTROL", _cache_control(max_age)),
            ("LOCATION", _checked_location(location)),
            ("NT", _checked("NT", nt)),
            ("NTS", ALIVE),
            ("SERVER", _checked("SERVER", server)),
            ("USN", _checked("USN", usn)),
        ]
    elif nts == BYEBYE:
        fields += [("NT", _checked("NT", nt)), ("NTS", BYEBYE), ("USN", _checked("USN", usn))]
    else:
        raise ValueError("nts must be ssdp:alive or ssdp:byebye")
    if boot_id is not None:
        fields.append(("BOOTID.UPNP.ORG", _checked_boot_id(boot_id)))
    return _message("NOTIFY * HTTP/1.1", fields)


def msearch(st: str = SSDP_ALL, mx: int = 2, *, user_agent: str = USER_AGENT) -> bytes:
    """A multicast M-SEARCH (UDA 1.1 §1.3.2).

    ``mx`` must be 1..5: UDA 1.1 requires at least 1 for multicast and devices treat more than
    5 as 5, so a larger value would only make the searcher wait for nothing.
    """
    if not 1 <= mx <= MAX_REPLY_DELAY:
        raise ValueError(f"mx must be 1..{MAX_REPLY_DELAY} seconds")
    return _message(
        "M-SEARCH * HTTP/1.1",
        [
            ("HOST", _HOST),
            ("MAN", f'"{_DISCOVER}"'),
            ("MX", str(mx)),
            ("ST", _checked("ST", st)),
            ("USER-AGENT", _checked("USER-AGENT", user_agent)),
        ],
    )


# --- a device and what it answers -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UpnpDevice:
    """One announced root device: a camera of the gateway, or an emulated legacy camera.

    Keyword-only, so the four strings cannot be swapped by position. ``location`` is the URL of
    its :func:`description_xml`. Validated on construction (ValueError), so everything built
    from it is a valid message.
    """

    udn: str  # "uuid:..."
    location: str
    device_type: str = DEVICE_TYPE
    server: str

    def __post_init__(self) -> None:
        if not _UDN.fullmatch(self.udn):
            raise ValueError("udn must be 'uuid:' followed by printable characters without ':'")
        if not _DEVICE_URN.fullmatch(self.device_type):
            raise ValueError("device_type must be urn:domain:device:type:version")
        _checked_location(self.location)
        _checked("SERVER", self.server)


def notifications(device: UpnpDevice) -> list[tuple[str, str]]:
    """The (NT, USN) pairs a root device without embedded devices or services advertises
    (UDA 1.1 §1.2.2: three discovery messages for a root device)."""
    return [
        (ROOT_DEVICE, f"{device.udn}::{ROOT_DEVICE}"),
        (device.udn, device.udn),
        (device.device_type, f"{device.udn}::{device.device_type}"),
    ]


def search_targets(device: UpnpDevice, st: str) -> list[tuple[str, str]]:
    """The (ST, USN) pairs that answer a search for ``st`` (UDA 1.1 §1.3.2).

    ``ssdp:all`` gets every advertisement, ``upnp:rootdevice`` and the exact UDN their own.
    A device type is answered for its version and every lower one (types are backward
    compatible), with the version the search asked for in ST and USN. Anything else, or a
    higher version, gets nothing. All comparisons are exact (case-sensitive).
    """
    if st == SSDP_ALL:
        return notifications(device)
    if st == ROOT_DEVICE:
        return [(ROOT_DEVICE, f"{device.udn}::{ROOT_DEVICE}")]
    if st == device.udn:
        return [(device.udn, device.udn)]
    wanted = _DEVICE_URN.fullmatch(st)
    ours = _DEVICE_URN.fullmatch(device.device_type)
    if wanted and ours and wanted[1] == ours[1] and int(wanted[2]) <= int(ours[2]):
        return [(st, f"{device.udn}::{st}")]
    return []


def alive(
    device: UpnpDevice, *, max_age: int = DEFAULT_MAX_AGE, boot_id: int | None = None
) -> list[bytes]:
    """The ``ssdp:alive`` NOTIFYs announcing ``device``. UDA 1.1 §1.2.2: send the set a few
    times (UDP is unreliable) and again well before ``max_age`` runs out."""
    return [
        notify(
            nt=nt,
            nts=ALIVE,
            usn=usn,
            location=device.location,
            server=device.server,
            max_age=max_age,
            boot_id=boot_id,
        )
        for nt, usn in notifications(device)
    ]


def byebye(device: UpnpDevice, *, boot_id: int | None = None) -> list[bytes]:
    """The ``ssdp:byebye`` NOTIFYs withdrawing ``device`` (UDA 1.1 §1.2.3)."""
    return [
        notify(nt=nt, nts=BYEBYE, usn=usn, location=None, server=device.server, boot_id=boot_id)
        for nt, usn in notifications(device)
    ]


def answer(
    device: UpnpDevice,
    search: MSearch,
    *,
    max_age: int = DEFAULT_MAX_AGE,
    boot_id: int | None = None,
    date: str | None = None,
) -> list[bytes]:
    """The search responses ``device`` sends, unicast, to the searcher (UDA 1.1 §1.3.3);
    empty when the search is not for it. Send them spread over :func:`reply_delay`."""
    return [
        search_response(
            st=st,
            usn=usn,
            location=device.location,
            server=device.server,
            max_age=max_age,
            boot_id=boot_id,
            date=date,
        )
        for st, usn in search_targets(device, search.st)
    ]


def reply_delay(search: MSearch, random_fraction: float) -> float:
    """Seconds to wait before answering: ``random_fraction`` (0..1) of MX, at most 5 s.

    UDA 1.1 §1.3.2: answers to a multicast search are spread over MX seconds so the searcher is
    not flooded, and an MX above 5 is treated as 5; a unicast search (MX 0 here) is answered at
    once.
    """
    if not 0.0 <= random_fraction <= 1.0:
        raise ValueError("random_fraction must be within 0..1")
    return random_fraction * min(search.mx, MAX_REPLY_DELAY)


class Responder:
    """Decides which datagrams heard on the SSDP port deserve an answer.

    Checks, in order: the source (before any parsing: an answer goes unicast to the source, so a
    multicast, broadcast or unspecified source address, or port 0, would turn the gateway into
    a reflector onto the whole LAN; ``is_broadcast`` lets the socket layer add its interfaces'
    directed broadcast addresses), the message (only M-SEARCHes are answered; NOTIFYs and
    responses are for control points), then a token bucket per source IP (``rate`` searches
    per second, ``burst`` at once, ``max_sources`` remembered) so no one can make the gateway
    send a flood of answers. Only valid searches spend tokens, so garbage from spoofed
    addresses cannot evict real searchers from the table.
    """

    def __init__(
        self,
        *,
        rate: float = 5.0,
        burst: float = 20.0,
        max_sources: int = 1024,
        is_broadcast: Callable[[str], bool] | None = None,
    ) -> None:
        self._limiter: KeyedLimiter[str] = KeyedLimiter(rate, burst, max_keys=max_sources)
        self._is_broadcast = is_broadcast

    def receive(
        self, data: bytes, source: tuple[str, int] | tuple[str, int, int, int], now: float
    ) -> MSearch | Dropped:
        """The search to answer, or why ``data`` from ``source`` is dropped. ``source`` is the
        address asyncio reports (an IPv6 one adds flow info and scope id, not used here);
        ``now`` is a ``time.monotonic()`` reading."""
        checked = screened(data, source, parse, self._is_broadcast)
        if isinstance(checked, Dropped):
            return checked
        address, message = checked
        if not isinstance(message, MSearch):
            return Dropped(DropReason.NOT_A_REQUEST)
        if not self._limiter.allow(address, now):
            return Dropped(DropReason.RATE_LIMITED)
        return message


# --- device description -----------------------------------------------------------------------

# UDA 1.0 §2.1: these "should be < N characters"; longer values are cut to N - 1.
_LIMITS: Final = {
    "friendlyName": 64,
    "manufacturer": 64,
    "modelDescription": 128,
    "modelName": 32,
    "modelNumber": 32,
    "serialNumber": 64,
}


def description_xml(
    *,
    udn: str,
    friendly_name: str,
    manufacturer: str,
    model_name: str,
    model_number: str,
    serial_number: str,
    presentation_url: str,
    device_type: str = DEVICE_TYPE,
    manufacturer_url: str | None = None,
    model_description: str | None = None,
) -> bytes:
    """The UPnP device description a LOCATION serves (UDA 1.0 §2.1), UTF-8.

    Elements in the order of UDA 1.0 §2.1; optional ones omitted when None; length limits
    applied by truncation (names come from user config, and a VMS showing them is better off
    with a cut name than a refused document). ``presentation_url`` may be relative to the
    description's URL (UDA 1.0 §2.1). ValueError for a bad UDN or device type, or for
    characters XML cannot carry.
    """
    if not _UDN.fullmatch(udn):
        raise ValueError("udn must be 'uuid:' followed by printable characters without ':'")
    if not _DEVICE_URN.fullmatch(device_type):
        raise ValueError("device_type must be urn:domain:device:type:version")
    ns = f"{{{DEVICE_NAMESPACE}}}"
    root = etree.Element(f"{ns}root", nsmap={None: DEVICE_NAMESPACE})
    spec = etree.SubElement(root, f"{ns}specVersion")
    etree.SubElement(spec, f"{ns}major").text = "1"
    etree.SubElement(spec, f"{ns}minor").text = "0"
    device = etree.SubElement(root, f"{ns}device")
    for name, value in (
        ("deviceType", device_type),
        ("friendlyName", friendly_name),
        ("manufacturer", manufacturer),
        ("manufacturerURL", manufacturer_url),
        ("modelDescription", model_description),
        ("modelName", model_name),
        ("modelNumber", model_number),
        ("serialNumber", serial_number),
        ("UDN", udn),
        ("presentationURL", presentation_url),
    ):
        if value is not None:
            limit = _LIMITS.get(name)
            etree.SubElement(device, f"{ns}{name}").text = (
                value if limit is None else value[: limit - 1]
            )
    body: bytes = etree.tostring(root, encoding="utf-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


@dataclass(frozen=True, slots=True)
class DeviceDescription:
    """What a device description says about its root device; "" for every missing field."""

    device_type: str
    friendly_name: str
    manufacturer: str
    model_name: str
    model_number: str
    serial_number: str
    udn: str
    presentation_url: str
    manufacturer_url: str = ""
    model_description: str = ""


def parse_description(data: bytes) -> DeviceDescription:
    """The root device of a UPnP device description, read tolerantly: elements in the UPnP
    device namespace or in none (many cameras omit it), surrounding whitespace stripped,
    missing fields "", unknown elements ignored. ProtocolError when the document is not a
    UPnP ``root`` with a ``device``; the hardened parser refuses DTDs, so entity bombs too.
    ``presentation_url`` is returned as written (it may be relative to the LOCATION)."""
    root = parse_untrusted(data, max_bytes=MAX_DESCRIPTION)
    if not _is_upnp_element(root, "root"):
        raise ProtocolError("not a UPnP device description")
    device = _upnp_child(root, "device")
    if device is None:
        raise ProtocolError("UPnP device description without a device")

    def text(name: str) -> str:
        element = _upnp_child(device, name)
        return "" if element is None else "".join(element.itertext()).strip()

    return DeviceDescription(
        device_type=text("deviceType"),
        friendly_name=text("friendlyName"),
        manufacturer=text("manufacturer"),
        model_name=text("modelName"),
        model_number=text("modelNumber"),
        serial_number=text("serialNumber"),
        udn=text("UDN"),
        presentation_url=text("presentationURL"),
        manufacturer_url=text("manufacturerURL"),
        model_description=text("modelDescription"),
    )


def _is_upnp_element(element: etree._Element, local_name: str) -> bool:
    if not isinstance(element.tag, str):  # comments, processing instructions, entities
        return False
    name = etree.QName(element.tag)
    return bool(name.localname == local_name and name.namespace in (None, DEVICE_NAMESPACE))


def _upnp_child(parent: etree._Element, local_name: str) -> etree._Element | None:
    return next((child for child in parent if _is_upnp_element(child, local_name)), None)
