"""Sans-I/O demuxer for live ASF (``videostream.asf`` of Foscam-style cameras).

Bytes go in with :meth:`AsfParser.feed`, whole media objects (a JPEG, a run of audio blocks)
come out; no sockets, no clocks. Splitting a container into its objects is wire translation,
like the multipart parser beside it, so it lives with the drivers: a driver handing PyAV a
byte stream would make the cameras layer depend on the media library (and it needed a thread
per stream to do so).

What it reads, from the ASF specification (revision 01.20.05):

- the Header Object: the File Properties Object (fixed data packet size, broadcast flag) and one
  Stream Properties Object per stream (video, or audio with its WAVEFORMATEX and, for audio
  spread error correction, the interleaving that scrambles its objects);
- the Data Object's packets: error correction data, payload parsing information, single or
  multiple payloads, fragments of media objects reassembled in order, compressed payloads
  (several small objects in one payload), padding.

A header that is not ASF, or larger than :data:`MAX_HEADER_SIZE`, raises
:class:`~bridge.errors.ProtocolError`: nothing after it could be read. A data packet that
contradicts itself is skipped (reported as :class:`SkippedPacket`) and so are the objects it
held pieces of, since their next pieces no longer follow on: packets have a fixed size, so the
next one is found regardless. No object grows past ``max_object_size``.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

from bridge.errors import MessageTooLarge, ProtocolError

DEFAULT_MAX_OBJECT_SIZE = 8 * 1024 * 1024  # as for a multipart part
MAX_HEADER_SIZE = 256 * 1024  # a camera's is well under a kilobyte
MAX_PACKET_SIZE = 1024 * 1024  # libavformat writes 3200, Windows Media at most 64 KiB


def _guid(text: str) -> bytes:
    """A GUID as ASF stores it (the first three fields little-endian)."""
    return uuid.UUID(text).bytes_le


HEADER_OBJECT = _guid("75b22630-668e-11cf-a6d9-00aa0062ce6c")
DATA_OBJECT = _guid("75b22636-668e-11cf-a6d9-00aa0062ce6c")
_FILE_PROPERTIES = _guid("8cabdca1-a947-11cf-8ee4-00c00c205365")
_STREAM_PROPERTIES = _guid("b7dc0791-a9b7-11cf-8ee6-00c00c205365")
_AUDIO_MEDIA = _guid("f8699e40-5b4d-11cf-a8fd-00805f5c442b")
_VIDEO_MEDIA = _guid("bc19efc0-5b4d-11cf-a8fd-00805f5c442b")

_OBJECT_HEADER = struct.Struct("<16sQ")  # GUID, size (including these 24 bytes)
_HEADER_OBJECT_SIZE = 30  # + number of header objects (DWORD) and two reserved bytes
_DATA_OBJECT_SIZE = 50  # + file ID (GUID), total data packets (QWORD), reserved (WORD)
_FILE_PROPERTIES_BODY = struct.Struct("<16sQQQQQQIIII")  # ... flags, min/max packet size
_STREAM_PROPERTIES_BODY = struct.Struct("<16s16sQIIHI")  # types, offset, lengths, flags
_WAVEFORMATEX = struct.Struct("<HHIIHHH")
_SPREAD = struct.Struct("<BHHHB")  # span, virtual packet length, chunk length, ...
_BROADCAST = 0x01
_FIELD_SIZES = (0, 1, 2, 4)  # a 2-bit length type: absent, BYTE, WORD, DWORD
_FIELD_FORMATS = {1: "<B", 2: "<H", 4: "<I"}


class StreamKind(enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class WaveFormat:
    """An audio stream's WAVEFORMATEX: ``format_tag`` is the codec (0x0011 IMA ADPCM ...),
    ``extra`` the codec-specific bytes after it."""

    format_tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits_per_sample: int
    extra: bytes


@dataclass(frozen=True, slots=True)
class AsfStream:
    number: int  # 1..127
    kind: StreamKind
    wave: WaveFormat | None = None  # audio streams
    # Audio spread: objects of span x packet_length bytes, interleaved in chunk_length units.
    spread: tuple[int, int, int] | None = None


class AsfObject(NamedTuple):
    """One whole media object: for a camera, a JPEG picture or a run of audio blocks."""

    stream: AsfStream
    data: bytes


class SkippedPacket(NamedTuple):
    """A data packet that could not be read; it and the objects it carried parts of are lost."""

    reason: str


@dataclass(slots=True)
class _Partial:
    number: int  # media object number
    size: int
    data: bytearray = field(default_factory=bytearray)


class _Damaged(Exception):
    """Ends the reading of one data packet."""


class AsfParser:
    def __init__(self, *, max_object_size: int = DEFAULT_MAX_OBJECT_SIZE) -> None:
        self._max_object_size = max_object_size
        self._buffer = bytearray()
        self.streams: dict[int, AsfStream] = {}
        self._packet_size = 0  # known once the header is read
        self._data_left: int | None = None  # bytes of packets left, when the header says
        self._partials: dict[int, _Partial] = {}

    @property
    def started(self) -> bool:
        """Whether the header has been read (the data packets follow)."""
        return self._packet_size > 0

    def feed(self, data: bytes) -> list[AsfObject | SkippedPacket]:
        """The objects completed by ``data``, and the packets skipped on the way.

        Raises :class:`ProtocolError` when the stream is not ASF.
        """
        self._buffer += data
        if not self.started and not self._read_header():
            return []
        events: list[AsfObject | SkippedPacket] = []
        size = self._packet_size
        start = 0
        while len(self._buffer) - start >= size and self._data_left != 0:
            packet = bytes(self._buffer[start : start + size])
            start += size
            if self._data_left is not None:
                self._data_left = max(0, self._data_left - size)
            try:
                self._read_packet(packet, events)
            except _Damaged as exc:
                events.append(SkippedPacket(str(exc)))
            except (IndexError, struct.error):
                events.append(SkippedPacket("a field past the packet's end"))
        if self._data_left == 0:
            self._buffer.clear()  # an index or the like may follow: nothing to serve
        else:
            del self._buffer[:start]
        return events

    # -- header ---------------------------------------------------------------------------------

    def _read_header(self) -> bool:
        """Read the header and the data object's own header once both are in; True then."""
        buffer = self._buffer
        if len(buffer) >= 16 and buffer[:16] != HEADER_OBJECT:
            raise ProtocolError("not an ASF stream (no ASF header object)")
        if len(buffer) < _HEADER_OBJECT_SIZE:
            return False
        _, header_size = _OBJECT_HEADER.unpack_from(buffer)
        if header_size > MAX_HEADER_SIZE:
            raise MessageTooLarge(f"ASF header of {header_size} bytes")
        if header_size < _HEADER_OBJECT_SIZE:
            raise ProtocolError(f"ASF header object of {header_size} bytes")
        if len(buffer) < header_size + _DATA_OBJECT_SIZE:
            return False
        broadcast, packet_size = self._read_header_objects(bytes(buffer[:header_size]))
        guid, data_size = _OBJECT_HEADER.unpack_from(buffer, header_size)
        if guid != DATA_OBJECT:
            raise ProtocolError("no ASF data object after the header")
        # A live stream cannot know its length; a file's data object ends at its size.
        if not broadcast and data_size >= _DATA_OBJECT_SIZE + packet_size:
            self._data_left = data_size - _DATA_OBJECT_SIZE
        del buffer[: header_size + _DATA_OBJECT_SIZE]
        self._packet_size = packet_size
        return True

    def _read_header_objects(self, header: bytes) -> tuple[bool, int]:
        """(broadcast, data packet size) from the header; fills in :attr:`streams`."""
        position = _HEADER_OBJECT_SIZE
        properties: tuple[bool, int] | None = None
        while position + _OBJECT_HEADER.size <= len(header):
            guid, size = _OBJECT_HEADER.unpack_from(header, position)
            if size < _OBJECT_HEADER.size or position + size > len(header):
                raise ProtocolError(f"ASF header holds an object of {size} bytes")
            body = header[position + _OBJECT_HEADER.size : position + size]
            try:
                if guid == _FILE_PROPERTIES:
                    properties = _file_properties(body)
                elif guid == _STREAM_PROPERTIES:
                    stream = _stream_properties(body)
                    self.streams[stream.number] = stream
            except struct.error:
                raise ProtocolError("ASF header object cut short") from None
            position += size
        if properties is None:
            raise ProtocolError("ASF header without file properties")
        if not self.streams:
            raise ProtocolError("ASF header without streams")
        return properties

    # -- data packets ---------------------------------------------------------------------------

    def _read_packet(self, packet: bytes, events: list[AsfObject | SkippedPacket]) -> None:
        position = 0
        flags = packet[0]
        if flags & 0x80:  # error correction data first
            if flags & 0x60:
                raise _Damaged("unknown error correction length type")
            position = 1 + (flags & 0x0F)
        length_types, property_types = packet[position], packet[position + 1]
        position += 2
        length, position = _field(packet, position, length_types >> 5)
        _, position = _field(packet, position, length_types >> 1)  # sequence
        padding, position = _field(packet, position, length_types >> 3)
        position += 6  # send time, duration
        end = (length or len(packet)) - padding
        if length > len(packet) or end < position:
            raise _Damaged(f"packet of {length} bytes with {padding} of padding")
        count, payload_length_type = 1, 0
        multiple = bool(length_types & 0x01)
        if multiple:
            count, payload_length_type = packet[position] & 0x3F, packet[position] >> 6
            position += 1
        for _ in range(count):
            stream_number = packet[position] & 0x7F
            object_number, position = _field(packet, position + 1, property_types >> 4)
            offset, position = _field(packet, position, property_types >> 2)
            replicated_length, position = _field(packet, position, property_types)
            replicated = packet[position : position + replicated_length]
            position += replicated_length
            if multiple:
                size, position = _field(packet, position, payload_length_type)
            else:
                size = end - position
            if size <= 0 or position + size > end:
                raise _Damaged(f"payload of {size} bytes past the packet's end")
            payload = packet[position : position + size]
            position += size
            stream = self.streams.get(stream_number)
            if stream is None:
                continue  # a stream the header did not declare: nothing to give it to
            if replicated_length == 1:
                events += self._compressed(stream, payload)
            else:
                whole = self._fragment(stream, object_number, offset, replicated, payload)
                if whole is not None:
                    events.append(AsfObject(stream, _descrambled(stream, whole)))

    def _compressed(self, stream: AsfStream, payload: bytes) -> list[AsfObject]:
        """A compressed payload: whole objects, each behind its one-byte length."""
        objects = []
        position = 0
        while position < len(payload):
            size = payload[position]
            data = payload[position + 1 : position + 1 + size]
            if len(data) < size:
                raise _Damaged("compressed payload cut short")
            objects.append(AsfObject(stream, data))
            position += 1 + size
        return objects

    def _fragment(
        self, stream: AsfStream, object_number: int, offset: int, replicated: bytes, data: bytes
    ) -> bytes | None:
        """Add a piece of a media object; the object once it is whole."""
        if len(replicated) >= 8:
            (size,) = struct.unpack_from("<I", replicated)
        elif not replicated and offset == 0:
            size = len(data)  # no replicated data: the payload is the whole object
        else:
            raise _Damaged(f"replicated data of {len(replicated)} bytes")
        if size > self._max_object_size:
            self._partials.pop(stream.number, None)
            raise _Damaged(f"a media object of {size} bytes")
        partial = self._partials.get(stream.number)
        if offset == 0:
            partial = self._partials[stream.number] = _Partial(object_number, size)
        elif partial is None or (partial.number, partial.size, len(partial.data)) != (
            object_number,
            size,
            offset,
        ):
            # A piece of an object whose start was lost (or skipped): wait for the next.
            self._partials.pop(stream.number, None)
            return None
        partial.data += data
        if len(partial.data) < size:
            return None
        del self._partials[stream.number]
        if len(partial.data) > size:
            raise _Damaged(f"a media object longer than its {size} bytes")
        return bytes(partial.data)


