"""H.264 bitstream facts (ITU-T H.264): NAL unit types, Annex B byte streams, the sequence
parameter set. No I/O, no PyAV, no RTP: the media pipeline (which cuts encoder output into NAL
units) and the RTP payload format (bridge/rtsp/h264.py) both build on it.
"""

from __future__ import annotations

from typing import NamedTuple

from bridge.errors import ProtocolError

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

_START_CODE = b"\x00\x00\x01"
NAL_TYPE_MASK = 0x1F  # nal_unit_type: the low 5 bits of a NAL header (and of an RTP FU header)


def nal_type(nal: bytes) -> int:
    return nal[0] & NAL_TYPE_MASK


def is_idr(nal: bytes) -> bool:
    return nal_type(nal) == NAL_IDR


def split_annexb(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes), without start codes."""
    first = access_unit.find(_START_CODE)
    if first < 0 or access_unit.count(0, 0, first) != first:
        raise ProtocolError("H.264 data does not start with an Annex B start code")
    nal_units = []
    start = first + len(_START_CODE)
    while True:
        found = access_unit.find(_START_CODE, start)
        end = len(access_unit) if found < 0 else found
        # A NAL unit never ends in 0x00: zeros there are trailing_zero_8bits or the first byte
        # of a 4-byte start code.
        while end > start and access_unit[end - 1] == 0:
            end -= 1
        if end > start:
            nal_units.append(access_unit[start:end])
        if found < 0:
            return nal_units
        start = found + len(_START_CODE)


# -- sequence parameter set ------------------------------------------------------------------


class SpsInfo(NamedTuple):
    profile_idc: int
    constraint_flags: int  # constraint_set0..5 flags and reserved bits, as the byte is sent
    level_idc: int
    width: int  # displayed size, after frame cropping
    height: int


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._size = 8 * len(data)
        self._pos = 0

    def bits(self, count: int) -> int:
        self._pos += count
        if self._pos > self._size:
            raise ProtocolError("H.264 SPS is truncated")
        return (self._value >> (self._size - self._pos)) & ((1 << count) - 1)

    def ue(self) -> int:
        """An unsigned Exp-Golomb code."""
        zeros = 0
        while not self.bits(1):
            zeros += 1
            if zeros > 31:
                raise ProtocolError("H.264 SPS holds an Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        """A signed Exp-Golomb code."""
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


# Profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 §7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last = 8
    for _ in range(size):
        scale = (last + reader.se()) % 256
        if scale == 0:  # the rest of the list repeats the last scale and is not coded
            return
        last = scale


def check_sps(sps: bytes) -> None:
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ProtocolError("not an H.264 sequence parameter set NAL unit")


def parse_sps(sps: bytes) -> SpsInfo:
    """Profile, level and picture size from an SPS NAL unit (header byte included)."""
    check_sps(sps)
    # Emulation prevention: 00 00 03 becomes 00 00 in the bit string.
    reader = _BitReader(sps[4:].replace(b"\x00\x00\x03", b"\x00\x00"))
    profile_idc, constraint_flags, level_idc = sps[1], sps[2], sps[3]
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_planes = False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            separate_colour_planes = bool(reader.bits(1))
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bits(1)  # qpprime_y_zero_transform_bypass_flag
        if reader.bits(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.bits(1):
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        reader.bits(1)  # delta_pic_order_always_zero_flag
        reader.se()  # offset_for_non_ref_pic
        reader.se()  # offset_for_top_to_bottom_field
        for _ in range(reader.ue()):
            reader.se()  # offset_for_ref_frame
    reader.ue()  # max_num_ref_frames
    reader.bits(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_map_units = reader.ue() + 1
    frame_mbs_only = reader.bits(1)
    if not frame_mbs_only:
        reader.bits(1)  # mb_adaptive_frame_field_flag
    reader.bits(1)  # direct_8x8_inference_flag
    width = 16 * width_mbs
    height = 16 * height_map_units * (2 - frame_mbs_only)
    if reader.bits(1):  # frame_cropping_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        if separate_colour_planes or chroma_format_idc == 0:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            crop_x = 1 if chroma_format_idc == 3 else 2
            crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ProtocolError(f"H.264 SPS gives an empty picture ({width}x{height})")
    return SpsInfo(profile_idc, constraint_flags, level_idc, width, height)
