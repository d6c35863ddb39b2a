"""One RTSP session: its tracks' transports, RTP/RTCP sending, and the playing task.

Each playing session owns one subscription to its source. A viewer that lags loses frames in
two bounded places, never delaying anyone else: its subscription queue (drops oldest), and its
socket's write buffer (above :data:`HIGH_WATER` frames are skipped). After either loss the
video waits for the next IDR, because P-frames that follow a gap only decode to garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from bridge.errors import ProtocolError
from bridge.rtsp.protocol import InterleavedFrame, TransportSpec
from bridge.rtsp.rtcp import (
    Bye,
    ReceiverReport,
    SourceDescription,
    parse_compound,
    serialize_compound,
)
from bridge.rtsp.rtp import RtpSequencer
from bridge.rtsp.stream import MediaSubscription, PacketizedUnit, StreamSource, payload_type
from bridge.streams import MediaTrack, wall_clock_offset

if TYPE_CHECKING:
    from bridge.rtsp.backchannel import Backchannel

log = logging.getLogger(__name__)

HIGH_WATER = 256 * 1024  # bytes queued on a viewer's socket before its frames are skipped
SR_INTERVAL = 4.0  # RFC 3550 allows 5 s; a margin keeps one in every 5 s window
FIRST_KEYFRAME_TIMEOUT = 5.0
CNAME = "bridge"


class Output(Protocol):
    """Where one track's RTP and RTCP go."""

    def send_rtp(self, packets: list[bytes]) -> None: ...

    def send_rtcp(self, packet: bytes) -> None: ...

    def congested(self) -> bool: ...

    def close(self) -> None: ...


class InterleavedOutput:
    """RTP/RTCP framed with ``$`` on the RTSP connection (RFC 2326 §10.12)."""

    def __init__(self, writer: asyncio.StreamWriter, channels: tuple[int, int]) -> None:
        self._writer = writer
        self.channels = channels

    def send_rtp(self, packets: list[bytes]) -> None:
        # One write per frame: fewer syscalls, and the frame lands in the buffer whole.
        self._writer.write(
            b"".join(InterleavedFrame(self.channels[0], p).serialize() for p in packets)
        )

    def send_rtcp(self, packet: bytes) -> None:
        self._writer.write(InterleavedFrame(self.channels[1], packet).serialize())

    def congested(self) -> bool:
        return self._writer.is_closing() or (
            self._writer.transport.get_write_buffer_size() > HIGH_WATER
        )

    def close(self) -> None:
        """The connection belongs to the RTSP exchange, which closes it."""


class _Discard(asyncio.DatagramProtocol):
    """The RTP socket: clients send NAT-opening probes there, which mean nothing to us."""


class _RtcpReceiver(asyncio.DatagramProtocol):
    def __init__(self, on_receiver_report: Callable[[], None]) -> None:
        self._on_receiver_report = on_receiver_report

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if is_receiver_report(data):
            self._on_receiver_report()


def is_receiver_report(data: bytes) -> bool:
    try:
        return any(isinstance(p, ReceiverReport) for p in parse_compound(data))
    except ProtocolError:
        return False


class UdpOutput:
    """A server RTP/RTCP port pair (even/odd, RFC 3550 §11) sending to the client's pair."""

    def __init__(
        self,
        rtp: asyncio.DatagramTransport,
        rtcp: asyncio.DatagramTransport,
        client_host: str,
        client_ports: tuple[int, int],
    ) -> None:
        self._rtp, self._rtcp = rtp, rtcp
        self._rtp_to = (client_host, client_ports[0])
        self._rtcp_to = (client_host, client_ports[1])

    @property
    def server_ports(self) -> tuple[int, int]:
        return self._rtp.get_extra_info("sockname")[1], self._rtcp.get_extra_info("sockname")[1]

    @classmethod
    async def bind(
        cls,
        host: str,
        client_host: str,
        client_ports: tuple[int, int],
        on_receiver_report: Callable[[], None],
        *,
        rtp_protocol: Callable[[], asyncio.DatagramProtocol] | None = None,
        attempts: int = 32,
    ) -> UdpOutput:
        """Bind a fresh pair; OSError when none is free or no socket can be had (EMFILE).
        ``rtp_protocol`` reads what arrives on the RTP port (a back channel's audio); by
        default it is dropped."""
        loop = asyncio.get_running_loop()
        for _ in range(attempts):
            rtp, _proto = await loop.create_datagram_endpoint(
                rtp_protocol or _Discard, local_addr=(host, 0)
            )
            port = rtp.get_extra_info("sockname")[1]
            if port % 2 == 0 and port < 0xFFFF:
                try:
                    rtcp, _ = await loop.create_datagram_endpoint(
                        lambda: _RtcpReceiver(on_receiver_report), local_addr=(host, port + 1)
                    )
                except OSError as exc:
                    rtp.close()
                    if exc.errno != errno.EADDRINUSE:
                        raise  # out of sockets: another attempt would only fail again
                    continue  # the odd neighbour is taken: try another pair
                return cls(rtp, rtcp, client_host, client_ports)
            rtp.close()
        raise OSError(f"no free even/odd UDP port pair on {host} after {attempts} attempts")

    def send_rtp(self, packets: list[bytes]) -> None:
        for packet in packets:
            self._rtp.sendto(packet, self._rtp_to)

    def send_rtcp(self, packet: bytes) -> None:
        self._rtcp.sendto(packet, self._rtcp_to)

    def congested(self) -> bool:
        # asyncio queues datagrams the kernel refuses; typeshed just omits the size getter.
        size: int = self._rtp.get_write_buffer_size()  # type: ignore[attr-defined]
        return self._rtp.is_closing() or size > HIGH_WATER

    def close(self) -> None:
        self._rtp.close()
        self._rtcp.close()


