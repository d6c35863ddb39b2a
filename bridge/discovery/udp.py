"""The asyncio side of the multicast discovery protocols (WS-Discovery, SSDP): sockets only.

One :class:`MulticastPort` per protocol serves every camera device of the gateway:

- a socket bound to the group address and the protocol's port, member of the group on each
  interface the gateway announces on: it hears the multicast searches;
- one socket per address the gateway answers from (its own, and those of camera devices with
  an address of their own), bound to that address and the port: it hears the unicast searches
  sent to that address, and what it sends leaves from that address, multicast included, so a
  VMS sees each camera device on an address of its own as a host of its own.

Receiving drains at most a bounded number of datagrams per wake-up (a flood cannot starve the
event loop); sending is best effort (a full socket buffer drops the datagram, as the network
would). What the datagrams mean is the sans-I/O cores' business.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import ifaddr

log = logging.getLogger(__name__)

MAX_DATAGRAMS_PER_WAKEUP = 64
QUERY_TTL = 2  # a search reaches the link, and one router at most: cameras sit on the LAN
REPEAT_GAP = 0.15  # UDP loses datagrams: every query goes out twice, this far apart
MAX_REPLIES = 1024  # datagrams kept per multicast query
Source = tuple[str, int]
# datagram, its source, and the camera address it was sent to (None: the shared socket)
DatagramHandler = Callable[[bytes, Source, str | None], None]


@dataclass(frozen=True, slots=True)
class Interface:
    """One IPv4 address of one of this host's interfaces."""

    name: str
    address: str
    prefix: int

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.prefix}", strict=False)


def ipv4_interfaces() -> list[Interface]:
    """Every IPv4 address of this host (this network namespace), loopback included."""
    return [
        Interface(adapter.nice_name, ip.ip, ip.network_prefix)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str)
    ]


def listens_on(listen_host: str, address: str) -> bool:
    """Whether a server listening on ``listen_host`` is reached at ``address``."""
    return listen_host in ("", "0.0.0.0", "::") or address == listen_host


def interfaces_for(listen_host: str, interfaces: Iterable[Interface]) -> list[Interface]:
    """The interfaces a gateway listening on ``listen_host`` can be found on: all of them
    for a wildcard address, else the one holding that address."""
    return [interface for interface in interfaces if listens_on(listen_host, interface.address)]


def local_address_towards(destination: str) -> str | None:
    """The source address this host uses to reach ``destination`` (a route lookup: a
    connected UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((destination, 9))
        except OSError:
            return None
        return str(probe.getsockname()[0])


def is_directed_broadcast(address: str, interfaces: Iterable[Interface]) -> bool:
    """Whether ``address`` is the broadcast address of one of the given interfaces' subnets."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return any(
        interface.prefix < 31 and ip == interface.network.broadcast_address
        for interface in interfaces
    )


