"""The ASF demuxer on bytes: libavformat's live ASF (what the Foscam emulator serves) and
hand-built packets for what libavformat never writes (compressed payloads, audio spread, a
file's bounded data object, damage)."""

from __future__ import annotations

import datetime
import struct
import uuid

import pytest

from bridge.cameras.asf import (
    DATA_OBJECT,
    HEADER_OBJECT,
    MAX_HEADER_SIZE,
    AsfObject,
    AsfParser,
    AsfStream,
    SkippedPacket,
    StreamKind,
    WaveFormat,
)
from bridge.errors import MessageTooLarge, ProtocolError

# The module, not its names: pytest would try to collect a class called TestPattern.
from bridge.simulator import media
from bridge.simulator.media import AsfMuxer, AudioCodec, ToneEncoder

NOON = datetime.datetime(2024, 5, 6, 12, 34, 56)
FILE_PROPERTIES = uuid.UUID("8cabdca1-a947-11cf-8ee4-00c00c205365").bytes_le
STREAM_PROPERTIES = uuid.UUID("b7dc0791-a9b7-11cf-8ee6-00c00c205365").bytes_le
AUDIO = uuid.UUID("f8699e40-5b4d-11cf-a8fd-00805f5c442b").bytes_le
VIDEO = uuid.UUID("bc19efc0-5b4d-11cf-a8fd-00805f5c442b").bytes_le
PACKET = 128  # bytes per data packet in the hand-built streams
IMA = WaveFormat(0x0011, 1, 8000, 256, 4, b"\xf9\x01")
VIDEO_1 = AsfStream(1, StreamKind.VIDEO)

Payload = tuple[int, int, int, bytes, bytes]  # stream, object number, offset, replicated, data


# -- libavformat's ASF ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def muxed() -> tuple[bytes, list[bytes], bytes]:
    """Two seconds of live ASF as the emulator muxes it, and the JPEGs and audio put in."""
    pattern = media.TestPattern(320, 240)
    tone = ToneEncoder(AudioCodec.IMA_ADPCM)
    muxer = AsfMuxer(320, 240, fps=10)
    outputs, pictures, audio = [], [], b""
    audio_pts = 0.0
    for number in range(20):
        pictures.append(pattern.render(number, NOON))
        outputs.append(muxer.add_video(pictures[-1], number / 10))
        while audio_pts < number / 10 + 0.1:
            chunk = tone.next_chunk(0.1)
            outputs.append(muxer.add_audio(chunk, audio_pts))
            audio += chunk
            audio_pts += len(chunk) / tone.bytes_per_second
    outputs.append(muxer.close())
    return b"".join(outputs), pictures, audio


def demux(
    data: bytes, read: int, parser: AsfParser | None = None
) -> list[AsfObject | SkippedPacket]:
    parser = parser or AsfParser()
    events: list[AsfObject | SkippedPacket] = []
    for start in range(0, len(data), read):
        events += parser.feed(data[start : start + read])
    return events


def of_kind(events: list[AsfObject | SkippedPacket], kind: StreamKind) -> list[bytes]:
    return [e.data for e in events if isinstance(e, AsfObject) and e.stream.kind is kind]


@pytest.mark.parametrize("read", [1, 7, 1000, 3200, 1 << 20])
def test_every_picture_and_audio_block_comes_out_whole_however_it_is_read(
    muxed: tuple[bytes, list[bytes], bytes], read: int
) -> None:
    data, pictures, audio = muxed
    events = demux(data, read)
    assert not [e for e in events if isinstance(e, SkippedPacket)]
    assert of_kind(events, StreamKind.VIDEO) == pictures
    blocks = of_kind(events, StreamKind.AUDIO)
    assert all(len(block) == 256 for block in blocks)  # one IMA block per object
    assert b"".join(blocks) == audio[: 256 * len(blocks)]
    assert len(blocks) >= len(audio) // 256 - 1  # all but what the muxer's interleaving held


