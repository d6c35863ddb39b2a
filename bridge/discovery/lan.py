"""Finding legacy cameras on the LAN: ``bridge discover`` and the gateway's periodic discovery.

Four sources run at once and their sightings are merged per device:

- an HTTP sweep of address ranges: a bare TCP connect to every address and port (most of a
  /24 is empty, and an unanswered connect costs only its short timeout), then the
  identification ``bridge probe`` uses on the ports that answered; plain web servers are left
  out (a LAN is full of routers and printers);
- mDNS/DNS-SD browsing (Axis-style ``_axis-video._tcp``, ``_http._tcp`` ...) with
  python-zeroconf;
- an SSDP M-SEARCH, each answering device's UPnP description read once;
- a WS-Discovery Probe for ONVIF video transmitters: those need no gateway, and say so.

A device announced by multicast on an HTTP port the sweep did not cover (a camera on 8090
answering SSDP) is identified afterwards, so the sweep's port list is not the only way in.

Everything is bounded: connections at once (one worker per allowed connection), every wait
(connect, silence, one endpoint's whole identification, listening windows), datagram counts and
sizes, description sizes. Multicast leaves only from the interfaces whose subnets are looked
at: ``bridge discover 127.0.0.0/24`` stays on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import re
import socket
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
import yaml
from yarl import URL
from zeroconf import Error as ZeroconfError
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from bridge.cameras.base import Dialect
from bridge.cameras.http import CameraHttp, Credentials, HttpTimeouts
from bridge.cameras.identify import driver_for, identify
from bridge.cameras.registry import DRIVERS
from bridge.discovery import ssdp, wsdiscovery
from bridge.discovery.udp import Interface, ipv4_interfaces, multicast_query
from bridge.errors import AuthenticationFailed, BridgeError, CameraError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_PORTS = (80, 81, 88, 8080, 8081)  # where cameras of 2007-2011 served their pages
DEFAULT_WAIT = 3.0  # listening for announcements; the longest silence within an HTTP reply
CONNECT_TIMEOUT = 0.8  # on a LAN a connect is answered in milliseconds, or never
ENDPOINT_TIMEOUT = 10.0  # the most one open port may take: identification and device info
MAX_ADDRESSES = 65536  # a /16: more is a typo, not a LAN
DEFAULT_MIN_PREFIX = 22  # an own subnet larger than this is narrowed to the own /24
DESCRIPTION_TIMEOUT = 3.0  # one UPnP description fetch, all of it
DESCRIPTION_CONNECTIONS = 16
MDNS_TYPES = (
    "_axis-video._tcp.local.",
    "_http._tcp.local.",
    "_rtsp._tcp.local.",
    "_onvif._tcp.local.",
)
MDNS_HTTP_TYPES = frozenset(MDNS_TYPES[:2])  # their port is the device's web root
ONVIF_SCOPE = "onvif://www.onvif.org/"
SOURCES = ("http", "wsd", "ssdp", "mdns")  # most to least telling about a device
MAX_FIELD_CHARS = 128  # of a model, name ... a device reports

Endpoint = tuple[str, int]
Progress = Callable[[int, int, int], None]  # (endpoints done, endpoints in all, cameras found)

_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_HEX = re.compile(r"[^0-9A-Fa-f]")


# -- what is found --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sighting:
    """What one source saw at one address; ``port`` is the HTTP port of its web root where
    the source knows it."""

    host: str
    port: int | None
    how: str  # "http" | "mdns" | "ssdp" | "wsd"
    dialect: str = ""
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    mac: str = ""
    name: str = ""
    onvif_xaddrs: tuple[str, ...] = ()  # set for devices that already speak ONVIF
    detail: str = ""


@dataclass
class Found:
    """One device, its sightings merged: see :func:`merge`."""

    address: str
    port: int | None
    dialect: str = ""
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    mac: str = ""
    name: str = ""
    found_by: set[str] = field(default_factory=set)
    onvif_xaddrs: tuple[str, ...] = ()
    detail: str = ""
    suggested_name: str = ""  # unique within its report, fit for ``cameras[].name``

    @property
    def url(self) -> str:
        port = "" if self.port in (None, 80) else f":{self.port}"
        return f"http://{self.address}{port}"

    @property
    def kind(self) -> str:
        """What it is: "onvif" (needs no gateway), "camera" (a legacy camera of a known
        dialect) or "other" (announced itself, but nothing says it is a camera)."""
        if self.onvif_xaddrs:
            return "onvif"
        return "camera" if self.dialect else "other"


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    found: list[Found]  # sorted by address, then port
    addresses: int  # how many addresses were swept
    ports: tuple[int, ...]
    elapsed: float  # seconds
    notes: tuple[str, ...] = ()  # what the user should know about how the sweep was narrowed

    def summary(self) -> str:
        return f"swept {self.addresses} addresses x {len(self.ports)} ports in {self.elapsed:.1f} s"


# -- targets ----------------------------------------------------------------------------------


def parse_targets(args: Sequence[str]) -> list[ipaddress.IPv4Network]:
    """CIDR ranges, single addresses or host names (resolved once, blocking) as networks.

    Raises :class:`ConfigError` for anything else, and for more than :data:`MAX_ADDRESSES`
    addresses in all. Only text that looks like a host name is ever looked up, so garbage
    never turns into a DNS query.
    """
    networks: list[ipaddress.IPv4Network] = []
    for arg in args:
        try:
            networks.append(ipaddress.IPv4Network(arg, strict=False))
            continue
        except ValueError:
            pass
        if re.fullmatch(r"[0-9./]+", arg) or not _HOST_NAME.fullmatch(arg):
            raise ConfigError(f"{arg}: not an IPv4 address, network (a.b.c.d/n) or host name")
        try:
            infos = socket.getaddrinfo(arg, None, socket.AF_INET, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConfigError(f"{arg}: cannot resolve this host name") from exc
        networks.append(ipaddress.IPv4Network(str(infos[0][4][0])))
    total = sum(network.num_addresses for network in set(networks))
    if total > MAX_ADDRESSES:
        raise ConfigError(
            f"{total} addresses to sweep; at most {MAX_ADDRESSES} (a /16): name smaller ranges"
        )
    return networks


def parse_ports(text: str) -> tuple[int, ...]:
    """``80,81,8080`` as port numbers (duplicates dropped); :class:`ConfigError` otherwise."""
    ports: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise ConfigError(f"{item or 'an empty item'} is not a port number 1-65535")
        ports.append(int(item))
    return tuple(dict.fromkeys(ports))


@dataclass(frozen=True, slots=True)
class Plan:
    """What one discovery run covers."""

    hosts: tuple[str, ...]  # swept, in order
    multicast_from: tuple[str, ...]  # the interface addresses the multicast sources use
    scope: tuple[ipaddress.IPv4Network, ...]  # where an answer to multicast must come from
    own: frozenset[str]  # this machine's addresses, left out (default targets only)
    notes: tuple[str, ...]

    def covers(self, host: str) -> bool:
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return host not in self.own and any(address in network for network in self.scope)


def plan(targets: Sequence[ipaddress.IPv4Network] | None, interfaces: Sequence[Interface]) -> Plan:
    """The hosts and interfaces for ``targets``, or with None for this machine's own subnets.

    Own subnets exclude loopback and link-local ones; one larger than /22 is swept only around
    this machine's address (its /24), though multicast answers from anywhere in it count.
    Explicit targets use multicast only on interfaces whose address lies inside them: a remote
    subnet gets none (multicast would not cross the router anyway).
    """
    notes: list[str] = []
    if targets is None:
        lan = [
            interface
            for interface in interfaces
            if not (address := ipaddress.IPv4Address(interface.address)).is_loopback
            and not address.is_link_local
        ]
        networks = []
        for interface in lan:
            network = interface.network
            if network.prefixlen < DEFAULT_MIN_PREFIX:
                narrowed = ipaddress.IPv4Network(f"{interface.address}/24", strict=False)
                notes.append(
                    f"{network} on {interface.name} is larger than /{DEFAULT_MIN_PREFIX}: "
                    f"sweeping {narrowed} only (name a range to sweep more)"
                )
                network = narrowed
            networks.append(network)
        if not lan:
            notes.append("no IPv4 network to sweep: this machine has only loopback addresses")
        own = frozenset(interface.address for interface in interfaces)
        scope = tuple(dict.fromkeys(interface.network for interface in lan))
        multicast_from = [interface.address for interface in lan]
    else:
        networks = list(targets)
        own = frozenset()
        scope = tuple(dict.fromkeys(targets))
        multicast_from = [
            interface.address
            for interface in interfaces
            if any(ipaddress.IPv4Address(interface.address) in network for network in targets)
        ]
    hosts = dict.fromkeys(str(address) for network in networks for address in network.hosts())
    return Plan(
        hosts=tuple(host for host in hosts if host not in own),
        multicast_from=tuple(dict.fromkeys(multicast_from)),
        scope=scope,
        own=own,
        notes=tuple(notes),
    )


# -- the HTTP sweep ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Limits:
    concurrency: int
    connect_timeout: float
    request_timeout: float
    endpoint_timeout: float


async def sweep(
    hosts: Sequence[str],
    ports: Sequence[int],
    credentials: Credentials | None = None,
    *,
    concurrency: int = 256,
    connect_timeout: float = CONNECT_TIMEOUT,
    request_timeout: float = DEFAULT_WAIT,
    endpoint_timeout: float = ENDPOINT_TIMEOUT,
    on_progress: Progress | None = None,
) -> list[Sighting]:
    """The cameras among ``hosts`` x ``ports``, identified as ``bridge probe`` does.

    Port by port (so no camera gets all its ports knocked at once), ``concurrency`` workers
    each hold at most one connection: a bare TCP connect first (``connect_timeout``: on a LAN
    an answer takes milliseconds), identification only where it succeeds. With credentials
    the camera's device info is read too. ``request_timeout`` is the longest silence allowed
    within a reply and ``endpoint_timeout`` what one open port may take in all, so a host
    that drips bytes cannot stall the sweep.
    """
    limits = _Limits(concurrency, connect_timeout, request_timeout, endpoint_timeout)
    endpoints = [(host, port) for port in ports for host in hosts]
    return await _sweep_endpoints(endpoints, credentials, limits, on_progress)


async def _sweep_endpoints(
    endpoints: Sequence[Endpoint],
    credentials: Credentials | None,
    limits: _Limits,
    on_progress: Progress | None = None,
) -> list[Sighting]:
    # A fixed pool of workers bounds connections as a semaphore would, without a task per
    # endpoint (a /16 on five ports is 327680 of them).
    pending = iter(endpoints)
    sightings: list[Sighting] = []
    done = 0

    async def worker() -> None:
        nonlocal done
        for host, port in pending:
            sighting = await _probe_endpoint(host, port, credentials, limits)
            done += 1
            if sighting is not None:
                sightings.append(sighting)
            if on_progress is not None:
                on_progress(done, len(endpoints), len(sightings))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(limits.concurrency, len(endpoints))):
            group.create_task(worker())
    return sightings


async def _probe_endpoint(
    host: str, port: int, credentials: Credentials | None, limits: _Limits
) -> Sighting | None:
    if not await _port_open(host, port, limits.connect_timeout):
        return None
    try:
        async with asyncio.timeout(limits.endpoint_timeout):
            return await _identify(host, port, credentials, limits.request_timeout)
    except TimeoutError:
        log.debug("%s:%d: no identification within %.1f s", host, port, limits.endpoint_timeout)
    except CameraError as exc:
        log.debug("%s:%d: not a camera: %s", host, port, exc)
    except Exception:
        # The drivers meet arbitrary devices here; one that confuses a driver costs its own
        # endpoint, never the sweep.
        log.debug("%s:%d: identification failed", host, port, exc_info=True)
    return None


async def _port_open(host: str, port: int, within: float) -> bool:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
    except (OSError, TimeoutError):
        return False
    transport.close()
    return True


async def _identify(
    host: str, port: int, credentials: Credentials | None, request_timeout: float
) -> Sighting | None:
    """The camera at host:port, or None for a web server of no known dialect.

    The password goes only to a device that looks like a camera of a known dialect: its
    fingerprint claims one, or it passed a dialect's detection without credentials. A sweep
    must not hand it to every router and printer on the LAN that asks for Basic auth. A camera
    that wants (or refuses) credentials is still reported, with the dialect its fingerprint
    names when exactly one dialect claims it: the user learns what to configure.
    """
    url = f"http://{host}:{port}"
    timeouts = HttpTimeouts(connect=request_timeout, read=request_timeout)
    async with CameraHttp(url, None, timeouts=timeouts) as anonymous:
        # identify() reads the fingerprint too, but does not hand it out; one extra GET /.
        fingerprint = await anonymous.fingerprint()
        claimed = [
            cls.dialect
            for cls in DRIVERS.values()
            if cls.matches_fingerprint(fingerprint.server, fingerprint.realm)
        ]
        if credentials is None or not claimed:
            try:
                dialect = (await identify(anonymous)).dialect
            except AuthenticationFailed:
                return _locked(host, port, claimed, "credentials needed")
            if credentials is None:
                return Sighting(host, port, "http", dialect=dialect)
            async with CameraHttp(url, credentials, timeouts=timeouts) as http:
                return await _with_device_info(host, port, dialect, http)
    async with CameraHttp(url, credentials, timeouts=timeouts) as http:
        try:
            dialect = (await identify(http)).dialect
        except AuthenticationFailed:
            return _locked(host, port, claimed, "credentials rejected")
        return await _with_device_info(host, port, dialect, http)


def _locked(host: str, port: int, claimed: Sequence[Dialect], why: str) -> Sighting | None:
    return (
        Sighting(host, port, "http", dialect=claimed[0], detail=why) if len(claimed) == 1 else None
    )


async def _with_device_info(host: str, port: int, dialect: Dialect, http: CameraHttp) -> Sighting:
    driver = driver_for(dialect, http)
    try:
        info = await driver.connect()
    except CameraError as exc:
        return Sighting(host, port, "http", dialect=dialect, detail=f"no device info: {exc}")
    finally:
        await driver.close()
    return Sighting(
        host,
        port,
        "http",
        dialect=dialect,
        manufacturer=info.manufacturer,
        model=info.model,
        firmware=info.firmware,
        serial=info.serial,
        mac=info.mac,
    )


# -- MAC addresses from the kernel ------------------------------------------------------------


def parse_arp_table(text: str) -> dict[str, str]:
    """``/proc/net/arp`` as {address: MAC}, complete entries only (flags 0x0 is a neighbour
    that never answered; an all-zero MAC is no MAC)."""
    table: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        address, _, flags, mac = fields[:4]
        try:
            complete = int(flags, 16) != 0
        except ValueError:
            continue
        mac = normalize_mac(mac)
        if complete and mac and mac != "00:00:00:00:00:00":
            table[address] = mac
    return table


def read_arp_table(path: Path = Path("/proc/net/arp")) -> dict[str, str]:
    """The kernel's neighbour table (Linux); empty where there is none. After a TCP connection
    to a LAN host it holds that host's MAC, credentials or not."""
    try:
        return parse_arp_table(path.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return {}


def normalize_mac(text: str) -> str:
    """``00408c123456``, ``00-40-8c-12-34-56`` ... as ``00:40:8C:12:34:56``; "" if not a MAC."""
    digits = _HEX.sub("", text)
    if len(digits) != 12 or len(text) > 17:
        return ""
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).upper()


