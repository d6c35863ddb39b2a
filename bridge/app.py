"""The Gateway: builds everything from the Config, starts and stops it in order.

Today it connects every configured camera (identifying its dialect when ``dialect: auto``) and
keeps it ready; a camera that cannot be reached is retried in the background and never stops
the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from bridge.cameras.base import CameraDriver, DeviceInfo, Dialect
from bridge.cameras.http import CameraHttp, Credentials
from bridge.cameras.identify import driver_for, identify
from bridge.config import CameraConfig, Config
from bridge.errors import AuthenticationFailed, CameraError
from bridge.logs import register_secret

log = logging.getLogger(__name__)

RETRY_INITIAL = 1.0
RETRY_MAX = 60.0


@dataclass
class Camera:
    """One configured camera and, once connected, its driver."""

    config: CameraConfig
    http: CameraHttp
    driver: CameraDriver | None = None
    info: DeviceInfo | None = None
    last_error: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> None:
        if self.config.dialect == "auto":
            dialect = (await identify(self.http)).dialect
        else:
            dialect = Dialect(self.config.dialect)
        driver = driver_for(dialect, self.http)
        self.info = await driver.connect()
        self.driver = driver
        self.last_error = ""
        self.ready.set()

    async def connect_until_ready(self) -> None:
        """Connect, retrying with jittered exponential backoff; a wrong password still
        retries (slowly), because an operator may fix it on the camera side."""
        delay = RETRY_INITIAL
        while True:
            try:
                await self.connect()
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
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(RETRY_MAX, delay * 2)


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        register_secret(config.gateway.password.get_secret_value())
        self.cameras: dict[str, Camera] = {}
        for cam in config.cameras:
            password = cam.password.get_secret_value()
            register_secret(password)
            creds = Credentials(cam.username, password) if cam.username else None
            http = CameraHttp(cam.url, creds, name=cam.name)
            self.cameras[cam.name] = Camera(cam, http)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for camera in self.cameras.values():
            self._tasks.append(asyncio.create_task(camera.connect_until_ready()))
        log.info("gateway started with %d camera(s)", len(self.cameras))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for camera in self.cameras.values():
            await camera.http.close()
        log.info("gateway stopped")
