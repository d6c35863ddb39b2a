"""Test helpers shared across the suite: external tools, camera URLs, decoding media."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import struct
from typing import Any

import av
import numpy as np
from numpy.typing import ArrayLike

from bridge.rtsp.protocol import Headers

FFPROBE = shutil.which("ffprobe")
TOOL_TIMEOUT = 20.0  # seconds a tool may run before it is killed


async def run_command(*args: str) -> tuple[int, bytes, bytes]:
    """Run a command to completion: its exit code, stdout and stderr. It is killed when the
    caller stops waiting (a timeout around the call)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await process.communicate()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out, err


async def run_tool(*args: str) -> bytes:
    """Run a command (ffprobe, ffmpeg) to completion and return its stdout.

    It is killed if it outlasts ``TOOL_TIMEOUT``; a non-zero exit fails with its stderr.
    """
    async with asyncio.timeout(TOOL_TIMEOUT):
        code, out, err = await run_command(*args)
    assert code == 0, err.decode(errors="replace")
    return out


async def ffprobe(*args: str) -> dict[str, Any]:
    """``ffprobe -v error -of json ARGS``, parsed."""
    assert FFPROBE is not None, "ffprobe is not installed"
    result: dict[str, Any] = json.loads(
        await run_tool(FFPROBE, "-v", "error", "-of", "json", *args)
    )
    return result


async def probe_first_video_frames(url: str, frames: int = 3) -> dict[str, Any]:
    """ffprobe's view of the first ``frames`` frames of a video URL: its video stream's
    codec_name, width, height and nb_read_frames (a stream with sound too has one)."""
    probe = await ffprobe(
        "-select_streams",
        "v",
        "-read_intervals",
        f"%+#{frames}",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,width,height,nb_read_frames",
        url,
    )
    (stream,) = probe["streams"]
    return dict(stream)


def with_userinfo(url: str, username: str, password: str) -> str:
    """``url`` (http://, rtsp:// ...) with credentials in it, as ffmpeg takes them (it answers
    Basic and Digest)."""
    return url.replace("://", f"://{username}:{password}@", 1)


def decode_jpeg(data: bytes) -> av.VideoFrame:
    """The one picture a JPEG holds."""
    (frame,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(data))
    return frame


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG, decoded."""
    frame = decode_jpeg(data)
    return frame.width, frame.height


def dominant_frequency(
    pcm: ArrayLike, rate: int, *, window: bool = True, min_peak_ratio: float = 0.0
) -> float:
    """The frequency (Hz) of the strongest FFT bin of ``pcm`` sampled at ``rate``.

    ``window`` applies a Hann window first; ``min_peak_ratio`` asserts the peak stands that
    many times above the spectrum's mean (a clear tone, not noise).
    """
    samples = np.asarray(pcm, dtype=np.float64)
    if window:
        samples = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples))
    if min_peak_ratio:
        assert spectrum.max() > min_peak_ratio * spectrum.mean(), "no clear tone"
    return float(np.argmax(spectrum) * rate / len(samples))


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class RawClient:
    """A minimal RTSP client that keeps interleaved frames it meets while awaiting replies."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authorization: str
    ) -> None:
        self.reader, self.writer = reader, writer
        self.authorization = authorization
        self.cseq = 0
        self.frames: list[tuple[int, bytes]] = []

    @classmethod
    async def connect(cls, port: int, authorization: str) -> RawClient:
        """Connect to 127.0.0.1:port; requests send ``authorization`` unless told not to."""
        return cls(*await asyncio.open_connection("127.0.0.1", port), authorization)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def request(
        self, method: str, uri: str, headers: dict[str, str] | None = None, *, auth: bool = True
    ) -> tuple[int, Headers, bytes]:
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}"]
        if auth:
            lines.append(f"Authorization: {self.authorization}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await self.response()

    async def frame(self) -> tuple[int, bytes]:
        if self.frames:
            return self.frames.pop(0)
        assert await self.reader.readexactly(1) == b"$"
        return await self._interleaved()

    async def _interleaved(self) -> tuple[int, bytes]:
        channel, length = struct.unpack("!BH", await self.reader.readexactly(3))
        return channel, await self.reader.readexactly(length)

    async def response(self) -> tuple[int, Headers, bytes]:
        async with asyncio.timeout(10):
            while (first := await self.reader.readexactly(1)) == b"$":
                self.frames.append(await self._interleaved())
            head = (first + await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.strip().split("\r\n")
        headers = Headers(
            (name, value) for name, _, value in (h.partition(": ") for h in header_lines)
        )
        body = await self.reader.readexactly(int(headers.get("Content-Length", "0")))
        return int(status_line.split()[1]), headers, body


async def describe_status(port: int, path: str, authorization: str) -> int:
    """The status a DESCRIBE of ``rtsp://127.0.0.1:port/path`` gets, on a connection of its
    own."""
    client = await RawClient.connect(port, authorization)
    try:
        status, _, _ = await client.request("DESCRIBE", f"rtsp://127.0.0.1:{port}/{path}")
    finally:
        await client.close()
    return status
