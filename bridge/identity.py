"""What every camera device is known by, kept across restarts and config edits.

A VMS remembers an ONVIF device by its endpoint reference (WS-Discovery's ``urn:uuid``), its
address and port, and its serial number. Deriving them from the camera's position in the
config would swap devices in the VMS when someone reorders the file, so each device's
identity is looked up by the camera itself (its MAC, else its config name) in a small state
file next to the config (``<config stem>.state.yaml``, written atomically), and created
there the first time the camera is seen. The configurable scopes and the discovery mode set
over ONVIF are kept in the same record, so they survive a restart too, and so are the media
profiles, encoder settings and gateway-kept presets a VMS set (:mod:`bridge.kept`).

Saving: every change is written (atomically, off the event loop) before the request that made
it is answered; changes made while a write is under way share the next write, so a VMS that
sets many things in a row costs one or two writes, not one each.

Ports: a port the config fixes (``onvif_port``, or 80 for a camera on its own address) wins;
otherwise the recorded one; a new camera gets ``onvif_base_port + its config index`` when
that port is free (what earlier releases gave it, so an upgrade keeps every port), else the
lowest free port from ``onvif_base_port``. With ``onvif_base_port: 0`` (tests) every device
takes a free port of the system's choosing and none is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.config import SavedDevice
from bridge.files import write_yaml_atomically
from bridge.kept import KeptEncoder, KeptPreset, KeptProfile

log = logging.getLogger(__name__)

MAX_PORT = 65535
_HEADER = (
    "# Camera device identities, written by bridge: what VMS know each camera device by.\n"
    "# Edit only while the gateway is stopped; deleting an entry gives that camera a new\n"
    "# identity (VMS then see a new device).\n"
)


@dataclass
class DeviceIdentity:
    """One camera device's identity; ``scopes``, ``discoverable`` and what it keeps for a VMS
    (``profiles``, ``encoders``, ``presets``) change over ONVIF."""

    name: str
    mac: str
    endpoint: str
    onvif_port: int | None
    serial: str
    discoverable: bool = True
    scopes: list[str] = field(default_factory=list)
    profiles: list[KeptProfile] = field(default_factory=list)
    encoders: list[KeptEncoder] = field(default_factory=list)
    presets: list[KeptPreset] = field(default_factory=list)

    def saved(self) -> dict[str, object]:
        return SavedDevice(
            name=self.name,
            mac=self.mac,
            endpoint=self.endpoint,
            onvif_port=self.onvif_port,
            serial=self.serial,
            discoverable=self.discoverable,
            scopes=self.scopes,
            profiles=self.profiles,
            encoders=self.encoders,
            presets=self.presets,
        ).model_dump(mode="json")


class DeviceIdentities:
    """The state file's records, and the rules that find or create one per camera.

    ``reserved`` are ports a new device must not take (the RTSP and web ports, ports the
    config fixes for other cameras); ``path`` None keeps everything in memory (demo, tests).
    """

    def __init__(
        self,
        saved: Iterable[SavedDevice],
        *,
        path: Path | None,
        base_port: int,
        reserved: Iterable[int] = (),
    ) -> None:
        self._records = [
            DeviceIdentity(
                s.name,
                s.mac,
                s.endpoint,
                s.onvif_port,
                s.serial,
                s.discoverable,
                list(s.scopes),
                list(s.profiles),
                list(s.encoders),
                list(s.presets),
            )
            for s in saved
        ]
        self._path = path
        self._base_port = base_port
        self._reserved = set(reserved)
        self._lock = asyncio.Lock()
        self._changes = 0  # counts save() calls; a write covers every one made before it began
        self._written = 0
        self._claimed: dict[int, str] = {}  # id(record) -> the camera using it in this run

    def find(self, name: str, mac: str) -> DeviceIdentity | None:
        """The camera's record: by MAC when it has one (a renamed camera keeps its identity,
        a different unit under an old name gets a new one), else by name. A record another
        camera of this run already uses is not shared (clones with one MAC exist)."""
        free = [r for r in self._records if self._claimed.get(id(r), name) == name]
        if mac:
            by_mac = next((r for r in free if r.mac.lower() == mac.lower()), None)
            if by_mac is not None:
                return by_mac
            return next(
                (r for r in free if r.name == name and r.mac.lower() in ("", mac.lower())), None
            )
        return next((r for r in free if r.name == name), None)

    async def identify(
        self,
        name: str,
        mac: str,
        *,
        endpoint: str,
        serial: str,
        index: int,
        fixed_port: int | None,
    ) -> DeviceIdentity:
        """The camera's identity, created (from ``endpoint`` and ``serial``) the first time
        it is seen, and saved when anything about it changed."""
        record = self.find(name, mac)
        before = record.saved() if record is not None else None
        if record is None:
            if any(r.endpoint == endpoint for r in self._records):
                log.warning(
                    "camera %s reports a MAC (%s) another camera has: it gets an identity of "
                    "its own, but VMS that tell devices by MAC may confuse the two",
                    name,
                    mac,
                )
                endpoint = f"urn:uuid:{uuid.uuid4()}"
            record = DeviceIdentity(name, mac, endpoint, None, serial)
            self._records.append(record)
        self._claimed[id(record)] = name
        record.name = name
        record.mac = record.mac or mac
        record.onvif_port = self._port_for(record, index, fixed_port)
        if record.saved() != before:
            await self.save()
        return record

    def release(self, name: str) -> None:
        """The camera left the config: its record (kept, with its port, in case it comes
        back) may go to another camera of this run, a renamed one with its MAC say."""
        self._claimed = {key: held for key, held in self._claimed.items() if held != name}

    def _port_for(self, record: DeviceIdentity, index: int, fixed: int | None) -> int | None:
        if fixed is not None:
            return fixed
        if not self._base_port:
            return None
        taken = self._reserved | {
            r.onvif_port for r in self._records if r is not record and r.onvif_port
        }
        if record.onvif_port and record.onvif_port not in taken:
            return record.onvif_port
        preferred = self._base_port + index
        if preferred <= MAX_PORT and preferred not in taken:
            return preferred
        # None (a free port of the system's choosing) only if every port is taken.
        return next((p for p in range(self._base_port, MAX_PORT + 1) if p not in taken), None)

    async def save(self) -> None:
        """Write the file (returning once what changed before the call is written); a failure
        is logged, and the identities live on in memory."""
        if self._path is None:
            return
        self._changes += 1
        change = self._changes
        async with self._lock:
            if self._written >= change:
                return  # a write that began after this change took it along
            self._written = self._changes
            data = {"devices": [record.saved() for record in self._records]}
            try:
                await asyncio.to_thread(write_yaml_atomically, self._path, _HEADER, data)
            except OSError as exc:
                log.error("cannot save the state file %s: %s", self._path, exc.strerror)
