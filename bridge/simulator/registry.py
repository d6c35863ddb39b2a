"""The emulated cameras, by dialect name."""

from __future__ import annotations

from bridge.cameras.base import Dialect
from bridge.simulator import foscam, hama, ipcamcgi, openapi, vapix2
from bridge.simulator.core import SimulatedCamera

SIMULATORS: dict[Dialect, type[SimulatedCamera]] = {
    Dialect.HAMA: hama.HamaSimulator,
    Dialect.IPCAMCGI: ipcamcgi.IpCamCgiSimulator,
    Dialect.OPENAPI: openapi.OpenApiSimulator,
    Dialect.FOSCAM: foscam.FoscamSimulator,
    Dialect.VAPIX2: vapix2.Vapix2Simulator,
}
