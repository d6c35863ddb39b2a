"""What a stream is, shared by the layer that makes it and the layers that serve or describe it.

``media/`` makes a camera profile's stream and hands it out as a :class:`StreamSpec`: its tracks
and how to pull its access units. ``rtsp/`` serves it (packetized for RTP, described in SDP) and
``onvif/`` describes it; ``media/`` knows neither of them. So nothing here knows a protocol:
the RTP side of a track (payload type, SDP media description, packetizing) lives in
:mod:`bridge.rtsp.stream`.

Media times are seconds on ``time.monotonic()``, the clock the drivers stamp arrivals with: one
clock for every track of every stream, so audio and video line up and :func:`wall_clock_offset`
maps any of them to Unix time.
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bridge.codecs.h264 import NAL_PPS, NAL_SPS, nal_type


class Codec(enum.Enum):
    H264 = "h264"
    JPEG = "jpeg"
    PCMU = "pcmu"  # G.711 u-law
    AAC = "aac"

    @property
    def is_video(self) -> bool:
        return self in (Codec.H264, Codec.JPEG)


@dataclass(slots=True)
class MediaTrack:
    """One elementary stream. Mutable on purpose, with one writer: the producer fills in what
    it learns of the live stream (the frame rate it measures, the H.264 ``sps``/``pps`` of each
    keyframe it hands out, None until then) for everyone describing the track to read.

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
        """Ticks per second of the track's timestamps: 90 kHz for video, else its rate."""
        return 90_000 if self.codec.is_video else self.sample_rate

    def learn_parameter_sets(self, nal_units: Sequence[bytes]) -> None:
        """Keep the SPS and PPS among an H.264 keyframe's NAL units: an encoder reopened at
        another size sends new ones, and the next DESCRIBE must give them."""
        for nal in nal_units:
            kind = nal_type(nal)
            if kind == NAL_SPS:
                self.sps = nal
            elif kind == NAL_PPS:
                self.pps = nal

    @property
    def describable(self) -> bool:
        """Whether everything a client needs to decode the track is known."""
        return self.codec is not Codec.H264 or (self.sps is not None and self.pps is not None)


class AccessUnit(NamedTuple):
    """One unit of a track: H.264, the NAL units (no start codes) of one picture; JPEG, one
    whole baseline JPEG; PCMU, u-law bytes; AAC, one raw AAC frame."""

    track: int  # index into the stream's tracks
    payload: Sequence[bytes] | bytes
    media_time: float  # seconds on time.monotonic() when the unit was captured (arrived)
    keyframe: bool  # H.264: contains an IDR; JPEG and audio: always True
    arrival: float | None = None  # time.monotonic() when the camera's data for it arrived


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One profile's stream as its producer hands it out; whoever serves it pulls it.

    ``open_upstream`` starts the pipeline behind the stream (an encoder, say) and yields its
    access units; it is called again after the pipeline was released or failed. Only one
    upstream of a spec should run at a time: whoever serves it shares that one among its
    viewers (the RTSP side's ``FanoutSource`` does). ``request_keyframe`` asks for an IDR
    soon (None: every unit is a keyframe). ``idle_grace`` is how long the upstream should be
    kept after its last viewer leaves, ``stall_timeout`` how long without a unit counts as a
    failure (``math.inf``: the producer detects stalls itself).
    """

    name: str
    tracks: tuple[MediaTrack, ...]
    open_upstream: Callable[[], AsyncIterator[AccessUnit]]
    request_keyframe: Callable[[], None] | None = None
    idle_grace: float = 10.0
    stall_timeout: float = 10.0


def wall_clock_offset() -> float:
    """Unix time minus media time, now: a media time plus this is the Unix time of that instant.

    One offset for every track and viewer (an RTCP Sender Report states it), not an anchor
    taken from whichever unit was sent last, which would shift the mapping by that unit's
    delay through the pipeline. Read when needed rather than fixed at start, so a wall clock
    that NTP sets after boot (a small box without a battery clock) is followed.
    """
    return time.time() - time.monotonic()
