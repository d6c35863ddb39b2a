"""The Events service end to end: emulated cameras behind the real gateway, subscribed to with
onvif-zeep-async pull points, events caused in the emulators (Home Assistant's own way of
subscribing is in test_home_assistant.py).

Every response the client receives is validated against the schemas (and the gateway the
fixture starts validates each one before sending it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    Device,
    OpenDevice,
    fault_codes,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from lxml import etree
from test_onvif_server import SOAP11, SOAP12, assert_schema_valid, envelope, post, username_token
from zeep.exceptions import Fault

from bridge.cameras.base import Dialect
from bridge.onvif.eventhub import (
    CONCRETE_SET,
    MAX_LIFETIME,
    MAX_PULL_POINTS,
    MAX_PULL_POINTS_PER_USER,
    TOPICS_NS,
    Topic,
)
from bridge.onvif.soap import Service

TEV = Service.EVENTS.namespace
WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSTOP = "http://docs.oasis-open.org/wsn/t-1"
TT = "http://www.onvif.org/ver10/schema"
PULL_POINT_NS = f"{TEV}/PullPointSubscription"  # where onvif-zeep-async keeps a pull point
ITEM_FILTER = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
EVENT_DIALECTS = [Dialect.IPCAMCGI, Dialect.OPENAPI, Dialect.FOSCAM, Dialect.VAPIX2]
ALL_TOPICS = {topic.path for topic in Topic}
# What each dialect's driver reports (Capabilities.motion_events / input_events / relays);
# hama's CGI has no motion detection: its motion is seen in its pictures.
MOTION_TOPICS = {Topic.MOTION_ALARM.path, Topic.CELL_MOTION.path}
TOPICS_OF = {dialect: ALL_TOPICS for dialect in EVENT_DIALECTS} | {Dialect.HAMA: MOTION_TOPICS}


class Message(NamedTuple):
    topic: str
    source: str  # "Name=Value" of its one Source item
    data: str  # "Name=Value" of its one Data item
    operation: str


def motion(active: bool, operation: str = "Changed") -> list[Message]:
    state = str(active).lower()
    return [
        Message(Topic.MOTION_ALARM.path, "Source=video_source", f"State={state}", operation),
        Message(
            Topic.CELL_MOTION.path,
            "VideoSourceConfigurationToken=video_source_config",
            f"IsMotion={state}",
            operation,
        ),
    ]


def digital_input(token: str, active: bool, operation: str = "Changed") -> Message:
    state = str(active).lower()
    return Message(
        Topic.DIGITAL_INPUT.path, f"InputToken={token}", f"LogicalState={state}", operation
    )


def relay(token: str, active: bool, operation: str = "Initialized") -> Message:
    state = "active" if active else "inactive"
    return Message(Topic.RELAY.path, f"RelayToken={token}", f"LogicalState={state}", operation)


def messages(response: Any) -> list[Message]:
    """A PullMessagesResponse's notifications, checked for their ONVIF shape."""
    found = []
    for notification in response.NotificationMessage:
        assert notification.Topic.Dialect == CONCRETE_SET
        assert notification.ProducerReference.Address._value_1.endswith(Service.EVENTS.path)
        payload = notification.Message._value_1
        assert payload.UtcTime.tzinfo is not None
        (source,) = payload.Source.SimpleItem
        (data,) = payload.Data.SimpleItem
        found.append(
            Message(
                notification.Topic._value_1,
                f"{source.Name}={source.Value}",
                f"{data.Name}={data.Value}",
                payload.PropertyOperation,
            )
        )
    return found


async def pull(pull_point: Any, seconds: float = 2.0, limit: int = 100) -> list[Message]:
    request = {"Timeout": dt.timedelta(seconds=seconds), "MessageLimit": limit}
    return messages(await pull_point.PullMessages(request))


