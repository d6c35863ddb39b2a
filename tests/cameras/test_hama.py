"""The hama driver against its emulator on loopback, the emulator's own quirks, and the pure
parsers fed with the example replies of the dialect's document."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, cast

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from conftest import OpenHttp, Serve, StartSim
from helpers import (
    FFPROBE,
    dominant_frequency,
    ffprobe,
    jpeg_size,
    probe_first_video_frames,
    with_userinfo,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cameras import hama
from bridge.cameras.base import (
    AudioCodec,
    AudioFormat,
    DeviceInfo,
    ImagingField,
    ImagingSettings,
    PtzCapabilities,
    PtzVector,
)
from bridge.cameras.hama import HamaDriver
from bridge.errors import (
    AuthenticationFailed,
    BadResponse,
    CameraUnreachable,
    UnsupportedOperation,
)
from bridge.simulator.core import RunningSimulator, SimOptions
from bridge.simulator.hama import HamaSimulator

USER, PASSWORD = "admin", "pw-9317"
WIDTH, HEIGHT = 320, 240
OPTIONS = SimOptions(
    username=USER, password=PASSWORD, width=WIDTH, height=HEIGHT, fps=10, mac="00:11:09:15:10:ab"
)
MAC = "00:11:09:15:10:AB"
PARAM = "/camera-cgi/admin/param.cgi"
PTZ = "/camera-cgi/com/ptz.cgi"
PTZ_CONFIG = "/camera-cgi/com/ptzconfig.cgi"
FORM = "/form/enet"
GSM = AudioFormat(AudioCodec.GSM, 8000)
TONE_HZ = 440.0  # what the emulator's ToneEncoder plays
# Where each move= step takes the head (pan, tilt), per the document's direction names.
STEP_VECTORS = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, 1),
    "down": (0, -1),
    "upleft": (-1, 1),
    "upright": (1, 1),
    "downleft": (-1, -1),
    "downright": (1, -1),
}


# -- the document's example replies, as printed (indents, root. or not, padded values) --------

SEED_BRAND = (
    "root.Brand.Brand=Hama GmbH & Co. KG \n"
    "root.Brand.ProdFullName= Hama Wireless IP Camera \n"
    "root.Brand.ProdShortName= IP - Cam M360 \n"
    "root.Brand.ProdNbr= 00053104 \n"
    "root.Brand.ProdType=Wireless Lan IP Camera \n"
    "root.Brand.WebURL=http://www.hama.de/ \n"
)
SEED_MAC = "Network.Interface.I0.Active.MACAddress=00:11:09:15:10:AB \n"
SEED_FIRMWARE = (
    "Properties.Firmware.Version=v1.32 \n"
    "Properties.Firmware.ModelID=12 \n"
    "Properties.Firmware.VendorID=1 \n"
)
SEED_IMAGE = (
    "  root.Properties.Image.FlipMode=1 \n"
    "  root.Properties.Image.Resolution=1280x1024,1024x768,640x480,320x240 \n"
    "  root.Properties.Image.Format=mjpeg,mpeg4 \n"
)
SEED_IMAGE_I0 = (
    "root.Properties.Image.I0.FlipMode=1 \n"
    "root.Properties.Image.I0.Resolution=1280x1024,640x480,320x240\n"
    " root.Properties.Image.I0.Format=mjpeg \n"
)
# The manual's own explanation lines run into the example; they are not parameters.
SEED_APPEARANCE = (
    "        root.Image.I0.Appearance.Resolution=640x480 \n"
    "root.Image.I0.Appearance.Compression=0 \n"
    "Compression: value range is 0~4 \n"
    "0:low 4:high \n"
)
SEED_AUDIO = (
    "Properties.Audio=yes \n"
    "  Properties.Audio.TwoWayAudio=yes \n"
    "  Properties.Audio.AudioCodec=GSM 06.10 \n"
    "  Properties.Audio.TwoWayAudioCodec=GSM 06.10 \n"
)
SEED_PTZ = "Properties.PTZ.PTZ=yes \n"
SEED_FPS = "        Image.I0.Stream.FPS=15 \n        MJPEG only. \n"
SEED_ALL = "".join(
    (SEED_BRAND, SEED_MAC, SEED_FIRMWARE, SEED_IMAGE, SEED_APPEARANCE, SEED_AUDIO, SEED_PTZ)
)


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
async def sim(start_sim: StartSim) -> RunningSimulator:
    return await start_sim(HamaSimulator(OPTIONS))


@pytest.fixture
def driver(sim: RunningSimulator, open_http: OpenHttp) -> HamaDriver:
    return HamaDriver(open_http(sim.url, USER, PASSWORD))


def camera(sim: RunningSimulator) -> HamaSimulator:
    assert isinstance(sim.camera, HamaSimulator)
    return sim.camera


def sent(sim: RunningSimulator) -> list[tuple[str, str, dict[str, str]]]:
    """The CGI requests the camera accepted (the 401 round trips left out), oldest first."""
    return [(r.method, r.path, r.query) for r in sim.camera.requests if r.authenticated_user]


def moves(sim: RunningSimulator) -> list[str]:
    return [query["move"] for _, path, query in sent(sim) if path == PTZ and "move" in query]


def position(sim: RunningSimulator) -> PtzVector:
    return sim.camera.state.ptz.position()


def at(pan: float, tilt: float) -> PtzVector:
    return PtzVector(pytest.approx(pan), pytest.approx(tilt), 0.0)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def take(iterator: AsyncIterator[Any], count: int) -> list[Any]:
    items: list[Any] = []
    async with aclosing(cast(AsyncGenerator[Any, None], iterator)) as stream:
        async for item in stream:
            items.append(item)
            if len(items) == count:
                break
    return items


async def raw_get(url: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as reply:
        return reply, await reply.read()


AUTH = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}


# -- identity and capabilities -------------------------------------------------------------------


async def test_connect_reads_identity_and_capabilities(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    info = await driver.connect()

    assert info == DeviceInfo(
        manufacturer="Hama GmbH & Co. KG",
        model="IP - Cam M360",
        firmware="v1.32",
        serial=MAC,
        mac=MAC,
        hardware_id="00053104",
    )
    groups = [
        "Brand",
        "Properties.Firmware",
        "Network.Interface.I0.Active.MACAddress",
        "Properties.Audio",
        "Properties.PTZ.PTZ",
        "Properties.Image",
        "Image.I0.Appearance",
    ]
    assert sent(sim) == [("GET", PARAM, {"action": "list", "group": g}) for g in groups]
    caps = driver.capabilities
    assert caps.snapshot
    assert caps.video
    assert caps.resolution == (WIDTH, HEIGHT)
    assert caps.audio_in == GSM
    assert caps.audio_out is None
    assert caps.ptz == PtzCapabilities(
        continuous=True, relative=True, absolute=True, presets=8, home=True, speed=True
    )
    assert caps.imaging == {ImagingField.MIRROR, ImagingField.FLIP}
    assert (caps.relay_outputs, caps.digital_inputs) == (0, 0)
    flags = (caps.motion_events, caps.input_events, caps.get_datetime, caps.set_datetime)
    assert not any((*flags, caps.reboot, caps.factory_default))

    # The same requests, as the emulator's own log reports them over HTTP.
    reply, body = await raw_get(f"{sim.url}/__sim__/requests")
    assert reply.status == 200
    logged = [r for r in json.loads(body) if r["authenticated_user"] == USER]
    assert [(r["method"], r["path"], r["query"]["group"]) for r in logged] == [
        ("GET", PARAM, g) for g in groups
    ]
    assert all(r["query"]["action"] == "list" for r in logged)


async def test_device_info_reads_only_the_identity_groups(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    info = await driver.device_info()

    assert (info.manufacturer, info.firmware, info.mac) == ("Hama GmbH & Co. KG", "v1.32", MAC)
    assert [q["group"] for _, _, q in sent(sim)] == [
        "Brand",
        "Properties.Firmware",
        "Network.Interface.I0.Active.MACAddress",
    ]


async def test_unit_with_audio_disabled_reports_no_audio(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    form = {"enet_source": "cp.asp", "enet_audio_enable": "No"}
    reply, _ = await raw_get(f"{sim.url}{FORM}", params=form, headers=AUTH, allow_redirects=False)
    assert reply.status == 302

    await driver.connect()

    assert camera(sim).settings.form["enet_audio_enable"] == "No"
    assert driver.capabilities.audio_in is None


async def test_wrong_password_is_an_authentication_error(
    sim: RunningSimulator, open_http: OpenHttp
) -> None:
    wrong = HamaDriver(open_http(sim.url, USER, "not-the-password"))

    with pytest.raises(AuthenticationFailed) as caught:
        await wrong.connect()

    assert "not-the-password" not in str(caught.value)
    assert not sent(sim)


async def test_detect_recognizes_the_emulator(sim: RunningSimulator, open_http: OpenHttp) -> None:
    assert await HamaDriver.detect(open_http(sim.url, USER, PASSWORD))
    assert sent(sim) == [("GET", PARAM, {"action": "list", "group": "Brand"})]


async def test_detect_lets_a_wrong_password_through(
    sim: RunningSimulator, open_http: OpenHttp
) -> None:
    with pytest.raises(AuthenticationFailed):
        await HamaDriver.detect(open_http(sim.url, USER, "wrong"))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, "<html>Not Found</html>"),
        (200, "<html><head><meta name=x content=y></head>Welcome</html>"),
        (200, "root.Properties.Firmware.Version=1.0\n"),
        (500, "Internal Server Error"),
    ],
)
async def test_detect_rejects_other_cameras(
    serve: Serve, open_http: OpenHttp, status: int, body: str
) -> None:
    async def anything(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    url = await serve(app)

    assert not await HamaDriver.detect(open_http(url, USER, PASSWORD))


async def test_fingerprint_of_the_emulator_matches(
    sim: RunningSimulator, open_http: OpenHttp
) -> None:
    fingerprint = await open_http(sim.url).fingerprint()

    assert (fingerprint.status, fingerprint.server, fingerprint.realm) == (
        401,
        "GoAhead-Webs",
        "Internet Camera",
    )
    assert HamaDriver.matches_fingerprint(fingerprint.server, fingerprint.realm)
    assert not HamaDriver.matches_fingerprint("Boa/0.94.14rc21", "DCS-930L")
    assert not HamaDriver.matches_fingerprint("GoAhead-Webs", "")


# -- media -------------------------------------------------------------------------------------


async def test_snapshot_is_a_jpeg_of_the_configured_size(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    jpeg = await driver.snapshot()

    assert jpeg_size(jpeg) == (WIDTH, HEIGHT)
    assert sent(sim) == [("GET", "/jpg/image.jpg", {})]


async def test_video_frames_come_over_one_connection(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    frames = await take(driver.video_frames(), 4)

    assert [jpeg_size(f.data) for f in frames] == [(WIDTH, HEIGHT)] * 4
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    assert stamps[-1] > stamps[0]
    assert len({f.data for f in frames}) == 4  # live pictures, not one repeated
    assert sent(sim) == [("GET", "/mjpg/video.mjpg", {})]


async def test_audio_chunks_decode_to_the_tone(sim: RunningSimulator, driver: HamaDriver) -> None:
    chunks = []
    async with aclosing(cast(AsyncGenerator[Any, None], driver.audio_chunks())) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            if sum(len(c.data) for c in chunks) >= 33 * 25:  # half a second
                break

    assert all(c.format == GSM and len(c.data) % 33 == 0 for c in chunks)
    decoder = av.CodecContext.create("gsm", "r")
    data = b"".join(c.data for c in chunks)
    pcm = np.concatenate(
        [
            frame.to_ndarray().reshape(-1)
            for offset in range(0, len(data), 33)
            for frame in decoder.decode(av.Packet(data[offset : offset + 33]))
        ]
    ).astype(np.float64)
    assert len(pcm) == len(data) // 33 * 160
    assert np.sqrt(np.mean(pcm**2)) > 2000  # a -12 dBFS tone, not silence
    assert dominant_frequency(pcm, 8000) == pytest.approx(TONE_HZ, abs=20)
    assert sent(sim) == [("GET", "/camera-cgi/audio/receive.cgi", {})]


async def test_multipart_audio_is_also_accepted(serve: Serve, open_http: OpenHttp) -> None:
    # The document calls the audio stream multipart; some units may frame it so.
    payload = bytes(range(150))

    async def audio(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "multipart/x-mixed-replace; boundary=audioboundary"}
        )
        await response.prepare(request)
        for offset in range(0, len(payload), 50):
            part = payload[offset : offset + 50]
            await response.write(b"--audioboundary\r\nContent-Type: audio/basic\r\n\r\n" + part)
            await response.write(b"\r\n")
        await response.write(b"--audioboundary--\r\n")
        return response

    app = web.Application()
    app.router.add_get("/camera-cgi/audio/receive.cgi", audio)
    driver = HamaDriver(open_http(await serve(app), USER, PASSWORD))

    chunks: list[bytes] = []

    async def receive() -> None:
        async for chunk in driver.audio_chunks():
            chunks.append(chunk.data)

    with pytest.raises(CameraUnreachable):
        await receive()  # until the camera closes the stream

    assert all(len(chunk) % 33 == 0 for chunk in chunks)
    assert b"".join(chunks) == payload[:132]  # four whole frames; the torn fifth is not passed on


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")
async def test_ffprobe_reads_the_mjpeg_stream(sim: RunningSimulator) -> None:
    stream = await probe_first_video_frames(
        with_userinfo(f"{sim.url}/mjpg/video.mjpg", USER, PASSWORD)
    )
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", WIDTH, HEIGHT)
    assert int(stream["nb_read_frames"]) >= 3


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")
async def test_ffprobe_decodes_the_audio_stream(sim: RunningSimulator) -> None:
    probe = await ffprobe(
        "-f",
        "gsm",
        "-read_intervals",
        "%+#10",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,sample_rate,nb_read_frames",
        with_userinfo(f"{sim.url}/camera-cgi/audio/receive.cgi", USER, PASSWORD),
    )

    (stream,) = probe["streams"]
    assert (stream["codec_name"], stream["sample_rate"]) == ("gsm", "8000")
    assert int(stream["nb_read_frames"]) >= 10


# -- PTZ ---------------------------------------------------------------------------------------


async def test_continuous_move_repeats_steps_until_stopped(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    await driver.continuous_move(PtzVector(pan=1.0))
    assert moves(sim) == ["right"]  # the first step is sent before the call returns

    await until(lambda: len(moves(sim)) >= 2)
    await driver.stop()
    steps = len(moves(sim))
    await asyncio.sleep(hama.FASTEST_STEP_INTERVAL * 1.5)

    assert moves(sim) == ["right"] * steps
    assert position(sim) == at(0.1 * steps, 0.0)


async def test_continuous_move_ends_by_itself_at_the_end_stop(
    sim: RunningSimulator, driver: HamaDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hama, "FASTEST_STEP_INTERVAL", 0.005)
    sim.camera.state.ptz.go_to(PtzVector(pan=-1.0))

    await driver.continuous_move(PtzVector(pan=1.0))
    await until(lambda: len(moves(sim)) >= hama.FULL_TRAVEL_STEPS)
    await asyncio.sleep(0.05)

    assert moves(sim) == ["right"] * hama.FULL_TRAVEL_STEPS
    assert position(sim) == at(1.0, 0.0)
    await driver.stop()


@pytest.mark.parametrize(
    ("velocity", "direction"),
    [
        (PtzVector(pan=-0.5, tilt=0.45), "upleft"),
        (PtzVector(pan=0.2, tilt=-1.0), "down"),
        (PtzVector(pan=0.9, tilt=-0.3), "right"),
        (PtzVector(pan=0.6, tilt=-0.4), "downright"),
        (PtzVector(tilt=0.1), "up"),
    ],
)
async def test_continuous_move_snaps_to_the_nearest_direction(
    sim: RunningSimulator, driver: HamaDriver, velocity: PtzVector, direction: str
) -> None:
    await driver.continuous_move(velocity)
    await driver.stop()

    assert moves(sim) == [direction]
    dx, dy = STEP_VECTORS[direction]
    assert position(sim) == at(0.1 * dx, 0.1 * dy)


async def test_zero_velocity_stops_a_continuous_move(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    await driver.continuous_move(PtzVector(tilt=-1.0))
    await driver.continuous_move(PtzVector())
    await asyncio.sleep(hama.FASTEST_STEP_INTERVAL * 1.5)

    assert moves(sim) == ["down"]


async def test_relative_move_sends_steps_diagonals_first(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    await driver.relative_move(PtzVector(pan=0.3, tilt=-0.1))

    assert sent(sim) == [
        ("GET", PTZ, {"move": "downright"}),
        ("GET", PTZ, {"move": "right"}),
        ("GET", PTZ, {"move": "right"}),
    ]
    assert position(sim) == at(0.3, -0.1)


async def test_relative_move_with_speed_sets_the_pt_speed_first(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    await driver.relative_move(PtzVector(pan=-0.01), speed=0.5)

    assert sent(sim) == [
        ("GET", FORM, {"enet_source": "cp.asp", "enet_avs_pt_speed": "5"}),
        ("GET", PTZ, {"move": "left"}),  # a small move still moves one step
    ]
    assert camera(sim).settings.form["enet_avs_pt_speed"] == "5"
    assert position(sim) == at(-0.1, 0.0)


async def test_absolute_move_steps_out_from_the_centre(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    sim.camera.state.ptz.go_to(PtzVector(pan=-0.7, tilt=0.4))

    await driver.absolute_move(PtzVector(pan=0.2, tilt=-0.3))

    assert moves(sim) == ["center", "downright", "downright", "down"]
    assert position(sim) == at(0.2, -0.3)


async def test_goto_home_centres_the_head(sim: RunningSimulator, driver: HamaDriver) -> None:
    sim.camera.state.ptz.go_to(PtzVector(pan=0.5, tilt=0.5))

    await driver.goto_home()

    assert sent(sim) == [("GET", PTZ, {"move": "center"})]
    assert position(sim) == at(0.0, 0.0)


@pytest.mark.parametrize(("speed", "level"), [(1.0, "1"), (0.75, "3"), (0.5, "5"), (0.05, "9")])
async def test_set_ptz_speed(
    sim: RunningSimulator, driver: HamaDriver, speed: float, level: str
) -> None:
    await driver.set_ptz_speed(speed)

    assert sent(sim) == [("GET", FORM, {"enet_source": "cp.asp", "enet_avs_pt_speed": level})]
    assert camera(sim).settings.form["enet_avs_pt_speed"] == level


async def test_presets_store_recall_and_remove(sim: RunningSimulator, driver: HamaDriver) -> None:
    sim.camera.state.ptz.go_to(PtzVector(pan=0.3, tilt=-0.2))
    assert await driver.set_preset("myroom", "2") == "2"
    sim.camera.state.ptz.go_to(PtzVector(pan=-0.9))
    assert await driver.set_preset("hall", "1") == "1"

    await driver.goto_preset("2")
    assert position(sim) == at(0.3, -0.2)
    await driver.remove_preset("2", "myroom")  # the CGI names what it removes

    assert sent(sim) == [
        ("GET", PTZ_CONFIG, {"setserverpresetname": "myroom", "presetNo": "2"}),
        ("GET", PTZ_CONFIG, {"setserverpresetname": "hall", "presetNo": "1"}),
        ("GET", PTZ, {"gotoserverpresetIndex": "2"}),
        ("GET", PTZ_CONFIG, {"removeserverpresetname": "myroom", "presetNo": "2"}),
    ]
    assert sorted(camera(sim).settings.presets) == [1]


async def test_presets_cannot_be_listed(driver: HamaDriver) -> None:
    """The CGI cannot read presets back, so the gateway names them and picks their slots
    (bridge.ptz.PtzHead), and keeps them across restarts in the state file."""
    with pytest.raises(UnsupportedOperation, match="list presets"):
        await driver.presets()
    with pytest.raises(UnsupportedOperation, match="free preset slot"):
        await driver.set_preset("hall")


async def test_going_to_an_empty_preset_is_a_bad_response(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    with pytest.raises(BadResponse, match="No preset point 3"):
        await driver.goto_preset("3")
    assert sent(sim) == [("GET", PTZ, {"gotoserverpresetIndex": "3"})]


@pytest.mark.parametrize("token", ["0", "9", "abc", "-1"])
async def test_preset_tokens_outside_the_slots_are_refused(
    sim: RunningSimulator, driver: HamaDriver, token: str
) -> None:
    with pytest.raises(UnsupportedOperation):
        await driver.goto_preset(token)
    assert not sent(sim)


# -- imaging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mirror", "flip", "mode"),
    [(False, False, "0"), (False, True, "1"), (True, False, "2"), (True, True, "3")],
)
async def test_mirror_and_flip_set_the_flip_mode(
    sim: RunningSimulator, driver: HamaDriver, mirror: bool, flip: bool, mode: str
) -> None:
    await driver.set_imaging(ImagingSettings(mirror=mirror, flip=flip))

    assert sent(sim) == [("GET", FORM, {"enet_source": "cp.asp", "enet_avs_flip_mode": mode})]
    assert (sim.camera.state.mirror, sim.camera.state.flip) == (mirror, flip)
    assert await driver.imaging() == ImagingSettings(mirror=mirror, flip=flip)


async def test_one_of_mirror_or_flip_needs_the_other_known(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    assert await driver.imaging() == ImagingSettings()  # the camera cannot report it
    with pytest.raises(UnsupportedOperation):
        await driver.set_imaging(ImagingSettings(flip=True))
    assert not sent(sim)

    await driver.set_imaging(ImagingSettings(mirror=True, flip=False))
    await driver.set_imaging(ImagingSettings(flip=True))

    assert [q["enet_avs_flip_mode"] for _, _, q in sent(sim)] == ["2", "3"]
    assert (sim.camera.state.mirror, sim.camera.state.flip) == (True, True)


# -- what the dialect cannot do ----------------------------------------------------------------


async def _no_audio() -> AsyncIterator[bytes]:
    yield b""


UNSUPPORTED: dict[str, Callable[[HamaDriver], Awaitable[object]]] = {
    "ptz_position": lambda d: d.ptz_position(),
    "set_home": lambda d: d.set_home(),
    "continuous zoom": lambda d: d.continuous_move(PtzVector(zoom=0.5)),
    "relative zoom": lambda d: d.relative_move(PtzVector(zoom=-0.2)),
    "absolute zoom": lambda d: d.absolute_move(PtzVector(zoom=1.0)),
    "brightness": lambda d: d.set_imaging(ImagingSettings(brightness=60, mirror=True)),
    "send_audio": lambda d: d.send_audio(_no_audio()),
    "relay_outputs": lambda d: d.relay_outputs(),
    "set_relay": lambda d: d.set_relay("1", True),
    "digital_inputs": lambda d: d.digital_inputs(),
    "get_datetime": lambda d: d.get_datetime(),
    "set_datetime": lambda d: d.set_datetime(datetime.datetime.now(datetime.UTC)),
    "reboot": lambda d: d.reboot(),
    "factory_default": lambda d: d.factory_default(),
}


@pytest.mark.parametrize("operation", sorted(UNSUPPORTED))
async def test_unsupported_operations_raise(
    sim: RunningSimulator, driver: HamaDriver, operation: str
) -> None:
    with pytest.raises(UnsupportedOperation, match="hama"):
        await UNSUPPORTED[operation](driver)
    assert not sent(sim)


async def test_events_are_unsupported_and_the_unit_has_no_inputs(
    sim: RunningSimulator, driver: HamaDriver
) -> None:
    await driver.connect()
    with pytest.raises(UnsupportedOperation):
        driver.events()
    assert not driver.capabilities.motion_events
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.url}/__sim__/input?port=1&active=1") as reply,
    ):
        assert reply.status == 404  # the emulated unit has no digital input to trigger


# -- the emulator on its own -------------------------------------------------------------------


async def test_emulator_speaks_http10_with_goahead_pages(sim: RunningSimulator) -> None:
    reply, body = await raw_get(f"{sim.url}/jpg/image.jpg")

    assert reply.status == 401
    assert reply.version == aiohttp.HttpVersion(1, 0)
    assert reply.headers["Server"] == "GoAhead-Webs"
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="Internet Camera"'
    assert b"Access Error: Unauthorized" in body

    reply, body = await raw_get(f"{sim.url}/no/such.cgi", headers=AUTH)
    assert reply.status == 404
    assert b"Document Error: Not Found" in body


async def test_loginfree_snapshot_needs_no_credentials(sim: RunningSimulator) -> None:
    reply, body = await raw_get(f"{sim.url}/loginfree.jpg")

    assert reply.status == 200
    assert reply.content_type == "image/jpeg"
    assert jpeg_size(body) == (WIDTH, HEIGHT)


async def test_param_listing_reproduces_the_documented_forms(sim: RunningSimulator) -> None:
    async def listing(group: str) -> str:
        reply, body = await raw_get(
            f"{sim.url}{PARAM}", params={"action": "list", "group": group}, headers=AUTH
        )
        assert reply.status == 200
        assert reply.content_type == "text/plain"
        return body.decode()

    brand = await listing("Brand")
    assert "root.Brand.ProdFullName= Hama Wireless IP Camera\r\n" in brand
    assert await listing("Network.Interface.I0.Active.MACAddress") == (
        f"Network.Interface.I0.Active.MACAddress={MAC}\r\n"
    )
    # The group and its direct children only; and the document's stray space is tolerated.
    assert [line.split("=")[0] for line in (await listing("Properties.Image")).split()] == [
        "root.Properties.Image.FlipMode",
        "root.Properties.Image.Resolution",
        "root.Properties.Image.Format",
    ]
    assert "root.Image.I0.Appearance.Resolution=320x240" in await listing(" Image.I0.Appearance")
    assert (await listing("Properties.Audio")).startswith("Properties.Audio=yes\r\n")
    assert await listing("No.Such") == "# Error: Error -1 getting param in group 'No.Such'\r\n"
    assert hama.parse_params(brand)["Brand.Brand"] == "Hama GmbH & Co. KG"


async def test_form_redirects_to_its_source_and_rejects_bad_values(sim: RunningSimulator) -> None:
    query = {"enet_source": "cp.asp", "enet_avs_flip_mode": "3"}
    reply, _ = await raw_get(f"{sim.url}{FORM}", params=query, headers=AUTH, allow_redirects=False)
    assert reply.status == 302
    assert reply.headers["Location"] == f"{sim.url}/cp.asp"
    assert (sim.camera.state.mirror, sim.camera.state.flip) == (True, True)

    for bad in ({"enet_source": "cp.asp", "enet_avs_flip_mode": "4"}, {"enet_avs_flip_mode": "0"}):
        reply, body = await raw_get(f"{sim.url}{FORM}", params=bad, headers=AUTH)
        assert reply.status == 400
        assert b"Bad Request" in body
    assert camera(sim).settings.form["enet_avs_flip_mode"] == "3"


async def test_ptz_cgi_answers_errors_in_text(sim: RunningSimulator) -> None:
    reply, body = await raw_get(f"{sim.url}{PTZ}", params={"move": "sideways"}, headers=AUTH)

    assert reply.status == 200
    assert body.startswith(b"Error: Invalid value 'sideways'")
    assert position(sim) == at(0.0, 0.0)


# -- pure parsing and formatting ---------------------------------------------------------------


def test_parse_params_reads_the_documents_examples() -> None:
    params = hama.parse_params(SEED_BRAND + SEED_IMAGE_I0 + SEED_FPS)

    assert params == {
        "Brand.Brand": "Hama GmbH & Co. KG",
        "Brand.ProdFullName": "Hama Wireless IP Camera",
        "Brand.ProdShortName": "IP - Cam M360",
        "Brand.ProdNbr": "00053104",
        "Brand.ProdType": "Wireless Lan IP Camera",
        "Brand.WebURL": "http://www.hama.de/",
        "Properties.Image.I0.FlipMode": "1",
        "Properties.Image.I0.Resolution": "1280x1024,640x480,320x240",
        "Properties.Image.I0.Format": "mjpeg",
        "Image.I0.Stream.FPS": "15",
    }


def test_parse_params_skips_prose_errors_and_wrap_damage() -> None:
    text = (
        SEED_APPEARANCE
        + "# Error: Error -1 getting param\n root.Image. I1.Appearance.bitrate=800000\n"
    )

    assert hama.parse_params(text) == {
        "Image.I0.Appearance.Resolution": "640x480",
        "Image.I0.Appearance.Compression": "0",
        "Image.I1.Appearance.bitrate": "800000",
    }


def test_device_info_and_capabilities_from_the_documents_examples() -> None:
    params = hama.parse_params(SEED_ALL)

    assert hama.device_info_from_params(params) == DeviceInfo(
        manufacturer="Hama GmbH & Co. KG",
        model="IP - Cam M360",
        firmware="v1.32",
        serial=MAC,
        mac=MAC,
        hardware_id="00053104",
    )
    caps = hama.capabilities_from_params(params)
    assert (caps.resolution, caps.audio_in, caps.ptz) == ((640, 480), GSM, hama.PTZ_CAPABILITIES)
    assert caps.imaging == {ImagingField.MIRROR, ImagingField.FLIP}


@pytest.mark.parametrize(
    ("extra", "audio"),
    [
        ("Properties.Audio=disabled\n", None),
        ("Properties.Audio=yes\nProperties.Audio.AudioCodec=G.711\n", None),
        ("Properties.Audio=yes\n", GSM),
        ("", None),
    ],
)
def test_audio_capability_follows_status_and_codec(extra: str, audio: AudioFormat | None) -> None:
    assert hama.capabilities_from_params(hama.parse_params(extra)).audio_in == audio


def test_missing_values_become_empty_not_errors() -> None:
    assert hama.device_info_from_params({}) == DeviceInfo("", "", "", "", "", "")
    caps = hama.capabilities_from_params({"Properties.PTZ.PTZ": "no", "Brand.Brand": "x"})
    assert (caps.resolution, caps.ptz.any, caps.imaging) == (None, False, frozenset())


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Error: No preset point 3\r\n", "Error: No preset point 3"),
        (
            "# Error: Error -1 getting param in group 'X'\n",
            "Error: Error -1 getting param in group 'X'",
        ),
        ("\r\n  error: busy", "error: busy"),
        ("", None),
        ("OK\r\n", None),
        ("<html>This document has moved</html>", None),
    ],
)
def test_command_error(text: str, error: str | None) -> None:
    assert hama.command_error(text) == error


def test_pt_speed_levels() -> None:
    assert [hama.pt_speed_of(s) for s in (1.0, 0.8, 0.5, 0.3, 0.01)] == [1, 3, 5, 7, 9]
    with pytest.raises(ValueError, match="speed"):
        hama.pt_speed_of(0.0)
    with pytest.raises(ValueError, match="speed"):
        hama.pt_speed_of(1.5)


def test_flip_mode_of() -> None:
    assert [hama.flip_mode_of(m, f) for m in (False, True) for f in (False, True)] == [0, 1, 2, 3]


def test_direction_of() -> None:
    assert hama.direction_of(0.0, 0.0) is None
    assert hama.direction_of(-1.0, 0.0) == "left"
    assert hama.direction_of(0.3, 0.3) == "upright"
    assert hama.direction_of(-0.3, -0.1) == "left"
    assert hama.direction_of(-0.3, -0.2) == "downleft"


def test_step_interval_slows_with_velocity() -> None:
    assert hama.step_interval(PtzVector(pan=1.0)) == hama.FASTEST_STEP_INTERVAL
    assert hama.step_interval(PtzVector(tilt=-0.5)) == 2 * hama.FASTEST_STEP_INTERVAL
    assert hama.step_interval(PtzVector(pan=0.01)) == hama.SLOWEST_STEP_INTERVAL


def test_step_count() -> None:
    assert [hama.step_count(v) for v in (0.0, 0.04, 0.05, -0.35, 2.0)] == [0, 0, 1, -4, 10]
    assert [hama.step_count(v, nudge=True) for v in (0.0, 0.04, -0.01)] == [0, 1, -1]


@settings(database=None)
@given(
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False),
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False),
)
def test_planned_steps_cover_the_translation(pan: float, tilt: float) -> None:
    pan_steps, tilt_steps = hama.step_count(pan), hama.step_count(tilt)
    plan = hama.plan_steps(pan_steps, tilt_steps)

    assert sum(STEP_VECTORS[d][0] for d in plan) == pan_steps
    assert sum(STEP_VECTORS[d][1] for d in plan) == tilt_steps
    assert len(plan) == max(abs(pan_steps), abs(tilt_steps))
    assert abs(pan_steps * hama.STEP - pan) <= hama.STEP / 2 + 1e-9
