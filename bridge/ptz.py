"""What the gateway keeps for a camera's pan/tilt/zoom head, whichever protocol drives it.

Legacy heads report little: most cannot say where they are or whether they still move, some
cannot list their presets, none knows its field of view, and a continuous move goes on to the
end stop unless someone says stop. :class:`PtzHead` is the one owner of what the gateway keeps
on the camera's behalf, between the client protocols (ONVIF's PTZ service) and the driver:

- one move at a time, each with at most one timer: the stop after a continuous move's timeout
  and the stop that ends a timed move are the same timer; a newer command supersedes it;
- whether the head moves: while a continuous or timed move runs, and for the time a native
  move (relative, absolute, preset, home) needs at the dialect's calibrated rate;
- where the head is: as the camera reports it, else estimated from the moves made here
  (heads centre themselves at power-up, so the estimate starts at home);
- presets the camera cannot list: their names and the positions they were stored at (kept in
  the state file across restarts: :meth:`PtzHead.kept`, :meth:`PtzHead.restore`);
- moves by a fraction of the field of view (what trackers send), through the dialect's
  :class:`~bridge.cameras.base.PtzGeometry`: native relative moves where the camera has them,
  else absolute moves from a known position, else continuous moves timed at the calibrated
  rate.

Positions, translations and velocities are the driver's normalized scales (pan/tilt in
[-1, 1], zoom in [0, 1]); the arithmetic comes first and is pure, the asyncio owner last.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace

from bridge.cameras.base import CameraDriver, Preset, PtzCapabilities, PtzGeometry, PtzVector
from bridge.errors import CameraError, PtzRefused, UnsupportedOperation
from bridge.kept import KeptPreset

log = logging.getLogger(__name__)

STILL = PtzVector()
# A timed move lasts at least this long, at a lower velocity when the distance is short:
# the start and stop requests' latency then weighs less against the move.
MIN_TIMED_MOVE = 0.5
# Where a native move's distance is unknown (a preset stored elsewhere), assume it crosses
# half the travel of each axis.
UNKNOWN_DISTANCE = PtzVector(1.0, 1.0, 0.5)
# A head that reports its position has arrived when it is this close to the target (its
# reports are rounded to its own units: whole degrees on some).
ARRIVED = 0.01


class Refusal(enum.StrEnum):
    """Why :class:`PtzHead` refuses a request (:attr:`bridge.errors.PtzRefused.reason`)."""

    NO_PRESET = "no_preset"
    PRESET_EXISTS = "preset_exists"
    NO_PRESET_ROOM = "no_preset_room"
    MOVING = "moving"


# -- arithmetic -------------------------------------------------------------------------------


def clamp(position: PtzVector) -> PtzVector:
    """A position inside the head's range (a head stops at its end stops)."""

    def within(value: float, low: float) -> float:
        return min(1.0, max(low, value))

    return PtzVector(
        within(position.pan, -1.0), within(position.tilt, -1.0), within(position.zoom, 0.0)
    )


def add(a: PtzVector, b: PtzVector) -> PtzVector:
    return PtzVector(a.pan + b.pan, a.tilt + b.tilt, a.zoom + b.zoom)


def scale(v: PtzVector, factor: float) -> PtzVector:
    return PtzVector(v.pan * factor, v.tilt * factor, v.zoom * factor)


def rates(geometry: PtzGeometry) -> PtzVector:
    """Normalized units per second of a continuous move at velocity 1, per axis."""
    return PtzVector(
        geometry.pan_rate * 2.0 / geometry.pan_degrees,
        geometry.tilt_rate * 2.0 / geometry.tilt_degrees,
        geometry.zoom_rate,
    )


def magnification(geometry: PtzGeometry, zoom: float) -> float:
    """Optical magnification at a normalized zoom, taken as linear in the zoom position (the
    generic zoom space says nothing of it; legacy zoom heads step their lens about so)."""
    return 1.0 + min(1.0, max(0.0, zoom)) * (geometry.zoom_ratio - 1.0)


