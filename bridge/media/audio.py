"""Camera audio (GSM, G.726, IMA ADPCM, u-law) to what RTSP clients play: PCMU or AAC-LC.

Cameras send their codec's bitstream in arbitrary pieces. Each decoder only takes whole units
(a 33-byte GSM frame, an IMA ADPCM block, a group of eight G.726 codes), so the tail of a piece
waits for the next one. Output is cut the way RTP wants it: PCMU in 20 ms frames of 160 bytes,
AAC in raw access units of 1024 samples (no ADTS headers; the SDP carries the config).

u-law at 8 kHz mono going to PCMU is only re-cut into 20 ms frames, never decoded.
:class:`PcmDecoder` decodes the same bitstreams to samples (the emulators record what a camera
was told to play with it).
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.codec.context import CodecContext
from numpy.typing import NDArray

from bridge.cameras.base import AudioCodec, AudioFormat
from bridge.errors import ProtocolError

AudioTarget = Literal["pcmu", "aac"]

PCMU_RATE = 8000
PCMU_FRAME_BYTES = 160  # 20 ms at 8 kHz, one byte per sample: the RTP/AVP default packet time
AAC_FRAME_SAMPLES = 1024
GSM_FRAME_BYTES = 33
_G726_RATES = range(2, 6)  # bits per code: 16, 24, 32, 40 kbit/s


@functools.cache
def mulaw_table() -> NDArray[np.uint8]:
    """u-law byte for every 16-bit sample, indexed by the sample's bits as uint16.

    Built once with FFmpeg's own encoder so it matches the decoder on the far side exactly.
    """
    encoder = CodecContext.create("pcm_mulaw", "w")
    assert isinstance(encoder, AudioCodecContext)
    encoder.sample_rate = PCMU_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    every_sample = np.arange(65536, dtype=np.uint16).view(np.int16).reshape(1, -1)
    frame = AudioFrame.from_ndarray(every_sample, format="s16", layout="mono")
    frame.sample_rate = PCMU_RATE
    table = b"".join(bytes(packet) for packet in encoder.encode(frame))
    return np.frombuffer(table, dtype=np.uint8)


class AudioTranscoder:
    """One camera's audio to one RTSP audio format. Synchronous; use from one thread.

    Everything carried between calls is smaller than one codec unit or one output frame.
    """

    def __init__(self, source: AudioFormat, target: AudioTarget = "pcmu") -> None:
        if target not in ("pcmu", "aac"):
            raise ValueError(f"audio target must be 'pcmu' or 'aac', not {target!r}")
        if source.channels != 1:
            # Every camera of this era is mono; a stereo source would need a downmix decision.
            raise ValueError(f"only mono camera audio is supported, not {source.channels} channels")
        self._source = source
        self._units = _WholeUnits(source)
        self._passthrough = (
            target == "pcmu"
            and source.codec is AudioCodec.MULAW
            and source.sample_rate == PCMU_RATE
        )
        self._decoder = None if self._passthrough else _open_decoder(source)
        self._pcmu = bytearray()  # u-law bytes short of a whole 20 ms frame
        self._encoder: AudioCodecContext | None = None
        if target == "aac":
            self._encoder = _open_aac(16000 if source.sample_rate >= 16000 else 8000)
            rate = self._encoder.sample_rate
            self._resampler = av.AudioResampler("fltp", "mono", rate, frame_size=AAC_FRAME_SAMPLES)
        else:
            self._resampler = av.AudioResampler("s16", "mono", PCMU_RATE)
        self._samples_out = 0  # AAC frame timestamps, in samples at the encoder's rate

    @property
    def sample_rate(self) -> int:
        """The output clock rate: 8000 for PCMU, the AAC encoder's rate for AAC."""
        return PCMU_RATE if self._encoder is None else self._encoder.sample_rate

    def aac_config(self) -> bytes:
        """The AAC AudioSpecificConfig (for the SDP's ``config=``)."""
        if self._encoder is None or not self._encoder.extradata:
            raise RuntimeError("aac_config() needs an AAC target")
        return bytes(self._encoder.extradata)

    def transcode(self, chunk: bytes) -> list[bytes]:
        """Feed received bytes; returns the output frames completed by them (maybe none)."""
        units = self._units.take(chunk)
        if not units:
            return []
        if self._passthrough:
            self._pcmu += units
            return self._cut_pcmu()
        assert self._decoder is not None
        out: list[bytes] = []
        for frame in _decode(self._decoder, units, self._source):
            for resampled in self._resampler.resample(frame):
                if self._encoder is None:
                    samples = resampled.to_ndarray().reshape(-1)
                    self._pcmu += mulaw_table()[samples.view(np.uint16)].tobytes()
                else:
                    out.extend(self._encode_aac(resampled))
        if self._encoder is None:
            return self._cut_pcmu()
        return out

    def _cut_pcmu(self) -> list[bytes]:
        buffer = self._pcmu
        whole = len(buffer) - len(buffer) % PCMU_FRAME_BYTES
        frames = [
            bytes(buffer[i : i + PCMU_FRAME_BYTES]) for i in range(0, whole, PCMU_FRAME_BYTES)
        ]
        del buffer[:whole]
        return frames

    def _encode_aac(self, frame: AudioFrame) -> list[bytes]:
        assert self._encoder is not None
        frame.pts = self._samples_out
        self._samples_out += frame.samples
        return [bytes(packet) for packet in self._encoder.encode(frame)]


