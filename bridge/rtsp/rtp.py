"""RTP packets (RFC 3550 §5.1), the sender-side sequencer that stamps payloads into them, and
the receiving side of a stream a client sends (the ONVIF audio back channel).

:class:`RtpPacket` is the general form (CSRCs, header extension, padding on parse): the tests
check with it the bytes the gateway sends, and :class:`RtpReceiver` reads client packets with
it. :class:`RtpSequencer` is the hot path: it turns payloads straight into packet bytes
with one struct pack each, and counts what the RTCP Sender Report needs. Media time is passed
in, never read from a clock.
"""

from __future__ import annotations

import enum
import struct
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bridge.errors import ProtocolError
from bridge.rtsp.rtcp import SenderReport, ntp_timestamp

HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")  # V=2|P|X|CC, M|PT, sequence, timestamp, SSRC
_EXTENSION = struct.Struct("!HH")  # profile-defined id, length in 32-bit words
_VERSION_2 = 0x80
_MARKER = 0x80


class RtpExtension(NamedTuple):
    profile: int  # the 16 "defined by profile" bits
    data: bytes  # a multiple of 4 bytes


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    payload: bytes = b""
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 0x7F:
            raise ValueError(f"RTP payload type {self.payload_type} is not 0..127")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP packet cannot carry {len(self.csrc)} CSRCs (at most 15)")
        if self.extension is not None and len(self.extension.data) % 4:
            raise ValueError("RTP header extension data must be a multiple of 4 bytes")

    def serialize(self) -> bytes:
        first = _VERSION_2 | len(self.csrc) | (0x10 if self.extension is not None else 0)
        second = self.payload_type | (_MARKER if self.marker else 0)
        parts = [
            _HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrc)}I", *self.csrc),
        ]
        if self.extension is not None:
            profile, data = self.extension
            parts += (_EXTENSION.pack(profile, len(data) // 4), data)
        parts.append(self.payload)
        return b"".join(parts)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < HEADER_SIZE:
            raise ProtocolError(f"RTP packet of {len(data)} bytes is shorter than its header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise ProtocolError(f"RTP version {first >> 6} is not 2")
        csrc_count = first & 0x0F
        pos = HEADER_SIZE + 4 * csrc_count
        if len(data) < pos:
            raise ProtocolError(
                f"RTP packet of {len(data)} bytes is too short for its {csrc_count} CSRCs"
            )
        csrc = struct.unpack_from(f"!{csrc_count}I", data, HEADER_SIZE)
        extension = None
        if first & 0x10:
            if len(data) < pos + _EXTENSION.size:
                raise ProtocolError("RTP packet truncated in its header extension")
            profile, words = _EXTENSION.unpack_from(data, pos)
            start = pos + _EXTENSION.size
            pos = start + 4 * words
            if len(data) < pos:
                raise ProtocolError("RTP packet truncated in its header extension")
            extension = RtpExtension(profile, data[start:pos])
        end = len(data)
        if first & 0x20:
            padding = data[-1]
            if not 0 < padding <= end - pos:
                raise ProtocolError(f"RTP padding of {padding} bytes is invalid")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=bool(second & _MARKER),
            payload=data[pos:end],
            csrc=csrc,
            extension=extension,
        )


class RtpSequencer:
    """Stamps the packets of one RTP stream: sequence numbers, timestamps, SR counters.

    ``initial_sequence`` and ``initial_timestamp`` should be random (RFC 3550 §5.1); the caller
    draws them so tests can pin them. Media time is in seconds from the start of the stream.
    """

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        *,
        initial_sequence: int = 0,
        initial_timestamp: int = 0,
    ) -> None:
        if not 0 <= payload_type <= 0x7F:
            raise ValueError(f"RTP payload type {payload_type} is not 0..127")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.sequence_number = initial_sequence & 0xFFFF  # the next packet's
        self._timestamp_offset = initial_timestamp
        self.packet_count = 0
        self.octet_count = 0  # payload octets, as the SR counts them

    def timestamp(self, media_time: float) -> int:
        """The RTP timestamp of an instant ``media_time`` seconds into the stream."""
        return (self._timestamp_offset + round(media_time * self.clock_rate)) & 0xFFFFFFFF

    def frame(self, payloads: Sequence[bytes], media_time: float) -> list[bytes]:
        """Packets for the payloads of one frame/access unit; the marker is on the last."""
        return self._stamp(payloads, self.timestamp(media_time), marker_last=True)

    def packet(self, payload: bytes, media_time: float, *, marker: bool = False) -> bytes:
        """One packet, e.g. an audio frame (marker set on the first packet after silence)."""
        return self._stamp((payload,), self.timestamp(media_time), marker_last=marker)[0]

    def _stamp(
        self, payloads: Sequence[bytes], timestamp: int, *, marker_last: bool
    ) -> list[bytes]:
        if not payloads:
            return []
        pack, pt, ssrc, seq = _HEADER.pack, self.payload_type, self.ssrc, self.sequence_number
        packets = [
            pack(_VERSION_2, pt, (seq + i) & 0xFFFF, timestamp, ssrc) + payload
            for i, payload in enumerate(payloads)
        ]
        if marker_last:
            last = len(payloads) - 1
            packets[last] = (
                pack(_VERSION_2, pt | _MARKER, (seq + last) & 0xFFFF, timestamp, ssrc)
                + payloads[last]
            )
        self.sequence_number = (seq + len(payloads)) & 0xFFFF
        self.packet_count += len(payloads)
        self.octet_count += sum(map(len, payloads))
        return packets

    def sender_report(self, wall_time: float, media_time: float) -> SenderReport:
        """An SR tying Unix time ``wall_time`` to the media clock at ``media_time``."""
        seconds, fraction = ntp_timestamp(wall_time)
        return SenderReport(
            ssrc=self.ssrc,
            ntp_seconds=seconds,
            ntp_fraction=fraction,
            rtp_timestamp=self.timestamp(media_time),
            packet_count=self.packet_count,
            octet_count=self.octet_count,
        )


# A client's packet is at most this big: a second of G.711, and far above any MTU-sized one.
MAX_RECEIVED_PACKET = 8 * 1024
MAX_DROPOUT = 3000  # RFC 3550 A.1: a forward sequence jump up to this is loss, beyond it a restart
MAX_MISORDER = 100  # ... and one this far behind the newest is late (or repeated), not a restart


class Dropped(enum.StrEnum):
    """Why :class:`RtpReceiver` refused a packet."""

    MALFORMED = "malformed"  # not RTP version 2, truncated, bad padding
    TOO_LARGE = "too large"
    EMPTY = "empty"  # no payload
    PAYLOAD_TYPE = "payload type"  # not one the SDP offered
    LATE = "late"  # repeated, or behind the newest packet: audio that was due already
    TIMESTAMP = "timestamp"  # its timestamp runs back from the newest packet's
    UNSYNCED = "unsynced"  # another SSRC or a sequence jump, until the next packet confirms it


class Received(NamedTuple):
    payload_type: int
    payload: bytes
    timestamp: int
    lost: int  # packets missing between the previous one accepted and this one


class RtpReceiver:
    """The receiving end of one RTP stream, sans I/O: datagrams or interleaved payloads in,
    in-order packets of the accepted payload types out; anything else is counted in
    :attr:`dropped` and never raises.

    The stream is the first packet's SSRC and sequence. Loss is reported, late and repeated
    packets are dropped (a talk pipeline plays what it gets in order; waiting for stragglers
    would only add delay). A packet that fits neither, another SSRC or a sequence jump past
    :data:`MAX_DROPOUT` (a client restarting its stream), is held as a candidate: the stream
    switches to it when the packet after it follows on, as RFC 3550 A.1 resynchronizes.
    """

    def __init__(
        self, payload_types: Collection[int], *, max_packet: int = MAX_RECEIVED_PACKET
    ) -> None:
        self._payload_types = frozenset(payload_types)
        self._max_packet = max_packet
        self._ssrc: int | None = None
        self._sequence = 0  # the newest accepted packet's
        self._timestamp = 0
        self._candidate: tuple[int, int] | None = None  # (SSRC, sequence) a switch would follow
        self.accepted = 0
        self.dropped: Counter[Dropped] = Counter()

    def receive(self, data: bytes) -> Received | None:
        if len(data) > self._max_packet:
            self.dropped[Dropped.TOO_LARGE] += 1
            return None
        try:
            packet = RtpPacket.parse(data)
        except ProtocolError:
            self.dropped[Dropped.MALFORMED] += 1
            return None
        if packet.payload_type not in self._payload_types:
            self.dropped[Dropped.PAYLOAD_TYPE] += 1
            return None
        if not packet.payload:
            self.dropped[Dropped.EMPTY] += 1
            return None
        lost = self._place(packet)
        if isinstance(lost, Dropped):
            self.dropped[lost] += 1
            return None
        self.accepted += 1
        return Received(packet.payload_type, packet.payload, packet.timestamp, lost)

    def _place(self, packet: RtpPacket) -> int | Dropped:
        """Packets lost before ``packet`` when it continues the stream, else why it does not."""
        sequence, timestamp = packet.sequence_number, packet.timestamp
        if self._ssrc is None or self._candidate == (packet.ssrc, (sequence - 1) & 0xFFFF):
            self._start(packet)
            return 0
        if packet.ssrc == self._ssrc:
            ahead = (sequence - self._sequence) & 0xFFFF
            if ahead == 0 or ahead > 0x10000 - MAX_MISORDER:
                return Dropped.LATE
            if ahead < MAX_DROPOUT:
                if (timestamp - self._timestamp) & 0x80000000:
                    return Dropped.TIMESTAMP
                self._sequence, self._timestamp, self._candidate = sequence, timestamp, None
                return ahead - 1
        self._candidate = (packet.ssrc, sequence)
        return Dropped.UNSYNCED

    def _start(self, packet: RtpPacket) -> None:
        self._ssrc = packet.ssrc
        self._sequence, self._timestamp = packet.sequence_number, packet.timestamp
        self._candidate = None
