"""The vapix2 driver against its emulator on loopback, the emulator's own quirks, and the pure
parsers fed with the example replies of the dialect's document (seed 004)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from conftest import OpenHttp, StartSim
from helpers import (
    FFPROBE,
    decode_jpeg,
    dominant_frequency,
    ffprobe,
    probe_first_video_frames,
    with_userinfo,
)

from bridge.cameras import vapix2
from bridge.cameras.base import (
    AudioCodec,
    AudioFormat,
    CameraEvent,
    Capabilities,
    DeviceInfo,
    DigitalInput,
    EventKind,
    ImagingField,
    ImagingSettings,
    Preset,
    PtzCapabilities,
    PtzVector,
    RelayOutput,
)
from bridge.cameras.http import CameraHttp
from bridge.cameras.multipart import MultipartParser, boundary_from_content_type
from bridge.cameras.vapix2 import Vapix2Driver
from bridge.errors import AuthenticationFailed, BadResponse, UnsupportedOperation
from bridge.simulator import vapix2 as sim_vapix2
from bridge.simulator.core import RecordedRequest, RunningSimulator, SimOptions, SimulatedCamera
from bridge.simulator.media import ToneEncoder
from bridge.simulator.vapix2 import Vapix2Simulator

USER, PASSWORD = "root", "pass-4711"
WIDTH, HEIGHT = 320, 240
MAC = "00:40:8C:1A:2B:3C"
OPTIONS = SimOptions(
    username=USER, password=PASSWORD, width=WIDTH, height=HEIGHT, fps=8, mac=MAC.lower()
)
TONE_HZ = 440.0  # what the emulator's ToneEncoder plays
MULAW = AudioFormat(AudioCodec.MULAW)
G726_32 = AudioFormat(AudioCodec.G726, bits_per_sample=4)
DEADLINE = 5.0
T = TypeVar("T")


@dataclass
class Rig:
    sim: RunningSimulator
    camera: Vapix2Simulator
    http: CameraHttp
    driver: Vapix2Driver


@pytest.fixture
async def rig(start_sim: StartSim, open_http: OpenHttp) -> Rig:
    camera = Vapix2Simulator(OPTIONS)
    sim = await start_sim(camera)
    http = open_http(sim.url, USER, PASSWORD)
    driver = Vapix2Driver(http)
    await driver.connect()
    camera.requests.clear()
    return Rig(sim, camera, http, driver)


def closing(stream: AsyncIterator[T]) -> aclosing[AsyncGenerator[T, None]]:
    """The driver's streams are async generators: close them however a test leaves."""
    assert isinstance(stream, AsyncGenerator)
    return aclosing(stream)


def calls(camera: SimulatedCamera) -> list[tuple[str, str, dict[str, str]]]:
    """The authenticated requests the camera acted on (the 401 round trips left out)."""
    return [(r.method, r.path, r.query) for r in camera.requests if r.authenticated_user]


def authed(camera: SimulatedCamera) -> list[RecordedRequest]:
    return [r for r in camera.requests if r.authenticated_user]


async def poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def sim_control(rig: Rig, path: str, **params: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{rig.sim.url}/__sim__/{path}", params=params) as reply,
    ):
        assert reply.status == 200


def dominant_hz(fmt: AudioFormat, data: bytes) -> float:
    decoder = av.CodecContext.create(fmt.codec.value, "r")
    decoder.sample_rate = fmt.sample_rate
    decoder.layout = "mono"
    if fmt.codec is AudioCodec.G726:
        decoder.options = {"bits_per_coded_sample": str(fmt.bits_per_sample)}
    pcm = np.concatenate(
        [frame.to_ndarray().reshape(-1) for frame in decoder.decode(av.Packet(data))]
    ).astype(np.float64)
    assert pcm.size >= 800, "under 0.1 s of audio decoded"
    assert np.abs(pcm).max() > 1000, "silence"
    return dominant_frequency(pcm, fmt.sample_rate, window=False)


# -- identification and connection ------------------------------------------------------------


async def test_detect_answers_true_with_one_param_request(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))
    http = open_http(sim.url, USER, PASSWORD)

    assert await Vapix2Driver.detect(http) is True
    assert calls(sim.camera) == [("GET", "/param.cgi", {"action": "list", "group": "Brand"})]


async def test_fingerprint_names_the_family_by_its_realm(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))
    fingerprint = await open_http(sim.url).fingerprint()

    assert (fingerprint.server, fingerprint.realm) == ("Boa/0.94.13", "AXIS_00408C1A2B3C")
    assert fingerprint.challenge == "digest"
    assert Vapix2Driver.matches_fingerprint(fingerprint.server, fingerprint.realm)
    assert not Vapix2Driver.matches_fingerprint("Boa/0.94.13", "IPCamera")
    assert not Vapix2Driver.matches_fingerprint("Netwave IP Camera", "")


class NotAVapixCamera(SimulatedCamera):
    """Another web server: an HTML page at ``page_at``, 404 everywhere else."""

    dialect = "none"
    server_header = "thttpd/2.25b"
    realm = "ipcam"

    def __init__(self, page_at: str) -> None:
        super().__init__()
        self.page_at = page_at

    def routes(self) -> list[web.RouteDef]:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html><body>Welcome</body></html>", content_type="text/html")

        return [web.get(self.page_at, page)]

    def is_public(self, request: web.Request) -> bool:
        return True


@pytest.mark.parametrize("page_at", ["/param.cgi", "/index.html"])
async def test_detect_answers_false_elsewhere(
    start_sim: StartSim, open_http: OpenHttp, page_at: str
) -> None:
    sim = await start_sim(NotAVapixCamera(page_at))

    assert await Vapix2Driver.detect(open_http(sim.url, USER, PASSWORD)) is False
    # Where the seed's param.cgi is missing, Axis's is asked too (real units serve it there).
    tried = (
        ["/param.cgi"]
        if page_at == "/param.cgi"
        else ["/param.cgi", vapix2.AXIS_CGI_PATHS["/param.cgi"]]
    )
    assert [r.path for r in sim.camera.requests] == tried


