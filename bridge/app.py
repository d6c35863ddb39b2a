"""The Gateway: builds everything from the Config, starts and stops it in order.

It connects every configured camera (identifying its dialect when ``dialect: auto``); a camera
that cannot be reached is retried in the background and never stops the others. Each connected
camera gets its media (:class:`~bridge.media.source.CameraMedia`), served by one RTSP server as
``rtsp://HOST:rtsp_port/<camera>/<main|sub|jpeg>`` and by the web app as snapshots. The layers
do not know each other: here each profile's stream as media hands it out becomes the one RTSP
source every viewer of that profile shares.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from ipaddress import IPv4Network
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from prometheus_client import Counter as MetricCounter

from bridge import heap
from bridge.cameras.base import CameraDriver, CameraState, DeviceInfo, Dialect, JpegFrame
from bridge.cameras.http import CameraHttp, Credentials
from bridge.cameras.identify import driver_for, identify
from bridge.config import CameraConfig, Config, GatewayConfig, load_state_file, load_users_file
from bridge.discovery import lan
from bridge.discovery.announce import DESCRIPTION_PATH, AnnouncedDevice, Announcer
from bridge.discovery.udp import listens_on
from bridge.errors import (
    AuthenticationFailed,
    BridgeError,
    CameraError,
    CameraUnreachable,
    ConfigError,
)
from bridge.fanout import Fanout
from bridge.httpauth import Authenticator
from bridge.identity import DeviceIdentities, DeviceIdentity
from bridge.logs import register_secret
from bridge.media.motion import MotionSettings, camera_events
from bridge.media.source import CameraMedia, Profile
from bridge.media.talk import CameraTalk, can_talk
from bridge.onvif.access import ACTUATE, POLICY
from bridge.onvif.context import DeviceContext, GatewayPorts, endpoint_reference
from bridge.onvif.device import all_scopes, serial_number
from bridge.onvif.profiles import kept_encoders, profile_store, restore_encoders
from bridge.onvif.security import UsernameTokenVerifier
from bridge.onvif.server import RequestCounts, device_app
from bridge.onvif.services import device_operations
from bridge.onvif.soap import Service, catalog
from bridge.onvif.users import Account, UserAccounts, UserLevel
from bridge.ptz import PtzHead
from bridge.reachability import ReachabilityProbe
from bridge.reload import camera_changes, gateway_changes
from bridge.rtsp.server import RtspServer
from bridge.rtsp.session import TRANSPORTS, Delivered
from bridge.rtsp.stream import FanoutSource, StreamSource
from bridge.talk import TalkLine
from bridge.web.app import web_app
from bridge.web.metrics import CameraCounts, ProfileCounts, Snapshot, metrics_registry
from bridge.web.status import (
    DISABLED,
    CameraStatus,
    FoundCamera,
    ProfileStatus,
    PtzControls,
    Status,
    Viewer,
)

log = logging.getLogger(__name__)

PROFILE_NAMES = frozenset(profile.value for profile in Profile)
RETRY_INITIAL = 1.0
SWITCH_INTERVAL = 0.001
RETRY_MAX = 60.0
DISCOVERY_INTERVAL = 300.0


@dataclass(frozen=True, slots=True)
class DisabledCamera:
    """A camera the config keeps but turns off (``enabled: false``): listed, not served."""

    config: CameraConfig
    since: float  # Unix time it was turned off (or the gateway started with it off)


def enabled_cameras(cameras: Sequence[CameraConfig]) -> list[CameraConfig]:
    return [camera for camera in cameras if camera.enabled]


def disabled_cameras(
    cameras: Sequence[CameraConfig], before: Mapping[str, DisabledCamera]
) -> dict[str, DisabledCamera]:
    """The cameras the config turns off, each since it was first off (``before``: the
    running config's)."""
    now = time.time()
    return {
        camera.name: DisabledCamera(
            camera, before[camera.name].since if camera.name in before else now
        )
        for camera in cameras
        if not camera.enabled
    }


async def restore_settings(device: DeviceContext, identity: DeviceIdentity) -> list[str]:
    """Set what a VMS set on the camera's device in an earlier run (media profiles, encoders,
    gateway-kept presets); returns what of it no longer fits the camera, each left out."""
    store = profile_store(device)
    dropped = store.restore(identity.profiles)
    dropped += await restore_encoders(device, store, identity.encoders)
    if store.deferred_encoders:
        log.warning(
            "camera %s: encoder settings from the state file wait: its picture size is not "
            "known yet (they stay in the file until a client sets them)",
            device.camera,
        )
    if device.ptz is not None:
        dropped += await device.ptz.restore(identity.presets)
    elif identity.presets:
        dropped.append("presets: the camera does not move")
    return dropped


async def keep_settings(
    device: DeviceContext, identity: DeviceIdentity, save: Callable[[], Awaitable[None]]
) -> None:
    """A VMS changed what the camera's device keeps for it: into its identity, and saved."""
    store = profile_store(device)
    kept = (
        store.kept(),
        kept_encoders(device, store),
        [] if device.ptz is None else device.ptz.kept(),
    )
    if kept == (identity.profiles, identity.encoders, identity.presets):
        return  # a VMS setting again what it set before: the file already says so
    identity.profiles, identity.encoders, identity.presets = kept
    await save()


@dataclass
class Camera:
    """One configured camera and, once connected, its driver.

    Its :class:`CameraState` changes when connecting fails or succeeds and when its stream
    fails or comes back (only a watched camera is pulled, so an unwatched one stays as it was
    last seen); each change is one log line, and ``since`` says when (Unix time).
    """

    config: CameraConfig
    http: CameraHttp
    idle_grace: float
    driver: CameraDriver | None = None
    info: DeviceInfo | None = None
    media: CameraMedia | None = None
    ptz: PtzHead | None = None  # what the gateway keeps for its head, whoever drives it
    talk: CameraTalk | None = None  # its speaker, where it has one the gateway can feed
    # Each profile's RTSP source, built at its first DESCRIBE or SETUP and then shared by all
    # its sessions (each source runs its own encoder); they live as long as ``media``.
    sources: dict[Profile, FanoutSource] = field(default_factory=dict)
    onvif: DeviceContext | None = None
    last_error: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    state: CameraState = CameraState.CONNECTING
    since: float = field(default_factory=time.time)
    auth_failures: int = 0  # connection attempts the camera refused for the credentials
    _onvif_runner: web.AppRunner | None = None
    _probe: ReachabilityProbe = field(init=False)

    def __post_init__(self) -> None:
        self._probe = ReachabilityProbe(self.config.url, self._probed)

    async def connect(self) -> None:
        if self.config.dialect == "auto":
            dialect = (await identify(self.http)).dialect
        else:
            dialect = Dialect(self.config.dialect)
        driver = driver_for(dialect, self.http)
        self.info = await driver.connect()
        self.driver = driver
        audio = None if self.config.audio == "off" else self.config.audio
        self.media = CameraMedia(self.config.name, driver, audio=audio, idle_grace=self.idle_grace)
        self.media.frames.on_failing = self._stream_failing
        self.ptz = PtzHead(driver) if driver.capabilities.ptz.any else None
        speaker = driver.capabilities.audio_out
        self.talk = None
        if speaker is not None and can_talk(speaker):
            self.talk = CameraTalk(self.config.name, driver.send_audio, speaker)
        self.sources = {}
        self.last_error = ""

    def source(self, profile: Profile) -> FanoutSource:
        """The profile's RTSP source, once connected; encoding only while someone watches."""
        assert self.media is not None
        source = self.sources.get(profile)
        if source is None:
            source = self.sources[profile] = FanoutSource(self.media.stream(profile))
        return source

    async def serve_onvif(
        self,
        identity: DeviceIdentity,
        ports: GatewayPorts,
        gateway: GatewayConfig,
        users: UserAccounts,
        routes: Sequence[web.RouteDef] = (),
        *,
        tokens: UsernameTokenVerifier,
        requests: RequestCounts,
        save: Callable[[], Awaitable[None]],
    ) -> None:
        """Start this camera's virtual ONVIF device (once connected): on its own address if
        it has one, else on the gateway's, on the port its identity holds (``routes``: more
        that its HTTP server answers; ``tokens``: the gateway's WS-Security verifier, shared
        by every device; ``requests``: the gateway's count of ONVIF requests answered). What
        its identity keeps for VMS is set before it answers, and ``save`` writes the
        identity when a VMS changes that."""
        assert self.driver is not None
        assert self.info is not None
        assert self.media is not None
        config = self.config
        motion = config.motion
        camera_motion, pixel_motion = motion.sources(self.driver.capabilities.motion_events)
        events = camera_events(
            self.driver,
            self.media.frames,
            camera_motion=camera_motion,
            pixels=MotionSettings(motion.sensitivity, motion.min_area) if pixel_motion else None,
            name=config.name,
        )
        context = DeviceContext(
            config.name,
            self.driver,
            self.info,
            self.media,
            ports,
            gateway.advertise_host,
            users,
            events,
            endpoint=identity.endpoint,
            serial=identity.serial,
            scopes=list(identity.scopes),
            discoverable=identity.discoverable,
            address=config.address,
            location=config.location,
            ptz=self.ptz,
            talk=self.talk is not None,
        )
        dropped = await restore_settings(context, identity)
        for part in dropped:
            log.warning("camera %s: state file: dropped %s", config.name, part)
        context.on_settings_change = partial(keep_settings, context, identity, save)
        if dropped:
            await context.settings_changed()
        app = device_app(
            device_operations(context),
            users,
            tokens=tokens,
            validate_responses=gateway.onvif_validate_responses,
            requests=requests,
        )
        app.add_routes(routes)
        host = config.address or gateway.listen_host
        port = ports.onvif
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        context.ports = replace(ports, onvif=runner.addresses[0][1])
        self.onvif, self._onvif_runner = context, runner
        log.info("camera %s: ONVIF device on port %d", self.config.name, context.ports.onvif)

    def _stream_failing(self, failing: bool) -> None:
        assert self.media is not None
        frames = self.media.frames
        if not failing:
            self._set_state(CameraState.ONLINE)
        elif frames.failure is not None and issubclass(frames.failure, AuthenticationFailed):
            self._refused(frames.last_error)
        else:
            self._set_state(CameraState.OFFLINE, frames.last_error)

    def _refused(self, error: str) -> None:
        self.auth_failures += 1
        self._set_state(CameraState.AUTH_FAILED, error)

    def _set_state(self, state: CameraState, error: str = "") -> None:
        """One log line per change: a camera that stays away is not news every retry."""
        self.last_error = error
        if state is self.state:
            log.debug("camera %s: still %s: %s", self.config.name, state, error)
            return
        self.state, self.since = state, time.time()
        if state is CameraState.ONLINE:
            log.info("camera %s: online", self.config.name)
        else:
            log.warning("camera %s: %s: %s", self.config.name, state, error)

    def probe_if_unwatched(self) -> None:
        """Someone looks at the status page: a connected camera whose stream does not run
        (so nothing would notice it go) gets a reachability probe."""
        if self.media is not None and self.ready.is_set() and not self.media.frames.running:
            self._probe.request()

    def _probed(self, error: str) -> None:
        if self.media is None or self.media.frames.running:
            return  # its stream runs now, and speaks for it
        if error:
            self._set_state(CameraState.OFFLINE, f"unreachable: {error}")
        elif self.state is CameraState.OFFLINE:
            self._set_state(CameraState.ONLINE)

    @property
    def reconnects(self) -> int:
        """Times its stream was reopened after failing (not after an idle release)."""
        return self.media.frames.reconnects if self.media is not None else 0

    async def close(self) -> None:
        await self._probe.close()
        if self.onvif is not None:
            await self.onvif.close()  # first, so waiting event pulls answer before the runner stops
        if self._onvif_runner is not None:
            await self._onvif_runner.cleanup()
        if self.ptz is not None:
            await self.ptz.close()  # a move still going would otherwise run to its end stop
        if self.talk is not None:
            await self.talk.close()
        for source in self.sources.values():
            await source.close()
        if self.media is not None:
            await self.media.close()
        if self.driver is not None:
            await self.driver.close()
        await self.http.close()

    async def connect_until_ready(self, then: Callable[[], Awaitable[None]]) -> None:
        """Connect, retrying with jittered exponential backoff, then run ``then``; a wrong
        password still retries (slowly), because an operator may fix it on the camera side."""
        delay = RETRY_INITIAL
        while True:
            try:
                await self.connect()
                await then()
            except CameraError as exc:
                if isinstance(exc, AuthenticationFailed):
                    self._refused(str(exc))
                    delay = RETRY_MAX
                else:
                    self._set_state(CameraState.OFFLINE, str(exc))
            else:
                assert self.info is not None
                log.info(
                    "camera %s: %s %s %s (%s)",
                    self.config.name,
                    self.info.manufacturer,
                    self.info.model,
                    self.info.firmware,
                    self.driver.dialect if self.driver else "?",
                )
                self._set_state(CameraState.ONLINE)
                self.ready.set()
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(RETRY_MAX, delay * 2)


def arp_answers_per_interface() -> bool:
    """Whether Linux answers ARP for an address only on the interface holding it (so each
    macvlan shows its own MAC); True where that cannot be read (not Linux)."""
    settings = Path("/proc/sys/net/ipv4/conf/all")
    try:
        ignore = int((settings / "arp_ignore").read_text())
        announce = int((settings / "arp_announce").read_text())
    except (OSError, ValueError):
        return True
    return ignore >= 1 and announce >= 2


class Gateway:
    """``users_file`` keeps the users created over ONVIF, ``state_file`` what every camera
    device is known by (both next to the config file); without them both last until the
    gateway stops."""

    def __init__(
        self, config: Config, users_file: Path | None = None, state_file: Path | None = None
    ) -> None:
        # What runs: the cameras the config enables (those that stop, or fail to start, on a
        # reload leave it). Every configured camera's name in the config's order, served or
        # not: the status page's order, and each camera's index for its default ONVIF port.
        self.config = config.model_copy(update={"cameras": enabled_cameras(config.cameras)})
        self._order = [camera.name for camera in config.cameras]
        self.disabled = disabled_cameras(config.cameras, {})
        gateway = config.gateway
        password = gateway.password.get_secret_value()
        register_secret(password)
        self.users = UserAccounts({gateway.username: password}, path=users_file)
        if users_file is not None:
            self.users.restore(
                Account(user.username, UserLevel(user.level), user.password.get_secret_value())
                for user in load_users_file(users_file)
            )
        # One WS-Security replay cache for every camera device: a token one accepted is
        # refused by all the others.
        self.onvif_tokens = UsernameTokenVerifier()
        fixed_ports = {c.device_port for c in config.cameras if c.device_port}
        self.identities = DeviceIdentities(
            load_state_file(state_file) if state_file is not None else (),
            path=state_file,
            base_port=gateway.onvif_base_port,
            reserved={gateway.rtsp_port, gateway.web_port, *fixed_ports},
        )
        self.cameras = {cam.name: self._camera(cam) for cam in self.config.cameras}
        self.rtsp = RtspServer(
            self._stream,
            host=gateway.listen_host,
            port=gateway.rtsp_port,
            users=self.users,
            talk=self._talk,
            may_talk=self._may_talk,
        )
        self.onvif_requests: RequestCounts = Counter()
        metrics = metrics_registry(self._metrics)
        self.reloads = MetricCounter(
            "bridge_config_reloads",
            "Config reloads, by result (applied, or refused for a bad file)",
            ["result"],
            registry=metrics,
        )
        self._web = web.AppRunner(
            web_app(
                self._snapshot,
                Authenticator(self.users, "bridge"),
                self._status,
                metrics=metrics,
                readiness=self._not_ready,
                live=self._frames,
                ptz=self._ptz,
            ),
            access_log=None,
            shutdown_timeout=2.0,
        )
        self.web_port = 0
        self.announcer: Announcer | None = None
        self.discovered: list[lan.Found] = []  # cameras on the LAN that are not configured
        self._connecting: dict[str, asyncio.Task[None]] = {}  # each camera's, until served
        self._announced: dict[str, AnnouncedDevice] = {}
        self._discovery: asyncio.Task[None] | None = None
        self._heap: asyncio.Task[None] | None = None
        # Camera addresses the RTSP and web servers took, with the web server's site there.
        self._listening_on: dict[str, web.TCPSite] = {}

    def _camera(self, config: CameraConfig) -> Camera:
        password = config.password.get_secret_value()
        register_secret(password)
        creds = Credentials(config.username, password) if config.username else None
        http = CameraHttp(config.url, creds, name=config.name)
        return Camera(config, http, self.config.gateway.stream_idle_seconds)

    def _media(self, name: str) -> CameraMedia | None:
        camera = self.cameras.get(name)
        return camera.media if camera is not None else None

    def _stream(self, path: str) -> StreamSource | None:
        """``<camera>/<profile>`` to its stream, for the RTSP server."""
        name, _, profile_name = path.partition("/")
        camera = self.cameras.get(name)
        if camera is None or profile_name not in PROFILE_NAMES:
            return None
        if camera.media is None:
            raise CameraUnreachable(
                f"not connected yet: {camera.last_error or 'connecting'}", camera=name
            )
        return camera.source(Profile(profile_name))

    def _talk(self, path: str) -> TalkLine | None:
        """``<camera>/<profile>`` to the camera's speaker, for the RTSP back channel."""
        name, _, profile_name = path.partition("/")
        camera = self.cameras.get(name)
        if camera is None or profile_name not in PROFILE_NAMES:
            return None
        return camera.talk

    def _may_talk(self, user: str | None) -> bool:
        """Talking through a camera acts on the world: ONVIF's ACTUATE class, which the default
        access policy gives Operators and Administrators (config users are Administrators)."""
        return ACTUATE in POLICY[self.users.level(user)]

    def _snapshot(self, name: str) -> Callable[[], Awaitable[bytes]] | None:
        media = self._media(name)
        return media.snapshot if media is not None else None

    def _status(self, host: str) -> Status:
        """What the status page shows a client that reached the gateway at ``host``. The page
        asks every second while open, so unwatched cameras get a reachability probe."""
        advertised = self.config.gateway.advertise_host
        viewers: dict[str, list[Viewer]] = {}
        for session in self.rtsp.sessions.values():
            if session.watching:
                viewers.setdefault(session.path, []).append(Viewer(session.host, session.transport))
        shown: dict[str, CameraStatus] = {
            name: CameraStatus(
                name, DISABLED, off.since, "", off.config.dialect, camera_url=off.config.url
            )
            for name, off in self.disabled.items()
        }
        for name, camera in self.cameras.items():
            camera.probe_if_unwatched()
            there = camera.config.address or (host if advertised == "auto" else advertised)
            there = f"[{there}]" if ":" in there else there
            profiles = []
            for profile in Profile:
                path = f"{name}/{profile}"
                delivered = self.rtsp.delivered.get(path) or Delivered()
                profiles.append(
                    ProfileStatus(
                        str(profile),
                        f"rtsp://{there}:{self.rtsp.port}/{path}",
                        delivered.frames,
                        delivered.bytes,
                        delivered.dropped,
                        tuple(viewers.get(path, ())),
                    )
                )
            info, media, onvif = camera.info, camera.media, camera.onvif
            latest = media.frames.latest if media is not None and media.frames.running else None
            ptz = camera.ptz.offer if camera.ptz is not None else None
            shown[name] = CameraStatus(
                name,
                str(camera.state),
                camera.since,
                camera.last_error,
                str(camera.driver.dialect) if camera.driver else camera.config.dialect,
                manufacturer=info.manufacturer if info else "",
                model=info.model if info else "",
                firmware=info.firmware if info else "",
                camera_url=camera.config.url,
                input_fps=media.fps if latest is not None and media is not None else None,
                jpeg_bytes=len(latest.data) if latest is not None else None,
                size=media.camera_size() if media is not None else None,
                reconnects=camera.reconnects,
                onvif_url=(
                    f"http://{there}:{onvif.ports.onvif}{Service.DEVICE.path}" if onvif else ""
                ),
                onvif_address=f"{there}:{onvif.ports.onvif}" if onvif else "",
                snapshot_url=f"http://{there}:{self.web_port}/snapshot/{name}.jpg",
                live_url=f"live/{quote(name, safe='')}.mjpg",
                profiles=tuple(profiles),
                ptz=(
                    PtzControls(ptz.continuous or ptz.relative, ptz.zoom, ptz.presets > 0)
                    if ptz is not None
                    else None
                ),
            )
        cameras = [shown[name] for name in self._order if name in shown]
        username = self.config.gateway.username
        found = [
            FoundCamera(
                f.url,
                f.dialect,
                f.model,
                lan.cameras_block(lan.DiscoveryReport([f], 1, (), 0.0), username),
            )
            for f in self.discovered
        ]
        return Status(cameras, found)

    def _frames(self, name: str) -> Fanout[JpegFrame] | None:
        """The camera's pictures as it sends them, for the live view."""
        media = self._media(name)
        return media.frames if media is not None else None

    def _ptz(self, name: str) -> PtzHead | None:
        camera = self.cameras.get(name)
        return camera.ptz if camera is not None else None

    def _not_ready(self) -> list[str]:
        """For ``/readyz``: every camera that is not online, with its state (not its error,
        which may name addresses: /readyz needs no login)."""
        return [
            f"{name}: {camera.state}"
            for name, camera in self.cameras.items()
            if camera.state is not CameraState.ONLINE
        ]

    def _metrics(self) -> Snapshot:
        """What ``/metrics`` shows, read from the counters each layer keeps."""
        sessions = self.rtsp.sessions.values()
        watching = Counter(s.path for s in sessions if s.watching)
        cameras = []
        for name, camera in self.cameras.items():
            profiles = []
            media = camera.media
            for profile in Profile:
                path = f"{name}/{profile}"
                delivered = self.rtsp.delivered.get(path)
                spent = media.encoding.get(profile) if media is not None else None
                profiles.append(
                    ProfileCounts(
                        str(profile),
                        frames_out=delivered.frames if delivered else 0,
                        frames_dropped=delivered.dropped if delivered else 0,
                        bytes_out=delivered.bytes if delivered else 0,
                        viewers=watching[path],
                        encoded_frames=spent.frames if spent else 0,
                        encode_seconds=spent.seconds if spent else 0.0,
                    )
                )
            cameras.append(
                CameraCounts(
                    name,
                    camera.state,
                    camera.since,
                    frames_in=media.frames.items if media is not None else 0,
                    reconnects=camera.reconnects,
                    auth_failures=camera.auth_failures,
                    profiles=profiles,
                )
            )
        transports = Counter(dict.fromkeys(TRANSPORTS, 0))
        transports.update(s.transport for s in sessions)
        return Snapshot(cameras, dict(self.onvif_requests), transports)

    async def start(self) -> None:
        gateway = self.config.gateway
        # Codec threads hold the GIL between codec calls for up to the switch interval, and
        # the event loop that sends every viewer's packets waits that long: at 20 cameras the
        # default 5 ms showed as 50 ms p99 added latency in the benchmark, 1 ms as 8-14.
        sys.setswitchinterval(SWITCH_INTERVAL)
        # The ONVIF schemas take about half a second of CPU to load: off the event loop, once.
        await asyncio.to_thread(catalog)
        await self.rtsp.start()
        try:
            await self._web.setup()
            site = web.TCPSite(self._web, gateway.listen_host, gateway.web_port)
            await site.start()
            self.web_port = self._web.addresses[0][1]
            await self._listen_on_camera_addresses()
        except BaseException:
            await self.rtsp.stop()
            await self._web.cleanup()
            raise
        if gateway.announce:
            await self._start_announcing()
        for name, camera in self.cameras.items():
            self._connect(camera, self._order.index(name))
        self._discover(gateway.discovery)
        self._heap = asyncio.create_task(heap.give_back_periodically(), name="heap")
        log.info(
            "gateway started with %d camera(s): RTSP on port %d, web on port %d",
            len(self.cameras),
            self.rtsp.port,
            self.web_port,
        )

    def _connect(self, camera: Camera, index: int) -> None:
        """Connect (retrying in the background), then serve its ONVIF device."""
        self._connecting[camera.config.name] = asyncio.create_task(
            camera.connect_until_ready(partial(self._serve, camera, index)),
            name=f"camera {camera.config.name}",
        )

    def _discover(self, on: bool) -> None:
        """Start or stop the LAN sweep (a reload may switch it)."""
        if on and self._discovery is None:
            self._discovery = asyncio.create_task(self._discover_cameras(), name="discovery")
        elif not on and self._discovery is not None:
            self._discovery.cancel()
            self._discovery = None
            self.discovered = []

    async def _listen_on_camera_addresses(self) -> None:
        addresses = [c.address for c in self.config.cameras if c.address is not None]
        for address in addresses:
            await self._listen_on(address)
        if addresses and not arp_answers_per_interface():
            log.warning(
                "cameras have addresses of their own, but this host answers ARP for every "
                "address on every interface: VMS will see one MAC for all of them. Set "
                "net.ipv4.conf.all.arp_ignore=1 and net.ipv4.conf.all.arp_announce=2 (README)"
            )

    async def _listen_on(self, address: str) -> None:
        """A camera device on its own address hands out stream and snapshot URLs with that
        address: the RTSP and web servers answer there too (a wildcard listener already
        does). OSError when this host cannot listen there."""
        if address in self._listening_on or listens_on(self.config.gateway.listen_host, address):
            return
        await self.rtsp.listen_also(address)
        site = web.TCPSite(self._web, address, self.web_port)
        try:
            await site.start()
        except OSError:
            self.rtsp.listen_no_more(address)
            raise
        self._listening_on[address] = site

    async def _let_go_of_unused_addresses(self) -> None:
        """Stop serving on camera addresses no running camera has any more (a reload removed
        or moved their cameras): nothing of the gateway answers there from then on."""
        kept = {camera.address for camera in self.config.cameras if camera.address}
        for address in [a for a in self._listening_on if a not in kept]:
            self.rtsp.listen_no_more(address)
            await self._listening_on.pop(address).stop()

    async def _start_announcing(self) -> None:
        gateway = self.config.gateway
        announcer = Announcer(
            listen_host=gateway.listen_host,
            advertise_host=gateway.advertise_host,
            web_port=self.web_port,
            device_addresses=[c.address for c in self.config.cameras if c.address],
        )
        try:
            await announcer.start()
        except OSError as exc:
            # Streams and ONVIF still work; VMS just have to be told the addresses.
            log.error("cannot announce the cameras (WS-Discovery, SSDP, zeroconf): %s", exc)
        else:
            self.announcer = announcer

    async def _serve(self, camera: Camera, index: int) -> None:
        """Once a camera is connected: its ONVIF device, then its announcements."""
        gateway = self.config.gateway
        config = camera.config
        assert camera.info is not None
        identity = await self.identities.identify(
            config.name,
            camera.info.mac,
            endpoint=endpoint_reference(camera.info, config.name),
            serial=camera.info.serial,
            index=index,
            fixed_port=config.device_port,
        )
        ports = GatewayPorts(rtsp=self.rtsp.port, web=self.web_port, onvif=identity.onvif_port or 0)
        announcer = self.announcer
        routes = [web.get(DESCRIPTION_PATH, announcer.describe(config.name))] if announcer else []
        try:
            await camera.serve_onvif(
                identity,
                ports,
                gateway,
                self.users,
                routes,
                tokens=self.onvif_tokens,
                requests=self.onvif_requests,
                save=self.identities.save,
            )
        except OSError as exc:
            # The camera still streams over RTSP; only its ONVIF device is missing.
            log.error(
                "camera %s: cannot serve ONVIF on %s:%d: %s",
                config.name,
                config.address or gateway.listen_host,
                ports.onvif,
                exc,
            )
            return
        context = camera.onvif
        assert context is not None
        if announcer is None:
            context.on_discovery_change = partial(self._discovery_changed, context, identity, None)
            return
        announced = AnnouncedDevice(
            name=config.name,
            endpoint=context.endpoint,
            address=config.address,
            port=context.ports.onvif,
            device_path=Service.DEVICE.path,
            rtsp_port=self.rtsp.port,
            rtsp_path=f"/{config.name}/{Profile.MAIN}",
            manufacturer=camera.info.manufacturer,
            model=camera.info.model,
            serial=serial_number(context),
            scopes=partial(all_scopes, context),
            discoverable=lambda: context.discoverable,
        )
        context.on_discovery_change = partial(self._discovery_changed, context, identity, announced)
        self._announced[config.name] = announced
        await announcer.add(announced)

    async def _discover_cameras(self) -> None:
        """Sweep the LAN every DISCOVERY_INTERVAL and say which cameras on it are not in the
        config (each once, until it goes away); nothing is ever added by itself. No
        credentials are sent: a camera's password is not for unknown devices."""
        while True:
            # Read each sweep: a reload may have changed both.
            networks = self.config.gateway.discovery_networks
            targets = [IPv4Network(n, strict=False) for n in networks] or None
            configured = [
                camera.url
                for camera in [*self.config.cameras, *(d.config for d in self.disabled.values())]
            ]
            try:
                report = await lan.discover(targets)
            except (BridgeError, OSError) as exc:
                log.warning("LAN discovery failed: %s", exc)
            else:
                found = lan.unconfigured(report.found, configured)
                known = {f.url for f in self.discovered}
                for camera in found:
                    if camera.url not in known:
                        what = ", ".join(
                            part
                            for part in (camera.dialect, camera.manufacturer, camera.model)
                            if part
                        )
                        log.info(
                            "found a camera that is not in the config: %s, %s", camera.url, what
                        )
                self.discovered = found
            await asyncio.sleep(DISCOVERY_INTERVAL)

    async def _discovery_changed(
        self, context: DeviceContext, identity: DeviceIdentity, announced: AnnouncedDevice | None
    ) -> None:
        """ONVIF changed a device's scopes or discovery mode: kept, and announced."""
        identity.scopes = list(context.scopes)
        identity.discoverable = context.discoverable
        await self.identities.save()
        if announced is not None and self.announcer is not None:
            await self.announcer.changed(announced)

    async def stop(self) -> None:
        """Bye to the network first, then sessions end (their viewers get a clean close),
        then the cameras."""
        if self.announcer is not None:
            await self.announcer.stop()
            self.announcer = None
        await self.rtsp.stop()
        await self._web.cleanup()
        tasks = [*self._connecting.values(), *(t for t in (self._discovery, self._heap) if t)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for camera in self.cameras.values():
            await camera.close()
        log.info("gateway stopped")

    async def reload(self, config: Config) -> None:
        """Apply a new config while serving: removed cameras stop (their viewers get the
        end of their stream), added ones start, changed ones restart with their new entry,
        and the others are not touched. Gateway settings that cannot change while serving
        keep their running value, one log line each. A camera that cannot start (its
        address is not this host's, say) is named in the log and left as it was: out if it
        was added, on its old entry if it changed; the next reload tries it again."""
        old = self.config
        wanted = enabled_cameras(config.cameras)
        changes = camera_changes(old.cameras, wanted)
        live, later = gateway_changes(old.gateway, config.gateway)
        for name in later:
            log.warning(
                "config: gateway.%s changed; it applies after a restart, the gateway runs on "
                "with the old value",
                name,
            )
        gateway = old.gateway.model_copy(update={n: getattr(config.gateway, n) for n in live})
        if "username" in live or "password" in live:
            self.users.replace_fixed(gateway.username, gateway.password.get_secret_value())
        entries = {camera.name: camera for camera in wanted}
        self.disabled = disabled_cameras(config.cameras, self.disabled)
        self._order = [camera.name for camera in config.cameras]
        failed: dict[str, str] = {}
        for name in [*changes.changed, *changes.added]:
            address = entries[name].address
            try:
                if address is not None:
                    await self._listen_on(address)
            except OSError as exc:
                failed[name] = f"{name} (cannot listen on {address}: {exc.strerror})"
        for name in changes.removed:
            reason = "camera disabled" if name in self.disabled else "camera removed"
            await self._remove_camera(name, reason)
        for name in [*changes.changed, *changes.added]:
            if name in failed:
                continue
            if name in self.cameras:
                await self._remove_camera(name, "camera restarting")
            camera = self.cameras[name] = self._camera(entries[name])
            self._connect(camera, self._order.index(name))
        running = [self.cameras[name].config for name in self._order if name in self.cameras]
        self.cameras = {c.name: self.cameras[c.name] for c in running}  # in the config's order
        self.config = Config.model_construct(gateway=gateway, cameras=running)
        await self._let_go_of_unused_addresses()
        self._discover(gateway.discovery)
        self.reloads.labels("applied").inc()
        settings = f"; gateway.{', gateway.'.join(live)} applied" if live else ""
        log.info("config reloaded: %s%s", changes.summary(), settings)
        if failed:
            log.error("config reload: could not start %s", "; ".join(failed.values()))

    def refused(self, error: ConfigError) -> None:
        """A reload found a bad file (logged by the reloader): counted."""
        self.reloads.labels("refused").inc()

    async def _remove_camera(self, name: str, reason: str) -> None:
        """Stop one camera and forget it everywhere: off the resolver first (its paths answer
        404 from now on), Bye and byebye to the network, its viewers' sessions ended, then
        its device and upstream closed."""
        camera = self.cameras.pop(name)
        task = self._connecting.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        announced = self._announced.pop(name, None)
        if announced is not None and self.announcer is not None:
            await self.announcer.remove(announced)
        await self.rtsp.end_streams(f"{name}/", reason)
        await camera.close()
        self.identities.release(name)
