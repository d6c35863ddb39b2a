"""Server-side HTTP authentication (Basic and Digest, RFC 7616 MD5 with ``qop=auth``).

Sans-I/O: header values in, decisions out. The emulated cameras use it now; the RTSP server and
the ONVIF endpoints authenticate the gateway's users with the same code. Nonces are
HMAC-signed timestamps, so verifying one needs no server-side table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?')


def parse_authorization(value: str) -> tuple[str, dict[str, str]]:
    """Split an Authorization/WWW-Authenticate value into (lower-case scheme, params).

    For Basic the single token is returned under the key ``token``.
    """
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        return scheme, {"token": rest.strip()}
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        key, raw, quoted = match.group(1), match.group(2), match.group(3)
        params[key.lower()] = quoted.replace('\\"', '"') if quoted is not None else raw
    return scheme, params


def basic_credentials(value: str) -> tuple[str, str] | None:
    """(user, password) from a Basic Authorization value, None if it is not one."""
    scheme, params = parse_authorization(value)
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(params["token"], validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("latin-1", "replace"), usedforsecurity=False).hexdigest()


class DigestAuthority:
    """Issues Digest challenges for one realm and verifies the answers."""

    def __init__(self, realm: str, *, nonce_lifetime: float = 300.0) -> None:
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self._key = secrets.token_bytes(16)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = str(time.monotonic_ns() // 1_000_000)
        return f"{stamp}:{self._sign(stamp)}"

    def nonce_is_fresh(self, nonce: str) -> bool:
        stamp, sep, mac = nonce.partition(":")
        if not sep or not hmac.compare_digest(mac, self._sign(stamp)):
            return False
        if not stamp.isdigit():
            return False
        age_ms = time.monotonic_ns() // 1_000_000 - int(stamp)
        return 0 <= age_ms <= self.nonce_lifetime * 1000

    def challenge(self, *, stale: bool = False) -> str:
        value = (
            f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, '
            f'nonce="{self.new_nonce()}", opaque="{self._sign("opaque")}"'
        )
        return value + (", stale=true" if stale else "")

    def verify(
        self, method: str, authorization: str, password_of: Callable[[str], str | None]
    ) -> str | None:
        """The authenticated user name, or None. ``password_of`` returns None for no user."""
        scheme, p = parse_authorization(authorization)
        if scheme != "digest":
            return None
        username, nonce, uri, response = (
            p.get(k, "") for k in ("username", "nonce", "uri", "response")
        )
        if not (username and nonce and response) or p.get("realm") != self.realm:
            return None
        if not self.nonce_is_fresh(nonce):
            return None
        password = password_of(username)
        if password is None:
            return None
        ha1 = _md5(f"{username}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        qop = p.get("qop", "")
        if qop == "auth":
            expected = _md5(f"{ha1}:{nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
        elif not qop:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        else:
            return None
        return username if hmac.compare_digest(expected, response.lower()) else None


class Authenticator:
    """The gateway's users over Basic and Digest, as the RTSP server and web endpoints use them."""

    def __init__(self, users: Mapping[str, str], realm: str) -> None:
        self.users = users  # live view: user changes apply to the next request
        self.realm = realm
        self._digest = DigestAuthority(realm)

    def authenticate(self, method: str, authorization: str) -> str | None:
        """The user an Authorization header proves, or None."""
        user = self._digest.verify(method, authorization, self.users.get)
        if user is not None:
            return user
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        user, password = credentials
        expected = self.users.get(user)
        if expected is not None and hmac.compare_digest(
            expected.encode("latin-1", "replace"), password.encode("latin-1", "replace")
        ):
            return user
        return None

    def challenges(self, authorization: str = "") -> list[str]:
        """WWW-Authenticate values for a 401: Digest (stale when its nonce merely expired), then
        Basic, so clients pick Digest when they can and Basic-only ones still work."""
        scheme, params = parse_authorization(authorization)
        stale = scheme == "digest" and not self._digest.nonce_is_fresh(params.get("nonce", ""))
        return [self._digest.challenge(stale=stale), f'Basic realm="{self.realm}"']
