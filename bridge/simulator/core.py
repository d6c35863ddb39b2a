"""What every emulated camera shares: HTTP serving, auth, request log, state, media pacing.

A dialect module subclasses :class:`SimulatedCamera`, declares its Server header, realm, auth
scheme and whether its firmware speaks HTTP/1.0, and returns its CGI routes. This module adds:

- the dialect's auth (Basic, Digest or query credentials) in front of every non-public route;
- a log of every CGI request received, at ``GET /__sim__/requests`` (``DELETE`` clears it);
- test controls that play the outside world: ``POST /__sim__/motion?active=1&level=80``
  (the dialect's motion detection reports it, and the picture's box moves meanwhile),
  ``POST /__sim__/input?port=1&active=1``, and ``GET /__sim__/state``;
- misbehaviour on command, for every dialect's streams and snapshots alike:
  ``POST /__sim__/fault?mode=garbage|stall|drip|reset|corrupt|oversized|flap&...``
  (:mod:`bridge.simulator.faults`; ``GET`` shows the fault and what it did, ``mode=none``
  clears it);
- shared camera state (:class:`SimState`: PTZ mechanics, imaging, relays, inputs, motion, clock)
  with a change notification the event endpoints wait on;
- :class:`FrameHub` and :class:`AudioHub`: one renderer/encoder per camera paced in real time,
  however many clients stream, so the picture and sound are the same for everyone.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.http import HttpVersion10

from bridge.cameras.base import AudioCodec, PtzGeometry, PtzVector
from bridge.httpauth import DigestAuthority, basic_credentials
from bridge.simulator import announce
from bridge.simulator.faults import Fault, FaultMode, Faults, reset_transport
from bridge.simulator.media import TestPattern, ToneEncoder

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_LOG_SIZE = 1000
SIM_PREFIX = "/__sim__/"
FAULTS = web.AppKey("faults", Faults)


@dataclass(frozen=True, slots=True)
class SimOptions:
    username: str = "admin"
    password: str = "admin"
    width: int = 640
    height: int = 480
    fps: float = 10.0
    # Spread of the intervals between pictures, as a fraction of the nominal one: 0.4 sends
    # each picture 0.6 to 1.4 intervals after the last, like a camera on Wi-Fi.
    jitter: float = 0.0
    mac: str = "00:11:22:33:44:55"
    serial: str = ""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # last value wins, as the firmware reads it
    form: dict[str, str]  # url-encoded POST body fields
    time: float
    authenticated_user: str
    query_string: str = ""
    content_type: str = ""
    body_size: int = 0


def _clamp(value: float, low: float = -1.0, high: float = 1.0) -> float:
    return min(high, max(low, value))


@dataclass
class PtzMechanics:
    """A pan/tilt/zoom head in normalized units that moves at a velocity until told to stop.

    ``geometry`` is what the emulated unit is in the world: its travel and lens, which tests
    measure moves by (the rendered picture shows movement, not to scale), and how fast it
    turns at velocity 1 and top ``speed`` (the fraction of its top speed it is set to).
    """

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    velocity: PtzVector = field(default_factory=PtzVector)
    geometry: PtzGeometry = field(default_factory=PtzGeometry)
    speed: float = 1.0
    _since: float = field(default_factory=time.monotonic)

    def _settle(self) -> None:
        now = time.monotonic()
        dt = now - self._since
        self._since = now
        v, head = self.velocity, self.geometry
        if v.pan or v.tilt or v.zoom:
            scale = self.speed * dt
            self.pan = _clamp(self.pan + v.pan * head.pan_rate * 2 / head.pan_degrees * scale)
            self.tilt = _clamp(self.tilt + v.tilt * head.tilt_rate * 2 / head.tilt_degrees * scale)
            self.zoom = _clamp(self.zoom + v.zoom * head.zoom_rate * scale, 0.0, 1.0)

    def position(self) -> PtzVector:
        self._settle()
        return PtzVector(self.pan, self.tilt, self.zoom)

    def move(self, velocity: PtzVector) -> None:
        self._settle()
        self.velocity = velocity

    def stop(self) -> None:
        self.move(PtzVector())

    def go_to(self, position: PtzVector) -> None:
        """Jump to a position (the emulator does not animate absolute moves)."""
        self._settle()
        self.velocity = PtzVector()
        self.pan, self.tilt = _clamp(position.pan), _clamp(position.tilt)
        self.zoom = _clamp(position.zoom, 0.0, 1.0)

    def step(self, delta: PtzVector) -> None:
        here = self.position()
        self.go_to(PtzVector(here.pan + delta.pan, here.tilt + delta.tilt, here.zoom + delta.zoom))


class SimState:
    """State shared by a camera's endpoints and its rendered picture.

    Dialect modules keep their vendor-native values (ranges, preset slots) in their own
    objects and use these normalized ones for what the picture and the events show.
    """

    def __init__(self, relays: int = 1, inputs: int = 1, head: PtzGeometry | None = None) -> None:
        self.ptz = PtzMechanics(geometry=head or PtzGeometry())
        self.mirror = False
        self.flip = False
        self.relays = [False] * relays
        self.inputs = [False] * inputs
        self.motion_active = False
        self.motion_level = 0
        self.clock_offset = 0.0  # seconds added to the host clock by "set date/time"
        self.reboots = 0
        self.factory_resets = 0
        self.faults = Faults()  # what the camera does wrong, on command
        self._version = 0
        self._changed = asyncio.Condition()

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.clock_offset)

    def set_clock(self, value: datetime.datetime) -> None:
        self.clock_offset = (value - datetime.datetime.now(datetime.UTC)).total_seconds()

    async def notify(self) -> None:
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    async def wait_changed(self, seen_version: int, within: float) -> int:
        """Wait (at most ``within`` s) for a version past ``seen_version``; returns it."""
        async with self._changed:
            with suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._version != seen_version), within
                )
            return self._version

    @property
    def version(self) -> int:
        return self._version

    def as_json(self) -> dict[str, Any]:
        position = self.ptz.position()
        return {
            "ptz": asdict(position),
            "ptz_velocity": asdict(self.ptz.velocity),
            "ptz_geometry": asdict(self.ptz.geometry),
            "mirror": self.mirror,
            "flip": self.flip,
            "relays": self.relays,
            "inputs": self.inputs,
            "motion_active": self.motion_active,
            "motion_level": self.motion_level,
            "clock": self.now().isoformat(),
            "reboots": self.reboots,
            "factory_resets": self.factory_resets,
        }


class FrameHub:
    """Renders the camera's picture at its frame rate while anyone watches.

    One render per tick is shared by every subscriber; each subscriber holds at most the newest
    frame, so a slow client skips frames instead of queueing them.

    The scene is calm (only the clock and the frame counter change) until the outside world
    makes motion (``SimState.motion_active``): then the test pattern's box moves, one step per
    frame, and stands where it got to once motion ends. That is motion in the picture for a
    detector that looks at pixels, whatever the dialect's CGI reports.
    """

    # Steps the box has moved before the scene starts: clear of the clock, whatever the size.
    BOX_START = 30

    def __init__(self, options: SimOptions, state: SimState) -> None:
        self._options = options
        self._state = state
        self._pattern = TestPattern(options.width, options.height)
        self._render_lock = asyncio.Lock()  # TestPattern is not thread-safe
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._task: asyncio.Task[None] | None = None
        self._frame_number = 0
        self._box_travel = self.BOX_START
        self.latest: bytes | None = None

    @property
    def rendered(self) -> int:
        """Pictures made so far: what a viewer downstream should have had, to count losses."""
        return self._frame_number

    async def render(self) -> bytes:
        state = self._state
        position = state.ptz.position()
        async with self._render_lock:
            self._frame_number += 1
            if state.motion_active:
                self._box_travel += 1
            self.latest = await asyncio.to_thread(
                self._pattern.render,
                self._frame_number,
                state.now(),
                position.pan,
                position.tilt,
                position.zoom,
                state.mirror,
                state.flip,
                self._box_travel,
            )
            return self.latest

    async def snapshot(self) -> bytes:
        latest = self.latest
        jpeg = await self.render() if self._task is None or latest is None else latest
        return self._state.faults.picture(jpeg)

    async def _run(self) -> None:
        interval = 1.0 / self._options.fps
        jitter = self._options.jitter
        spread = random.Random(self._options.mac)  # seeded: the same spread every run
        deadline = time.monotonic()
        while self._subscribers:
            frame = await self.render()
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(frame)
            step = interval * (1 + spread.uniform(-jitter, jitter)) if jitter else interval
            deadline = max(deadline + step, time.monotonic() - interval)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def frames(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            while True:
                yield self._state.faults.picture(await queue.get())
        finally:
            self._subscribers.discard(queue)

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class AudioHub:
    """A continuous tone in one codec, handed out in real-time-paced chunks."""

    def __init__(self, codec: AudioCodec, chunk_seconds: float = 0.1) -> None:
        self.codec = codec
        self.chunk_seconds = chunk_seconds

    async def chunks(self) -> AsyncIterator[bytes]:
        encoder = ToneEncoder(self.codec)
        deadline = time.monotonic()
        while True:
            yield encoder.next_chunk(self.chunk_seconds)
            deadline += self.chunk_seconds
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))


@dataclass(frozen=True, slots=True)
class Presence:
    """How a camera family made itself known on the LAN (see :mod:`bridge.simulator.announce`):
    UPnP/SSDP, and/or a Bonjour service type."""

    manufacturer: str
    model: str
    ssdp: bool = False
    mdns_type: str | None = None


class SimAuth:
    """Which credential scheme a firmware family demands."""

    BASIC = "basic"
    DIGEST = "digest"
    QUERY_OR_BASIC = "query_or_basic"  # Foscam: user=&pwd= in the query, or Basic


class SimulatedCamera:
    """Base of the emulated cameras; a dialect overrides the class constants and routes()."""

    dialect: ClassVar[str]
    server_header: ClassVar[str]
    realm: ClassVar[str]
    auth_scheme: ClassVar[str] = SimAuth.BASIC
    http10: ClassVar[bool] = True  # most of these firmwares answer HTTP/1.0 and close
    relay_count: ClassVar[int] = 1
    input_count: ClassVar[int] = 1
    presence: ClassVar[Presence | None] = None  # None: it announced itself by no standard
    head: ClassVar[PtzGeometry] = PtzGeometry()  # its PTZ head's travel, lens and rates

    def __init__(self, options: SimOptions | None = None) -> None:
        self.options = options or SimOptions()
        self.state = SimState(relays=self.relay_count, inputs=self.input_count, head=self.head)
        self.video = FrameHub(self.options, self.state)
        self.requests: deque[RecordedRequest] = deque(maxlen=REQUEST_LOG_SIZE)
        self.digest = DigestAuthority(self.realm)

    # -- to override ------------------------------------------------------------------------

    def routes(self) -> Iterable[web.RouteDef]:
        raise NotImplementedError

    def is_public(self, request: web.Request) -> bool:
        """Paths the firmware serves without credentials."""
        return False

    def password_of(self, username: str) -> str | None:
        """The password of a known user; dialects with user tables override this."""
        return self.options.password if username == self.options.username else None

    def unauthorized(self, request: web.Request) -> web.StreamResponse:
        """The firmware's answer to missing or wrong credentials."""
        if self.auth_scheme == SimAuth.DIGEST:
            challenge = self.digest.challenge()
        else:
            challenge = f'Basic realm="{self.realm}"'
        return web.Response(
            status=401,
            text="401 Unauthorized\r\n",
            headers={"WWW-Authenticate": challenge},
        )

    async def on_motion_or_input(self) -> None:
        """Called after a test changed motion or an input (before waiters are woken)."""

    # -- machinery --------------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if self.auth_scheme == SimAuth.DIGEST:
            return self.digest.verify(request.method, header, self.password_of) if header else None
        if self.auth_scheme == SimAuth.QUERY_OR_BASIC and "user" in request.query:
            user = request.query.get("user", "")
            ok = self.password_of(user) == request.query.get("pwd", "")
            return user if ok else None
        creds = basic_credentials(header) if header else None
        if creds is not None and self.password_of(creds[0]) == creds[1]:
            return creds[0]
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.http10:
            # These firmwares speak HTTP/1.0: no chunked bodies, close after each reply.
            request._message = request._message._replace(version=HttpVersion10)
            request._version = HttpVersion10  # what the response's status line is built from
        if request.path.startswith(SIM_PREFIX):
            response = await handler(request)
        else:
            public = self.is_public(request) or request.path == announce.DESCRIPTION_PATH
            user = "" if public else self.authenticate(request)
            form: dict[str, str] = {}
            if request.method == "POST" and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = {k: str(v) for k, v in (await request.post()).items()}
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    form=form,
                    time=time.time(),
                    authenticated_user=user or "",
                    query_string=request.query_string,
                    content_type=request.content_type,
                    body_size=request.content_length or 0,
                )
            )
            if user is None:
                response = self.unauthorized(request)
            else:
                response = await handler(request)
            response = await self.state.faults.reply(request, response)
        return response

    async def _on_response_prepare(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        """Runs before any response's headers go out, streamed ones included."""
        if self.http10:
            response.force_close()
        response.headers["Server"] = self.server_header

    async def _sim_requests(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.requests.clear()
            return web.json_response({"cleared": True})
        return web.json_response([asdict(r) for r in self.requests])

    async def _sim_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.as_json())

    async def _sim_motion(self, request: web.Request) -> web.Response:
        active = request.query.get("active", "1") not in ("0", "false")
        self.state.motion_active = active
        self.state.motion_level = int(request.query.get("level", "80" if active else "0"))
        await self.on_motion_or_input()
        await self.state.notify()
        return web.json_response(self.state.as_json())

    async def _sim_fault(self, request: web.Request) -> web.Response:
        faults = self.state.faults
        if request.method == "POST":
            try:
                fault = Fault.from_query(request.query, time.monotonic())
                seed = int(request.query["seed"]) if "seed" in request.query else None
            except ValueError as exc:
                raise web.HTTPBadRequest(text=f"{exc}\n") from None
            await faults.set(fault, seed=seed)
        return web.json_response(faults.as_json())

    async def _sim_input(self, request: web.Request) -> web.Response:
        port = int(request.query.get("port", "1"))
        if not 1 <= port <= len(self.state.inputs):
            raise web.HTTPNotFound(text=f"no input {port}")
        self.state.inputs[port - 1] = request.query.get("active", "1") not in ("0", "false")
        await self.on_motion_or_input()
        await self.state.notify()
        return web.json_response(self.state.as_json())

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app[FAULTS] = self.state.faults
        app.on_response_prepare.append(self._on_response_prepare)
        app.add_routes(
            [
                web.get(SIM_PREFIX + "requests", self._sim_requests),
                web.delete(SIM_PREFIX + "requests", self._sim_requests),
                web.get(SIM_PREFIX + "state", self._sim_state),
                web.post(SIM_PREFIX + "motion", self._sim_motion),
                web.post(SIM_PREFIX + "input", self._sim_input),
                web.get(SIM_PREFIX + "fault", self._sim_fault),
                web.post(SIM_PREFIX + "fault", self._sim_fault),
            ]
        )
        app.add_routes(list(self.routes()))
        if self.presence is not None and self.presence.ssdp:
            app.router.add_get(announce.DESCRIPTION_PATH, partial(announce.description, self))

        async def close_media(_: web.Application) -> None:
            await self.video.close()

        app.on_cleanup.append(close_media)
        return app


def jpeg_part(boundary: str, jpeg: bytes) -> bytes:
    """One MJPEG part in the common form: delimiter line first, type and length, CRLF after."""
    head = f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


async def stream_multipart(
    request: web.Request,
    content_type: str,
    parts: AsyncIterator[bytes],
    *,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Send already-formatted multipart parts (delimiter, headers and body each) until the
    client leaves; the dialect decides the exact bytes so quirks stay visible in its module.
    A fault set on the camera applies to each part as it goes out."""
    response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
    response.force_close()
    await response.prepare(request)
    faults = request.app.get(FAULTS)
    try:
        async for part in parts:
            if faults is None:
                await response.write(part)
            else:
                await faults.write(request, response, part)
    except ConnectionError:
        pass
    return response


@dataclass
class RunningSimulator:
    camera: SimulatedCamera
    runner: web.AppRunner
    host: str
    port: int
    announcements: announce.Announcements | None = None
    _flapping: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def follow_faults(self) -> None:
        """Take the camera off the network and back while its fault is ``flap``."""
        self._flapping = asyncio.create_task(self._flap(), name=f"flapping {self.url}")

    async def _flap(self) -> None:
        faults = self.camera.state.faults
        version = faults.version
        while True:
            fault = faults.fault
            if fault.mode is not FaultMode.FLAP:
                version = await faults.wait_changed(version)
                continue
            version = faults.version
            if await self._outlasts(fault.up, version):
                continue  # the fault changed while the camera was up
            faults.applied[FaultMode.FLAP] += 1
            for site in list(self.runner.sites):
                await site.stop()
            for connection in self.runner.server.connections if self.runner.server else ():
                if connection.transport is not None:
                    reset_transport(connection.transport)
            try:
                await self._outlasts(fault.down, version)
            finally:
                await web.TCPSite(self.runner, self.host, self.port).start()

    async def _outlasts(self, seconds: float, version: int) -> bool:
        """Wait ``seconds`` unless the fault changes first; True when it changed (or ran out)."""
        faults = self.camera.state.faults
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and faults.version == version:
            await faults.wait_changed(version, within=left)
        return faults.fault.mode is not FaultMode.FLAP or faults.version != version

    async def stop(self) -> None:
        if self._flapping is not None:
            self._flapping.cancel()
            await asyncio.gather(self._flapping, return_exceptions=True)
        if self.announcements is not None:
            await self.announcements.stop()
        await self.runner.cleanup()


async def start_simulator(
    camera: SimulatedCamera, host: str = "127.0.0.1", port: int = 0, *, announce_it: bool = False
) -> RunningSimulator:
    """Serve ``camera`` on host:port (0 picks a free port); returns where it listens.
    ``announce_it``: announce it on the LAN as its family did (on the interface of ``host``)."""
    runner = web.AppRunner(
        camera.build_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    running = RunningSimulator(camera, runner, host, bound_port)
    running.follow_faults()
    if announce_it:
        running.announcements = announce.Announcements(camera, host, bound_port)
        try:
            await running.announcements.start()
        except BaseException:
            await running.stop()
            raise
    return running


@asynccontextmanager
async def simulated(
    camera: SimulatedCamera, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(camera, host, port)
    try:
        yield running
    finally:
        await running.stop()
