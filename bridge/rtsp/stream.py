"""What the RTSP server streams: tracks, access units, and the source interface it pulls from.

A path (``<camera>/<profile>``) resolves to a :class:`StreamSource`. The server describes its
tracks, subscribes once per playing session and asks for an IDR when a viewer joins.
:class:`FanoutSource` is the usual implementation: one upstream of access units shared by every
viewer through :class:`~bridge.media.fanout.Fanout`, learning the H.264 parameter sets from the
stream itself so DESCRIBE can answer without a side channel to the camera.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from bridge.codecs.h264 import NAL_PPS, NAL_SPS, nal_type
from bridge.errors import ProtocolError
from bridge.media.fanout import Fanout
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

log = logging.getLogger(__name__)


class Codec(enum.Enum):
    H264 = "H264"
    JPEG = "JPEG"
    PCMU = "PCMU"
    AAC = "MPEG4-GENERIC"

    @property
    def is_video(self) -> bool:
        return self in (Codec.H264, Codec.JPEG)


_PAYLOAD_TYPES = {Codec.H264: PT_H264, Codec.JPEG: PT_JPEG, Codec.PCMU: PT_PCMU, Codec.AAC: PT_AAC}


@dataclass(slots=True)
class MediaTrack:
    """One elementary stream; H.264 ``sps``/``pps`` stay None until the source has seen them.

    ``sample_rate`` and ``aac_config`` (AudioSpecificConfig) describe an AAC track.
    """

    codec: Codec
    framerate: float | None = None
    sps: bytes | None = None
    pps: bytes | None = None
    sample_rate: int = 8_000
    aac_config: bytes = b""

    @property
    def clock_rate(self) -> int:
        return 90_000 if self.codec.is_video else self.sample_rate

    @property
    def payload_type(self) -> int:
        return _PAYLOAD_TYPES[self.codec]

    @property
    def describable(self) -> bool:
        return self.codec is not Codec.H264 or (self.sps is not None and self.pps is not None)

    def media(self, control: str) -> MediaDescription:
        match self.codec:
            case Codec.PCMU:
                return pcmu_media(control=control)
            case Codec.AAC:
                return aac_media(self.sample_rate, 1, self.aac_config, control=control)
            case Codec.JPEG:
                return jpeg_media(control=control, framerate=self.framerate)
        if self.sps is None or self.pps is None:
            raise ValueError("H.264 track described before its parameter sets are known")
        return h264_media(self.sps, self.pps, control=control, framerate=self.framerate)

    def payloads(self, unit: AccessUnit) -> list[bytes]:
        """The RTP payloads carrying one unit of this track, in order."""
        payload = unit.payload
        if self.codec is Codec.H264:
            assert not isinstance(payload, bytes)
            return h264.packetize(payload)
        assert isinstance(payload, bytes)
        match self.codec:
            case Codec.JPEG:
                return jpeg.packetize(payload)
            case Codec.AAC:
                return [aac.packetize(payload)]
        return [payload]


class AccessUnit(NamedTuple):
    """One unit of a track: H.264, the NAL units (no start codes) of one picture; JPEG, one
    whole baseline JPEG; PCMU, u-law bytes; AAC, one raw AAC frame."""

    track: int  # index into the source's tracks
    payload: Sequence[bytes] | bytes
    media_time: float  # seconds on the source's clock, shared by all its tracks
    keyframe: bool  # H.264: contains an IDR; JPEG and audio: always True
    arrival: float | None = None  # time.monotonic() when the camera's data for it arrived


class PacketizedUnit(NamedTuple):
    """An access unit as every viewer sends it: packetized once, whatever the viewer count."""

    track: int
    payloads: Sequence[bytes]  # the RTP payloads, in order
    media_time: float
    keyframe: bool
    arrival: float | None


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
    """A :class:`StreamSource` over one upstream of access units shared through a Fanout.

    Units are packetized here, once for all viewers; one the packetizer refuses (a JPEG with no
    RTP/JPEG type) is skipped. H.264 parameter sets are learned from every keyframe, so the SDP
    follows an encoder that reopened at a new size.
    """

    def __init__(
        self,
        tracks: Sequence[MediaTrack],
        open_upstream: Callable[[], AsyncIterator[AccessUnit]],
        *,
        name: str,
        request_keyframe: Callable[[], None] | None = None,
        depth: int = 8,
        idle_grace: float = 10.0,
        stall_timeout: float = 10.0,
    ) -> None:
        self._tracks = tuple(tracks)
        self._open_upstream = open_upstream
        self._request_keyframe = request_keyframe
        self._depth = depth
        self._ready = asyncio.Event()
        self._fanout: Fanout[PacketizedUnit] = Fanout(
            self._observed, name=name, idle_grace=idle_grace, stall_timeout=stall_timeout
        )

    @property
    def tracks(self) -> Sequence[MediaTrack]:
        return self._tracks

    async def _observed(self) -> AsyncIterator[PacketizedUnit]:
        upstream = self._open_upstream()
        try:
            async for unit in upstream:
                track = self._tracks[unit.track]
                if unit.keyframe and track.codec is Codec.H264:
                    self._learn(track, unit)
                try:
                    payloads = track.payloads(unit)
                except ProtocolError as exc:
                    log.debug("%s: skipping a unit: %s", self._fanout.name, exc)
                    continue
                yield PacketizedUnit(
                    unit.track, payloads, unit.media_time, unit.keyframe, unit.arrival
                )
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _learn(self, track: MediaTrack, unit: AccessUnit) -> None:
        assert not isinstance(unit.payload, bytes)
        for nal in unit.payload:
            if nal_type(nal) == NAL_SPS:
                track.sps = nal
            elif nal_type(nal) == NAL_PPS:
                track.pps = nal
        if not self._ready.is_set() and all(t.describable for t in self._tracks):
            self._ready.set()

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