def _file_properties(body: bytes) -> tuple[bool, int]:
    fields = _FILE_PROPERTIES_BODY.unpack_from(body)
    flags, min_size, max_size = fields[7], fields[8], fields[9]
    if min_size != max_size:
        raise ProtocolError(f"ASF data packets of {min_size} to {max_size} bytes, not fixed")
    if not 32 <= max_size <= MAX_PACKET_SIZE:
        raise ProtocolError(f"ASF data packets of {max_size} bytes")
    return bool(flags & _BROADCAST), max_size


def _stream_properties(body: bytes) -> AsfStream:
    stream_type, _, _, type_length, correction_length, flags, _ = (
        _STREAM_PROPERTIES_BODY.unpack_from(body)
    )
    number = flags & 0x7F
    if number == 0:
        raise ProtocolError("ASF stream number 0")
    type_data = body[_STREAM_PROPERTIES_BODY.size : _STREAM_PROPERTIES_BODY.size + type_length]
    correction = body[_STREAM_PROPERTIES_BODY.size + type_length :][:correction_length]
    if stream_type == _VIDEO_MEDIA:
        return AsfStream(number, StreamKind.VIDEO)
    if stream_type != _AUDIO_MEDIA:
        return AsfStream(number, StreamKind.OTHER)
    tag, channels, rate, _, block_align, bits, extra_length = _WAVEFORMATEX.unpack_from(type_data)
    extra = type_data[_WAVEFORMATEX.size : _WAVEFORMATEX.size + extra_length]
    wave = WaveFormat(tag, channels, rate, block_align, bits, extra)
    spread = None
    if len(correction) >= _SPREAD.size:
        span, packet_length, chunk_length, _, _ = _SPREAD.unpack_from(correction)
        # Only a span over several packets of whole chunks scrambles anything.
        whole_chunks = chunk_length > 0 and packet_length % chunk_length == 0
        if span > 1 and whole_chunks and packet_length // chunk_length > 1:
            spread = (span, packet_length, chunk_length)
    return AsfStream(number, StreamKind.AUDIO, wave, spread)


def _descrambled(stream: AsfStream, data: bytes) -> bytes:
    """An audio spread object in its natural order: the chunks were written column by column
    across ``span`` rows of ``packet_length`` bytes."""
    if stream.spread is None:
        return data
    span, packet_length, chunk_length = stream.spread
    if len(data) != span * packet_length:
        return data  # not a scrambled unit (a short last one, say)
    per_row = packet_length // chunk_length
    chunks = []
    for index in range(len(data) // chunk_length):
        row, column = divmod(index, span)
        source = (row + column * per_row) * chunk_length
        chunks.append(data[source : source + chunk_length])
    return b"".join(chunks)


def _field(packet: bytes, position: int, length_type: int) -> tuple[int, int]:
    """A field whose size a 2-bit length type gives (absent: 0); (value, position after)."""
    size = _FIELD_SIZES[length_type & 0x03]
    if not size:
        return 0, position
    (value,) = struct.unpack_from(_FIELD_FORMATS[size], packet, position)
    return value, position + size