async def pull_until(pull_point: Any, *wanted: Message, within: float = 10.0) -> list[Message]:
    """Pull until every wanted message has arrived; everything pulled on the way."""
    seen: list[Message] = []
    deadline = time.monotonic() + within
    while not set(wanted) <= set(seen):
        assert time.monotonic() < deadline, f"still missing {set(wanted) - set(seen)}"
        seen += await pull(pull_point)
    return seen


@dataclass
class Subscription:
    created: Any  # the CreatePullPointSubscriptionResponse
    pull_point: Any  # the client's PullPointSubscription service (PullMessages ...)
    manager: Any  # its SubscriptionManager service (Renew, Unsubscribe)

    @property
    def address(self) -> str:
        return str(self.created.SubscriptionReference.Address._value_1)


async def subscribe(
    device: Device, account: tuple[str, str] = (GATEWAY_USER, GATEWAY_PASSWORD), **request: Any
) -> Subscription:
    """A new pull point of ``account`` (user, password), with its own client (one client
    holds one pull point)."""
    camera = device.client(*account)
    created = await (await device.service(Service.EVENTS, camera)).CreatePullPointSubscription(
        request
    )
    camera.xaddrs[PULL_POINT_NS] = created.SubscriptionReference.Address._value_1
    pull_point = await camera.create_pullpoint_service()
    manager = await camera.create_subscription_service("PullPointSubscription")
    return Subscription(created, pull_point, manager)


async def viewers(device: Device, count: int) -> list[tuple[str, str]]:
    """``count`` new User-level accounts (user, password), created over ONVIF by the
    gateway's administrator."""
    accounts = [(f"viewer{i}", f"viewer-pw-{i}") for i in range(count)]
    devicemgmt = await device.client().create_devicemgmt_service()
    await devicemgmt.CreateUsers(
        {"User": [{"Username": u, "Password": p, "UserLevel": "User"} for u, p in accounts]}
    )
    return accounts


def advertised_topics(properties: Any) -> set[str]:
    """The topics a GetEventPropertiesResponse lists (``tns1:`` paths), each checked to be a
    property with a boolean or relay state."""
    advertised = set()
    topic_set = properties.TopicSet  # the client reads an empty one as None
    for root in topic_set._value_1 if topic_set is not None else []:
        for node in root.iter():
            if node.get(f"{{{WSTOP}}}topic") == "true":
                chain = [node]
                while chain[-1] is not root:
                    chain.append(chain[-1].getparent())
                path = "/".join(etree.QName(step).localname for step in reversed(chain))
                advertised.add(f"tns1:{path}")
                description = node.find(f"{{{TT}}}MessageDescription")
                assert description is not None
                assert description.get("IsProperty") == "true"
                data = description.find(f"{{{TT}}}Data/{{{TT}}}SimpleItemDescription")
                assert data is not None
                assert data.get("Type") in ("xs:boolean", "tt:RelayLogicalState")
    return advertised


