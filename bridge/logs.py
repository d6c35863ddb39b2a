"""Logging setup that never prints a password.

Every configured secret is registered here and replaced by ``***`` in the fully formatted
record (message, arguments and traceback alike). Whatever has the shape of a credential is
masked too, so a library, a traceback or a careless log call cannot leak one that was never
registered (a password a client tried, one sent in a header):

- URL userinfo: ``rtsp://user:***@host``;
- credential-looking query parameters: ``pwd=***``, ``password=***``, ``passwd=``, ``pass=``;
- ``Authorization``/``Proxy-Authorization`` values, as a header line or in the repr of a
  header mapping or list, whatever the scheme: ``Authorization: Basic ***`` (the scheme stays
  when it is a known one, it says what was sent);
- a token after ``Basic`` or ``Bearer`` anywhere (an exception message quoting a header);
- a Digest ``response="..."`` hash (crackable offline), and WS-Security ``<...:Password>``
  element text.

Challenges (``WWW-Authenticate: Digest realm="bridge", nonce="..."``) stay readable: they hold
nothing secret and explain many a failed login.

A malformed HTTP request (to the ONVIF or web ports) is the peer's fault, not the gateway's:
aiohttp logs each one as an ERROR with a traceback whose message quotes the bytes it choked on.
Here each becomes one INFO line naming the client and the kind of error, at most one every
10 s, so a scanner on the LAN can neither flood the log nor get a header line into it.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from datetime import UTC, datetime

from aiohttp.http_exceptions import HttpProcessingError

from bridge.ratelimit import ThrottledLog

_SECRETS: set[str] = set()
_MASK = "***"
# The password runs to the last "@" before the path: passwords are often not percent-encoded.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:]*):[^\s/]*@")
_QUERY_SECRET = re.compile(r"(?i)\b(?P<key>pwd|pass|passwd|password)=[^&\s\"']*")
_AUTHORIZATION = re.compile(
    r"""(?ix)
    (?P<head>\b(?:proxy-)?authorization["']?[ \t]*[:=,][ \t]*(?P<quote>["'])?)
    (?P<scheme>(?:basic|digest|bearer|negotiate|ntlm)[ \t]+)?
    # The value runs to the quote that opened it (a repr), else to the end of the line.
    (?(quote)(?:\\.|(?!(?P=quote))[^\\\r\n])*|[^\r\n]*)
    """
)
# RFC 7235 token68 after the scheme, not an auth-param (Basic realm="x"); 8 characters at
# least, as any real user:password gives, so that prose ("Basic auth") stays readable.
_BARE_TOKEN = re.compile(
    r"(?i)\b(?P<scheme>basic|bearer)[ \t]+"
    r"(?=[a-z0-9\-._~+/=]{8})[a-z0-9\-._~+/]+=*(?![a-z0-9\-._~+/=\"])"
)
_DIGEST_RESPONSE = re.compile(r"(?i)\b(?P<key>response\s*=\s*[\"']?)[0-9a-f]{32,128}\b")
_WSSE_PASSWORD = re.compile(r"(?i)(?P<tag><(?:[\w.-]+:)?Password\b[^>]*>)[^<]*")


def register_secret(secret: str) -> None:
    """Mask this value wherever it appears in a log line (ignores trivially short values)."""
    if len(secret) >= 3:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    # Known secrets first, whole: a pattern below could mask only the part before a quote or
    # an "&" in one and leave the rest readable.
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    # URLs next: a password in one may hold anything, "Authorization:" included.
    text = _URL_USERINFO.sub(rf"\g<scheme>\g<user>:{_MASK}@", text)
    text = _QUERY_SECRET.sub(rf"\g<key>={_MASK}", text)
    text = _AUTHORIZATION.sub(rf"\g<head>\g<scheme>{_MASK}", text)
    text = _BARE_TOKEN.sub(rf"\g<scheme> {_MASK}", text)
    text = _DIGEST_RESPONSE.sub(rf"\g<key>{_MASK}", text)
    return _WSSE_PASSWORD.sub(rf"\g<tag>{_MASK}", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log shippers: ``time`` (UTC, ISO 8601), ``level``,
    ``logger``, ``message`` and, when there is one, ``exception``. Each value is masked as text
    lines are, before it is JSON-escaped (escaping would hide a secret holding a quote or a
    backslash from the mask)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return jsonlib.dumps({key: redact(value) for key, value in entry.items()})


class MalformedHttpRequests(logging.Filter):
    """On aiohttp's server logger: a request aiohttp could not parse, told in one throttled
    line without its traceback or bytes (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._throttled = ThrottledLog(logging.getLogger("bridge.http"))

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
        self._throttled.log(
            logging.INFO,
            "malformed",
            "refused a malformed HTTP request from %s (%s)",
            peer,
            type(error).__name__,
        )
        return False


LOG_FORMATS = ("text", "json")


def setup_logging(level: int = logging.INFO, *, json: bool = False) -> None:
    """Log to stderr, as text lines or (``json``) one JSON object per line; masked either way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json
        else RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every request line of the emulated cameras.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    server.filters[:] = [MalformedHttpRequests()]
