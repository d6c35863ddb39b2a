"""``/live/<camera>.mjpg``: the camera's own JPEG pictures as ``multipart/x-mixed-replace``,
what browsers play in an ``<img>`` without a plugin or a transcode.

Every live viewer is one more subscriber of the camera's shared picture fan-out (the one
upstream RTSP viewers share too), with a queue of :data:`DEPTH` pictures: a browser that reads
slowly loses the oldest pictures and never grows memory or delays the others. A write that
does not complete within :data:`WRITE_TIMEOUT` ends that viewer; a camera that sends nothing
for :data:`STALL_TIMEOUT` ends the stream (the page reopens it when the camera is back), and
so does a config reload that removes or restarts the camera, within :data:`CHECK_EVERY`. Live
viewers are capped per client address and in all, and the gateway stopping ends them at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable

from aiohttp import web

from bridge.cameras.base import JpegFrame
from bridge.fanout import Fanout
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

PER_CLIENT = 4  # a phone or a browser tab showing a few cameras
TOTAL = 32  # each costs a socket and a subscriber, not an encoder
DEPTH = 2  # pictures queued per viewer: a slow one skips, it does not lag behind
WRITE_TIMEOUT = 10.0
STALL_TIMEOUT = 15.0  # the camera fan-out's own stall detection (10 s) comes first
CHECK_EVERY = 1.0  # seconds without a picture before checking the camera is still the same
# The kernel's send buffer per live viewer, fixed (not grown by autotuning up to megabytes):
# half a second of VGA pictures, so a browser that stops reading soon makes its queue drop.
SEND_BUFFER = 128 * 1024
BOUNDARY = "bridgeframe"

# camera name -> the fan-out of its pictures, or None for an unknown or unconnected camera
FramesLookup = Callable[[str], Fanout[JpegFrame] | None]


def part(jpeg: bytes) -> bytes:
    """One picture as a multipart part: delimiter, type and length, the JPEG, CRLF."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


class LiveViews:
    """The live viewers of every camera: who watches (for the status page), the caps, and
    the tasks to end when the gateway stops."""

    def __init__(
        self, frames: FramesLookup, *, per_client: int = PER_CLIENT, total: int = TOTAL
    ) -> None:
        self._frames = frames
        self._per_client = per_client
        self._total = total
        self._per_address: Counter[str] = Counter()
        self.viewers: Counter[tuple[str, str]] = Counter()  # (camera, address) -> streams
        self._tasks: set[asyncio.Task[object]] = set()
        self._refusals = ThrottledLog(log)

    def watching(self, camera: str) -> list[str]:
        """The addresses watching ``camera`` live, one entry per stream."""
        return [
            address
            for (name, address), count in self.viewers.items()
            if name == camera
            for _ in range(count)
        ]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        camera = request.match_info["camera"]
        frames = self._frames(camera)
        if frames is None:
            raise web.HTTPNotFound(text="no such camera, or it is not connected yet\n")
        address = request.remote or "?"
        if self._per_address[address] >= self._per_client:
            self._refusals.log(
                logging.WARNING, "per client", "live view refused to %s: %d streams open",
                address, self._per_client,
            )  # fmt: skip
            raise web.HTTPTooManyRequests(
                text="too many live views from this address\n", headers={"Retry-After": "5"}
            )
        if sum(self._per_address.values()) >= self._total:
            self._refusals.log(
                logging.WARNING, "total", "live view refused to %s: %d streams open in all",
                address, self._total,
            )  # fmt: skip
            raise web.HTTPServiceUnavailable(
                text="too many live views\n", headers={"Retry-After": "5"}
            )
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._per_address[address] += 1
        self.viewers[(camera, address)] += 1
        log.info("web: live viewer %s joined %s", address, camera)
        try:
            return await self._stream(request, camera, frames)
        finally:
            self._tasks.discard(task)
            self._per_address[address] -= 1
            self.viewers[(camera, address)] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
            if not self.viewers[(camera, address)]:
                del self.viewers[(camera, address)]
            log.info("web: live viewer %s left %s", address, camera)

    async def _stream(
        self, request: web.Request, camera: str, frames: Fanout[JpegFrame]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        response.force_close()  # the connection is the stream: it does not go back to a pool
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        await response.prepare(request)
        try:
            async with frames.subscribe(DEPTH) as pictures:
                quiet = 0.0
                while quiet < STALL_TIMEOUT:
                    try:
                        async with asyncio.timeout(CHECK_EVERY):
                            frame = await pictures.get()
                    except TimeoutError:
                        # No picture for a while: a camera a config reload removed or
                        # restarted has a new fan-out, or none; its stream ends now.
                        if self._frames(camera) is not frames:
                            break
                        quiet += CHECK_EVERY
                        continue
                    quiet = 0.0
                    async with asyncio.timeout(WRITE_TIMEOUT):
                        await response.write(part(frame.data))
        except (ConnectionError, TimeoutError):
            pass  # the browser went or stopped reading
        return response

    async def close(self) -> None:
        """End every live stream now (the gateway stops): the browsers see the stream end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
