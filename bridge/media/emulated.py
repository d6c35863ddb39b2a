"""The PyAV encoders the emulated cameras make their media with: JPEG pictures from planes, the
legacy audio codecs, a live ASF stream.

The gateway calls only the audio encoder (what a client says to a camera goes out in the
camera's codec, :mod:`bridge.media.talk`); it decodes what cameras send and encodes only H.264
and audio for its viewers. They live here because PyAV lives only in ``bridge/media``: the
emulators (``bridge/simulator``) draw their pictures and tones with numpy and hand them to these.

Nothing here is thread-safe: each object reuses its codec context across calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from numpy.typing import NDArray

from bridge.cameras.base import AudioCodec

IMA_BLOCK_ALIGN = 256
IMA_BLOCK_SAMPLES = 505  # the 4-byte block header holds the first sample, then 2 per byte
G726_BITS = 4  # bits per sample: 32 kbit/s at 8 kHz, Axis's audio/32KADPCM


class JpegEncoder:
    """Baseline JPEGs of one size, as an IP camera's snapshot CGI sends them.

    ``qscale`` is FFmpeg's MJPEG quantiser (1..31); ``pix_fmt`` the planar full-range layout
    of the planes handed to :meth:`encode` (``yuvj420p``: chroma halved both ways;
    ``yuvj422p``: halved across only, as most cameras send).
    """

    def __init__(self, width: int, height: int, qscale: int, pix_fmt: str = "yuvj420p") -> None:
        self._size = (width, height)
        self._pix_fmt = pix_fmt
        self._context = av.CodecContext.create("mjpeg", "w")
        self._context.width = width
        self._context.height = height
        self._context.pix_fmt = pix_fmt
        self._context.time_base = Fraction(1, 25)  # required to open; stills carry no timing
        self._context.qmin = self._context.qmax = qscale
        # Frame threads would hand each JPEG back a few calls late; encode() must return its own.
        self._context.thread_count = 1
        self._context.options = {
            # Annex K tables: what cameras send, what RTP/JPEG (RFC 2435) receivers assume, and
            # no second pass over the picture to build optimal ones.
            "huffman": "default",
            # Separate luma and chroma DQT, as camera JPEGs have and RFC 2435 packetizers expect.
            "force_duplicated_matrix": "1",
        }
        self._context.open()

    def encode(self, planes: Sequence[NDArray[np.uint8]]) -> bytes:
        """One JPEG (FFD8 ... FFD9) of the picture whose Y, Cb and Cr planes are given, each
        a 2-D array of its plane's size."""
        frame = av.VideoFrame(*self._size, self._pix_fmt)
        for plane, samples in zip(frame.planes, planes, strict=True):
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
            rows[:, : plane.width] = samples
        (packet,) = self._context.encode(frame)
        return bytes(packet)


_PyAvEncoderName = Literal["pcm_mulaw", "g726", "adpcm_ima_wav"]
# FFmpeg's encoder names (AudioCodec's values are its decoder names, which happen to match), and
# the sample format each takes natively, so PyAV hands it our frames unconverted.
_PYAV_ENCODERS: dict[AudioCodec, tuple[_PyAvEncoderName, str]] = {
    AudioCodec.MULAW: ("pcm_mulaw", "s16"),
    AudioCodec.G726: ("g726", "s16"),
    AudioCodec.IMA_ADPCM: ("adpcm_ima_wav", "s16p"),
}


class AudioEncoder:
    """Mono s16 samples to a legacy camera codec FFmpeg can encode (u-law, G.726 at
    ``bits_per_sample``, IMA ADPCM in 256-byte blocks); :attr:`batch_samples` at a time."""

    def __init__(
        self,
        codec: AudioCodec,
        sample_rate: int,
        fallback_batch: int,
        *,
        bits_per_sample: int = G726_BITS,
    ) -> None:
        name, sample_format = _PYAV_ENCODERS[codec]
        context = av.CodecContext.create(name, "w")
        context.sample_rate = sample_rate
        context.layout = "mono"
        context.format = sample_format
        if name == "g726":
            context.bit_rate = bits_per_sample * sample_rate
        if name == "adpcm_ima_wav":
            context.options = {"block_size": str(IMA_BLOCK_ALIGN)}
        context.open()
        self._context = context
        self._sample_rate = sample_rate
        # Fixed-frame encoders (G.726: 2048, IMA: one block) reject other sizes; PCM takes any.
        self.batch_samples = context.frame_size or fallback_batch

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        frame = av.AudioFrame.from_ndarray(
            pcm.reshape(1, -1), format=self._context.format.name, layout="mono"
        )
        frame.sample_rate = self._sample_rate
        return b"".join(bytes(packet) for packet in self._context.encode(frame))


# -- ASF ------------------------------------------------------------------------------------------

