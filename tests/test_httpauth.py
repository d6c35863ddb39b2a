"""Server-side Basic and Digest checks, verified against aiohttp's own Digest client and
against answers computed here the way RFC 7616 clients compute them."""

from __future__ import annotations

import base64
import hashlib

import aiohttp
import pytest
from aiohttp import web

from bridge.httpauth import DigestAuthority, DigestVerdict, basic_credentials, parse_authorization

PASSWORDS = {"admin": "right"}
URI = "/onvif/device_service"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(
    challenge: str,
    *,
    nc: int | str = 1,
    password: str = "right",
    qop: bool = True,
    nonce: str | None = None,
) -> str:
    """The Authorization value a Digest client sends for ``challenge`` (MD5; ``qop=auth``
    unless told otherwise), as admin for POST ``URI``."""
    _, params = parse_authorization(challenge)
    realm, nonce = params["realm"], nonce or params["nonce"]
    ha1 = _md5(f"admin:{realm}:{password}")
    ha2 = _md5(f"POST:{URI}")
    value = f'Digest username="admin", realm="{realm}", nonce="{nonce}", uri="{URI}"'
    if not qop:
        return value + f', response="{_md5(f"{ha1}:{nonce}:{ha2}")}"'
    count = f"{nc:08x}" if isinstance(nc, int) else nc
    response = _md5(f"{ha1}:{nonce}:{count}:c0ffee:auth:{ha2}")
    return value + f', qop=auth, nc={count}, cnonce="c0ffee", response="{response}"'


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authority(clock: Clock, max_nonces: int = 1024) -> DigestAuthority:
    """A replay-proof authority as an ONVIF device has, on the test's clock."""
    return DigestAuthority(
        "cam", replay_proof=True, nonce_lifetime=60.0, max_nonces=max_nonces, clock=clock
    )


ADMIN = DigestVerdict("admin")
STALE = DigestVerdict(None, stale=True)
NOBODY = DigestVerdict(None)


def test_parse_authorization_handles_quotes_commas_and_tokens() -> None:
    scheme, params = parse_authorization(
        'Digest username="a,b", realm="r", nonce="n", uri="/x?y=1,2", qop=auth, nc=00000001'
    )
    assert scheme == "digest"
    assert params["username"] == "a,b"
    assert params["uri"] == "/x?y=1,2"
    assert params["qop"] == "auth"
    assert params["nc"] == "00000001"


def test_basic_credentials() -> None:
    token = base64.b64encode(b"admin:pa:ss").decode()
    assert basic_credentials(f"Basic {token}") == ("admin", "pa:ss")
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Digest x=1") is None


def test_stale_or_forged_nonce_is_refused() -> None:
    clock = Clock()
    issuer = DigestAuthority("r", nonce_lifetime=0.2, clock=clock)
    nonce = issuer.new_nonce()
    assert issuer.nonce_is_fresh(nonce)
    stamp, _, rest = nonce.partition(":")
    assert not issuer.nonce_is_fresh(f"{int(stamp) + 1}:{rest}")  # forged stamp
    assert not DigestAuthority("r").nonce_is_fresh(nonce)  # another server's key
    clock.now += 0.3
    assert not issuer.nonce_is_fresh(nonce)  # expired


def test_each_nonce_count_is_accepted_once_and_only_increasing() -> None:
    digest = authority(Clock())
    challenge = digest.challenge()
    assert digest.check("POST", answer(challenge, nc=1), PASSWORDS.get) == ADMIN
    assert digest.check("POST", answer(challenge, nc=1), PASSWORDS.get) == STALE  # replayed
    assert digest.check("POST", answer(challenge, nc=3), PASSWORDS.get) == ADMIN
    assert digest.check("POST", answer(challenge, nc=2), PASSWORDS.get) == STALE  # went back
    assert digest.check("POST", answer(challenge, nc=4), PASSWORDS.get) == ADMIN
    # A wrong password is not stale: renewing the nonce would not help.
    assert digest.check("POST", answer(challenge, nc=5, password="x"), PASSWORDS.get) == NOBODY


