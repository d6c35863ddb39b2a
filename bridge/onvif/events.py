"""ONVIF Events service (ver10): the camera's motion and I/O as property events, pulled or pushed.

The gateway offers Core's Real-time Pull-Point Notification Interface: CreatePullPointSubscription
hands out a pull point with its own address under the service path
(``/onvif/events_service/subscription/<id>``), where the client pulls (a long poll), renews,
asks for a synchronization point and unsubscribes. It also offers WS-BaseNotification's Basic
Notification Interface: Subscribe hands out a subscription manager at an address of the same
kind (Renew, Unsubscribe, SetSynchronizationPoint), and the messages are POSTed to the
subscriber's ConsumerReference as Notify messages (:mod:`bridge.onvif.notify`). Pull points,
subscriptions, their queues and the camera's state live in
:class:`~bridge.onvif.eventhub.EventHub`; this module translates requests and builds the
``xs:any`` contents (the topic set, each ``tt:Message``) as elements, the only values zeep puts
in an untyped slot, and the Notify envelopes.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import logging
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from lxml import etree

from bridge.errors import ActionFailed, ActionNotSupported, InvalidArgVal
from bridge.onvif.context import DeviceContext
from bridge.onvif.eventhub import (
    MAX_PULL_POINTS,
    TOPIC_DIALECTS,
    TOPICS_NS,
    TOPICS_PREFIX,
    EventHub,
    Notification,
    PullPoint,
    PullPointGone,
    PullPointsExhausted,
    Topic,
    UserQuotaExhausted,
    matching_topics,
)
from bridge.onvif.notify import NOTIFY_ACTION, Notifier, Push, consumer_address, origin
from bridge.onvif.schemas import load_wsdl
from bridge.onvif.soap import (
    SOAP12_NS,
    Handler,
    OnvifRequest,
    Operations,
    Service,
    declare_prefix,
)
from bridge.onvif.users import Holding, UserAccounts

log = logging.getLogger(__name__)

TT_NS = "http://www.onvif.org/ver10/schema"
XS_NS = "http://www.w3.org/2001/XMLSchema"
WSA_NS = "http://www.w3.org/2005/08/addressing"
WSTOP_NS = "http://docs.oasis-open.org/wsn/t-1"
TOPIC_NAMESPACE_LOCATION = "http://www.onvif.org/onvif/ver10/topics/topicns.xml"
MESSAGE_SCHEMA_LOCATION = "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
_SUBSCRIPTIONS = "/subscription/"  # pull point addresses: the service's, this, the id
SUBSCRIPTION_PATH = Service.EVENTS.path + _SUBSCRIPTIONS

DEFAULT_LIFETIME = dt.timedelta(minutes=1)  # when a subscription request names none
MAX_PULL_TIMEOUT = dt.timedelta(minutes=5)  # Core asks for at least one minute

# A consumer's reference parameters travel back as header blocks of every Notify: few and small.
MAX_REFERENCE_PARAMETERS = 8
MAX_REFERENCE_PARAMETER_BYTES = 4096

_DURATION = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


def service_capabilities(device: DeviceContext) -> Mapping[str, Any]:
    """Pull points and WS-BaseNotification Subscribe (a non-zero MaxNotificationProducers says
    so); no subscription policies, pausing or storage."""
    return {
        "WSSubscriptionPolicySupport": False,
        "WSPausableSubscriptionManagerInterfaceSupport": False,
        "MaxNotificationProducers": MAX_PULL_POINTS,
        "MaxPullPoints": MAX_PULL_POINTS,
        "PersistentNotificationStorage": False,
    }


# -- request values -----------------------------------------------------------------------------


def parse_duration(text: str) -> dt.timedelta:
    """A non-negative xs:duration; a year counts 365 days, a month 30 (for lifetimes, close
    enough). Raises ValueError."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groups()) or text.strip().endswith("T"):
        raise ValueError(f"not a duration: {text[:40]!r}")
    years, months, days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return dt.timedelta(
        days=365 * years + 30 * months + days, hours=hours, minutes=minutes, seconds=seconds
    )


