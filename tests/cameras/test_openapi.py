"""The "IP Camera Open API" driver against its emulator, the emulator on its own, and the
driver's parsers on the specification's own example replies."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import string
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from conftest import OpenHttp, Serve, StartSim
from helpers import FFPROBE, dominant_frequency, ffprobe, jpeg_size, with_userinfo
from hypothesis import given
from hypothesis import strategies as st

from bridge.cameras.base import (
    AudioChunk,
    AudioCodec,
    AudioFormat,
    CameraEvent,
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
from bridge.cameras.multipart import MultipartParser
from bridge.cameras.openapi import (
    AxisScale,
    OpenApiDriver,
    ParamList,
    audio_format_for_mime,
    imaging_from_params,
    imaging_update_params,
    io_number_base,
    mime_for_audio_format,
    parse_camera_time,
    parse_command_reply,
    parse_io_monitor,
    parse_motion_levels,
    parse_param_list,
    parse_port_states,
    parse_presets,
    parse_utc_offset,
    time_set_params,
)
from bridge.errors import AuthenticationFailed, BadResponse, UnsupportedOperation
from bridge.simulator.core import RunningSimulator, SimOptions
from bridge.simulator.media import ToneEncoder
from bridge.simulator.openapi import OpenApiSimulator

WIDTH, HEIGHT, FPS = 320, 240, 8
OPTIONS = SimOptions(width=WIDTH, height=HEIGHT, fps=FPS, serial="NC5212-0042")
TONE_HZ = 440.0  # ToneEncoder's default
APPEARANCE = "Image.I0.Appearance"

Sent = tuple[str, str, dict[str, str]]


# -- helpers --------------------------------------------------------------------------------------


def take(sim: RunningSimulator) -> list[Sent]:
    """The CGI requests the emulator received since the last call, as (method, path, query)."""
    sent = [(r.method, r.path, r.query) for r in sim.camera.requests]
    sim.camera.requests.clear()
    return sent


def openapi(sim: RunningSimulator) -> OpenApiSimulator:
    assert isinstance(sim.camera, OpenApiSimulator)
    return sim.camera


def unit_values(sim: RunningSimulator) -> dict[str, str]:
    """The emulated unit's parameter tree, which tests edit to play a different unit."""
    return openapi(sim).unit.values


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def sim_control(sim: RunningSimulator, path: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(sim.url + path) as reply:
        assert reply.status == 200


_DEMUXERS = {AudioCodec.G726: "g726", AudioCodec.MULAW: "mulaw"}


def decode_tone(audio: AudioFormat, data: bytes) -> float:
    """The dominant frequency of the decoded audio, in Hz."""
    options = {"sample_rate": str(audio.sample_rate)}
    if audio.codec is AudioCodec.G726:
        options["code_size"] = str(audio.bits_per_sample)
    raw = io.BytesIO(data)
    with av.open(raw, "r", format=_DEMUXERS[audio.codec], options=options) as container:
        stream = container.streams.audio[0]
        pcm = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])
    return dominant_frequency(pcm, audio.sample_rate, window=False, min_peak_ratio=20)


def userinfo_url(sim: RunningSimulator, path: str) -> str:
    return with_userinfo(sim.url + path, "admin", "admin")


@pytest.fixture
async def sim(start_sim: StartSim) -> RunningSimulator:
    return await start_sim(OpenApiSimulator(OPTIONS))


@pytest.fixture
def http(sim: RunningSimulator, open_http: OpenHttp) -> CameraHttp:
    return open_http(sim.url, "admin", "admin")


async def connected(sim: RunningSimulator, http: CameraHttp) -> OpenApiDriver:
    """A connected driver, the request log cleared after connecting."""
    camera = OpenApiDriver(http)
    await camera.connect()
    take(sim)
    return camera


@pytest.fixture
async def driver(sim: RunningSimulator, http: CameraHttp) -> OpenApiDriver:
    return await connected(sim, http)


# -- identification and device info ---------------------------------------------------------------


async def test_detect_answers_true_with_one_request(
    sim: RunningSimulator, http: CameraHttp
) -> None:
    assert await OpenApiDriver.detect(http)
    # One request (sent again only when the 401 taught the client the Basic scheme).
    sent = take(sim)
    assert sent
    assert all(
        s == ("GET", "/config.cgi", {"action": "list", "group": "Brand.Brand"}) for s in sent
    )


async def test_fingerprint_matches_server_realm(sim: RunningSimulator, http: CameraHttp) -> None:
    fingerprint = await http.fingerprint()
    assert fingerprint.status == 401
    assert fingerprint.challenge == "basic"
    assert OpenApiDriver.matches_fingerprint(fingerprint.server, fingerprint.realm)
    assert not OpenApiDriver.matches_fingerprint("Boa/0.94.14rc21", "Network Camera")


