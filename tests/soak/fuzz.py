"""RTSP and SOAP fuzzers: valid messages, mutated by a seeded random source (byte flips,
truncation, duplicated and huge headers, CR/LF/NUL injection, XML bombs ...), sent at a bounded
rate from their own loopback address. What the gateway answers is only counted; what is checked
is that it stays up and answers a well-formed request afterwards (from another address, so a
per-address limit on the fuzzer cannot fail the check).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.onvif.soap import Service
from soak.gateway import FUZZER, User
from soak.onvif_clients import envelope, security_header

REPLY_WAIT = 2.0  # how long a fuzz case waits for an answer before closing
HEALTH_TIMEOUT = 5.0
HEALTH_EVERY = 20  # cases between health checks
MAX_REPLY = 64 * 1024
RECENT_CASES = 10
MAX_SUSPECT = 2000  # bytes of a case kept as evidence
MAX_SUSPECT_SETS = 5

Mutation = Callable[[bytes, random.Random], bytes]


@dataclass
class FuzzStats:
    cases: int = 0
    answered: int = 0  # a status line came back
    closed: int = 0  # closed (or reset) without one
    silent: int = 0  # nothing within REPLY_WAIT
    refused: int = 0  # could not connect
    health_ok: int = 0
    health_failed: int = 0
    mutations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    # The cases sent just before each failed health check (wall clock, mutation, bytes), to
    # replay what broke the gateway.
    suspects: list[list[tuple[str, str, str]]] = field(default_factory=list)


# -- mutations ----------------------------------------------------------------------------------


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


def _head_and_body(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def duplicate_header(data: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(data)
    if len(lines) < 2:
        return data
    line = rng.choice(lines[1:])
    at = rng.randrange(1, len(lines) + 1)
    return _join([*lines[:at], *[line] * rng.choice((1, 2, 50, 500)), *lines[at:]], body)


def huge_value(data: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(data)
    at = rng.randrange(len(lines))
    size = rng.choice((1024, 16 * 1024, 256 * 1024))
    lines[at] = lines[at] + b"A" * size
    return _join(lines, body)


def inject_control(data: bytes, rng: random.Random) -> bytes:
    """A bare CR, a bare LF, a NUL or CRLF (header splitting) inside a header line."""
    lines, body = _head_and_body(data)
    at = rng.randrange(len(lines))
    line = lines[at]
    cut = rng.randrange(len(line) + 1)
    junk = rng.choice((b"\r", b"\n", b"\x00", b"\r\nX-Injected: 1", b"\r \r"))
    lines[at] = line[:cut] + junk + line[cut:]
    return _join(lines, body)


def malformed_credentials(data: bytes, rng: random.Random) -> bytes:
    """A header line the parser must refuse, carrying a real Basic credential (which must then
    never reach the log)."""
    lines, body = _head_and_body(data)
    token = base64.b64encode(f"{FUZZER.name}:{FUZZER.password}".encode())
    bad = rng.choice(
        (
            b"Authorization Basic " + token,  # no colon
            b" Authorization: Basic " + token,  # obsolete line folding
            b"Authorization: Basic " + token + b"\x00",
            b"Authorization: Basic\r" + token,
        )
    )
    lines.insert(rng.randrange(1, len(lines) + 1), bad)
    return _join(lines, body)


def bad_length(data: bytes, rng: random.Random) -> bytes:
    lines, body = _head_and_body(data)
    value = rng.choice((b"-1", b"99999999999", b"abc", b"1e3", b" 5", b"18446744073709551617"))
    return _join([*lines, b"Content-Length: " + value], body)


MUTATIONS: dict[str, Mutation] = {
    "flip": flip_bytes,
    "truncate": truncate,
    "duplicate": duplicate_header,
    "huge": huge_value,
    "control": inject_control,
    "credentials": malformed_credentials,
    "length": bad_length,
}


# -- seeds --------------------------------------------------------------------------------------


def basic(user: User) -> str:
    return "Basic " + base64.b64encode(f"{user.name}:{user.password}".encode()).decode()


def rtsp_seeds(url: str, client_port: int) -> list[bytes]:
    auth = basic(FUZZER)
    lines = [
        f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1",
        f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {auth}\r\nAccept: application/sdp",
        f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: {auth}\r\n"
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
        f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: {auth}\r\n"
        f"Transport: RTP/AVP;unicast;client_port={client_port}-{client_port + 1}",
        f"PLAY {url} RTSP/1.0\r\nCSeq: 4\r\nAuthorization: {auth}\r\nSession: 0123456789abcdef\r\n"
        "Range: npt=0.000-",
        f"GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 5\r\nAuthorization: {auth}\r\n"
        "Content-Type: text/parameters\r\nContent-Length: 8\r\n\r\nposition",
        f"TEARDOWN {url} RTSP/1.0\r\nCSeq: 6\r\nAuthorization: {auth}\r\nSession: 0123456789abcdef",
    ]
    return [(line if "\r\n\r\n" in line else line + "\r\n\r\n").encode() for line in lines]


def http_post(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def soap_seeds() -> list[bytes]:
    """Envelopes of reads (no call that changes state, so a mutation that still passes cannot
    change what the other clients see), and XML attacks."""
    token = security_header(FUZZER)
    bodies = [
        (Service.DEVICE, "<m:GetSystemDateAndTime/>", ""),
        (Service.DEVICE, "<m:GetDeviceInformation/>", token),
        (Service.DEVICE, "<m:GetUsers/>", token),
        (Service.MEDIA, "<m:GetProfiles/>", token),
        (Service.MEDIA2, "<m:GetProfiles><m:Type>All</m:Type></m:GetProfiles>", token),
        (Service.PTZ, "<m:GetStatus><m:ProfileToken>main</m:ProfileToken></m:GetStatus>", token),
        (Service.EVENTS, "<m:GetEventProperties/>", token),
    ]
    seeds = [
        http_post(service.path, envelope(service, body, head)) for service, body, head in bodies
    ]
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
        )
        + b"]><s>&i;</s>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + envelope(Service.DEVICE, "<m:GetHostname>&x;</m:GetHostname>").split(b"?>", 1)[1]
    )
    deep = b"<a>" * 50_000 + b"</a>" * 50_000
    seeds += [http_post(Service.DEVICE.path, body) for body in (laughs, external, deep)]
    return seeds


# -- running ------------------------------------------------------------------------------------


async def exchange(
    port: int, data: bytes, local_host: str, stats: FuzzStats, status_prefix: bytes
) -> None:
    """Send one case and count what comes back within REPLY_WAIT."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(local_host, 0)
        )
    except OSError:
        stats.refused += 1
        return
    try:
        writer.write(data)
        async with asyncio.timeout(REPLY_WAIT):
            reply = await reader.read(MAX_REPLY)
        if reply.startswith(status_prefix):
            stats.answered += 1
            stats.statuses[reply.split(b" ", 2)[1].decode("latin-1")[:3]] += 1
        else:
            stats.closed += 1
    except TimeoutError:
        stats.silent += 1
    except ConnectionError:
        stats.closed += 1
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def healthy(port: int, request: bytes, expect: bytes, local_host: str) -> bool:
    """Whether a well-formed request gets its expected status line in time."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(local_host, 0)
            )
            try:
                writer.write(request)
                return (await reader.readuntil(b"\r\n")).startswith(expect)
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False


class Fuzzer:
    """Cases at ``rate`` per second against one port, a health check every HEALTH_EVERY."""

    def __init__(
        self,
        port: int,
        seeds: Callable[[], list[bytes]],
        status_prefix: bytes,
        health_request: bytes,
        health_expect: bytes,
        *,
        rate: float,
        rng: random.Random,
        local_host: str,
        health_host: str,
    ) -> None:
        self.stats = FuzzStats()
        self._port = port
        self._seeds = seeds
        self._status_prefix = status_prefix
        self._health = (health_request, health_expect)
        self._rate = rate
        self._rng = rng
        self._local_host = local_host
        self._health_host = health_host
        self._recent: deque[tuple[str, str, str]] = deque(maxlen=RECENT_CASES)

    def case(self) -> tuple[str, bytes]:
        name, mutate = self._rng.choice(list(MUTATIONS.items()))
        data = self._rng.choice(self._seeds())  # fresh: a WS-Security token is for one use
        for _ in range(self._rng.choice((1, 1, 1, 2, 3))):
            data = mutate(data, self._rng) or data
        return name, data

    async def run(self, stop: asyncio.Event) -> None:
        interval = 1.0 / self._rate
        next_case = time.monotonic()
        while not stop.is_set():
            name, data = self.case()
            self._recent.append((time.strftime("%H:%M:%S"), name, repr(data[:MAX_SUSPECT])))
            self.stats.cases += 1
            self.stats.mutations[name] += 1
            await exchange(self._port, data, self._local_host, self.stats, self._status_prefix)
            if self.stats.cases % HEALTH_EVERY == 0:
                await self.check()
            next_case = max(next_case + interval, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next_case - time.monotonic())
        await self.check()

    async def check(self) -> None:
        ok = await healthy(self._port, *self._health, self._health_host)
        if ok:
            self.stats.health_ok += 1
        else:
            self.stats.health_failed += 1
            if len(self.stats.suspects) < MAX_SUSPECT_SETS:
                self.stats.suspects.append(list(self._recent))


def rtsp_fuzzer(
    rtsp_port: int, camera: str, rng: random.Random, rate: float, hosts: tuple[str, str]
) -> Fuzzer:
    url = f"rtsp://127.0.0.1:{rtsp_port}/{camera}/main"
    options = f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()
    return Fuzzer(
        rtsp_port,
        lambda: rtsp_seeds(url, 5000),
        b"RTSP/1.0 ",
        options,
        b"RTSP/1.0 200",
        rate=rate,
        rng=rng,
        local_host=hosts[0],
        health_host=hosts[1],
    )


def soap_fuzzer(onvif_port: int, rng: random.Random, rate: float, hosts: tuple[str, str]) -> Fuzzer:
    time_request = http_post(
        Service.DEVICE.path, envelope(Service.DEVICE, "<m:GetSystemDateAndTime/>")
    )
    return Fuzzer(
        onvif_port,
        soap_seeds,
        b"HTTP/1.1 ",
        time_request,
        b"HTTP/1.1 200",
        rate=rate,
        rng=rng,
        local_host=hosts[0],
        health_host=hosts[1],
    )
