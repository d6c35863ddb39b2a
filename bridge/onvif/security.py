"""WS-Security UsernameToken verification, as ONVIF Core uses it.

PasswordDigest is ``base64(sha1(nonce + created + password))``; PasswordText carries the
password itself. A token whose Created lies outside the window around the device's clock is
refused, and so is a token accepted before: a bounded cache remembers accepted tokens for as
long as they could still pass the Created check. One verifier serves every device of a gateway,
so a token accepted by one device is not accepted by another.

The cache is keyed on the whole proof (nonce, Created and password digest), not the nonce
alone: some C client libraries send the same nonce in every request with a fresh Created, and
such tokens all differ (and each needs the password to make), so they are served, while no
token is accepted twice. The user name is left out because the digest does not cover it: the
same proof under another user's name (one with the same password) is a replay too. Keys are
hashes, so no PasswordText password is kept.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from bridge.errors import NotAuthorized
from bridge.onvif.soap import WSSE_NS

WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = f"{_PROFILE}#PasswordDigest"
PASSWORD_TEXT = f"{_PROFILE}#PasswordText"
_MAX_NONCE_BYTES = 256

PasswordOf = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class UsernameToken:
    """The parts of a ``wsse:UsernameToken``; ``digest`` False means PasswordText."""

    username: str
    password: str
    digest: bool
    nonce: bytes | None
    created: str | None


def username_token(security: etree._Element | None) -> UsernameToken | None:
    """The UsernameToken inside a ``wsse:Security`` header block, None without one."""
    if security is None:
        return None
    token = security.find(f"{{{WSSE_NS}}}UsernameToken")
    if token is None:
        return None
    username = token.findtext(f"{{{WSSE_NS}}}Username")
    password = token.find(f"{{{WSSE_NS}}}Password")
    if not username or password is None:
        raise NotAuthorized("UsernameToken without Username or Password")
    kind = password.get("Type", PASSWORD_TEXT)
    if kind not in (PASSWORD_DIGEST, PASSWORD_TEXT):
        raise NotAuthorized("Unsupported password type")
    nonce_text = token.findtext(f"{{{WSSE_NS}}}Nonce")
    nonce = None
    if nonce_text is not None:
        try:
            nonce = base64.b64decode(nonce_text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise NotAuthorized("Nonce is not base64") from exc
        if not nonce or len(nonce) > _MAX_NONCE_BYTES:
            raise NotAuthorized("Nonce of unacceptable length")
    created = token.findtext(f"{{{WSU_NS}}}Created")
    return UsernameToken(
        username=username.strip(),
        password=(password.text or "").strip(),
        digest=kind == PASSWORD_DIGEST,
        nonce=nonce,
        created=created.strip() if created is not None else None,
    )


def _replay_key(token: UsernameToken) -> bytes:
    """A hash of the token's proof, each part length-prefixed so no two proofs share it."""
    digest = hashlib.sha256()
    for part in (token.nonce or b"", (token.created or "").encode(), token.password.encode()):
        digest.update(struct.pack(">I", len(part)) + part)
    return digest.digest()


class UsernameTokenVerifier:
    """Checks UsernameTokens against the users' passwords, the clock and accepted tokens."""

    def __init__(
        self,
        *,
        window: float = 300.0,
        replay_capacity: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.replay_capacity = replay_capacity
        self._clock = clock
        # token key -> time it may be forgotten; insertion order is expiry order (_remember).
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def verify(self, token: UsernameToken, password_of: PasswordOf) -> str:
        """The authenticated user name; NotAuthorized when the token does not prove it."""
        now = self._clock()
        if token.created is not None:
            self._check_created(token.created, now)
        password = password_of(token.username)
        if password is None:
            raise NotAuthorized()
        if token.digest:
            if token.nonce is None or token.created is None:
                raise NotAuthorized("PasswordDigest needs Nonce and Created")
            raw = token.nonce + token.created.encode() + password.encode()
            expected = base64.b64encode(hashlib.sha1(raw, usedforsecurity=False).digest())
            ok = hmac.compare_digest(expected, token.password.encode())
        else:
            ok = hmac.compare_digest(password.encode(), token.password.encode())
        if not ok:
            raise NotAuthorized()
        if token.nonce is not None:  # a PasswordText token without one proves its password
            self._remember(_replay_key(token), now)
        return token.username

    def _check_created(self, created: str, now: float) -> None:
        try:
            stamp = dt.datetime.fromisoformat(created)
        except ValueError as exc:
            raise NotAuthorized("Created is not a timestamp") from exc
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)  # clients that omit the zone mean UTC
        if abs(stamp.timestamp() - now) > self.window:
            raise NotAuthorized("Created is outside the accepted time window")

    def _remember(self, key: bytes, now: float) -> None:
        # A token accepted now has Created >= now - window, so it passes the Created check
        # until now + 2 * window at most; past that the check alone refuses a replay. Every
        # entry gets the same lifetime, so the oldest entry always expires first.
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if key in self._seen:
            raise NotAuthorized("Token already used")
        if len(self._seen) >= self.replay_capacity:
            self._seen.popitem(last=False)  # bounded memory beats remembering a flood
        self._seen[key] = now + 2 * self.window
