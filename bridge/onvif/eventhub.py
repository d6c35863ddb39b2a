"""One camera's event properties and the pull points that receive them (the Events service's state).

A push subscription (WS-BaseNotification Subscribe) is a pull point too, of kind
``Holding.SUBSCRIPTION``, which the Events service drains into Notify messages: both share the
queue, filter, termination, Initialized messages first, the upstream and the quotas.

The camera's motion and I/O changes come from one upstream, the camera's event source
(:class:`~bridge.media.motion.CameraEvents`: the driver's reports, with motion from the camera's
CGI or from its pictures) behind a :class:`~bridge.fanout.Fanout`: it is opened for the first
pull point (or subscription), reconnected when it fails, and released once the last one is gone
(so the pictures are looked at for motion only meanwhile). Every (re)opened upstream starts by
reading the current state (inputs, relays; motion is taken to be idle), so a property becomes
known as ``Initialized`` and later reports that change it are ``Changed``; repeated reports of
the same state are dropped. A new pull point, or a synchronization point, gets the known state
as ``Initialized`` messages.

Each pull point has a topic filter, a termination time and a bounded queue (the oldest message
is dropped when a client stops pulling). Expired pull points are removed by a timer set for
the earliest termination time, and also whenever one is looked up.

A camera has at most ``MAX_PULL_POINTS`` pull points and push subscriptions together, and one
user at most ``MAX_PULL_POINTS_PER_USER`` of each kind (and its share of the gateway's quota,
:class:`~bridge.onvif.users.UserQuotas`), so a single account, whatever its level, cannot take
every slot and leave the VMS without events; a client holding a subscription and a pull point
at once (Home Assistant does) still has room for both after a restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import enum
import math
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from bridge.cameras.base import CameraDriver, CameraEvent, EventKind
from bridge.errors import UnsupportedOperation
from bridge.fanout import Fanout
from bridge.media.motion import CameraEvents
from bridge.onvif.context import VIDEO_SOURCE, VIDEO_SOURCE_CONFIG
from bridge.onvif.users import Holding, UserQuotas

TOPICS_NS = "http://www.onvif.org/ver10/topics"
TOPICS_PREFIX = "tns1"
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
CONCRETE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
TOPIC_DIALECTS = (CONCRETE_SET, CONCRETE)

MAX_PULL_POINTS = 10
MAX_PULL_POINTS_PER_USER = 2  # of one camera's; room for a VMS and its restart
QUEUE_DEPTH = 100  # messages per pull point; also the most one PullMessages returns
MAX_LIFETIME = dt.timedelta(hours=1)  # longer termination times are shortened to this
_HUB_QUEUE = 256


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Item:
    """A message item: its name and type (a QName in the tt/xs prefixes) in the description."""

    name: str
    type: str


class Topic(enum.Enum):
    """The topics a camera can produce: concrete path, Source item and Data item."""

    MOTION_ALARM = (
        "tns1:VideoSource/MotionAlarm",
        Item("Source", "tt:ReferenceToken"),
        Item("State", "xs:boolean"),
    )
    CELL_MOTION = (
        "tns1:RuleEngine/CellMotionDetector/Motion",
        Item("VideoSourceConfigurationToken", "tt:ReferenceToken"),
        Item("IsMotion", "xs:boolean"),
    )
    DIGITAL_INPUT = (
        "tns1:Device/Trigger/DigitalInput",
        Item("InputToken", "tt:ReferenceToken"),
        Item("LogicalState", "xs:boolean"),
    )
    RELAY = (
        "tns1:Device/Trigger/Relay",
        Item("RelayToken", "tt:ReferenceToken"),
        Item("LogicalState", "tt:RelayLogicalState"),
    )

    def __init__(self, path: str, source: Item, data: Item) -> None:
        self.path = path
        self.source = source
        self.data = data

    @property
    def names(self) -> tuple[str, ...]:
        """The path's topic names without the namespace prefix."""
        return tuple(self.path.removeprefix(f"{TOPICS_PREFIX}:").split("/"))


