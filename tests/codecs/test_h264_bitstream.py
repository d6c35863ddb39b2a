"""H.264 bitstream facts, byte by byte: Annex B splitting, NAL unit types, the SPS. The media
pipeline cuts the encoder's output with them and the RTP side describes the stream with them."""

from __future__ import annotations

import base64
from fractions import Fraction

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.codecs.h264 import (
    NAL_AUD,
    NAL_PPS,
    NAL_SEI,
    NAL_SLICE,
    NAL_SPS,
    SpsInfo,
    check_sps,
    is_idr,
    nal_type,
    parse_sps,
    split_annexb,
)
from bridge.errors import ProtocolError
from bridge.streams import Codec, MediaTrack


def test_split_annexb() -> None:
    stream = (
        b"\x00\x00\x00\x01\x67AB"
        b"\x00\x00\x01\x68C"
        b"\x00\x00\x01\x00\x00\x01"  # an empty unit between two start codes
        b"\x65DE\x00F\x00\x00"  # trailing_zero_8bits
    )
    assert split_annexb(stream) == [b"\x67AB", b"\x68C", b"\x65DE\x00F"]
    assert split_annexb(b"\x00\x00\x00\x00\x01\x09\x10") == [b"\x09\x10"]
    for bad in (b"", b"\x67AB", b"\x01\x00\x00\x01\x67"):
        with pytest.raises(ProtocolError, match="start code"):
            split_annexb(bad)


