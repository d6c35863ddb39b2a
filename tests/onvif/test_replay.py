"""Replays, tried as an attacker on the LAN would: a captured HTTP Digest header sent again (with
another body, or as it was), and a captured WS-Security token sent to another camera device of
the same gateway. And the clients that must keep working: aiohttp's Digest client, which
reuses its nonce with an increasing nc, and C clients that send the same WS-Security nonce
with a fresh Created in every request."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    Device,
    OpenDevice,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from test_onvif_server import body_element, envelope, fault_subcodes, post, username_token

from bridge.cameras.base import Dialect
from bridge.httpauth import parse_authorization
from bridge.onvif.soap import Service

TDS = Service.DEVICE.namespace
TT = "http://www.onvif.org/ver10/schema"
INFO = "<tds:GetDeviceInformation/>"
GET_INFO = envelope(INFO)
CREATE_ADMIN = envelope(
    f'<tds:CreateUsers xmlns:tt="{TT}"><tds:User><tt:Username>mallory</tt:Username>'
    "<tt:Password>Mallory-Pw-1</tt:Password><tt:UserLevel>Administrator</tt:UserLevel>"
    "</tds:User></tds:CreateUsers>"
)


class Recorder:
    """A client middleware (placed after the Digest one) keeping each request's
    Authorization header and the status it got: what an eavesdropper on the LAN sees."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, int]] = []

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        response = await handler(request)
        self.exchanges.append((request.headers.get("Authorization", ""), response.status))
        return response


def device_url(device: Device) -> str:
    return f"http://127.0.0.1:{device.port}{Service.DEVICE.path}"


async def send(url: str, payload: bytes, authorization: str) -> tuple[int, Mapping[str, str]]:
    """POST a SOAP request with a given Authorization header, as a replaying attacker would."""
    headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=payload, headers={**headers, "Authorization": authorization}) as r,
    ):
        await r.read()
        return r.status, dict(r.headers)


async def test_a_captured_digest_header_cannot_be_replayed(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.HAMA)
    url = device_url(device)
    recorder = Recorder()
    digest = aiohttp.DigestAuthMiddleware(GATEWAY_USER, GATEWAY_PASSWORD)
    async with aiohttp.ClientSession(middlewares=(digest, recorder)) as session:
        status, _, _ = await post(url, GET_INFO, session=session)  # a harmless call
    assert status == 200
    captured, _ = recorder.exchanges[-1]
    assert captured.startswith("Digest ")

    # The attack: the same header, with a body that would make the attacker an Administrator.
    status, headers = await send(url, CREATE_ADMIN, captured)
    assert status == 401
    assert "mallory" not in device.gateway.users
    # ... and the harmless call itself, sent again.
    status, headers = await send(url, GET_INFO, captured)
    assert status == 401
    scheme, challenge = parse_authorization(headers["WWW-Authenticate"])
    assert scheme == "digest"
    assert challenge["qop"] == "auth"
    assert challenge["stale"] == "true"  # the answer was right, only its nonce was spent


async def test_a_digest_client_reusing_its_nonce_keeps_working(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.HAMA)
    recorder = Recorder()
    digest = aiohttp.DigestAuthMiddleware(GATEWAY_USER, GATEWAY_PASSWORD)
    async with aiohttp.ClientSession(middlewares=(digest, recorder)) as session:
        for _ in range(5):
            status, _, payload = await post(device_url(device), GET_INFO, session=session)
            assert status == 200
            assert body_element(payload).findtext(f"{{{TDS}}}Model") == device.context.info.model
    statuses = [status for _, status in recorder.exchanges]
    assert statuses == [401] + [200] * 5  # one challenge, then one nonce for every call
    answers = [parse_authorization(header)[1] for header, _ in recorder.exchanges[1:]]
    assert len({answer["nonce"] for answer in answers}) == 1
    assert [int(answer["nc"], 16) for answer in answers] == [1, 2, 3, 4, 5]


async def test_a_nonce_from_another_camera_device_is_worthless(open_device: OpenDevice) -> None:
    first, second = await open_device.behind_one_gateway(Dialect.HAMA, Dialect.IPCAMCGI)
    recorder = Recorder()
    digest = aiohttp.DigestAuthMiddleware(GATEWAY_USER, GATEWAY_PASSWORD)
    async with aiohttp.ClientSession(middlewares=(digest, recorder)) as session:
        await post(device_url(first), GET_INFO, session=session)
    status, headers = await send(device_url(second), GET_INFO, recorder.exchanges[-1][0])
    assert status == 401
    assert parse_authorization(headers["WWW-Authenticate"])[1]["stale"] == "true"


async def test_a_ws_security_token_is_accepted_once_by_the_whole_gateway(
    open_device: OpenDevice,
) -> None:
    first, second = await open_device.behind_one_gateway(Dialect.HAMA, Dialect.IPCAMCGI)
    token = username_token(GATEWAY_PASSWORD, user=GATEWAY_USER)
    status, _, _ = await post(device_url(first), envelope(INFO, token))
    assert status == 200
    for device in (second, first):  # the other camera device, then the same one again
        status, _, reply = await post(device_url(device), envelope(INFO, token))
        assert (status, fault_subcodes(reply)) == (400, ["env:Sender", "ter:NotAuthorized"])


async def test_a_client_sending_one_nonce_with_a_fresh_created_is_served(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.HAMA)
    nonce = os.urandom(16)  # what such a client sends in every request
    start = dt.datetime.now(dt.UTC)
    tokens = [
        username_token(GATEWAY_PASSWORD, user=GATEWAY_USER, nonce=nonce, created=start + step)
        for step in (dt.timedelta(seconds=n) for n in range(5))
    ]
    for token in tokens:
        status, _, reply = await post(device_url(device), envelope(INFO, token))
        assert status == 200
        assert body_element(reply).findtext(f"{{{TDS}}}Model") == device.context.info.model
    # The exact token of one of those calls, sent again, is a replay.
    status, _, reply = await post(device_url(device), envelope(INFO, tokens[2]))
    assert (status, fault_subcodes(reply)) == (400, ["env:Sender", "ter:NotAuthorized"])
