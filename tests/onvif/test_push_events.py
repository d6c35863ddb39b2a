"""WS-BaseNotification push events end to end: onvif-zeep-async subscribes (as Home Assistant
does, and with its notification service as NVRs do) to webhooks this test runs on loopback, the
emulators play the outside world, and every Notify the webhooks receive is checked against the
schemas and read back with the client's own parser (what Home Assistant does with a webhook
body). Subscription managers are driven with the client: Renew, SetSynchronizationPoint,
Unsubscribe. Consumers that fail are played by the webhooks too (HTTP 500, no answer)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, Serve
from gateway_devices import (
    Device,
    OpenDevice,
    fault_codes,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from lxml import etree
from test_events import (
    TOPICS_NS,
    WSNT,
    Message,
    digital_input,
    messages,
    motion,
    utc_text,
    viewers,
)
from test_onvif_server import SOAP11, SOAP12, assert_schema_valid, envelope, post, username_token
from zeep.exceptions import Fault

from bridge.cameras.base import Dialect
from bridge.onvif import notify
from bridge.onvif.eventhub import (
    CONCRETE_SET,
    MAX_PULL_POINTS,
    MAX_PULL_POINTS_PER_USER,
    Notification,
    PropertyOperation,
    Topic,
)
from bridge.onvif.events import notify_envelope
from bridge.onvif.notify import NOTIFY_ACTION, Delivery, consumer_address, origin
from bridge.onvif.soap import Service

WSA = "http://www.w3.org/2005/08/addressing"
CONSUMER_NS = f"{Service.EVENTS.namespace}/NotificationConsumer"  # the client's manager key
SECRET = "s3cret-webhook-token"  # in consumer addresses' queries: never in a log line
FAST = Delivery(timeout=0.5, attempts=3, backoff=0.2)  # failing consumers, dropped quickly


@dataclass
class Received:
    """One POST a webhook received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Webhook:
    """Event consumers on one loopback server: each path answers with its status (or not at
    all while it hangs) and records every POST."""

    base: str = ""
    statuses: dict[str, int] = field(default_factory=dict)  # path -> status; absent: 200
    hanging: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={SECRET}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        self._arrived.set()
        if request.path in self.hanging:
            await self._release.wait()
        return web.Response(status=self.statuses.get(request.path, 200))

    def posts(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait(self, done: Callable[[], bool], within: float = 10.0) -> None:
        """Until ``done()`` holds after some POST, at most ``within`` seconds."""
        async with asyncio.timeout(within):
            while not done():
                self._arrived.clear()
                await self._arrived.wait()

    def release(self) -> None:
        self._release.set()


@pytest.fixture
async def webhook(serve: Serve) -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook.handle)
    hook.base = await serve(app)
    yield hook
    hook.release()  # hanging answers end before the server stops