def field_of_view(geometry: PtzGeometry, zoom: float) -> tuple[float, float]:
    """Horizontal and vertical field of view in degrees at a normalized zoom."""
    factor = magnification(geometry, zoom)
    return geometry.fov[0] / factor, geometry.fov[1] / factor


def fov_translation(pan: float, tilt: float, geometry: PtzGeometry, zoom: float) -> PtzVector:
    """The normalized pan/tilt translation that moves the picture by (pan, tilt) in ONVIF's
    TranslationSpaceFov: its origin is the picture's centre and (1, 1) its upper right corner,
    so 1 is half the field of view."""
    horizontal, vertical = field_of_view(geometry, zoom)
    return PtzVector(
        pan * horizontal / geometry.pan_degrees, tilt * vertical / geometry.tilt_degrees
    )


def zoom_by_factor(factor: float, geometry: PtzGeometry, zoom: float) -> float:
    """The normalized zoom translation that multiplies the magnification by ``factor`` (ONVIF's
    zoom TranslationSpaceFov: the width of the picture over that of the area to zoom to), at
    most to the lens's ends."""
    if geometry.zoom_ratio <= 1.0:
        return 0.0
    wanted = min(geometry.zoom_ratio, max(1.0, magnification(geometry, zoom) * factor))
    return (wanted - 1.0) / (geometry.zoom_ratio - 1.0) - zoom


def travel_time(delta: PtzVector, geometry: PtzGeometry, speed: float | None = None) -> float:
    """Seconds a native move by ``delta`` takes at the calibrated rates (the slowest axis
    decides), at ``speed`` (0, 1] of the head's top speed, its own when None."""
    per_axis = rates(geometry)
    seconds = max(
        abs(delta.pan) / per_axis.pan,
        abs(delta.tilt) / per_axis.tilt,
        abs(delta.zoom) / per_axis.zoom,
    )
    return seconds / (speed or 1.0)


@dataclass(frozen=True, slots=True)
class TimedMove:
    """A continuous move that makes a translation on a head with no positioning of its own."""

    velocity: PtzVector
    seconds: float


def timed_move(delta: PtzVector, geometry: PtzGeometry, speed: float | None = None) -> TimedMove:
    """The velocity and duration that cover ``delta``: every axis arrives at once, the
    slowest at ``speed`` (1 when None), and never in less than :data:`MIN_TIMED_MOVE`."""
    seconds = max(MIN_TIMED_MOVE, travel_time(delta, geometry, speed))
    per_axis = rates(geometry)
    velocity = PtzVector(
        delta.pan / (per_axis.pan * seconds),
        delta.tilt / (per_axis.tilt * seconds),
        delta.zoom / (per_axis.zoom * seconds),
    )
    return TimedMove(velocity, seconds)


def advance(
    position: PtzVector, velocity: PtzVector, seconds: float, geometry: PtzGeometry
) -> PtzVector:
    """Where a continuous move at ``velocity`` takes a head in ``seconds``."""
    per_axis = rates(geometry)
    moved = PtzVector(
        velocity.pan * per_axis.pan, velocity.tilt * per_axis.tilt, velocity.zoom * per_axis.zoom
    )
    return clamp(add(position, scale(moved, max(0.0, seconds))))


