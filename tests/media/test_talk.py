"""The talk pipeline: a client's G.711 packets to each camera talk format with the tone intact,
and one camera's speaker shared one talker at a time, one upload per talk spurt, never
blocking whoever sends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable

import av
import numpy as np
import pytest
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from helpers import dominant_frequency

from bridge.cameras.base import AudioCodec, AudioFormat
from bridge.errors import CameraUnreachable
from bridge.media import talk
from bridge.media.audio import PcmDecoder
from bridge.media.talk import QUEUE_PACKETS, CameraTalk, TalkEncoder, can_talk
from bridge.talk import TalkCodec

TONE = 1000.0
PACKET = 160  # 20 ms at 8 kHz
ULAW = AudioFormat(AudioCodec.MULAW)
G726_32 = AudioFormat(AudioCodec.G726, bits_per_sample=4)


def g711_tone(codec: TalkCodec, seconds: float = 1.0) -> list[bytes]:
    """A 1 kHz tone in 20 ms G.711 packets, encoded by FFmpeg."""
    encoder = av.CodecContext.create("pcm_mulaw" if codec is TalkCodec.PCMU else "pcm_alaw", "w")
    assert isinstance(encoder, AudioCodecContext)
    encoder.sample_rate, encoder.layout, encoder.format = 8000, "mono", "s16"
    encoder.open()
    count = int(seconds * 8000)
    samples = (np.sin(2 * np.pi * TONE * np.arange(count) / 8000) * 8000).astype(np.int16)
    frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    data = b"".join(bytes(p) for p in encoder.encode(frame))
    return [data[i : i + PACKET] for i in range(0, len(data), PACKET)]


@pytest.mark.parametrize("codec", list(TalkCodec))
@pytest.mark.parametrize(
    "target",
    [
        ULAW,
        AudioFormat(AudioCodec.MULAW, sample_rate=16000),
        *(AudioFormat(AudioCodec.G726, bits_per_sample=bits) for bits in (2, 3, 4, 5)),
    ],
    ids=["ulaw", "ulaw-16k", "g726-16", "g726-24", "g726-32", "g726-40"],
)
def test_the_camera_gets_the_tone(codec: TalkCodec, target: AudioFormat) -> None:
    encoder = TalkEncoder(target)
    out = b"".join(encoder.encode(codec, packet) for packet in g711_tone(codec)) + encoder.flush()
    pcm = PcmDecoder(target).decode(out)
    assert len(pcm) >= 0.95 * target.sample_rate  # a second, give or take resampler delay
    peak = dominant_frequency(pcm, target.sample_rate, min_peak_ratio=20)
    assert peak == pytest.approx(TONE, abs=10)


def test_ulaw_to_a_ulaw_camera_is_passed_through() -> None:
    encoder = TalkEncoder(ULAW)
    packets = g711_tone(TalkCodec.PCMU, 0.1)
    assert encoder.passthrough
    assert [encoder.encode(TalkCodec.PCMU, p) for p in packets] == packets
    assert encoder.flush() == b""


def test_g726_goes_out_in_whole_frames_and_the_tail_is_padded() -> None:
    encoder = TalkEncoder(G726_32)
    first = encoder.encode(TalkCodec.PCMU, bytes(PACKET) * 10)  # 1600 samples: under a frame
    assert first == b""
    tail = encoder.flush()
    assert len(tail) == 2048 // 2  # one frame of 2048 4-bit codes
    assert encoder.flush() == b""


def test_formats_without_an_encoder_are_refused() -> None:
    gsm = AudioFormat(AudioCodec.GSM)
    assert not can_talk(gsm)
    with pytest.raises(ValueError, match="no talk encoder"):
        TalkEncoder(gsm)


# -- the speaker -------------------------------------------------------------------------------


class Speaker:
    """What a driver's send_audio does with an upload, in memory: each one's bytes, kept."""

    def __init__(self, *, reads: bool = True, fails: bool = False) -> None:
        self.uploads: list[bytearray] = []
        self.changed = asyncio.Condition()
        self.finished = 0
        self._reads = reads
        self._fails = fails

    async def play(self, chunks: AsyncIterable[bytes]) -> None:
        upload = bytearray()
        self.uploads.append(upload)
        async with self.changed:
            self.changed.notify_all()
        try:
            if self._fails:
                raise CameraUnreachable("connection refused", camera="cam")
            if not self._reads:
                await asyncio.Event().wait()  # a camera that never takes its upload
            async for chunk in chunks:
                upload += chunk
        finally:
            async with self.changed:
                self.finished += 1
                self.changed.notify_all()

    async def wait_started(self, count: int) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: len(self.uploads) >= count)

    async def wait_finished(self, count: int) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: self.finished >= count)


async def test_one_talker_at_a_time() -> None:
    speaker = Speaker()
    line = CameraTalk("cam", speaker.play, ULAW)
    first = line.claim()
    assert first is not None
    assert line.claim() is None
    first.close()
    second = line.claim()
    assert second is not None
    first.send(TalkCodec.PCMU, b"\xff" * PACKET)  # a released claim plays nothing
    second.close()
    await line.close()
    assert speaker.uploads == []


async def test_an_upload_per_talk_spurt() -> None:
    speaker = Speaker()
    line = CameraTalk("cam", speaker.play, ULAW, silence=0.2)
    talker = line.claim()
    assert talker is not None
    spurt = g711_tone(TalkCodec.PCMU, 0.1)
    for packet in spurt:
        talker.send(TalkCodec.PCMU, packet)
    await speaker.wait_finished(1)  # the silence closed it
    for packet in spurt:
        talker.send(TalkCodec.PCMU, packet)
    talker.close()  # closes the second upload at once
    await speaker.wait_finished(2)
    assert [bytes(u) for u in speaker.uploads] == [b"".join(spurt)] * 2
    assert line.uploads == 2
    await line.close()


async def test_a_camera_that_does_not_take_its_upload_loses_audio_not_time() -> None:
    speaker = Speaker(reads=False)
    line = CameraTalk("cam", speaker.play, ULAW)
    talker = line.claim()
    assert talker is not None
    talker.send(TalkCodec.PCMU, b"\xff" * PACKET)
    await speaker.wait_started(1)  # the upload opened with the first packet
    for _ in range(100):
        talker.send(TalkCodec.PCMU, b"\xff" * PACKET)  # returns at once, every time
    assert line.dropped == 100 - QUEUE_PACKETS
    await line.close()
    await speaker.wait_finished(1)


@pytest.mark.parametrize(
    ("camera", "complaint"),
    [
        ({"fails": True}, "talk failed: cam: connection refused"),
        ({"reads": False}, "camera cam: talk failed: it took no audio for 0.2 s"),
    ],
    ids=["refused", "stalled"],
)
async def test_a_failed_upload_ends_that_talk_only(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    camera: dict[str, bool],
    complaint: str,
) -> None:
    monkeypatch.setattr(talk, "STALLED", 0.2)
    speaker = Speaker(**camera)
    line = CameraTalk("cam", speaker.play, ULAW, silence=0.1)
    talker = line.claim()
    assert talker is not None
    with caplog.at_level(logging.WARNING, "bridge.media.talk"):
        talker.send(TalkCodec.PCMU, b"\xff" * PACKET)
        await speaker.wait_finished(1)
        for _ in range(5):
            talker.send(TalkCodec.PCMU, b"\xff" * PACKET)  # dropped: this talk is over
            await asyncio.sleep(0)
    assert len(speaker.uploads) == 1
    assert line.dropped == 0  # not queued at all, so not lost for want of room
    assert [r.getMessage() for r in caplog.records] == [complaint]
    talker.close()
    again = line.claim()  # the next talker tries afresh
    assert again is not None
    again.send(TalkCodec.PCMU, b"\xff" * PACKET)
    await speaker.wait_finished(2)
    await line.close()