class LogWatch(logging.Handler):
    """The log records holding ``text``, and an event set at the first (emitted on the loop's
    thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.lines: list[str] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in (line := record.getMessage()):
            self.lines.append(line)
            self.seen.set()


@pytest.fixture
def drops(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogWatch]:
    """Failing consumers are dropped quickly (the FAST delivery); the lines saying so."""
    monkeypatch.setattr(notify, "DELIVERY", FAST)
    watch = LogWatch("dropped after")
    logger = logging.getLogger(notify.__name__)
    logger.addHandler(watch)
    yield watch
    logger.removeHandler(watch)


def notify_body(received: Received) -> etree._Element:
    """The Notify a POST carries, checked: SOAP 1.2, WS-Addressing headers, schema-valid."""
    assert received.headers["Content-Type"].startswith("application/soap+xml")
    envelope = etree.fromstring(received.body)
    assert envelope.tag == f"{{{SOAP12}}}Envelope"
    assert envelope.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action") == NOTIFY_ACTION
    (notify_element,) = envelope.find(f"{{{SOAP12}}}Body")
    assert notify_element.tag == f"{{{WSNT}}}Notify"
    assert_schema_valid(notify_element)
    return notify_element


Read = Callable[[bytes], Any]
"""A webhook body as the client reads it (a NotificationManager's ``process``)."""


async def client_reader(device: Device) -> Read:
    """What NotificationManager.process does with a webhook body (its events WSDL's
    PullMessages reply parser), for consumers the client did not subscribe itself."""
    document = (await device.service(Service.EVENTS)).document
    binding = document.bindings[f"{{{Service.EVENTS.namespace}}}PullPointSubscriptionBinding"]
    operation = binding.get("PullMessages")
    return lambda body: operation.process_reply(etree.fromstring(body))


def notified(read: Read, posts: list[Received]) -> list[Message]:
    """Every message these POSTs carried, each Notify checked, as the client reads them."""
    found = []
    for received in posts:
        notify_body(received)
        found += messages(read(received.body))
    return found


async def wait_notified(webhook: Webhook, path: str, read: Read, *wanted: Message) -> list[Message]:
    await webhook.wait(lambda: set(wanted) <= set(notified(read, webhook.posts(path))))
    return notified(read, webhook.posts(path))


@dataclass
class Subscription:
    created: Any  # the SubscribeResponse
    manager: Any  # the client's SubscriptionManager service at its address (Renew, Unsubscribe)
    pull_point: Any  # its PullPointSubscription service there (SetSynchronizationPoint)


async def subscribe(
    device: Device, consumer: str, account: tuple[str, str] | None = None, **request: Any
) -> Subscription:
    """A Subscribe with the client's notification service, as an NVR makes it."""
    camera = device.client(*(account or (GATEWAY_USER, GATEWAY_PASSWORD)))
    await device.service(Service.EVENTS, camera)
    notification = await camera.create_notification_service()
    created = await notification.Subscribe({"ConsumerReference": {"Address": consumer}, **request})
    camera.xaddrs[CONSUMER_NS] = created.SubscriptionReference.Address._value_1
    return Subscription(
        created,
        await camera.create_subscription_service("NotificationConsumer"),
        await camera.create_onvif_service("pullpoint", port_type="NotificationConsumer"),
    )


# -- Home Assistant's webhook --------------------------------------------------------------------


async def test_home_assistant_webhook_gets_motion_within_2_s_renews_and_unsubscribes(
    open_device: OpenDevice, webhook: Webhook
) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    camera = device.client()
    await camera.update_xaddrs()
    # Home Assistant's sequence: Subscribe to its webhook, then a synchronization point.
    manager = await camera.create_notification_manager(
        webhook.url("/api/webhook/onvif"), dt.timedelta(minutes=3), lambda: None
    )
    await manager.set_synchronization_point()
    address = camera.xaddrs[CONSUMER_NS]
    assert address.startswith(f"http://127.0.0.1:{device.port}{Service.EVENTS.path}/subscription/")
    hook = "/api/webhook/onvif"
    await wait_notified(webhook, hook, manager.process, *motion(False, "Initialized"))
    for received in webhook.posts(hook):
        references = notify_body(received).iterfind(
            f"{{{WSNT}}}NotificationMessage/{{{WSNT}}}SubscriptionReference/{{{WSA}}}Address"
        )
        assert {reference.text for reference in references} == {address}
        assert received.headers["Content-Type"].endswith(f'action="{NOTIFY_ACTION}"')

    started = time.monotonic()
    await device.cause("motion?active=1&level=80")
    await wait_notified(webhook, hook, manager.process, *motion(True))
    assert time.monotonic() - started < 2.0

    subscription = await camera.create_subscription_service("NotificationConsumer")
    renewed = await subscription.Renew("PT120S")
    assert (renewed.TerminationTime - renewed.CurrentTime).total_seconds() == pytest.approx(
        120, abs=1
    )

    # A second consumer stays subscribed: what reaches it shows what the first would have got.
    await subscribe(device, webhook.url("/witness"), InitialTerminationTime="PT60S")
    await webhook.wait(lambda: bool(webhook.posts("/witness")))
    await manager.shutdown()  # Home Assistant's Unsubscribe
    before = len(webhook.posts(hook))
    await device.cause("motion?active=0")
    await wait_notified(webhook, "/witness", await client_reader(device), *motion(False))
    assert len(webhook.posts(hook)) == before
    assert await fault_of(subscription.Renew("PT60S")) == ["InvalidArgVal"]
    assert device.schema_check.checked > 3


# -- what a subscription gets ---------------------------------------------------------------------


async def test_filter_termination_time_and_synchronization_point(
    open_device: OpenDevice, webhook: Webhook
) -> None:
    device = await open_device(Dialect.VAPIX2)
    expression = etree.Element(
        f"{{{WSNT}}}TopicExpression", Dialect=CONCRETE_SET, nsmap={"tns1": TOPICS_NS}
    )
    expression.text = "tns1:Device/Trigger/DigitalInput"
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=2)
    subscription = await subscribe(
        device,
        webhook.url("/inputs"),
        Filter={"_value_1": [expression]},
        InitialTerminationTime=utc_text(until),
    )
    assert subscription.created.TerminationTime == until
    reader = await client_reader(device)
    initial = [digital_input("1", False, "Initialized"), digital_input("2", False, "Initialized")]
    await wait_notified(webhook, "/inputs", reader, *initial)
    await device.cause("motion?active=1&level=90")
    await device.cause("input?port=2&active=1")
    seen = await wait_notified(webhook, "/inputs", reader, digital_input("2", True))
    assert {m.topic for m in seen} == {Topic.DIGITAL_INPUT.path}

    await subscription.pull_point.SetSynchronizationPoint()
    await wait_notified(webhook, "/inputs", reader, digital_input("2", True, "Initialized"))
    # Its messages go to its consumer only: a pull would take them from it.
    pull_point = device.client()
    pull_point.xaddrs[f"{Service.EVENTS.namespace}/PullPointSubscription"] = (
        subscription.created.SubscriptionReference.Address._value_1
    )
    pulling = (await pull_point.create_pullpoint_service()).PullMessages(
        {"Timeout": "PT1S", "MessageLimit": 10}
    )
    assert await fault_of(pulling) == ["ActionNotSupported"]