async def test_wrong_password_is_authentication_failed(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))
    http = open_http(sim.url, USER, "wrong")

    with pytest.raises(AuthenticationFailed) as failure:
        await Vapix2Driver.detect(http)
    with pytest.raises(AuthenticationFailed):
        await Vapix2Driver(http).connect()
    assert "wrong" not in str(failure.value)
    assert not authed(sim.camera)


async def test_connect_reads_device_info_and_capabilities(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))
    driver = Vapix2Driver(open_http(sim.url, USER, PASSWORD))

    info = await driver.connect()

    assert (info.manufacturer, info.model, info.firmware) == ("AXIS", "AXIS 213 PTZ", "4.40")
    assert (info.serial, info.mac, info.hardware_id) == ("00408C1A2B3C", MAC, "14D")
    caps = driver.capabilities
    assert caps.resolution == (WIDTH, HEIGHT)
    assert (caps.audio_in, caps.audio_out) == (MULAW, MULAW)
    assert caps.ptz == PtzCapabilities(
        continuous=True,
        relative=True,
        absolute=True,
        zoom=True,
        presets=20,
        home=True,
        set_home=True,
        speed=True,
        position=True,
    )
    assert caps.imaging == frozenset(ImagingField)
    assert (caps.relay_outputs, caps.digital_inputs) == (1, 2)
    assert (caps.motion_events, caps.input_events) == (True, True)
    system = (caps.get_datetime, caps.set_datetime, caps.reboot, caps.factory_default)
    assert system == (True, True, True, True)
    assert calls(sim.camera) == [
        ("GET", "/param.cgi", {"action": "list", "group": ",".join(vapix2.CONNECT_GROUPS)}),
        ("GET", "/com/ptz.cgi", {"info": "1"}),
        ("GET", "/imagesize.cgi", {"camera": "1"}),
    ]
    # The emulator's own log endpoint shows the same, with the Digest user.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.url}/__sim__/requests") as reply,
    ):
        log = await reply.json()
    served = [(r["path"], r["query"]) for r in log if r["authenticated_user"] == USER]
    assert served[1:] == [("/com/ptz.cgi", {"info": "1"}), ("/imagesize.cgi", {"camera": "1"})]