# -- what the head can be asked -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PtzOffer:
    """The moves the gateway offers for a head: the camera's own, and those it makes from them
    (relative moves from absolute or continuous ones)."""

    continuous: bool
    relative: bool
    absolute: bool
    zoom: bool
    zoom_fov: bool  # relative zoom by a magnification factor (the lens's ratio is known)
    presets: int
    home: bool
    set_home: bool
    speed: bool

    @classmethod
    def of(cls, caps: PtzCapabilities, geometry: PtzGeometry) -> PtzOffer:
        return cls(
            continuous=caps.continuous,
            relative=caps.relative or caps.absolute or caps.continuous,
            absolute=caps.absolute,
            zoom=caps.zoom,
            zoom_fov=caps.zoom and geometry.zoom_ratio > 1.0,
            presets=caps.presets,
            home=caps.home,
            set_home=caps.set_home,
            speed=caps.speed,
        )

    @property
    def any(self) -> bool:
        return self.continuous or self.relative or self.absolute or self.presets > 0


@dataclass(frozen=True, slots=True)
class Translation:
    """A relative move as a client asks it; None leaves that part alone.

    Pan/tilt is a normalized translation, or with ``pan_tilt_fov`` a fraction of the field of
    view (ONVIF's TranslationSpaceFov: 1 is half the picture); zoom is a normalized
    translation, or with ``zoom_factor`` a factor on the magnification (1 leaves it).
    """

    pan_tilt: tuple[float, float] | None = None
    pan_tilt_fov: bool = False
    zoom: float | None = None
    zoom_factor: bool = False


@dataclass(frozen=True, slots=True)
class PtzStatus:
    position: PtzVector
    pan_tilt_moving: bool
    zoom_moving: bool


@dataclass(frozen=True, slots=True)
class _Stored:
    name: str
    position: PtzVector | None  # where the head was when it was stored, when known


@dataclass(frozen=True, slots=True)
class _Motion:
    """A continuous velocity since a moment, from a position: the estimate's basis."""

    origin: PtzVector
    velocity: PtzVector
    since: float


