"""HTTP endpoints on ``gateway.web_port``: ``/`` (the status page and its static files),
``GET /api/cameras`` (what the page shows, as JSON), ``/live/<camera>.mjpg`` (the camera's own
pictures, :mod:`bridge.web.live`), the page's PTZ controls (:mod:`bridge.web.api`),
``/snapshot/<camera>.jpg``, ``/metrics`` (:mod:`bridge.web.metrics`), ``/healthz`` and
``/readyz``.

Everything but ``/healthz`` (the process serves) and ``/readyz`` (every camera online; else 503
naming the ones that are not, with their state but not their errors) needs the gateway's users
(Basic or Digest, like RTSP; Prometheus scrapes with Basic), checked in one middleware; those
two are open so container health checks and orchestrators need no secret. The status page is
a few static files (no build step, nothing from elsewhere: a Content-Security-Policy allows
only this origin) whose script renders ``/api/cameras`` every second; it is what UPnP
descriptions name as their presentation URL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bridge import __version__
from bridge.errors import CameraError
from bridge.httpauth import Authenticator
from bridge.web.api import PtzLookup, ptz_routes
from bridge.web.live import FramesLookup, LiveViews
from bridge.web.status import Status, Viewer

log = logging.getLogger(__name__)

# camera name -> a coroutine giving its current JPEG, or None for an unknown/unready camera
SnapshotLookup = Callable[[str], Callable[[], Awaitable[bytes]] | None]
StatusLookup = Callable[[str], Status]  # the host the client reached the gateway at -> status
# The cameras that are not ready, as "<camera>: <state>" lines; none when all are.
Readiness = Callable[[], Sequence[str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# The page's files, served from memory: a fixed list, so no request names a file path.
STATIC_FILES = {
    "/": ("index.html", "text/html"),
    "/static/app.js": ("app.js", "text/javascript"),
    "/static/style.css": ("style.css", "text/css"),
}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def web_app(
    snapshots: SnapshotLookup,
    auth: Authenticator,
    status: StatusLookup | None = None,
    *,
    metrics: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
    live: FramesLookup | None = None,
    ptz: PtzLookup | None = None,
) -> web.Application:
    @web.middleware
    async def authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
        """The one place the web port checks users: a 401 with the challenges for a request
        without valid credentials, but on the open paths."""
        authorization = request.headers.get("Authorization", "")
        if (
            request.path in OPEN_PATHS
            or not auth.users
            or auth.authenticate(request.method, authorization) is not None
        ):
            return await handler(request)
        response = web.Response(status=401, text="authentication required\n")
        for challenge in auth.challenges(authorization):
            response.headers.add("WWW-Authenticate", challenge)
        return response

    async def snapshot(request: web.Request) -> web.StreamResponse:
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

    async def readyz(request: web.Request) -> web.Response:
        assert readiness is not None
        not_ready = readiness()
        if not_ready:
            return web.Response(status=503, text="".join(f"{line}\n" for line in not_ready))
        return web.Response(text="ready\n")

    async def metrics_page(request: web.Request) -> web.Response:
        assert metrics is not None
        return web.Response(
            body=generate_latest(metrics),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    files = {
        path: (resources.files(__package__).joinpath("static", name).read_bytes(), kind)
        for path, (name, kind) in STATIC_FILES.items()
    }

    async def static_file(request: web.Request) -> web.Response:
        body, kind = files[request.path]
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=PAGE_HEADERS)

    live_views = LiveViews(live) if live is not None else None

    async def cameras(request: web.Request) -> web.Response:
        assert status is not None
        now = status(request.url.host or "")
        if live_views is not None:
            now = replace(
                now,
                cameras=[
                    replace(
                        camera,
                        live_viewers=tuple(
                            Viewer(address, "mjpeg") for address in live_views.watching(camera.name)
                        ),
                    )
                    for camera in now.cameras
                ],
            )
        return web.json_response(
            {"version": __version__, **now.as_json()}, headers={"Cache-Control": "no-store"}
        )

    app = web.Application(middlewares=[authenticated])
    if status is not None:
        for path in STATIC_FILES:
            app.router.add_get(path, static_file)
        app.router.add_get("/api/cameras", cameras)
    if live_views is not None:
        app.router.add_get("/live/{camera}.mjpg", live_views.handle)

        async def end_live_views(_: web.Application) -> None:
            await live_views.close()

        app.on_shutdown.append(end_live_views)
    if ptz is not None:
        app.add_routes(ptz_routes(ptz))
    app.router.add_get("/snapshot/{camera}.jpg", snapshot)
    app.router.add_get("/healthz", healthz)
    if readiness is not None:
        app.router.add_get("/readyz", readyz)
    if metrics is not None:
        app.router.add_get("/metrics", metrics_page)
    return app
