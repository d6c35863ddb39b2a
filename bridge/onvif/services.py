"""One virtual device's operations: every service module's handlers, bound to its camera."""

from __future__ import annotations

from bridge.onvif import device, deviceio, events, imaging, media, media2, ptz
from bridge.onvif.context import DeviceContext
from bridge.onvif.soap import Operations

SERVICE_MODULES = (device, media, media2, ptz, imaging, events, deviceio)


def device_operations(context: DeviceContext) -> Operations:
    operations = Operations()
    for module in SERVICE_MODULES:
        module.register(operations, context)
    return operations
