"""WS-Security UsernameToken checks, against tokens made by zeep's own client-side signer."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree
from zeep.wsse.username import UsernameToken as ZeepUsernameToken

from bridge.errors import NotAuthorized
from bridge.onvif.security import UsernameTokenVerifier, username_token
from bridge.onvif.soap import WSSE_NS

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
PASSWORDS = {"admin": "s3cret"}


def signed(
    password: str = "s3cret",
    *,
    use_digest: bool = True,
    created: dt.datetime | None = None,
    nonce: str | None = None,
    user: str = "admin",
) -> etree._Element:
    """The wsse:Security block zeep's client puts in an envelope."""
    envelope = etree.fromstring(f'<s:Envelope xmlns:s="{SOAP12}"><s:Body/></s:Envelope>')
    token = ZeepUsernameToken(user, password, use_digest=use_digest, created=created, nonce=nonce)
    envelope, _ = token.apply(envelope, {})
    security = envelope.find(f"{{{SOAP12}}}Header/{{{WSSE_NS}}}Security")
    assert security is not None
    return security


def test_zeep_password_digest_and_text_are_accepted() -> None:
    verifier = UsernameTokenVerifier()
    for use_digest in (True, False):
        token = username_token(signed(use_digest=use_digest))
        assert token is not None
        assert token.digest is use_digest
        assert verifier.verify(token, PASSWORDS.get) == "admin"


def test_wrong_password_and_unknown_user_are_refused() -> None:
    verifier = UsernameTokenVerifier()
    token = username_token(signed("wrong"))
    assert token is not None
    with pytest.raises(NotAuthorized):
        verifier.verify(token, PASSWORDS.get)
    token = username_token(signed())
    assert token is not None
    with pytest.raises(NotAuthorized):
        verifier.verify(token, {}.get)


def test_created_window_is_configurable() -> None:
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=90)
    token = username_token(signed(created=old))
    assert token is not None
    with pytest.raises(NotAuthorized, match="time window"):
        UsernameTokenVerifier(window=60).verify(token, PASSWORDS.get)
    assert UsernameTokenVerifier(window=120).verify(token, PASSWORDS.get) == "admin"


def test_replay_cache_forgets_only_what_the_clock_check_refuses_anyway() -> None:
    now = [dt.datetime.now(dt.UTC).timestamp()]
    verifier = UsernameTokenVerifier(window=300, clock=lambda: now[0])
    token = username_token(signed())
    assert token is not None
    verifier.verify(token, PASSWORDS.get)
    now[0] += 299
    with pytest.raises(NotAuthorized, match="already used"):
        verifier.verify(token, PASSWORDS.get)
    now[0] += 2
    with pytest.raises(NotAuthorized, match="time window"):
        verifier.verify(token, PASSWORDS.get)


def test_a_fixed_nonce_with_a_fresh_created_is_served_an_exact_replay_is_not() -> None:
    verifier = UsernameTokenVerifier()
    start = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    tokens = [
        username_token(signed(nonce="same-every-time", created=start + dt.timedelta(seconds=n)))
        for n in range(5)
    ]
    for token in tokens:
        assert token is not None
        assert verifier.verify(token, PASSWORDS.get) == "admin"
    replayed = tokens[3]
    assert replayed is not None
    with pytest.raises(NotAuthorized, match="already used"):
        verifier.verify(replayed, PASSWORDS.get)


def test_the_same_proof_under_another_name_is_a_replay() -> None:
    # The digest does not cover the user name: a user with the same password must not
    # get a token of another user's accepted once more.
    verifier = UsernameTokenVerifier()
    security = signed()
    token = username_token(security)
    assert token is not None
    assert verifier.verify(token, PASSWORDS.get) == "admin"
    name = security.find(f".//{{{WSSE_NS}}}Username")
    assert name is not None
    name.text = "twin"
    twin = username_token(security)
    assert twin is not None
    with pytest.raises(NotAuthorized, match="already used"):
        verifier.verify(twin, {"twin": "s3cret"}.get)


def test_replay_cache_is_bounded() -> None:
    verifier = UsernameTokenVerifier(replay_capacity=3)
    tokens = [username_token(signed()) for _ in range(5)]
    for token in tokens:
        assert token is not None
        verifier.verify(token, PASSWORDS.get)
    assert len(verifier._seen) == 3


def test_digest_without_nonce_or_malformed_token_is_refused() -> None:
    security = signed()
    nonce = security.find(f".//{{{WSSE_NS}}}Nonce")
    assert nonce is not None
    nonce.getparent().remove(nonce)
    token = username_token(security)
    assert token is not None
    with pytest.raises(NotAuthorized, match="Nonce and Created"):
        UsernameTokenVerifier().verify(token, PASSWORDS.get)
    broken = signed()
    nonce = broken.find(f".//{{{WSSE_NS}}}Nonce")
    assert nonce is not None
    nonce.text = "not base64!"
    with pytest.raises(NotAuthorized):
        username_token(broken)
