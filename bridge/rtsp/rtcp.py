"""RTCP (RFC 3550 §6): the sender reports the server sends, the reports clients send back.

The server emits compound packets of a Sender Report and an SDES CNAME (and a BYE at teardown);
clients answer with Receiver Reports, which the server only needs as a sign of life (they keep a
UDP session from timing out). :func:`parse_compound` therefore returns SR, RR, SDES and BYE and
skips every other type (APP, XR, RTPFB/PSFB feedback) without failing. No clock is read: the
wall-clock time of a report is passed in.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.errors import ProtocolError

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
SDES_CNAME = 1

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

_COMMON = struct.Struct("!BBH")  # V=2|P|count, packet type, length in words minus one
_WORD = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IIIIII")  # ssrc, NTP msw, NTP lsw, RTP ts, packets, octets
_REPORT_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction|lost, ext. highest seq, jitter, LSR, DLSR
_MAX_COUNT = 31  # the 5-bit count field


def ntp_timestamp(unix_seconds: float) -> tuple[int, int]:
    """(seconds, fraction) of the 64-bit NTP timestamp for a Unix time; wraps with NTP eras."""
    whole = math.floor(unix_seconds)
    fraction = int((unix_seconds - whole) * 2**32)  # < 2**32: the float fraction is < 1
    return (whole + NTP_UNIX_OFFSET) & 0xFFFFFFFF, fraction


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # since the previous report, in 1/256
    packets_lost: int  # cumulative; signed 24-bit (duplicates can make it negative)
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, in timestamp units
    last_sr: int  # middle 32 bits of the NTP timestamp of the last SR received
    delay_since_last_sr: int  # in 1/65536 s

    def serialize(self) -> bytes:
        if not -(2**23) <= self.packets_lost < 2**23:
            raise ValueError(f"packets_lost {self.packets_lost} does not fit 24 signed bits")
        return _REPORT_BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF),
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _pack(packet_type: int, count: int, body: bytes) -> bytes:
    """Common header + body; ``body`` is already padded to a 32-bit boundary."""
    if count > _MAX_COUNT:
        raise ValueError(f"RTCP packet type {packet_type} cannot carry {count} items")
    return _COMMON.pack(0x80 | count, packet_type, len(body) // 4) + body


def _pad32(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_seconds: int  # most significant word of the NTP timestamp
    ntp_fraction: int  # least significant word
    rtp_timestamp: int  # the same instant on the media clock
    packet_count: int
    octet_count: int  # payload octets, headers excluded
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = _SENDER_INFO.pack(
            self.ssrc,
            self.ntp_seconds,
            self.ntp_fraction,
            self.rtp_timestamp,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        blocks = b"".join(block.serialize() for block in self.reports)
        return _pack(PT_SR, len(self.reports), body + blocks)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        blocks = b"".join(block.serialize() for block in self.reports)
        return _pack(PT_RR, len(self.reports), _WORD.pack(self.ssrc) + blocks)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, str], ...]  # (item type, UTF-8 text), e.g. (SDES_CNAME, "bridge")

    @property
    def cname(self) -> str | None:
        return next((text for kind, text in self.items if kind == SDES_CNAME), None)

    def serialize(self) -> bytes:
        out = bytearray(_WORD.pack(self.ssrc))
        for kind, text in self.items:
            raw = text.encode()
            if not 0 < kind <= 0xFF or len(raw) > 0xFF:
                raise ValueError(f"SDES item {kind} of {len(raw)} bytes cannot be encoded")
            out += bytes((kind, len(raw))) + raw
        # The item list ends with a null octet, then nulls up to the next 32-bit boundary.
        out += bytes(4 - len(out) % 4)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    @classmethod
    def for_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname),)),))

    def serialize(self) -> bytes:
        body = b"".join(chunk.serialize() for chunk in self.chunks)
        return _pack(PT_SDES, len(self.chunks), body)


@dataclass(frozen=True, slots=True)
class Bye:
    sources: tuple[int, ...]
    reason: str = ""

    def serialize(self) -> bytes:
        body = b"".join(_WORD.pack(ssrc) for ssrc in self.sources)
        if self.reason:
            raw = self.reason.encode()
            if len(raw) > 0xFF:
                raise ValueError(f"BYE reason of {len(raw)} bytes exceeds 255")
            body += _pad32(bytes((len(raw),)) + raw)
        return _pack(PT_BYE, len(self.sources), body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(packet.serialize() for packet in packets)


def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise ProtocolError(f"RTCP {what} of {len(body)} bytes is truncated (needs {size})")


def _parse_sr(count: int, body: bytes) -> SenderReport:
    _need(body, _SENDER_INFO.size + count * _REPORT_BLOCK.size, "sender report")
    ssrc, seconds, fraction, timestamp, packets, octets = _SENDER_INFO.unpack_from(body)
    reports = tuple(
        ReportBlock.parse(body, _SENDER_INFO.size + i * _REPORT_BLOCK.size) for i in range(count)
    )
    return SenderReport(ssrc, seconds, fraction, timestamp, packets, octets, reports)


def _parse_rr(count: int, body: bytes) -> ReceiverReport:
    _need(body, _WORD.size + count * _REPORT_BLOCK.size, "receiver report")
    (ssrc,) = _WORD.unpack_from(body)
    reports = tuple(
        ReportBlock.parse(body, _WORD.size + i * _REPORT_BLOCK.size) for i in range(count)
    )
    return ReceiverReport(ssrc, reports)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        _need(body, pos + 4, "SDES chunk")
        (ssrc,) = _WORD.unpack_from(body, pos)
        pos += 4
        items = []
        while True:
            _need(body, pos + 1, "SDES item list")
            kind = body[pos]
            if kind == 0:
                pos += 4 - pos % 4  # the end null plus padding to the next chunk
                break
            _need(body, pos + 2, "SDES item")
            end = pos + 2 + body[pos + 1]
            _need(body, end, "SDES item")
            items.append((kind, body[pos + 2 : end].decode(errors="replace")))
            pos = end
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(count: int, body: bytes) -> Bye:
    _need(body, count * 4, "BYE")
    sources = struct.unpack_from(f"!{count}I", body)
    reason = ""
    if len(body) > count * 4:
        end = count * 4 + 1 + body[count * 4]
        _need(body, end, "BYE reason")
        reason = body[count * 4 + 1 : end].decode(errors="replace")
    return Bye(sources, reason)


_PARSERS: dict[int, Callable[[int, bytes], RtcpPacket]] = {
    PT_SR: _parse_sr,
    PT_RR: _parse_rr,
    PT_SDES: _parse_sdes,
    PT_BYE: _parse_bye,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """The SR/RR/SDES/BYE packets of a compound RTCP packet; other types are skipped."""
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _COMMON.size:
            raise ProtocolError(f"RTCP packet header truncated at byte {pos} of {len(data)}")
        first, packet_type, words = _COMMON.unpack_from(data, pos)
        if first >> 6 != 2:
            raise ProtocolError(f"RTCP version {first >> 6} is not 2")
        end = pos + _COMMON.size + 4 * words
        if end > len(data):
            raise ProtocolError(
                f"RTCP packet type {packet_type} claims {4 * words} bytes, "
                f"{len(data) - pos - _COMMON.size} remain"
            )
        body_end = end
        if first & 0x20:
            padding = data[end - 1] if words else 0
            if not 0 < padding <= 4 * words:
                raise ProtocolError(f"RTCP padding of {padding} bytes is invalid")
            body_end -= padding
        parser = _PARSERS.get(packet_type)
        if parser is not None:
            packets.append(parser(first & 0x1F, data[pos + _COMMON.size : body_end]))
        pos = end
    return packets
