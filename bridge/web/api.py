"""The status page's JSON API: ``GET /api/cameras`` (what the page shows), and the PTZ
controls, ``GET /api/cameras/<camera>/presets`` and ``POST /api/cameras/<camera>/ptz``.

PTZ goes through the camera's :class:`~bridge.ptz.PtzHead`, the one owner of its head that
ONVIF's PTZ service uses too, so a move from the page and one from a VMS supersede each other
as two ONVIF clients' would. A button pressed on the page is a continuous move that stops by
itself after :data:`MOVE_TIMEOUT` unless the page renews it (it does every second while the
button is held): a release that never arrives (a closed tab, a lost phone connection) cannot
leave the camera turning to its end stop.

Browsers send a saved Basic password with any request to the gateway, whichever site makes
it, so the state-changing endpoint refuses what another site could send: only an
``application/json`` body (a cross-site form cannot send one, and a script needs a CORS
preflight the gateway never answers) and, when the browser names the request's origin, only
the gateway's own.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bridge.cameras.base import PtzVector
from bridge.errors import CameraError, PtzRefused, UnsupportedOperation
from bridge.ptz import PtzHead, scale

log = logging.getLogger(__name__)

MOVE_TIMEOUT = 2.0
STEP = 0.1  # a press on a head without continuous moves: a tenth of its travel
MAX_BODY = 1024
MAX_TOKEN = 64

# camera name -> its head, or None for an unknown camera or one that does not move
PtzLookup = Callable[[str], PtzHead | None]


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site (``Origin``, or
    ``Sec-Fetch-Site`` where the browser sends it)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or an HTTP error saying what is wrong with it."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json\n")
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-site request refused\n")
    if request.content_length is None or request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY, actual_size=request.content_length or 0
        )
    try:
        body = json.loads(await request.content.readexactly(request.content_length))
    except (ValueError, EOFError) as exc:
        raise web.HTTPBadRequest(text="the body is not JSON\n") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    return body


def axis(body: dict[str, Any], name: str) -> float:
    """A velocity component in [-1, 1]; 0 when absent."""
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise web.HTTPBadRequest(text=f"{name}: a number from -1 to 1\n")
    if not -1.0 <= value <= 1.0:
        raise web.HTTPBadRequest(text=f"{name}: {value} is not from -1 to 1\n")
    return float(value)


def token(body: dict[str, Any]) -> str:
    value = body.get("token")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TOKEN or not value.isprintable():
        raise web.HTTPBadRequest(text=f"token: a preset token of 1 to {MAX_TOKEN} characters\n")
    return value


async def command(head: PtzHead, body: dict[str, Any]) -> None:
    """Carry out one validated PTZ command from the page."""
    action = body.get("action")
    if action == "move":
        velocity = PtzVector(axis(body, "pan"), axis(body, "tilt"), axis(body, "zoom"))
        if velocity.zoom and not head.offer.zoom:
            raise web.HTTPBadRequest(text="zoom: this camera has no zoom\n")
        if head.offer.continuous:
            await head.continuous_move(velocity, MOVE_TIMEOUT)
        else:
            await head.relative_move(scale(velocity, STEP))
    elif action == "stop":
        await head.stop()
    elif action == "preset":
        await head.goto_preset(token(body))
    else:
        raise web.HTTPBadRequest(text="action: one of move, stop, preset\n")


def ptz_routes(heads: PtzLookup) -> list[web.RouteDef]:
    """The page's PTZ endpoints (behind the gateway's users, as every page endpoint)."""

    def head_of(request: web.Request) -> PtzHead:
        head = heads(request.match_info["camera"])
        if head is None:
            raise web.HTTPNotFound(text="no such camera, or it does not move\n")
        return head

    async def ptz(request: web.Request) -> web.Response:
        head = head_of(request)
        body = await json_body(request)
        try:
            await command(head, body)
        except (PtzRefused, UnsupportedOperation) as exc:
            raise web.HTTPConflict(text=f"{exc}\n") from exc
        except CameraError as exc:
            log.info("PTZ on %s failed: %s", request.match_info["camera"], exc)
            raise web.HTTPBadGateway(text="the camera did not take the command\n") from exc
        return web.Response(status=204)

    async def presets(request: web.Request) -> web.Response:
        head = head_of(request)
        try:
            listed, _ = await head.presets()
        except CameraError as exc:
            raise web.HTTPBadGateway(text="the camera did not list its presets\n") from exc
        return web.json_response(
            [{"token": p.token, "name": p.name} for p in listed],
            headers={"Cache-Control": "no-store"},
        )

    return [
        web.post("/api/cameras/{camera}/ptz", ptz),
        web.get("/api/cameras/{camera}/presets", presets),
    ]