# -- mDNS -----------------------------------------------------------------------------------


async def browse_mdns(interfaces: Sequence[str], listen: float) -> list[Sighting]:
    """Services of :data:`MDNS_TYPES` announced within ``listen`` seconds, each resolved.

    zeroconf uses exactly the given interface addresses (none: nothing is sent).
    """
    if not interfaces:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + listen
    mdns = AsyncZeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)
    resolving: list[asyncio.Task[Sighting | None]] = []
    seen: set[tuple[str, str]] = set()

    # zeroconf calls handlers with these keyword names.
    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added and (service_type, name) not in seen:
            seen.add((service_type, name))
            remaining = max(0.0, deadline - loop.time())
            resolving.append(
                loop.create_task(_resolve_mdns(zeroconf, service_type, name, remaining))
            )

    try:
        browser = AsyncServiceBrowser(mdns.zeroconf, list(MDNS_TYPES), handlers=[on_change])
        try:
            await asyncio.sleep(listen)  # a listening window: nothing to wait for but time
        finally:
            await browser.async_cancel()
        # Each resolution ends with the window; one that failed costs only its service.
        results = await asyncio.gather(*resolving, return_exceptions=True)
    finally:
        for task in resolving:
            task.cancel()
        await mdns.async_close()
    return [sighting for sighting in results if isinstance(sighting, Sighting)]


