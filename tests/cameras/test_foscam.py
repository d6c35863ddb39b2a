"""The Foscam FI89xx driver against its emulator on loopback, plus the parsers on the seed's
own example replies."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from conftest import OpenHttp, Serve, StartSim
from helpers import dominant_frequency, jpeg_size, run_tool, with_userinfo

from bridge.cameras.asf import HEADER_OBJECT, WaveFormat
from bridge.cameras.base import (
    AudioChunk,
    AudioCodec,
    AudioFormat,
    CameraEvent,
    EventKind,
    ImagingField,
    ImagingSettings,
    JpegFrame,
    PtzVector,
    RelayOutput,
)
from bridge.cameras.foscam import (
    AUDIO_FORMAT,
    Command,
    FoscamDriver,
    Privilege,
    alarm_events,
    alarm_flags,
    asf_audio_format,
    camera_control_params,
    check_ok,
    device_info_from_status,
    direction_command,
    ima_block_align,
    imaging_from_params,
    looks_like_status,
    onestep_moves,
    parse_alarm_arming,
    parse_camera_params,
    parse_privilege,
    parse_status,
    parse_vars,
    preset_slot,
)
from bridge.cameras.http import AuthScheme, CameraHttp
from bridge.cameras.multipart import MultipartParser, boundary_from_content_type
from bridge.errors import (
    AuthenticationFailed,
    BadResponse,
    PermissionDenied,
    UnsupportedOperation,
)
from bridge.simulator.core import SimOptions
from bridge.simulator.foscam import (
    ADMINISTRATOR,
    OPERATOR,
    VISITOR,
    FoscamSimulator,
    FoscamUser,
)

USER, PASSWORD = "admin", "pw-4-cam"
WIDTH, HEIGHT, FPS = 320, 240, 8.0
MAC = "00:62:6E:4A:3C:D0"
OPTIONS = SimOptions(username=USER, password=PASSWORD, width=WIDTH, height=HEIGHT, fps=FPS, mac=MAC)
DEADLINE = 5.0  # seconds any live-stream test may wait for what it expects


# -- the seed's example replies, as printed (wrapped lines, junk bullets, both quote styles) -------

SEED_STATUS_EXAMPLE = """\
 ✓ var id='003456789A0A';
 ✓ var sys_ver='0.0.1.2';
 ✓ var app_ver='0.0.1.3';

```
var alias="";
var now=1195552193;
var tz=0;
var ntp_enable=1;
var ntp_svr='time.nist.gov';
✓ the cgi to set device param or perform operatering.
"""

SEED_WIFI_SCAN_EXAMPLE = """\
var ap_bssid=new Array();
var ap_ssid=new Array();
ap_bssid[0]='0015ebbe2153';
ap_ssid[0]='ZXDSL531BII-BE2153';
ap_mode[0]=0;
```