def seconds_between(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds()


def utc_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- what each camera reports ---------------------------------------------------------------


@pytest.mark.parametrize("dialect", EVENT_DIALECTS)
async def test_digital_input_changes_arrive(open_device: OpenDevice, dialect: Dialect) -> None:
    device = await open_device(dialect)
    subscription = await subscribe(device, InitialTerminationTime="PT60S")
    await pull_until(subscription.pull_point, digital_input("1", False, "Initialized"))
    await device.cause("input?port=1&active=1")
    seen = await pull_until(subscription.pull_point, digital_input("1", True))
    assert not [m for m in seen if m.topic == Topic.MOTION_ALARM.path and m.operation == "Changed"]
    await device.cause("input?port=1&active=0")
    await pull_until(subscription.pull_point, digital_input("1", False))


@pytest.mark.parametrize("dialect", list(Dialect))
async def test_event_properties_list_what_the_camera_reports(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    events = await device.service(Service.EVENTS)
    properties = await events.GetEventProperties()
    assert properties.FixedTopicSet is True
    assert set(properties.TopicExpressionDialect) >= {CONCRETE_SET}
    assert properties.TopicNamespaceLocation
    assert advertised_topics(properties) == TOPICS_OF[dialect]
    capabilities = await events.GetServiceCapabilities()
    assert capabilities.MaxPullPoints == MAX_PULL_POINTS
    assert capabilities.MaxNotificationProducers > 0  # WS-BaseNotification Subscribe is served
    assert capabilities.WSSubscriptionPolicySupport is False


# -- pulling --------------------------------------------------------------------------------------


async def test_long_poll_returns_on_an_event_or_after_its_timeout(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    subscription = await subscribe(device)
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    await asyncio.sleep(0.5)  # the camera's own first report (the same states) comes and goes
    await pull(subscription.pull_point, seconds=0)

    started = time.monotonic()
    assert await pull(subscription.pull_point, seconds=1.5) == []
    assert 1.4 <= time.monotonic() - started < 3.0

    started = time.monotonic()
    waiting = asyncio.create_task(pull(subscription.pull_point, seconds=30))
    await asyncio.sleep(0.3)
    await device.cause("input?port=1&active=1")
    assert await waiting == [digital_input("1", True)]
    assert time.monotonic() - started < 5.0


async def test_message_limit_is_honoured_and_the_rest_kept(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    subscription = await subscribe(device)
    initial = [*motion(False, "Initialized"), digital_input("1", False, "Initialized")]
    initial += [relay("1", False), relay("2", False)]
    await asyncio.sleep(1.0)  # the initial state is queued by now
    first = await pull(subscription.pull_point, limit=2)
    second = await pull(subscription.pull_point, limit=2)
    third = await pull(subscription.pull_point, limit=2)
    assert (len(first), len(second), len(third)) == (2, 2, 1)
    assert sorted(first + second + third) == sorted(initial)

    await device.cause("motion?active=1")
    one = await pull(subscription.pull_point, seconds=10, limit=1)
    rest = await pull(subscription.pull_point, seconds=10, limit=10)
    assert len(one) == 1
    assert sorted(one + rest) == sorted(motion(True))


async def test_synchronization_point_repeats_the_state_as_initialized(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.VAPIX2)
    subscription = await subscribe(device)
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    await device.cause("motion?active=1&level=90")
    await pull_until(subscription.pull_point, *motion(True))
    await subscription.pull_point.SetSynchronizationPoint()
    state = await pull_until(subscription.pull_point, *motion(True, "Initialized"))
    assert digital_input("1", False, "Initialized") in state
    assert digital_input("2", False, "Initialized") in state


async def test_topic_filter_selects_topics(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    expression = etree.Element(
        f"{{{WSNT}}}TopicExpression", Dialect=CONCRETE_SET, nsmap={"tns1": TOPICS_NS}
    )
    expression.text = "tns1:Device/Trigger/DigitalInput|tns1:RuleEngine//."
    subscription = await subscribe(device, Filter={"_value_1": [expression]})
    await pull_until(subscription.pull_point, digital_input("1", False, "Initialized"))
    await device.cause("motion?active=1")
    await device.cause("input?port=1&active=1")
    cell_motion = motion(True)[1]
    seen = await pull_until(subscription.pull_point, cell_motion, digital_input("1", True))
    assert {m.topic for m in seen} == {Topic.CELL_MOTION.path, Topic.DIGITAL_INPUT.path}


@pytest.mark.parametrize(
    ("element", "dialect", "text"),
    [
        ("TopicExpression", "http://example.com/unknown-dialect", "tns1:Device//."),
        ("TopicExpression", CONCRETE_SET, "tns1:Device/Trigger//.|no such/"),
        ("TopicExpression", CONCRETE_SET, "tns1:VideoAnalytics//."),  # no such topic here
        ("MessageContent", ITEM_FILTER, 'boolean(//tt:SimpleItem[@Name="InputToken"])'),
    ],
)
async def test_filters_it_cannot_apply_are_refused(
    open_device: OpenDevice, element: str, dialect: str, text: str
) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    part = etree.Element(f"{{{WSNT}}}{element}", Dialect=dialect, nsmap={"tns1": TOPICS_NS})
    part.text = text
    with pytest.raises(Fault) as caught:
        await subscribe(device, Filter={"_value_1": [part]})
    assert fault_codes(caught.value) == ["InvalidArgVal"]


# -- lifetime -----------------------------------------------------------------------------------


async def test_termination_times_relative_absolute_renewed(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.FOSCAM)
    subscription = await subscribe(device, InitialTerminationTime="PT10S")
    created = subscription.created
    assert seconds_between(created.CurrentTime, created.TerminationTime) == pytest.approx(10, abs=1)
    assert subscription.address.startswith(
        f"http://127.0.0.1:{device.port}{Service.EVENTS.path}/subscription/"
    )

    renewed = await subscription.manager.Renew("PT120S")
    assert seconds_between(renewed.CurrentTime, renewed.TerminationTime) == pytest.approx(
        120, abs=1
    )
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=5)
    renewed = await subscription.manager.Renew(utc_text(until))
    assert renewed.TerminationTime == until
    renewed = await subscription.manager.Renew("P1D")  # more than the gateway keeps one
    assert seconds_between(renewed.CurrentTime, renewed.TerminationTime) == pytest.approx(
        MAX_LIFETIME.total_seconds(), abs=1
    )
    with pytest.raises(Fault) as caught:
        await subscription.manager.Renew(utc_text(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    assert fault_codes(caught.value) == ["InvalidArgVal"]

    # Pulling keeps a pull point alive at least its Timeout past the response.
    await subscription.manager.Renew("PT1S")
    response = await subscription.pull_point.PullMessages(
        {"Timeout": dt.timedelta(seconds=30), "MessageLimit": 1}
    )
    assert seconds_between(response.CurrentTime, response.TerminationTime) >= 29


async def test_creation_refuses_a_termination_time_in_the_past(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.FOSCAM)
    events = await device.service(Service.EVENTS)
    past = utc_text(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    with pytest.raises(Fault) as caught:
        await events.CreatePullPointSubscription({"InitialTerminationTime": past})
    assert fault_codes(caught.value) == ["InvalidArgVal"]
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=30)
    created = await events.CreatePullPointSubscription({"InitialTerminationTime": utc_text(until)})
    assert created.TerminationTime == until


async def test_unsubscribed_pull_point_is_gone(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.OPENAPI)
    subscription = await subscribe(device)
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    await subscription.manager.Unsubscribe()
    calls = (
        lambda: pull(subscription.pull_point),
        lambda: subscription.manager.Renew("PT60S"),
        subscription.pull_point.SetSynchronizationPoint,
        subscription.manager.Unsubscribe,
    )
    for call in calls:
        with pytest.raises(Fault) as caught:
            await call()
        assert fault_codes(caught.value) == ["InvalidArgVal"]


async def test_unsubscribe_ends_a_waiting_pull(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.OPENAPI)
    subscription = await subscribe(device)
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    waiting = asyncio.create_task(pull(subscription.pull_point, seconds=60))
    await asyncio.sleep(0.3)
    other = await subscribe(device)  # its own client: the waiting one's is busy
    await other.manager.Unsubscribe()
    assert not waiting.done()
    await subscription.manager.Unsubscribe()
    with pytest.raises(Fault):
        await asyncio.wait_for(waiting, 5)


async def test_a_newer_pull_supersedes_a_waiting_one(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.VAPIX2)
    subscription = await subscribe(device)
    await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    abandoned = asyncio.create_task(pull(subscription.pull_point, seconds=60))
    await asyncio.sleep(0.3)
    retry = device.client()  # a client that gave up on its request and asks again
    retry.xaddrs[PULL_POINT_NS] = subscription.address
    waiting = asyncio.create_task(pull(await retry.create_pullpoint_service(), seconds=30))
    assert await asyncio.wait_for(abandoned, 5) == []
    await device.cause("input?port=2&active=1")
    assert await asyncio.wait_for(waiting, 10) == [digital_input("2", True)]


async def test_pull_points_are_bounded_and_expired_ones_removed(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.HAMA)
    *holders, latecomer = [
        (GATEWAY_USER, GATEWAY_PASSWORD),
        *await viewers(device, MAX_PULL_POINTS // MAX_PULL_POINTS_PER_USER),
    ]
    created = []
    for account in holders:  # each user takes its share, until the camera has none left
        events = await device.service(Service.EVENTS, device.client(*account))
        created += [
            await events.CreatePullPointSubscription({"InitialTerminationTime": "PT1S"})
            for _ in range(MAX_PULL_POINTS_PER_USER)
        ]
    assert len(created) == MAX_PULL_POINTS
    events = await device.service(Service.EVENTS, device.client(*latecomer))
    with pytest.raises(Fault) as caught:
        await events.CreatePullPointSubscription({"InitialTerminationTime": "PT1S"})
    assert fault_codes(caught.value) == ["Action"]
    assert "All 10 pull points are in use" in str(caught.value.message)

    await asyncio.sleep(1.3)
    fresh = await subscribe(device, InitialTerminationTime="PT60S")
    assert fresh.address not in {c.SubscriptionReference.Address._value_1 for c in created}
    expired = device.client()
    expired.xaddrs[PULL_POINT_NS] = created[0].SubscriptionReference.Address._value_1
    with pytest.raises(Fault) as caught:
        await pull(await expired.create_pullpoint_service())
    assert fault_codes(caught.value) == ["InvalidArgVal"]


async def test_one_camera_upstream_for_all_pull_points_released_after_the_last(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.FOSCAM, stream_idle_seconds=0.3)
    status = "/get_status.cgi"  # what the foscam driver polls, once a second
    (viewer,) = await viewers(device, 1)
    subscriptions = [await subscribe(device, account) for account in (viewer, viewer)]
    subscriptions.append(await subscribe(device))
    for subscription in subscriptions:
        await pull_until(subscription.pull_point, *motion(False, "Initialized"))
    await device.clear_requests()
    await asyncio.sleep(2.5)
    assert 1 <= len(await device.requests(status)) <= 4  # one poller, not three

    for subscription in subscriptions:
        await subscription.manager.Unsubscribe()
    await asyncio.sleep(1.0)  # the idle grace, and a poll that was under way
    await device.clear_requests()
    await asyncio.sleep(2.0)
    assert len(await device.requests(status)) == 0

    again = await subscribe(device)
    await pull_until(again.pull_point, *motion(False, "Initialized"))


# -- the XML itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("soap", [SOAP12, SOAP11])
async def test_topics_are_qnames_in_scope_in_either_soap_version(
    open_device: OpenDevice, soap: str
) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    content_type = "application/soap+xml" if soap == SOAP12 else "text/xml"
    base = f"http://127.0.0.1:{device.port}"

    async def call(path: str, body: str) -> etree._Element:
        header = username_token(GATEWAY_PASSWORD, user=GATEWAY_USER)
        request = envelope(body, header, soap=soap)
        status, _, payload = await post(base + path, request, content_type=content_type)
        assert status == 200, payload
        (element,) = etree.fromstring(payload).find(f"{{{soap}}}Body")
        assert_schema_valid(element)
        return element

    created = await call(Service.EVENTS.path, f'<CreatePullPointSubscription xmlns="{TEV}"/>')
    address = created.findtext(
        f"{{{TEV}}}SubscriptionReference/{{http://www.w3.org/2005/08/addressing}}Address"
    )
    assert address is not None
    await asyncio.sleep(0.5)
    pulled = await call(
        address.removeprefix(base),
        f'<PullMessages xmlns="{TEV}"><Timeout>PT5S</Timeout>'
        "<MessageLimit>10</MessageLimit></PullMessages>",
    )
    topics = pulled.findall(f"{{{WSNT}}}NotificationMessage/{{{WSNT}}}Topic")
    assert topics
    for topic in topics:
        prefix, _, name = (topic.text or "").partition(":")
        assert topic.nsmap[prefix] == TOPICS_NS
        assert f"{prefix}:{name}" in ALL_TOPICS