async def _resolve_mdns(
    zeroconf: Zeroconf, service_type: str, name: str, within: float
) -> Sighting | None:
    info = AsyncServiceInfo(service_type, name)
    if not await info.async_request(zeroconf, max(1, int(within * 1000))):
        return None
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not addresses:
        return None
    txt = {
        key.decode("utf-8", "replace").lower(): (value or b"").decode("utf-8", "replace")
        for key, value in info.properties.items()
    }
    return Sighting(
        addresses[0],
        info.port if service_type in MDNS_HTTP_TYPES else None,
        "mdns",
        model=txt.get("model") or txt.get("product", ""),
        mac=normalize_mac(txt.get("macaddress", "")),
        name=name.removesuffix("." + service_type),
        detail=service_type.removesuffix(".local."),
    )


# -- SSDP and WS-Discovery --------------------------------------------------------------------


async def search_ssdp(
    interfaces: Sequence[str], listen: float, *, port: int = ssdp.PORT
) -> list[Sighting]:
    """UPnP devices answering an ``ssdp:all`` M-SEARCH within ``listen`` seconds, each
    LOCATION read once (only where it points at the device that answered: a reply cannot
    send this machine elsewhere)."""
    if not interfaces:
        return []
    mx = max(1, min(ssdp.MAX_REPLY_DELAY, int(listen) - 1))
    replies = await multicast_query(
        ssdp.MULTICAST_GROUP,
        port,
        ssdp.msearch(ssdp.SSDP_ALL, mx),
        interfaces,
        listen,
        max_datagram=ssdp.MAX_DATAGRAM,
    )
    locations: dict[tuple[str, str], None] = {}
    for data, (host, _) in replies:
        try:
            message = ssdp.parse(data)
        except BridgeError:
            continue
        if isinstance(message, ssdp.SearchResponse):
            locations[(host, message.location)] = None
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=DESCRIPTION_TIMEOUT),
        connector=aiohttp.TCPConnector(limit=DESCRIPTION_CONNECTIONS, force_close=True),
    )
    async with session:
        return list(
            await asyncio.gather(
                *(_describe(session, host, location) for host, location in locations)
            )
        )