class PtzHead:
    """One camera's head as the gateway drives it: the move in flight, its timer, the
    estimated position, presets the camera cannot list.

    Commands reach the driver one at a time (a lock), and every command that moves the head
    supersedes the move in flight, so the stop its timer would send never overtakes it.
    """

    def __init__(
        self, driver: CameraDriver, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._driver = driver
        self._clock = clock
        self.caps = driver.capabilities.ptz
        self.geometry = driver.ptz_geometry
        self.offer = PtzOffer.of(self.caps, self.geometry)
        self._lock = asyncio.Lock()
        self._generation = 0  # counts commands; a timer acts only on its own move
        self._timer: asyncio.Task[None] | None = None
        self._motion = _Motion(STILL, STILL, clock())
        self._busy_until = (0.0, 0.0)  # pan/tilt and zoom: when a native move should be done
        self._target: PtzVector | None = None  # where the native move in flight leads, if known
        self._reported: PtzVector | None = None  # the camera's last word since that move began
        self._stop_at = 0.0  # when the running continuous move's timer stops it
        self._home = STILL
        self._stored: dict[str, _Stored] = {}
        self._lists_presets: bool | None = None  # whether the camera lists its own, once known

    # -- state ------------------------------------------------------------------------------

    @property
    def velocity(self) -> PtzVector:
        """The continuous velocity in effect (zero when none runs)."""
        return self._motion.velocity

    @property
    def moving(self) -> bool:
        status = self._moving()
        return status[0] or status[1]

    def _moving(self) -> tuple[bool, bool]:
        now, v = self._clock(), self._motion.velocity
        return (
            bool(v.pan or v.tilt) or now < self._busy_until[0],
            bool(v.zoom) or now < self._busy_until[1],
        )

    def estimate(self) -> PtzVector:
        """Where the moves made here have taken the head (the camera's word where it gave it)."""
        motion = self._motion
        return advance(motion.origin, motion.velocity, self._clock() - motion.since, self.geometry)

    def _settle(self, position: PtzVector, velocity: PtzVector = STILL) -> None:
        self._motion = _Motion(clamp(position), velocity, self._clock())

    def _busy_for(self, delta: PtzVector | None, speed: float | None) -> None:
        """Mark the head moving for as long as a native move by ``delta`` takes (a head that
        reports its position may say it arrived sooner)."""
        self._target = None if delta is None else self._motion.origin
        self._reported = None
        distance = UNKNOWN_DISTANCE if delta is None else delta
        now = self._clock()
        pan_tilt = travel_time(replace(distance, zoom=0.0), self.geometry, speed)
        zoom = travel_time(PtzVector(zoom=distance.zoom), self.geometry, speed)
        self._busy_until = (now + pan_tilt, now + zoom)

    async def status(self) -> PtzStatus:
        """Position and move status. The position is the camera's where it reports one, else
        the gateway's estimate (never unknown: trackers build their requests from it)."""
        if self.caps.position:
            position = await self._driver.ptz_position()
            if self._arrived_by_report(position):
                self._busy_until = (0.0, 0.0)
            self._reported = position
            pan_tilt, zoom = self._moving()
            if not (pan_tilt or zoom):
                self._settle(position)
            return PtzStatus(position, pan_tilt, zoom)
        pan_tilt, zoom = self._moving()
        return PtzStatus(self.estimate(), pan_tilt, zoom)

    def _arrived_by_report(self, position: PtzVector) -> bool:
        """Whether the camera's report ends the native move in flight: it is at the target,
        or (the target unknown) where its previous report since the move began had it."""
        if self._target is not None:
            return _near(position, self._target)
        return self._reported is not None and _near(position, self._reported)

    async def position(self) -> PtzVector:
        return (await self.status()).position

    # -- the one timer ---------------------------------------------------------------------

    @asynccontextmanager
    async def _command(self, *, moves: bool = True) -> AsyncIterator[None]:
        """Run a driver command alone; one that ``moves`` supersedes the move in flight and
        the stop its timer would send."""
        if moves:
            self._generation += 1
            self._cancel_timer()
        async with self._lock:
            yield

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop_after(self, seconds: float) -> None:
        generation = self._generation
        self._stop_at = self._clock() + seconds
        self._timer = asyncio.create_task(self._expire(seconds, generation), name="ptz-move-timer")

    async def _expire(self, seconds: float, generation: int) -> None:
        await asyncio.sleep(seconds)
        self._timer = None  # from here on the stop goes out even if a command comes
        async with self._lock:
            if generation == self._generation:  # no newer command took over meanwhile
                await self._halt("at the end of the move")

    async def _halt(self, when: str) -> None:
        """Stop the camera (the lock held) and settle the estimate where the move ended."""
        try:
            await self._driver.stop()
        except CameraError as exc:
            log.warning("PTZ stop %s failed: %s", when, exc)
        self._settle(self.estimate())

    async def close(self) -> None:
        """The camera is going away: a move still going is stopped now, as the camera would
        otherwise go on to its end stop."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with suppress(asyncio.CancelledError):
                await timer
        if self.velocity != STILL:
            async with self._lock:
                await self._halt("on closing")

    # -- moves ------------------------------------------------------------------------------

    async def continuous_move(self, velocity: PtzVector, stop_after: float) -> None:
        """Move at ``velocity`` (zero axes stand still) until stopped or ``stop_after`` s pass."""
        async with self._command():
            await self._driver.continuous_move(velocity)
            self._settle(self.estimate(), velocity)
            self._busy_until = (0.0, 0.0)
            if velocity != STILL:
                self._stop_after(stop_after)

    async def stop(self, pan_tilt: bool = True, zoom: bool = True) -> None:
        """Stop the axes asked; the others go on until their move's own end."""
        v = self.velocity
        keep = PtzVector(
            0.0 if pan_tilt else v.pan, 0.0 if pan_tilt else v.tilt, 0.0 if zoom else v.zoom
        )
        if keep != STILL:
            await self.continuous_move(keep, max(0.0, self._stop_at - self._clock()))
            return
        async with self._command():
            await self._driver.stop()
            self._settle(self.estimate())
            self._busy_until = (0.0, 0.0)

    async def relative_move(self, delta: PtzVector, speed: float | None = None) -> None:
        """Move by ``delta``: natively where the camera can, else to the position it makes
        from where the head is, else by a continuous move timed to cover it. A zero delta
        stops the head."""
        if delta == STILL:
            await self.stop()
            return
        if self.caps.relative:
            async with self._command():
                here = self.estimate()
                made = await self._driver.relative_move(delta, speed)
                self._arrived(add(here, made), made, speed)
            return
        if self.caps.absolute:
            here = await self.position()
            await self.absolute_move(clamp(add(here, delta)), speed)
            return
        if not self.caps.continuous:
            raise UnsupportedOperation("the head has no move to make a relative one from")
        move = timed_move(delta, self.geometry, speed)
        await self.continuous_move(move.velocity, move.seconds)

    async def translate(self, translation: Translation, speed: float | None = None) -> None:
        """A relative move as a client asked it, in whichever spaces (see
        :class:`Translation`)."""
        # The field of view depends on the zoom: ask a zooming camera where its lens is.
        here = await self.position() if self.caps.zoom else self.estimate()
        pan, tilt = translation.pan_tilt or (0.0, 0.0)
        if translation.pan_tilt_fov:
            delta = fov_translation(pan, tilt, self.geometry, here.zoom)
        else:
            delta = PtzVector(pan, tilt)
        if translation.zoom is not None:
            zoom = translation.zoom
            if translation.zoom_factor:
                zoom = zoom_by_factor(zoom, self.geometry, here.zoom)
            delta = replace(delta, zoom=zoom)
        await self.relative_move(delta, speed)

    async def absolute_move(self, position: PtzVector, speed: float | None = None) -> None:
        async with self._command():
            here = self.estimate()
            await self._driver.absolute_move(position, speed)
            self._arrived(position, difference(here, position), speed)

    def _arrived(
        self, position: PtzVector | None, delta: PtzVector | None, speed: float | None
    ) -> None:
        """After a native move: the estimate is where it leads (unchanged when unknown) and
        the head moves for as long as that takes."""
        self._settle(self.estimate() if position is None else position)
        self._busy_for(delta, speed)

    async def goto_home(self, speed: float | None = None) -> None:
        async with self._command():
            if speed is not None:
                await self._driver.set_ptz_speed(speed)
            here = self.estimate()
            await self._driver.goto_home()
            self._arrived(self._home, difference(here, self._home), speed)

    async def set_home(self) -> None:
        if self.moving:
            raise PtzRefused("Home cannot be stored while moving", reason=Refusal.MOVING)
        position = await self.position()
        async with self._command(moves=False):
            await self._driver.set_home()
        self._home = position

    # -- presets ----------------------------------------------------------------------------

    async def presets(self) -> tuple[list[Preset], bool]:
        """The presets, and whether the camera listed them (else: those stored here)."""
        try:
            listed = list(await self._driver.presets())
        except UnsupportedOperation:
            self._lists_presets = False
            return [Preset(token, stored.name) for token, stored in self._stored.items()], False
        self._lists_presets = True
        return listed, True

    def kept(self) -> list[KeptPreset]:
        """The presets stored here for a camera that cannot list its own, as the state file
        keeps them (a camera that lists its own keeps them itself)."""
        if self._lists_presets is not False:
            return []
        kept = []
        for token, stored in self._stored.items():
            at = stored.position
            where = {} if at is None else {"pan": at.pan, "tilt": at.tilt, "zoom": at.zoom}
            kept.append(KeptPreset(token=token, name=stored.name, **where))
        return kept

    async def restore(self, kept: Sequence[KeptPreset]) -> list[str]:
        """Take back the presets an earlier run kept; returns what no longer fits the camera
        (a slot beyond its count, a name or slot kept twice, every one when it lists its own
        now or cannot say): each is dropped."""
        if not kept:
            return []
        try:
            _, listable = await self.presets()
        except CameraError as exc:
            return [f"presets: the camera cannot say whether it lists its own ({exc})"]
        if listable:
            return ["presets: the camera lists its own"]
        dropped: list[str] = []
        names: set[str] = set()
        for preset in kept:
            if int(preset.token) > self.caps.presets:
                dropped.append(f"preset {preset.token}: the camera has {self.caps.presets} slots")
            elif preset.token in self._stored or preset.name in names:
                dropped.append(f"preset {preset.token}: its slot or name is kept twice")
            else:
                pan, tilt, zoom = preset.pan, preset.tilt, preset.zoom
                position = None
                if pan is not None and tilt is not None and zoom is not None:
                    position = PtzVector(pan, tilt, zoom)
                self._stored[preset.token] = _Stored(preset.name, position)
                names.add(preset.name)
        return dropped

    def stored_position(self, token: str) -> PtzVector | None:
        stored = self._stored.get(token)
        return None if stored is None else stored.position

    async def _existing(self, token: str) -> None:
        presets, _ = await self.presets()
        _require(presets, token)

    def _free_slot(self) -> str:
        """A slot for a new preset on a camera that cannot list them: its slots are numbered
        from 1, and those stored here are taken."""
        for slot in range(1, self.caps.presets + 1):
            if str(slot) not in self._stored:
                return str(slot)
        raise PtzRefused("No room for another preset", reason=Refusal.NO_PRESET_ROOM)

    async def set_preset(self, name: str | None, token: str | None) -> str:
        """Store where the head is as a preset (a new one when ``token`` is None); returns
        its token. Names are unique; an unnamed preset is called "Preset <n>"."""
        presets, listable = await self.presets()
        if token is not None:
            _require(presets, token)
        taken = {preset.name for preset in presets if preset.token != token}
        if not name:
            name = next(f"Preset {n}" for n in itertools.count(1) if f"Preset {n}" not in taken)
        elif name in taken:
            raise PtzRefused(f"A preset is already named {name!r}", reason=Refusal.PRESET_EXISTS)
        if self.moving:
            raise PtzRefused("A preset cannot be stored while moving", reason=Refusal.MOVING)
        if token is None and not listable:
            token = self._free_slot()
        position = await self.position()
        async with self._command(moves=False):
            token = await self._driver.set_preset(name, token)
        self._stored[token] = _Stored(name, position)
        return token

    async def remove_preset(self, token: str) -> None:
        """Forget a preset; the camera forgets it too where it can (one that cannot list its
        presets keeps the position in its slot, unlisted, until a new preset takes it)."""
        presets, listable = await self.presets()
        name = _require(presets, token).name
        try:
            async with self._command(moves=False):
                await self._driver.remove_preset(token, name)
        except UnsupportedOperation:
            if listable:
                raise
        self._stored.pop(token, None)

    async def goto_preset(self, token: str, speed: float | None = None) -> None:
        await self._existing(token)
        async with self._command():
            if speed is not None:
                await self._driver.set_ptz_speed(speed)
            here = self.estimate()
            await self._driver.goto_preset(token)
            target = self.stored_position(token)
            self._arrived(target, None if target is None else difference(here, target), speed)


def _near(a: PtzVector, b: PtzVector) -> bool:
    return max(abs(a.pan - b.pan), abs(a.tilt - b.tilt), abs(a.zoom - b.zoom)) <= ARRIVED


def difference(start: PtzVector, end: PtzVector) -> PtzVector:
    return PtzVector(end.pan - start.pan, end.tilt - start.tilt, end.zoom - start.zoom)


def _require(presets: list[Preset], token: str) -> Preset:
    """The preset with that token, else PtzRefused."""
    for preset in presets:
        if preset.token == token:
            return preset
    raise PtzRefused(f"No preset {token!r}", reason=Refusal.NO_PRESET)
