"""The emulators' media: JPEG test pattern, tone encoders and the Foscam ASF stream."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import decode_jpeg, dominant_frequency
from numpy.typing import NDArray

# The module, not its names: pytest would try to collect a class called TestPattern.
from bridge.codecs.jpeg import check_header
from bridge.rtsp.jpeg import parse_jpeg
from bridge.simulator import media
from bridge.simulator.media import AsfMuxer, AudioCodec, ToneEncoder

NOON = datetime.datetime(2024, 5, 6, 12, 34, 56)
# Rows of a VGA frame clear of the clock (top), the counter (bottom) and, at frame 0, the box.
MIDDLE = slice(150, 330)


def luma(data: bytes) -> NDArray[np.float64]:
    return decode_jpeg(data).to_ndarray(format="gray").astype(np.float64)


def mean_difference(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return float(np.mean(np.abs(a - b)))


@pytest.fixture(scope="module")
def vga() -> media.TestPattern:
    return media.TestPattern(640, 480)


# -- TestPattern ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (176, 144), (64, 48)])
def test_render_is_a_baseline_jpeg_of_the_requested_size(width: int, height: int) -> None:
    data = media.TestPattern(width, height).render(7, NOON)
    assert data.startswith(b"\xff\xd8")
    assert data.endswith(b"\xff\xd9")
    assert b"\xff\xc0" in data  # SOF0, baseline
    assert b"\xff\xc2" not in data  # no progressive SOF
    frame = decode_jpeg(data)
    assert (frame.width, frame.height) == (width, height)
    assert frame.format.name in {"yuvj420p", "yuvj422p"}


@pytest.mark.parametrize(
    ("chroma", "pix_fmt", "sampling"),
    [
        # What cameras send, in libjpeg's layout, which RTP/JPEG carries as type 0 ...
        ("4:2:2", "yuvj422p", ((2, 1), (1, 1), (1, 1))),
        # ... and, on request, FFmpeg's default (RTP/JPEG type 1).
        ("4:2:0", "yuvj420p", ((2, 2), (1, 1), (1, 1))),
    ],
)
def test_chroma_subsampling_is_a_cameras(
    chroma: media.Chroma, pix_fmt: str, sampling: tuple[tuple[int, int], ...]
) -> None:
    data = media.TestPattern(320, 240, chroma=chroma).render(7, NOON, pan=0.5, tilt=0.3)
    assert check_header(data).sampling == sampling
    assert parse_jpeg(data).type == sampling[0][1] - 1
    frame = decode_jpeg(data)
    assert frame.format.name == pix_fmt
    # Both draw the same picture: the box and the hue ramps land alike whatever the layout.
    other = media.TestPattern(320, 240, chroma="4:2:0" if chroma == "4:2:2" else "4:2:2")
    twin = decode_jpeg(other.render(7, NOON, pan=0.5, tilt=0.3))
    rgb = frame.to_ndarray(format="rgb24").astype(np.float64)
    assert np.mean(np.abs(rgb - twin.to_ndarray(format="rgb24"))) < 2.0


def test_default_is_4_2_2() -> None:
    data = media.TestPattern(64, 48).render(0, NOON)
    assert decode_jpeg(data).format.name == "yuvj422p"


def test_unknown_chroma_is_refused() -> None:
    with pytest.raises(ValueError, match="chroma must be one of"):
        media.TestPattern(64, 48, chroma="4:4:4")  # type: ignore[arg-type]


def test_consecutive_frames_differ(vga: media.TestPattern) -> None:
    first, second = luma(vga.render(1, NOON)), luma(vga.render(2, NOON))
    assert mean_difference(first, second) > 0.5


def test_clock_change_redraws_only_the_clock(vga: media.TestPattern) -> None:
    before = luma(vga.render(1, NOON))
    after = luma(vga.render(1, NOON + datetime.timedelta(seconds=1)))
    assert mean_difference(before[:100, :400], after[:100, :400]) > 1.0
    assert mean_difference(before[100:], after[100:]) < 0.5


def test_pan_and_tilt_move_the_background(vga: media.TestPattern) -> None:
    home = luma(vga.render(0, NOON))
    # pan 0.5 turns the view a quarter of the frame width (160 px) right.
    panned = luma(vga.render(0, NOON, pan=0.5))
    assert mean_difference(panned[MIDDLE, :480], home[MIDDLE, 160:]) < 3.0
    assert mean_difference(panned[MIDDLE], home[MIDDLE]) > 10.0
    # tilt 0.5 raises it a quarter of the frame height (120 px).
    tilted = luma(vga.render(0, NOON, tilt=0.5))
    assert mean_difference(tilted[270:330], home[150:210]) < 3.0
    assert mean_difference(tilted[MIDDLE], home[MIDDLE]) > 10.0


def test_zoom_magnifies_the_centre(vga: media.TestPattern) -> None:
    home = luma(vga.render(0, NOON))
    zoomed = luma(vga.render(0, NOON, zoom=1.0))
    # Fully zoomed in, the frame shows the central quarter of the home view, 4x larger.
    centre = home[180:300, 240:400].repeat(4, axis=0).repeat(4, axis=1)
    assert mean_difference(zoomed[MIDDLE], centre[MIDDLE]) < 6.0
    assert mean_difference(zoomed[MIDDLE], home[MIDDLE]) > 10.0


def test_mirror_and_flip_turn_the_scene_over(vga: media.TestPattern) -> None:
    home = luma(vga.render(0, NOON))
    mirrored = luma(vga.render(0, NOON, mirror=True))
    assert mean_difference(mirrored[MIDDLE], home[MIDDLE, ::-1]) < 3.0
    flipped = luma(vga.render(0, NOON, flip=True))
    assert mean_difference(flipped[MIDDLE], home[MIDDLE][::-1]) < 3.0
    # The overlay stays readable: the clock's plate is still top left, unmirrored.
    clock = np.s_[10:80, 10:300]
    assert mean_difference(mirrored[clock], home[clock]) < 1.0


def test_box_moves_with_the_frame_number(vga: media.TestPattern) -> None:
    def box_centre(frame_number: int) -> tuple[float, float]:
        frame = decode_jpeg(vga.render(frame_number, NOON)).to_ndarray(format="rgb24")
        red, green, blue = (frame[..., i].astype(int) for i in range(3))
        rows, cols = np.nonzero((red > 200) & (green > 200) & (blue < 60))
        return float(rows.mean()), float(cols.mean())

    first, later = box_centre(0), box_centre(10)
    assert later[0] > first[0]
    assert later[1] > first[1]


def test_the_box_stands_where_its_travel_took_it(vga: media.TestPattern) -> None:
    """A caller that keeps box_travel keeps the box still: only the clock and the counter
    change, a calm scene for a motion detector."""
    still = [luma(vga.render(number, NOON, box_travel=30)) for number in (1, 50)]
    assert mean_difference(still[0][MIDDLE], still[1][MIDDLE]) < 0.2
    moved = luma(vga.render(51, NOON, box_travel=31))
    assert mean_difference(still[1][MIDDLE], moved[MIDDLE]) > 1.0


def test_quality_sets_the_compression() -> None:
    rough = media.TestPattern(640, 480, quality=20).render(0, NOON)
    fine = media.TestPattern(640, 480, quality=95).render(0, NOON)
    assert len(rough) < len(fine) / 2


@pytest.mark.parametrize(
    ("pan", "tilt", "zoom"), [(1.5, 0.0, 0.0), (0.0, -1.01, 0.0), (0.0, 0.0, -0.1), (0.0, 0.0, 1.1)]
)
def test_render_rejects_ptz_out_of_range(
    vga: media.TestPattern, pan: float, tilt: float, zoom: float
) -> None:
    with pytest.raises(ValueError, match="out of range"):
        vga.render(0, NOON, pan=pan, tilt=tilt, zoom=zoom)


@pytest.mark.parametrize(
    ("width", "height", "quality"), [(641, 480, 80), (32, 32, 80), (640, 480, 0)]
)
def test_pattern_rejects_bad_settings(width: int, height: int, quality: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        media.TestPattern(width, height, quality)


# -- ToneEncoder ----------------------------------------------------------------------------------


def decode_audio(codec: AudioCodec, data: bytes, block_align: int) -> NDArray[np.int16]:
    decoder = av.CodecContext.create(codec.value, "r")
    decoder.sample_rate = 8000
    decoder.layout = "mono"
    if codec is AudioCodec.G726:
        decoder.options = {"bits_per_coded_sample": "4"}
    if codec is AudioCodec.IMA_ADPCM:
        decoder.options = {"block_align": str(block_align), "bits_per_coded_sample": "4"}
    # GSM frames and IMA blocks go one per packet, as a camera's stream splits them.
    step = block_align if codec in {AudioCodec.GSM, AudioCodec.IMA_ADPCM} else len(data)
    frames = [
        frame
        for offset in range(0, len(data), step)
        for frame in decoder.decode(av.Packet(data[offset : offset + step]))
    ]
    return np.concatenate([frame.to_ndarray().ravel() for frame in frames]).astype(np.int16)


@pytest.mark.parametrize("codec", list(AudioCodec))
def test_tone_round_trips_as_a_clean_440_hz_tone(codec: AudioCodec) -> None:
    tone = ToneEncoder(codec)
    # Many short chunks: a phase jump between them would smear the spectrum.
    data = b"".join(tone.next_chunk(0.02) for _ in range(100))
    pcm = decode_audio(codec, data, tone.block_align)

    assert abs(len(pcm) / 8000 - 2.0) <= 505 / 8000
    assert len(data) / tone.bytes_per_second == pytest.approx(len(pcm) / 8000)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    peak = int(np.argmax(spectrum))
    assert peak * 8000 / len(pcm) == pytest.approx(440, abs=2)
    near_peak = spectrum[peak - 20 : peak + 21].sum()  # +-10 Hz
    assert near_peak / spectrum.sum() > 0.98
    assert 3000 < pcm.std() < 8000  # about -12 dBFS, far from clipping


@pytest.mark.parametrize(
    ("codec", "unit_bytes", "frame_bytes", "bytes_per_second"),
    [
        (AudioCodec.GSM, 33, 33, 1650),
        (AudioCodec.MULAW, 1, 160, 8000),
        (AudioCodec.G726, 1, 80, 4000),
        (AudioCodec.IMA_ADPCM, 256, 256, 256 * 8000 / 505),
    ],
)
def test_chunks_are_whole_codec_units(
    codec: AudioCodec, unit_bytes: int, frame_bytes: int, bytes_per_second: float
) -> None:
    tone = ToneEncoder(codec)
    assert tone.codec is codec
    assert tone.sample_rate == 8000
    assert tone.block_align == unit_bytes
    assert tone.bytes_per_second == pytest.approx(bytes_per_second)
    assert len(tone.next_chunk()) == frame_bytes
    chunks = [tone.next_chunk(0.03) for _ in range(100)]
    assert all(len(chunk) % unit_bytes == 0 for chunk in chunks)
    # Rounding never accumulates: the stream keeps time with what was asked for.
    total = sum(map(len, chunks)) + frame_bytes
    asked = 3.0 + tone.frame_samples / 8000
    assert abs(total / tone.bytes_per_second - asked) <= unit_bytes / bytes_per_second


def test_ima_chunks_shorter_than_a_block_come_out_empty_until_one_is_due() -> None:
    tone = ToneEncoder(AudioCodec.IMA_ADPCM)  # 505-sample blocks, 63 ms
    sizes = [len(tone.next_chunk(0.02)) for _ in range(6)]
    assert sizes == [0, 256, 0, 0, 256, 0]


def test_tone_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="8000 Hz only"):
        ToneEncoder(AudioCodec.GSM, sample_rate=16000)
    with pytest.raises(ValueError, match="cannot be sampled"):
        ToneEncoder(AudioCodec.MULAW, frequency=5000.0)
    with pytest.raises(ValueError, match="negative"):
        ToneEncoder(AudioCodec.MULAW).next_chunk(-0.1)


def test_gsm_without_libgsm_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    media._libgsm.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(ctypes, "CDLL", missing)
    with pytest.raises(OSError, match="libgsm1"):
        ToneEncoder(AudioCodec.GSM)


# -- AsfMuxer -------------------------------------------------------------------------------------

ASF_HEADER_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
ASF_PACKET_SIZE = 3200  # libavformat's default


def mux_two_seconds(width: int, height: int) -> tuple[AsfMuxer, list[bytes]]:
    """Frames at 10 fps and audio in 0.1 s chunks, fed in time order as an emulator would."""
    pattern = media.TestPattern(width, height)
    tone = ToneEncoder(AudioCodec.IMA_ADPCM)
    muxer = AsfMuxer(width, height, fps=10)
    outputs: list[bytes] = []
    audio_pts = 0.0
    for number in range(20):
        pts = number / 10
        outputs.append(muxer.add_video(pattern.render(number, NOON), pts))
        while audio_pts < pts + 0.1:
            chunk = tone.next_chunk(0.1)
            outputs.append(muxer.add_audio(chunk, audio_pts))
            audio_pts += len(chunk) / tone.bytes_per_second
    outputs.append(muxer.close())
    return muxer, outputs


def test_asf_stream_plays_back(tmp_path: Path) -> None:
    muxer, outputs = mux_two_seconds(320, 240)
    stream = b"".join(outputs)
    assert stream.startswith(muxer.header)
    assert muxer.header.startswith(ASF_HEADER_GUID)
    path = tmp_path / "videostream.asf"
    path.write_bytes(stream)

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "mjpeg"
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert audio.codec_context.name == "adpcm_ima_wav"
        assert (audio.codec_context.sample_rate, audio.codec_context.channels) == (8000, 1)
        frames = list(container.decode(video))
    assert len(frames) == 20
    assert (frames[0].width, frames[0].height) == (320, 240)

    with av.open(str(path)) as container:
        pcm = np.concatenate(
            [frame.to_ndarray().ravel() for frame in container.decode(audio=0)]
        ).astype(np.float64)
    assert abs(len(pcm) / 8000 - 2.0) <= 2 * 505 / 8000
    assert dominant_frequency(pcm, 8000) == pytest.approx(440, abs=2)


def test_asf_pictures_that_arrive_together_are_muxed(tmp_path: Path) -> None:
    """A burst after a stall: three pictures within one millisecond (the muxer refused the
    second one with EINVAL and the emulator's stream died with a traceback)."""
    pattern = media.TestPattern(160, 120)
    muxer = AsfMuxer(160, 120, fps=10)
    stream = b"".join(
        muxer.add_video(pattern.render(n, NOON), pts) for n, pts in enumerate([0.5, 0.5, 0.5004])
    )
    path = tmp_path / "burst.asf"
    path.write_bytes(stream + muxer.close())
    with av.open(str(path)) as container:
        assert len(list(container.decode(video=0))) == 3


def test_asf_output_after_the_header_is_whole_data_packets() -> None:
    muxer, outputs = mux_two_seconds(320, 240)
    data = b"".join(outputs[:-1])[len(muxer.header) :]
    assert data
    assert all(len(chunk) % ASF_PACKET_SIZE == 0 for chunk in outputs[1:-1])
    assert len(data) % ASF_PACKET_SIZE == 0


def test_asf_rejects_partial_ima_blocks() -> None:
    muxer = AsfMuxer(320, 240, fps=10)
    with pytest.raises(ValueError, match="whole 256-byte blocks"):
        muxer.add_audio(b"\0" * 100, 0.0)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
@pytest.mark.parametrize("late", [False, True], ids=["from-start", "joined-late"])
def test_ffprobe_reads_the_asf_from_a_pipe(late: bool) -> None:
    muxer, outputs = mux_two_seconds(320, 240)
    # A client joining late gets the header, then the stream from a packet boundary on.
    stream = muxer.header + b"".join(outputs[10:]) if late else b"".join(outputs)
    # Through stdin, so ffprobe cannot seek: as when it reads the camera over HTTP.
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", "-i", "pipe:0"],
        input=stream,
        capture_output=True,
        check=True,
    )
    streams = {entry["codec_type"]: entry for entry in json.loads(result.stdout)["streams"]}
    assert streams["video"]["codec_name"] == "mjpeg"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert int(streams["video"]["nb_read_frames"]) >= (10 if late else 20)
    assert streams["audio"]["codec_name"] == "adpcm_ima_wav"
    assert int(streams["audio"]["sample_rate"]) == 8000
    assert int(streams["audio"]["channels"]) == 1
    assert result.stderr == b""