async def _describe(session: aiohttp.ClientSession, host: str, location: str) -> Sighting:
    unknown = Sighting(host, None, "ssdp")
    if urlsplit(location).hostname != host:
        return unknown
    try:
        async with session.get(location, allow_redirects=False) as response:
            if response.status != 200:
                return unknown
            try:
                data = await response.content.readexactly(ssdp.MAX_DESCRIPTION + 1)
            except asyncio.IncompleteReadError as exc:
                data = exc.partial  # the whole of a description within the cap
        description = ssdp.parse_description(data)
    except (aiohttp.ClientError, OSError, TimeoutError, BridgeError) as exc:
        log.debug("%s: no UPnP description: %s", host, exc)
        return unknown
    # The web root, where the description names one on the device itself (the LOCATION's
    # own port is the UPnP server's, often not the camera's pages).
    presentation = urlsplit(urljoin(location, description.presentation_url))
    web_port = (
        presentation.port or 80
        if description.presentation_url
        and presentation.scheme == "http"
        and presentation.hostname == host
        else None
    )
    model = description.model_name or description.model_number
    if description.model_number and description.model_number not in model:
        model = f"{model} {description.model_number}"
    return Sighting(
        host,
        web_port,
        "ssdp",
        manufacturer=description.manufacturer,
        model=model,
        serial=description.serial_number,
        name=description.friendly_name,
    )


