"""The RTP side of a stream: payload types, SDP media descriptions, packetizing, and the source
interface the RTSP server pulls from.

A path (``<camera>/<profile>``) resolves to a :class:`StreamSource`. The server describes its
tracks, subscribes once per playing session and asks for an IDR when a viewer joins.
:class:`FanoutSource` is the usual implementation, built from the
:class:`~bridge.streams.StreamSpec` a producer hands out: one upstream of access units shared by
every viewer through a :class:`~bridge.fanout.Fanout`, each unit packetized once inside it.
DESCRIBE reads the tracks' parameters (H.264 SPS/PPS, frame rate), which only their producer
writes, from the stream itself: no side channel to the camera.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple, Protocol

from bridge.errors import ProtocolError
from bridge.fanout import Fanout
from bridge.rtsp import aac, h264, jpeg
from bridge.rtsp.sdp import (
    PT_AAC,
    PT_H264,
    PT_JPEG,
    PT_PCMU,
    MediaDescription,
    aac_media,
    h264_media,
    jpeg_media,
    pcmu_media,
)
from bridge.streams import AccessUnit, Codec, MediaTrack, StreamSpec

log = logging.getLogger(__name__)

_PAYLOAD_TYPES = {Codec.H264: PT_H264, Codec.JPEG: PT_JPEG, Codec.PCMU: PT_PCMU, Codec.AAC: PT_AAC}


def payload_type(track: MediaTrack) -> int:
    return _PAYLOAD_TYPES[track.codec]


def media_description(track: MediaTrack, control: str) -> MediaDescription:
    """The track's SDP media section; ValueError for H.264 before its parameter sets are known."""
    match track.codec:
        case Codec.PCMU:
            return pcmu_media(control=control)
        case Codec.AAC:
            return aac_media(track.sample_rate, 1, track.aac_config, control=control)
        case Codec.JPEG:
            return jpeg_media(control=control, framerate=track.framerate)
    if track.sps is None or track.pps is None:
        raise ValueError("H.264 track described before its parameter sets are known")
    return h264_media(track.sps, track.pps, control=control, framerate=track.framerate)


def packetize(track: MediaTrack, unit: AccessUnit) -> list[bytes]:
    """The RTP payloads carrying one unit of ``track``, in order."""
    payload = unit.payload
    if track.codec is Codec.H264:
        assert not isinstance(payload, bytes)
        return h264.packetize(payload)
    assert isinstance(payload, bytes)
    match track.codec:
        case Codec.JPEG:
            return jpeg.packetize(payload)
        case Codec.AAC:
            return [aac.packetize(payload)]
    return [payload]


class PacketizedUnit(NamedTuple):
    """An access unit as every viewer sends it: packetized once, whatever the viewer count."""

    track: int
    payloads: Sequence[bytes]  # the RTP payloads, in order
    media_time: float
    keyframe: bool
    arrival: float | None
    size: int  # the payloads' bytes, summed once here rather than per viewer


class MediaSubscription(Protocol):
    """A viewer's bounded feed; ``dropped`` counts units lost because the viewer lagged."""

    dropped: int

    def __aiter__(self) -> AsyncIterator[PacketizedUnit]: ...

    def close(self) -> None: ...


class StreamSource(Protocol):
    @property
    def tracks(self) -> Sequence[MediaTrack]: ...

    async def wait_ready(self) -> None:
        """Return once every track is describable (H.264: SPS and PPS seen)."""

    def subscribe(self) -> MediaSubscription: ...

    def request_keyframe(self) -> None:
        """Ask for an IDR soon, so a joining viewer does not wait a whole GOP."""


class FanoutSource:
    """A :class:`StreamSource` serving one :class:`~bridge.streams.StreamSpec` to every viewer
    through one Fanout.

    Units are packetized here, in the fan-out's producer, once for all viewers: packetizing
    behind a second fan-out would add a queue hop to every frame. One the packetizer refuses (a
    JPEG with no RTP/JPEG type) is skipped. The source is ready to describe once its producer
    has filled in every track's parameters (for H.264, with its first keyframe).

    Each FanoutSource runs its own upstream (for an H.264 profile, its own encoder): keep one per
    stream and hand it to every session (the gateway keeps one per camera profile).
    """

    def __init__(self, spec: StreamSpec, *, depth: int = 8) -> None:
        self._tracks = spec.tracks
        self._open_upstream = spec.open_upstream
        self._request_keyframe = spec.request_keyframe
        self._depth = depth
        self._ready = asyncio.Event()
        self._fanout: Fanout[PacketizedUnit] = Fanout(
            self._observed,
            name=spec.name,
            idle_grace=spec.idle_grace,
            stall_timeout=spec.stall_timeout,
        )

    @property
    def tracks(self) -> Sequence[MediaTrack]:
        return self._tracks

    async def _observed(self) -> AsyncIterator[PacketizedUnit]:
        upstream = self._open_upstream()
        try:
            async for unit in upstream:
                track = self._tracks[unit.track]
                if not self._ready.is_set() and all(t.describable for t in self._tracks):
                    self._ready.set()
                try:
                    payloads = packetize(track, unit)
                except ProtocolError as exc:
                    log.debug("%s: skipping a unit: %s", self._fanout.name, exc)
                    continue
                yield PacketizedUnit(
                    unit.track,
                    payloads,
                    unit.media_time,
                    unit.keyframe,
                    unit.arrival,
                    sum(map(len, payloads)),
                )
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def wait_ready(self) -> None:
        if all(t.describable for t in self._tracks):
            return
        # Parameter sets only flow while someone is subscribed; a short-lived subscription
        # starts the upstream (kept warm by the fan-out's idle grace for the coming PLAY).
        subscription = self._fanout.subscribe(self._depth)
        try:
            self.request_keyframe()
            await self._ready.wait()
        finally:
            subscription.close()

    def subscribe(self) -> MediaSubscription:
        return self._fanout.subscribe(self._depth)

    def request_keyframe(self) -> None:
        if self._request_keyframe is not None:
            self._request_keyframe()

    async def close(self) -> None:
        await self._fanout.close()
