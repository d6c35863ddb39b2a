"""Find out which CGI dialect a camera speaks, with as few requests as possible.

One unauthenticated ``GET /`` gives the Server header and auth realm; dialects whose
fingerprint matches are tried first, then the rest, each with the one detection request its
driver defines. A wrong password is reported as such (not as "unknown device") when the
fingerprint pointed at a dialect, or when no dialect accepted the camera but one of them was
refused credentials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.cameras.base import CameraDriver, Dialect
from bridge.cameras.http import CameraHttp
from bridge.cameras.registry import DRIVERS
from bridge.errors import AuthenticationFailed, BadResponse, CameraBusy, UnknownDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identification:
    dialect: Dialect
    requests: int  # how many HTTP requests identification took


async def identify(http: CameraHttp) -> Identification:
    fingerprint = await http.fingerprint()
    suggested = [
        cls
        for cls in DRIVERS.values()
        if cls.matches_fingerprint(fingerprint.server, fingerprint.realm)
    ]
    others = [cls for cls in DRIVERS.values() if cls not in suggested]
    refused: AuthenticationFailed | None = None
    requests = 1
    for cls in [*suggested, *others]:
        requests += 1
        try:
            if await cls.detect(http):
                log.debug("%s speaks %s", http.display_name, cls.dialect)
                return Identification(cls.dialect, requests)
        except AuthenticationFailed as exc:
            if cls in suggested:
                raise
            refused = refused or exc
        except (BadResponse, CameraBusy) as exc:
            log.debug("%s: %s detection inconclusive: %s", http.display_name, cls.dialect, exc)
    if refused is not None:
        raise refused
    raise UnknownDevice(
        f"not a known camera (Server: {fingerprint.server or 'none'}, tried {', '.join(DRIVERS)})",
        camera=http.display_name,
    )


def driver_for(dialect: Dialect, http: CameraHttp) -> CameraDriver:
    return DRIVERS[dialect](http)