async def probe_onvif(
    interfaces: Sequence[str], listen: float, *, port: int = wsdiscovery.PORT
) -> list[Sighting]:
    """ONVIF video transmitters answering a WS-Discovery Probe within ``listen`` seconds;
    name, hardware and MAC come from their ``onvif://www.onvif.org/...`` scopes."""
    if not interfaces:
        return []
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = wsdiscovery.probe([wsdiscovery.NETWORK_VIDEO_TRANSMITTER], [], message_id=message_id)
    replies = await multicast_query(
        wsdiscovery.MULTICAST_GROUP,
        port,
        probe,
        interfaces,
        listen,
        max_datagram=wsdiscovery.MAX_DATAGRAM,
    )
    sightings: dict[tuple[str, str], Sighting] = {}  # one per device, however often it answers
    for data, (host, _) in replies:
        try:
            message = wsdiscovery.parse(data)
        except BridgeError:
            continue
        if not isinstance(message, wsdiscovery.ProbeMatches) or message.relates_to != message_id:
            continue
        for match in message.matches:
            sightings[(host, match.endpoint)] = Sighting(
                host,
                None,
                "wsd",
                model=onvif_scope(match.scopes, "hardware"),
                mac=normalize_mac(onvif_scope(match.scopes, "MAC")),
                name=onvif_scope(match.scopes, "name"),
                onvif_xaddrs=match.xaddrs,
            )
    return list(sightings.values())