class MulticastPort:
    """A protocol's port and group on this host: see the module docstring."""

    def __init__(
        self, group: str, port: int, on_datagram: DatagramHandler, *, ttl: int, max_datagram: int
    ) -> None:
        self.group = group
        self.port = port
        self._on_datagram = on_datagram
        self._ttl = ttl
        self._max_datagram = max_datagram
        self._group: socket.socket | None = None
        self._own: dict[str, socket.socket] = {}
        self._joined: set[str] = set()

    def start(self) -> None:
        """The group's socket: bound to the group address, it hears only what is sent to the
        group (a search sent to one of this host's addresses reaches that address's socket,
        so the answer can tell the two apart)."""
        sock = self._socket(self.group)
        self._group = sock
        self._watch(sock, None)

    def join(self, interfaces: Iterable[Interface]) -> None:
        """Become a member of the group on these interfaces (those not joined yet)."""
        if self._group is None:
            return
        for interface in interfaces:
            if interface.address in self._joined:
                continue
            membership = socket.inet_aton(self.group) + socket.inet_aton(interface.address)
            try:
                self._group.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            except OSError as exc:
                # EADDRINUSE: another address of an interface already joined.
                log.debug("%s: no group membership on %s: %s", self.group, interface.name, exc)
            self._joined.add(interface.address)

    def add_address(self, address: str) -> None:
        """One of this host's addresses to answer and announce from: a socket bound there,
        whose multicast leaves on that address's interface."""
        if address in self._own:
            return
        sock = self._socket(address)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
        self._own[address] = sock
        self._watch(sock, address)

    def remove_address(self, address: str) -> None:
        sock = self._own.pop(address, None)
        if sock is not None:
            self._close(sock)

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(self._own)

    def send(self, data: bytes, destination: Source, *, source: str) -> None:
        """Unicast from ``source``, an address added before (else nothing is sent)."""
        sock = self._own.get(source)
        if sock is not None:
            self._send(sock, data, destination)

    def multicast(self, data: bytes, *, source: str) -> None:
        """To the group, from ``source``, an address added before (else nothing is sent)."""
        self.send(data, (self.group, self.port), source=source)

    def close(self) -> None:
        for address in list(self._own):
            self.remove_address(address)
        if self._group is not None:
            self._close(self._group)
            self._group = None
        self._joined.clear()

    # -- sockets ----------------------------------------------------------------------------

    def _socket(self, address: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            # The shared socket and the per-address ones share the port; other programs on
            # the host (a second gateway, a desktop's SSDP stack) may hold it too.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self._ttl)
            sock.setblocking(False)
            sock.bind((address, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _watch(self, sock: socket.socket, address: str | None) -> None:
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable, sock, address)

    def _readable(self, sock: socket.socket, address: str | None) -> None:
        for _ in range(MAX_DATAGRAMS_PER_WAKEUP):
            try:
                # One byte more than the cap, so the core can tell an oversize datagram.
                data, source = sock.recvfrom(self._max_datagram + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors surface here on Linux; the socket lives on
                log.debug("%s:%d receive error: %s", self.group, self.port, exc)
                return
            self._on_datagram(data, (str(source[0]), int(source[1])), address)

    def _send(self, sock: socket.socket, data: bytes, destination: Source) -> None:
        try:
            sock.sendto(data, destination)
        except (BlockingIOError, InterruptedError):
            log.debug("%s:%d send buffer full, datagram dropped", self.group, self.port)
        except OSError as exc:  # no route, interface down: the next announcement retries
            log.debug("cannot send to %s:%d: %s", destination[0], destination[1], exc)

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()


# -- the client side: a search and its answers ------------------------------------------------


class _Replies(asyncio.DatagramProtocol):
    def __init__(self, replies: list[tuple[bytes, Source]], max_datagram: int) -> None:
        self._replies = replies
        self._max_datagram = max_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if len(self._replies) < MAX_REPLIES and len(data) <= self._max_datagram:
            self._replies.append((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        log.debug("multicast query: %s", exc)


async def multicast_query(
    group: str,
    port: int,
    payload: bytes,
    interfaces: Sequence[str],
    listen: float,
    *,
    max_datagram: int,
) -> list[tuple[bytes, Source]]:
    """Send ``payload`` to group:port from each interface address (twice, UDP loses
    datagrams) and collect the unicast replies for ``listen`` seconds: at most
    :data:`MAX_REPLIES`, none larger than ``max_datagram`` bytes.

    One socket per interface, bound to its address (so replies come back to it) with the
    multicast leaving from that interface only, a TTL of :data:`QUERY_TTL`.
    """
    loop = asyncio.get_running_loop()
    replies: list[tuple[bytes, Source]] = []
    transports: list[asyncio.DatagramTransport] = []
    try:
        for address in interfaces:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            try:
                sock.setblocking(False)
                sock.bind((address, 0))
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address)
                )
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, QUERY_TTL)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Replies(replies, max_datagram), sock=sock
                )
            except OSError as exc:
                sock.close()
                log.debug("no multicast query from %s: %s", address, exc)
                continue
            transports.append(transport)
        if not transports:
            return replies
        for repeat in range(2):
            for transport in transports:
                transport.sendto(payload, (group, port))
            await asyncio.sleep(REPEAT_GAP if repeat == 0 else max(0.0, listen - REPEAT_GAP))
    finally:
        for transport in transports:
            transport.close()
    return replies