async def test_device_info_with_a_serial_of_its_own(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    options = SimOptions(username=USER, password=PASSWORD, mac="00-40-8c-00-00-01", serial="X7")
    sim = await start_sim(Vapix2Simulator(options))
    driver = Vapix2Driver(open_http(sim.url, USER, PASSWORD))

    info = await driver.device_info()

    assert (info.serial, info.mac) == ("X7", "00:40:8C:00:00:01")
    groups = "Brand,Properties.Firmware,Properties.System,Network"
    assert calls(sim.camera) == [("GET", "/param.cgi", {"action": "list", "group": groups})]


async def test_a_unit_without_ptz_audio_or_motion_says_so(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    camera = Vapix2Simulator(OPTIONS)
    params = camera.settings.params
    params["Properties.PTZ.PTZ"] = params["Properties.Audio.Audio"] = "no"
    sim = await start_sim(camera)
    http = open_http(sim.url, USER, PASSWORD)
    removed = await http.get_text("/param.cgi", {"action": "remove", "group": "Motion.M0"})
    assert removed == "OK\r\n"
    driver = Vapix2Driver(http)

    await driver.connect()

    caps = driver.capabilities
    assert not caps.ptz.any
    assert (caps.audio_in, caps.audio_out) == (None, None)
    assert (caps.motion_events, caps.input_events) == (False, True)
    assert caps.imaging == frozenset(vapix2.SENSOR_PARAMS)  # mirror/flip are set via ptz.cgi
    assert ("GET", "/com/ptz.cgi", {"info": "1"}) not in calls(camera)
    camera.requests.clear()
    refused: list[Callable[[], Awaitable[object]]] = [
        lambda: driver.continuous_move(PtzVector(0.5)),
        driver.stop,
        lambda: driver.relative_move(PtzVector(0.1)),
        lambda: driver.absolute_move(PtzVector()),
        driver.ptz_position,
        driver.presets,
        lambda: driver.goto_preset("1"),
        lambda: driver.set_preset("x"),
        lambda: driver.remove_preset("1"),
        driver.goto_home,
        driver.set_home,
        lambda: driver.set_ptz_speed(0.5),
        lambda: driver.set_imaging(ImagingSettings(mirror=True)),
        lambda: driver.send_audio(_silence()),
    ]
    for operation in refused:
        with pytest.raises(UnsupportedOperation):
            await operation()
    with pytest.raises(UnsupportedOperation):
        driver.audio_chunks()
    assert calls(camera) == []


async def _silence() -> AsyncIterator[bytes]:
    yield b"\xff" * vapix2.AUDIO_BLOCK_BYTES


async def test_connect_refuses_a_unit_without_identity(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    camera = Vapix2Simulator(OPTIONS)
    for name in [n for n in camera.settings.params if n.startswith(("Brand.", "Properties.F"))]:
        del camera.settings.params[name]
    sim = await start_sim(camera)

    with pytest.raises(BadResponse, match="no Brand"):
        await Vapix2Driver(open_http(sim.url, USER, PASSWORD)).connect()


async def test_operations_before_connect_are_unsupported(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))
    driver = Vapix2Driver(open_http(sim.url, USER, PASSWORD))

    with pytest.raises(UnsupportedOperation):
        driver.events()
    with pytest.raises(UnsupportedOperation):
        await driver.relay_outputs()
    with pytest.raises(UnsupportedOperation):
        await driver.imaging()


# -- media ------------------------------------------------------------------------------------


async def test_snapshot_is_a_jpeg_of_the_configured_size(rig: Rig) -> None:
    data = await rig.driver.snapshot()

    frame = decode_jpeg(data)
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert calls(rig.camera) == [("GET", "/jpg/image.jpg", {})]


async def test_video_frames_come_over_one_connection(rig: Rig) -> None:
    frames = []
    async with closing(rig.driver.video_frames()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) == 3:
                break

    for frame in frames:
        picture = decode_jpeg(frame.data)
        assert (picture.width, picture.height) == (WIDTH, HEIGHT)
    stamps = [frame.timestamp for frame in frames]
    assert stamps == sorted(stamps)
    assert stamps[0] < stamps[-1]
    assert len({frame.data for frame in frames}) == 3  # a live picture, not one repeated
    assert calls(rig.camera) == [("GET", "/mjpg/video.mjpg", {})]


async def collect_audio(rig: Rig, seconds: float) -> tuple[set[AudioFormat], bytes, list[float]]:
    formats: set[AudioFormat] = set()
    data = bytearray()
    stamps: list[float] = []
    fmt = rig.driver.capabilities.audio_in
    assert fmt is not None
    async with closing(rig.driver.audio_chunks()) as chunks:
        async for chunk in chunks:
            formats.add(chunk.format)
            data += chunk.data
            stamps.append(chunk.timestamp)
            if len(data) >= seconds * (8000 if fmt.codec is AudioCodec.MULAW else 4000):
                break
    return formats, bytes(data), stamps


async def test_singlepart_ulaw_audio_decodes_to_the_tone(rig: Rig) -> None:
    formats, data, stamps = await collect_audio(rig, 0.3)

    assert formats == {MULAW}
    assert len(data) % vapix2.AUDIO_BLOCK_BYTES == 0
    assert dominant_hz(MULAW, data) == pytest.approx(TONE_HZ, abs=15)
    assert stamps == sorted(stamps)
    assert calls(rig.camera) == [("GET", "/audio/receive.cgi", {})]


async def test_multipart_g726_audio_decodes_to_the_tone(rig: Rig) -> None:
    update = {
        "action": "update",
        "AudioSource.A0.AudioEncoding": "g726",
        "Audiod.HttpMessageType": "multipart",
    }
    assert await rig.http.get_text("/param.cgi", update) == "OK\r\n"
    await rig.driver.connect()
    assert rig.driver.capabilities.audio_in == G726_32
    rig.camera.requests.clear()

    formats, data, _ = await collect_audio(rig, 0.3)

    assert formats == {G726_32}  # read from each part's audio/32KADPCM header
    assert dominant_hz(G726_32, data) == pytest.approx(TONE_HZ, abs=15)
    assert calls(rig.camera) == [("GET", "/audio/receive.cgi", {})]


async def test_send_audio_posts_ulaw_to_transmit(rig: Rig) -> None:
    tone = ToneEncoder(AudioCodec.MULAW)
    sent = [tone.next_chunk(0.03) for _ in range(10)]

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in sent:
            yield chunk

    await rig.driver.send_audio(chunks())

    settings = rig.camera.settings
    assert settings.talk_type == "audio/basic"
    assert bytes(settings.talk_audio) == b"".join(sent)
    assert dominant_hz(MULAW, bytes(settings.talk_audio)) == pytest.approx(TONE_HZ, abs=15)
    (request,) = authed(rig.camera)
    assert (request.method, request.path, request.content_type) == (
        "POST",
        "/audio/transmit.cgi",
        "audio/basic",
    )


async def test_send_audio_learns_auth_before_streaming(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    camera = Vapix2Simulator(OPTIONS)
    sim = await start_sim(camera)
    driver = Vapix2Driver(open_http(sim.url, USER, PASSWORD))
    driver.capabilities = Capabilities(audio_out=MULAW)  # as connect() would say

    async def chunks() -> AsyncIterator[bytes]:
        yield b"\xff" * 240

    await driver.send_audio(chunks())

    assert [(m, p) for m, p, _ in calls(camera)] == [
        ("GET", "/param.cgi"),
        ("POST", "/audio/transmit.cgi"),
    ]
    assert camera.settings.talk_bytes == 240


# -- PTZ --------------------------------------------------------------------------------------


def head(rig: Rig) -> PtzVector:
    return rig.camera.state.ptz.position()


def assert_near(actual: PtzVector, expected: PtzVector, tolerance: float = 0.002) -> None:
    assert actual.pan == pytest.approx(expected.pan, abs=tolerance)
    assert actual.tilt == pytest.approx(expected.tilt, abs=tolerance)
    assert actual.zoom == pytest.approx(expected.zoom, abs=tolerance)


async def test_continuous_move_and_stop(rig: Rig) -> None:
    await rig.driver.continuous_move(PtzVector(0.5, -0.25, 0.75))

    assert calls(rig.camera) == [
        ("GET", "/com/ptz.cgi", {"continuouspantiltmove": "50,-25", "continuouszoommove": "75"})
    ]
    assert rig.camera.state.ptz.velocity == PtzVector(0.5, -0.25, 0.75)
    await poll(lambda: head(rig).pan > 0.02 and head(rig).tilt < -0.01, "the head to move")
    rig.camera.requests.clear()

    await rig.driver.stop()

    assert calls(rig.camera) == [
        ("GET", "/com/ptz.cgi", {"continuouspantiltmove": "0,0", "continuouszoommove": "0"})
    ]
    assert rig.camera.state.ptz.velocity == PtzVector()
    stopped = head(rig)
    await asyncio.sleep(0.05)
    assert head(rig) == stopped


async def test_absolute_move_and_position(rig: Rig) -> None:
    await rig.driver.absolute_move(PtzVector(0.5, -0.5, 0.25), speed=0.4)

    # Pan -170..170 and tilt -90..10 degrees, zoom 1..9999, as ptz.cgi?info=1 reported.
    assert calls(rig.camera) == [
        ("GET", "/com/ptz.cgi", {"pan": "85.00", "tilt": "-65.00", "zoom": "2500", "speed": "40"})
    ]
    assert_near(head(rig), PtzVector(0.5, -0.5, 0.25))
    assert rig.camera.settings.speed == 40
    rig.camera.requests.clear()

    position = await rig.driver.ptz_position()

    assert_near(position, PtzVector(0.5, -0.5, 0.25))
    assert calls(rig.camera) == [("GET", "/com/ptz.cgi", {"query": "position"})]


async def test_relative_move(rig: Rig) -> None:
    await rig.driver.absolute_move(PtzVector(0.0, 0.0, 0.5))
    rig.camera.requests.clear()

    await rig.driver.relative_move(PtzVector(0.1, -0.2, 0.1), speed=1.0)

    assert calls(rig.camera) == [
        (
            "GET",
            "/com/ptz.cgi",
            {"rpan": "17.00", "rtilt": "-10.00", "rzoom": "1000", "speed": "100"},
        )
    ]
    assert_near(head(rig), PtzVector(0.1, -0.2, 0.6))


async def test_ptz_speed(rig: Rig) -> None:
    await rig.driver.set_ptz_speed(0.25)

    assert calls(rig.camera) == [("GET", "/com/ptz.cgi", {"speed": "25"})]
    assert rig.camera.settings.speed == 25
    assert rig.camera.state.ptz.speed == pytest.approx(0.25)


async def test_presets_store_list_go_and_remove(rig: Rig) -> None:
    driver = rig.driver
    await driver.absolute_move(PtzVector(-0.5, 0.5, 0.0))
    rig.camera.requests.clear()

    token = await driver.set_preset("Front door")

    assert token == "1"
    assert calls(rig.camera) == [
        ("GET", "/com/ptzconfig.cgi", {"setserverpresetname": "Front door"}),
        ("GET", "/com/ptz.cgi", {"query": "presetposall"}),
    ]
    await driver.absolute_move(PtzVector(0.5, 0.0, 0.0))
    assert await driver.set_preset("Gate", token="7") == "7"
    rig.camera.requests.clear()

    assert await driver.presets() == [Preset("1", "Front door"), Preset("7", "Gate")]
    await driver.goto_preset("1")

    assert_near(head(rig), PtzVector(-0.5, 0.5, 0.0))
    assert calls(rig.camera) == [
        ("GET", "/com/ptz.cgi", {"query": "presetposall"}),
        ("GET", "/com/ptz.cgi", {"gotoserverpresetno": "1"}),
    ]
    rig.camera.requests.clear()

    await driver.remove_preset("7")

    assert calls(rig.camera) == [("GET", "/com/ptzconfig.cgi", {"removeserverpresetno": "7"})]
    assert await driver.presets() == [Preset("1", "Front door")]
    with pytest.raises(BadResponse):
        await driver.goto_preset("7")


async def test_home_set_and_go(rig: Rig) -> None:
    with pytest.raises(BadResponse):  # no home position yet: the camera refuses
        await rig.driver.goto_home()
    await rig.driver.absolute_move(PtzVector(0.25, 0.25, 0.5))
    rig.camera.requests.clear()

    await rig.driver.set_home()
    await rig.driver.absolute_move(PtzVector(-1.0, -1.0, 0.0))
    await rig.driver.goto_home()

    assert_near(head(rig), PtzVector(0.25, 0.25, 0.5))
    assert calls(rig.camera)[0] == (
        "GET",
        "/com/ptzconfig.cgi",
        {"setserverpresetname": "Home", "home": "yes"},
    )
    assert calls(rig.camera)[-1] == ("GET", "/com/ptz.cgi", {"move": "home"})


# -- imaging ----------------------------------------------------------------------------------


async def test_imaging_read_and_write(rig: Rig) -> None:
    assert await rig.driver.imaging() == ImagingSettings(50, 50, 50, 50, False, False)
    assert calls(rig.camera) == [
        (
            "GET",
            "/param.cgi",
            {"action": "list", "group": "ImageSource.I0.Sensor,Image.I0.Appearance"},
        )
    ]
    rig.camera.requests.clear()

    await rig.driver.set_imaging(
        ImagingSettings(brightness=70.4, contrast=0, sharpness=100, mirror=True, flip=True)
    )

    assert calls(rig.camera) == [
        (
            "GET",
            "/param.cgi",
            {
                "action": "update",
                "ImageSource.I0.Sensor.Brightness": "70",
                "ImageSource.I0.Sensor.Contrast": "0",
                "ImageSource.I0.Sensor.Sharpness": "100",
            },
        ),
        ("GET", "/com/ptz.cgi", {"horizontal_reverse": "1", "vertical_reverse": "1"}),
    ]
    assert (rig.camera.state.mirror, rig.camera.state.flip) == (True, True)  # picture turned
    assert await rig.driver.imaging() == ImagingSettings(70, 0, 50, 100, True, True)


async def test_imaging_value_the_camera_rejects_is_bad_response(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Firmware on which sharpness is read-only answers "# Error:" in a 200 reply.
    monkeypatch.delitem(sim_vapix2.WRITABLE, "ImageSource.I0.Sensor.Sharpness")

    with pytest.raises(BadResponse, match="Error setting"):
        await rig.driver.set_imaging(ImagingSettings(sharpness=10))
    assert rig.camera.settings.params["ImageSource.I0.Sensor.Sharpness"] == "50"


# -- I/O and events ---------------------------------------------------------------------------


async def test_relays_list_and_switch(rig: Rig) -> None:
    assert await rig.driver.relay_outputs() == [RelayOutput("1", False)]
    await rig.driver.set_relay("1", True)
    assert rig.camera.state.relays == [True]
    assert await rig.driver.relay_outputs() == [RelayOutput("1", True)]
    await rig.driver.set_relay("1", False)

    assert rig.camera.state.relays == [False]
    assert calls(rig.camera) == [
        ("GET", "/io/output.cgi", {"check": "1"}),
        ("GET", "/io/output.cgi", {"action": "1:/"}),
        ("GET", "/io/output.cgi", {"check": "1"}),
        ("GET", "/io/output.cgi", {"action": "1:\\"}),
    ]


async def test_digital_inputs_report_their_state(rig: Rig) -> None:
    await sim_control(rig, "input", port="2", active="1")

    assert await rig.driver.digital_inputs() == [DigitalInput("1", False), DigitalInput("2", True)]
    assert calls(rig.camera) == [("GET", "/io/input.cgi", {"check": "1,2"})]


async def next_event(stream: AsyncIterator[CameraEvent]) -> CameraEvent:
    return await asyncio.wait_for(anext(stream), DEADLINE)


async def test_events_report_inputs_and_motion(rig: Rig) -> None:
    async with closing(rig.driver.events()) as stream:
        # Each source's state as first seen, in no fixed order between the two streams.
        first = {(e.kind, e.source, e.active) for e in [await next_event(stream) for _ in "123"]}
        assert first == {
            (EventKind.DIGITAL_INPUT, "1", False),
            (EventKind.DIGITAL_INPUT, "2", False),
            (EventKind.MOTION, "", False),
        }

        await sim_control(rig, "input", port="2", active="1")
        event = await next_event(stream)
        assert (event.kind, event.source, event.active) == (EventKind.DIGITAL_INPUT, "2", True)

        await sim_control(rig, "motion", active="1", level="80")
        event = await next_event(stream)
        assert (event.kind, event.active, event.level) == (EventKind.MOTION, True, 80)

        await sim_control(rig, "motion", active="0")
        event = await next_event(stream)
        assert (event.kind, event.active) == (EventKind.MOTION, False)
        assert event.timestamp <= time.monotonic()

    assert sorted(calls(rig.camera)) == [
        ("GET", "/io/input.cgi", {"monitor": "1,2"}),
        ("GET", "/motion/motiondata.cgi", {}),
    ]


async def test_events_go_on_when_motion_windows_are_removed(rig: Rig) -> None:
    removed = await rig.http.get_text("/param.cgi", {"action": "remove", "group": "Motion.M0"})
    assert removed == "OK\r\n"
    assert rig.driver.capabilities.motion_events  # as connect() saw the unit

    async with closing(rig.driver.events()) as stream:
        first = {(e.kind, e.source) for e in [await next_event(stream) for _ in "12"]}
        await sim_control(rig, "input", port="1", active="1")
        event = await next_event(stream)

    assert first == {(EventKind.DIGITAL_INPUT, "1"), (EventKind.DIGITAL_INPUT, "2")}
    assert (event.kind, event.source, event.active) == (EventKind.DIGITAL_INPUT, "1", True)


# -- system -----------------------------------------------------------------------------------


async def test_set_and_get_datetime(rig: Rig) -> None:
    moment = datetime.datetime(2009, 5, 17, 8, 30, 15, tzinfo=datetime.UTC)

    await rig.driver.set_datetime(moment)
    got = await rig.driver.get_datetime()

    assert got.tzinfo is datetime.UTC
    assert abs((got - moment).total_seconds()) <= 2
    assert calls(rig.camera) == [
        (
            "GET",
            "/date.cgi",
            {
                "action": "set",
                "year": "2009",
                "month": "5",
                "day": "17",
                "hour": "8",
                "minute": "30",
                "second": "15",
                "timezone": "GMT",
            },
        ),
        ("GET", "/date.cgi", {"action": "get"}),
    ]


async def test_datetime_in_a_camera_time_zone(rig: Rig) -> None:
    update = {"action": "update", "Time.TimeZone": "GMT+2"}
    assert await rig.http.get_text("/param.cgi", update) == "OK\r\n"
    await rig.driver.connect()
    moment = datetime.datetime(
        2010, 1, 31, 23, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))
    )

    await rig.driver.set_datetime(moment)

    local_text = await rig.http.get_text("/date.cgi", {"action": "get"})
    assert local_text.startswith("Feb 01, 2010 04:0")  # 02:00 UTC shown in GMT+2
    got = await rig.driver.get_datetime()
    assert abs((got - moment).total_seconds()) <= 2


async def test_date_out_of_the_cameras_range_is_bad_response(rig: Rig) -> None:
    with pytest.raises(BadResponse, match="Request failed"):
        await rig.driver.set_datetime(datetime.datetime(2040, 1, 1, tzinfo=datetime.UTC))


async def test_reboot_and_factory_default(rig: Rig) -> None:
    await rig.driver.set_imaging(ImagingSettings(brightness=10))
    await rig.driver.set_preset("Somewhere")
    rig.camera.requests.clear()

    await rig.driver.reboot()
    await rig.driver.factory_default()

    assert calls(rig.camera) == [("GET", "/restart.cgi", {}), ("GET", "/factorydefault.cgi", {})]
    assert (rig.camera.state.reboots, rig.camera.state.factory_resets) == (1, 1)
    assert (await rig.driver.imaging()).brightness == 50
    assert await rig.driver.presets() == []


# -- the real ffprobe against the emulator ----------------------------------------------------


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")
async def test_ffprobe_reads_the_mjpeg_stream(start_sim: StartSim) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))

    stream = await probe_first_video_frames(
        with_userinfo(f"{sim.url}/mjpg/video.mjpg", USER, PASSWORD)
    )
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", WIDTH, HEIGHT)
    assert int(stream["nb_read_frames"]) >= 3


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")
async def test_ffprobe_decodes_the_audio_stream(start_sim: StartSim) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))

    probe = await ffprobe(
        "-analyzeduration",
        "0",
        "-probesize",
        "2048",
        "-f",
        "mulaw",
        "-ar",
        "8000",
        "-ch_layout",
        "mono",
        "-read_intervals",
        "%+#3",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,sample_rate,nb_read_frames",
        with_userinfo(f"{sim.url}/audio/receive.cgi?httptype=singlepart", USER, PASSWORD),
    )

    (stream,) = probe["streams"]
    assert (stream["codec_name"], stream["sample_rate"]) == ("pcm_mulaw", "8000")
    assert int(stream["nb_read_frames"]) >= 3