async def test_consumer_addresses_that_are_refused(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    for address, why in [
        ("ftp://127.0.0.1/events", "not an http or https URL"),
        ("http://user:pw@127.0.0.1:8123/hook", "user name or password"),
        ("http://127.0.0.1:99999/hook", "invalid port"),
        ("http:///hook", "no host"),
        ("http://127.0.0.1/" + "a" * 1100, "longer than"),
        ("http://127.0.0.1/with space", "characters"),
    ]:
        with pytest.raises(Fault) as refused:
            await subscribe(device, address)
        assert fault_codes(refused.value) == ["InvalidArgVal"]
        assert why in str(refused.value.message)


# -- consumers that fail, quotas -----------------------------------------------------------------


@pytest.mark.parametrize("failure", ["HTTP 500", "no answer"])
async def test_a_failing_consumer_is_retried_then_dropped_and_its_slot_freed(
    open_device: OpenDevice,
    webhook: Webhook,
    drops: LogWatch,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    device = await open_device(Dialect.IPCAMCGI)
    (viewer,) = await viewers(device, 1)
    if failure == "no answer":
        webhook.hanging.add("/failing")
    else:
        webhook.statuses["/failing"] = 500

    # A User-level account holds its quota of subscriptions, one to a consumer that fails.
    failing = await subscribe(device, webhook.url("/failing"), viewer)
    working = await subscribe(device, webhook.url("/working"), viewer)
    assert MAX_PULL_POINTS_PER_USER == 2
    assert await fault_of(subscribe(device, webhook.url("/more"), viewer)) == ["Action"]

    async with asyncio.timeout(10):
        await drops.seen.wait()
    assert drops.lines == [
        f"ipcamcgi: event consumer {origin(webhook.base)} dropped after {FAST.attempts} failed"
        f" Notify attempts ({'HTTP 500' if failure == 'HTTP 500' else 'no answer within 0.5 s'})"
    ]
    assert SECRET not in caplog.text
    assert "/failing" not in caplog.text
    assert await fault_of(failing.manager.Renew("PT60S")) == ["InvalidArgVal"]

    # The slot is free again; the dropped consumer hears nothing more, the other one does.
    await subscribe(device, webhook.url("/more"), viewer)
    await device.cause("input?port=1&active=1")
    await webhook.wait(lambda: any(b"LogicalState" in r.body for r in webhook.posts("/more")))
    await webhook.wait(lambda: len(webhook.posts("/working")) >= 2)
    assert len(webhook.posts("/failing")) == FAST.attempts
    assert (await working.manager.Renew("PT60S")).TerminationTime


async def test_pull_points_and_subscriptions_are_shares_of_their_own_in_one_camera_cap(
    open_device: OpenDevice, webhook: Webhook
) -> None:
    device = await open_device(Dialect.HAMA)
    accounts = await viewers(device, 3)
    services = [await device.service(Service.EVENTS, device.client(*a)) for a in accounts]

    def pull_point(index: int) -> Awaitable[Any]:
        return services[index].CreatePullPointSubscription({})

    def push(index: int) -> Awaitable[Any]:
        return subscribe(device, webhook.url("/held"), accounts[index])

    async def refusal(call: Awaitable[Any]) -> str:
        with pytest.raises(Fault) as caught:
            await call
        assert fault_codes(caught.value) == ["Action"]
        return str(caught.value.message)

    assert (MAX_PULL_POINTS, MAX_PULL_POINTS_PER_USER) == (10, 2)  # the counts below
    # A client holding a subscription and a pull point at once (Home Assistant does) has room
    # for both, and for both again after a restart.
    for index in (0, 0, 1, 1):
        await pull_point(index)
        await push(index)
    assert "holds all the pull points" in await refusal(pull_point(0))
    assert "holds all the push subscriptions" in await refusal(push(1))
    # The camera's cap counts both kinds together: 10 are held.
    await pull_point(2)
    await push(2)
    assert "All 10 pull points are in use" in await refusal(pull_point(2))
    assert "All 10 pull points are in use" in await refusal(push(2))


@pytest.mark.parametrize("soap", [SOAP12, SOAP11])
async def test_raw_subscribe_echoes_the_consumers_reference_parameters(
    open_device: OpenDevice, webhook: Webhook, soap: str
) -> None:
    device = await open_device(Dialect.IPCAMCGI)
    request = envelope(
        f'<wsnt:Subscribe xmlns:wsnt="{WSNT}" xmlns:wsa="{WSA}"><wsnt:ConsumerReference>'
        f"<wsa:Address>{webhook.url('/nvr')}</wsa:Address><wsa:ReferenceParameters>"
        '<nvr:Channel xmlns:nvr="urn:example:nvr">7</nvr:Channel></wsa:ReferenceParameters>'
        "</wsnt:ConsumerReference><wsnt:InitialTerminationTime>PT30S"
        "</wsnt:InitialTerminationTime></wsnt:Subscribe>",
        username_token(GATEWAY_PASSWORD, user=GATEWAY_USER),
        soap=soap,
    )
    content_type = "text/xml" if soap == SOAP11 else "application/soap+xml"
    url = f"http://127.0.0.1:{device.port}{Service.EVENTS.path}"
    status, _, payload = await post(url, request, content_type=content_type)
    assert status == 200, payload
    (response,) = etree.fromstring(payload).find(f"{{{soap}}}Body")
    assert_schema_valid(response)
    assert response.find(f"{{{WSNT}}}CurrentTime") is not None

    await webhook.wait(lambda: bool(webhook.posts("/nvr")))
    (received, *_) = webhook.posts("/nvr")
    notify_body(received)
    header = etree.fromstring(received.body).find(f"{{{SOAP12}}}Header")
    assert header is not None
    channel = header.find("{urn:example:nvr}Channel")
    assert channel is not None
    assert (channel.text, channel.get(f"{{{WSA}}}IsReferenceParameter")) == ("7", "true")
    assert header.findtext(f"{{{WSA}}}To") == webhook.url("/nvr")


# -- the Notify itself --------------------------------------------------------------------------


def test_every_topic_makes_a_schema_valid_notify_with_reference_parameters() -> None:
    parameter = etree.Element("{urn:example:nvr}Channel")
    parameter.text = "7"
    now = dt.datetime.now(dt.UTC)
    notifications = [
        Notification(topic, "token", state, now, operation)
        for topic in Topic
        for state in (False, True)
        for operation in PropertyOperation
    ]
    body = notify_envelope(
        notifications,
        consumer="http://127.0.0.1:9/hook?token=x",
        subscription="http://127.0.0.1:8000/onvif/events_service/subscription/ab",
        producer="http://127.0.0.1:8000/onvif/events_service",
        reference_parameters=[parameter],
    )
    envelope = etree.fromstring(body)
    header = envelope.find(f"{{{SOAP12}}}Header")
    assert header is not None
    assert header.findtext(f"{{{WSA}}}To") == "http://127.0.0.1:9/hook?token=x"
    echoed = header.find("{urn:example:nvr}Channel")
    assert echoed is not None
    assert echoed.text == "7"
    assert echoed.get(f"{{{WSA}}}IsReferenceParameter") == "true"
    (element,) = envelope.find(f"{{{SOAP12}}}Body")
    assert_schema_valid(element)
    assert len(element) == len(notifications)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (" http://127.0.0.1:8123/api/webhook/x?t=1 ", "http://127.0.0.1:8123"),
        ("HTTPS://[::1]/hook", "https://[::1]:443"),
        ("http://camera-nvr.lan/onvif/notify", "http://camera-nvr.lan:80"),
    ],
)
def test_consumer_addresses_accepted_and_logged_by_origin_only(address: str, expected: str) -> None:
    assert origin(consumer_address(address)) == expected
