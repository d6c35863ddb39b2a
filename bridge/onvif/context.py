"""What every ONVIF service of one virtual device works on: one camera and the gateway around it.

A device is one legacy camera; its services translate calls into the camera's driver, its
media (:class:`~bridge.media.source.CameraMedia`) and the gateway's users. Addresses handed to
clients (XAddrs, stream and snapshot URIs) are built here: from the device's own address when
it has one (the client reached it there), else from ``advertise_host`` or, with ``auto``, from
the Host the client used to reach the gateway, so a remote client is never sent 127.0.0.1; they
never carry credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bridge.cameras.base import CameraDriver, DeviceInfo
from bridge.media.motion import CameraEvents
from bridge.media.source import CameraMedia, Profile
from bridge.onvif.soap import Handler, OnvifRequest, Service
from bridge.ptz import PtzHead

# Tokens shared by the services (a VMS passes them from one service to another). The media
# profiles and video encoder configurations take the RTSP profile names: main, sub, jpeg.
VIDEO_SOURCE = "video_source"
VIDEO_SOURCE_CONFIG = "video_source_config"
AUDIO_SOURCE = "audio_source"
AUDIO_SOURCE_CONFIG = "audio_source_config"
AUDIO_ENCODER_CONFIG = "audio_encoder_config"
AUDIO_OUTPUT = "audio_output"
AUDIO_OUTPUT_CONFIG = "audio_output_config"
AUDIO_DECODER_CONFIG = "audio_decoder_config"
PTZ_NODE = "ptz_node"
PTZ_CONFIG = "ptz_config"

_ENDPOINT_NAMESPACE = uuid.UUID("6f1f5c36-9b0e-4c57-8a43-6a7d3f4e2b10")


def endpoint_reference(info: DeviceInfo, camera: str) -> str:
    """A stable ``urn:uuid`` per camera: the same unit keeps its identity across restarts."""
    identity = info.mac or info.serial or camera
    return f"urn:uuid:{uuid.uuid5(_ENDPOINT_NAMESPACE, identity)}"


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    rtsp: int
    web: int
    onvif: int  # this device's own port


@dataclass
class DeviceContext:
    camera: str  # the camera's name in the config, used in URLs
    driver: CameraDriver
    info: DeviceInfo
    media: CameraMedia
    ports: GatewayPorts
    advertise_host: str  # "auto": the host the client used
    users: MutableMapping[str, str]  # the gateway's users (live: RTSP and web share it)
    events: CameraEvents  # what its Events service reports: the camera's, or its pictures' motion
    endpoint: str = ""
    serial: str = ""  # the device's serial number, if the gateway keeps one for it
    scopes: list[str] = field(default_factory=list)  # configurable scopes, beyond the fixed ones
    discoverable: bool = True
    announced: bool = False  # whether WS-Discovery announces it (the gateway's announce: on)
    address: str | None = None  # the device's own address (it listens only there)
    location: str = ""  # its onvif://www.onvif.org/location/ scope, if any
    # Told when the scopes or the discovery mode changed (to save them and announce it).
    on_discovery_change: Callable[[], Awaitable[None]] | None = None
    # Told when what the gateway keeps for a VMS changed (media profiles, encoders, presets),
    # to save it; the request is answered once it is saved.
    on_settings_change: Callable[[], Awaitable[None]] | None = None
    # What the gateway keeps for the camera's PTZ head (the camera's, not this device's).
    ptz: PtzHead | None = None
    # Whether the gateway can make the camera play a back channel's audio (its talk format is
    # one the gateway encodes): then the device has an audio output.
    talk: bool = False
    # Background work of the services (event subscriptions ...), stopped with the device.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.endpoint:
            self.endpoint = endpoint_reference(self.info, self.camera)

    def host(self, request: OnvifRequest) -> str:
        """The host part of addresses handed to this client (IPv6 bracketed)."""
        if self.address is not None:
            host = self.address
        elif self.advertise_host != "auto":
            host = self.advertise_host
        else:
            host = urlsplit(f"//{request.host}").hostname or ""
        return f"[{host}]" if ":" in host else host

    def xaddr(self, request: OnvifRequest, service: Service) -> str:
        return f"http://{self.host(request)}:{self.ports.onvif}{service.path}"

    def stream_uri(
        self, request: OnvifRequest, profile: Profile, *, tunnelled: bool = False
    ) -> str:
        """The profile's RTSP URI; ``tunnelled``: the http:// URI of the RTSP-over-HTTP tunnel.

        The tunnel listens on the RTSP port, not on the device's web service port as Media and
        Media2 ask: the devices' aiohttp servers do not serve it. A client that tunnels takes
        host, port and path from the URI; ffmpeg plays them as ``rtsp://`` with
        ``-rtsp_transport http``, GStreamer as ``rtsph://``.
        """
        scheme = "http" if tunnelled else "rtsp"
        return f"{scheme}://{self.host(request)}:{self.ports.rtsp}/{self.camera}/{profile}"

    def snapshot_uri(self, request: OnvifRequest) -> str:
        return f"http://{self.host(request)}:{self.ports.web}/snapshot/{self.camera}.jpg"

    async def discovery_changed(self) -> None:
        if self.on_discovery_change is not None:
            await self.on_discovery_change()

    async def settings_changed(self) -> None:
        if self.on_settings_change is not None:
            await self.on_settings_change()

    async def close(self) -> None:
        for close in self.closers:
            await close()


def kept_after(device: DeviceContext, handler: Handler) -> Handler:
    """``handler``, followed when it succeeds by saving what the device keeps: what ONVIF
    says "shall be persistent" is on disk before the client hears it is done."""

    async def run(request: OnvifRequest) -> Mapping[str, Any] | None:
        answer = await handler(request)
        await device.settings_changed()
        return answer

    return run