# -- the emulator on its own ------------------------------------------------------------------


@pytest.fixture
async def camera_http(
    start_sim: StartSim, open_http: OpenHttp
) -> tuple[Vapix2Simulator, CameraHttp]:
    camera = Vapix2Simulator(OPTIONS)
    sim = await start_sim(camera)
    return camera, open_http(sim.url, USER, PASSWORD)


async def test_emulator_answers_http10_with_a_digest_challenge(start_sim: StartSim) -> None:
    sim = await start_sim(Vapix2Simulator(OPTIONS))

    async with aiohttp.ClientSession() as session, session.get(f"{sim.url}/jpg/image.jpg") as reply:
        assert reply.status == 401
        assert reply.version == aiohttp.HttpVersion10
        assert reply.headers["Server"] == "Boa/0.94.13"
        assert reply.headers["WWW-Authenticate"].startswith('Digest realm="AXIS_00408C1A2B3C"')


async def test_emulator_param_list_forms(camera_http: tuple[Vapix2Simulator, CameraHttp]) -> None:
    _, http = camera_http

    reply = await http.get("/param.cgi", {"action": "list", "group": "root.Brand.ProdNbr"})
    assert (reply.content_type, reply.text()) == ("text/plain", "root.Brand.ProdNbr=213\n")
    wildcard = await http.get_text(
        "/param.cgi", {"action": "list", "group": "ImageSource.*.Sensor.Contrast"}
    )
    assert wildcard == "ImageSource.I0.Sensor.Contrast=50\n"
    # The document's own mangled list form, and a group the unit does not have.
    mixed = await http.get_text(
        "/param.cgi", {"action": "list", "group": "Input.NbrOfInputs,group=Event"}
    )
    assert mixed == "Input.NbrOfInputs=2\n# Error: Error -1 getting param in group 'Event'\n"


