"""AAC over RTP as MPEG4-GENERIC, AAC-hbr mode (RFC 3640 §3.3.6): one access unit per packet.

The payload is a 16-bit AU-headers-length (in bits), one 16-bit AU header (13-bit size, 3-bit
index 0), then the raw AAC frame. A camera's AAC frames are a few hundred bytes, far below the
13-bit size limit and any MTU, so fragmentation and interleaving are never needed.
"""

from __future__ import annotations

import struct

MAX_ACCESS_UNIT = (1 << 13) - 1  # the AU-size field
_HEADERS = struct.Struct("!HH")  # AU-headers-length in bits, AU-size << 3 | AU-index
_AU_HEADER_BITS = 16


def packetize(access_unit: bytes) -> bytes:
    """The RTP payload carrying one raw AAC frame."""
    if not access_unit:
        raise ValueError("an AAC access unit cannot be empty")
    if len(access_unit) > MAX_ACCESS_UNIT:
        raise ValueError(f"AAC access unit of {len(access_unit)} bytes exceeds {MAX_ACCESS_UNIT}")
    return _HEADERS.pack(_AU_HEADER_BITS, len(access_unit) << 3) + access_unit


def depacketize(payload: bytes) -> list[bytes]:
    """The access units in an AAC-hbr payload (as a receiver reads it); ValueError if malformed.

    For the tests only: the gateway never receives RTP; they read back what it sends."""
    if len(payload) < 2:
        raise ValueError("AAC payload shorter than its AU-headers-length")
    (header_bits,) = struct.unpack_from("!H", payload)
    if header_bits % _AU_HEADER_BITS:
        raise ValueError(f"AU-headers-length {header_bits} is not a whole number of headers")
    count = header_bits // _AU_HEADER_BITS
    position = 2 + 2 * count
    if len(payload) < position:
        raise ValueError("AAC payload truncated inside its AU headers")
    units = []
    for index in range(count):
        (header,) = struct.unpack_from("!H", payload, 2 + 2 * index)
        size = header >> 3
        if position + size > len(payload):
            raise ValueError(f"AAC access unit {index} runs past the payload")
        units.append(payload[position : position + size])
        position += size
    return units