```
ap_security[0]=0;
ap_ssid[2]='Calvin&Cici';
ap_security[2]=1;
var ap_number=5;
"""

SEED_LOG_EXAMPLE = """\
var log_text='Mon, 2009-08-03 19:53:04    ipcamera      192.168.0.16
access\\nMon, 2009-08-03 20:13:03    admin        192.168.0.16      access\\n';
Among which log text variable for the log info, use '\\n' to separate every log info.
"""

# A real FI8918W's get_status.cgi (fields past the document's list included).
REAL_STATUS = (
    "var id='00626E4A3CD0';\r\nvar sys_ver='11.37.2.49';\r\nvar app_ver='2.0.10.4';\r\n"
    "var alias='LivingRoom';\r\nvar now=1387823972;\r\nvar tz=28800;\r\nvar alarm_status=0;\r\n"
    "var ddns_status=0;\r\nvar ddns_host='cg7906.myfoscam.org';\r\nvar oray_type=0;\r\n"
    "var upnp_status=0;\r\nvar p2p_status=0;\r\nvar msn_status=0;\r\nvar wifi_status=1;\r\n"
    "var temperature=0.0;\r\nvar humidity=0;\r\nvar tridro_error='';\r\n"
)


def test_parse_vars_reads_the_seed_example_with_its_conversion_junk() -> None:
    values = parse_vars(SEED_STATUS_EXAMPLE)
    assert values["id"] == "003456789A0A"
    assert values["sys_ver"] == "0.0.1.2"
    assert values["app_ver"] == "0.0.1.3"
    assert values["alias"] == ""  # double quotes, as the seed prints this one
    assert values["now"] == "1195552193"
    assert values["ntp_svr"] == "time.nist.gov"
    status = parse_status(SEED_STATUS_EXAMPLE)
    assert status.now == datetime.datetime(2007, 11, 20, 9, 49, 53, tzinfo=datetime.UTC)
    assert status.tz == 0
    assert status.alarm_status is None  # not in the example: unknown, not an error


def test_parse_vars_reads_array_items_and_multiline_strings() -> None:
    scan = parse_vars(SEED_WIFI_SCAN_EXAMPLE)
    assert scan["ap_bssid[0]"] == "0015ebbe2153"
    assert scan["ap_ssid[2]"] == "Calvin&Cici"
    assert scan["ap_security[2]"] == "1"
    assert scan["ap_number"] == "5"
    log_text = parse_vars(SEED_LOG_EXAMPLE)["log_text"]
    entries = [line for line in log_text.split("\n") if line]
    assert len(entries) == 2
    assert entries[1].split()[3] == "admin"


def test_real_status_gives_typed_device_info() -> None:
    status = parse_status(REAL_STATUS)
    assert status.alarm_status == 0
    assert status.tz == 28800
    assert status.now == datetime.datetime(2013, 12, 23, 18, 39, 32, tzinfo=datetime.UTC)
    info = device_info_from_status(status)
    assert info.manufacturer == "Foscam"
    assert info.firmware == "11.37.2.49"
    assert info.hardware_id == "11.37"
    assert info.serial == "00626E4A3CD0"
    assert info.mac == "00:62:6E:4A:3C:D0"


@pytest.mark.parametrize(
    "text",
    [
        "<html><title>Login</title></html>",
        "error: illegal param",
        "var foo=1;",
        "",
    ],
)
def test_replies_that_are_not_get_status_are_rejected(text: str) -> None:
    assert not looks_like_status(text)
    with pytest.raises(ValueError, match="get_status"):
        parse_status(text)


def test_odd_ids_and_numbers_become_empty_values() -> None:
    status = parse_status("var id='ctf';var sys_ver='v1.33.7';var now=soon;var tz=;")
    assert (status.now, status.tz, status.alarm_status) == (None, None, None)
    info = device_info_from_status(status)
    assert (info.mac, info.serial, info.hardware_id) == ("", "ctf", "")


@pytest.mark.parametrize(
    ("reply", "level"),
    [
        ("var user='admin';\nvar pwd='x';\nvar pri=3;\n", Privilege.ADMINISTRATOR),
        ("var user='op';\nvar pwd='x';\nvar pri=2;\n", Privilege.OPERATOR),
        ("var user='guest';\nvar pwd='';\nvar pri=1;\n", Privilege.VISITOR),
        ("var user='guest';\nvar pwd='';\nvar pri=0;\n", Privilege.VISITOR),
        ("var user='x';", None),
        ("var pri=9;", None),
    ],
)
def test_check_user_privilege(reply: str, level: Privilege | None) -> None:
    assert parse_privilege(reply) == level


@pytest.mark.parametrize(
    ("flip", "mirror_on", "flip_on"),
    [(0, False, False), (1, False, True), (2, True, False), (3, True, True)],
)
def test_camera_params_map_to_normalized_imaging(flip: int, mirror_on: bool, flip_on: bool) -> None:
    params = parse_camera_params(
        f"var resolution=32;\nvar brightness=255;\nvar contrast=3;\nvar mode=1;\nvar flip={flip};"
    )
    assert (params.resolution, params.mode) == (32, 1)
    imaging = imaging_from_params(params)
    assert imaging == ImagingSettings(
        brightness=100.0, contrast=50.0, mirror=mirror_on, flip=flip_on
    )


def test_imaging_settings_map_to_camera_control_params() -> None:
    settings = ImagingSettings(brightness=50, contrast=100, mirror=True)
    # flip=1 (upside down) stays set while the mirror bit is added.
    assert camera_control_params(settings, current_flip=1) == [(1, 128), (2, 6), (5, 3)]
    assert camera_control_params(ImagingSettings(flip=False), current_flip=3) == [(5, 2)]
    assert camera_control_params(ImagingSettings(brightness=250), 0) == [(1, 255)]


@pytest.mark.parametrize("reply", ["ok", "ok\r\n", "ok.\r\n", " OK "])
def test_ok_replies_pass(reply: str) -> None:
    check_ok(reply)


@pytest.mark.parametrize(
    ("reply", "message"),
    [("error: illegal param\r\n", "error: illegal param"), ("", "empty"), ("<html>", "<html>")],
)
def test_error_replies_raise_with_the_cameras_words(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_ok(reply)


@pytest.mark.parametrize(
    ("pan", "tilt", "command"),
    [
        (1.0, 0.0, 4),  # right is 4 on real units (the document says left)
        (-1.0, 0.0, 6),
        (0.0, 1.0, 0),
        (0.0, -0.3, 2),
        (-0.5, 0.5, 90),
        (0.5, 0.5, 91),
        (-0.5, -0.5, 92),
        (0.7, -0.7, 93),
        (0.9, 0.1, 4),  # nearest of the eight directions
        (0.0, 0.0, 1),
    ],
)
def test_velocity_direction_to_motor_command(pan: float, tilt: float, command: int) -> None:
    assert direction_command(pan, tilt) == command


def test_translation_to_onestep_degrees() -> None:
    moves, made = onestep_moves(PtzVector(pan=-0.201, tilt=0.5))
    assert moves == [(Command.LEFT, 30), (Command.UP, 30)]
    assert made == PtzVector(pan=-0.2, tilt=0.5)
    assert onestep_moves(PtzVector(pan=0.001)) == ([], PtzVector())


def test_alarm_status_is_one_alarm_at_a_time() -> None:
    assert alarm_flags(1) == (True, False)
    assert alarm_flags(2) == (False, True)
    assert alarm_flags(3) == (False, False)  # sound detection, not motion + input
    assert alarm_flags(None) == (False, False)
    events = alarm_events((True, False), (False, True), 12.5)
    assert events == [
        CameraEvent(EventKind.MOTION, False, 12.5),
        CameraEvent(EventKind.DIGITAL_INPUT, True, 12.5, "1"),
    ]


def test_small_helpers_accept_and_refuse() -> None:
    assert [preset_slot(token) for token in ("1", "16")] == [0, 15]
    for token in ("0", "17", "home", ""):
        with pytest.raises(ValueError, match=r"1\.\.16"):
            preset_slot(token)
    assert ima_block_align(b"\xf9\x01", 1) == 256  # 505 samples per block
    assert ima_block_align(None, 1) == 256
    assert parse_alarm_arming("var alarm_motion_armed=0;var alarm_input_armed=1;") == (
        False,
        True,
    )
    assert parse_alarm_arming("var id='x';") == (None, None)


def test_asf_audio_streams_the_gateway_decodes() -> None:
    assert asf_audio_format(WaveFormat(0x0011, 1, 8000, 256, 4, b"\xf9\x01")) == AUDIO_FORMAT
    g726 = WaveFormat(0x0045, 1, 8000, 0, 4, b"")
    assert asf_audio_format(g726) == AudioFormat(AudioCodec.G726, bits_per_sample=4)
    unset = WaveFormat(0x0007, 0, 0, 1, 8, b"")  # channels and rate 0: mono 8 kHz
    assert asf_audio_format(unset) == AudioFormat(AudioCodec.MULAW)
    assert asf_audio_format(WaveFormat(0x0031, 1, 8000, 65, 0, b"")) is None  # MS GSM
    assert asf_audio_format(WaveFormat(0x0011, 1, 10**6, 256, 4, b"")) is None
    assert asf_audio_format(WaveFormat(0x0011, 6, 8000, 256, 4, b"")) is None


# -- the emulator on loopback -------------------------------------------------------------------


@dataclass
class Rig:
    url: str
    camera: FoscamSimulator
    driver: FoscamDriver
    raw: CameraHttp  # no credentials: test controls and raw looks at the emulator

    def sent(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, query) of every request the camera accepted since the last call."""
        seen = [
            (r.method, r.path, r.query)
            for r in self.camera.requests
            if r.authenticated_user or r.path == "/get_status.cgi"
        ]
        self.camera.requests.clear()
        return seen

    async def sim(self, control: str, **params: str | int) -> None:
        await self.raw.request("POST", f"/__sim__/{control}", params=params)


@pytest.fixture
async def camera(start_sim: StartSim) -> tuple[FoscamSimulator, str]:
    simulator = FoscamSimulator(OPTIONS)
    running = await start_sim(simulator)
    return simulator, running.url


@pytest.fixture
async def rig(camera: tuple[FoscamSimulator, str], open_http: OpenHttp) -> Rig:
    simulator, url = camera
    driver = FoscamDriver(open_http(url, USER, PASSWORD), poll_interval=0.05)
    await driver.connect()
    simulator.requests.clear()
    return Rig(url, simulator, driver, open_http(url))


def decoder(command: int, **extra: int) -> tuple[str, str, dict[str, str]]:
    query = {"command": str(command), **{k: str(v) for k, v in extra.items()}}
    return ("GET", "/decoder_control.cgi", query)


def tone_hz(pcm: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    assert pcm.astype(np.float64).std() > 1000, "silence, not a tone"
    return dominant_frequency(pcm, 8000)


def decode_ima(chunks: list[AudioChunk]) -> np.ndarray[Any, np.dtype[np.int16]]:
    fmt = chunks[0].format
    context = av.CodecContext.create("adpcm_ima_wav", "r")
    context.sample_rate = fmt.sample_rate
    context.layout = "mono"
    context.options = {"block_align": str(fmt.block_align), "bits_per_coded_sample": "4"}
    context.open()
    pcm = [
        frame.to_ndarray().reshape(-1)
        for chunk in chunks
        for frame in context.decode(av.Packet(chunk.data))
    ]
    return np.concatenate(pcm).astype(np.int16)


async def until(condition: Callable[[], bool]) -> None:
    """Poll a condition of the emulator's state until it holds (or fail at the deadline)."""
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- identification and connect -----------------------------------------------------------------


async def test_connect_reads_device_info_and_capabilities(
    camera: tuple[FoscamSimulator, str], open_http: OpenHttp
) -> None:
    simulator, url = camera
    http = open_http(url, USER, PASSWORD)
    driver = FoscamDriver(http)
    info = await driver.connect()
    assert info.manufacturer == "Foscam"
    assert info.firmware == "11.37.2.49"
    assert info.serial == "00626E4A3CD0"
    assert info.mac == MAC
    caps = driver.capabilities
    assert caps.resolution == (WIDTH, HEIGHT)
    assert caps.audio_in is not None
    assert (caps.audio_in.codec, caps.audio_in.block_align) == (AudioCodec.IMA_ADPCM, 256)
    assert caps.audio_out is None
    ptz = caps.ptz
    moves = (ptz.continuous, ptz.relative, ptz.absolute, ptz.home, ptz.presets)
    assert moves == (True, True, True, True, 16)
    assert (ptz.zoom, ptz.set_home, ptz.speed, ptz.position) == (False, False, False, False)
    assert caps.imaging == {
        ImagingField.BRIGHTNESS,
        ImagingField.CONTRAST,
        ImagingField.MIRROR,
        ImagingField.FLIP,
    }
    assert (caps.relay_outputs, caps.digital_inputs) == (1, 1)
    assert (caps.motion_events, caps.input_events) == (True, True)
    system = (caps.get_datetime, caps.set_datetime, caps.reboot, caps.factory_default)
    assert system == (True, True, True, True)
    # Basic learned from the challenge: passwords stay out of request lines.
    assert http.auth is AuthScheme.BASIC
    accepted = [(r.path, r.query) for r in simulator.requests if r.authenticated_user]
    assert accepted == [
        ("/check_user.cgi", {}),
        ("/get_camera_params.cgi", {}),
        ("/get_params.cgi", {}),
    ]
    assert simulator.requests[0].path == "/get_status.cgi"


async def test_disarmed_alarms_are_not_offered_as_events(
    camera: tuple[FoscamSimulator, str], open_http: OpenHttp
) -> None:
    simulator, url = camera
    simulator.settings.alarm_motion_armed = 0
    driver = FoscamDriver(open_http(url, USER, PASSWORD))
    await driver.connect()
    assert not driver.capabilities.motion_events
    assert driver.capabilities.input_events


async def test_query_credentials_work_too(
    camera: tuple[FoscamSimulator, str], open_http: OpenHttp
) -> None:
    simulator, url = camera
    driver = FoscamDriver(open_http(url, USER, PASSWORD, auth=AuthScheme.QUERY))
    await driver.connect()
    check_user = [r for r in simulator.requests if r.path == "/check_user.cgi"]
    assert len(check_user) == 1  # no 401 round trip
    assert check_user[0].query == {"user": USER, "pwd": PASSWORD}
    assert check_user[0].authenticated_user == USER


async def test_detect_and_fingerprint_on_the_emulator(
    camera: tuple[FoscamSimulator, str], open_http: OpenHttp
) -> None:
    simulator, url = camera
    http = open_http(url, USER, PASSWORD)
    assert await FoscamDriver.detect(http)
    assert [r.path for r in simulator.requests] == ["/get_status.cgi"]
    fingerprint = await http.fingerprint()
    assert FoscamDriver.matches_fingerprint(fingerprint.server, fingerprint.realm)
    assert FoscamDriver.matches_fingerprint("", "ipcamera_00626E4A3CD0")
    assert not FoscamDriver.matches_fingerprint("Boa/0.94.14rc21", 'realm="IPCamCGI"')


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(status=404),
        web.Response(text="<html><body>router login</body></html>", content_type="text/html"),
        web.Response(text="Brand=Axis\n"),
    ],
)
async def test_detect_is_false_on_other_devices(
    serve: Serve,
    open_http: OpenHttp,
    answer: web.Response,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return answer

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    url = await serve(app)
    assert not await FoscamDriver.detect(open_http(url, USER, PASSWORD))


async def test_detect_lets_a_refused_password_through(serve: Serve, open_http: OpenHttp) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    url = await serve(app)
    with pytest.raises(AuthenticationFailed):
        await FoscamDriver.detect(open_http(url, USER, "wrong"))


async def test_replies_outside_the_dialect_are_bad_responses(
    serve: Serve, open_http: OpenHttp
) -> None:
    """A broken or impostor unit: each operation fails with BadResponse, nothing hangs."""
    replies = {
        "/snapshot.cgi": web.Response(text="<html>no picture</html>", content_type="text/html"),
        "/videostream.cgi": web.Response(text="var x=1;"),
        "/videostream.asf": web.Response(body=b"not an ASF header " * 64),
        "/decoder_control.cgi": web.Response(text="error: illegal param\r\n"),
        "/get_status.cgi": web.Response(text="var id='x';"),
        "/get_camera_params.cgi": web.Response(text="var foo=1;"),
    }

    async def handler(request: web.Request) -> web.Response:
        return replies[request.path]

    app = web.Application()
    for path in replies:
        app.router.add_get(path, handler)
    driver = FoscamDriver(open_http(await serve(app), USER, PASSWORD))
    with pytest.raises(BadResponse, match="not a JPEG"):
        await driver.snapshot()
    with pytest.raises(BadResponse, match="not a multipart"):
        await anext(driver.video_frames())
    async with asyncio.timeout(DEADLINE), aclosing(driver.media()) as media:
        with pytest.raises(BadResponse, match="not a readable ASF"):
            await anext(media)
    header_start = HEADER_OBJECT + (1000).to_bytes(8, "little") + bytes(6)  # then it hangs up
    replies["/videostream.asf"] = web.Response(body=header_start)
    async with asyncio.timeout(DEADLINE), aclosing(driver.media()) as media:
        with pytest.raises(BadResponse, match="not a readable ASF stream: it ended"):
            await anext(media)
    with pytest.raises(BadResponse, match="error: illegal param"):
        await driver.stop()
    with pytest.raises(BadResponse, match="get_status"):
        await driver.get_datetime()
    with pytest.raises(BadResponse, match="get_camera_params"):
        await driver.imaging()


async def test_wrong_password_is_an_authentication_failure(
    camera: tuple[FoscamSimulator, str], open_http: OpenHttp
) -> None:
    _, url = camera
    driver = FoscamDriver(open_http(url, USER, "not-it"))
    with pytest.raises(AuthenticationFailed) as caught:
        await driver.connect()
    assert type(caught.value) is AuthenticationFailed
    assert "not-it" not in str(caught.value)


async def test_rights_below_the_cgi_are_permission_denied(
    camera: tuple[FoscamSimulator, str], open_http: OpenHttp
) -> None:
    simulator, url = camera
    simulator.settings.users[1] = FoscamUser("guest", "guest-pw", VISITOR)
    simulator.settings.users[2] = FoscamUser("op", "op-pw", OPERATOR)
    guest = FoscamDriver(open_http(url, "guest", "guest-pw"))
    await guest.connect()  # visitors may look
    assert guest.capabilities.motion_events  # arming unknown without admin rights
    assert not [r for r in simulator.requests if r.path == "/get_params.cgi"]
    with pytest.raises(PermissionDenied, match="operator"):
        await guest.continuous_move(PtzVector(pan=1.0))
    assert simulator.state.ptz.velocity == PtzVector()
    operator = FoscamDriver(open_http(url, "op", "op-pw"))
    await operator.connect()
    await operator.goto_home()
    with pytest.raises(PermissionDenied, match="administrator"):
        await operator.reboot()
    assert simulator.state.reboots == 0


# -- media ----------------------------------------------------------------------------------------


async def test_snapshot_is_a_jpeg_of_the_configured_size(rig: Rig) -> None:
    jpeg = await rig.driver.snapshot()
    assert jpeg_size(jpeg) == (WIDTH, HEIGHT)
    assert rig.sent() == [("GET", "/snapshot.cgi", {})]


async def test_video_frames_are_jpegs_over_one_connection(rig: Rig) -> None:
    frames: list[JpegFrame] = []
    async with asyncio.timeout(DEADLINE), aclosing(rig.driver.video_frames()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) == 3:
                break
    assert rig.sent() == [("GET", "/videostream.cgi", {})]
    assert all(jpeg_size(frame.data) == (WIDTH, HEIGHT) for frame in frames)
    stamps = [frame.timestamp for frame in frames]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 3


async def test_asf_media_carries_video_and_a_tone(rig: Rig) -> None:
    frames: list[JpegFrame] = []
    audio: list[AudioChunk] = []
    stamps: list[float] = []
    async with asyncio.timeout(DEADLINE), aclosing(rig.driver.media()) as stream:
        async for item in stream:
            if isinstance(item, JpegFrame):
                frames.append(item)
            else:
                audio.append(item)
            stamps.append(item.timestamp)
            if len(frames) >= 3 and len(audio) >= 8:
                break
    assert rig.sent() == [("GET", "/videostream.asf", {})]
    assert all(jpeg_size(frame.data) == (WIDTH, HEIGHT) for frame in frames)
    assert all(later >= earlier for earlier, later in itertools.pairwise(stamps))
    assert {chunk.format for chunk in audio} == {rig.driver.capabilities.audio_in}
    assert 430 < tone_hz(decode_ima(audio)) < 450


async def test_audio_chunks_come_from_the_asf_stream(rig: Rig) -> None:
    chunks: list[AudioChunk] = []
    async with asyncio.timeout(DEADLINE), aclosing(rig.driver.audio_chunks()) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 8:
                break
    assert rig.sent() == [("GET", "/videostream.asf", {})]
    assert all(len(chunk.data) % chunk.format.block_align == 0 for chunk in chunks)
    assert 430 < tone_hz(decode_ima(chunks)) < 450


async def test_emulator_streams_other_resolutions_and_rates(rig: Rig) -> None:
    frames: list[JpegFrame] = []
    async with rig.driver.http.stream("/videostream.cgi", {"resolution": 32, "rate": 14}) as reply:
        parser = MultipartParser(boundary_from_content_type(reply.content_type))
        async with asyncio.timeout(DEADLINE):
            async for chunk in reply.chunks():
                frames += [JpegFrame(p.body, time.monotonic()) for p in parser.feed(chunk)]
                if len(frames) >= 3:
                    break
    assert jpeg_size(frames[0].data) == (640, 480)
    # rate 14 is 2 frames per second although the sensor runs at 8
    assert frames[2].timestamp - frames[0].timestamp > 0.7


async def test_resolution_setting_changes_the_picture(rig: Rig, open_http: OpenHttp) -> None:
    reply = await rig.driver.http.get_text("/camera_control.cgi", {"param": 0, "value": 32})
    assert reply.strip() == "ok"
    assert jpeg_size(await rig.driver.snapshot()) == (640, 480)
    again = FoscamDriver(open_http(rig.url, USER, PASSWORD))
    await again.connect()
    assert again.capabilities.resolution == (640, 480)


# -- PTZ ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("velocity", "command", "moving"),
    [
        (PtzVector(pan=0.6), 4, PtzVector(pan=1.0)),
        (PtzVector(pan=-1.0), 6, PtzVector(pan=-1.0)),
        (PtzVector(tilt=0.2), 0, PtzVector(tilt=1.0)),
        (PtzVector(tilt=-1.0), 2, PtzVector(tilt=-1.0)),
        (PtzVector(pan=-0.5, tilt=0.5), 90, PtzVector(pan=-1.0, tilt=1.0)),
        (PtzVector(pan=0.5, tilt=-0.5), 93, PtzVector(pan=1.0, tilt=-1.0)),
    ],
)
async def test_continuous_move_then_stop(
    rig: Rig, velocity: PtzVector, command: int, moving: PtzVector
) -> None:
    await rig.driver.continuous_move(velocity)
    assert rig.camera.state.ptz.velocity == moving
    start = rig.camera.state.ptz.position()
    await until(lambda: rig.camera.state.ptz.position() != start)
    await rig.driver.stop()
    assert rig.camera.state.ptz.velocity == PtzVector()
    assert rig.sent() == [decoder(command), decoder(1)]


async def test_emulator_stops_only_on_command_1(rig: Rig) -> None:
    for stop_of_the_document in (3, 5, 7):
        reply = await rig.driver.http.get_text("/decoder_control.cgi", {"command": 4})
        assert reply.strip() == "ok"
        await rig.driver.http.get_text("/decoder_control.cgi", {"command": stop_of_the_document})
        assert rig.camera.state.ptz.velocity == PtzVector(pan=1.0)
    await rig.driver.stop()
    assert rig.camera.state.ptz.velocity == PtzVector()
    for bad in ("x", "256", ""):
        reply = await rig.driver.http.get_text("/decoder_control.cgi", {"command": bad})
        assert reply.strip() == "error: illegal param"


async def test_requests_are_visible_in_the_emulators_log(rig: Rig) -> None:
    await rig.driver.continuous_move(PtzVector(pan=-1.0))
    await rig.driver.stop()
    log = json.loads((await rig.raw.get("/__sim__/requests")).body)
    assert [(r["method"], r["path"], r["query"]) for r in log if r["authenticated_user"]] == [
        ("GET", "/decoder_control.cgi", {"command": "6"}),
        ("GET", "/decoder_control.cgi", {"command": "1"}),
    ]


async def test_relative_move_is_onestep_degrees(rig: Rig) -> None:
    await rig.driver.relative_move(PtzVector(pan=0.2, tilt=-0.1), speed=0.5)
    assert rig.sent() == [
        decoder(4, onestep=1, degree=30),
        decoder(2, onestep=1, degree=6),
    ]
    position = rig.camera.state.ptz.position()
    assert position.pan == pytest.approx(0.2)
    assert position.tilt == pytest.approx(-0.1)


async def test_absolute_move_centres_then_steps(rig: Rig) -> None:
    rig.camera.state.ptz.go_to(PtzVector(pan=-0.7, tilt=0.7))  # unknown to the driver
    await rig.driver.absolute_move(PtzVector(pan=0.5, tilt=0.25))
    assert rig.sent() == [
        decoder(25),
        decoder(4, onestep=1, degree=75),
        decoder(0, onestep=1, degree=15),
    ]
    assert rig.camera.state.ptz.position() == pytest.approx(PtzVector(pan=0.5, tilt=0.25))
    # Centre is the one position the head knows, so every absolute move starts there.
    await rig.driver.absolute_move(PtzVector(pan=-0.5, tilt=0.25))
    assert rig.sent() == [
        decoder(25),
        decoder(6, onestep=1, degree=75),
        decoder(0, onestep=1, degree=15),
    ]
    assert rig.camera.state.ptz.position() == pytest.approx(PtzVector(pan=-0.5, tilt=0.25))


async def test_home_and_presets(rig: Rig) -> None:
    ptz = rig.camera.state.ptz
    ptz.go_to(PtzVector(pan=0.9))
    await rig.driver.goto_home()
    assert ptz.position() == PtzVector()
    await rig.driver.relative_move(PtzVector(pan=0.2))
    assert await rig.driver.set_preset("door", token="1") == "1"
    await rig.driver.relative_move(PtzVector(pan=0.4))
    assert await rig.driver.set_preset("window", token="16") == "16"
    await rig.driver.goto_preset("1")
    assert ptz.position().pan == pytest.approx(0.2)
    assert rig.sent() == [
        decoder(25),
        decoder(4, onestep=1, degree=30),
        decoder(30),
        decoder(4, onestep=1, degree=60),
        decoder(60),
        decoder(31),
    ]
    # It cannot say which slots hold a preset: the gateway keeps their names, and picks slots.
    with pytest.raises(UnsupportedOperation, match="list presets"):
        await rig.driver.presets()
    with pytest.raises(UnsupportedOperation, match="free preset slot"):
        await rig.driver.set_preset("hall")
    with pytest.raises(UnsupportedOperation, match="no preset"):
        await rig.driver.goto_preset("17")
    assert rig.sent() == []


# -- imaging --------------------------------------------------------------------------------------


async def test_imaging_read_and_write(rig: Rig) -> None:
    rig.camera.settings.flip = 1  # mounted upside down
    rig.camera.state.flip = True
    imaging = await rig.driver.imaging()
    assert imaging.brightness == pytest.approx(128 / 2.55)
    assert imaging.contrast == pytest.approx(400 / 6)
    assert (imaging.saturation, imaging.sharpness) == (None, None)
    assert (imaging.mirror, imaging.flip) == (False, True)
    assert rig.sent() == [("GET", "/get_camera_params.cgi", {})]
    await rig.driver.set_imaging(ImagingSettings(brightness=100, contrast=0, mirror=True))
    assert rig.sent() == [
        ("GET", "/get_camera_params.cgi", {}),
        ("GET", "/camera_control.cgi", {"param": "1", "value": "255"}),
        ("GET", "/camera_control.cgi", {"param": "2", "value": "0"}),
        ("GET", "/camera_control.cgi", {"param": "5", "value": "3"}),
    ]
    assert (rig.camera.state.mirror, rig.camera.state.flip) == (True, True)
    assert await rig.driver.imaging() == ImagingSettings(
        brightness=100.0, contrast=0.0, mirror=True, flip=True
    )


async def test_emulator_refuses_out_of_range_camera_control(rig: Rig) -> None:
    for params in ({"param": 1, "value": 256}, {"param": 4, "value": 0}, {"param": 0}):
        reply = await rig.driver.http.get_text("/camera_control.cgi", params)
        assert reply.strip() == "error: illegal param"
    assert rig.camera.settings.brightness == 128


# -- I/O, events ----------------------------------------------------------------------------------


async def test_relay_output(rig: Rig) -> None:
    assert await rig.driver.relay_outputs() == [RelayOutput("1", None)]
    await rig.driver.set_relay("1", True)
    assert rig.camera.state.relays == [True]
    await rig.driver.set_relay("1", False)
    assert rig.camera.state.relays == [False]
    assert rig.sent() == [decoder(94), decoder(95)]
    with pytest.raises(UnsupportedOperation, match="no relay output"):
        await rig.driver.set_relay("2", True)


async def test_digital_input_state(rig: Rig) -> None:
    assert [i.active for i in await rig.driver.digital_inputs()] == [False]
    await rig.sim("input", port=1, active=1)
    inputs = await rig.driver.digital_inputs()
    assert [(i.token, i.active) for i in inputs] == [("1", True)]
    assert rig.sent() == [("GET", "/get_status.cgi", {})] * 2


async def test_events_from_polling_get_status(rig: Rig) -> None:
    events = rig.driver.events()

    async def next_events(count: int) -> list[tuple[EventKind, bool, str]]:
        got = [await anext(events) for _ in range(count)]
        return [(e.kind, e.active, e.source) for e in got]

    try:
        async with asyncio.timeout(DEADLINE):
            # Active when the stream starts: reported by the first poll.
            await rig.sim("motion", active=1, level=80)
            event = await anext(events)
            assert (event.kind, event.active, event.level) == (EventKind.MOTION, True, None)
            await rig.sim("input", port=1, active=1)
            # The camera reports one alarm at a time: the newest one.
            assert await next_events(2) == [
                (EventKind.MOTION, False, ""),
                (EventKind.DIGITAL_INPUT, True, "1"),
            ]
            await rig.sim("input", port=1, active=0)
            assert await next_events(2) == [
                (EventKind.MOTION, True, ""),
                (EventKind.DIGITAL_INPUT, False, "1"),
            ]
            await rig.sim("motion", active=0)
            assert await next_events(1) == [(EventKind.MOTION, False, "")]
    finally:
        await events.aclose()
    assert {path for _, path, _ in rig.sent()} == {"/get_status.cgi"}


# -- system ---------------------------------------------------------------------------------------


async def test_clock_get_and_set(rig: Rig) -> None:
    rig.camera.state.set_clock(datetime.datetime(2010, 9, 3, 8, 0, tzinfo=datetime.UTC))
    clock = await rig.driver.get_datetime()
    assert clock.tzinfo is not None
    assert abs(clock - datetime.datetime(2010, 9, 3, 8, 0, tzinfo=datetime.UTC)).seconds < 3
    when = datetime.datetime(2011, 3, 30, 12, 0, tzinfo=datetime.UTC)
    await rig.driver.set_datetime(when.astimezone(datetime.timezone(datetime.timedelta(hours=8))))
    assert rig.sent() == [
        ("GET", "/get_status.cgi", {}),
        ("GET", "/set_datetime.cgi", {"now": "1301486400"}),
    ]
    assert abs(rig.camera.state.now() - when) < datetime.timedelta(seconds=3)
    with pytest.raises(ValueError, match="aware"):
        await rig.driver.set_datetime(datetime.datetime(2011, 3, 30))


async def test_reboot_and_factory_default(rig: Rig) -> None:
    await rig.driver.reboot()
    assert rig.camera.state.reboots == 1
    await rig.driver.set_imaging(ImagingSettings(brightness=0))
    assert rig.camera.settings.brightness == 0
    await rig.driver.factory_default()
    assert rig.camera.state.factory_resets == 1
    assert rig.camera.settings.brightness == 128
    assert rig.sent() == [
        ("GET", "/reboot.cgi", {}),
        ("GET", "/camera_control.cgi", {"param": "1", "value": "0"}),
        ("GET", "/restore_factory.cgi", {}),
    ]


async def test_what_the_dialect_cannot_do_is_unsupported(rig: Rig) -> None:
    async def silence() -> AsyncIterator[bytes]:
        yield b"\x00" * 256

    attempts: list[Awaitable[object]] = [
        rig.driver.send_audio(silence()),
        rig.driver.continuous_move(PtzVector(zoom=0.5)),
        rig.driver.relative_move(PtzVector(zoom=-0.1)),
        rig.driver.absolute_move(PtzVector(zoom=1.0)),
        rig.driver.ptz_position(),
        rig.driver.remove_preset("1"),
        rig.driver.set_home(),
        rig.driver.set_ptz_speed(0.5),
        rig.driver.set_imaging(ImagingSettings(saturation=40)),
        rig.driver.set_imaging(ImagingSettings(sharpness=40)),
    ]
    for attempt in attempts:
        with pytest.raises(UnsupportedOperation):
            await attempt
    assert rig.sent() == []  # refused before anything reached the camera


# -- the emulator as other clients see it ---------------------------------------------------------


async def test_emulator_status_is_public_and_other_cgis_challenge(rig: Rig) -> None:
    reply = await rig.raw.get("/get_status.cgi")
    assert reply.headers["Server"] == "Netwave IP Camera"
    assert reply.content_type == "text/plain"
    lines = reply.text().splitlines()
    assert all(re.fullmatch(r"var \w+=('[^']*'|-?\d+);", line) for line in lines)
    assert lines[0] == "var id='00626E4A3CD0';"
    challenge = await rig.raw.request("GET", "/check_user.cgi", accept_status=frozenset({401}))
    assert challenge.status == 401
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="ipcamera_00626E4A3CD0"'
    assert "401 Unauthorized" in challenge.text()
    missing = await rig.raw.request("GET", "/nothing.cgi", accept_status=frozenset({404}))
    assert missing.status == 404  # before any password is asked for
    users = parse_vars(await rig.driver.http.get_text("/get_params.cgi"))
    assert (users["user1_name"], users["user1_pri"]) == (USER, str(ADMINISTRATOR))


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")
async def test_ffprobe_reads_the_mjpeg_stream(rig: Rig) -> None:
    out = await run_tool(
        "ffprobe",
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "json",
        with_userinfo(rig.url + "/videostream.cgi", USER, PASSWORD),
    )
    (stream,) = json.loads(out)["streams"]
    assert stream == {"codec_name": "mjpeg", "width": WIDTH, "height": HEIGHT}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_ffmpeg_decodes_the_asf_audio(rig: Rig) -> None:
    url = with_userinfo(rig.url + "/videostream.asf", USER, PASSWORD)
    # A live stream has no end to analyse up to: the ASF header already names both streams.
    quick = ("-probesize", "32", "-analyzeduration", "0")
    probe = await run_tool(
        "ffprobe", "-v", "error", *quick, "-show_entries", "stream=codec_name", "-of", "json", url
    )
    assert [s["codec_name"] for s in json.loads(probe)["streams"]] == ["mjpeg", "adpcm_ima_wav"]
    pcm = await run_tool(
        "ffmpeg", "-v", "error", *quick, "-i", url, "-map", "0:a", "-t", "0.5", "-f", "s16le", "-"
    )
    assert 430 < tone_hz(np.frombuffer(pcm, dtype=np.int16)) < 450