async def test_emulator_param_update_add_remove(
    camera_http: tuple[Vapix2Simulator, CameraHttp],
) -> None:
    camera, http = camera_http

    async def param(**args: str) -> str:
        return await http.get_text("/param.cgi", args)

    assert (await param(action="update", **{"Brand.Brand": "X"})).startswith("# Error:")
    assert (await param(action="update", **{"ImageSource.I0.Sensor.Brightness": "101"})).startswith(
        "# Error:"
    )
    assert camera.settings.params["ImageSource.I0.Sensor.Brightness"] == "50"
    added = await param(
        action="add", group="Motion", template="motion", **{"Motion.M.Name": "Door"}
    )
    assert added == "M1 OK\r\n"
    assert camera.settings.params["Motion.M1.Name"] == "Door"
    assert await param(action="remove", group="Motion.M0,Motion.M1") == "OK\r\n"
    assert (await param(action="remove", group="Motion.M0")).startswith("# Request failed")
    reply = await http.get("/motion/motiondata.cgi")  # no windows left
    assert reply.status == 204


async def test_emulator_rejects_bad_requests(
    camera_http: tuple[Vapix2Simulator, CameraHttp],
) -> None:
    camera, http = camera_http
    bad = [
        ("/com/ptz.cgi", {"pan": "300"}),
        ("/com/ptz.cgi", {"continuouspantiltmove": "101,0"}),
        ("/com/ptz.cgi", {"frobnicate": "1"}),
        ("/imagesize.cgi", {}),
        ("/io/output.cgi", {"action": "2:/"}),
        ("/io/input.cgi", {"check": "3"}),
        ("/mjpg/video.cgi", {"resolution": "VGA"}),
    ]
    for path, params in bad:
        with pytest.raises(BadResponse, match="HTTP 400"):
            await http.get(path, params)
    assert camera.state.ptz.position() == PtzVector()  # nothing half-done
    missing = await http.request("GET", "/jpg/2/image.jpg", accept_status=frozenset({404}))
    assert missing.status == 404


