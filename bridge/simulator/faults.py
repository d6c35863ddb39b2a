"""Misbehaviour on command: what broken and hostile cameras do to the clients that pull them.

A test sets a camera's fault with ``POST /__sim__/fault?mode=MODE&...`` (``mode=none`` clears
it; ``GET /__sim__/fault`` shows it and counts what was done). Modes:

=============  ==============================================================================
``garbage``    random bytes in place of stream parts and reply bodies (same sizes)
``stall``      nothing more is sent while the fault lasts; the connection stays open
``drip``       the bytes go out ``rate`` bytes per second (a firmware on a failing link)
``reset``      the connection is reset (TCP RST), streams at their next part
``corrupt``    damaged JPEGs inside intact framing: truncated, bits flipped in the scan, no
               SOI, a header segment with an impossible length (in turn)
``oversized``  JPEGs whose frame header claims 65000x65000 (the scan is the real picture's)
``flap``       the camera is on the network ``up`` seconds, then off it ``down`` seconds
               (connections reset, the port refuses), and so on
=============  ==============================================================================

Options: ``seconds`` (the fault ends by itself after that long; default: until cleared),
``every`` (one picture, part or reply in N is hit; default 1), ``rate`` (drip, bytes/s),
``up``/``down`` (flap), ``scope`` (``media``: streamed replies and JPEG replies, the default;
``all``: every CGI reply too) and ``seed`` (the random bytes, for a reproducible run).

Pictures are hit where they are made (:meth:`Faults.picture`), so every dialect keeps its own
framing around a damaged JPEG; transport faults are applied where bytes leave
(:meth:`Faults.write` for streams, :meth:`Faults.reply` for whole replies). With no fault set
all three hand their input through untouched.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from aiohttp import web

from bridge.codecs.jpeg import NOT_A_MARKER, SOF_MARKERS, SOS, STANDALONE_MARKERS, Segment, segments

OVERSIZED_SIDE = 65000
MAX_FAULT_SECONDS = 24 * 3600.0
DRIP_TICK = 0.05  # seconds between the slices of a drip
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_E = TypeVar("_E", bound=enum.StrEnum)


class FaultMode(enum.StrEnum):
    NONE = "none"
    GARBAGE = "garbage"
    STALL = "stall"
    DRIP = "drip"
    RESET = "reset"
    CORRUPT = "corrupt"
    OVERSIZED = "oversized"
    FLAP = "flap"


class Scope(enum.StrEnum):
    MEDIA = "media"  # streamed replies (video, audio, events) and JPEG replies
    ALL = "all"  # every reply but the test controls


class Damage(enum.Enum):
    """The ways ``corrupt`` damages a JPEG, used in turn."""

    TRUNCATED = "truncated"
    FLIPPED = "flipped"
    NO_SOI = "no_soi"
    BAD_SEGMENT = "bad_segment"


@dataclass(frozen=True, slots=True)
class Fault:
    mode: FaultMode = FaultMode.NONE
    until: float = math.inf  # time.monotonic() when it ends by itself
    every: int = 1
    rate: int = 2000
    up: float = 3.0
    down: float = 3.0
    scope: Scope = Scope.MEDIA

    @classmethod
    def from_query(cls, query: Mapping[str, str], now: float) -> Fault:
        """The fault a control request asks for; ValueError names what is wrong."""
        known = {"mode", "seconds", "every", "rate", "up", "down", "scope", "seed"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}")
        mode = _choice(FaultMode, query.get("mode", ""), "mode")
        seconds = _number(query, "seconds", MAX_FAULT_SECONDS, 0.0, MAX_FAULT_SECONDS)
        return cls(
            mode=mode,
            until=now + seconds if "seconds" in query else math.inf,
            every=int(_number(query, "every", 1, 1, 1_000_000)),
            rate=int(_number(query, "rate", 2000, 1, 100_000_000)),
            up=_number(query, "up", 3.0, 0.1, MAX_FAULT_SECONDS),
            down=_number(query, "down", 3.0, 0.1, MAX_FAULT_SECONDS),
            scope=_choice(Scope, query.get("scope", Scope.MEDIA), "scope"),
        )

    def as_json(self, now: float) -> dict[str, Any]:
        data = asdict(self)
        del data["until"]
        data["seconds_left"] = None if self.until == math.inf else max(0.0, self.until - now)
        return data


def _choice(kind: type[_E], value: str, name: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {', '.join(kind)}, not {value!r}") from None


def _number(query: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    if name not in query:
        return default
    try:
        value = float(query[name])
    except ValueError:
        raise ValueError(f"{name} must be a number, not {query[name]!r}") from None
    if not low <= value <= high:  # also refuses nan
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], not {query[name]!r}")
    return value


class Faults:
    """One camera's fault: what is set, what it did (``applied``, by mode), and a change
    notification for whoever waits out a stall or runs the flapping."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._fault = Fault()
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()
        self._version = 0
        self._hits = 0  # pictures, parts and replies seen by the current fault
        self._damage = 0  # which Damage comes next
        self.applied: Counter[str] = Counter()

    @property
    def fault(self) -> Fault:
        """The fault in force (``none`` once a timed one has run out)."""
        if time.monotonic() >= self._fault.until:
            self._fault = Fault()
        return self._fault

    async def set(self, fault: Fault, *, seed: int | None = None) -> None:
        if seed is not None:
            self._rng.seed(seed)
        self._fault = fault
        self._hits = 0
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    async def wait_changed(self, version: int, within: float = 1.0) -> int:
        """Wait until the fault is set again after ``version``, the one in force runs out, or
        ``within`` seconds pass; the version now."""
        remaining = self._fault.until - time.monotonic()
        async with self._changed:
            with suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(within, remaining))):
                    await self._changed.wait_for(lambda: self._version != version)
            return self._version

    @property
    def version(self) -> int:
        return self._version

    def as_json(self) -> dict[str, Any]:
        return {**self.fault.as_json(time.monotonic()), "applied": dict(self.applied)}

    def _hit(self, fault: Fault) -> bool:
        """Whether this picture, part or reply is the ``every``-th one."""
        self._hits += 1
        if self._hits % fault.every:
            return False
        self.applied[fault.mode] += 1
        return True

    # -- pictures ---------------------------------------------------------------------------

    def picture(self, jpeg: bytes) -> bytes:
        """A JPEG as the camera sends it: damaged or oversized under those faults."""
        fault = self.fault
        if fault.mode is FaultMode.OVERSIZED and self._hit(fault):
            return oversized_jpeg(jpeg)
        if fault.mode is FaultMode.CORRUPT and self._hit(fault):
            kinds = list(Damage)
            kind = kinds[self._damage % len(kinds)]
            self._damage += 1
            return damaged_jpeg(jpeg, kind, self._rng)
        return jpeg

    # -- bytes on the wire ------------------------------------------------------------------

    async def write(self, request: web.Request, response: web.StreamResponse, data: bytes) -> None:
        """Send one part of a streamed reply, as the fault in force has it go out."""
        fault = self.fault
        match fault.mode:
            case FaultMode.GARBAGE if self._hit(fault):
                data = self._rng.randbytes(len(data))
            case FaultMode.STALL:
                self.applied[fault.mode] += 1
                await self._outlast(FaultMode.STALL)
            case FaultMode.DRIP if self._hit(fault):
                await _drip(response, data, fault.rate)
                return
            case FaultMode.RESET if self._hit(fault):
                reset_connection(request)
                raise ConnectionResetError("reset by the fault in force")
        await response.write(data)

    async def reply(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """A whole (not yet sent) reply within the fault's scope, as the fault has it."""
        fault = self.fault
        if response.prepared or not isinstance(response, web.Response) or response.body is None:
            return response  # streamed: hit part by part in write()
        if fault.scope is Scope.MEDIA and response.content_type != "image/jpeg":
            return response
        body = bytes(response.body)  # type: ignore[arg-type]  # always bytes here
        match fault.mode:
            case FaultMode.GARBAGE if self._hit(fault):
                response.body = self._rng.randbytes(len(body))
            case FaultMode.STALL:
                self.applied[fault.mode] += 1
                await self._outlast(FaultMode.STALL)
            case FaultMode.DRIP if self._hit(fault):
                dripped = web.StreamResponse(
                    status=response.status, reason=response.reason, headers=response.headers
                )
                dripped.content_length = len(body)
                await dripped.prepare(request)
                await _drip(dripped, body, fault.rate)
                await dripped.write_eof()
                return dripped
            case FaultMode.RESET if self._hit(fault):
                reset_connection(request)
        return response

    async def _outlast(self, mode: FaultMode) -> None:
        version = self._version
        while self.fault.mode is mode:
            version = await self.wait_changed(version)


async def _drip(response: web.StreamResponse, data: bytes, rate: int) -> None:
    step = max(1, round(rate * DRIP_TICK))
    for start in range(0, len(data), step):
        await response.write(data[start : start + step])
        await asyncio.sleep(DRIP_TICK)


def reset_connection(request: web.Request) -> None:
    """Drop the request's connection with a TCP RST, as a rebooting camera does."""
    transport = request.transport
    if transport is None:
        return
    reset_transport(transport)


def reset_transport(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


# -- JPEG damage --------------------------------------------------------------------------------


def _length_segments(jpeg: bytes) -> Iterator[Segment]:
    """The header segments up to SOS that carry a length field (the ones worth damaging)."""
    for segment in segments(jpeg):
        if segment.marker == NOT_A_MARKER:
            return
        if segment.marker not in STANDALONE_MARKERS:
            yield segment


def oversized_jpeg(jpeg: bytes) -> bytes:
    """The JPEG with its frame header claiming OVERSIZED_SIDE x OVERSIZED_SIDE."""
    for pos, marker, _ in _length_segments(jpeg):
        if marker in SOF_MARKERS:
            side = OVERSIZED_SIDE.to_bytes(2, "big")
            return jpeg[: pos + 5] + side + side + jpeg[pos + 9 :]
    return jpeg


def damaged_jpeg(jpeg: bytes, kind: Damage, rng: random.Random) -> bytes:
    scan = next((end for _, marker, end in _length_segments(jpeg) if marker == SOS), 2)
    match kind:
        case Damage.TRUNCATED:
            return jpeg[: rng.randint(scan, max(scan, len(jpeg) - 3))]
        case Damage.FLIPPED:
            damaged = bytearray(jpeg)
            for _ in range(16):
                at = rng.randrange(scan, max(scan + 1, len(jpeg) - 2))
                damaged[at] ^= 1 << rng.randrange(8)
            return bytes(damaged)
        case Damage.NO_SOI:
            return b"\x00\x00" + jpeg[2:]
        case Damage.BAD_SEGMENT:
            first = next(_length_segments(jpeg), None)
            if first is None:
                return jpeg
            pos = first.start
            return jpeg[: pos + 2] + b"\xff\xff" + jpeg[pos + 4 :]