def termination_time(value: object, now: dt.datetime) -> dt.datetime:
    """A wsnt:AbsoluteOrRelativeTimeType value: a duration from now, or a dateTime (UTC
    unless it says otherwise); absent or nil, the default lifetime."""
    if value is None:
        return now + DEFAULT_LIFETIME
    text = str(value).strip()
    try:
        if text.startswith("P"):
            return now + parse_duration(text)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgVal(f"Not a duration or a dateTime: {text[:40]!r}") from None
    return when.astimezone(dt.UTC) if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def filtered_topics(
    filter_: Mapping[str, Any] | None, topics: frozenset[Topic]
) -> frozenset[Topic]:
    """The topics a subscription Filter selects; each part of it must hold (WS-BaseNotification).

    Only topic expressions are understood; a message content or producer properties filter
    is refused rather than ignored, so a client never gets messages it filtered out.
    """
    parts = (filter_ or {}).get("_value_1") or []
    selected = topics
    for part in parts:
        dialect = part.get("Dialect") if isinstance(part, Mapping) else None
        expression = part.get("_value_1") if isinstance(part, Mapping) else None
        if not isinstance(dialect, str) or dialect.strip() not in TOPIC_DIALECTS:
            raise InvalidArgVal(
                f"Unsupported filter {dialect!r}; topic expressions in {', '.join(TOPIC_DIALECTS)}"
            )
        try:
            selected &= matching_topics(str(expression or ""), dialect, topics)
        except ValueError as exc:
            raise InvalidArgVal(f"Invalid topic expression: {exc}") from None
    if parts and not selected:
        raise InvalidArgVal("No topic of this device matches the filter")
    return selected


def consumer_reference(
    reference: Mapping[str, Any] | None,
) -> tuple[str, tuple[etree._Element, ...]]:
    """A Subscribe's ConsumerReference: the checked address, and its reference parameters
    (copies, to be echoed as header blocks of each Notify, as WS-Addressing asks)."""
    address = (reference or {}).get("Address")
    if isinstance(address, Mapping):
        address = address.get("_value_1")
    try:
        checked = consumer_address(address if isinstance(address, str) else "")
    except ValueError as exc:
        raise InvalidArgVal(f"ConsumerReference refused: {exc}") from None
    parameters = ((reference or {}).get("ReferenceParameters") or {}).get("_value_1") or []
    elements = tuple(copy.deepcopy(p) for p in parameters if isinstance(p, etree._Element))
    size = sum(len(etree.tostring(element)) for element in elements)
    if len(elements) > MAX_REFERENCE_PARAMETERS or size > MAX_REFERENCE_PARAMETER_BYTES:
        raise InvalidArgVal(
            f"At most {MAX_REFERENCE_PARAMETERS} reference parameters of"
            f" {MAX_REFERENCE_PARAMETER_BYTES} bytes together"
        )
    return checked, elements


# -- response contents --------------------------------------------------------------------------


def _tt(name: str) -> str:
    return f"{{{TT_NS}}}{name}"


def utc_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def topic_set(topics: Collection[Topic]) -> list[etree._Element]:
    """The TopicSet's children: one tree per root topic, each topic marked and described.

    Child topics are unqualified (Core's example); the description's types are QNames, so
    their prefixes are declared on each root.
    """
    roots: dict[str, etree._Element] = {}
    for topic in Topic:
        if topic not in topics:
            continue
        root_name, *path = topic.names
        node = roots.get(root_name)
        if node is None:
            nsmap = {TOPICS_PREFIX: TOPICS_NS, "tt": TT_NS, "xs": XS_NS, "wstop": WSTOP_NS}
            node = roots[root_name] = etree.Element(f"{{{TOPICS_NS}}}{root_name}", nsmap=nsmap)
        for name in path:
            child = node.find(name)
            node = child if child is not None else etree.SubElement(node, name)
        node.set(f"{{{WSTOP_NS}}}topic", "true")
        description = etree.SubElement(node, _tt("MessageDescription"), IsProperty="true")
        for group, item in (("Source", topic.source), ("Data", topic.data)):
            items = etree.SubElement(description, _tt(group))
            etree.SubElement(items, _tt("SimpleItemDescription"), Name=item.name, Type=item.type)
    return list(roots.values())


def message_element(notification: Notification) -> etree._Element:
    """The ``tt:Message`` of a notification."""
    message = etree.Element(
        _tt("Message"),
        nsmap={"tt": TT_NS},
        UtcTime=utc_text(notification.time),
        PropertyOperation=str(notification.operation),
    )
    topic = notification.topic
    for group, item, value in (
        ("Source", topic.source, notification.source),
        ("Data", topic.data, notification.data),
    ):
        items = etree.SubElement(message, _tt(group))
        etree.SubElement(items, _tt("SimpleItem"), Name=item.name, Value=value)
    return message


