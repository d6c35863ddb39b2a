"""What the discovery responders (WS-Discovery, SSDP) share about who may get an answer.

An answer goes unicast to the source of the search. A forged multicast, broadcast or
unspecified source address would make every device on the LAN answer to the whole LAN (a
reflector), so such searches are dropped before they are even parsed.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bridge.errors import MessageTooLarge, ProtocolError

_Message = TypeVar("_Message")

_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class DropReason(enum.Enum):
    """Why a responder did not hand a datagram on (none of them is ever answered)."""

    MALFORMED = "malformed"
    TOO_LARGE = "too large"
    DUPLICATE = "duplicate"
    NOT_A_REQUEST = "not a request"  # another device's announcement or answer
    BAD_SOURCE = "bad source"
    RATE_LIMITED = "rate limited"


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: DropReason


def answerable(
    host: str, port: int, is_broadcast: Callable[[str], bool] | None = None
) -> str | None:
    """The source's address (the key of its rate limit) when an answer may go there, else
    None. ``is_broadcast`` adds the directed broadcast addresses the socket layer knows."""
    if not 0 < port <= 0xFFFF:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    if address.is_multicast or address.is_unspecified or address == _LIMITED_BROADCAST:
        return None
    if is_broadcast is not None and is_broadcast(str(address)):
        return None
    return str(address)


def screened(
    data: bytes,
    source: tuple[str, int] | tuple[str, int, int, int],
    parse: Callable[[bytes], _Message],
    is_broadcast: Callable[[str], bool] | None = None,
) -> tuple[str, _Message] | Dropped:
    """A datagram's answerable source address and its message, or why it is dropped: the
    source is checked before a byte is parsed."""
    address = answerable(source[0], source[1], is_broadcast)
    if address is None:
        return Dropped(DropReason.BAD_SOURCE)
    try:
        return address, parse(data)
    except MessageTooLarge:
        return Dropped(DropReason.TOO_LARGE)
    except ProtocolError:
        return Dropped(DropReason.MALFORMED)
