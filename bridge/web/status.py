"""What the status page shows, as ``GET /api/cameras`` hands it to the page's script.

The gateway fills these in (:meth:`bridge.app.Gateway._status`); the web layer only serializes
them. Counters are totals since the gateway started: the page turns two readings into rates
(output fps and bitrate), so the server keeps no per-client state for it. Every text field
may come from a camera or a config file: the page sets them as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone watching a profile: the client's address and how it receives the stream."""

    address: str
    transport: str  # "udp", "tcp" or "http" (RTSP), "mjpeg" (the status page's live view)


@dataclass(frozen=True, slots=True)
class ProfileStatus:
    name: str  # "main", "sub", "jpeg"
    url: str  # its RTSP URL, as handed out (never with credentials)
    frames_out: int  # video frames sent, summed over its viewers
    bytes_out: int
    frames_dropped: int
    viewers: tuple[Viewer, ...]


@dataclass(frozen=True, slots=True)
class PtzControls:
    """Which controls the page offers for a camera that moves."""

    move: bool  # pan/tilt arrows
    zoom: bool
    presets: bool


DISABLED = "disabled"  # the state of a camera the config turns off (``enabled: false``)


@dataclass(frozen=True, slots=True)
class CameraStatus:
    name: str
    state: str  # a CameraState value, or DISABLED
    since: float  # Unix time it entered that state
    last_error: str
    dialect: str
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    camera_url: str = ""  # where the legacy camera itself answers
    input_fps: float | None = None  # measured while its stream runs
    jpeg_bytes: int | None = None  # size of its latest picture, while its stream runs
    size: tuple[int, int] | None = None
    reconnects: int = 0
    onvif_url: str = ""  # its ONVIF device service, once serving
    onvif_address: str = ""  # host:port that device listens on
    snapshot_url: str = ""
    live_url: str = ""  # relative to the page: the live view as multipart JPEG
    profiles: tuple[ProfileStatus, ...] = ()
    live_viewers: tuple[Viewer, ...] = ()
    ptz: PtzControls | None = None


@dataclass(frozen=True, slots=True)
class FoundCamera:
    """A camera LAN discovery found that is not in the config, with a ready config entry."""

    url: str
    dialect: str
    model: str
    config: str = ""  # a ``cameras:`` block to paste (the password left to fill in)


@dataclass(frozen=True, slots=True)
class Status:
    cameras: Sequence[CameraStatus]
    found: Sequence[FoundCamera]

    def as_json(self) -> dict[str, Any]:
        return {
            "cameras": [asdict(camera) for camera in self.cameras],
            "found": [asdict(found) for found in self.found],
        }