def notification_messages(
    notifications: Sequence[Notification], producer: str, subscription: str | None = None
) -> list[dict[str, Any]]:
    """The wsnt:NotificationMessage values of a PullMessages response or a Notify (which also
    names the subscription)."""
    reference = {"SubscriptionReference": {"Address": subscription}} if subscription else {}
    return [
        {
            **reference,
            "Topic": {"_value_1": n.topic.path, "Dialect": TOPIC_DIALECTS[0]},
            "ProducerReference": {"Address": producer},
            "Message": {"_value_1": message_element(n)},
        }
        for n in notifications
    ]


@functools.cache
def _notify_operation() -> Any:
    """The consumer's Notify operation of the Events WSDL: its input message is what is sent."""
    bindings = load_wsdl(Service.EVENTS.wsdl).bindings
    binding = bindings[f"{{{Service.EVENTS.namespace}}}NotificationConsumerBinding"]
    return binding.get("Notify")  # type: ignore[no-untyped-call]


def notify_envelope(
    notifications: Sequence[Notification],
    *,
    consumer: str,
    subscription: str,
    producer: str,
    reference_parameters: Sequence[etree._Element] = (),
) -> bytes:
    """A SOAP 1.2 Notify to ``consumer``, with the WS-Addressing headers Core asks for (Action,
    To, a MessageID, the consumer's reference parameters marked as such)."""
    message = notification_messages(notifications, producer, subscription)
    envelope = _notify_operation().input.serialize(NotificationMessage=message).content
    header = etree.Element(f"{{{SOAP12_NS}}}Header")
    envelope.insert(0, header)
    for name, value in (
        ("Action", NOTIFY_ACTION),
        ("MessageID", f"urn:uuid:{uuid.uuid4()}"),
        ("To", consumer),
    ):
        etree.SubElement(header, f"{{{WSA_NS}}}{name}", nsmap={"wsa": WSA_NS}).text = value
    for parameter in reference_parameters:
        block = copy.deepcopy(parameter)
        block.set(f"{{{WSA_NS}}}IsReferenceParameter", "true")
        header.append(block)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


# -- the service --------------------------------------------------------------------------------


