"""The camera HTTP choke point against real servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from conftest import Serve

from bridge.cameras.http import AuthScheme, CameraHttp, Credentials, HttpTimeouts
from bridge.errors import (
    AuthenticationFailed,
    BadResponse,
    CameraBusy,
    CameraUnreachable,
    EndpointNotFound,
    PermissionDenied,
)
from bridge.httpauth import DigestAuthority, basic_credentials

USER, PASSWORD = "admin", "s3cret-pw"


def camera_app(scheme: str) -> tuple[web.Application, list[str]]:
    """A camera that demands Basic or Digest; records each Authorization it saw."""
    digest = DigestAuthority("cam")
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        seen.append(header.split(" ", 1)[0])
        if scheme == "digest":
            ok = digest.verify(request.method, header, lambda u: PASSWORD if u == USER else None)
            challenge = digest.challenge()
        else:
            ok = basic_credentials(header) == (USER, PASSWORD)
            challenge = 'Basic realm="cam"'
        if not ok:
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(text=f"ok {request.query.get('x', '')}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app, seen


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_auth_scheme_is_learned_from_the_challenge_once(serve: Serve, scheme: str) -> None:
    app, seen = camera_app(scheme)
    url = await serve(app)
    async with CameraHttp(url, Credentials(USER, PASSWORD)) as http:
        assert await http.get_text("/a.cgi", {"x": "1"}) == "ok 1"
        assert await http.get_text("/b.cgi") == "ok "
        assert http.auth is AuthScheme(scheme)
    # One unauthenticated attempt taught the scheme; later requests authenticate directly.
    assert seen[0] == ""
    assert seen[1:] == [scheme.capitalize()] * (len(seen) - 1)
    assert len(seen) <= 4


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_concurrent_first_requests_all_succeed(serve: Serve, scheme: str) -> None:
    app, _ = camera_app(scheme)
    url = await serve(app)
    async with CameraHttp(url, Credentials(USER, PASSWORD)) as http:
        replies = await asyncio.gather(*(http.get_text("/p.cgi", {"x": str(i)}) for i in range(5)))
    assert replies == [f"ok {i}" for i in range(5)]


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_wrong_password_is_an_auth_error_without_the_password(
    serve: Serve, scheme: str
) -> None:
    app, _ = camera_app(scheme)
    url = await serve(app)
    async with CameraHttp(url, Credentials(USER, "wrong-pw")) as http:
        with pytest.raises(AuthenticationFailed) as caught:
            await http.get("/param.cgi")
    assert "wrong-pw" not in str(caught.value)
    assert "/param.cgi" in str(caught.value)


async def test_missing_credentials_say_so(serve: Serve) -> None:
    app, _ = camera_app("basic")
    url = await serve(app)
    async with CameraHttp(url) as http:
        with pytest.raises(AuthenticationFailed, match="needs credentials"):
            await http.get("/x")


async def test_query_credentials_go_in_the_query_and_not_in_errors(serve: Serve) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/get_status.cgi", handler)
    url = await serve(app)
    creds = Credentials(USER, PASSWORD)
    async with CameraHttp(url, creds, auth=AuthScheme.QUERY) as http:
        with pytest.raises(EndpointNotFound) as caught:
            await http.get("/get_status.cgi", {"a": "1"})
    assert seen == [{"a": "1", "user": USER, "pwd": PASSWORD}]
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, PermissionDenied),
        (404, EndpointNotFound),
        (503, CameraBusy),
        (500, BadResponse),
    ],
)
async def test_statuses_map_to_typed_errors(
    serve: Serve, status: int, error: type[Exception]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status)

    app = web.Application()
    app.router.add_get("/x", handler)
    url = await serve(app)
    async with CameraHttp(url) as http:
        with pytest.raises(error):
            await http.get("/x")


@asynccontextmanager
async def raw_server(reply: bytes, *, hold: float = 0.0) -> AsyncIterator[str]:
    """A TCP server that answers every connection with fixed bytes, then closes."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(hold)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_http10_reply_without_length_is_read_to_close() -> None:
    reply = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nvar a=1;\n"
    async with raw_server(reply) as url, CameraHttp(url) as http:
        answer = await http.get("/get_params.cgi")
    assert answer.text() == "var a=1;\n"


async def test_garbage_reply_is_a_bad_response() -> None:
    garbage = b"\x00\x01garbage that is not HTTP\r\n\r\n"
    async with raw_server(garbage) as url, CameraHttp(url) as http:
        with pytest.raises(BadResponse):
            await http.get("/x")


async def test_silent_camera_times_out() -> None:
    timeouts = HttpTimeouts(connect=1, read=0.3)
    async with (
        raw_server(b"HTTP/1.0 200 OK\r\n", hold=5) as url,
        CameraHttp(url, timeouts=timeouts) as http,
    ):
        with pytest.raises(CameraUnreachable, match="timed out"):
            await http.get("/x")


async def test_refused_connection_is_unreachable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with CameraHttp(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(CameraUnreachable, match="connection failed"):
            await http.get("/x")


async def test_concurrent_requests_are_limited_per_camera(serve: Serve) -> None:
    active = 0
    peak = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/x", handler)
    url = await serve(app)
    async with CameraHttp(url, max_concurrent=2) as http:
        await asyncio.gather(*(http.get("/x") for _ in range(6)))
    assert peak == 2


async def test_fingerprint_reads_server_and_realm_without_credentials(serve: Serve) -> None:
    async def handler(request: web.Request) -> web.Response:
        assert "Authorization" not in request.headers
        return web.Response(
            status=401,
            headers={"Server": "Boa/0.94.14rc21", "WWW-Authenticate": 'Basic realm="IPCam"'},
        )

    app = web.Application()
    app.router.add_get("/", handler)
    url = await serve(app)
    async with CameraHttp(url, Credentials(USER, PASSWORD)) as http:
        fingerprint = await http.fingerprint()
    assert (fingerprint.server, fingerprint.realm, fingerprint.challenge) == (
        "Boa/0.94.14rc21",
        "IPCam",
        "basic",
    )


def test_credentials_in_the_url_move_out_of_it() -> None:
    http = CameraHttp("http://bob:pw123@192.0.2.1:8080/")
    assert http.credentials == Credentials("bob", "pw123")
    assert "pw123" not in str(http.base_url)
    assert "pw123" not in repr(http.credentials)
    assert http.display_name == "192.0.2.1:8080"
