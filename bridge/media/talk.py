"""A client's voice on a camera's speaker: G.711 packets in, the camera's talk codec out, streamed
to ``driver.send_audio()``.

:class:`CameraTalk` is one camera's :class:`~bridge.talk.TalkLine`: one talker at a time, its
packets through a bounded queue (a camera that takes its upload slowly loses audio, it never
holds up the caller), and one upload per talk spurt: it opens with the first packet and closes
after :data:`SILENCE` seconds without one, so a talk button that is let go frees the camera's
speaker (most of these cameras play one upload at a time, and some mute their microphone while
it lasts). An upload that fails is logged (rate-limited) and ends that talker's talk; the
camera's streams never notice.

:class:`TalkEncoder` does the codec work: u-law to a u-law camera at 8 kHz is passed through
untouched; anything else is decoded (G.711 by table), resampled where the camera's rate is
another, and encoded (u-law by table, G.726 by FFmpeg in its fixed frames, the last padded
with silence when the talk ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from numpy.typing import NDArray

from bridge.cameras.base import AudioCodec, AudioFormat
from bridge.errors import CameraError
from bridge.media.audio import PCMU_RATE, mulaw_table
from bridge.media.emulated import AudioEncoder
from bridge.ratelimit import ThrottledLog, TokenBucket
from bridge.talk import TalkCodec, TalkSink

log = logging.getLogger(__name__)

SILENCE = 1.5  # seconds without a packet that end a talk spurt and its upload
STALLED = 5.0  # seconds a camera may take no audio while there is some before its upload fails
QUEUE_PACKETS = 50  # a second of 20 ms packets waiting for the camera, then new ones drop
TALK_CODECS = (AudioCodec.MULAW, AudioCodec.G726)  # what the talk CGIs of the dialects take
_G711_DECODERS = {TalkCodec.PCMU: "pcm_mulaw", TalkCodec.PCMA: "pcm_alaw"}

# What plays a stream of encoded audio on the camera: a driver's ``send_audio``.
Play = Callable[[AsyncIterable[bytes]], Awaitable[None]]


@functools.cache
def _g711_samples(codec: TalkCodec) -> NDArray[np.int16]:
    """The 16-bit sample of every G.711 byte, from FFmpeg's own decoder."""
    decoder = av.CodecContext.create(_G711_DECODERS[codec], "r")
    assert isinstance(decoder, AudioCodecContext)
    decoder.sample_rate = PCMU_RATE
    decoder.layout = "mono"
    frames = decoder.decode(av.Packet(bytes(range(256))))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)


def can_talk(target: AudioFormat) -> bool:
    """Whether :class:`TalkEncoder` can make what a camera with this talk format plays."""
    return target.codec in TALK_CODECS and target.channels == 1


class TalkEncoder:
    """G.711 packets at 8 kHz to one camera's talk format. Synchronous; use from one thread."""

    def __init__(self, target: AudioFormat) -> None:
        if not can_talk(target):
            raise ValueError(f"no talk encoder for {target}")
        rate = target.sample_rate
        self._passthrough = target.codec is AudioCodec.MULAW and rate == PCMU_RATE
        self._resampler = None if rate == PCMU_RATE else av.AudioResampler("s16", "mono", rate)
        self._encoder: AudioEncoder | None = None
        if target.codec is AudioCodec.G726:
            self._encoder = AudioEncoder(
                target.codec, rate, 0, bits_per_sample=target.bits_per_sample
            )
        self._pending = np.zeros(0, dtype=np.int16)  # samples short of one encoder frame

    @property
    def passthrough(self) -> bool:
        """Whether u-law packets go out as they came (no codec work at all)."""
        return self._passthrough

    def encode(self, codec: TalkCodec, payload: bytes) -> bytes:
        """The camera's bytes for one packet's audio (maybe none yet: G.726 goes in frames)."""
        if self._passthrough and codec is TalkCodec.PCMU:
            return payload
        samples = _g711_samples(codec)[np.frombuffer(payload, dtype=np.uint8)]
        if self._resampler is not None:
            samples = self._resample(samples)
        return self._encode(samples)

    def flush(self) -> bytes:
        """What is left at the end of a talk: a last encoder frame padded with silence."""
        if self._encoder is None or not self._pending.size:
            return b""
        batch = self._encoder.batch_samples
        padded = np.zeros(batch, dtype=np.int16)
        padded[: self._pending.size] = self._pending
        self._pending = np.zeros(0, dtype=np.int16)
        return self._encoder.encode(padded)

    def _resample(self, samples: NDArray[np.int16]) -> NDArray[np.int16]:
        assert self._resampler is not None
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PCMU_RATE
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)

    def _encode(self, samples: NDArray[np.int16]) -> bytes:
        if self._encoder is None:  # u-law at another rate
            return mulaw_table()[samples.view(np.uint16)].tobytes()
        pending = np.concatenate((self._pending, samples))
        batch = self._encoder.batch_samples
        whole = len(pending) - len(pending) % batch
        self._pending = pending[whole:]
        frames = (pending[start : start + batch] for start in range(0, whole, batch))
        return b"".join(self._encoder.encode(frame) for frame in frames)


