"""Every camera as an ONVIF device: the SOAP layer and, on top of it, one module per service.

A service module registers its handlers in an :class:`Operations` registry; :func:`device_app`
serves them as one device. Handlers see plain values and answer with plain values or raise an
:class:`~bridge.errors.OnvifFault`; zeep and lxml stay inside :mod:`bridge.onvif.soap`.
"""

from __future__ import annotations

from bridge.onvif.access import PRE_AUTH_OPERATIONS
from bridge.onvif.server import device_app
from bridge.onvif.soap import Handler, OnvifRequest, Operations, Service

__all__ = ["PRE_AUTH_OPERATIONS", "Handler", "OnvifRequest", "Operations", "Service", "device_app"]
