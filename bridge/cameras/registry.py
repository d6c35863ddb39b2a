"""The dialects the gateway speaks, by name."""

from __future__ import annotations

from bridge.cameras import foscam, hama, ipcamcgi, openapi, vapix2
from bridge.cameras.base import CameraDriver, Dialect

DRIVERS: dict[Dialect, type[CameraDriver]] = {
    Dialect.HAMA: hama.HamaDriver,
    Dialect.IPCAMCGI: ipcamcgi.IpCamCgiDriver,
    Dialect.OPENAPI: openapi.OpenApiDriver,
    Dialect.FOSCAM: foscam.FoscamDriver,
    Dialect.VAPIX2: vapix2.Vapix2Driver,
}
