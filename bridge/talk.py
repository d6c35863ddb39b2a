"""Talking to a camera, as the layer that receives the audio and the one that plays it share it.

``rtsp/`` receives a client's audio (the ONVIF back channel) and hands each packet's payload to
a :class:`TalkSink`; ``media/`` makes the camera play it. Neither knows the other: the Gateway
gives the RTSP server, per stream path, the camera's :class:`TalkLine` (or None for a camera
without a speaker).
"""

from __future__ import annotations

import enum
from typing import Protocol


class TalkCodec(enum.Enum):
    """What a client may send: G.711 at 8 kHz mono, RTP's static payload types 0 and 8."""

    PCMU = "pcmu"  # u-law
    PCMA = "pcma"  # A-law


class TalkSink(Protocol):
    """One client's claim on a camera's speaker, from claiming it until :meth:`close`."""

    def send(self, codec: TalkCodec, payload: bytes) -> None:
        """Play one packet's audio; never blocks: dropped when the camera does not keep up."""

    def close(self) -> None:
        """Give the speaker back; what was sent and not yet played may be dropped."""


class TalkLine(Protocol):
    """A camera's speaker: one talker at a time."""

    def claim(self) -> TalkSink | None:
        """The speaker for one client, or None while another client holds it."""