class _BitWriter:
    """Writes an SPS field by field, so tests can hit branches no encoder at hand emits."""

    def __init__(self) -> None:
        self._bits: list[str] = []

    def u(self, count: int, value: int) -> None:
        self._bits.append(format(value, f"0{count}b"))

    def ue(self, value: int) -> None:
        code = format(value + 1, "b")
        self._bits.append("0" * (len(code) - 1) + code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self, header: bytes) -> bytes:
        bits = "".join(self._bits) + "1"  # rbsp_stop_one_bit
        bits += "0" * (-len(bits) % 8)
        rbsp = int(bits, 2).to_bytes(len(bits) // 8, "big")
        out = bytearray(header)
        zeros = 0
        for byte in rbsp:  # emulation prevention
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def _high_profile_sps() -> bytes:
    """1920x1080 High profile: scaling matrices, POC type 1, cropping, emulation prevention."""
    w = _BitWriter()
    w.ue(0)  # seq_parameter_set_id
    w.ue(1)  # chroma_format_idc 4:2:0
    w.ue(0)  # bit_depth_luma_minus8
    w.ue(0)  # bit_depth_chroma_minus8
    w.u(1, 0)  # qpprime_y_zero_transform_bypass_flag
    w.u(1, 1)  # seq_scaling_matrix_present_flag
    w.u(1, 1)  # list 0 present: 16 explicit deltas
    for _ in range(16):
        w.se(1)
    w.u(1, 1)  # list 1 present: a delta to 0 means "use the default", list ends
    w.se(-8)
    w.u(4, 0)  # lists 2..5 absent
    w.u(1, 1)  # list 6 (8x8) present
    for _ in range(64):
        w.se(2)
    w.u(1, 0)  # list 7 absent
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(1)  # pic_order_cnt_type
    w.u(1, 0)  # delta_pic_order_always_zero_flag
    w.se(-(2**24))  # offset_for_non_ref_pic: a long code full of zero bits
    w.se(0)  # offset_for_top_to_bottom_field
    w.ue(2)  # num_ref_frames_in_pic_order_cnt_cycle
    w.se(2**18)
    w.se(-3)
    w.ue(4)  # max_num_ref_frames
    w.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    w.ue(119)  # pic_width_in_mbs_minus1: 1920
    w.ue(67)  # pic_height_in_map_units_minus1: 1088
    w.u(1, 1)  # frame_mbs_only_flag
    w.u(1, 1)  # direct_8x8_inference_flag
    w.u(1, 1)  # frame_cropping_flag
    for crop in (0, 0, 0, 4):  # bottom 4 chroma rows: 8 luma rows
        w.ue(crop)
    w.u(1, 0)  # vui_parameters_present_flag
    return w.nal(b"\x67\x64\x00\x28")


def test_parse_hand_made_high_profile_sps() -> None:
    sps = _high_profile_sps()
    assert b"\x00\x00\x03" in sps  # the emulation prevention path is exercised
    assert parse_sps(sps) == SpsInfo(100, 0x00, 40, 1920, 1080)


@pytest.mark.parametrize(
    ("sps_hex", "expected"),
    [
        # x264 baseline 320x240 (the SPS in FFmpeg's own SDP, which says profile-level-id 42C00D)
        (base64.b64decode("Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==").hex(), (66, 0xC0, 13, 320, 240)),
        ("674d4015f40a087e5840000003004000000c87c50aa8", (77, 0x40, 21, 320, 240)),  # interlaced
        ("677a000abcb423d080000003008000001907891350", (122, 0, 10, 64, 48)),  # 4:2:2
        ("67f4000a919685278f8f84000003000400000300c83c489a80", (244, 0, 10, 66, 50)),  # 4:4:4
    ],
)
def test_parse_x264_sps(sps_hex: str, expected: tuple[int, ...]) -> None:
    assert parse_sps(bytes.fromhex(sps_hex)) == expected


def test_odd_size_is_cropped() -> None:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 330, 250, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"preset": "ultrafast"}
    frame = av.VideoFrame(330, 250, "yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))
    sps = next(nal for nal in split_annexb(data) if nal_type(nal) == NAL_SPS)
    assert parse_sps(sps)[3:] == (330, 250)


def test_sps_errors() -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        parse_sps(bytes.fromhex("6742c00dda05"))
    with pytest.raises(ProtocolError, match="sequence parameter set"):
        parse_sps(b"\x68\x42\x00\x1f\xff")
    with pytest.raises(ProtocolError, match="sequence parameter set"):
        check_sps(b"\x67\x42")
    with pytest.raises(ProtocolError, match="32 bits"):
        parse_sps(b"\x67\x42\x00\x1f" + bytes(5) + b"\x80")
    w = _BitWriter()
    for value in (0, 0, 0, 0, 0):  # id, frame_num, poc type 0, poc lsb, ref frames
        w.ue(value)
    w.u(1, 0)
    w.ue(0)
    w.ue(0)
    w.u(3, 0b111)
    w.ue(10)
    w.ue(0)
    w.ue(0)
    w.ue(0)  # crop 20 pixels off a 16-pixel picture
    with pytest.raises(ProtocolError, match="empty picture"):
        parse_sps(w.nal(b"\x67\x42\x00\x1f"))


def test_start_codes_of_three_and_four_bytes_and_leading_zeros() -> None:
    units = [b"\x09\xf0", b"\x67\x42\xc0\x0d", b"\x68\xce", b"\x65\x88\x84"]
    three = b"".join(b"\x00\x00\x01" + nal for nal in units)
    four = b"".join(b"\x00\x00\x00\x01" + nal for nal in units)
    assert split_annexb(three) == split_annexb(four) == units
    assert split_annexb(b"\x00" * 7 + b"\x01" + units[3]) == units[3:]  # zero_byte padding
    with pytest.raises(ProtocolError, match="start code"):
        split_annexb(b"\x00\x07\x00\x00\x01" + units[3])  # data before the first start code


def test_emulation_prevention_is_no_start_code() -> None:
    # 00 00 03 01 inside a slice is escaped data, not a start code: the unit stays whole.
    slice_nal = b"\x41\x9a\x00\x00\x03\x01\x02\x00\x00\x03\x00\x80"
    assert split_annexb(b"\x00\x00\x01" + slice_nal) == [slice_nal]


def test_nal_type_reads_five_bits_whatever_the_header_bits() -> None:
    assert [nal_type(bytes((header,))) for header in (0x67, 0x27, 0x07, 0xE7)] == [NAL_SPS] * 4
    assert nal_type(b"\x68") == NAL_PPS
    assert nal_type(b"\x06") == NAL_SEI
    assert nal_type(b"\x09") == NAL_AUD
    assert nal_type(b"\x41") == NAL_SLICE
    assert is_idr(b"\x65")
    assert is_idr(b"\x25")  # NRI does not matter
    assert not is_idr(b"\x41")


def test_check_sps_wants_a_whole_sps_header() -> None:
    check_sps(b"\x67\x42\xc0\x0d")
    for bad in (b"\x67\x42\xc0", b"\x68\x42\xc0\x0d", b""):
        with pytest.raises(ProtocolError, match="sequence parameter set"):
            check_sps(bad)


@given(st.binary(max_size=40))
def test_any_bytes_split_or_refuse_and_never_keep_a_start_code(data: bytes) -> None:
    try:
        units = split_annexb(b"\x00\x00\x01" + data)
    except ProtocolError:
        return
    for nal in units:
        assert nal
        assert b"\x00\x00\x01" not in nal
        assert nal[-1] != 0  # a NAL unit never ends in a zero byte


def test_a_track_keeps_the_parameter_sets_of_its_latest_keyframe() -> None:
    """The producer, the one writer of a track's parameters, hands each keyframe's NAL units
    over; a reopened encoder's new SPS replaces the old one, slices and SEI change nothing."""
    track = MediaTrack(Codec.H264)
    assert not track.describable
    first = [b"\x09\xf0", b"\x67\x42\xc0\x0d", b"\x68\xce\x01", b"\x06\x05", b"\x65\x88"]
    track.learn_parameter_sets(first)
    assert (track.sps, track.pps, track.describable) == (first[1], first[2], True)
    track.learn_parameter_sets([b"\x41\x9a"])
    assert (track.sps, track.pps) == (first[1], first[2])
    reopened = [b"\x67\x64\x00\x28", b"\x68\xeb", b"\x65\x88"]
    track.learn_parameter_sets(reopened)
    assert (track.sps, track.pps) == (reopened[0], reopened[1])