@dataclass(slots=True)
class DeliveryStats:
    """What the server sent: video frames, and for the latest of them the delay from the
    camera's data arriving to the frame's last packet leaving (for the benchmark and metrics)."""

    frames: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))

    def sent(self, unit: PacketizedUnit) -> None:
        self.frames += 1
        if unit.arrival is not None:
            self.latencies.append(time.monotonic() - unit.arrival)


@dataclass(slots=True)
class Delivered:
    """What one stream (``<camera>/<profile>``) sent to all its viewers, for metrics: video
    frames sent, frames lost (a viewer's queue overflowed or its socket was full, so it waits
    for the next keyframe), and RTP payload bytes of every track."""

    frames: int = 0
    dropped: int = 0
    bytes: int = 0


@dataclass(slots=True)
class TrackBinding:
    track: MediaTrack
    control: str  # the track URL the client used, echoed in RTP-Info
    transport: TransportSpec  # as answered in SETUP
    output: Output
    sequencer: RtpSequencer
    stats: DeliveryStats
    delivered: Delivered
    awaiting_keyframe: bool = True

    def deliver(self, unit: PacketizedUnit) -> None:
        video = self.track.codec.is_video
        if self.output.congested():
            self.awaiting_keyframe = video
            self.delivered.dropped += video
            return
        if self.awaiting_keyframe:
            if not unit.keyframe:
                self.delivered.dropped += video
                return
            self.awaiting_keyframe = False
        self.delivered.bytes += unit.size
        if video:
            self.output.send_rtp(self.sequencer.frame(unit.payloads, unit.media_time))
            self.stats.sent(unit)
            self.delivered.frames += 1
        else:
            # Continuous audio: the marker would announce a talkspurt (RFC 3551 §4.1).
            self.output.send_rtp([self.sequencer.packet(p, unit.media_time) for p in unit.payloads])


def new_sequencer(track: MediaTrack) -> RtpSequencer:
    return RtpSequencer(
        secrets.randbits(32),
        payload_type(track),
        track.clock_rate,
        initial_sequence=secrets.randbits(16),
        initial_timestamp=secrets.randbits(32),
    )


def answer_transport(spec: TransportSpec, output: Output, ssrc: int | None) -> TransportSpec:
    """The Transport a SETUP response confirms (``ssrc``: ours, None on a track we receive)."""
    if isinstance(output, UdpOutput):
        return replace(
            spec, delivery="unicast", server_port=output.server_ports, ssrc=ssrc, mode=None
        )
    return replace(spec, delivery="unicast", ssrc=ssrc, mode=None)


class State(enum.Enum):
    READY = "READY"
    PLAYING = "PLAYING"


# What Session.transport says, every one listed (metrics show each, at 0 when unused).
TRANSPORTS = ("udp", "tcp", "http")


