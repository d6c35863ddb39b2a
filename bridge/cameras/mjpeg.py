"""JPEG snapshots and MJPEG (``multipart/x-mixed-replace``) video, shared by every dialect.

Every picture a camera sends passes :func:`usable_jpeg` before it goes anywhere: a JPEG whose
header is garbled or claims a size no camera has (65000x65000) is dropped here, with a warning
at most every few seconds per stream, so it reaches neither an encoder nor a snapshot client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing

from bridge.cameras.base import JpegFrame
from bridge.cameras.http import CameraHttp, Params
from bridge.codecs.jpeg import SOI, check_header
from bridge.errors import BadResponse, CameraUnreachable, ProtocolError
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)


def usable_jpeg(data: bytes, camera: str, dropped: ThrottledLog) -> bool:
    """Whether a picture from ``camera`` (its display name) may go on.

    Data that is no JPEG at all (a text part between pictures) is skipped quietly, as
    cameras send such parts; a JPEG the gateway cannot take is dropped with a warning through
    ``dropped``, the stream's own rate limit, so a flood of them costs a line now and then.
    """
    if not data.startswith(SOI):
        return False
    try:
        check_header(data)
    except ProtocolError as exc:
        dropped.log(logging.WARNING, "picture", "%s: dropping a picture: %s", camera, exc)
        return False
    return True


async def fetch_jpeg(http: CameraHttp, path: str, params: Params | None = None) -> bytes:
    """GET one JPEG picture; :class:`BadResponse` if the body is not one the gateway can take."""
    reply = await http.get(path, params)
    if not reply.body.startswith(SOI):
        kind = reply.content_type[:40] or "no type"
        raise BadResponse(f"{path} is not a JPEG ({kind!r})", camera=http.display_name)
    try:
        check_header(reply.body)
    except ProtocolError as exc:
        raise BadResponse(f"{path}: {exc}", camera=http.display_name) from exc
    return reply.body


async def mjpeg_frames(
    http: CameraHttp, path: str, params: Params | None = None
) -> AsyncGenerator[JpegFrame, None]:
    """The usable JPEG parts of a multipart stream as they arrive; other parts are skipped.

    A stream the camera ends raises :class:`CameraUnreachable`, so the fan-out reconnects.
    """
    dropped = ThrottledLog(log)
    async with http.stream(path, params) as reply, aclosing(reply.parts()) as parts:
        async for part, arrived in parts:
            if usable_jpeg(part.body, http.display_name, dropped):
                yield JpegFrame(part.body, arrived)
    raise CameraUnreachable(f"{path} ended", camera=http.display_name)
