"""HTTP endpoints on ``gateway.web_port``: ``/snapshot/<camera>.jpg`` and ``/healthz``.

Snapshots need the gateway's users (Basic or Digest, like RTSP); ``/healthz`` is open so
container health checks need no secret.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.errors import CameraError
from bridge.httpauth import Authenticator

log = logging.getLogger(__name__)

# camera name -> a coroutine giving its current JPEG, or None for an unknown/unready camera
SnapshotLookup = Callable[[str], Callable[[], Awaitable[bytes]] | None]


def web_app(snapshots: SnapshotLookup, auth: Authenticator) -> web.Application:
    async def snapshot(request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        if auth.users and auth.authenticate(request.method, authorization) is None:
            response = web.Response(status=401, text="authentication required\n")
            for challenge in auth.challenges(authorization):
                response.headers.add("WWW-Authenticate", challenge)
            return response
        take = snapshots(request.match_info["camera"])
        if take is None:
            raise web.HTTPNotFound(text="no such camera, or it is not connected yet\n")
        try:
            jpeg = await take()
        except (CameraError, TimeoutError) as exc:
            log.info("snapshot of %s failed: %s", request.match_info["camera"], exc)
            raise web.HTTPServiceUnavailable(
                text="the camera did not deliver a picture\n", headers={"Retry-After": "5"}
            ) from exc
        return web.Response(
            body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/snapshot/{camera}.jpg", snapshot)
    app.router.add_get("/healthz", healthz)
    return app
