"""JPEG -> H.264: stream structure, keyframes on demand, colour range, sizes, errors, timestamps."""

from __future__ import annotations

import datetime
import itertools
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import ColorRange

from bridge.codecs.h264 import (
    NAL_IDR,
    NAL_PPS,
    NAL_SLICE,
    NAL_SPS,
    nal_type,
    parse_sps,
    split_annexb,
)
from bridge.codecs.jpeg import jpeg_size
from bridge.errors import ProtocolError
from bridge.media.transcode import (
    CLOCK_RATE,
    EncodedAccessUnit,
    EncoderSettings,
    EncoderWorker,
    TimestampSmoother,
    VideoTranscoder,
    h264_level,
    lowres_for,
)
from bridge.simulator import media as simulated

FPS = 15.0
STEP = round(CLOCK_RATE / FPS)
VGA = EncoderSettings(640, 480, FPS, 1_000_000)


def camera_jpegs(count: int, pix_fmt: str, width: int = 640, height: int = 480) -> list[bytes]:
    """Moving pictures JPEG-coded the way IP cameras send them (4:2:2 or 4:2:0, full range)."""
    encoder = CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, pix_fmt
    encoder.time_base = Fraction(1, 15)
    encoder.color_range = ColorRange.JPEG
    encoder.open()
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width]
    jpegs = []
    for n in range(count):
        rgb = np.stack(
            [(x + 8 * n) % 256, (y + 4 * n) % 256, ((x + y) // 2 + 6 * n) % 256], axis=-1
        ).astype(np.uint8)
        rgb = np.clip(rgb.astype(np.int16) + rng.integers(-8, 9, rgb.shape), 0, 255).astype(
            np.uint8
        )
        frame = VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        jpegs.append(b"".join(bytes(p) for p in encoder.encode(frame)))
    return jpegs


@pytest.fixture(scope="module")
def vga422() -> list[bytes]:
    return camera_jpegs(30, "yuvj422p")


@pytest.fixture(scope="module")
def vga420() -> list[bytes]:
    now = datetime.datetime.now(datetime.UTC)
    pattern = simulated.TestPattern(640, 480)
    return [pattern.render(n, now) for n in range(30)]


def transcode(
    transcoder: VideoTranscoder, jpegs: list[bytes], force: frozenset[int] = frozenset()
) -> list[EncodedAccessUnit]:
    units = []
    for n, jpeg in enumerate(jpegs):
        unit = transcoder.encode(jpeg, n * STEP, force_idr=n in force)
        assert unit is not None, "zerolatency x264 must not hold a picture back"
        units.append(unit)
    return units


def decode_h264(units: list[EncodedAccessUnit]) -> list[VideoFrame]:
    decoder = CodecContext.create("h264", "r")
    frames = []
    for unit in units:
        for frame in decoder.decode(av.Packet(unit.data)):
            assert isinstance(frame, VideoFrame)
            frames.append(frame)
    for frame in decoder.decode(None):
        assert isinstance(frame, VideoFrame)
        frames.append(frame)
    return frames


def nal_types(unit: EncodedAccessUnit) -> list[int]:
    return [nal_type(nal) for nal in split_annexb(unit.data)]


@pytest.mark.parametrize("source", ["vga422", "vga420"])
def test_stream_structure(source: str, request: pytest.FixtureRequest) -> None:
    jpegs: list[bytes] = request.getfixturevalue(source)
    assert jpeg_size(jpegs[0]) == (640, 480)
    units = transcode(VideoTranscoder(VGA), jpegs)

    first = nal_types(units[0])
    assert first[:2] == [NAL_SPS, NAL_PPS]
    assert first[-1] == NAL_IDR
    sps = parse_sps(units[0].sps)
    assert (sps.width, sps.height) == (640, 480)
    assert sps.profile_idc == 66
    assert sps.constraint_flags & 0x40
    assert sps.level_idc == 30

    gop = VGA.gop
    assert gop == 15
    for n, unit in enumerate(units):
        types = nal_types(unit)
        assert unit.pts_90k == n * STEP
        assert unit.keyframe == (n % gop == 0)
        if unit.keyframe:
            assert types.index(NAL_SPS) < types.index(NAL_PPS) < types.index(NAL_IDR)
            assert split_annexb(unit.data)[types.index(NAL_SPS)] == unit.sps
        else:
            assert set(types) == {NAL_SLICE}, "SPS/PPS only ahead of IDRs"
        assert unit.sps == units[0].sps
        assert unit.pps == units[0].pps

    frames = decode_h264(units)
    assert len(frames) == len(jpegs)
    assert {(f.width, f.height) for f in frames} == {(640, 480)}
    assert {f.pict_type for f in frames} <= {PictureType.I, PictureType.P}
    # JPEG levels are full range; the stream must say so or players stretch them.
    assert {f.color_range for f in frames} == {ColorRange.JPEG}


def test_force_idr_on_a_p_position(vga422: list[bytes]) -> None:
    units = transcode(VideoTranscoder(VGA), vga422[:20], force=frozenset({4}))
    keyframes = [n for n, unit in enumerate(units) if unit.keyframe]
    # The GOP restarts at the forced IDR.
    assert keyframes == [0, 4, 19]
    assert nal_types(units[4])[:2] == [NAL_SPS, NAL_PPS]
    assert nal_types(units[4])[-1] == NAL_IDR


def test_sub_profile_decodes_at_reduced_size_only_where_it_is_faster(
    vga422: list[bytes],
) -> None:
    assert lowres_for((640, 480), (320, 240)) == 0  # half size: measured slower
    assert lowres_for((640, 480), (160, 120)) == 2
    assert lowres_for((640, 480), (162, 120)) == 0
    assert lowres_for((1280, 960), (160, 120)) == 3
    assert lowres_for((2560, 1920), (160, 120)) == 3
    transcoder = VideoTranscoder(EncoderSettings(160, 120, FPS, 100_000))
    units = transcode(transcoder, vga422[:10])
    assert transcoder.lowres == 2
    sps = parse_sps(units[0].sps)
    assert (sps.width, sps.height) == (160, 120)
    frames = decode_h264(units)
    assert [(f.width, f.height) for f in frames] == [(160, 120)] * 10


def test_corrupt_jpeg_raises_and_transcoder_recovers(vga422: list[bytes]) -> None:
    transcoder = VideoTranscoder(VGA)
    assert transcoder.encode(vga422[0], 0) is not None
    good = vga422[1]
    # A valid header over a scan of garbage: the decoder itself must fail.
    header_end = good.index(b"\xff\xda")
    corrupt = good[:header_end] + b"\xff\xda\x00\x02" + b"\xff\xd9"
    with pytest.raises(ProtocolError):
        transcoder.encode(corrupt, STEP)
    with pytest.raises(ProtocolError):
        transcoder.encode(b"\x00" * 100, STEP)
    # A header claiming 65000x65000 (0xFDE8) is refused before the decoder or encoder see it.
    sof = good.index(b"\xff\xc0")
    with pytest.raises(ProtocolError, match="65000x65000"):
        transcoder.encode(good[: sof + 5] + b"\xfd\xe8\xfd\xe8" + good[sof + 9 :], STEP)
    unit = transcoder.encode(good, 2 * STEP)
    assert unit is not None
    assert unit.pts_90k == 2 * STEP
    assert not unit.keyframe, "a bad picture must not restart the encoder"


def test_source_size_change_reopens(vga422: list[bytes]) -> None:
    transcoder = VideoTranscoder(VGA)
    before = transcode(transcoder, vga422[:3])
    small = camera_jpegs(3, "yuvj422p", 320, 240)
    after = [transcoder.encode(jpeg, (3 + n) * STEP) for n, jpeg in enumerate(small)]
    assert [u is not None and u.keyframe for u in after] == [True, False, False]
    frames = decode_h264([*before, *(u for u in after if u is not None)])
    assert [(f.width, f.height) for f in frames] == [(640, 480)] * 6


def test_level_follows_size_and_rate() -> None:
    assert h264_level(640, 480, 15, 1_000_000) == "3.0"
    assert h264_level(1280, 720, 15, 2_000_000) == "3.1"
    assert h264_level(1280, 720, 30, 4_000_000) == "3.1"
    assert h264_level(1920, 1080, 30, 8_000_000) == "4.0"
    with pytest.raises(ValueError, match="gop_seconds"):
        EncoderSettings(640, 480, 15, 1_000_000, gop_seconds=3)
    with pytest.raises(ValueError, match="even"):
        EncoderSettings(641, 480, 15, 1_000_000)


def test_ffprobe_reads_the_stream(vga420: list[bytes], tmp_path: Path) -> None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not installed")
    path = tmp_path / "out.h264"
    path.write_bytes(b"".join(u.data for u in transcode(VideoTranscoder(VGA), vga420)))
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=20,
    )
    (stream,) = json.loads(result.stdout)["streams"]
    assert stream["codec_name"] == "h264"
    assert (stream["width"], stream["height"]) == (640, 480)
    assert stream["profile"] == "Constrained Baseline"
    assert stream["color_range"] == "pc"
    assert stream["has_b_frames"] == 0


async def test_worker_encodes_off_the_loop(vga422: list[bytes]) -> None:
    worker = EncoderWorker(VGA)
    try:
        units = [
            await worker.encode(jpeg, n * STEP, force_idr=n == 2)
            for n, jpeg in enumerate(vga422[:4])
        ]
    finally:
        worker.close()
    assert [u is not None and u.keyframe for u in units] == [True, False, True, False]
    pts = [u.pts_90k for u in units if u is not None]
    assert pts == [0, STEP, 2 * STEP, 3 * STEP]


def test_smoother_evens_out_jitter() -> None:
    smoother = TimestampSmoother(FPS)
    rng = np.random.default_rng(1)
    arrivals = 50.0 + np.arange(300) / FPS + rng.uniform(-0.015, 0.015, 300)
    pts = np.array([smoother.next_pts(float(t)) for t in arrivals])
    steps = np.diff(pts)
    assert (steps > 0).all()
    # Arrivals jitter by up to +-15 ms (+-1350 ticks); the timestamps by far less.
    assert np.abs(steps[30:] - STEP).max() < 300
    # And they stay on the arrival clock.
    assert abs(pts[-1] - (arrivals[-1] - arrivals[0]) * CLOCK_RATE) < 0.02 * CLOCK_RATE


def test_smoother_follows_a_slower_camera() -> None:
    smoother = TimestampSmoother(FPS)
    pts = [smoother.next_pts(n / 10) for n in range(200)]  # runs at 10 fps, not 15
    assert abs((pts[-1] - pts[-2]) - CLOCK_RATE / 10) < 300
    assert abs(pts[-1] - 199 / 10 * CLOCK_RATE) < 0.02 * CLOCK_RATE


def test_smoother_keeps_a_gap() -> None:
    smoother = TimestampSmoother(FPS)
    pts = [smoother.next_pts(n / FPS) for n in range(30)]
    after_gap = smoother.next_pts(29 / FPS + 5.0)
    assert abs(after_gap - pts[-1] - 5 * CLOCK_RATE) < 0.01 * CLOCK_RATE
    assert smoother.next_pts(29 / FPS + 5.0 + 1 / FPS) - after_gap == pytest.approx(STEP, abs=50)


def test_smoother_strictly_increases_on_equal_or_backward_arrivals() -> None:
    smoother = TimestampSmoother()
    pts = [smoother.next_pts(t) for t in (3.0, 3.0, 3.0, 2.9, 3.1, 3.1)]
    assert all(b > a for a, b in itertools.pairwise(pts))


def test_smoother_smooths_a_one_fps_camera() -> None:
    smoother = TimestampSmoother(1.0)
    arrivals = [10.0, 11.05, 11.98, 13.02, 14.0]
    pts = [smoother.next_pts(t) for t in arrivals]
    steps = [b - a for a, b in itertools.pairwise(pts)]
    # Its one-second interval is no pause: steps stay near 1 s instead of copying the jitter.
    assert all(abs(step - CLOCK_RATE) < 0.01 * CLOCK_RATE for step in steps)