def test_the_header_declares_the_streams(muxed: tuple[bytes, list[bytes], bytes]) -> None:
    parser = AsfParser()
    assert parser.feed(muxed[0][:100]) == []  # the header is not in yet
    assert not parser.started
    parser.feed(muxed[0][100:2000])
    assert parser.started
    video, audio = parser.streams[1], parser.streams[2]
    assert (video.kind, video.wave) == (StreamKind.VIDEO, None)
    assert (audio.kind, audio.wave, audio.spread) == (StreamKind.AUDIO, IMA, None)


def test_a_damaged_packet_costs_only_the_objects_it_carried(
    muxed: tuple[bytes, list[bytes], bytes],
) -> None:
    data, pictures, _ = muxed
    packet = data.index(DATA_OBJECT) + 50 + 3200 * 2  # the third: amid the first picture
    assert data[packet] == 0x82  # error correction data first, as libavformat writes it
    damaged = data[:packet] + b"\xe2" + data[packet + 1 :]  # an undefined length type
    events = demux(damaged, 4096)
    assert [e for e in events if isinstance(e, SkippedPacket)] == [
        SkippedPacket("unknown error correction length type")
    ]
    assert of_kind(events, StreamKind.VIDEO) == pictures[1:]


def test_what_is_not_asf_is_refused_at_once() -> None:
    with pytest.raises(ProtocolError, match="not an ASF stream"):
        AsfParser().feed(b"not an ASF header " * 64)
    too_big = HEADER_OBJECT + struct.pack("<QIBB", MAX_HEADER_SIZE + 1, 2, 1, 2)
    with pytest.raises(MessageTooLarge):
        AsfParser().feed(too_big)
    no_streams = header([file_properties()])
    with pytest.raises(ProtocolError, match="without streams"):
        AsfParser().feed(no_streams + data_object())
    with pytest.raises(ProtocolError, match="no ASF data object"):
        AsfParser().feed(header([file_properties(), video_stream(1)]) + bytes(50))
    variable = header([file_properties(minimum=32), video_stream(1)])
    with pytest.raises(ProtocolError, match="not fixed"):
        AsfParser().feed(variable + data_object())


# -- hand-built ASF ---------------------------------------------------------------------------


def asf_object(guid: bytes, body: bytes) -> bytes:
    return guid + struct.pack("<Q", 24 + len(body)) + body


def header(objects: list[bytes]) -> bytes:
    size = 30 + sum(len(o) for o in objects)
    return HEADER_OBJECT + struct.pack("<QIBB", size, len(objects), 1, 2) + b"".join(objects)


def file_properties(*, broadcast: bool = True, minimum: int = PACKET) -> bytes:
    counts = struct.pack("<QQQQQQ", 0, 0, 0, 0, 0, 0)
    flags = struct.pack("<IIII", int(broadcast), minimum, PACKET, 0)
    return asf_object(FILE_PROPERTIES, bytes(16) + counts + flags)


def stream(number: int, kind: bytes, type_data: bytes, correction: bytes = b"") -> bytes:
    lengths = struct.pack("<QIIHI", 0, len(type_data), len(correction), number, 0)
    return asf_object(STREAM_PROPERTIES, kind + bytes(16) + lengths + type_data + correction)


def video_stream(number: int) -> bytes:
    return stream(number, VIDEO, bytes(51))


def audio_stream(number: int, wave: WaveFormat, spread: tuple[int, int, int] | None) -> bytes:
    fields = (wave.format_tag, wave.channels, wave.sample_rate, 0, wave.block_align)
    type_data = struct.pack("<HHIIHHH", *fields, wave.bits_per_sample, len(wave.extra))
    correction = b"" if spread is None else struct.pack("<BHHHB", *spread, 1, 0)
    return stream(number, AUDIO, type_data + wave.extra, correction)


def data_object(size: int = 50) -> bytes:
    return DATA_OBJECT + struct.pack("<Q", size) + bytes(16) + struct.pack("<Q", 0) + b"\x01\x01"