async def test_emulator_steps_the_head(camera_http: tuple[Vapix2Simulator, CameraHttp]) -> None:
    camera, http = camera_http

    for direction in ("upright", "right", "down"):
        await http.get("/com/ptz.cgi", {"move": direction})

    # Two 5-degree steps right of 340 degrees of pan, none net of 100 degrees of tilt.
    assert_near(camera.state.ptz.position(), PtzVector(2 * 10 / 340, 0.0, 0.0))
    position = await http.get_text("/com/ptz.cgi", {"query": "position"})
    assert position == "pan=10.0000\r\ntilt=-40.0000\r\nzoom=1\r\n"


async def test_emulator_pulses_an_output(camera_http: tuple[Vapix2Simulator, CameraHttp]) -> None:
    camera, http = camera_http
    seen: list[bool] = []

    assert await http.get_text("/io/output.cgi", {"action": "1:/100\\"}) == "OK\r\n"
    seen.append(camera.state.relays[0])
    await poll(lambda: not camera.state.relays[0], "the pulse to end")

    assert seen == [True]


async def test_emulator_imagesize_and_date_forms(
    camera_http: tuple[Vapix2Simulator, CameraHttp],
) -> None:
    camera, http = camera_http

    assert await http.get_text("/imagesize.cgi", {"camera": "1", "resolution": "QCIF"}) == (
        "image width = 176\nimage height = 144\n"
    )
    # Only the date: the time of day stays.
    assert (
        await http.get_text(
            "/date.cgi", {"action": "set", "year": "2005", "month": "4", "day": "3"}
        )
        == "OK\r\n"
    )
    text = await http.get_text("/date.cgi", {"action": "get"})
    assert text.startswith("Apr 03, 2005 ")
    assert text.endswith("\r\n")
    assert camera.state.now().date() == datetime.date(2005, 4, 3)


async def test_emulator_motion_and_monitor_bytes(
    camera_http: tuple[Vapix2Simulator, CameraHttp],
) -> None:
    camera, http = camera_http
    camera.state.motion_active, camera.state.motion_level = True, 33

    async def opening(path: str, params: dict[str, str], size: int) -> tuple[str, bytes]:
        """The Content-Type and first ``size`` bytes of a stream."""
        async with http.stream(path, params) as reply:
            data = b""
            async for chunk in reply.chunks():
                data += chunk
                if len(data) >= size:
                    return reply.content_type, data[:size]
        raise AssertionError("stream ended")

    motion = b"--mdb\r\nContent-Type:text/plain\r\n\r\ngroup=0;level=33;threshold=15;\r\n--mdb\r\n"
    assert await opening("/motion/motiondata.cgi", {"group": "0"}, len(motion)) == (
        "multipart/x-mixed-replace;boundary=mdb",
        motion,
    )
    camera.state.inputs[0] = True
    monitor = (
        b"\r\n\r\n\r\n--ioboundary\r\nContent-Type: text/plain\r\n\r\nIO0:/\n\r\n--ioboundary\r\n"
    )
    assert await opening("/io/input.cgi", {"monitor": "1"}, len(monitor)) == (
        "multipart/x-mixed-replace; boundary=ioboundary",
        monitor,
    )


# -- pure parsers on the document's example replies -------------------------------------------