def onvif_scope(scopes: Iterable[str], key: str) -> str:
    """The value of ``onvif://www.onvif.org/<key>/<value>`` (key case-insensitive), decoded;
    "" when absent."""
    prefix = f"{ONVIF_SCOPE}{key}/".lower()
    for scope in scopes:
        if scope.lower().startswith(prefix):
            return unquote(scope[len(prefix) :])
    return ""


# -- putting it together ----------------------------------------------------------------------


async def discover(
    targets: Sequence[ipaddress.IPv4Network] | None = None,
    ports: Sequence[int] = DEFAULT_PORTS,
    credentials: Credentials | None = None,
    *,
    concurrency: int = 256,
    wait: float = DEFAULT_WAIT,
    progress: Progress | None = None,
) -> DiscoveryReport:
    """Sweep ``targets`` (None: this machine's own subnets, see :func:`plan`) on ``ports``
    while listening to mDNS, SSDP and WS-Discovery for ``wait`` seconds (also the longest
    silence allowed within an HTTP reply); the sightings merged into one record per device.
    """
    started = time.monotonic()
    planned = plan(targets, ipv4_interfaces())
    for note in planned.notes:
        log.info("%s", note)
    notes = list(planned.notes)
    limits = _Limits(concurrency, CONNECT_TIMEOUT, wait, max(ENDPOINT_TIMEOUT, 3 * wait))
    sweep_endpoints = [(host, port) for port in ports for host in planned.hosts]
    async with asyncio.TaskGroup() as group:
        swept = group.create_task(_sweep_endpoints(sweep_endpoints, credentials, limits, progress))
        heard = [
            group.create_task(_listen(what, source(planned.multicast_from, wait), notes))
            for what, source in (("mdns", browse_mdns), ("ssdp", search_ssdp), ("wsd", probe_onvif))
        ]
    announced = [s for task in heard for s in task.result() if planned.covers(s.host)]
    # Devices announced on a web port the sweep did not knock on get identified too.
    swept_hosts, swept_ports = set(planned.hosts), set(ports)
    hints = sorted(
        {
            (s.host, s.port)
            for s in announced
            if s.port is not None and not (s.host in swept_hosts and s.port in swept_ports)
        }
    )
    late = await _sweep_endpoints(hints, credentials, limits)
    macs = await asyncio.to_thread(read_arp_table)
    return DiscoveryReport(
        found=merge([*swept.result(), *announced, *late], macs),
        addresses=len(planned.hosts),
        ports=tuple(ports),
        elapsed=time.monotonic() - started,
        notes=tuple(notes),
    )


