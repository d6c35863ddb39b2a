"""Server-side HTTP authentication (Basic and Digest, RFC 7616 MD5 with ``qop=auth``).

Sans-I/O: header values in, decisions out. The emulated cameras, the RTSP server, the web app
and the ONVIF devices authenticate with the same code. Nonces are HMAC-signed timestamps with a
random part, so their origin and age are checked without a table; a nonce from another
authority (another device, an earlier run) is worthless here.

A replay-proof authority (ONVIF's) also keeps a bounded table of the nonces in use with the
highest ``nc`` seen for each, and accepts each (nonce, nc) once, nc strictly increasing:
``qop=auth`` covers the method and URI but not the body, so without this a captured header could
be sent again within the nonce's lifetime with another body. It therefore requires ``qop``
(without it there is no nc). It is an option because many RTSP clients (live555, VLC) answer
without ``qop`` and reuse the nonce for every request, which single use would lock out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?')
_NONCE_COUNT = re.compile(r"[0-9a-fA-F]{8}")  # RFC 7616: nc-value = 8LHEX
_STAMP = re.compile(r"[0-9]{1,16}")

PasswordOf = Callable[[str], str | None]


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


def _same(value: str, expected: str) -> bool:
    """Constant-time equality of a string a peer may have filled with any characters
    (``hmac.compare_digest`` raises on non-ASCII text)."""
    return hmac.compare_digest(
        value.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


@dataclass(frozen=True, slots=True)
class DigestVerdict:
    """What a Digest Authorization value proves: ``user``, or None. ``stale`` says the answer
    was right for its nonce but that nonce cannot be used (expired, not issued here, or that
    nc already seen): the 401 then carries ``stale=true`` and the client renews without
    asking for the password again (RFC 7616 section 3.3)."""

    user: str | None
    stale: bool = False


_NOBODY = DigestVerdict(None)
_STALE = DigestVerdict(None, stale=True)


class DigestAuthority:
    """Issues Digest challenges for one realm and verifies the answers.

    ``replay_proof`` makes each (nonce, nc) single-use (see the module docstring); at most
    ``max_nonces`` nonces in use are remembered, and when a flood of them pushes one out,
    every nonce issued before it is refused as stale, so forgetting never reopens a replay.
    ``clock`` is a ``time.monotonic()``-like reading in seconds.
    """

    def __init__(
        self,
        realm: str,
        *,
        nonce_lifetime: float = 300.0,
        replay_proof: bool = False,
        max_nonces: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.replay_proof = replay_proof
        self._max_nonces = max_nonces
        self._clock = clock
        self._key = secrets.token_bytes(16)
        # nonce -> (its stamp, the highest nc accepted); in order of first use.
        self._in_use: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._forgotten_up_to = -1  # the newest stamp among nonces pushed out of the table

    def _sign(self, text: str) -> str:
        data = text.encode("utf-8", "surrogatepass")  # a peer's nonce may hold anything
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def new_nonce(self) -> str:
        signed = f"{self._now_ms()}:{secrets.token_hex(8)}"
        return f"{signed}:{self._sign(signed)}"

    def _stamp(self, nonce: str) -> int | None:
        """When this authority issued ``nonce`` (ms), None if it did not."""
        signed, sep, mac = nonce.rpartition(":")
        if not sep or not _same(mac, self._sign(signed)):
            return None
        stamp = signed.partition(":")[0]
        return int(stamp) if _STAMP.fullmatch(stamp) else None

    def _is_fresh(self, stamp: int, now: int) -> bool:
        return 0 <= now - stamp <= self.nonce_lifetime * 1000

    def nonce_is_fresh(self, nonce: str) -> bool:
        """Whether ``nonce`` was issued here and has not expired."""
        stamp = self._stamp(nonce)
        return stamp is not None and self._is_fresh(stamp, self._now_ms())

    def challenge(self, *, stale: bool = False) -> str:
        value = (
            f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, '
            f'nonce="{self.new_nonce()}", opaque="{self._sign("opaque")}"'
        )
        return value + (", stale=true" if stale else "")

    def check(self, method: str, authorization: str, password_of: PasswordOf) -> DigestVerdict:
        """What ``authorization`` proves for a request with this method.
        ``password_of`` returns None for no such user."""
        scheme, p = parse_authorization(authorization)
        if scheme != "digest":
            return _NOBODY
        username, nonce, uri, response = (
            p.get(k, "") for k in ("username", "nonce", "uri", "response")
        )
        if not (username and nonce and response) or p.get("realm") != self.realm:
            return _NOBODY
        qop, nc = p.get("qop", ""), p.get("nc", "")
        if qop == "auth":
            if self.replay_proof and not _NONCE_COUNT.fullmatch(nc):
                return _NOBODY
        elif qop or self.replay_proof:
            return _NOBODY
        password = password_of(username)
        if password is None:
            return _NOBODY
        ha1 = _md5(f"{username}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        if qop:
            expected = _md5(f"{ha1}:{nonce}:{nc}:{p.get('cnonce', '')}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        if not _same(response.lower(), expected):
            return _NOBODY
        # The password is right: whatever is wrong now is the nonce's, which a renewal fixes.
        return DigestVerdict(username) if self._use(nonce, nc) else _STALE

    def verify(self, method: str, authorization: str, password_of: PasswordOf) -> str | None:
        """The authenticated user name, or None."""
        return self.check(method, authorization, password_of).user

    def _use(self, nonce: str, nc: str) -> bool:
        """Whether ``nonce`` may be used now, with this nc if the authority is replay-proof."""
        now = self._now_ms()
        stamp = self._stamp(nonce)
        if stamp is None or not self._is_fresh(stamp, now):
            return False
        if not self.replay_proof:
            return True
        self._forget_expired(now)
        if stamp <= self._forgotten_up_to:
            return False
        count = int(nc, 16)
        _, highest = self._in_use.get(nonce, (stamp, 0))
        if count <= highest:
            return False
        self._in_use[nonce] = (stamp, count)
        if len(self._in_use) > self._max_nonces:
            _, (oldest, _) = self._in_use.popitem(last=False)
            self._forgotten_up_to = max(self._forgotten_up_to, oldest)
        return True

    def _forget_expired(self, now: int) -> None:
        while self._in_use:
            stamp, _ = next(iter(self._in_use.values()))
            if self._is_fresh(stamp, now):
                return
            self._in_use.popitem(last=False)


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