_TOPICS_OF_KIND: dict[EventKind, tuple[Topic, ...]] = {
    EventKind.MOTION: (Topic.MOTION_ALARM, Topic.CELL_MOTION),
    EventKind.DIGITAL_INPUT: (Topic.DIGITAL_INPUT,),
    EventKind.RELAY: (Topic.RELAY,),
}
# Motion belongs to the one video source; inputs and relays are named by their own tokens.
_MOTION_SOURCES = {Topic.MOTION_ALARM: VIDEO_SOURCE, Topic.CELL_MOTION: VIDEO_SOURCE_CONFIG}


class PropertyOperation(enum.StrEnum):
    INITIALIZED = "Initialized"
    CHANGED = "Changed"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message of a property topic, as plain values."""

    topic: Topic
    source: str  # the value of the topic's Source item
    state: bool
    time: dt.datetime  # UTC, when the state was seen
    operation: PropertyOperation

    @property
    def data(self) -> str:
        """The Data item's value in the topic's type."""
        if self.topic is Topic.RELAY:
            return "active" if self.state else "inactive"
        return "true" if self.state else "false"


def camera_topics(driver: CameraDriver, events: CameraEvents) -> frozenset[Topic]:
    """The topics this camera can feed (what it reports events for, and its relays); motion
    where its event source reports it (the camera's CGI or its pictures)."""
    capabilities = driver.capabilities
    topics: set[Topic] = set()
    if events.motion:
        topics.update(_TOPICS_OF_KIND[EventKind.MOTION])
    if capabilities.input_events:
        topics.add(Topic.DIGITAL_INPUT)
    if capabilities.relay_outputs:
        topics.add(Topic.RELAY)
    return frozenset(topics)


_TOPIC_NAME = re.compile(r"(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


def matching_topics(expression: str, dialect: str, topics: Collection[Topic]) -> frozenset[Topic]:
    """The topics a ConcreteSet (or Concrete) topic expression selects, e.g.
    ``tns1:RuleEngine//.|tns1:Device/Trigger/DigitalInput``.

    Prefixes are not resolved against the request's namespaces (they do not reach the
    handlers): topic names are compared by local name, which is unambiguous for the ONVIF
    topics served here. Raises ValueError for another dialect or a malformed expression.
    """
    if dialect.strip() not in TOPIC_DIALECTS:
        raise ValueError(f"unsupported topic expression dialect {dialect.strip()!r}")
    selected: set[Topic] = set()
    for alternative in expression.split("|"):
        path = alternative.strip()
        subtree = path.endswith("//.")
        if subtree:
            path = path.removesuffix("//.")
        names = []
        for step in path.split("/"):
            match = _TOPIC_NAME.fullmatch(step.strip())
            if match is None:
                raise ValueError(f"malformed topic expression {expression.strip()!r}")
            names.append(match.group(1))
        wanted = tuple(names)
        selected.update(
            topic
            for topic in topics
            if topic.names == wanted or (subtree and topic.names[: len(wanted)] == wanted)
        )
    return frozenset(selected)


class PullPointGone(LookupError):
    """No pull point has this id (never had, unsubscribed or expired)."""


class PullPointsExhausted(Exception):
    """The camera already has its maximum number of pull points and subscriptions."""


class UserQuotaExhausted(PullPointsExhausted):
    """The user already holds its share of this kind (the camera's or the gateway's)."""


class PullPoint:
    """One subscription: the topics it wants, its termination time and its message queue;
    ``owner`` is the user who created it, ``kind`` whether a client pulls it or it is pushed."""

    def __init__(
        self,
        ident: str,
        owner: str,
        topics: frozenset[Topic],
        termination: dt.datetime,
        depth: int,
        *,
        kind: Holding = Holding.PULL_POINT,
    ) -> None:
        self.id = ident
        self.owner = owner
        self.kind = kind
        self.topics = topics
        self.termination = termination
        self.closed = False
        self._queue: collections.deque[Notification] = collections.deque()
        self._depth = depth
        self._arrived = asyncio.Event()
        self._pulls = 0

    def offer(self, notification: Notification) -> None:
        if notification.topic not in self.topics:
            return
        if len(self._queue) >= self._depth:
            self._queue.popleft()
        self._queue.append(notification)
        self._arrived.set()

    def close(self) -> None:
        self.closed = True
        self._arrived.set()

    async def pull(self, wait: float, limit: int) -> list[Notification]:
        """Waiting messages at once, else the first ones to arrive within ``wait`` seconds,
        at most ``limit``; none after the timeout, or when closed or superseded.

        A newer pull supersedes a waiting one (which then returns nothing), so a client that
        gave up on a request and asked again gets the messages, not the abandoned request.
        """
        self._pulls += 1
        pull = self._pulls
        self._arrived.set()  # wakes a pull this one supersedes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if self.closed or pull != self._pulls:
                return []
            if self._queue:
                return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
            if loop.time() >= deadline:
                return []
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._arrived.wait()


@dataclass(frozen=True, slots=True)
class _Change:
    kind: EventKind
    token: str
    active: bool
    time: dt.datetime
    operation: PropertyOperation


class EventHub:
    """One camera's properties and pull points; ``events`` is where its reports come from,
    ``quotas`` counts what each user holds across the gateway (without one, the hub keeps its
    own count)."""

    def __init__(
        self,
        driver: CameraDriver,
        name: str,
        *,
        events: CameraEvents,
        max_pull_points: int = MAX_PULL_POINTS,
        max_per_user: int = MAX_PULL_POINTS_PER_USER,
        quotas: UserQuotas | None = None,
        queue_depth: int = QUEUE_DEPTH,
        idle_grace: float = 10.0,
    ) -> None:
        self._driver = driver
        self._events = events
        self.max_pull_points = max_pull_points
        self.max_per_user = max_per_user
        self._quotas = quotas if quotas is not None else UserQuotas()
        self.queue_depth = queue_depth
        # Events are sparse: a quiet camera is not a stalled one.
        self._upstream: Fanout[_Change] = Fanout(
            self._camera_changes,
            name=f"{name} events",
            idle_grace=idle_grace,
            stall_timeout=math.inf,
        )
        self._state: dict[tuple[EventKind, str], tuple[bool, dt.datetime]] = {}
        self._pull_points: dict[str, PullPoint] = {}
        self._dispatch: asyncio.Task[None] | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def topics(self) -> frozenset[Topic]:
        return camera_topics(self._driver, self._events)

    def now(self) -> dt.datetime:
        return utcnow()

    def create(
        self,
        owner: str,
        topics: frozenset[Topic],
        termination: dt.datetime,
        *,
        kind: Holding = Holding.PULL_POINT,
    ) -> PullPoint:
        """A new pull point (or push subscription) of user ``owner``, primed with the known
        state. Raises ValueError for a termination time not in the future, PullPointsExhausted
        when the camera has no room, UserQuotaExhausted when the user has no room left."""
        self._expire()
        if self._closed or len(self._pull_points) >= self.max_pull_points:
            raise PullPointsExhausted()
        held = sum(1 for p in self._pull_points.values() if p.owner == owner and p.kind is kind)
        if held >= self.max_per_user:
            raise UserQuotaExhausted()
        bounded = self._bounded(termination)
        if not self._quotas.take(owner, kind):
            raise UserQuotaExhausted()
        ident = secrets.token_hex(8)
        pull_point = PullPoint(ident, owner, topics, bounded, self.queue_depth, kind=kind)
        self._pull_points[pull_point.id] = pull_point
        self.synchronize(pull_point)
        if self._dispatch is None:
            self._dispatch = asyncio.create_task(self._run(), name=f"{self._upstream.name}")
        self._schedule_sweep()
        return pull_point

    def get(self, ident: str) -> PullPoint:
        self._expire()
        try:
            return self._pull_points[ident]
        except KeyError:
            raise PullPointGone(ident) from None

    def renew(self, pull_point: PullPoint, termination: dt.datetime) -> None:
        pull_point.termination = self._bounded(termination)
        self._schedule_sweep()

    def keep_alive(self, pull_point: PullPoint, seconds: float) -> None:
        """Keep a pull point alive at least ``seconds`` from now (while a pull waits)."""
        until = self.now() + dt.timedelta(seconds=seconds)
        if until > pull_point.termination:
            pull_point.termination = until
            self._schedule_sweep()

    def remove(self, pull_point: PullPoint) -> None:
        pull_point.close()
        if self._pull_points.pop(pull_point.id, None) is not None:
            self._quotas.give_back(pull_point.owner, pull_point.kind)
        if not self._pull_points and self._dispatch is not None:
            self._dispatch.cancel()  # its fan-out subscription ends: the upstream is released
            self._dispatch = None
        self._schedule_sweep()

    def synchronize(self, pull_point: PullPoint) -> None:
        """Queue the current state of every known property as Initialized messages."""
        for (kind, token), (active, seen) in self._state.items():
            change = _Change(kind, token, active, seen, PropertyOperation.INITIALIZED)
            for notification in _notifications(change):
                pull_point.offer(notification)

    async def close(self) -> None:
        """End every pull point (waiting pulls return) and the upstream, for good."""
        self._closed = True
        dispatch = self._dispatch
        for pull_point in list(self._pull_points.values()):
            self.remove(pull_point)
        if dispatch is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await dispatch
        await self._upstream.close()

    # -- expiry ---------------------------------------------------------------------------

    def _bounded(self, termination: dt.datetime) -> dt.datetime:
        now = self.now()
        if termination <= now:
            raise ValueError("termination time is not in the future")
        return min(termination, now + MAX_LIFETIME)

    def _expire(self) -> None:
        now = self.now()
        for pull_point in [p for p in self._pull_points.values() if p.termination <= now]:
            self.remove(pull_point)

    def _schedule_sweep(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._pull_points:
            earliest = min(p.termination for p in self._pull_points.values())
            delay = max(0.0, (earliest - self.now()).total_seconds())
            self._sweep = asyncio.get_running_loop().call_later(delay, self._on_sweep)

    def _on_sweep(self) -> None:
        self._sweep = None
        self._expire()
        self._schedule_sweep()

    # -- the upstream ---------------------------------------------------------------------

    async def _run(self) -> None:
        async with self._upstream.subscribe(_HUB_QUEUE) as changes:
            async for change in changes:
                for notification in _notifications(change):
                    for pull_point in self._pull_points.values():
                        pull_point.offer(notification)

    async def _camera_changes(self) -> AsyncIterator[_Change]:
        """The upstream: the current state, then the camera's reports, as property changes.

        The state is learned here, not by the subscribers, so it stays current for as long as
        the upstream runs, with or without pull points.
        """
        try:
            for event in await self._current_state():
                if change := self._learn(event):
                    yield change
            if not (self._events.motion or self._driver.capabilities.input_events):
                await asyncio.Event().wait()  # the camera reports no changes: just keep the state
            events = self._events.open()
            try:
                async for event in events:
                    if change := self._learn(event):
                        yield change
            finally:
                if isinstance(events, AsyncGenerator):
                    await events.aclose()
        finally:
            self._state.clear()

    async def _current_state(self) -> list[CameraEvent]:
        driver = self._driver
        capabilities = driver.capabilities
        now = time.monotonic()
        # Legacy cameras cannot be asked whether they see motion now: idle until reported.
        events = [CameraEvent(EventKind.MOTION, False, now)] if self._events.motion else []
        with contextlib.suppress(UnsupportedOperation):
            if capabilities.input_events:
                events += _known(EventKind.DIGITAL_INPUT, await driver.digital_inputs(), now)
            if capabilities.relay_outputs:
                events += _known(EventKind.RELAY, await driver.relay_outputs(), now)
        return events

    def _learn(self, event: CameraEvent) -> _Change | None:
        key = (event.kind, event.source)
        known = self._state.get(key)
        if known is not None and known[0] == event.active:
            return None
        seen = self.now() - dt.timedelta(seconds=max(0.0, time.monotonic() - event.timestamp))
        self._state[key] = (event.active, seen)
        operation = PropertyOperation.INITIALIZED if known is None else PropertyOperation.CHANGED
        return _Change(event.kind, event.source, event.active, seen, operation)


class _PortState(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def active(self) -> bool | None: ...


def _known(kind: EventKind, ports: Iterable[_PortState], now: float) -> list[CameraEvent]:
    return [
        CameraEvent(kind, port.active, now, port.token) for port in ports if port.active is not None
    ]


def _notifications(change: _Change) -> list[Notification]:
    return [
        Notification(
            topic,
            _MOTION_SOURCES.get(topic, change.token),
            change.active,
            change.time,
            change.operation,
        )
        for topic in _TOPICS_OF_KIND[change.kind]
    ]
