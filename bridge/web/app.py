"""HTTP endpoints on ``gateway.web_port``: ``/`` (the status page), ``/snapshot/<camera>.jpg``,
``/metrics`` (:mod:`bridge.web.metrics`), ``/healthz`` and ``/readyz``.

The status page, snapshots and metrics need the gateway's users (Basic or Digest, like RTSP;
Prometheus scrapes with Basic). ``/healthz`` (the process serves) and ``/readyz`` (every camera
online; else 503 naming the ones that are not, with their state but not their errors) are open
so container health checks and orchestrators need no secret. The status page lists every
camera with its state and addresses (never a credential) and the cameras LAN discovery found
that are not configured; it is what UPnP descriptions name as their presentation URL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from html import escape

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bridge import __version__
from bridge.errors import CameraError
from bridge.httpauth import Authenticator

log = logging.getLogger(__name__)

# camera name -> a coroutine giving its current JPEG, or None for an unknown/unready camera
SnapshotLookup = Callable[[str], Callable[[], Awaitable[bytes]] | None]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """One line of the status page."""

    name: str
    state: str  # "ready", or what keeps it from being ready
    dialect: str = ""
    model: str = ""
    addresses: tuple[str, ...] = ()  # its RTSP, snapshot and ONVIF URLs, as handed out


@dataclass(frozen=True, slots=True)
class FoundCamera:
    url: str
    dialect: str
    model: str


@dataclass(frozen=True, slots=True)
class Status:
    cameras: Sequence[CameraStatus]
    found: Sequence[FoundCamera]


StatusLookup = Callable[[str], Status]  # the host the client reached the gateway at -> status
# The cameras that are not ready, as "<camera>: <state>" lines; none when all are.
Readiness = Callable[[], Sequence[str]]


def web_app(
    snapshots: SnapshotLookup,
    auth: Authenticator,
    status: StatusLookup | None = None,
    *,
    metrics: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
) -> web.Application:
    def refused(request: web.Request) -> web.Response | None:
        """The 401 a request without valid credentials gets, else None."""
        authorization = request.headers.get("Authorization", "")
        if not auth.users or auth.authenticate(request.method, authorization) is not None:
            return None
        response = web.Response(status=401, text="authentication required\n")
        for challenge in auth.challenges(authorization):
            response.headers.add("WWW-Authenticate", challenge)
        return response

    async def snapshot(request: web.Request) -> web.StreamResponse:
        if (response := refused(request)) is not None:
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

    async def readyz(request: web.Request) -> web.Response:
        assert readiness is not None
        not_ready = readiness()
        if not_ready:
            return web.Response(status=503, text="".join(f"{line}\n" for line in not_ready))
        return web.Response(text="ready\n")

    async def metrics_page(request: web.Request) -> web.Response:
        if (response := refused(request)) is not None:
            return response
        assert metrics is not None
        return web.Response(
            body=generate_latest(metrics),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    async def status_page(request: web.Request) -> web.Response:
        if (response := refused(request)) is not None:
            return response
        assert status is not None
        return web.Response(
            text=render_status(status(request.url.host or "")),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    app = web.Application()
    if status is not None:
        app.router.add_get("/", status_page)
    app.router.add_get("/snapshot/{camera}.jpg", snapshot)
    app.router.add_get("/healthz", healthz)
    if readiness is not None:
        app.router.add_get("/readyz", readyz)
    if metrics is not None:
        app.router.add_get("/metrics", metrics_page)
    return app


def render_status(status: Status) -> str:
    """The status page: plain HTML, every value escaped (names and models come from cameras
    and config files)."""
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{escape(c.state)}</td><td>{escape(c.dialect)}</td>"
        f"<td>{escape(c.model)}</td><td>{'<br>'.join(escape(a) for a in c.addresses)}</td></tr>"
        for c in status.cameras
    )
    found = "".join(
        f"<tr><td>{escape(f.url)}</td><td>{escape(f.dialect)}</td><td>{escape(f.model)}</td></tr>"
        for f in status.found
    )
    found_table = (
        "<h2>Found on the LAN, not configured</h2><table><tr><th>camera</th><th>dialect</th>"
        f"<th>model</th></tr>{found}</table>"
        if status.found
        else ""
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bridge</title></head><body>'
        f"<h1>bridge {escape(__version__)}</h1><table><tr><th>camera</th><th>state</th>"
        f"<th>dialect</th><th>model</th><th>addresses</th></tr>{rows}</table>{found_table}"
        "</body></html>"
    )