_ASF_TIME_BASE = Fraction(1, 1000)  # ASF timestamps are milliseconds
_ASF_AUDIO_RATE = 8000
# libavformat holds packets back until every stream has caught up (10 s by default); a camera
# whose audio stalls should delay its video by at most this much (microseconds).
_ASF_MAX_INTERLEAVE_DELTA = 500_000


class _Sink:
    """The muxer's output, drained by the caller after each write.

    It has no ``seek``: libavformat then writes a live (broadcast) ASF header instead of seeking
    back at the end to patch in sizes, which a stream being served cannot have.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def peek(self) -> bytes:
        return bytes(self._buffer)

    def drain(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class AsfMuxer:
    """A live ASF stream of MJPEG video and IMA ADPCM audio, as Foscam serves /videostream.asf.

    Feed JPEGs (e.g. from the emulators' ``TestPattern``) and IMA ADPCM blocks (from their
    ``ToneEncoder(AudioCodec.IMA_ADPCM)``) with timestamps rising per stream; each call returns
    the bytes the muxer let out, which may be empty while it interleaves. The first bytes out
    are the header, so a client sent everything from the start gets a playable stream; after
    the header, output comes in whole ASF data packets, so a client that joins late can be sent
    :attr:`header` and then everything from its joining on.

    Not thread-safe.
    """

    def __init__(self, width: int, height: int, fps: float, pix_fmt: str = "yuvj420p") -> None:
        self._sink = _Sink()
        # "asf", not "asf_stream": the latter wraps everything in MMS-over-HTTP "$H"/"$D" chunks,
        # which plain HTTP clients (ffmpeg, VLC reading http://.../videostream.asf) cannot parse.
        self._container = av.open(
            self._sink,
            "w",
            format="asf",
            options={"max_interleave_delta": str(_ASF_MAX_INTERLEAVE_DELTA)},
        )
        # Streams are created with encoders, never used to encode: opening them is what fills in
        # the parameters the ASF header needs (pixel format; IMA block align, samples per block).
        self._video = self._container.add_stream(
            "mjpeg", rate=Fraction(fps).limit_denominator(1001)
        )
        self._video.codec_context.width = width
        self._video.codec_context.height = height
        self._video.codec_context.pix_fmt = pix_fmt
        self._audio = self._container.add_stream(
            "adpcm_ima_wav", rate=_ASF_AUDIO_RATE, options={"block_size": str(IMA_BLOCK_ALIGN)}
        )
        self._audio.codec_context.layout = "mono"
        self._container.start_encoding()
        self._header = self._sink.peek()
        self._last_stamp: dict[int, int] = {}  # per stream index, in ms

    @property
    def header(self) -> bytes:
        """The ASF header objects and the data object's header, as first returned."""
        return self._header

    def add_video(self, jpeg: bytes, pts_seconds: float) -> bytes:
        # Every JPEG stands alone; ASF readers start and seek on key-flagged objects only.
        self._mux(jpeg, self._video, pts_seconds, keyframe=True)
        return self._sink.drain()

    def add_audio(self, encoded_ima_adpcm: bytes, pts_seconds: float) -> bytes:
        """Mux whole IMA ADPCM blocks; the first one starts at `pts_seconds`."""
        if len(encoded_ima_adpcm) % IMA_BLOCK_ALIGN:
            raise ValueError(
                f"IMA ADPCM must come in whole {IMA_BLOCK_ALIGN}-byte blocks, "
                f"not {len(encoded_ima_adpcm)} bytes"
            )
        # One block per ASF media object, as cameras send it: each decodes on its own.
        for offset in range(0, len(encoded_ima_adpcm), IMA_BLOCK_ALIGN):
            block = encoded_ima_adpcm[offset : offset + IMA_BLOCK_ALIGN]
            start = pts_seconds + offset // IMA_BLOCK_ALIGN * IMA_BLOCK_SAMPLES / _ASF_AUDIO_RATE
            self._mux(block, self._audio, start, keyframe=False)
        return self._sink.drain()

    def close(self) -> bytes:
        """Flush what the interleaver holds and end the stream; returns the last bytes."""
        self._container.close()
        return self._sink.drain()

    def _mux(
        self, data: bytes, stream: av.stream.Stream, pts_seconds: float, *, keyframe: bool
    ) -> None:
        packet = av.Packet(data)
        packet.is_keyframe = keyframe
        packet.stream = stream
        packet.time_base = _ASF_TIME_BASE
        # Two pictures in one millisecond (a burst after a stall) would repeat a timestamp,
        # which the muxer refuses: each stream's stamps keep increasing.
        stamp = max(round(pts_seconds * 1000), self._last_stamp.get(stream.index, -1) + 1)
        self._last_stamp[stream.index] = stamp
        packet.pts = packet.dts = stamp
        self._container.mux(packet)