SEED_NETWORK_LIST = "Network.IPAddress=10.13.12.36\nNetwork.SubnetMask=255.255.255.0\n"
SEED_EVENT_LIST = """Event.E0.Name=MyEvent

Event.E0.Type=T

Event.E0.HWInputs=xxxx

Event.E0.SWInput=

Event.E0.Suffix=%y-%m-%d_%H-%M-%S-%f
"""
SEED_MOTION_STREAM = (
    b"--mdb\r\n"
    b"Content-Type:text/plain\r\n\r\n"
    b"group=0;level=28;threshold=45;\r\n"
    b"group=1;level=43;threshold=25;\r\n"
    b"--mdb\r\n"
    b"Content-Type:text/plain\r\n\r\n"
    b"group=0;level=54;threshold=45;\r\n"
    b"group=1;level=38;threshold=25;\r\n"
    b"--mdb\r\n"
    b"Content-Type:text/plain\r\n\r\n"
    b"group=0;level=49;threshold=45;\r\n"
    b"group=1;level=19;threshold=25;\r\n"
    b"--mdb\r\n"
)
# As printed, with its blank lines, "IO0:H", and "IO0:\" written "IO0:\\n".
SEED_MONITOR_STREAM = (
    b"\r\n\r\n\r\n"
    b"--ioboundary\r\nContent-Type: text/plain\r\n\r\nIO0:/\n\r\n\r\n"
    b"--ioboundary\r\nContent-Type: text/plain\r\n\r\nIO0:H\n\r\n"
    b"--ioboundary\r\nContent-Type: text/plain\r\n\r\n\r\nIO0:\\\n\r\n\r\n"
    b"--ioboundary\r\nContent-Type: text/plain\r\n\r\n\r\n                      \r\n\r\n"
    b"--ioboundary\r\nContent-Type: text/plain\r\n\r\n\r\n"
    b"--ioboundary\r\n"
)


def test_parse_param_list_seed_examples() -> None:
    assert vapix2.parse_param_list(SEED_NETWORK_LIST).values == {
        "Network.IPAddress": "10.13.12.36",
        "Network.SubnetMask": "255.255.255.0",
    }
    event = vapix2.parse_param_list(SEED_EVENT_LIST)
    assert event.values["Event.E0.SWInput"] == ""
    assert event.values["Event.E0.Suffix"] == "%y-%m-%d_%H-%M-%S-%f"
    assert event.errors == ()
    rooted = vapix2.parse_param_list("root.Brand.Brand=AXIS\r\nroot.Brand.ProdNbr=213\r\n")
    assert rooted.values == {"Brand.Brand": "AXIS", "Brand.ProdNbr": "213"}
    failed = vapix2.parse_param_list("# Error: <description>\n")
    assert (failed.values, failed.errors) == ({}, ("Error: <description>",))


def test_reply_error_seed_examples() -> None:
    assert vapix2.reply_error("OK\r\n") is None
    assert vapix2.reply_error("E7 OK\r\n") is None
    assert vapix2.reply_error("") is None
    assert vapix2.reply_error("<info>\n# Request failed: no such group\n") == (
        "Request failed: no such group"
    )
    assert vapix2.reply_error("# Error: bad value\r\n") == "Error: bad value"
    assert vapix2.reply_error("Request failed: year\r\n") == "Request failed: year"


def test_device_info_from_params() -> None:
    values = vapix2.parse_param_list(
        "root.Brand.Brand=AXIS\nroot.Brand.ProdFullName=AXIS 2100 Network Camera\n"
        "root.Network.Interface.I0.Active.MACAddress=00-40-8c-11-22-33\n"
    ).values

    info = vapix2.device_info_from_params(values)

    assert (info.manufacturer, info.model, info.firmware) == (
        "AXIS",
        "AXIS 2100 Network Camera",
        "",
    )
    assert (info.serial, info.mac) == ("00408C112233", "00:40:8C:11:22:33")
    assert vapix2.device_info_from_params({}) == DeviceInfo("", "", "", "", "")


def test_parse_camera_date_seed_example_and_variants() -> None:
    expected = datetime.datetime(2003, 4, 3, 15, 16, 4)
    assert vapix2.parse_camera_date("Apr 03, 2003 15:16:04\r\n") == expected
    assert vapix2.parse_camera_date("Apr 3 2003 15:16:04") == expected
    assert vapix2.parse_camera_date("April 03, 2003 15:16") == expected.replace(second=0)
    for bad in ("", "Foo 03, 2003 15:16:04", "Feb 30, 2003 10:00:00"):
        with pytest.raises(BadResponse):
            vapix2.parse_camera_date(bad)


def test_date_set_params_from_any_zone() -> None:
    zone = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    moment = datetime.datetime(2005, 4, 3, 5, 40, 9, tzinfo=zone)

    assert vapix2.date_set_params(moment) == {
        "action": "set",
        "year": "2005",
        "month": "4",
        "day": "3",
        "hour": "0",
        "minute": "10",
        "second": "9",
        "timezone": "GMT",
    }


@pytest.mark.parametrize(
    ("zone", "hours"),
    [("GMT", 0.0), ("GMT+1", 1.0), ("GMT-05:30", -5.5), ("GMT+1(Amsterdam, Berlin)", 1.0)],
)
def test_timezone_offset(zone: str, hours: float) -> None:
    assert vapix2.timezone_offset(zone) == datetime.timedelta(hours=hours)


def test_timezone_offset_unknown() -> None:
    assert vapix2.timezone_offset("CET-1CEST") is None


def test_parse_image_size_seed_example() -> None:
    assert vapix2.parse_image_size("image width = 176\nimage height = 144\n") == (176, 144)
    assert vapix2.parse_image_size("image width = 176\n") is None


def test_motion_levels_from_the_seed_stream() -> None:
    parser = MultipartParser(boundary_from_content_type("multipart/x-mixed-replace;boundary=mdb"))
    parts = parser.feed(SEED_MOTION_STREAM)

    levels = [vapix2.parse_motion_levels(part.body) for part in parts]

    assert [[(m.group, m.level, m.threshold) for m in part] for part in levels] == [
        [(0, 28, 45), (1, 43, 25)],
        [(0, 54, 45), (1, 38, 25)],
        [(0, 49, 45), (1, 19, 25)],
    ]
    assert [any(m.active for m in part) for part in levels] == [True, True, True]
    # The document's table wraps "threshold=" onto the next line.
    wrapped = vapix2.parse_motion_levels(b"group=0;level=28;threshold=\r\n45;\r\n")
    assert [(m.level, m.threshold, m.active) for m in wrapped] == [(28, 45, False)]


