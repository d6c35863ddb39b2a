"""``/metrics``: the gateway's state in Prometheus' text format, made by ``prometheus_client``.

Nothing here counts: at each scrape a collector asks the gateway for a :class:`Snapshot` of
counters its layers already keep (frames a fan-out delivered, what each RTSP stream sent, each
ONVIF request answered, encoder CPU time) and turns it into metric families, so the hot paths
pay an integer increment at most and there is no second bookkeeping to drift. Every label comes
from the config (camera names), the code (profiles, transports) or the WSDL catalog (ONVIF
operations), never from what a client sent, so the series stay bounded.

Each gateway has its own registry (tests run many gateways in one process), holding this
collector and the library's process collector (CPU seconds, RSS, open fds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from bridge.cameras.base import CameraState


@dataclass(frozen=True, slots=True)
class ProfileCounts:
    """One camera profile's stream (``main``, ``sub``, ``jpeg``)."""

    profile: str
    frames_out: int  # video frames sent, summed over its viewers
    frames_dropped: int  # frames its viewers lost (lagging, or a full socket)
    bytes_out: int  # RTP payload bytes sent, summed over its viewers
    viewers: int  # playing RTSP sessions
    encoded_frames: int = 0  # H.264 profiles: pictures encoded ...
    encode_seconds: float = 0.0  # ... and the encoder thread's CPU time for them


@dataclass(frozen=True, slots=True)
class CameraCounts:
    name: str
    state: CameraState
    since: float  # when it entered that state (Unix time)
    frames_in: int  # pictures received from the camera
    reconnects: int  # times its stream was reopened after failing
    auth_failures: int  # connection attempts the camera refused for the credentials
    profiles: Sequence[ProfileCounts]


@dataclass(frozen=True, slots=True)
class Snapshot:
    cameras: Sequence[CameraCounts]
    onvif_requests: Mapping[tuple[str, str, str], int]  # (service, operation, fault) -> count
    rtsp_sessions: Mapping[str, int]  # transport (udp, tcp, http) -> sessions


class GatewayCollector(Collector):
    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        snapshot = self._read()
        camera = ["camera"]
        profile = ["camera", "profile"]
        up = GaugeMetricFamily("bridge_camera_up", "1 while the camera delivers", labels=camera)
        state = GaugeMetricFamily(
            "bridge_camera_state", "1 for the camera's current state", labels=["camera", "state"]
        )
        since = GaugeMetricFamily(
            "bridge_camera_state_since_seconds",
            "When the camera entered its current state (Unix time)",
            labels=camera,
        )
        frames_in = CounterMetricFamily(
            "bridge_camera_frames_in", "Pictures received from the camera", labels=camera
        )
        reconnects = CounterMetricFamily(
            "bridge_camera_reconnects",
            "Times the camera's stream was reopened after failing",
            labels=camera,
        )
        auth_failures = CounterMetricFamily(
            "bridge_camera_auth_failures",
            "Connection attempts the camera refused for the credentials",
            labels=camera,
        )
        frames_out = CounterMetricFamily(
            "bridge_frames_out", "Video frames sent, summed over viewers", labels=profile
        )
        dropped = CounterMetricFamily(
            "bridge_frames_dropped",
            "Video frames viewers lost (lagging or congested)",
            labels=profile,
        )
        bytes_out = CounterMetricFamily(
            "bridge_bytes_out", "RTP payload bytes sent, summed over viewers", labels=profile
        )
        viewers = GaugeMetricFamily("bridge_viewers", "Playing RTSP sessions", labels=profile)
        encode = SummaryMetricFamily(
            "bridge_encode_seconds",
            "Encoder thread CPU time per encoded picture (decode, scale, H.264)",
            labels=profile,
        )
        for cam in snapshot.cameras:
            up.add_metric([cam.name], 1 if cam.state is CameraState.ONLINE else 0)
            for name in CameraState:
                state.add_metric([cam.name, name], 1 if cam.state is name else 0)
            since.add_metric([cam.name], cam.since)
            frames_in.add_metric([cam.name], cam.frames_in)
            reconnects.add_metric([cam.name], cam.reconnects)
            auth_failures.add_metric([cam.name], cam.auth_failures)
            for p in cam.profiles:
                labels = [cam.name, p.profile]
                frames_out.add_metric(labels, p.frames_out)
                dropped.add_metric(labels, p.frames_dropped)
                bytes_out.add_metric(labels, p.bytes_out)
                viewers.add_metric(labels, p.viewers)
                if p.profile != "jpeg":
                    encode.add_metric(labels, p.encoded_frames, p.encode_seconds)
        onvif = CounterMetricFamily(
            "bridge_onvif_requests",
            'ONVIF requests answered, by service, operation and fault ("none" for success)',
            labels=["service", "operation", "fault"],
        )
        for (service, operation, fault), count in sorted(snapshot.onvif_requests.items()):
            onvif.add_metric([service, operation, fault], count)
        sessions = GaugeMetricFamily(
            "bridge_rtsp_sessions", "RTSP sessions set up, by transport", labels=["transport"]
        )
        for transport, count in sorted(snapshot.rtsp_sessions.items()):
            sessions.add_metric([transport], count)
        yield from (up, state, since, frames_in, reconnects, auth_failures, frames_out, dropped)
        yield from (bytes_out, viewers, encode, onvif, sessions)


def metrics_registry(read: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own for one gateway: its collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(read))
    ProcessCollector(registry=registry)
    return registry