def test_a_replay_proof_authority_requires_qop_the_lenient_one_does_not() -> None:
    clock = Clock()
    strict, lenient = authority(clock), DigestAuthority("cam", clock=clock)
    for malformed in (answer(strict.challenge(), qop=False), answer(strict.challenge(), nc="zz")):
        assert strict.check("POST", malformed, PASSWORDS.get) == NOBODY
    # RTSP clients (live555, VLC) answer without qop and reuse the nonce for every request.
    without_qop = answer(lenient.challenge(), qop=False)
    for _ in range(3):
        assert lenient.check("POST", without_qop, PASSWORDS.get) == ADMIN


def test_an_expired_nonce_or_another_authoritys_is_stale() -> None:
    clock = Clock()
    digest = authority(clock)
    challenge = digest.challenge()
    assert digest.check("POST", answer(challenge, nc=1), PASSWORDS.get) == ADMIN
    clock.now += 61
    assert digest.check("POST", answer(challenge, nc=2), PASSWORDS.get) == STALE
    assert digest.check("POST", answer(digest.challenge()), PASSWORDS.get) == ADMIN
    other = authority(clock)  # another device: its own key
    assert other.check("POST", answer(digest.challenge()), PASSWORDS.get) == STALE


def test_the_table_of_nonces_is_bounded_and_forgetting_reopens_no_replay() -> None:
    clock = Clock()
    digest = authority(clock, max_nonces=2)
    challenges = []
    for _ in range(3):
        challenges.append(challenge := digest.challenge())
        assert digest.check("POST", answer(challenge), PASSWORDS.get) == ADMIN
        clock.now += 1
    assert len(digest._in_use) == 2
    first, second, third = challenges
    # The first nonce was pushed out: its next answer is refused, never taken as new.
    assert digest.check("POST", answer(first, nc=1), PASSWORDS.get) == STALE
    assert digest.check("POST", answer(first, nc=2), PASSWORDS.get) == STALE
    assert digest.check("POST", answer(second, nc=2), PASSWORDS.get) == ADMIN
    assert digest.check("POST", answer(third, nc=1), PASSWORDS.get) == STALE  # used already
    clock.now += 61  # expired nonces leave the table
    assert digest.check("POST", answer(digest.challenge()), PASSWORDS.get) == ADMIN
    assert len(digest._in_use) == 1


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="admin", realm="cam", nonce="\udcff:é", uri="/", response="é"',
        'Digest username="é", realm="cam", nonce="1:2:3", uri="/", qop=auth, nc=ÿÿÿÿÿÿÿÿ',
        "Digest ",
        "Digest realm",
    ],
)
def test_hostile_values_are_refused_without_raising(value: str) -> None:
    assert authority(Clock()).check("POST", value, PASSWORDS.get) == NOBODY


@pytest.mark.parametrize("replay_proof", [False, True], ids=["lenient", "replay-proof"])
async def test_aiohttp_digest_client_is_accepted_and_wrong_password_refused(
    replay_proof: bool,
) -> None:
    digest = DigestAuthority("cam", replay_proof=replay_proof)
    challenges = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal challenges
        verdict = digest.check(
            request.method, request.headers.get("Authorization", ""), PASSWORDS.get
        )
        if verdict.user is None:
            challenges += 1
            challenge = digest.challenge(stale=verdict.stale)
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(text=f"hello {verdict.user}")

    app = web.Application()
    app.router.add_get("/x", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/x?q=1"
    try:
        for password, expected in (("right", 200), ("wrong", 401)):
            middleware = aiohttp.DigestAuthMiddleware("admin", password)
            async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
                for _ in range(3):  # the client reuses its nonce, counting up
                    async with session.get(url) as response:
                        assert response.status == expected
    finally:
        await runner.cleanup()
    assert challenges == 1 + 3 * 2  # the right password needed one; each wrong try two
