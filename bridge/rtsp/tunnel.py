"""Sans-I/O core of RTSP tunnelled in HTTP: the opening of each half, and the base64 stream.

Apple's "Tunneling QuickTime RTSP and RTP over HTTP", which ONVIF Streaming requires as
RTP/RTSP/HTTP/TCP, has a client open two HTTP connections to the RTSP port, tied together by
the value of their ``x-sessioncookie`` header:

- a ``GET``, answered ``200 OK`` with an ``application/x-rtsp-tunnelled`` body that never ends:
  everything the server sends (RTSP responses, interleaved RTP/RTCP) flows back on it;
- a ``POST``, whose body carries the client's RTSP requests (and interleaved RTCP), base64
  encoded, and which is never answered. Its Content-Length (32767 and the like) is a token
  that proxies let through, not a length: clients send past it, so it is ignored.

Clients encode each request on its own (ffmpeg does), so ``=`` padding may end any 4-character
quantum of the stream, and CR, LF, space and tab may sit anywhere between characters.

:func:`speaks_http` tells a tunnel half from an RTSP connection by its first bytes (no RTSP
method is ``GET`` or ``POST``); a :class:`TunnelReceiver` takes that connection's bytes and
gives a :class:`TunnelHead` for its HTTP head, then, on a POST, :class:`TunnelData` with the
decoded bytes. Caps: a head is at most ``max_head`` bytes and a cookie at most
:data:`MAX_COOKIE` characters (:class:`~bridge.errors.MessageTooLarge` past them), and at most
three base64 characters wait for the rest of their quantum, so what is buffered is bounded.
Anything else malformed raises :class:`~bridge.errors.ProtocolError`; its message says what
was wrong, never the bytes.
"""

from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass

from bridge.errors import MessageTooLarge, ProtocolError
from bridge.rtsp.protocol import MAX_HEADER_BLOCK, parse_head

MAX_COOKIE = 128  # characters; clients use 16 to 32 (ffmpeg 16 hex digits, gortsplib 32)
_METHODS = (b"GET ", b"POST ")
_REQUEST_LINE = re.compile(r"(GET|POST)[ \t]+([!-~]+)[ \t]+HTTP/1\.[01]")
_COOKIE = re.compile(r"[!-~]+")  # visible ASCII: it only ever matches another half's
_BLANK_LINE = re.compile(rb"\n\r?\n")
_WHITESPACE = b" \t\r\n"
_QUANTUM = 4
_PAD = ord("=")
_REASONS = {
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    431: "Request Header Fields Too Large",
}
# What the GET is answered: no length and no end (HTTP/1.0 delimits the body by the close),
# and nothing a proxy may cache.
TUNNEL_OPENED = (
    b"HTTP/1.0 200 OK\r\n"
    b"Connection: close\r\n"
    b"Cache-Control: no-store, no-cache\r\n"
    b"Pragma: no-cache\r\n"
    b"Content-Type: application/x-rtsp-tunnelled\r\n"
    b"\r\n"
)


def speaks_http(prefix: bytes) -> bool | None:
    """Whether a connection whose first bytes are ``prefix`` opens a tunnel half (an HTTP
    GET or POST) rather than speaking RTSP; None while ``prefix`` is too short to tell."""
    if prefix.startswith(_METHODS):
        return True
    if any(method.startswith(prefix) for method in _METHODS):
        return None
    return False


def http_refusal(status: int) -> bytes:
    """A complete HTTP response refusing a request that opens no tunnel, before the close."""
    return f"HTTP/1.0 {status} {_REASONS[status]}\r\nConnection: close\r\n\r\n".encode()


class Half(enum.Enum):
    GET = "GET"  # server to client: responses and RTP
    POST = "POST"  # client to server: base64 requests


@dataclass(frozen=True, slots=True)
class TunnelHead:
    """The HTTP head that opened a tunnel half."""

    half: Half
    target: str  # the request target, as sent (the RTSP requests name their own URIs)
    cookie: str


@dataclass(frozen=True, slots=True)
class TunnelData:
    """Bytes a POST carried, decoded: part of the tunnel's RTSP conversation."""

    data: bytes


class Base64Decoder:
    """Base64 text in pieces of any size to the bytes it encodes, as they complete.

    Padding may end any quantum (the stream is a concatenation of separately encoded
    messages) and whitespace anywhere is skipped. At most three characters are held back.
    """

    def __init__(self) -> None:
        self._pending = b""  # the start of an incomplete quantum, whitespace removed

    @property
    def pending(self) -> int:
        return len(self._pending)

    def decode(self, text: bytes) -> bytes:
        text = self._pending + text.translate(None, _WHITESPACE)
        whole = len(text) - len(text) % _QUANTUM
        self._pending = text[whole:]
        decoded = []
        start = 0
        while start < whole:
            # A run of quanta decodes in one call up to and including the first padded one.
            pad = text.find(_PAD, start, whole)
            end = whole if pad < 0 else pad - pad % _QUANTUM + _QUANTUM
            try:
                decoded.append(binascii.a2b_base64(text[start:end], strict_mode=True))
            except binascii.Error:
                raise ProtocolError("tunnelled request is not base64") from None
            start = end
        return b"".join(decoded)


class TunnelReceiver:
    """One connection of a tunnel, receiving: its HTTP head, then (a POST) its body."""

    def __init__(self, *, max_head: int = MAX_HEADER_BLOCK) -> None:
        self._max_head = max_head
        self._buf = bytearray()
        self._scan = 0  # where the blank-line search resumes
        self._head: TunnelHead | None = None
        self._decoder = Base64Decoder()

    @property
    def head(self) -> TunnelHead | None:
        return self._head

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of an event."""
        return len(self._buf) + self._decoder.pending

    def receive_data(self, data: bytes) -> None:
        if self._head is not None and self._head.half is Half.GET:
            return  # nothing a client sends on its GET means anything (gortsplib sends a body)
        self._buf += data

    def next_event(self) -> TunnelHead | TunnelData | None:
        """The next event, or None when more bytes are needed."""
        if self._head is None:
            self._head = self._take_head()
            return self._head
        if not self._buf:
            return None
        text, self._buf = bytes(self._buf), bytearray()
        data = self._decoder.decode(text)
        return TunnelData(data) if data else None

    def _take_head(self) -> TunnelHead | None:
        found = _BLANK_LINE.search(self._buf, self._scan)
        if found is None:
            if len(self._buf) > self._max_head:
                raise MessageTooLarge(f"HTTP head exceeds {self._max_head} bytes")
            self._scan = max(0, len(self._buf) - 2)  # a blank line may straddle the next read
            return None
        if found.end() > self._max_head:
            raise MessageTooLarge(f"HTTP head exceeds {self._max_head} bytes")
        request_line, headers = parse_head(bytes(self._buf[: found.start()]), _REQUEST_LINE, "HTTP")
        rest = bytes(self._buf[found.end() :])
        self._buf = bytearray()
        cookies = headers.get_all("x-sessioncookie")
        if len(cookies) != 1:
            raise ProtocolError(
                "HTTP request without one x-sessioncookie header: not an RTSP tunnel"
            )
        (cookie,) = cookies
        if len(cookie) > MAX_COOKIE:
            raise MessageTooLarge(f"x-sessioncookie longer than {MAX_COOKIE} characters")
        if not _COOKIE.fullmatch(cookie):
            raise ProtocolError("x-sessioncookie is empty or not visible ASCII")
        method, target = request_line.groups()
        head = TunnelHead(Half(method), target, cookie)
        if head.half is Half.POST:
            self._buf += rest
        return head
