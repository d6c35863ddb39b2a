"""ONVIF media service (work in progress: operations are registered as they are written)."""

from __future__ import annotations

from bridge.onvif.context import DeviceContext
from bridge.onvif.soap import Operations


def register(operations: Operations, device: DeviceContext) -> None:
    """Add this service's handlers for one device."""
