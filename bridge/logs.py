"""Logging setup that never prints a password.

Every configured secret is registered here and replaced by ``***`` in the fully formatted
record (message, arguments and traceback alike); URL userinfo and credential-looking query
parameters are masked too, so a library that logs a URL cannot leak one either.
"""

from __future__ import annotations

import logging
import re
import sys

_SECRETS: set[str] = set()
_MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]*):[^/\s@]*@")
_QUERY_SECRET = re.compile(r"(?i)\b(?P<key>pwd|pass|passwd|password)=[^&\s\"']*")


def register_secret(secret: str) -> None:
    """Mask this value wherever it appears in a log line (ignores trivially short values)."""
    if len(secret) >= 3:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    text = _URL_USERINFO.sub(rf"\g<scheme>\g<user>:{_MASK}@", text)
    text = _QUERY_SECRET.sub(rf"\g<key>={_MASK}", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every request line of the emulated cameras.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
