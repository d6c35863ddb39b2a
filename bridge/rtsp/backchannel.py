"""The ONVIF audio back channel (Streaming Specification, "Back channel connection"): a client
that sends ``Require: www.onvif.org/ver20/backchannel`` with DESCRIBE gets one more audio
section, ``a=sendonly``, SETUPs it like any track (UDP: it sends RTP to our server port; TCP:
interleaved frames on the RTP channel) and talks from its PLAY on.

:class:`Backchannel` is that track in a session: each packet goes through the sans-I/O
:class:`~bridge.rtsp.rtp.RtpReceiver` (version, offered payload types, SSRC, order, size) and
a per-track rate limit, and from PLAY until PAUSE or the session's end what passes is handed to
the camera's :class:`~bridge.talk.TalkSink`, which never blocks. Garbage is counted and
dropped, never raised: a talker can do nothing to the loop that viewers share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bridge.ratelimit import TokenBucket
from bridge.rtsp.rtp import RtpReceiver
from bridge.rtsp.sdp import PT_PCMA, PT_PCMU
from bridge.rtsp.session import InterleavedOutput, Output, UdpOutput
from bridge.talk import TalkCodec, TalkSink

log = logging.getLogger(__name__)

BACKCHANNEL = "www.onvif.org/ver20/backchannel"  # the RTSP option tag (Require, Unsupported)
# The codec of each payload type the SDP offers (sdp.backchannel_media).
PAYLOAD_CODECS = {PT_PCMU: TalkCodec.PCMU, PT_PCMA: TalkCodec.PCMA}
# 20 ms packets come 50 a second; a client sending 10 ms ones, or catching up, stays under this.
MAX_PACKET_RATE = 200.0


class _Datagrams(asyncio.DatagramProtocol):
    """The server RTP port of a UDP back channel: only the client's host may talk into it."""

    def __init__(self, client_host: str, on_packet: Callable[[bytes], None]) -> None:
        self._client_host = client_host
        self._on_packet = on_packet

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        # Any port: a NAT may move it, but another host has no say in this session.
        if addr[0] == self._client_host:
            self._on_packet(data)


class Backchannel:
    """One session's back-channel track; ``on_activity`` is told of each packet accepted (it
    keeps the session alive: a talker sends RTP and Sender Reports, never Receiver Reports)."""

    def __init__(self, sink: TalkSink, on_activity: Callable[[], None]) -> None:
        self._sink = sink
        self._on_activity = on_activity
        # What it refused is counted in the receiver's ``dropped`` (packets past the rate
        # limit are not read at all).
        self.receiver = RtpReceiver(PAYLOAD_CODECS)
        self._rate = TokenBucket(rate=MAX_PACKET_RATE, burst=MAX_PACKET_RATE / 2)
        self.output: Output | None = None  # the transport SETUP opened; nothing is sent on it
        self.playing = False

    def datagram_protocol(self, client_host: str) -> asyncio.DatagramProtocol:
        """The protocol of the server RTP socket, for a UDP transport."""
        return _Datagrams(client_host, self.on_rtp)

    @property
    def channels(self) -> tuple[int, int] | None:
        """The interleaved (RTP, RTCP) channels, or None over UDP."""
        return self.output.channels if isinstance(self.output, InterleavedOutput) else None

    @property
    def udp_sockets(self) -> int:
        return 2 if isinstance(self.output, UdpOutput) else 0

    def on_rtp(self, data: bytes) -> None:
        """One RTP packet from the client. Before PLAY it is dropped unread: the specification
        has the client wait for the PLAY response."""
        if not self.playing:
            return
        if not self._rate.allow(time.monotonic()):
            return
        packet = self.receiver.receive(data)
        if packet is None:
            return
        self._on_activity()
        self._sink.send(PAYLOAD_CODECS[packet.payload_type], packet.payload)

    def close(self) -> None:
        """Stop receiving, give the speaker back and release the transport."""
        self.playing = False
        self._sink.close()
        if self.output is not None:
            self.output.close()
