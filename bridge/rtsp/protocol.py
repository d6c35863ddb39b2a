"""Sans-I/O RTSP/1.0 (RFC 2326), server side: requests in, responses out, no sockets, no clocks.

Bytes go in with :meth:`RtspConnection.feed` (or :meth:`~RtspConnection.receive_data` plus
:meth:`~RtspConnection.next_event`); events come out: an :class:`RtspRequest` per request and an
:class:`InterleavedFrame` per ``$``-framed packet (RTP/RTCP over the RTSP TCP connection, RFC 2326
§10.12: clients send their RTCP receiver reports that way, between requests). Messages may be
split across reads at any byte or arrive several in one read; LF-only line endings and blank
lines between messages are tolerated.

Hard caps: a request line plus headers longer than ``max_header_block`` (8 KiB) or a body over
``max_body`` (64 KiB) raise :class:`~bridge.errors.MessageTooLarge`; anything malformed raises
:class:`~bridge.errors.ProtocolError`. After either, the connection is dead: every later call
raises, because the byte stream has lost its framing.

Every value here came from a hostile peer, so it is checked where it enters: the request-URI
is visible ASCII, header values hold no control characters (RFC 7230 §3.2 field-value: a bare
CR, an LF or a NUL inside a value is a ProtocolError, never something the response serializer
chokes on later), and CSeq, which every response echoes, is digits. Header values are decoded
as latin-1 so any other byte survives a parse/serialize round trip. Error messages say what was
wrong, never the bytes: a header line may be an ``Authorization`` with a password in it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import overload

from bridge.errors import MessageTooLarge, ProtocolError

RTSP_VERSION = "RTSP/1.0"
MAX_HEADER_BLOCK = 8 * 1024
MAX_BODY = 64 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    451: "Parameter Not Understood",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
    551: "Option not supported",
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rf"({_TOKEN.pattern})[ \t]+([!-~]+)[ \t]+(RTSP/[0-9]\.[0-9])")
# Control characters other than HTAB (RFC 7230 field-value allows VCHAR, obs-text, SP, HTAB).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
_OWS = " \t"  # only these pad header values; str.strip() would also eat latin-1 NBSP
_BLANK_LINE = re.compile(rb"\n\r?\n")
_NOT_NEWLINE = re.compile(rb"[^\r\n]")
_DIGITS = re.compile(r"[0-9]+")
_INTERLEAVED = struct.Struct("!BBH")  # '$', channel, length
_DOLLAR = 0x24


def reason_phrase(status: int) -> str:
    """The RFC 2326 reason phrase for a status code the server uses."""
    try:
        return _REASONS[status]
    except KeyError:
        raise ValueError(f"no reason phrase known for RTSP status {status}") from None


class Headers:
    """Header fields: case-insensitive names, repeated names kept, order preserved."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        self._fields: list[tuple[str, str]] = list(pairs)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = name.lower()
        for field_name, value in self._fields:
            if field_name.lower() == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field_name, value in self._fields if field_name.lower() == key]

    def add(self, name: str, value: str) -> None:
        self._fields.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field with one holding ``value``."""
        self.remove(name)
        self._fields.append((name, value))

    def remove(self, name: str) -> None:
        key = name.lower()
        self._fields = [pair for pair in self._fields if pair[0].lower() != key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self] == [(n.lower(), v) for n, v in other]

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __repr__(self) -> str:
        # A request's repr can end up in a log line: never with its credentials.
        shown = [(n, "***" if n.lower() in _CREDENTIAL_HEADERS else v) for n, v in self._fields]
        return f"Headers({shown!r})"


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    """A message's bytes. Content-Length always comes from the body, never from ``headers``."""
    lines = [start_line]
    for name, value in headers:
        if name.lower() == "content-length":
            continue
        if _CONTROL.search(value) or not _TOKEN.fullmatch(name):
            # The last guard against header injection; the parser already refused such values.
            raise ValueError(f"header {name!r} cannot be serialized")
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


