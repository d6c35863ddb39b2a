"""H.264 over RTP, RFC 6184 packetization mode 1 (non-interleaved), and the SPS facts SDP needs.

An encoder hands over access units in Annex B form (start-code separated NAL units: SPS, PPS,
SEI, one or more slices; x264 with threads writes several slices per frame).
:func:`split_annexb` cuts them into NAL units, :func:`packetize` turns those into RTP payloads:
a NAL unit that fits travels alone (single NAL unit packet), a bigger one as FU-A fragments.
STAP-A aggregation of small units is optional and off by default, because some older clients
mishandle it. The marker bit belongs on the last packet of the access unit, which is the last
payload :func:`packetize` returns for that unit's NAL units.

:class:`H264Depacketizer` is the inverse, strict: loss or damage raises ProtocolError.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from typing import NamedTuple

from bridge.errors import MessageTooLarge, ProtocolError

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28

DEFAULT_MAX_PAYLOAD = 1400  # keeps IP+UDP+RTP under a 1500-byte MTU with room for tunnels
DEFAULT_MAX_NAL_SIZE = 4 * 1024 * 1024

_START_CODE = b"\x00\x00\x01"
_NAL_SIZE = struct.Struct("!H")  # STAP-A aggregation unit size
_FU_START = 0x80
_FU_END = 0x40
_TYPE_MASK = 0x1F
_F_NRI_MASK = 0xE0


def nal_type(nal: bytes) -> int:
    return nal[0] & _TYPE_MASK


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


def packetize(
    nal_units: Iterable[bytes], max_payload: int = DEFAULT_MAX_PAYLOAD, *, stap_a: bool = False
) -> list[bytes]:
    """RTP payloads for the NAL units of one access unit, in order; the last takes the marker.

    With ``stap_a``, runs of consecutive NAL units small enough to share a packet (typically
    SPS, PPS and SEI) are aggregated into STAP-A packets.
    """
    if max_payload < 3:
        raise ValueError(f"max_payload {max_payload} leaves no room for an FU-A fragment")
    payloads: list[bytes] = []
    pending: list[bytes] = []  # small units waiting to share a STAP-A
    pending_size = 1  # the STAP-A NAL header
    for nal in nal_units:
        if not nal:
            raise ValueError("empty NAL unit")
        unit_size = _NAL_SIZE.size + len(nal)
        if stap_a and 1 + unit_size <= max_payload:
            if pending_size + unit_size > max_payload:
                _flush_aggregate(pending, payloads)
                pending_size = 1
            pending.append(nal)
            pending_size += unit_size
            continue
        _flush_aggregate(pending, payloads)
        pending_size = 1
        if len(nal) <= max_payload:
            payloads.append(nal)
        else:
            _fragment(nal, max_payload, payloads)
    _flush_aggregate(pending, payloads)
    return payloads


def _flush_aggregate(pending: list[bytes], payloads: list[bytes]) -> None:
    if len(pending) == 1:
        payloads.append(pending[0])  # a STAP-A of one unit would only add 3 bytes
    elif pending:
        # F is the OR of the units' F bits, NRI their maximum (RFC 6184 §5.7).
        forbidden = max(nal[0] & 0x80 for nal in pending)
        nri = max(nal[0] & 0x60 for nal in pending)
        header = bytes((forbidden | nri | NAL_STAP_A,))
        payloads.append(header + b"".join(_NAL_SIZE.pack(len(nal)) + nal for nal in pending))
    pending.clear()


def _fragment(nal: bytes, max_payload: int, payloads: list[bytes]) -> None:
    """FU-A fragments of a NAL unit larger than ``max_payload`` (so at least two)."""
    indicator = (nal[0] & _F_NRI_MASK) | NAL_FU_A
    kind = nal[0] & _TYPE_MASK
    step = max_payload - 2  # FU indicator + FU header
    view = memoryview(nal)
    last_start = 1 + (len(nal) - 2) // step * step
    middle = bytes((indicator, kind))
    payloads.append(bytes((indicator, _FU_START | kind)) + view[1 : 1 + step])
    payloads += [middle + view[i : i + step] for i in range(1 + step, last_start, step)]
    payloads.append(bytes((indicator, _FU_END | kind)) + view[last_start:])


class H264Depacketizer:
    """RTP payloads (mode 1: single NAL, STAP-A, FU-A) back to NAL units.

    A gap in a fragmented unit (a lost packet) raises ProtocolError and drops that unit; the
    depacketizer is ready for the next one.
    """

    def __init__(self, *, max_nal_size: int = DEFAULT_MAX_NAL_SIZE) -> None:
        self._max_nal_size = max_nal_size
        self._fragments = bytearray()
        self._in_fragment = False

    def feed(self, payload: bytes) -> list[bytes]:
        """The NAL units this payload completes."""
        if not payload:
            raise ProtocolError("empty H.264 RTP payload")
        kind = payload[0] & _TYPE_MASK
        if kind == NAL_FU_A:
            nal = self._fragment(payload)
            return [] if nal is None else [nal]
        if self._in_fragment:
            self._reset()
            raise ProtocolError("H.264 FU-A unit interrupted before its end fragment")
        if 1 <= kind <= 23:
            return [payload]
        if kind == NAL_STAP_A:
            return _unpack_stap_a(payload)
        raise ProtocolError(f"H.264 RTP payload type {kind} is not allowed in mode 1")

    def _reset(self) -> None:
        self._fragments.clear()
        self._in_fragment = False

    def _fragment(self, payload: bytes) -> bytes | None:
        if len(payload) < 3:
            self._reset()
            raise ProtocolError(f"H.264 FU-A payload of {len(payload)} bytes is truncated")
        fu_header = payload[1]
        start, end = bool(fu_header & _FU_START), bool(fu_header & _FU_END)
        if start == self._in_fragment or (start and end):
            self._reset()
            raise ProtocolError("H.264 FU-A fragments out of order (start/end bits)")
        if start:
            self._in_fragment = True
            self._fragments.append((payload[0] & _F_NRI_MASK) | (fu_header & _TYPE_MASK))
        self._fragments += memoryview(payload)[2:]
        if len(self._fragments) > self._max_nal_size:
            self._reset()
            raise MessageTooLarge(f"H.264 NAL unit exceeds {self._max_nal_size} bytes")
        if not end:
            return None
        nal = bytes(self._fragments)
        self._reset()
        return nal


def _unpack_stap_a(payload: bytes) -> list[bytes]:
    nal_units = []
    pos = 1
    while pos < len(payload):
        if pos + _NAL_SIZE.size > len(payload):
            raise ProtocolError("H.264 STAP-A truncated in a unit size")
        (size,) = _NAL_SIZE.unpack_from(payload, pos)
        pos += _NAL_SIZE.size
        if size == 0 or pos + size > len(payload):
            raise ProtocolError(f"H.264 STAP-A unit of {size} bytes does not fit the packet")
        nal_units.append(payload[pos : pos + size])
        pos += size
    if not nal_units:
        raise ProtocolError("H.264 STAP-A without units")
    return nal_units


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


def _check_sps(sps: bytes) -> None:
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ProtocolError("not an H.264 sequence parameter set NAL unit")


def parse_sps(sps: bytes) -> SpsInfo:
    """Profile, level and picture size from an SPS NAL unit (header byte included)."""
    _check_sps(sps)
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


def profile_level_id(sps: bytes) -> str:
    """The SDP ``profile-level-id``: profile_idc, constraint flags and level_idc in hex."""
    _check_sps(sps)
    return sps[1:4].hex()


def sprop_parameter_sets(sps: bytes, pps: bytes) -> str:
    """The SDP ``sprop-parameter-sets``: base64 of the SPS and PPS NAL units (no start codes)."""
    _check_sps(sps)
    if not pps or nal_type(pps) != NAL_PPS:
        raise ProtocolError("not an H.264 picture parameter set NAL unit")
    return f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
