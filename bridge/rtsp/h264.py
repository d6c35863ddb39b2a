"""H.264 over RTP, RFC 6184 packetization mode 1 (non-interleaved), and the SDP parameters.

An encoder hands over access units in Annex B form (start-code separated NAL units: SPS, PPS,
SEI, one or more slices; x264 with threads writes several slices per frame).
:func:`bridge.codecs.h264.split_annexb` cuts them into NAL units (the producer does that),
:func:`packetize` turns those into RTP payloads:
a NAL unit that fits travels alone (single NAL unit packet), a bigger one as FU-A fragments.
STAP-A aggregation of small units is optional and off by default, because some older clients
mishandle it. The marker bit belongs on the last packet of the access unit, which is the last
payload :func:`packetize` returns for that unit's NAL units.

:class:`H264Depacketizer` is the inverse, strict: loss or damage raises ProtocolError. It is
for the tests only (the gateway sends RTP, it never receives any): they read back with it what
the gateway sends.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable

from bridge.codecs.h264 import NAL_PPS, NAL_TYPE_MASK, check_sps, nal_type
from bridge.errors import MessageTooLarge, ProtocolError

NAL_STAP_A = 24
NAL_FU_A = 28

DEFAULT_MAX_PAYLOAD = 1400  # keeps IP+UDP+RTP under a 1500-byte MTU with room for tunnels
DEFAULT_MAX_NAL_SIZE = 4 * 1024 * 1024

_NAL_SIZE = struct.Struct("!H")  # STAP-A aggregation unit size
_FU_START = 0x80
_FU_END = 0x40
_F_NRI_MASK = 0xE0


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
    kind = nal[0] & NAL_TYPE_MASK
    step = max_payload - 2  # FU indicator + FU header
    view = memoryview(nal)
    last_start = 1 + (len(nal) - 2) // step * step
    middle = bytes((indicator, kind))
    payloads.append(bytes((indicator, _FU_START | kind)) + view[1 : 1 + step])
    payloads += [middle + view[i : i + step] for i in range(1 + step, last_start, step)]
    payloads.append(bytes((indicator, _FU_END | kind)) + view[last_start:])


class H264Depacketizer:
    """RTP payloads (mode 1: single NAL, STAP-A, FU-A) back to NAL units; for the tests only.

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
        kind = payload[0] & NAL_TYPE_MASK
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
            self._fragments.append((payload[0] & _F_NRI_MASK) | (fu_header & NAL_TYPE_MASK))
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


def profile_level_id(sps: bytes) -> str:
    """The SDP ``profile-level-id``: profile_idc, constraint flags and level_idc in hex."""
    check_sps(sps)
    return sps[1:4].hex()


def sprop_parameter_sets(sps: bytes, pps: bytes) -> str:
    """The SDP ``sprop-parameter-sets``: base64 of the SPS and PPS NAL units (no start codes)."""
    check_sps(sps)
    if not pps or nal_type(pps) != NAL_PPS:
        raise ProtocolError("not an H.264 picture parameter set NAL unit")
    return f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
