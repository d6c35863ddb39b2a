"""Server-side Basic and Digest checks, verified against aiohttp's own Digest client."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
from aiohttp import web

from bridge.httpauth import DigestAuthority, basic_credentials, parse_authorization


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


async def test_stale_or_forged_nonce_is_refused() -> None:
    authority = DigestAuthority("r", nonce_lifetime=0.2)
    nonce = authority.new_nonce()
    assert authority.nonce_is_fresh(nonce)
    stamp, _, mac = nonce.partition(":")
    assert not authority.nonce_is_fresh(f"{int(stamp) + 1}:{mac}")  # forged stamp
    assert not DigestAuthority("r").nonce_is_fresh(nonce)  # another server's key
    await asyncio.sleep(0.3)
    assert not authority.nonce_is_fresh(nonce)  # expired


async def test_aiohttp_digest_client_is_accepted_and_wrong_password_refused() -> None:
    authority = DigestAuthority("cam")

    async def handler(request: web.Request) -> web.Response:
        user = authority.verify(
            request.method,
            request.headers.get("Authorization", ""),
            lambda u: "right" if u == "admin" else None,
        )
        if user is None:
            return web.Response(status=401, headers={"WWW-Authenticate": authority.challenge()})
        return web.Response(text=f"hello {user}")

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
            async with (
                aiohttp.ClientSession(middlewares=(middleware,)) as session,
                session.get(url) as response,
            ):
                assert response.status == expected
    finally:
        await runner.cleanup()
