"""Push subscriptions' HTTP side: each one's messages POSTed to its consumer as Notify messages.

A push subscription (WS-BaseNotification Subscribe) is a pull point of the camera's
:class:`~bridge.onvif.eventhub.EventHub` that no client pulls: one task per subscription here
drains it and POSTs what it holds, as one Notify, to the consumer address the subscriber gave.
Each POST has a timeout; a Notify that fails (no connection, no answer in time, a status other
than 2xx) is tried again after a backoff that doubles, a bounded number of times, while later
messages wait in the subscription's bounded queue (the oldest dropped first). A consumer that
fails every attempt of one Notify is dropped: its subscription is removed (the user's quota slot
with it) and one line is logged.

The consumer address comes from a client and is checked before anything is sent to it: http or
https only, no user name or password in it, at most ``MAX_CONSUMER_ADDRESS`` characters. Logs
name only its scheme, host and port: its path and query may carry a token (a webhook id).
Redirects are not followed and response bodies are not read (an empty one, the usual answer,
leaves the connection reusable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bridge.onvif.eventhub import MAX_PULL_POINTS, Notification, PullPoint
from bridge.ratelimit import ThrottledLog

log = logging.getLogger(__name__)

NOTIFY_ACTION = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"
CONTENT_TYPE = f'application/soap+xml; charset=utf-8; action="{NOTIFY_ACTION}"'
MAX_CONSUMER_ADDRESS = 1024  # a webhook URL is under 200; the bound keeps logs and memory small
_WAIT = 60.0  # seconds a sender waits for messages before waiting again (a closed one wakes it)
_BATCH = 100  # messages per Notify at most (a subscription's queue holds as many)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How hard the gateway tries to hand one Notify to a consumer before dropping it."""

    timeout: float = 5.0  # seconds per POST, connecting included
    attempts: int = 3  # per Notify, the first one included
    backoff: float = 1.0  # seconds before the second attempt, doubled before each later one


DELIVERY = Delivery()

Render = Callable[[Sequence[Notification]], bytes]
"""The Notify envelope (bytes) that carries these notifications to one subscription's consumer."""


@dataclass(frozen=True, slots=True)
class Push:
    """One push subscription as its sender sees it: where its messages come from and go to,
    how they are wrapped, and how it is ended when the consumer fails."""

    subscription: PullPoint
    consumer: str  # checked by consumer_address
    render: Render
    drop: Callable[[PullPoint], None]


def consumer_address(text: str) -> str:
    """A consumer address a subscriber sent, checked; raises ValueError saying what is wrong."""
    address = text.strip()
    if not address:
        raise ValueError("no consumer address")
    if len(address) > MAX_CONSUMER_ADDRESS:
        raise ValueError(f"consumer address longer than {MAX_CONSUMER_ADDRESS} characters")
    if not (address.isascii() and address.isprintable()) or " " in address:
        raise ValueError("consumer address holds characters a URL cannot")
    parts = urlsplit(address)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("consumer address is not an http or https URL")
    if "@" in parts.netloc:
        raise ValueError("consumer address carries a user name or password")
    try:
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise ValueError("consumer address has an invalid port") from None
    if not parts.hostname:
        raise ValueError("consumer address names no host")
    return address


def origin(address: str) -> str:
    """What logs say of a consumer: scheme, host and port, never the path or query."""
    parts = urlsplit(address)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{parts.port or (443 if scheme == 'https' else 80)}"


class Notifier:
    """The senders of one device's push subscriptions, over one HTTP client session
    (``DELIVERY`` unless told otherwise)."""

    def __init__(
        self, name: str, delivery: Delivery | None = None, *, max_connections: int = MAX_PULL_POINTS
    ) -> None:
        self._name = name
        self._delivery = delivery or DELIVERY
        self._max_connections = max_connections
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._drops = ThrottledLog(log)

    def start(self, push: Push) -> None:
        """Deliver the subscription's messages to its consumer until it ends, or is dropped."""
        ident = push.subscription.id
        task = asyncio.create_task(self._send(push), name=f"{self._name} Notify {ident}")
        self._senders[ident] = task
        task.add_done_callback(lambda _: self._forget(ident, task))

    async def stop(self, ident: str) -> None:
        """Stop a subscription's sender now, a POST under way included, and wait for it: no
        Notify of an unsubscribed subscription leaves after this returns."""
        task = self._senders.pop(ident, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Stop every sender and close the HTTP session, for good."""
        for ident in list(self._senders):
            await self.stop(ident)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _forget(self, ident: str, task: asyncio.Task[None]) -> None:
        if self._senders.get(ident) is task:
            del self._senders[ident]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._delivery.timeout),
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                headers={"Content-Type": CONTENT_TYPE},
            )
        return self._session

    async def _send(self, push: Push) -> None:
        subscription, consumer = push.subscription, push.consumer
        try:
            while not subscription.closed:
                notifications = await subscription.pull(_WAIT, _BATCH)
                if not notifications:
                    continue  # nothing yet, or the subscription ended
                failure = await self._post(subscription, consumer, push.render(notifications))
                if failure is not None and not subscription.closed:
                    self._drops.log(
                        logging.WARNING,
                        "dropped",
                        "%s: event consumer %s dropped after %d failed Notify attempts (%s)",
                        self._name,
                        origin(consumer),
                        self._delivery.attempts,
                        failure,
                    )
                    push.drop(subscription)
                    return
        except Exception:  # a bug: the subscription ends rather than dying silently
            log.exception("%s: Notify to %s failed", self._name, origin(consumer))
            push.drop(subscription)

    async def _post(self, subscription: PullPoint, consumer: str, body: bytes) -> str | None:
        """POST one Notify, retried with backoff; None once delivered, else why it was not."""
        failure = "no attempt"
        delay = self._delivery.backoff
        for attempt in range(self._delivery.attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
                if subscription.closed:
                    return None  # ended meanwhile: nothing left to deliver or to drop
            try:
                async with self._client().post(
                    URL(consumer, encoded=True), data=body, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        return None
                    failure = f"HTTP {response.status}"
            except TimeoutError:
                failure = f"no answer within {self._delivery.timeout:g} s"
            except aiohttp.ClientConnectorError as exc:
                failure = f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
            except aiohttp.ClientError as exc:  # its text may hold the URL: only its kind
                failure = type(exc).__name__
        return failure