@dataclass(slots=True)
class RtspRequest:
    method: str
    uri: str
    version: str = RTSP_VERSION  # any RTSP/x.y parses; the server answers 505 to others
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    def serialize(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass(slots=True)
class RtspResponse:
    status: int
    reason: str = ""  # empty: the standard phrase for ``status``
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not self.reason:
            self.reason = reason_phrase(self.status)

    @classmethod
    def reply(
        cls,
        request: RtspRequest,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> RtspResponse:
        """A response to ``request`` that echoes its CSeq, as every RTSP response must."""
        fields = Headers(headers)
        cseq = request.cseq
        if cseq is not None:
            fields.remove("CSeq")
            fields = Headers([("CSeq", cseq), *fields])
        return cls(status, headers=fields, body=body)

    def serialize(self) -> bytes:
        return _serialize(f"{RTSP_VERSION} {self.status} {self.reason}", self.headers, self.body)


def interleaved_header(channel: int, length: int) -> bytes:
    """The 4-byte ``$`` framing that precedes an RTP/RTCP packet sent over the RTSP connection."""
    if not 0 <= channel <= 0xFF:
        raise ValueError(f"interleaved channel {channel} is not 0..255")
    if not 0 <= length <= 0xFFFF:
        raise ValueError(f"interleaved packet of {length} bytes does not fit the 16-bit length")
    return _INTERLEAVED.pack(_DOLLAR, channel, length)


@dataclass(frozen=True, slots=True)
class InterleavedFrame:
    channel: int
    payload: bytes

    def serialize(self) -> bytes:
        return interleaved_header(self.channel, len(self.payload)) + self.payload


Event = RtspRequest | InterleavedFrame


class RtspConnection:
    """The server end of one RTSP connection, receiving."""

    def __init__(
        self, *, max_header_block: int = MAX_HEADER_BLOCK, max_body: int = MAX_BODY
    ) -> None:
        self._max_header_block = max_header_block
        self._max_body = max_body
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes; compacted on the next receive
        self._scan = 0  # where the blank-line search resumes, so trickled headers stay O(n)
        self._awaiting_body: RtspRequest | None = None
        self._body_length = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of an event."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[Event]:
        """Add received bytes and return every event they completed.

        On malformed input this raises, and events completed earlier in the same call are lost
        with it; a server that must answer pipelined requests ahead of the bad one uses
        :meth:`receive_data` and :meth:`next_event`, which raise exactly at the bad message.
        """
        self.receive_data(data)
        events: list[Event] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def receive_data(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._scan = max(0, self._scan - self._pos)
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed."""
        if self._error is not None:
            raise ProtocolError(f"RTSP connection already failed: {self._error}") from self._error
        try:
            return self._next_event()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next_event(self) -> Event | None:
        if self._awaiting_body is not None:
            return self._take_body(self._awaiting_body)
        buf = self._buf
        # Blank lines between messages are skipped: some clients send CRLF as a keepalive.
        found = _NOT_NEWLINE.search(buf, self._pos)
        if found is None:
            self._pos = len(buf)
            return None
        pos = self._pos = found.start()
        if buf[pos] == _DOLLAR:
            return self._take_interleaved()
        found = _BLANK_LINE.search(buf, max(self._scan, pos))
        if found is None:
            if len(buf) - pos > self._max_header_block:
                raise MessageTooLarge(f"RTSP header block exceeds {self._max_header_block} bytes")
            self._scan = max(pos, len(buf) - 2)  # a blank line may straddle the next read
            return None
        end = found.end()
        if end - pos > self._max_header_block:
            raise MessageTooLarge(f"RTSP header block exceeds {self._max_header_block} bytes")
        request, length = self._parse_head(bytes(buf[pos : found.start()]))
        self._pos = self._scan = end
        if not length:
            return request
        self._awaiting_body, self._body_length = request, length
        return self._take_body(request)

    def _take_interleaved(self) -> InterleavedFrame | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < _INTERLEAVED.size:
            return None
        _, channel, length = _INTERLEAVED.unpack_from(buf, pos)
        start = pos + _INTERLEAVED.size
        if len(buf) < start + length:
            return None  # at most 64 KiB by construction of the 16-bit length
        self._pos = self._scan = start + length
        return InterleavedFrame(channel, bytes(buf[start : start + length]))

    def _take_body(self, request: RtspRequest) -> RtspRequest | None:
        pos, end = self._pos, self._pos + self._body_length
        if len(self._buf) < end:
            return None
        request.body = bytes(self._buf[pos:end])
        self._pos = self._scan = end
        self._awaiting_body = None
        return request

    def _parse_head(self, block: bytes) -> tuple[RtspRequest, int]:
        """The request (without body) and its Content-Length from a header block."""
        parsed, headers = parse_head(block, _REQUEST_LINE, "RTSP")
        if not all(_DIGITS.fullmatch(cseq) for cseq in headers.get_all("CSeq")):
            raise ProtocolError("RTSP CSeq is not a number")
        method, uri, version = parsed.groups()
        return RtspRequest(method, uri, version, headers), self._content_length(headers)

    def _content_length(self, headers: Headers) -> int:
        values = set(headers.get_all("Content-Length"))
        if not values:
            return 0
        value = values.pop()
        if values or not _DIGITS.fullmatch(value):
            raise ProtocolError("bad RTSP Content-Length: not one decimal number")
        # Length checked before int(): Python refuses to convert very long digit strings.
        digits = value.lstrip("0") or "0"
        if len(digits) > 9 or int(digits) > self._max_body:
            raise MessageTooLarge(f"RTSP body of {digits[:20]} bytes exceeds {self._max_body}")
        return int(digits)


def parse_head(
    block: bytes, start_line: re.Pattern[str], protocol: str
) -> tuple[re.Match[str], Headers]:
    """The start line, matched by ``start_line``, and the header fields of a header block
    (without its blank line) of RTSP or of HTTP, which share the syntax; ``protocol`` names
    it in errors."""
    first, *header_lines = block.decode("latin-1").split("\n")
    parsed = start_line.fullmatch(first.rstrip("\r").strip(_OWS))
    if parsed is None:
        raise ProtocolError(f"malformed {protocol} request line")
    fields: list[tuple[str, str]] = []
    for number, raw in enumerate(header_lines, start=2):
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t"):
            # Obsolete line folding (RFC 2326 inherits it from HTTP/1.1): a continuation.
            if not fields:
                raise ProtocolError(f"{protocol} header continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip(_OWS)}".strip(_OWS))
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise ProtocolError(f"malformed {protocol} header line {number}: no name and colon")
        fields.append((name, value.strip(_OWS)))
    for name, value in fields:
        if _CONTROL.search(value):
            raise ProtocolError(f"{protocol} header {name} holds a control character")
    return parsed, Headers(fields)


# -- header values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """One alternative of a Transport header (RFC 2326 §12.39).

    ``destination`` and ``source`` are deliberately not modelled: RTP always goes to the peer
    of the RTSP connection, so a client cannot aim a stream at a third host. Other unknown
    parameters are ignored, as the RFC asks.
    """

    protocol: str = "RTP/AVP"  # transport/profile, upper-case
    lower_transport: str | None = None  # "UDP" or "TCP"; None when omitted, which means UDP
    delivery: str | None = None  # "unicast" or "multicast"; None when omitted
    client_port: tuple[int, int] | None = None  # (RTP, RTCP)
    server_port: tuple[int, int] | None = None
    interleaved: tuple[int, int] | None = None  # (RTP, RTCP) channels
    ssrc: int | None = None
    mode: str | None = None  # upper-case method, e.g. "PLAY"

    @property
    def is_tcp(self) -> bool:
        return self.lower_transport == "TCP"

    def serialize(self) -> str:
        head = self.protocol
        if self.lower_transport is not None:
            head = f"{head}/{self.lower_transport}"
        parts = [head]
        if self.delivery is not None:
            parts.append(self.delivery)
        for name, pair in (
            ("client_port", self.client_port),
            ("server_port", self.server_port),
            ("interleaved", self.interleaved),
        ):
            if pair is not None:
                parts.append(f"{name}={pair[0]}-{pair[1]}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode is not None:
            parts.append(f"mode={self.mode}")
        return ";".join(parts)


_RANGE_PAIR = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")
_SSRC = re.compile(r"[0-9A-Fa-f]{1,8}")


def _pair(value: str, what: str, maximum: int) -> tuple[int, int]:
    """``a-b`` or a lone ``a`` (meaning ``a-(a+1)``: RTCP on the next port/channel)."""
    match = _RANGE_PAIR.fullmatch(value)
    if match is None:
        raise ProtocolError(f"bad {what} in Transport")
    first = int(match.group(1))
    second = int(match.group(2)) if match.group(2) is not None else first + 1
    if not first <= second <= maximum:
        raise ProtocolError(f"bad {what} in Transport")
    return first, second


_PAIR_MAXIMUM = {"client_port": 0xFFFF, "server_port": 0xFFFF, "interleaved": 0xFF}


def _parse_transport_spec(text: str) -> TransportSpec:
    head, *params = text.split(";")
    layers = head.strip().upper().split("/")
    if len(layers) not in (2, 3) or not all(_TOKEN.fullmatch(layer) for layer in layers):
        raise ProtocolError("bad transport protocol in Transport")
    delivery: str | None = None
    pairs: dict[str, tuple[int, int]] = {}
    ssrc: int | None = None
    mode: str | None = None
    for param in params:
        key, _, raw = param.partition("=")
        key, value = key.strip().lower(), raw.strip().strip('"')
        if key in ("unicast", "multicast"):
            delivery = key
        elif key in _PAIR_MAXIMUM:
            pairs[key] = _pair(value, key, _PAIR_MAXIMUM[key])
        elif key == "ssrc":
            if not _SSRC.fullmatch(value):
                raise ProtocolError("bad ssrc in Transport")
            ssrc = int(value, 16)
        elif key == "mode":
            mode = value.upper()
    return TransportSpec(
        protocol=f"{layers[0]}/{layers[1]}",
        lower_transport=layers[2] if len(layers) == 3 else None,
        delivery=delivery,
        client_port=pairs.get("client_port"),
        server_port=pairs.get("server_port"),
        interleaved=pairs.get("interleaved"),
        ssrc=ssrc,
        mode=mode,
    )


def parse_transport(value: str) -> list[TransportSpec]:
    """The alternatives of a Transport header, in the client's order of preference."""
    specs = [_parse_transport_spec(text) for text in value.split(",") if text.strip()]
    if not specs:
        raise ProtocolError("empty Transport header")
    return specs


def parse_require(values: Iterable[str]) -> list[str]:
    """The option tags of a request's ``Require`` fields (RFC 2326 §12.32), in order, once each.

    Tags are compared as sent: RFC 2326 gives them no case rule and the ONVIF one is lower-case.
    An empty element (``a,,b``) is skipped; a tag holding white space is a ProtocolError."""
    tags: list[str] = []
    for value in values:
        for element in value.split(","):
            tag = element.strip(_OWS)
            if not tag:
                continue
            if not _OPTION_TAG.fullmatch(tag):
                raise ProtocolError("bad option tag in Require")
            if tag not in tags:
                tags.append(tag)
    return tags


_OPTION_TAG = re.compile(r"[!-~]{1,200}")
_SESSION_ID = re.compile(r"[A-Za-z0-9$\-_.+]+")


def parse_session(value: str) -> tuple[str, int | None]:
    """(session id, timeout in seconds or None) from a Session header."""
    session_id, *params = value.split(";")
    session_id = session_id.strip()
    if not _SESSION_ID.fullmatch(session_id):
        raise ProtocolError("bad RTSP session id")
    timeout = None
    for param in params:
        key, _, raw = param.partition("=")
        if key.strip().lower() == "timeout":
            if not _DIGITS.fullmatch(raw.strip()) or len(raw.strip()) > 9:
                raise ProtocolError("bad Session timeout")
            timeout = int(raw)
    return session_id, timeout
