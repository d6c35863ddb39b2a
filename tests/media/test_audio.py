"""Camera audio -> PCMU 20 ms frames or raw AAC-LC, fed in pieces that split codec units."""

from __future__ import annotations

import av
import numpy as np
import pytest
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.codec.context import CodecContext

from bridge.cameras.base import AudioCodec, AudioFormat
from bridge.errors import ProtocolError
from bridge.media.audio import PCMU_FRAME_BYTES, AudioTranscoder
from bridge.simulator.media import ToneEncoder

TONE = 440.0
PIECE = 97  # prime, so pieces split GSM frames, ADPCM blocks and G.726 code groups


def camera_audio(codec: AudioCodec, seconds: float = 1.0) -> tuple[AudioFormat, bytes]:
    tone = ToneEncoder(codec)
    source = AudioFormat(
        codec,
        bits_per_sample=4 if codec is AudioCodec.G726 else 0,
        block_align=tone.block_align if codec is AudioCodec.IMA_ADPCM else 0,
    )
    return source, tone.next_chunk(seconds)


def feed(transcoder: AudioTranscoder, data: bytes) -> list[bytes]:
    out = []
    for start in range(0, len(data), PIECE):
        out.extend(transcoder.transcode(data[start : start + PIECE]))
    return out


def decode(
    codec: str, packets: list[bytes], rate: int, extradata: bytes | None = None
) -> np.ndarray:
    decoder = CodecContext.create(codec, "r")
    assert isinstance(decoder, AudioCodecContext)
    decoder.sample_rate = rate
    decoder.layout = "mono"
    if extradata is not None:
        decoder.extradata = extradata
    chunks = []
    for packet in packets:
        for frame in decoder.decode(av.Packet(packet)):
            assert isinstance(frame, AudioFrame)
            chunks.append(frame.to_ndarray().reshape(-1).astype(np.float64))
    return np.concatenate(chunks)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("codec", list(AudioCodec))
def test_pcmu_frames_carry_the_tone(codec: AudioCodec) -> None:
    source, data = camera_audio(codec)
    frames = feed(AudioTranscoder(source, "pcmu"), data)
    assert {len(f) for f in frames} == {PCMU_FRAME_BYTES}
    assert abs(sum(map(len, frames)) - 8000) <= PCMU_FRAME_BYTES
    pcm = decode("pcm_mulaw", frames, 8000)
    assert peak_frequency(pcm, 8000) == pytest.approx(TONE, abs=5)
    assert np.sqrt(np.mean(pcm**2)) > 1000  # a real tone, not near-silence


def test_mulaw_passes_through_untouched() -> None:
    source, data = camera_audio(AudioCodec.MULAW)
    assert b"".join(feed(AudioTranscoder(source, "pcmu"), data)) == data[: len(data) // 160 * 160]


@pytest.mark.parametrize("codec", list(AudioCodec))
def test_aac_carries_the_tone(codec: AudioCodec) -> None:
    source, data = camera_audio(codec)
    transcoder = AudioTranscoder(source, "aac")
    assert transcoder.sample_rate == 8000
    config = transcoder.aac_config()
    # AudioSpecificConfig: object type 2 (AAC-LC), frequency index 11 (8000 Hz), 1 channel.
    assert config[0] >> 3 == 2
    assert ((config[0] & 0x07) << 1 | config[1] >> 7) == 11
    assert (config[1] >> 3) & 0x0F == 1
    packets = feed(transcoder, data)
    assert 5 <= len(packets) <= 8  # 1024-sample frames, less the encoder's priming delay
    pcm = decode("aac", packets, 8000, config)
    assert len(pcm) == 1024 * len(packets)
    assert peak_frequency(pcm[1024:], 8000) == pytest.approx(TONE, abs=10)


def test_pcmu_target_has_no_aac_config() -> None:
    source, _ = camera_audio(AudioCodec.GSM)
    with pytest.raises(RuntimeError):
        AudioTranscoder(source, "pcmu").aac_config()


def test_bad_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="block_align"):
        AudioTranscoder(AudioFormat(AudioCodec.IMA_ADPCM), "pcmu")
    with pytest.raises(ValueError, match=r"G\.726"):
        AudioTranscoder(AudioFormat(AudioCodec.G726), "pcmu")
    with pytest.raises(ValueError, match="mono"):
        AudioTranscoder(AudioFormat(AudioCodec.GSM, channels=2), "pcmu")


def test_undecodable_audio_raises_and_decoding_goes_on() -> None:
    source, good = camera_audio(AudioCodec.IMA_ADPCM)
    transcoder = AudioTranscoder(source, "pcmu")
    # An IMA ADPCM block header whose step index (third byte) is beyond the table's 88.
    with pytest.raises(ProtocolError):
        transcoder.transcode(b"\x00\x00\xff\x00" + bytes(source.block_align - 4))
    assert len(feed(transcoder, good)) >= 45