async def _listen(what: str, query: Awaitable[list[Sighting]], notes: list[str]) -> list[Sighting]:
    """One multicast source; its failure (no multicast route, port taken) is a note, not the
    end of the discovery."""
    try:
        return await query
    except (OSError, BridgeError, ZeroconfError) as exc:
        log.warning("%s discovery failed: %s", what, exc)
        notes.append(f"{what} discovery failed: {exc}")
        return []


def merge(sightings: Iterable[Sighting], macs: Mapping[str, str] | None = None) -> list[Found]:
    """One :class:`Found` per address, sorted: sightings of one IP are one device, unless the
    sweep identified cameras on two different ports of it (a video server with one web root
    per camera). Then each sighting joins the camera on its port, or the first one. Each field
    comes from the most telling source that has it (:data:`SOURCES`); the MAC falls back to the
    kernel's neighbour table (``macs``)."""
    by_host: dict[str, list[Sighting]] = defaultdict(list)
    for sighting in sightings:
        by_host[sighting.host].append(sighting)
    found: list[Found] = []
    for host, group in by_host.items():
        group.sort(key=lambda s: SOURCES.index(s.how))
        camera_ports: list[int | None] = [
            *sorted({s.port for s in group if s.how == "http" and s.dialect and s.port is not None})
        ] or [None]
        buckets: dict[int | None, list[Sighting]] = {port: [] for port in camera_ports}
        for sighting in group:
            buckets[sighting.port if sighting.port in buckets else camera_ports[0]].append(sighting)
        found.extend(
            _combine(host, bucket, (macs or {}).get(host, "")) for bucket in buckets.values()
        )
    found.sort(key=lambda f: (ipaddress.IPv4Address(f.address), f.port or 0))
    for record, name in zip(found, suggest_names(found), strict=True):
        record.suggested_name = name
    return found


def _combine(host: str, group: Sequence[Sighting], kernel_mac: str) -> Found:
    def first(attribute: str) -> str:
        return printable(next((value for s in group if (value := getattr(s, attribute))), ""))

    return Found(
        address=host,
        port=next((s.port for s in group if s.port is not None), None),
        dialect=first("dialect"),
        manufacturer=first("manufacturer"),
        model=first("model"),
        firmware=first("firmware"),
        serial=first("serial"),
        mac=first("mac") or kernel_mac,
        name=first("name"),
        found_by={s.how for s in group},
        onvif_xaddrs=tuple(dict.fromkeys(x for s in group for x in s.onvif_xaddrs)),
        detail=printable(
            "; ".join(dict.fromkeys(s.detail for s in group if s.how == "http" and s.detail))
        ),
    )


