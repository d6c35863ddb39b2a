"""JPEG -> H.264: stream structure, keyframes on demand, colour range, sizes, errors, timestamps."""

from __future__ import annotations

import asyncio
import datetime
import functools
import itertools
import json
import math
import shutil
import statistics
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import ColorRange, Interpolation

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
    CodecJob,
    CodecThread,
    EncodedAccessUnit,
    EncoderSettings,
    Handback,
    PictureDecoder,
    TimestampSmoother,
    VideoTranscoder,
    Yuv420Canvas,
    h264_level,
    lowres_for,
)
from bridge.simulator import media as simulated

FPS = 15.0
STEP = round(CLOCK_RATE / FPS)
VGA = EncoderSettings(640, 480, FPS, 1_000_000)


def _value_noise(
    rng: np.random.Generator, cells: int, width: int, height: int
) -> np.ndarray[tuple[int, int], np.dtype[np.float32]]:
    """Random values on a grid ``cells`` wide, bilinearly interpolated to the picture: one
    octave of a natural-looking texture."""
    grid = rng.uniform(-1, 1, (cells * height // width + 2, cells + 2)).astype(np.float32)
    rows, cols = np.linspace(0, grid.shape[0] - 2, height), np.linspace(0, cells, width)
    r, c = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r)[:, None], (cols - c)[None, :]
    top = grid[r][:, c] * (1 - fc) + grid[r][:, c + 1] * fc
    bottom = grid[r + 1][:, c] * (1 - fc) + grid[r + 1][:, c + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def camera_jpegs(count: int, pix_fmt: str, width: int = 640, height: int = 480) -> list[bytes]:
    """Pictures like an IP camera's: a textured scene with edges, sensor noise (mostly in
    luma, as a camera's processing leaves it), a moving object; JPEG-coded 4:2:2 or 4:2:0,
    full range, at a quality that makes VGA ~40 KB and 720p ~90 KB, as such cameras send."""
    encoder = CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, pix_fmt
    encoder.time_base = Fraction(1, 15)
    encoder.color_range = ColorRange.JPEG
    encoder.qmin = encoder.qmax = 3
    encoder.open()
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = sum(w * _value_noise(rng, c, width, height) for c, w in ((4, 60), (16, 30), (64, 14)))
    shade = 30 * y / height
    scene = np.stack([110 + 0.9 * texture + shade, 120 + texture, 90 + 0.7 * texture - shade], -1)
    for _ in range(6):  # walls, cars, windows: flat areas with sharp edges
        left, top = rng.integers(0, width * 4 // 5), rng.integers(height // 3, height * 5 // 6)
        scene[top : top + height // 6, left : left + width // 5] = rng.uniform(40, 220, 3)
    jpegs = []
    for n in range(count):
        rgb = scene.copy()
        rgb[
            (x - (width // 8 + 9 * n) % width) ** 2 + (y - height / 2) ** 2 < (height / 10) ** 2
        ] = (
            200,
            40,
            40,
        )
        rgb += rng.normal(0, 3, (height, width, 1)) + rng.normal(0, 1, (height, width, 3))
        picture = np.clip(rgb, 0, 255).astype(np.uint8)
        frame = VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
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


async def test_one_codec_thread_decodes_once_for_both_profiles(vga422: list[bytes]) -> None:
    """Main and sub of a camera on its one thread: each picture decoded once, and both
    profiles' access units (and any queued before) handed to the loop in one wake-up."""
    thread = CodecThread("cam codecs")
    sub_settings = EncoderSettings(480, 360, FPS, 300_000)
    main, sub = VideoTranscoder(VGA, thread.decoder), VideoTranscoder(sub_settings, thread.decoder)
    held = threading.Event()
    ran_on: set[str] = set()

    def encode(transcoder: VideoTranscoder, jpeg: bytes, n: int) -> EncodedAccessUnit | None:
        ran_on.add(threading.current_thread().name)
        return transcoder.encode(jpeg, n * STEP, force_idr=n == 2)

    units: list[tuple[EncodedAccessUnit | None, EncodedAccessUnit | None]] = []
    try:
        for n, jpeg in enumerate(vga422[:4]):
            # The thread is held busy until both profiles queued their picture.
            blocker = thread.run(functools.partial(held.wait, 10))
            pair = (thread.run(functools.partial(encode, main, jpeg, n)),
                    thread.run(functools.partial(encode, sub, jpeg, n)))  # fmt: skip
            held.set()
            assert await blocker
            units.append((await pair[0], await pair[1]))
            held.clear()
    finally:
        thread.close()
    assert thread.decoder.decoded == 4
    assert thread.handovers == 4
    assert len(ran_on) == 1
    assert threading.current_thread().name not in ran_on
    for profile in (0, 1):
        encoded = [pair[profile] for pair in units]
        assert [u is not None and u.keyframe for u in encoded] == [True, False, True, False]
        assert [u.pts_90k for u in encoded if u is not None] == [0, STEP, 2 * STEP, 3 * STEP]
    sizes = {(f.width, f.height) for f in decode_h264([u for u, _ in units if u is not None])}
    assert sizes == {(640, 480)}
    sizes = {(f.width, f.height) for f in decode_h264([u for _, u in units if u is not None])}
    assert sizes == {(480, 360)}


async def test_codec_thread_hands_errors_back_and_cancels_on_close() -> None:
    thread = CodecThread("cam codecs")
    started, held = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return held.wait(10)

    try:
        with pytest.raises(ProtocolError, match="bad picture"):
            await thread.run(functools.partial(_raise, ProtocolError("bad picture")))
        busy = thread.run(hold)
        queued = thread.run(functools.partial(int, "1"))
        assert await asyncio.to_thread(started.wait, 10)
    finally:
        thread.close()
        held.set()
    assert await busy  # the job under way finishes
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="closed"):
        thread.run(functools.partial(int, "1"))


async def test_results_of_several_cameras_share_one_wake_up() -> None:
    """What codec threads finish while the loop is busy goes back in one wake-up."""
    loop = asyncio.get_running_loop()
    handback = Handback(loop)
    futures = [loop.create_future() for _ in range(3)]
    for n, future in enumerate(futures):  # three cameras, while the loop runs this test
        handback.put([(CodecJob(future, int, None), n, None)])
    assert handback.wakeups == 1
    assert await asyncio.gather(*futures) == [0, 1, 2]
    later = loop.create_future()
    handback.put([(CodecJob(later, int, None), None, ProtocolError("bad picture"))])
    assert handback.wakeups == 2
    with pytest.raises(ProtocolError):
        await later


def _raise(error: Exception) -> None:
    raise error


def _planes(frame: VideoFrame) -> list[np.ndarray[tuple[int, int], np.dtype[np.float64]]]:
    """Y, U, V of a yuv420p frame, without the line padding."""
    sizes = [(frame.width, frame.height)] + [(frame.width // 2, frame.height // 2)] * 2
    return [
        np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows, :columns].astype(float)
        for plane, (columns, rows) in zip(frame.planes, sizes, strict=True)
    ]


def _psnr(
    a: np.ndarray[tuple[int, int], np.dtype[np.float64]],
    b: np.ndarray[tuple[int, int], np.dtype[np.float64]],
) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _swscale(picture: VideoFrame) -> VideoFrame:
    """The conversion the gateway used before (and still uses where it must scale)."""
    return picture.reformat(
        picture.width, picture.height, format="yuv420p", interpolation=Interpolation.BILINEAR
    )


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720)])
def test_the_cheaper_conversion_matches_swscale(width: int, height: int) -> None:
    """4:2:2 to 4:2:0 by averaging chroma row pairs in numpy, against swscale's bilinear
    filter: luma identical, chroma >= 50 dB PSNR on camera-like pictures, i.e. differences
    of rounding (one level in 255 is 48 dB), far below what x264 loses (~40 dB)."""
    decoder = PictureDecoder()
    canvas = Yuv420Canvas(width, height)
    for jpeg in camera_jpegs(3, "yuvj422p", width, height):
        picture = decoder.decode(jpeg, (width, height), 0)
        assert picture.format.name == "yuvj422p"
        filled = canvas.fill(picture)
        assert filled is canvas.frame
        (y, u, v), (ry, ru, rv) = _planes(filled), _planes(_swscale(picture))
        assert np.array_equal(y, ry)
        assert _psnr(u, ru) >= 50
        assert _psnr(v, rv) >= 50
    # 4:2:0 is copied as it is.
    picture = decoder.decode(camera_jpegs(1, "yuvj420p", width, height)[0], (width, height), 0)
    filled = canvas.fill(picture)
    assert filled is not None
    assert all(
        np.array_equal(a, b)
        for a, b in zip(_planes(filled), _planes(_swscale(picture)), strict=True)
    )
    # What it cannot take (another size, another chroma layout), swscale converts.
    assert Yuv420Canvas(320, 240).fill(picture) is None
    assert canvas.fill(picture.reformat(format="yuvj444p")) is None


def test_the_stream_loses_nothing_to_the_cheaper_conversion(
    vga422: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a viewer sees (the decoded stream in RGB, as a player shows it) against the
    camera's pictures: within 0.2 dB of the stream the swscale conversion made."""
    pictures = vga422[:15]
    decoder = PictureDecoder()
    originals = [_rgb(decoder.decode(jpeg, (640, 480), 0)) for jpeg in pictures]

    def quality() -> float:
        frames = decode_h264(transcode(VideoTranscoder(VGA), pictures))
        return statistics.mean(_psnr(_rgb(f), o) for f, o in zip(frames, originals, strict=True))

    cheaper = quality()
    monkeypatch.setattr(Yuv420Canvas, "fill", lambda canvas, picture: None)
    before = quality()
    assert cheaper >= before - 0.2, (cheaper, before)
    assert before > 30  # the comparison is of real pictures, not of noise


def _rgb(frame: VideoFrame) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
    return frame.to_ndarray(format="rgb24").astype(float)


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