class _EventService:
    def __init__(self, device: DeviceContext, hub: EventHub, notifier: Notifier) -> None:
        self.device = device
        self.hub = hub
        self.notifier = notifier

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetEventProperties": self.get_event_properties,
            "CreatePullPointSubscription": self.create_pull_point_subscription,
            "Subscribe": self.subscribe,
            "PullMessages": self.pull_messages,
            "Renew": self.renew,
            "Unsubscribe": self.unsubscribe,
            "SetSynchronizationPoint": self.set_synchronization_point,
        }

    async def get_service_capabilities(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {"Capabilities": service_capabilities(self.device)}

    async def get_event_properties(self, request: OnvifRequest) -> Mapping[str, Any]:
        return {
            "TopicNamespaceLocation": [TOPIC_NAMESPACE_LOCATION],
            "FixedTopicSet": True,
            "TopicSet": {"_value_1": topic_set(self.hub.topics)},
            "TopicExpressionDialect": list(TOPIC_DIALECTS),
            "MessageContentFilterDialect": [""],  # Core: none supported is one empty URI
            "MessageContentSchemaLocation": [MESSAGE_SCHEMA_LOCATION],
        }

    async def create_pull_point_subscription(self, request: OnvifRequest) -> Mapping[str, Any]:
        return self._create(request, Holding.PULL_POINT)[1]

    async def subscribe(self, request: OnvifRequest) -> Mapping[str, Any]:
        """WS-BaseNotification Subscribe: a pull point that the gateway drains into Notify
        messages to the consumer."""
        params = request.params
        consumer, reference_parameters = consumer_reference(params.get("ConsumerReference"))
        if (params.get("SubscriptionPolicy") or {}).get("_value_1"):
            # wsnt:UseRaw and the like change what the consumer receives: refused, not ignored.
            raise InvalidArgVal("Subscription policies are not supported")
        subscription, response = self._create(request, Holding.SUBSCRIPTION)
        render = functools.partial(
            notify_envelope,
            consumer=consumer,
            subscription=response["SubscriptionReference"]["Address"],
            producer=self.device.xaddr(request, Service.EVENTS),
            reference_parameters=reference_parameters,
        )
        self.notifier.start(Push(subscription, consumer, render, self.hub.remove))
        log.debug(
            "%s: %s subscribed %s to events", self.device.camera, request.user, origin(consumer)
        )
        return response

    def _create(self, request: OnvifRequest, kind: Holding) -> tuple[PullPoint, dict[str, Any]]:
        """A new pull point or subscription as the request asks, and the response naming it."""
        params = request.params
        topics = filtered_topics(params.get("Filter"), self.hub.topics)
        now = self.hub.now()
        termination = termination_time(params.get("InitialTerminationTime"), now)
        try:
            pull_point = self.hub.create(request.user or "", topics, termination, kind=kind)
        except ValueError:
            # Core: a refused InitialTerminationTime comes with one that would be accepted.
            raise InvalidArgVal(
                f"InitialTerminationTime is not in the future; {utc_text(now + DEFAULT_LIFETIME)}"
                " would be accepted"
            ) from None
        except UserQuotaExhausted:
            raise ActionFailed(f"This user holds all the {kind}s it may; unsubscribe one") from None
        except PullPointsExhausted:
            raise ActionFailed(
                f"All {self.hub.max_pull_points} pull points are in use; unsubscribe one"
            ) from None
        address = self.device.xaddr(request, Service.EVENTS) + _SUBSCRIPTIONS + pull_point.id
        response = {
            "SubscriptionReference": {"Address": address},
            "CurrentTime": now,
            "TerminationTime": pull_point.termination,
        }
        return pull_point, response

    async def pull_messages(self, request: OnvifRequest) -> Mapping[str, Any]:
        pull_point = self._pull_point(request)
        if pull_point.kind is not Holding.PULL_POINT:
            # Its messages go to its consumer; a pull would race the sender for them.
            raise ActionNotSupported("This subscription delivers its messages by Notify")
        timeout, limit = request.params["Timeout"], request.params["MessageLimit"]
        if not isinstance(timeout, dt.timedelta) or not dt.timedelta(0) <= timeout:
            raise InvalidArgVal("Timeout must be a non-negative duration")
        if timeout > MAX_PULL_TIMEOUT:
            raise InvalidArgVal(
                f"Timeout exceeds MaxTimeout PT{MAX_PULL_TIMEOUT.total_seconds():g}S"
            )
        if limit < 1:
            raise InvalidArgVal("MessageLimit must be at least 1")
        seconds = timeout.total_seconds()
        # Core: pulling keeps a pull point alive for at least the Timeout after each response.
        self.hub.keep_alive(pull_point, seconds)
        notifications = await pull_point.pull(seconds, min(limit, self.hub.queue_depth))
        if pull_point.closed:
            raise _gone()
        self.hub.keep_alive(pull_point, seconds)
        producer = self.device.xaddr(request, Service.EVENTS)
        return {
            "CurrentTime": self.hub.now(),
            "TerminationTime": pull_point.termination,
            "NotificationMessage": notification_messages(notifications, producer),
        }

    async def renew(self, request: OnvifRequest) -> Mapping[str, Any]:
        pull_point = self._pull_point(request)
        now = self.hub.now()
        try:
            self.hub.renew(pull_point, termination_time(request.params["TerminationTime"], now))
        except ValueError:
            raise InvalidArgVal("TerminationTime is not in the future") from None
        return {"TerminationTime": pull_point.termination, "CurrentTime": now}

    async def unsubscribe(self, request: OnvifRequest) -> None:
        pull_point = self._pull_point(request)
        self.hub.remove(pull_point)
        await self.notifier.stop(pull_point.id)  # a push subscription's Notify under way too

    async def set_synchronization_point(self, request: OnvifRequest) -> None:
        self.hub.synchronize(self._pull_point(request))

    def _pull_point(self, request: OnvifRequest) -> PullPoint:
        """The pull point a request's address names, if it is the requesting user's: another
        user who learned the address (it travels in clear) can neither drain nor end it."""
        ident = request.path.removeprefix(SUBSCRIPTION_PATH)
        try:
            if ident == request.path:
                raise PullPointGone(ident)
            pull_point = self.hub.get(ident)
        except PullPointGone:
            raise _gone() from None
        if pull_point.owner != request.user:
            raise _gone()
        return pull_point


def _gone() -> InvalidArgVal:
    return InvalidArgVal("The subscription does not exist or has expired")


def register(operations: Operations, device: DeviceContext) -> None:
    """Add this service's handlers for one device, and its event hub to the device."""
    declare_prefix(Service.EVENTS, TOPICS_PREFIX, TOPICS_NS)
    # The camera's event upstream lingers after its last pull point as its video does.
    hub = EventHub(
        device.driver,
        device.camera,
        events=device.events,
        quotas=UserAccounts.of(device.users).quotas,
        idle_grace=device.media.frames.idle_grace,
    )
    notifier = Notifier(device.camera, max_connections=hub.max_pull_points)
    device.closers += [hub.close, notifier.close]  # subscriptions end, then their senders
    for name, handler in _EventService(device, hub, notifier).handlers().items():
        operations.add(Service.EVENTS, name, handler)