class _Talker:
    """One client's hold on the speaker; what :meth:`CameraTalk.claim` hands out."""

    def __init__(self, line: CameraTalk) -> None:
        self._line = line
        self.failed = False  # its upload failed: the rest of its talk is dropped

    def send(self, codec: TalkCodec, payload: bytes) -> None:
        self._line.push(self, codec, payload)

    def close(self) -> None:
        self._line.release(self)


_Packet = tuple[_Talker, TalkCodec, bytes]  # one packet of a talk, and whose it is


class CameraTalk:
    """One camera's speaker, shared by whoever claims it, one at a time: ``play`` uploads a
    talk spurt in ``target``, the camera's talk format (its driver's ``send_audio`` and
    ``capabilities.audio_out``)."""

    def __init__(self, name: str, play: Play, target: AudioFormat, *, silence: float = SILENCE):
        self._name = name
        self._play = play
        self._target = target
        self._silence = silence
        # Packets with their talker, or None: the talker left, so the upload ends now, not
        # after the silence.
        self._queue: asyncio.Queue[_Packet | None] = asyncio.Queue(QUEUE_PACKETS)
        self._talker: _Talker | None = None
        self._pump: asyncio.Task[None] | None = None
        self._errors = ThrottledLog(log)
        self._tracebacks = TokenBucket(rate=1 / 60, burst=3)
        self.uploads = 0  # talk spurts sent to the camera
        self.dropped = 0  # packets the camera did not take in time

    def claim(self) -> TalkSink | None:
        if self._talker is not None:
            return None
        self._talker = _Talker(self)
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name=f"talk to {self._name}")
        return self._talker

    def push(self, talker: _Talker, codec: TalkCodec, payload: bytes) -> None:
        if talker is not self._talker or talker.failed:
            return
        try:
            self._queue.put_nowait((talker, codec, payload))
        except asyncio.QueueFull:
            self.dropped += 1

    def release(self, talker: _Talker) -> None:
        """The talker is done: its upload ends once the camera took what it sent, rather than
        after the silence (the oldest waiting packet makes room for the end where the queue is
        full)."""
        if talker is not self._talker:
            return
        self._talker = None
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(None)

    async def _run(self) -> None:
        """Upload each talk spurt while a talker holds the speaker."""
        while True:
            first = await self._queue.get()
            if first is None:
                continue
            talker = first[0]  # whose spurt it is (another may hold the speaker by now)
            try:
                self.uploads += 1
                async with asyncio.timeout(STALLED) as deadline:
                    await self._play(self._spurt(first, deadline))
            except TimeoutError:
                self._errors.log(
                    logging.WARNING, "stalled", "camera %s: talk failed: it took no audio for %g s",
                    self._name, STALLED,
                )  # fmt: skip
            except CameraError as exc:
                self._errors.log(logging.WARNING, "upload", "talk failed: %s", exc)
            except Exception:
                if self._tracebacks.allow(time.monotonic()):
                    log.exception("camera %s: talk failed", self._name)
            else:
                continue
            # The rest of the failed talk is dropped, not retried packet by packet.
            talker.failed = True
            while not self._queue.empty() and self._queue.get_nowait() is not None:
                pass

    async def _spurt(self, first: _Packet, deadline: asyncio.Timeout) -> AsyncIterator[bytes]:
        """The camera's audio from ``first`` on, until :data:`SILENCE` passes without any.
        Each time the camera asks for more, ``deadline`` moves on: a camera that stops taking
        its upload (a full socket that never drains) fails it rather than hold the speaker."""
        loop = asyncio.get_running_loop()
        encoder = TalkEncoder(self._target)
        packet: _Packet | None = first
        while packet is not None:
            deadline.reschedule(loop.time() + self._silence + STALLED)
            _, codec, payload = packet
            if encoder.passthrough:
                data = encoder.encode(codec, payload)
            else:  # codec work off the loop the viewers share
                data = await asyncio.to_thread(encoder.encode, codec, payload)
            if data:
                yield data
            try:
                async with asyncio.timeout(self._silence):
                    packet = await self._queue.get()
            except TimeoutError:
                break
        tail = encoder.flush()
        if tail:
            yield tail

    async def close(self) -> None:
        self._talker = None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