class Session:
    """One client's session on one stream.

    ``user`` (None on a server without users) and ``host`` (the client's address) are whose it
    is: the server lets nobody else use it, whatever session id they present.
    """

    def __init__(
        self,
        path: str,
        source: StreamSource,
        timeout: float,
        *,
        user: str | None,
        host: str,
        tunnelled: bool = False,
        delivered: Delivered | None = None,
    ) -> None:
        self.id = secrets.token_hex(8)
        self.path = path
        self.delivered = Delivered() if delivered is None else delivered  # the stream's counts
        self.source = source
        self.timeout = timeout
        self.user = user
        self.host = host
        self.tunnelled = tunnelled  # set up over RTSP tunnelled in HTTP
        self.state = State.READY
        self.tracks: dict[int, TrackBinding] = {}
        self.backchannel: Backchannel | None = None  # the client talking to the camera
        self.last_activity = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._subscription: MediaSubscription | None = None
        self._pending: PacketizedUnit | None = None  # the keyframe PLAY waited for, sent first

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    @property
    def expires(self) -> float:
        """The ``time.monotonic()`` after which the session has timed out."""
        return self.last_activity + self.timeout

    def expired(self, now: float) -> bool:
        return now > self.expires

    @property
    def interleaved(self) -> bool:
        """Whether any track goes over the RTSP connection (which then carries the session)."""
        outputs: list[Output | None] = [b.output for b in self.tracks.values()]
        if self.backchannel is not None:
            outputs.append(self.backchannel.output)
        return any(isinstance(output, InterleavedOutput) for output in outputs)

    @property
    def transport(self) -> str:
        """How the client gets the session's packets: ``http`` (RTSP tunnelled in HTTP),
        ``tcp`` (interleaved on the RTSP connection) or ``udp``."""
        if self.tunnelled:
            return "http"
        return "tcp" if self.interleaved else "udp"

    @property
    def udp_sockets(self) -> int:
        talk = self.backchannel.udp_sockets if self.backchannel is not None else 0
        return talk + sum(2 for b in self.tracks.values() if isinstance(b.output, UdpOutput))

    @property
    def watching(self) -> bool:
        """Playing a track to the client: a viewer (a session that only talks is not one)."""
        return self.state is State.PLAYING and bool(self.tracks)

    @property
    def empty(self) -> bool:
        """No track set up yet, sent or received."""
        return not self.tracks and self.backchannel is None

    def on_rtcp(self, data: bytes) -> None:
        if is_receiver_report(data):
            self.touch()

    async def prepare_play(self) -> list[tuple[TrackBinding, int, int]]:
        """Subscribe and wait for the first IDR; (binding, seq, rtptime) per track for RTP-Info.

        The PLAY response must carry the RTP state of the first packet sent, so it is only
        known once the keyframe that starts the stream is in hand. A session that only talks
        (its one track the back channel) sends nothing, so waits for nothing.
        """
        if not self.tracks:
            return []
        subscription = self.source.subscribe()
        self.source.request_keyframe()
        first: PacketizedUnit | None = None
        video = {i for i, b in self.tracks.items() if b.track.codec.is_video}
        try:
            async with asyncio.timeout(FIRST_KEYFRAME_TIMEOUT):
                async for unit in subscription:
                    if unit.track in self.tracks and (
                        unit.keyframe if unit.track in video else not video
                    ):
                        first = unit
                        break
        except TimeoutError:
            subscription.close()
            raise
        assert first is not None  # a subscription never ends; only the timeout leaves early
        self._subscription = subscription
        self._pending = first
        return [
            (b, b.sequencer.sequence_number, b.sequencer.timestamp(first.media_time))
            for b in self.tracks.values()
        ]

    def start(self) -> None:
        """Start sending from the unit :meth:`prepare_play` found, and receiving on the back
        channel; call after the PLAY reply (the client talks once it has it)."""
        self.state = State.PLAYING
        if self.backchannel is not None:
            self.backchannel.playing = True
        if not self.tracks:
            return
        assert self._subscription is not None
        assert self._pending is not None
        for binding in self.tracks.values():
            binding.awaiting_keyframe = True
        self._task = asyncio.create_task(
            self._stream(self._subscription, self._pending), name=f"rtsp session {self.id}"
        )
        self._pending = None

    async def _stream(self, subscription: MediaSubscription, first: PacketizedUnit) -> None:
        loop = asyncio.get_running_loop()
        dropped = subscription.dropped
        self._deliver(first)
        self._send_reports()
        next_report = loop.time() + SR_INTERVAL
        try:
            async for unit in subscription:
                if subscription.dropped != dropped:
                    self.delivered.dropped += subscription.dropped - dropped
                    dropped = subscription.dropped
                    for binding in self.tracks.values():
                        binding.awaiting_keyframe = binding.track.codec.is_video
                self._deliver(unit)
                if loop.time() >= next_report:
                    self._send_reports()
                    next_report = loop.time() + SR_INTERVAL
        finally:
            subscription.close()

    def _deliver(self, unit: PacketizedUnit) -> None:
        binding = self.tracks.get(unit.track)
        if binding is not None:
            binding.deliver(unit)

    def _send_reports(self, *, bye: str = "") -> None:
        """A Sender Report and SDES per track; with ``bye``, a BYE giving that reason too."""
        media = time.monotonic()  # media times are on this clock (bridge.streams)
        wall = media + wall_clock_offset()
        for binding in self.tracks.values():
            ssrc = binding.sequencer.ssrc
            report = binding.sequencer.sender_report(wall, media)
            sdes = SourceDescription.for_cname(ssrc, CNAME)
            goodbye = (Bye((ssrc,), bye),) if bye else ()
            binding.output.send_rtcp(serialize_compound((report, sdes, *goodbye)))

    async def pause(self) -> None:
        if self.backchannel is not None:
            self.backchannel.playing = False
        await self._stop_streaming()
        self.state = State.READY

    async def _stop_streaming(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif self._subscription is not None:
            self._subscription.close()
        self._subscription = None

    async def close(self, *, bye: str = "") -> None:
        """Stop and release the transports. ``bye``: the server ends the session on its own
        (the stream is gone), so a playing viewer gets an RTCP BYE with that reason: players
        (ffmpeg, VLC) end when every track said BYE, also over UDP where nothing else tells
        them."""
        playing = self.state is State.PLAYING
        await self._stop_streaming()
        if bye and playing:
            self._send_reports(bye=bye)
        for binding in self.tracks.values():
            binding.output.close()
        self.tracks.clear()
        if self.backchannel is not None:
            self.backchannel.close()
            self.backchannel = None
