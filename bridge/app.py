"""The Gateway: builds everything from the Config, starts and stops it in order.

It connects every configured camera (identifying its dialect when ``dialect: auto``); a camera
that cannot be reached is retried in the background and never stops the others. Each connected
camera gets its media (:class:`~bridge.media.source.CameraMedia`), served by one RTSP server as
``rtsp://HOST:rtsp_port/<camera>/<main|sub|jpeg>`` and by the web app as snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from aiohttp import web

from bridge.cameras.base import CameraDriver, DeviceInfo, Dialect
from bridge.cameras.http import CameraHttp, Credentials
from bridge.cameras.identify import driver_for, identify
from bridge.config import CameraConfig, Config, GatewayConfig, load_users_file
from bridge.errors import AuthenticationFailed, CameraError, CameraUnreachable
from bridge.httpauth import Authenticator
from bridge.logs import register_secret
from bridge.media.source import CameraMedia, Profile
from bridge.onvif.context import DeviceContext, GatewayPorts
from bridge.onvif.server import device_app
from bridge.onvif.services import device_operations
from bridge.onvif.soap import catalog
from bridge.onvif.users import Account, UserAccounts, UserLevel
from bridge.rtsp.server import RtspServer
from bridge.rtsp.stream import StreamSource
from bridge.web.app import web_app

log = logging.getLogger(__name__)

PROFILE_NAMES = frozenset(profile.value for profile in Profile)
RETRY_INITIAL = 1.0
SWITCH_INTERVAL = 0.001
RETRY_MAX = 60.0


@dataclass
class Camera:
    """One configured camera and, once connected, its driver."""

    config: CameraConfig
    http: CameraHttp
    idle_grace: float
    driver: CameraDriver | None = None
    info: DeviceInfo | None = None
    media: CameraMedia | None = None
    onvif: DeviceContext | None = None
    last_error: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _onvif_runner: web.AppRunner | None = None

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
        self.last_error = ""

    async def serve_onvif(
        self,
        host: str,
        port: int,
        ports: GatewayPorts,
        gateway: GatewayConfig,
        users: UserAccounts,
    ) -> None:
        """Start this camera's virtual ONVIF device (once connected) on its own port."""
        assert self.driver is not None
        assert self.info is not None
        assert self.media is not None
        context = DeviceContext(
            self.config.name,
            self.driver,
            self.info,
            self.media,
            ports,
            gateway.advertise_host,
            users,
        )
        app = device_app(
            device_operations(context),
            users,
            validate_responses=gateway.onvif_validate_responses,
        )
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

    async def close(self) -> None:
        if self.onvif is not None:
            await self.onvif.close()  # first, so waiting event pulls answer before the runner stops
        if self._onvif_runner is not None:
            await self._onvif_runner.cleanup()
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
                self.last_error = str(exc)
                log.warning("camera %s not ready: %s", self.config.name, exc)
                if isinstance(exc, AuthenticationFailed):
                    delay = RETRY_MAX
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
                self.ready.set()
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(RETRY_MAX, delay * 2)


class Gateway:
    """``users_file`` keeps the users created over ONVIF (next to the config file); without
    one they last until the gateway stops."""

    def __init__(self, config: Config, users_file: Path | None = None) -> None:
        self.config = config
        gateway = config.gateway
        password = gateway.password.get_secret_value()
        register_secret(password)
        self.users = UserAccounts({gateway.username: password}, path=users_file)
        if users_file is not None:
            self.users.restore(
                Account(user.username, UserLevel(user.level), user.password.get_secret_value())
                for user in load_users_file(users_file)
            )
        self.cameras: dict[str, Camera] = {}
        for cam in config.cameras:
            camera_password = cam.password.get_secret_value()
            register_secret(camera_password)
            creds = Credentials(cam.username, camera_password) if cam.username else None
            http = CameraHttp(cam.url, creds, name=cam.name)
            self.cameras[cam.name] = Camera(cam, http, gateway.stream_idle_seconds)
        self.rtsp = RtspServer(
            self._stream, host=gateway.listen_host, port=gateway.rtsp_port, users=self.users
        )
        self._web = web.AppRunner(
            web_app(self._snapshot, Authenticator(self.users, "bridge")),
            access_log=None,
            shutdown_timeout=2.0,
        )
        self.web_port = 0
        self._tasks: list[asyncio.Task[None]] = []

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
        return camera.media.source(Profile(profile_name))

    def _snapshot(self, name: str) -> Callable[[], Awaitable[bytes]] | None:
        media = self._media(name)
        return media.snapshot if media is not None else None

    async def start(self) -> None:
        gateway = self.config.gateway
        # Encoder threads hold the GIL between codec calls for up to the switch interval, and
        # the event loop that sends every viewer's packets waits that long: at 20 cameras the
        # default 5 ms showed as 50 ms p99 added latency in `bridge benchmark`, 1 ms as 8-14.
        sys.setswitchinterval(SWITCH_INTERVAL)
        # The ONVIF schemas take about half a second of CPU to load: off the event loop, once.
        await asyncio.to_thread(catalog)
        await self.rtsp.start()
        try:
            await self._web.setup()
            site = web.TCPSite(self._web, gateway.listen_host, gateway.web_port)
            await site.start()
        except BaseException:
            await self.rtsp.stop()
            await self._web.cleanup()
            raise
        self.web_port = self._web.addresses[0][1]
        for index, camera in enumerate(self.cameras.values()):
            self._tasks.append(
                asyncio.create_task(camera.connect_until_ready(partial(self._serve, camera, index)))
            )
        log.info(
            "gateway started with %d camera(s): RTSP on port %d, web on port %d",
            len(self.cameras),
            self.rtsp.port,
            self.web_port,
        )

    async def _serve(self, camera: Camera, index: int) -> None:
        gateway = self.config.gateway
        port = gateway.onvif_base_port + index if gateway.onvif_base_port else 0
        ports = GatewayPorts(rtsp=self.rtsp.port, web=self.web_port, onvif=port)
        try:
            await camera.serve_onvif(gateway.listen_host, port, ports, gateway, self.users)
        except OSError as exc:
            # The camera still streams over RTSP; only its ONVIF device is missing.
            log.error("camera %s: cannot serve ONVIF on port %d: %s", camera.config.name, port, exc)

    async def stop(self) -> None:
        """Sessions end first (their viewers get a clean close), then the cameras."""
        await self.rtsp.stop()
        await self._web.cleanup()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for camera in self.cameras.values():
            await camera.close()
        log.info("gateway stopped")
