"""JPEG snapshots and MJPEG (``multipart/x-mixed-replace``) video, shared by every dialect."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from bridge.cameras.base import JpegFrame
from bridge.cameras.http import CameraHttp, Params
from bridge.errors import BadResponse, CameraUnreachable

JPEG_SOI = b"\xff\xd8"


async def fetch_jpeg(http: CameraHttp, path: str, params: Params | None = None) -> bytes:
    """GET one JPEG picture; :class:`BadResponse` if the body is not one."""
    reply = await http.get(path, params)
    if not reply.body.startswith(JPEG_SOI):
        raise BadResponse(
            f"{path} is not a JPEG ({reply.content_type or 'no type'})", camera=http.display_name
        )
    return reply.body


async def mjpeg_frames(
    http: CameraHttp, path: str, params: Params | None = None
) -> AsyncGenerator[JpegFrame, None]:
    """The JPEG parts of a multipart stream as they arrive; other parts are skipped.

    A stream the camera ends raises :class:`CameraUnreachable`, so the fan-out reconnects.
    """
    async with http.stream(path, params) as reply, aclosing(reply.parts()) as parts:
        async for part, arrived in parts:
            if part.body.startswith(JPEG_SOI):
                yield JpegFrame(part.body, arrived)
    raise CameraUnreachable(f"{path} ended", camera=http.display_name)