class PcmDecoder:
    """A camera codec's bitstream, in pieces of any size, to mono 16-bit samples at its rate.
    Synchronous; use from one thread."""

    def __init__(self, source: AudioFormat) -> None:
        if source.channels != 1:
            raise ValueError(f"only mono camera audio is supported, not {source.channels} channels")
        self._source = source
        self._units = _WholeUnits(source)
        self._decoder = _open_decoder(source)
        self._resampler = av.AudioResampler("s16", "mono", source.sample_rate)

    def decode(self, chunk: bytes) -> NDArray[np.int16]:
        """The samples of the whole codec units received so far; ProtocolError on garbage."""
        units = self._units.take(chunk)
        frames = _decode(self._decoder, units, self._source) if units else []
        samples = [
            resampled.to_ndarray().reshape(-1)
            for frame in frames
            for resampled in self._resampler.resample(frame)
        ]
        return np.concatenate(samples) if samples else np.zeros(0, dtype=np.int16)


class _WholeUnits:
    """Received pieces cut to whole codec units; the tail of a piece waits for the next."""

    def __init__(self, source: AudioFormat) -> None:
        self._unit = _unit_bytes(source)
        self._pending = b""

    def take(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        whole = len(data) - len(data) % self._unit
        self._pending = data[whole:]
        return data[:whole]


def _decode(decoder: AudioCodecContext, data: bytes, source: AudioFormat) -> list[AudioFrame]:
    try:
        frames = decoder.decode(av.Packet(data))
    except av.error.FFmpegError as exc:
        raise ProtocolError(f"undecodable {source.codec.name} audio: {exc}") from exc
    return [frame for frame in frames if isinstance(frame, AudioFrame)]


def _unit_bytes(source: AudioFormat) -> int:
    match source.codec:
        case AudioCodec.GSM:
            return GSM_FRAME_BYTES
        case AudioCodec.IMA_ADPCM:
            if source.block_align <= 0:
                raise ValueError("IMA ADPCM needs the block_align the camera announced")
            return source.block_align
        case AudioCodec.G726:
            if source.bits_per_sample not in _G726_RATES:
                raise ValueError(
                    f"G.726 bits per sample must be 2..5, not {source.bits_per_sample}"
                )
            # Eight codes fill a whole number of bytes; a shorter piece would lose its tail bits.
            return source.bits_per_sample
        case _:
            return 1


def _open_decoder(source: AudioFormat) -> AudioCodecContext:
    decoder = CodecContext.create(source.codec.value, "r")
    assert isinstance(decoder, AudioCodecContext)
    decoder.sample_rate = source.sample_rate
    decoder.layout = "mono"
    match source.codec:
        case AudioCodec.G726:
            decoder.options = {"bits_per_coded_sample": str(source.bits_per_sample)}
        case AudioCodec.IMA_ADPCM:
            decoder.options = {"block_align": str(source.block_align), "bits_per_coded_sample": "4"}
        case _:
            pass
    decoder.open()
    return decoder


def _open_aac(rate: int) -> AudioCodecContext:
    encoder = CodecContext.create("aac", "w")
    assert isinstance(encoder, AudioCodecContext)
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "fltp"
    encoder.bit_rate = 3 * rate  # 24/48 kbit/s: plenty for a camera microphone's narrow band
    encoder.time_base = Fraction(1, rate)
    encoder.open()
    return encoder