def test_io_monitor_from_the_seed_stream() -> None:
    content_type = "multipart/x-mixed-replace; boundary=ioboundary"
    parser = MultipartParser(boundary_from_content_type(content_type))

    states = [vapix2.parse_io_monitor(part.body) for part in parser.feed(SEED_MONITOR_STREAM)]

    assert states == [[(0, True)], [(0, True)], [(0, False)], [], []]
    assert vapix2.parse_io_monitor(b"IO0:L\r\nIO1:/\r\n") == [(0, False), (1, True)]


@pytest.mark.parametrize(
    ("number", "ports", "token"),
    [(0, 1, "1"), (1, 2, "2"), (1, 1, "1"), (2, 2, "2"), (3, 2, None), (999, 1, None)],
)
def test_monitor_port_token(number: int, ports: int, token: str | None) -> None:
    assert vapix2.monitor_port_token(number, ports) == token


def test_parse_port_check() -> None:
    assert vapix2.parse_port_check("input1=0\r\ninput2=1\r\n") == {"1": False, "2": True}
    assert vapix2.parse_port_check("output1=active\n") == {"1": True}
    assert vapix2.parse_port_check("1=inactive\n3=weird\n") == {"1": False, "3": None}


@pytest.mark.parametrize(
    ("mime", "fmt"),
    [
        ("audio/basic", MULAW),
        ("audio/32KADPCM", G726_32),
        ("audio/G723", AudioFormat(AudioCodec.G726, bits_per_sample=3)),
        ("Audio/Basic; rate=8000", MULAW),
        ("audio/mpeg", None),
    ],
)
def test_audio_format_from_seed_mime_types(mime: str, fmt: AudioFormat | None) -> None:
    assert vapix2.audio_format_from_mime(mime) == fmt


def test_audio_format_from_params() -> None:
    audio = {"Properties.Audio.Audio": "yes"}
    assert vapix2.audio_format_from_params(audio) == MULAW
    g726 = {**audio, "AudioSource.A0.AudioEncoding": "g726", "AudioSource.A0.BitRate": "24000"}
    assert vapix2.audio_format_from_params(g726) == AudioFormat(AudioCodec.G726, bits_per_sample=3)
    assert vapix2.audio_format_from_params({**audio, "AudioSource.A0.AudioEncoding": "aac"}) is None
    assert vapix2.audio_format_from_params({"Properties.Audio.Audio": "no"}) is None


PTZ_INFO_RUN_TOGETHER = (
    "Available commands: {camera=[n]} {move={home|up|down}} {pan=[-180.0-180.0]} "
    "{tilt=[-90.0-0.0]} {rpan=[-360.0-360.0]} {rtilt=[-360.0-360.0]} {zoom=[1-9999]} "
    "{gotoserverpresetno=[n]} {query={speed|position}}"
)


def test_parse_ptz_info_and_capabilities() -> None:
    commands = vapix2.parse_ptz_info(PTZ_INFO_RUN_TOGETHER)

    assert commands["move"] == "{home|up|down}"
    limits = vapix2.PtzLimits.from_info(commands)
    assert (limits.pan, limits.tilt, limits.zoom) == ((-180, 180), (-90, 0), (1, 9999))
    assert vapix2.ptz_capabilities_from_info(commands) == PtzCapabilities(
        continuous=False,
        relative=True,
        absolute=True,
        zoom=True,
        presets=vapix2.DEFAULT_PRESET_SLOTS,
        home=True,
        set_home=True,
        speed=False,
        position=True,
    )
    emulated = vapix2.parse_ptz_info(sim_vapix2.PTZ_INFO)
    assert vapix2.ptz_capabilities_from_info(emulated).presets == sim_vapix2.PRESET_SLOTS


def test_ptz_parameters_and_position() -> None:
    limits = vapix2.PtzLimits(pan=(-170, 170), tilt=(-90, 10), zoom=(1, 9999))

    assert vapix2.continuous_params(PtzVector(1.5, -0.333, 0.2), zoom=False) == {
        "continuouspantiltmove": "100,-33"
    }
    assert vapix2.absolute_params(PtzVector(-1, 1, 1), limits, zoom=True) == {
        "pan": "-170.00",
        "tilt": "10.00",
        "zoom": "9999",
    }
    assert vapix2.relative_params(PtzVector(-0.5, 0, 0), limits, zoom=True) == {
        "rpan": "-85.00",
        "rtilt": "0.00",
    }
    assert [vapix2.speed_param(s) for s in (0.001, 0.5, 1.0, 7.0)] == ["1", "50", "100", "100"]
    position = vapix2.parse_ptz_position("pan=85.0000\r\ntilt=-40\r\nzoom=1\r\niris=on\r\n", limits)
    assert position == PtzVector(0.5, 0.0, 0.0)
    with pytest.raises(BadResponse):
        vapix2.parse_ptz_position("zoom=1\n", limits)


def test_parse_presets() -> None:
    text = "Preset Positions for camera 1\r\npresetposno1=Home\r\npresetposno12=Back = yard\r\n"

    assert vapix2.parse_presets(text) == [Preset("1", "Home"), Preset("12", "Back = yard")]
    assert vapix2.parse_presets("") == []


def test_imaging_params_round_trip() -> None:
    settings = ImagingSettings(brightness=33.3, saturation=120, mirror=False)

    assert vapix2.sensor_update_params(settings) == {
        "ImageSource.I0.Sensor.Brightness": "33",
        "ImageSource.I0.Sensor.ColorLevel": "100",
    }
    assert vapix2.reverse_params(settings) == {"horizontal_reverse": "0"}
    values = {"ImageSource.I0.Sensor.Brightness": "33", "Image.I0.Appearance.FlipEnabled": "yes"}
    assert vapix2.imaging_from_params(values) == ImagingSettings(brightness=33, flip=True)
    assert vapix2.imaging_from_params({"ImageSource.I0.Sensor.Contrast": "high"}).contrast is None


def test_emulator_output_action_grammar() -> None:
    assert sim_vapix2.parse_output_action("1:/300\\500/300\\", 1) == (
        1,
        [(0.0, True), (0.3, False), (0.8, True), (1.1, False)],
    )
    assert sim_vapix2.parse_output_action(":1000/", 1) == (1, [(1.0, True)])
    for bad in ("1:", "1:x", "2:/", "1/"):
        with pytest.raises(sim_vapix2.BadRequest):
            sim_vapix2.parse_output_action(bad, 1)