def packet(*payloads: Payload) -> bytes:
    """One data packet of multiple payloads (byte object numbers, DWORD offsets, byte
    replicated data lengths, WORD payload lengths), padded to PACKET bytes."""
    body = bytes([0x80 | len(payloads)])
    for number, object_number, offset, replicated, data in payloads:
        body += struct.pack("<BBIB", number, object_number, offset, len(replicated))
        body += replicated + struct.pack("<H", len(data)) + data
    padding = PACKET - (2 + 2 + 6) - len(body)
    assert padding >= 0
    parsing = bytes([0x01 | 0x10, 0x5D]) + struct.pack("<HIH", padding, 0, 0)
    return parsing + body + bytes(padding)


def fragment(number: int, object_number: int, whole: bytes, start: int, end: int) -> Payload:
    return (number, object_number, start, struct.pack("<II", len(whole), 0), whole[start:end])


def stream_of(*packets: bytes, objects: list[bytes] | None = None) -> bytes:
    objects = objects or [file_properties(), video_stream(1)]
    return header(objects) + data_object() + b"".join(packets)


def test_fragments_are_joined_and_a_lost_start_drops_the_object() -> None:
    picture = bytes(range(40))
    other = bytes(30)  # its first 10 bytes never come
    data = stream_of(
        packet(fragment(1, 7, picture, 0, 20)),
        packet(fragment(1, 7, picture, 20, 40), fragment(1, 8, other, 10, 20)),
        packet(fragment(1, 8, other, 20, 30), fragment(1, 9, b"abc", 0, 3)),
    )
    assert demux(data, 5) == [
        AsfObject(VIDEO_1, picture),
        AsfObject(VIDEO_1, b"abc"),
    ]


def test_compressed_payloads_hold_whole_objects() -> None:
    payload = b"\x03abc\x02de"
    data = stream_of(packet((1, 1, 1000, b"\x28", payload)))
    assert of_kind(demux(data, 64), StreamKind.VIDEO) == [b"abc", b"de"]
    cut_short = stream_of(packet((1, 1, 1000, b"\x28", b"\x05ab")))
    assert demux(cut_short, 64) == [SkippedPacket("compressed payload cut short")]


def test_audio_spread_is_put_back_in_order() -> None:
    objects = [file_properties(), audio_stream(2, IMA, (2, 4, 2))]
    scrambled = b"AABBCCDD"  # 2 rows of 4 bytes, written column by column in 2-byte chunks
    short = b"EEFF"  # not a whole span: as it came
    data = stream_of(
        packet(fragment(2, 1, scrambled, 0, 8), fragment(2, 2, short, 0, 4)), objects=objects
    )
    assert of_kind(demux(data, 64), StreamKind.AUDIO) == [b"AACCBBDD", b"EEFF"]
    unscrambled = [file_properties(), audio_stream(2, IMA, (1, 256, 256))]
    parser = AsfParser()
    parser.feed(stream_of(objects=unscrambled))
    assert parser.streams[2].spread is None


def test_objects_past_the_cap_and_undeclared_streams_are_skipped() -> None:
    big = bytes(30)
    data = stream_of(
        packet((5, 1, 0, struct.pack("<II", 3, 0), b"xyz")),  # stream 5 was never declared
        packet(fragment(1, 2, big, 0, 30)),
        packet((1, 3, 0, b"", b"whole")),  # no replicated data: the payload is the object
    )
    events = demux(data, 64, AsfParser(max_object_size=20))
    assert events == [SkippedPacket("a media object of 30 bytes"), AsfObject(VIDEO_1, b"whole")]


def test_a_files_data_object_ends_where_its_size_says() -> None:
    objects = [file_properties(broadcast=False), video_stream(1)]
    first = packet((1, 1, 0, b"", b"first"))
    data = header(objects) + data_object(50 + PACKET) + first + b"an index object, say" * 5
    assert of_kind(demux(data, 7), StreamKind.VIDEO) == [b"first"]
