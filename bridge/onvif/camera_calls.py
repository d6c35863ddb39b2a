"""Driver errors as ONVIF faults: what a service handler raises when the camera lets it down.

The fault's reason names the action, not the camera: the driver's own message carries the
camera's address, which is the gateway's business, not the client's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bridge.errors import ActionFailed, ActionNotSupported, CameraError, UnsupportedOperation


@contextmanager
def camera_call(action: str) -> Iterator[None]:
    """Wrap driver calls: UnsupportedOperation is ter:ActionNotSupported, any other camera
    error (unreachable, refused, a reply it should not give) is ter:Action."""
    try:
        yield
    except UnsupportedOperation as exc:
        raise ActionNotSupported(f"The camera cannot {action}") from exc
    except CameraError as exc:
        raise ActionFailed(f"The camera failed to {action}") from exc