@pytest.fixture
async def foreign_server(serve: Serve) -> str:
    """A web server that is not this dialect: config.cgi is an HTML page, nothing else exists."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Brand</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/config.cgi", page)
    return await serve(app)


async def test_detect_false_on_other_cameras(foreign_server: str, open_http: OpenHttp) -> None:
    assert not await OpenApiDriver.detect(open_http(foreign_server, "admin", "admin"))


async def test_wrong_password_raises_without_leaking_it(
    sim: RunningSimulator, open_http: OpenHttp
) -> None:
    http = open_http(sim.url, "admin", "s3cret-guess")
    with pytest.raises(AuthenticationFailed) as caught:
        await OpenApiDriver.detect(http)
    with pytest.raises(AuthenticationFailed):
        await OpenApiDriver(http).connect()
    assert "s3cret-guess" not in str(caught.value)


async def test_connect_reads_device_info_and_capabilities(
    sim: RunningSimulator, http: CameraHttp
) -> None:
    camera = OpenApiDriver(http)
    info = await camera.connect()
    assert (info.manufacturer, info.model, info.firmware) == ("IPCAM", "NC-5212PTZ", "V5.0.2.3843")
    assert (info.serial, info.mac, info.hardware_id) == ("NC5212-0042", "00:11:22:33:44:55", "5212")
    caps = camera.capabilities
    assert caps.resolution == (WIDTH, HEIGHT)
    assert caps.audio_in == caps.audio_out == AudioFormat(AudioCodec.G726, bits_per_sample=4)
    assert caps.ptz == PtzCapabilities(
        continuous=True, relative=True, absolute=True, zoom=True, presets=16,
        home=True, set_home=True, speed=True, position=True,
    )  # fmt: skip
    assert caps.imaging == frozenset(ImagingField)
    assert (caps.relay_outputs, caps.digital_inputs) == (1, 2)
    assert (caps.motion_events, caps.input_events) == (True, True)
    assert (caps.get_datetime, caps.set_datetime, caps.reboot, caps.factory_default) == (
        True, True, True, True,
    )  # fmt: skip
    groups = "Brand,Properties,Network,Image.I0,PTZ,Audio,Input,Output,Motion"
    assert take(sim)[-1] == ("GET", "/config.cgi", {"action": "list", "group": groups})

    assert await camera.device_info() == info
    # The emulator's own request log, as a client outside the process sees it.
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.url + "/__sim__/requests") as reply,
    ):
        logged = await reply.json()
    assert logged[-1]["method"] == "GET"
    assert logged[-1]["path"] == "/config.cgi"
    assert logged[-1]["query"] == {"action": "list", "group": "Brand,Properties,Network"}
    assert logged[-1]["authenticated_user"] == "admin"


async def test_unit_without_ptz_or_audio_refuses_those(
    sim: RunningSimulator, http: CameraHttp
) -> None:
    unit_values(sim).update({"Properties.PTZ.PTZ": "no", "Properties.Audio.Audio": "no"})
    camera = await connected(sim, http)
    assert not camera.capabilities.ptz.any
    assert (camera.capabilities.audio_in, camera.capabilities.audio_out) == (None, None)

    async def nothing() -> AsyncIterator[bytes]:
        yield b""

    with pytest.raises(UnsupportedOperation, match="openapi dialect cannot move continuously"):
        await camera.continuous_move(PtzVector(pan=0.5))
    with pytest.raises(UnsupportedOperation):
        await camera.absolute_move(PtzVector())
    with pytest.raises(UnsupportedOperation):
        await camera.presets()
    with pytest.raises(UnsupportedOperation):
        await camera.goto_home()
    with pytest.raises(UnsupportedOperation):
        camera.audio_chunks()
    with pytest.raises(UnsupportedOperation):
        await camera.send_audio(nothing())
    assert take(sim) == []


async def test_unit_without_continuous_zoom_refuses_a_zoom_velocity(
    sim: RunningSimulator, http: CameraHttp
) -> None:
    unit_values(sim)["PTZ.Support.S1.ContinuousZoom"] = "false"
    camera = await connected(sim, http)
    with pytest.raises(UnsupportedOperation):
        await camera.continuous_move(PtzVector(zoom=0.5))
    await camera.continuous_move(PtzVector(pan=-1.0))
    assert take(sim) == [("GET", "/ptz.cgi", {"continuouspantiltmove": "-100,0"})]


# -- media ----------------------------------------------------------------------------------------


async def test_snapshot_is_a_jpeg_of_the_configured_size(
    sim: RunningSimulator, driver: OpenApiDriver
) -> None:
    jpeg = await driver.snapshot()
    assert jpeg_size(jpeg) == (WIDTH, HEIGHT)
    assert take(sim) == [("GET", "/image.jpg", {})]


async def test_video_frames_over_one_connection(
    sim: RunningSimulator, driver: OpenApiDriver
) -> None:
    frames = []
    async with contextlib.aclosing(driver.video_frames()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) == 3:
                break
    assert [jpeg_size(frame.data) for frame in frames] == [(WIDTH, HEIGHT)] * 3
    stamps = [frame.timestamp for frame in frames]
    assert stamps[0] < stamps[1] < stamps[2]
    assert take(sim) == [("GET", "/video.mjpg", {})]


@pytest.mark.parametrize(
    ("httptype", "encoding", "expected"),
    [
        ("multipart", "g726", AudioFormat(AudioCodec.G726, bits_per_sample=4)),
        ("singlepart", "g711", AudioFormat(AudioCodec.MULAW)),
    ],
)
async def test_audio_chunks_decode_to_the_tone(
    sim: RunningSimulator,
    driver: OpenApiDriver,
    httptype: str,
    encoding: str,
    expected: AudioFormat,
) -> None:
    # The unit's default message type and codec; the reply's content type tells the driver.
    unit_values(sim).update({"Audio.HttpMessageType": httptype, "Audio.A0.AudioEncoding": encoding})
    chunks: list[AudioChunk] = []
    async with contextlib.aclosing(driver.audio_chunks()) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            if sum(len(c.data) for c in chunks) >= 2000:
                break
    assert {chunk.format for chunk in chunks} == {expected}
    assert decode_tone(expected, b"".join(c.data for c in chunks)) == pytest.approx(TONE_HZ, abs=5)
    assert take(sim) == [("GET", "/fromserver.cgi", {})]


async def test_send_audio_reaches_the_speaker(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    encoder = ToneEncoder(AudioCodec.G726)
    blocks = [encoder.next_chunk(0.06) for _ in range(5)]

    async def speech() -> AsyncIterator[bytes]:
        for block in blocks:
            yield block

    await driver.send_audio(speech())
    assert openapi(sim).unit.talk_received == b"".join(blocks)
    assert openapi(sim).unit.talk_total == 5 * 240
    (request,) = list(openapi(sim).requests)
    assert (request.method, request.path, request.query) == ("POST", "/toSERVER.cgi", {})
    assert request.content_type.lower() == "audio/32kadpcm"
    talk = driver.capabilities.audio_out
    assert talk is not None
    assert decode_tone(talk, bytes(openapi(sim).unit.talk_received)) == pytest.approx(
        TONE_HZ, abs=5
    )


# -- PTZ ------------------------------------------------------------------------------------------


def head(sim: RunningSimulator) -> PtzVector:
    return sim.camera.state.ptz.position()


async def test_continuous_move_then_stop(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    await driver.continuous_move(PtzVector(pan=0.5, tilt=-0.25, zoom=0.2))
    assert take(sim) == [
        ("GET", "/ptz.cgi", {"continuouspantiltmove": "50,-25", "continuouszoommove": "20"})
    ]
    assert sim.camera.state.ptz.velocity == PtzVector(0.5, -0.25, 0.2)
    await eventually(lambda: head(sim).pan > 0.02)
    await driver.stop()
    assert take(sim) == [
        ("GET", "/ptz.cgi", {"continuouspantiltmove": "0,0", "continuouszoommove": "0"})
    ]
    stopped = head(sim)
    assert stopped.tilt < 0 < stopped.zoom
    await asyncio.sleep(0.05)
    assert head(sim) == stopped


async def test_absolute_move_and_position(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    await driver.absolute_move(PtzVector(pan=0.5, tilt=-0.25, zoom=0.5), speed=0.4)
    assert take(sim) == [
        ("GET", "/ptz.cgi", {"pan": "85", "tilt": "-22.5", "zoom": "5000", "speed": "40"})
    ]
    assert head(sim).pan == pytest.approx(0.5)
    assert head(sim).tilt == pytest.approx(-0.25)
    assert head(sim).zoom == pytest.approx(0.5, abs=1e-3)
    assert openapi(sim).unit.speed == 40
    position = await driver.ptz_position()
    assert (position.pan, position.tilt, position.zoom) == pytest.approx(
        (0.5, -0.25, 0.5), abs=1e-3
    )
    assert take(sim) == [("GET", "/ptz.cgi", {"query": "position"})]


async def test_relative_move_uses_rpan_rtilt_rzoom(
    sim: RunningSimulator, driver: OpenApiDriver
) -> None:
    await driver.relative_move(PtzVector(pan=0.1, tilt=-0.2, zoom=0.25))
    assert take(sim) == [("GET", "/ptz.cgi", {"rpan": "17", "rtilt": "-18", "rzoom": "2500"})]
    here = head(sim)
    assert (here.pan, here.tilt, here.zoom) == pytest.approx((0.1, -0.2, 0.25), abs=1e-3)


async def test_relative_move_without_rpan_goes_through_the_position(
    sim: RunningSimulator, http: CameraHttp
) -> None:
    for axis in ("Pan", "Tilt", "Zoom"):
        unit_values(sim)[f"PTZ.Support.S1.Relative{axis}"] = "false"
    sim.camera.state.ptz.go_to(PtzVector(0.5, 0.5, 0.0))
    camera = await connected(sim, http)
    assert camera.capabilities.ptz.relative
    await camera.relative_move(PtzVector(pan=-0.25, tilt=0.25, zoom=0.5))
    assert take(sim) == [
        ("GET", "/ptz.cgi", {"query": "position"}),
        ("GET", "/ptz.cgi", {"pan": "42.5", "tilt": "67.5", "zoom": "5000"}),
    ]
    here = head(sim)
    assert (here.pan, here.tilt, here.zoom) == pytest.approx((0.25, 0.75, 0.5), abs=1e-3)
    # This unit really has no rpan: asking for it is a bad request.
    with pytest.raises(BadResponse, match="HTTP 400"):
        await http.get("/ptz.cgi", {"rpan": "10"})


async def test_presets_list_store_goto_remove(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    assert await driver.presets() == [Preset("1", "Home")]
    assert take(sim) == [("GET", "/config.cgi", {"action": "list", "group": "PTZ.Preset.P0"})]

    sim.camera.state.ptz.go_to(PtzVector(0.5, 0.25, 0.5))
    assert await driver.set_preset("Door") == "2"
    listing = ("GET", "/config.cgi", {"action": "list", "group": "PTZ.Preset.P0"})
    assert take(sim) == [("GET", "/configptz.cgi", {"setserverpresetname": "Door"}), listing]
    sim.camera.state.ptz.go_to(PtzVector(-0.5, 0.0, 0.0))
    assert await driver.set_preset("Gate", "05") == "5"
    assert take(sim) == [
        ("GET", "/configptz.cgi", {"setserverpresetname": "Gate", "setserverpresetno": "5"}),
        listing,
    ]

    await driver.goto_preset("2")
    assert take(sim) == [("GET", "/ptz.cgi", {"gotoserverpresetno": "2"})]
    assert head(sim) == pytest.approx(PtzVector(0.5, 0.25, 0.5))

    await driver.remove_preset("2")
    assert take(sim) == [("GET", "/configptz.cgi", {"removeserverpresetno": "2"})]
    assert await driver.presets() == [Preset("1", "Home"), Preset("5", "Gate")]
    with pytest.raises(ValueError, match="numbers"):
        await driver.goto_preset("Door")


async def test_home_set_and_goto(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    sim.camera.state.ptz.go_to(PtzVector(-0.5, 0.5, 0.25))
    await driver.set_home()
    assert take(sim) == [("GET", "/configptz.cgi", {"setserverpresetname": "Home", "home": "yes"})]
    sim.camera.state.ptz.go_to(PtzVector(0.9, -0.9, 1.0))
    await driver.goto_home()
    assert take(sim) == [("GET", "/ptz.cgi", {"move": "home"})]
    assert head(sim) == pytest.approx(PtzVector(-0.5, 0.5, 0.25))


async def test_ptz_speed(sim: RunningSimulator, driver: OpenApiDriver, http: CameraHttp) -> None:
    await driver.set_ptz_speed(0.25)
    assert take(sim) == [("GET", "/ptz.cgi", {"speed": "25"})]
    assert await http.get_text("/ptz.cgi", {"query": "speed"}) == "speed=25\r\n"
    with pytest.raises(ValueError, match="speed"):
        await driver.set_ptz_speed(0.0)


# -- imaging --------------------------------------------------------------------------------------


async def test_imaging_get_and_set(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    settings = await driver.imaging()
    assert take(sim) == [("GET", "/config.cgi", {"action": "list", "group": APPEARANCE})]
    assert settings.brightness == pytest.approx(128 / 255 * 100)
    assert settings.sharpness == pytest.approx(4 / 7 * 100)
    assert (settings.mirror, settings.flip) == (False, False)
    before = await driver.snapshot()
    take(sim)

    await driver.set_imaging(
        ImagingSettings(brightness=20, contrast=100, saturation=0, sharpness=100, mirror=True,
                        flip=True)
    )  # fmt: skip
    assert take(sim)[0] == (
        "GET",
        "/config.cgi",
        {
            "action": "update",
            f"{APPEARANCE}.Brightness": "51",
            f"{APPEARANCE}.Contrast": "255",
            f"{APPEARANCE}.Saturation": "0",
            f"{APPEARANCE}.Sharpness": "7",
            f"{APPEARANCE}.Mirror": "yes",
            f"{APPEARANCE}.Flip": "yes",
        },
    )
    assert (sim.camera.state.mirror, sim.camera.state.flip) == (True, True)
    assert await driver.imaging() == ImagingSettings(20.0, 100.0, 0.0, 100.0, True, True)
    assert await driver.snapshot() != before  # the picture turned over

    await driver.set_imaging(ImagingSettings(mirror=False))
    assert take(sim)[-1][2] == {"action": "update", f"{APPEARANCE}.Mirror": "no"}
    assert (sim.camera.state.mirror, sim.camera.state.flip) == (False, True)


# -- I/O and events -------------------------------------------------------------------------------


async def test_relay_outputs(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    assert await driver.relay_outputs() == [RelayOutput("1", False)]
    assert take(sim) == [("GET", "/output.cgi", {"checkactive": "1"})]
    await driver.set_relay("1", True)
    assert take(sim) == [("GET", "/output.cgi", {"action": "1:/"})]
    assert sim.camera.state.relays == [True]
    assert await driver.relay_outputs() == [RelayOutput("1", True)]
    await driver.set_relay("1", False)
    assert take(sim)[-1] == ("GET", "/output.cgi", {"action": "1:\\"})
    assert sim.camera.state.relays == [False]
    with pytest.raises(ValueError, match="relay"):
        await driver.set_relay("2", True)


async def test_digital_inputs(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    await sim_control(sim, "/__sim__/input?port=2&active=1")
    assert await driver.digital_inputs() == [DigitalInput("1", False), DigitalInput("2", True)]
    assert take(sim) == [("GET", "/input.cgi", {"checkactive": "1,2"})]


async def next_event(
    events: AsyncIterator[CameraEvent], wanted: Callable[[CameraEvent], bool]
) -> CameraEvent:
    async def find() -> CameraEvent:
        async for event in events:
            if wanted(event):
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(find(), 3.0)


async def test_events_report_motion_and_inputs(
    sim: RunningSimulator, driver: OpenApiDriver
) -> None:
    async with contextlib.aclosing(driver.events()) as events:
        initial = [await next_event(events, lambda e: True) for _ in range(3)]
        assert sorted((e.kind, e.source, e.active) for e in initial) == [
            (EventKind.DIGITAL_INPUT, "1", False),
            (EventKind.DIGITAL_INPUT, "2", False),
            (EventKind.MOTION, "", False),
        ]
        started = time.monotonic()
        await sim_control(sim, "/__sim__/motion?active=1&level=80")
        motion = await next_event(events, lambda e: e.kind is EventKind.MOTION)
        assert (motion.active, motion.level) == (True, 80)
        assert motion.timestamp >= started

        await sim_control(sim, "/__sim__/input?port=1&active=1")
        pressed = await next_event(events, lambda e: e.kind is EventKind.DIGITAL_INPUT)
        assert (pressed.source, pressed.active) == ("1", True)

        await sim_control(sim, "/__sim__/motion?active=0")
        calm = await next_event(events, lambda e: e.kind is EventKind.MOTION)
        assert (calm.active, calm.level) == (False, 0)
    assert sorted(take(sim), key=lambda sent: sent[1]) == [
        ("GET", "/input.cgi", {"monitor": "1,2"}),
        ("GET", "/motion.cgi", {}),
    ]


async def test_events_without_motion_windows_still_report_inputs(
    sim: RunningSimulator, driver: OpenApiDriver, http: CameraHttp
) -> None:
    # Windows removed after connect: motion.cgi answers 204 and only the inputs remain.
    reply = await http.get_text("/config.cgi", {"action": "remove", "group": "Motion.M0"})
    assert reply == "OK\r\n"
    async with contextlib.aclosing(driver.events()) as events:
        await sim_control(sim, "/__sim__/input?port=2&active=1")
        event = await next_event(events, lambda e: e.active)
        assert (event.kind, event.source) == (EventKind.DIGITAL_INPUT, "2")
    reconnected = await connected(sim, http)
    assert not reconnected.capabilities.motion_events


# -- system ---------------------------------------------------------------------------------------


async def test_get_datetime_applies_the_camera_time_zone(
    sim: RunningSimulator, driver: OpenApiDriver, http: CameraHttp
) -> None:
    moment = datetime.datetime(2009, 12, 10, 23, 30, 5, tzinfo=datetime.UTC)
    sim.camera.state.set_clock(moment)
    got = await driver.get_datetime()
    assert got.tzinfo == datetime.UTC
    assert abs((got - moment).total_seconds()) < 2
    assert take(sim) == [
        ("GET", "/config.cgi", {"action": "list", "group": "Time"}),
        ("GET", "/time.cgi", {"action": "get"}),
    ]
    # The camera itself speaks local time (GMT+01:00): already the next day there.
    assert (await http.get_text("/time.cgi", {"action": "get"})).startswith("Dec 11, 2009 00:30:")


async def test_set_datetime_sends_gmt(sim: RunningSimulator, driver: OpenApiDriver) -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    await driver.set_datetime(datetime.datetime(2010, 1, 7, 12, 30, 45, tzinfo=plus_two))
    assert take(sim) == [
        (
            "GET",
            "/time.cgi",
            {"action": "set", "year": "2010", "month": "1", "day": "7", "hour": "10",
             "minute": "30", "second": "45", "timezone": "GMT"},
        )
    ]  # fmt: skip
    expected = datetime.datetime(2010, 1, 7, 10, 30, 45, tzinfo=datetime.UTC)
    assert abs((sim.camera.state.now() - expected).total_seconds()) < 2
    assert abs((await driver.get_datetime() - expected).total_seconds()) < 2
    with pytest.raises(ValueError, match="aware"):
        await driver.set_datetime(datetime.datetime(2010, 1, 7))


async def test_reboot_and_factory_default(
    sim: RunningSimulator, driver: OpenApiDriver, http: CameraHttp
) -> None:
    await driver.reboot()
    assert take(sim) == [("GET", "/reboot.cgi", {})]
    assert sim.camera.state.reboots == 1
    assert "kernel: restart 1" in await http.get_text("/systemlog.cgi")

    update = {"action": "update", "Network.IPAddress": "10.0.0.9", f"{APPEARANCE}.Mirror": "yes"}
    assert await http.get_text("/config.cgi", update) == "OK\r\n"
    await driver.set_preset("Door")
    take(sim)
    await driver.factory_default()
    assert take(sim) == [("GET", "/factorydefault.cgi", {})]
    assert sim.camera.state.factory_resets == 1
    values = unit_values(sim)
    # The soft reset keeps the network settings, so the camera stays where it was.
    assert values["Network.IPAddress"] == "10.0.0.9"
    assert values[f"{APPEARANCE}.Mirror"] == "no"
    assert not sim.camera.state.mirror
    assert await driver.presets() == [Preset("1", "Home")]


# -- ffprobe reads the emulator's media ----------------------------------------------------------


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")
async def test_ffprobe_reads_the_mjpeg_stream(sim: RunningSimulator) -> None:
    result = await ffprobe("-show_streams", userinfo_url(sim, "/video.mjpg"))
    (stream,) = result["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", WIDTH, HEIGHT)


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")
async def test_ffprobe_decodes_the_audio_stream(sim: RunningSimulator) -> None:
    url = userinfo_url(sim, "/fromserver.cgi?httptype=singlepart")
    raw_g726 = ("-f", "g726", "-code_size", "4", "-sample_rate", "8000")
    # A raw stream needs no probing beyond a few blocks; ffprobe would otherwise listen for 5 s.
    result = await ffprobe(
        "-show_streams", *raw_g726, "-probesize", "2048", "-analyzeduration", "100000", url
    )
    (stream,) = result["streams"]
    described = (stream["codec_name"], stream["sample_rate"], stream["channels"])
    assert described == ("adpcm_g726", "8000", 1)


# -- the emulator on its own ----------------------------------------------------------------------


async def test_emulator_challenge_and_server_header(sim: RunningSimulator) -> None:
    async with aiohttp.ClientSession() as session, session.get(sim.url + "/config.cgi") as reply:
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"] == 'Basic realm="Open API IP Camera"'
        assert reply.headers["Server"] == "Boa/0.94.14rc21"


async def test_emulator_config_list_quirks(http: CameraHttp) -> None:
    text = await http.get_text(
        "/config.cgi", {"action": "list", "group": "Brand.Brand,group=Nothing.Here"}
    )
    assert text == "Brand.Brand=IPCAM\n# Error: Error -1 getting param in group 'Nothing.Here'\n"
    everything = parse_param_list(await http.get_text("/config.cgi", {"action": "list"}))
    assert everything.get("Motion.M0.Name") == "DefaultWindow"
    assert everything.get("PTZ.Preset.P0.Position.P1.Data").startswith("pan=0.000000:tilt=")


async def test_emulator_config_update_add_remove(http: CameraHttp) -> None:
    refused = await http.get_text("/config.cgi", {"action": "update", "Brand.Brand": "X"})
    assert refused == "# Error: Error setting 'Brand.Brand' to 'X'!\r\n"
    too_bright = {"action": "update", f"{APPEARANCE}.Brightness": "256"}
    assert (await http.get_text("/config.cgi", too_bright)).startswith("# Error:")
    added = await http.get_text(
        "/config.cgi",
        {"action": "add", "group": "Motion", "template": "motion", "Motion.M.Name": "Entrance",
         "Motion.M.Top": "500"},
    )  # fmt: skip
    assert added == "M1 OK\r\n"
    assert parse_command_reply(added) == "M1"
    listed = parse_param_list(
        await http.get_text("/config.cgi", {"action": "list", "group": "Motion.M1"})
    )
    assert (listed.get("Motion.M1.Name"), listed.get("Motion.M1.Top")) == ("Entrance", "500")
    update = {"action": "update", "Motion.M1.Top": "1500", "Motion.M1.Bottom": "8000"}
    assert await http.get_text("/config.cgi", update) == "OK\r\n"
    removed = {"action": "remove", "group": "Motion.M0,group=Motion.M1"}
    assert await http.get_text("/config.cgi", removed) == "OK\r\n"
    assert (await http.get_text("/config.cgi", removed)).startswith("# Error:")


async def test_emulator_rejects_bad_ptz_requests(http: CameraHttp) -> None:
    for params in (
        {"continuouspantiltmove": "150,0"},
        {"pan": "east"},
        {"gotoserverpresetno": "9"},
        {"move": "sideways"},
        {"bogus": "1"},
    ):
        with pytest.raises(BadResponse, match="HTTP 400"):
            await http.get("/ptz.cgi", params)
    with pytest.raises(BadResponse, match="HTTP 400"):
        await http.get("/configptz.cgi", {"removeserverpresetno": "7"})
    assert (await http.get("/ptz.cgi", {"move": "right"})).status == 204


async def test_emulator_time_set_failures(http: CameraHttp) -> None:
    bad_zone = await http.get_text("/time.cgi", {"action": "set", "hour": "1", "timezone": "CET"})
    assert bad_zone == "Request failed: Only GMT is a valid timezone\r\n"
    bad_day = await http.get_text("/time.cgi", {"action": "set", "month": "2", "day": "30"})
    assert bad_day.startswith("Request failed:")
    with pytest.raises(ValueError, match="refused"):
        parse_command_reply(bad_day)


async def test_emulator_ports_and_pulses(sim: RunningSimulator, http: CameraHttp) -> None:
    await sim_control(sim, "/__sim__/input?port=1&active=1")
    assert await http.get_text("/port.cgi", {"checkdirection": "1,2,3"}) == (
        "port1=input\r\nport2=input\r\nport3=output\r\n"
    )
    assert await http.get_text("/input.cgi", {"check": "1,2"}) == "input1=1\r\ninput2=0\r\n"
    # A 150 ms pulse on the relay: active at once, inactive by itself afterwards.
    assert await http.get_text("/port.cgi", {"action": "3:/150\\"}) == "OK\r\n"
    assert sim.camera.state.relays == [True]
    await eventually(lambda: sim.camera.state.relays == [False])
    with pytest.raises(BadResponse, match="HTTP 400"):
        await http.get("/port.cgi", {"action": "1:/"})  # an input cannot be driven
    with pytest.raises(BadResponse, match="HTTP 400"):
        await http.get("/output.cgi", {"check": "4"})


async def test_emulator_ipfilter_and_storage(http: CameraHttp) -> None:
    added = {"action": "add", "ipaddress": "10.13.10.12 10.13.17.0/24", "enable": "yes"}
    assert await http.get_text("/ipfilter.cgi", added) == "OK\r\n"
    assert await http.get_text("/ipfilter.cgi", {"action": "list"}) == (
        "Accept addresses: 10.13.10.12 10.13.17.0/24\r\nEnabled: yes\r\n"
    )
    assert await http.get_text("/ipfilter.cgi", {"action": "removeall"}) == "OK\r\n"
    assert (await http.get_text("/ipfilter.cgi", {"action": "list"})).endswith("Enabled: no\r\n")

    disks = ET.fromstring(await http.get_text("/list.cgi", {"diskid": "all"}))
    disk = disks.find("disks/disk")
    assert disk is not None
    assert (disk.get("diskid"), disk.get("status")) == ("SD_DISK", "OK")
    recordings = ET.fromstring(await http.get_text("/list.cgi", {"recordingid": "all"}))
    ids = [r.get("recordingid") for r in recordings.iter("recording")]
    assert ids == ["20090101_010101.avi", "20090101_010201.avi"]


async def test_emulator_video_cgi_takes_only_its_own_resolution(http: CameraHttp) -> None:
    jpeg = (await http.get("/image.cgi", {"resolution": "QVGA"})).body
    assert jpeg_size(jpeg) == (WIDTH, HEIGHT)
    with pytest.raises(BadResponse, match="HTTP 400"):
        await http.get("/image.cgi", {"resolution": "640x480"})


async def test_emulator_multipart_audio_and_io_framing(http: CameraHttp) -> None:
    """The exact bytes of the quirky streams: boundary declared with dashes, IO0 for port 1."""
    async with http.stream("/fromserver.cgi", {"httptype": "multipart"}) as reply:
        assert reply.content_type == "multipart/x-mixed-replace; boundary=--myboundary"
        first = await anext(reply.chunks())
    assert first.startswith(b"--myboundary\r\n")
    async with http.stream("/input.cgi", {"monitor": "2"}) as reply:
        data = b""
        async for chunk in reply.chunks():
            data += chunk
            if data.count(b"--ioboundary") >= 2:
                break
    assert data == (
        b"\r\n\r\n\r\n--ioboundary\r\nContent-Type: text/plain\r\n\r\nIO1:\\\n\r\n"
        b"\r\n--ioboundary\r\n"
    )


# -- parsers, on the specification's own replies ---------------------------------------------------

# Reply shapes from the specification, quirks included (bare LF lists, wrapped lines, "M<n> OK").
SPEC_LIST = "Network.IPAddress=10.13.12.36\nNetwork.SubnetMask=255.255.255.0\n"
SPEC_MOTION = (
    "group=0;level=28;threshold=  \n45;\r\n"  # wrapped mid-record, as the document prints it
    "group=1;level=43;threshold=25;\r\n"
)
SPEC_IO_PARTS = (
    "\r\n\r\n\r\n--ioboundary\r\nContent-Type: text/plain\r\n\r\nIO0:/\n\r\n\r\n"
    "--ioboundary\r\nContent-Type: text/plain\r\n\r\nIO0:H\n\r\n"
    "--ioboundary\r\nContent-Type: text/plain\r\n\r\n\r\nIO0:\\\n\r\n\r\n"
    "--ioboundary\r\nContent-Type: text/plain\r\n\r\n\r\n      \r\n\r\n"
    "--ioboundary\r\n"
)


def test_parse_param_list_spec_forms() -> None:
    assert parse_param_list(SPEC_LIST).values == {
        "Network.IPAddress": "10.13.12.36",
        "Network.SubnetMask": "255.255.255.0",
    }
    quirky = "root.Brand.Brand=IPCAM\r\n\r\nImage.\nI1.Appearance.bitrate=1024\n# Error: no group\n"
    parsed = parse_param_list(quirky)
    assert parsed.values == {"Brand.Brand": "IPCAM", "Image.I1.Appearance.bitrate": "1024"}
    assert parsed.errors == ("Error: no group",)
    with pytest.raises(ValueError, match="without '='"):
        parse_param_list("<html>Not Found</html>")


def test_parse_command_reply_spec_forms() -> None:
    assert parse_command_reply("OK\r\n") == ""
    assert parse_command_reply("M3 OK\r\n") == "M3"
    assert parse_command_reply("") == ""
    for failure in ("# Error: Error setting 'x' to 'y'!\n", "Request failed: bad year\r\n"):
        with pytest.raises(ValueError, match="camera refused"):
            parse_command_reply(failure)
    with pytest.raises(ValueError, match="unexpected"):
        parse_command_reply("<html>Done</html>")


def test_parse_camera_time_spec_form() -> None:
    plus_one = datetime.timedelta(hours=1)
    expected = datetime.datetime(2003, 4, 3, 14, 16, 4, tzinfo=datetime.UTC)
    assert parse_camera_time("Apr 03, 2003 15:16:04\r\n", plus_one) == expected
    assert parse_camera_time("April 3 2003  15:16:04", plus_one) == expected
    with pytest.raises(ValueError, match="not a camera date"):
        parse_camera_time("<month> <day>, <year>", plus_one)


@pytest.mark.parametrize(
    ("zone", "hours"),
    [("GMT", 0), ("GMT+08:00", 8), ("(GMT-05:00) Eastern Time", -5), ("UTC+0530", 5.5),
     ("CST-8", 8), ("EST5", -5), ("GMT0", 0)],
)  # fmt: skip
def test_parse_utc_offset(zone: str, hours: float) -> None:
    assert parse_utc_offset(zone) == datetime.timedelta(hours=hours)


def test_parse_utc_offset_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_utc_offset("somewhere nice")
    # A POSIX zone with summer time would be an hour off half the year: refused, not guessed.
    with pytest.raises(ValueError, match="summer time"):
        parse_utc_offset("EST5EDT,M3.2.0,M11.1.0")


def test_time_set_params_are_utc() -> None:
    value = datetime.datetime(2031, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
    assert time_set_params(value) == {
        "action": "set", "year": "2031", "month": "12", "day": "31", "hour": "23",
        "minute": "59", "second": "59", "timezone": "GMT",
    }  # fmt: skip


def test_parse_motion_levels_spec_form() -> None:
    levels = parse_motion_levels(SPEC_MOTION)
    assert [(m.group, m.level, m.threshold, m.active) for m in levels] == [
        (0, 28, 45, False),
        (1, 43, 25, True),
    ]
    with pytest.raises(ValueError, match="threshold"):
        parse_motion_levels("group=0;level=28;")


def test_io_monitor_spec_stream() -> None:
    parser = MultipartParser("ioboundary")
    parts = parser.feed(SPEC_IO_PARTS.encode())
    states = [parse_io_monitor(part.body.decode()) for part in parts]
    assert states == [{0: True}, {0: True}, {0: False}, {}]
    assert parse_io_monitor("IO1:L\r\nIO2:/\r\n") == {1: False, 2: True}
    assert io_number_base([0, 1]) == 0
    assert io_number_base([1, 2]) == 1


def test_parse_port_states() -> None:
    assert parse_port_states("input1=active\r\ninput2=0\r\n", "input") == {1: True, 2: False}
    with pytest.raises(ValueError, match="expected output"):
        parse_port_states("input1=1\r\n", "output")
    with pytest.raises(ValueError, match="unknown port state"):
        parse_port_states("output1=maybe\r\n", "output")


def test_audio_types() -> None:
    assert audio_format_for_mime("audio/basic") == AudioFormat(AudioCodec.MULAW)
    assert audio_format_for_mime("Audio/32KADPCM; rate=8000") == AudioFormat(
        AudioCodec.G726, bits_per_sample=4
    )
    # The family's "G723" is G.726 at 24 kbit/s.
    assert audio_format_for_mime("audio/G723") == AudioFormat(AudioCodec.G726, bits_per_sample=3)
    assert mime_for_audio_format(AudioFormat(AudioCodec.G726, bits_per_sample=4)) == (
        "audio/32KADPCM"
    )
    with pytest.raises(ValueError, match="unknown audio type"):
        audio_format_for_mime("audio/mpeg")
    with pytest.raises(ValueError, match="cannot play"):
        mime_for_audio_format(AudioFormat(AudioCodec.GSM))


def test_imaging_mapping_round_trip() -> None:
    params = ParamList({f"{APPEARANCE}.Brightness": "255", f"{APPEARANCE}.Mirror": "yes",
                        f"{APPEARANCE}.Sharpness": "garbage"})  # fmt: skip
    settings = imaging_from_params(params)
    assert settings == ImagingSettings(brightness=100.0, mirror=True)
    assert imaging_update_params(ImagingSettings(brightness=50.0, sharpness=0, flip=False)) == {
        f"{APPEARANCE}.Brightness": "128",
        f"{APPEARANCE}.Sharpness": "0",
        f"{APPEARANCE}.Flip": "no",
    }


def test_parse_presets_ignores_other_lines() -> None:
    params = parse_param_list(
        "PTZ.Preset.P0.HomePosition=1\nPTZ.Preset.P0.Position.P10.Name=Gate\n"
        "PTZ.Preset.P0.Position.P2.Name=Door\nPTZ.Preset.P0.Position.P2.Data=pan=1:tilt=2\n"
    )
    assert parse_presets(params) == [Preset("2", "Door"), Preset("10", "Gate")]


@given(st.floats(-1.0, 1.0))
def test_axis_scale_round_trips(norm: float) -> None:
    pan = AxisScale(-170.0, 170.0)
    zoom = AxisScale(1.0, 9999.0, 0.0)
    assert pan.from_vendor(pan.to_vendor(norm)) == pytest.approx(norm, abs=1e-9)
    assert zoom.from_vendor(zoom.to_vendor(abs(norm))) == pytest.approx(abs(norm), abs=1e-9)
    assert -170.0 <= pan.to_vendor(norm * 5) <= 170.0


_SEGMENTS = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
_NAMES = (
    st.lists(_SEGMENTS, min_size=1, max_size=5)
    .map(".".join)
    .filter(lambda name: not name.startswith("root."))
)
_VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)


@given(st.dictionaries(_NAMES, _VALUES.map(str.strip), max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_param_list_round_trips(values: dict[str, str], newline: str) -> None:
    text = "".join(f"{name}={value}{newline}" for name, value in values.items())
    assert parse_param_list(text).values == values


@given(st.text(max_size=200))
def test_param_list_parser_fails_only_with_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_param_list(text)