def printable(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """What a device says about itself, fit for a terminal, a table and a YAML comment: no
    control characters (no escape sequences, no line breaks), at most ``limit`` characters."""
    cleaned = "".join(char if char.isprintable() else " " for char in text[: limit * 2])
    return " ".join(cleaned.split())[:limit]


def suggest_names(found: Sequence[Found]) -> list[str]:
    """A unique config name (``[a-z0-9-]``, at most 63 characters) for each record: its model
    (or dialect), with the address, and then the port, added where that is not unique."""

    def slug(text: str) -> str:
        return _NAME_CHARS.sub("-", text.lower()).strip("-")[:40].strip("-")

    bases = [slug(f.model or f.dialect or f.name) or "camera" for f in found]
    with_host = [f"{base}-{slug(f.address)}" for base, f in zip(bases, found, strict=True)]
    base_counts, host_counts = Counter(bases), Counter(with_host)
    return [
        base
        if base_counts[base] == 1
        else (named if host_counts[named] == 1 else f"{named}-{f.port or 0}")
        for base, named, f in zip(bases, with_host, found, strict=True)
    ]


def unconfigured(found: Iterable[Found], configured_urls: Iterable[str]) -> list[Found]:
    """The legacy cameras (kind "camera") that no configured camera URL points at, compared
    by host and port (http 80, https 443 when the URL names none). Host names in the config
    are compared as written: resolving them is the caller's business."""
    configured: set[tuple[str, int]] = set()
    for text in configured_urls:
        url = URL(text)
        if url.host is not None and url.port is not None:
            configured.add((url.host, url.port))
    return [
        record
        for record in found
        if record.kind == "camera" and (record.address, record.port or 80) not in configured
    ]


# -- output -----------------------------------------------------------------------------------

ONVIF_LABEL = "ONVIF (no gateway needed)"


def format_table(report: DiscoveryReport, *, show_all: bool = False) -> str:
    """One line per camera and ONVIF device (every device with ``show_all``); "" for none."""
    rows = [
        (
            f.url.removeprefix("http://"),
            ONVIF_LABEL if f.kind == "onvif" else f.dialect or "-",
            f.model or f.name or "-",
            f.mac or "-",
            ", ".join(how for how in SOURCES if how in f.found_by),
            f.detail,
        )
        for f in report.found
        if show_all or f.kind != "other"
    ]
    if not rows:
        return ""
    header = ("address", "dialect", "model", "MAC", "found by", "note")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def cameras_block(report: DiscoveryReport, username: str) -> str:
    """A ``cameras:`` config block of every legacy camera found (ready to paste; passes
    ``bridge check-config``), or "" when there is none. Passwords are left for the user.

    YAML itself writes each entry, so no name, URL or user name can break the block (a name
    of digits must be quoted, a user name may hold anything); what the device said about itself
    goes only into comments, made printable by :func:`merge`.
    """
    lines = ["cameras:"]
    for f in report.found:
        if f.kind != "camera":
            continue
        about = [f.url, f.manufacturer, f.model, f.mac and f"MAC {f.mac}", f.detail]
        entry = {
            "name": f.suggested_name,
            "url": f.url,
            "dialect": f.dialect,
            "username": username,
            "password": "",
        }
        dumped = yaml.safe_dump([entry], sort_keys=False, width=1000)  # escapes non-ASCII
        lines.append("  # " + ", ".join(x for x in about if x))
        lines += ["  " + line for line in dumped.splitlines()]
        lines[-1] += "  # the camera's password"  # password is the last key, on one line
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def report_json(report: DiscoveryReport) -> str:
    """The report for scripts: every device (``kind`` tells cameras from the rest)."""
    devices = [
        {
            **dataclasses.asdict(f),
            "found_by": [how for how in SOURCES if how in f.found_by],
            "onvif_xaddrs": list(f.onvif_xaddrs),
            "url": f.url,
            "kind": f.kind,
        }
        for f in report.found
    ]
    return json.dumps(
        {
            "addresses": report.addresses,
            "ports": list(report.ports),
            "elapsed_seconds": round(report.elapsed, 3),
            "notes": list(report.notes),
            "devices": devices,
        },
        indent=2,
    )


class ProgressBar:
    """``[#####.....] 640/1280 probed, 3 found`` on one line of a terminal, redrawn at most
    every ``interval`` seconds (and at the end): thousands of endpoints a second would
    otherwise flood the terminal."""

    def __init__(self, stream: TextIO, *, width: int = 30, interval: float = 0.1) -> None:
        self._stream = stream
        self._width = width
        self._interval = interval
        self._drawn_at = float("-inf")
        self._length = 0

    def __call__(self, done: int, total: int, found: int) -> None:
        now = time.monotonic()
        if done < total and now - self._drawn_at < self._interval:
            return
        self._drawn_at = now
        filled = self._width * done // total if total else self._width
        line = (
            f"[{'#' * filled}{'.' * (self._width - filled)}] {done}/{total} probed, {found} found"
        )
        self._stream.write("\r" + line)
        self._stream.flush()
        self._length = len(line)

    def clear(self) -> None:
        """Erase the bar, so what follows starts on a clean line."""
        if self._length:
            self._stream.write("\r" + " " * self._length + "\r")
            self._stream.flush()
            self._length = 0
