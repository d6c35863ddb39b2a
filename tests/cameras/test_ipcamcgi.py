"""The IPCamCGI driver against its emulated camera on loopback, and its parsers on the
document's own example replies."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass

import pytest
from aiohttp import web
from conftest import OpenHttp, StartSim
from helpers import ffprobe, jpeg_size, with_userinfo

from bridge.cameras import ipcamcgi
from bridge.cameras.base import (
    CameraEvent,
    DeviceInfo,
    DigitalInput,
    EventKind,
    ImagingField,
    ImagingSettings,
    PtzVector,
    RelayOutput,
)
from bridge.cameras.http import CameraHttp, Reply
from bridge.cameras.ipcamcgi import (
    FrameStatus,
    IpCamCgiDriver,
    imaging_form,
    parse_cgi_version,
    parse_datetime,
    parse_frame_status,
    parse_image_config,
    parse_io_status,
    parse_pairs,
    parse_system_info,
    position_to_vendor,
    single_move_forms,
    status_events,
    vendor_to_position,
)
from bridge.errors import AuthenticationFailed, BadResponse, UnsupportedOperation
from bridge.simulator.core import RecordedRequest, RunningSimulator, SimOptions, SimulatedCamera
from bridge.simulator.ipcamcgi import IpCamCgiSimulator, Level

WIDTH, HEIGHT, FPS = 320, 240, 10.0
OPTIONS = SimOptions(width=WIDTH, height=HEIGHT, fps=FPS, mac="00:40:8C:CD:00:01")
USER, PASSWORD = OPTIONS.username, OPTIONS.password
DEADLINE = 5.0  # seconds any awaited camera behaviour may take
DEFAULT_LEVEL = 63 * 100.0 / 127  # the factory 64 of the camera's 1..128, in 0..100

# -- the document's example replies (section numbers of IPCamCGI 1.2) ----------------------

# 3.1.2, with the example values the table gives (the MAC written with spaces).
SEED_SYSTEM_INFO = (
    "CameraName=Office\r\nLocation=2nd floor\r\nModel=DCS-5300G\r\n"
    "FirmwareVersion=3.06 (2008-10-06)\r\nMACAddress=00 FF 5C 8A 13 18\r\n"
    "IPAddress=192.168.0.20\r\nEthernetLink=Yes\r\nEthernetSpeed=100M bps\r\n"
    "EthernetDuplex=Full Duplex\r\n"
)
# 5.1.1: one line, '&'-joined, a space after each '='.
SEED_IOCONTROL = (
    "Trigger1= 0&Trigger2= 1&ImageUpload= 0&ImageEmail= 1&CurrentTime= 2008-10-01 15:37:53"
)
# 3.2.3: records of repeated names with a space before '='.
SEED_USERLIST = (
    "UserName =guest\r\nUserPassword =1234\r\nUserPrivilege =0\r\n"
    "UserName =op\r\nUserPassword =p&ss\r\nUserPrivilege =1\r\n"
)
# 3.1.5 with the examples of 3.1.6.
SEED_DATETIME = (
    "DateTimeMode=1\r\nTimeServerIPAddress=pool.ntp.org\r\nTimeServerProtocol=0\r\n"
    "TimeZone=+8\r\nTimeZoneIndex=70\r\nDate=2004-09-01\r\nTime=06:12:35\r\n"
)
# 3.3.2.
SEED_IMAGE = (
    "VideoResolution=1\r\nCompressionRate=2\r\nFrameRate=0\r\nBrightnessControl=128\r\n"
    "ContrastControl=1\r\nSaturationControl=64\r\nLightFrequency=0\r\nMirror=2\r\n"
    "AntiFlickerEnable=0\r\n"
)


# -- pure parsing -------------------------------------------------------------------------


def test_pairs_read_lines_ampersand_lists_and_padded_names() -> None:
    assert parse_pairs(SEED_IOCONTROL) == [
        ("Trigger1", "0"),
        ("Trigger2", "1"),
        ("ImageUpload", "0"),
        ("ImageEmail", "1"),
        ("CurrentTime", "2008-10-01 15:37:53"),
    ]
    assert parse_pairs(SEED_USERLIST) == [
        ("UserName", "guest"),
        ("UserPassword", "1234"),
        ("UserPrivilege", "0"),
        ("UserName", "op"),
        ("UserPassword", "p&ss"),  # an '&' not followed by Name= stays in the value
        ("UserPrivilege", "1"),
    ]
    assert parse_pairs("<html>404 Not Found</html>\r\n") == []


def test_system_info_from_the_document_example() -> None:
    assert parse_system_info(SEED_SYSTEM_INFO) == DeviceInfo(
        manufacturer="D-Link",
        model="DCS-5300G",
        firmware="3.06 (2008-10-06)",
        serial="00FF5C8A1318",
        mac="00:FF:5C:8A:13:18",
    )
    with pytest.raises(BadResponse):
        parse_system_info("CameraName=Office\r\nLEDControl=0\r\n")


def test_cgi_version() -> None:
    assert parse_cgi_version("CGIVersion=2\r\n") == 2
    assert parse_cgi_version("<html>hello</html>") is None


def test_io_status_from_the_document_example() -> None:
    status = parse_io_status(SEED_IOCONTROL)
    assert status.triggers == {1: False, 2: True}
    assert (status.image_upload, status.image_email) == (False, True)
    with pytest.raises(BadResponse):
        parse_io_status("ImageUpload=0\r\n")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # 4.1.2 as printed: seven IO digits.
        (
            "2008-10-01 15:37:53 IO_0100000_PT_170_045",
            FrameStatus(datetime.datetime(2008, 10, 1, 15, 37, 53), "0100000", 170, 45),
        ),
        # As shipping firmware sends it: US date, 12-hour clock, eight digits.
        (
            "11-17-2016 04:03:05 PM IO_00000000_PT_005_000",
            FrameStatus(datetime.datetime(2016, 11, 17, 16, 3, 5), "00000000", 5, 0),
        ),
        (
            "03-28-2025 12:32:19 AM IO_00001100_PT_340_135",
            FrameStatus(datetime.datetime(2025, 3, 28, 0, 32, 19), "00001100", 340, 135),
        ),
        # A garbled clock still yields the state.
        ("99-99-9999 99:99:99 IO_1_PT_001_002", FrameStatus(None, "1", 1, 2)),
    ],
)
def test_frame_date_line_in_every_form(header: str, expected: FrameStatus) -> None:
    assert parse_frame_status(header) == expected


def test_frame_date_line_bits_and_position() -> None:
    status = parse_frame_status("2008-10-01 15:37:53 IO_1000110_PT_340_000")
    assert status is not None
    assert [status.bit(i) for i in range(8)] == [True, False, False, False, True, True, False, None]
    assert status.position == PtzVector(1.0, -1.0)
    assert parse_frame_status("Mon, 01 Oct 2008 15:37:53 GMT") is None


def test_events_from_frame_states() -> None:
    quiet = FrameStatus(None, "00000000", 170, 45)
    motion = FrameStatus(None, "01000100", 170, 45)
    initial = status_events(None, quiet, 1.0)
    assert [(e.kind, e.source, e.active) for e in initial] == [
        (EventKind.MOTION, "", False),
        (EventKind.DIGITAL_INPUT, "1", False),
        (EventKind.RELAY, "1", False),
        (EventKind.RELAY, "2", False),
    ]
    changed = status_events(quiet, motion, 2.0)
    assert changed == [
        CameraEvent(EventKind.MOTION, True, 2.0),
        CameraEvent(EventKind.RELAY, True, 2.0, source="2"),
    ]
    # Seven digits: no motion position, so no motion event is invented.
    short = FrameStatus(None, "00001", 0, 0)
    assert [e.kind for e in status_events(None, short, 3.0)] == [
        EventKind.DIGITAL_INPUT,
        EventKind.RELAY,
        EventKind.RELAY,
    ]


def test_datetime_from_the_document_example_uses_the_zone_table() -> None:
    # TimeZoneIndex 70 is Taipei, GMT+08:00.
    assert parse_datetime(SEED_DATETIME) == datetime.datetime(
        2004, 8, 31, 22, 12, 35, tzinfo=datetime.UTC
    )
    # Index 58 (New Delhi) knows the half hour that TimeZone=+5 cannot say.
    delhi = SEED_DATETIME.replace("TimeZoneIndex=70", "TimeZoneIndex=58").replace("+8", "+5")
    assert parse_datetime(delhi).time() == datetime.time(0, 42, 35)
    # Index 0 is "unused": TimeZone hours decide.
    unused = SEED_DATETIME.replace("TimeZoneIndex=70", "TimeZoneIndex=0").replace("+8", "-5")
    assert parse_datetime(unused) == datetime.datetime(2004, 9, 1, 11, 12, 35, tzinfo=datetime.UTC)
    with pytest.raises(BadResponse):
        parse_datetime(SEED_DATETIME.replace("Time=06:12:35", "Time=late"))
    with pytest.raises(BadResponse):
        parse_datetime("Date=2004-09-01\r\nTime=06:12:35\r\n")


def test_image_config_from_the_document_example() -> None:
    config = parse_image_config(SEED_IMAGE)
    assert config.resolution == (320, 240)
    assert config.imaging == ImagingSettings(
        brightness=100.0, contrast=0.0, saturation=DEFAULT_LEVEL, mirror=False,
        flip=True,
    )  # fmt: skip
    assert config.fields == {
        ImagingField.BRIGHTNESS,
        ImagingField.CONTRAST,
        ImagingField.SATURATION,
        ImagingField.MIRROR,
        ImagingField.FLIP,
    }
    partial = parse_image_config("VideoResolution=7\r\nBrightnessControl=bright\r\n")
    assert partial.resolution is None
    assert partial.imaging == ImagingSettings()
    assert partial.fields == frozenset()


def test_imaging_form_maps_to_vendor_ranges_and_keeps_the_other_mirror_bit() -> None:
    assert imaging_form(ImagingSettings(brightness=0, contrast=100, saturation=50), None) == {
        "BrightnessControl": "1",
        "ContrastControl": "128",
        "SaturationControl": "65",
        "ConfigReboot": "No",
    }
    assert imaging_form(ImagingSettings(mirror=True), 2) == {"Mirror": "3", "ConfigReboot": "No"}
    assert imaging_form(ImagingSettings(flip=False), 3) == {"Mirror": "1", "ConfigReboot": "No"}
    assert imaging_form(ImagingSettings(), 3) == {}
    with pytest.raises(ValueError, match="outside"):
        imaging_form(ImagingSettings(brightness=101), None)


def test_ptz_scales() -> None:
    assert vendor_to_position(0, 0) == PtzVector(-1.0, -1.0)
    assert vendor_to_position(340, 135) == PtzVector(1.0, 1.0)
    assert position_to_vendor(PtzVector(0.0, 0.0)) == (170, 68)
    assert position_to_vendor(PtzVector(-2.0, 2.0)) == (0, 135)
    for pan, tilt in [(0, 0), (17, 45), (170, 67), (339, 134)]:
        assert position_to_vendor(vendor_to_position(pan, tilt)) == (pan, tilt)


def test_velocity_becomes_single_steps_per_axis() -> None:
    assert single_move_forms(PtzVector(1.0, 0.0)) == [
        {"PanSingleMoveDegree": "10", "TiltSingleMoveDegree": "10", "PanTiltSingleMove": "5"}
    ]
    assert single_move_forms(PtzVector(-0.01, -0.5)) == [
        {"PanSingleMoveDegree": "1", "TiltSingleMoveDegree": "1", "PanTiltSingleMove": "3"},
        {"PanSingleMoveDegree": "5", "TiltSingleMoveDegree": "5", "PanTiltSingleMove": "7"},
    ]
    assert single_move_forms(PtzVector(0.0, 3.0))[0]["PanTiltSingleMove"] == "1"
    assert single_move_forms(PtzVector()) == []


@pytest.mark.parametrize(
    ("server", "realm", "expected"),
    [
        ("Camera Web Server/1.0", "", True),
        ("", "DCS-5300G", True),
        ("", "TV-IP410W", True),
        ("Boa/0.94.13", "netcam", False),
        ("Netwave IP Camera", "", False),
    ],
)
def test_fingerprint(server: str, realm: str, expected: bool) -> None:
    assert IpCamCgiDriver.matches_fingerprint(server, realm) is expected


# -- driver against the emulator -----------------------------------------------------------


@dataclass
class Cam:
    sim: RunningSimulator
    camera: IpCamCgiSimulator
    http: CameraHttp
    driver: IpCamCgiDriver

    def calls(self) -> list[RecordedRequest]:
        """Requests the camera accepted credentials for, oldest first."""
        return [r for r in self.camera.requests if r.authenticated_user]

    def only(self, method: str, path: str) -> RecordedRequest:
        matching = [r for r in self.calls() if (r.method, r.path) == (method, path)]
        assert len(matching) == 1, [(r.method, r.path) for r in self.calls()]
        return matching[0]

    async def sim_post(self, control: str, **query: str) -> None:
        await self.http.request("POST", f"/__sim__/{control}", params=query)


async def start_cam(
    start_sim: StartSim, open_http: OpenHttp, camera: IpCamCgiSimulator | None = None
) -> Cam:
    camera = camera or IpCamCgiSimulator(OPTIONS)
    sim = await start_sim(camera)
    http = open_http(sim.url, USER, PASSWORD)
    return Cam(sim, camera, http, IpCamCgiDriver(http))


@pytest.fixture
async def cam(start_sim: StartSim, open_http: OpenHttp) -> AsyncIterator[Cam]:
    """A connected driver; the request log starts empty."""
    cam = await start_cam(start_sim, open_http)
    await cam.driver.connect()
    cam.camera.requests.clear()
    yield cam
    await cam.driver.close()


def sent(request: RecordedRequest) -> tuple[str, str, dict[str, str], dict[str, str], str]:
    return request.method, request.path, request.query, request.form, request.content_type


def ptz_post(fields: dict[str, str]) -> tuple[str, str, dict[str, str], dict[str, str], str]:
    return "POST", "/pantiltcontrol.cgi", {}, fields, "application/x-www-form-urlencoded"


def vendor(cam: Cam) -> tuple[int, int]:
    return cam.camera.vendor_position()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` until true, failing after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_connect_reads_identity_and_capabilities(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    cam = await start_cam(start_sim, open_http)
    info = await cam.driver.connect()
    assert info == DeviceInfo(
        manufacturer="TRENDnet",
        model="TV-IP410",
        firmware="3.06 (2008-10-06)",
        serial="00408CCD0001",
        mac="00:40:8C:CD:00:01",
    )
    assert [(r.method, r.path, r.query) for r in cam.calls()] == [
        ("GET", "/isystem.cgi", {}),
        ("GET", "/image.cgi", {}),
        ("GET", "/iocontrol.cgi", {}),
    ]
    log = (await cam.http.get("/__sim__/requests")).body
    assert [(r["method"], r["path"], r["authenticated_user"]) for r in json.loads(log)] == [
        ("GET", "/isystem.cgi", ""),  # the first try, before Basic was learned from the 401
        ("GET", "/isystem.cgi", USER),
        ("GET", "/image.cgi", USER),
        ("GET", "/iocontrol.cgi", USER),
    ]
    caps = cam.driver.capabilities
    assert caps.resolution == (WIDTH, HEIGHT)
    assert caps.audio_in is None
    assert caps.audio_out is None
    assert (caps.ptz.continuous, caps.ptz.relative, caps.ptz.absolute) == (True, True, True)
    assert (caps.ptz.zoom, caps.ptz.speed, caps.ptz.set_home) == (False, False, False)
    assert (caps.ptz.presets, caps.ptz.home, caps.ptz.position) == (24, True, True)
    assert caps.imaging == {
        ImagingField.BRIGHTNESS,
        ImagingField.CONTRAST,
        ImagingField.SATURATION,
        ImagingField.MIRROR,
        ImagingField.FLIP,
    }
    assert (caps.relay_outputs, caps.digital_inputs) == (2, 1)
    assert (caps.motion_events, caps.input_events) == (True, True)
    assert (caps.get_datetime, caps.set_datetime) == (True, True)
    assert (caps.reboot, caps.factory_default) == (True, True)


class _SystemCgiOnly(IpCamCgiSimulator):
    """Firmware that answers system information on /system.cgi, as section 3.1.2 reads."""

    def routes(self) -> Iterable[web.RouteDef]:
        kept = [r for r in super().routes() if r.path not in ("/isystem.cgi", "/system.cgi")]
        return [*kept, web.get("/system.cgi", self._guard(Level.ADMIN, self._system_info))]


async def test_device_info_falls_back_to_system_cgi(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    cam = await start_cam(start_sim, open_http, _SystemCgiOnly(OPTIONS))
    info = await cam.driver.device_info()
    assert (info.model, info.mac) == ("TV-IP410", "00:40:8C:CD:00:01")
    assert [(r.method, r.path) for r in cam.calls()] == [
        ("GET", "/isystem.cgi"),
        ("GET", "/system.cgi"),
    ]


async def test_wrong_password_is_refused_without_leaking_it(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    sim = await start_sim(IpCamCgiSimulator(OPTIONS))
    http = open_http(sim.url, USER, "wrong-pw")
    with pytest.raises(AuthenticationFailed) as refused:
        await IpCamCgiDriver(http).connect()
    assert "wrong-pw" not in str(refused.value)
    with pytest.raises(AuthenticationFailed):
        await IpCamCgiDriver.detect(http)


async def test_detect_is_one_request_to_cgiversion(cam: Cam) -> None:
    assert await IpCamCgiDriver.detect(cam.http) is True
    assert sent(cam.only("GET", "/cgiversion.cgi"))[:4] == ("GET", "/cgiversion.cgi", {}, {})
    assert len(cam.calls()) == 1


class _OtherCamera(SimulatedCamera):
    """A camera of another family: /cgiversion.cgi is a web page, /x.cgi does not exist."""

    dialect = "other"
    server_header = "Boa/0.94.13"
    realm = "other"

    def is_public(self, request: web.Request) -> bool:
        return True

    def routes(self) -> Iterable[web.RouteDef]:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html>CGIVersion: 2</html>", content_type="text/html")

        return [web.get("/cgiversion.cgi", page)]


async def test_detect_is_false_for_other_cameras(start_sim: StartSim, open_http: OpenHttp) -> None:
    other = await start_sim(_OtherCamera(OPTIONS))
    assert await IpCamCgiDriver.detect(open_http(other.url, USER, PASSWORD)) is False


async def test_detect_is_false_where_the_cgi_is_missing(
    start_sim: StartSim, open_http: OpenHttp
) -> None:
    class Bare(_OtherCamera):
        def routes(self) -> Iterable[web.RouteDef]:
            return []

    bare = await start_sim(Bare(OPTIONS))
    assert await IpCamCgiDriver.detect(open_http(bare.url, USER, PASSWORD)) is False


async def test_root_page_fingerprint_matches(cam: Cam) -> None:
    fingerprint = await cam.http.fingerprint()
    assert (fingerprint.status, fingerprint.challenge) == (401, "basic")
    assert fingerprint.server == "Camera Web Server/1.0"
    assert fingerprint.realm == "TV-IP410"
    assert IpCamCgiDriver.matches_fingerprint(fingerprint.server, fingerprint.realm)


async def test_snapshot(cam: Cam) -> None:
    jpeg = await cam.driver.snapshot()
    assert jpeg_size(jpeg) == (WIDTH, HEIGHT)
    assert sent(cam.only("GET", "/image.jpg"))[:4] == ("GET", "/image.jpg", {}, {})


async def test_video_frames_over_one_connection(cam: Cam) -> None:
    frames = []
    async with aclosing(cam.driver.video_frames()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) == 3:
                break
    assert [jpeg_size(f.data) for f in frames] == [(WIDTH, HEIGHT)] * 3
    assert frames[0].timestamp < frames[1].timestamp < frames[2].timestamp
    assert sent(cam.only("GET", "/mjpeg.cgi"))[:4] == ("GET", "/mjpeg.cgi", {}, {})


async def test_ffprobe_reads_the_mjpeg_url(cam: Cam) -> None:
    url = with_userinfo(cam.sim.url + "/mjpeg.cgi", USER, PASSWORD)
    probed = await ffprobe("-show_entries", "stream=codec_name,width,height", url)
    assert probed["streams"] == [{"codec_name": "mjpeg", "width": WIDTH, "height": HEIGHT}]


async def test_continuous_move_steps_until_stop(cam: Cam) -> None:
    start = vendor(cam)
    await cam.driver.continuous_move(PtzVector(pan=0.3))
    await until(lambda: vendor(cam)[0] >= start[0] + 9, "three 3-degree steps right")
    await cam.driver.stop()
    posts = [sent(r) for r in cam.calls()]
    step_right = ptz_post(
        {"PanSingleMoveDegree": "3", "TiltSingleMoveDegree": "3", "PanTiltSingleMove": "5"}
    )
    assert posts == [step_right] * len(posts)
    assert len(posts) >= 3
    stopped_at, count = vendor(cam), len(posts)
    await asyncio.sleep(ipcamcgi.STEP_INTERVAL * 2)
    assert (vendor(cam), len(cam.calls())) == (stopped_at, count)
    assert stopped_at[1] == start[1]
    position = await cam.driver.ptz_position()
    assert position == pytest.approx(vendor_to_position(*stopped_at))


async def test_diagonal_move_steps_both_axes_and_a_new_move_replaces_it(cam: Cam) -> None:
    start = vendor(cam)
    await cam.driver.continuous_move(PtzVector(pan=-1.0, tilt=1.0))
    assert vendor(cam) == (start[0] - 10, start[1] + 10)
    assert [sent(r) for r in cam.calls()] == [
        ptz_post(
            {"PanSingleMoveDegree": "10", "TiltSingleMoveDegree": "10", "PanTiltSingleMove": "3"}
        ),
        ptz_post(
            {"PanSingleMoveDegree": "10", "TiltSingleMoveDegree": "10", "PanTiltSingleMove": "1"}
        ),
    ]
    await cam.driver.continuous_move(PtzVector(tilt=-0.1))
    cam.camera.requests.clear()
    await until(lambda: len(cam.calls()) >= 2, "two more steps")
    await cam.driver.continuous_move(PtzVector())  # zero velocity stops
    assert {r.form["PanTiltSingleMove"] for r in cam.calls()} == {"7"}
    count = len(cam.calls())
    await asyncio.sleep(ipcamcgi.STEP_INTERVAL * 2)
    assert len(cam.calls()) == count


async def test_continuous_move_ends_at_the_end_stop_and_on_close(
    cam: Cam, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How long a move may last is the gateway's PTZ owner's to say; the driver stops stepping
    # once a full travel's steps were made (here a 25 degree head: 3 steps of 10 degrees).
    monkeypatch.setattr(ipcamcgi, "PAN_MAX", 25)
    await cam.driver.continuous_move(PtzVector(pan=1.0))
    await until(lambda: len(cam.calls()) >= 3, "three steps")
    await asyncio.sleep(ipcamcgi.STEP_INTERVAL * 2)
    assert len(cam.calls()) == 3

    monkeypatch.undo()
    await cam.driver.continuous_move(PtzVector(pan=0.1))
    await cam.driver.close()
    count = len(cam.calls())
    await asyncio.sleep(ipcamcgi.STEP_INTERVAL * 2)
    assert len(cam.calls()) == count


async def test_a_refused_step_ends_the_move_and_is_logged_without_secrets(
    cam: Cam, caplog: pytest.LogCaptureFixture
) -> None:
    await cam.driver.continuous_move(PtzVector(tilt=0.2))
    cam.camera.settings.admin_password = "changed"  # someone changed it on the camera
    await until(lambda: any(not r.authenticated_user for r in cam.camera.requests), "a refusal")
    await until(lambda: "continuous move ended early" in caplog.text, "the warning")
    assert "credentials rejected on /pantiltcontrol.cgi" in caplog.text
    assert PASSWORD not in caplog.text
    count = len(cam.camera.requests)
    await asyncio.sleep(ipcamcgi.STEP_INTERVAL * 2)
    assert len(cam.camera.requests) == count


async def test_absolute_move_and_position(cam: Cam) -> None:
    await cam.driver.absolute_move(PtzVector(pan=0.5, tilt=-1.0), speed=0.5)
    assert sent(cam.only("POST", "/pantiltcontrol.cgi")) == ptz_post(
        {"PanTiltHorizontal": "255", "PanTiltVertical": "0", "PanTiltPositionMove": "true"}
    )
    assert vendor(cam) == (255, 0)
    assert cam.camera.state.ptz.position().pan == pytest.approx(0.5)
    assert await cam.driver.ptz_position() == pytest.approx(PtzVector(0.5, -1.0))
    assert cam.calls()[-1].path == "/mjpeg.cgi"


async def test_relative_move_reads_the_position_then_moves_to_the_sum(cam: Cam) -> None:
    await cam.driver.absolute_move(PtzVector(pan=0.0, tilt=0.0))
    cam.camera.requests.clear()
    await cam.driver.relative_move(PtzVector(pan=-0.25, tilt=0.5))
    assert [sent(r)[:2] for r in cam.calls()] == [
        ("GET", "/mjpeg.cgi"),
        ("POST", "/pantiltcontrol.cgi"),
    ]
    assert sent(cam.calls()[1]) == ptz_post(
        # From (170, 68): pan 170 - 0.25 * 170, tilt (68 / 67.5 - 1 + 0.5 + 1) * 67.5.
        {"PanTiltHorizontal": "128", "PanTiltVertical": "102", "PanTiltPositionMove": "true"}
    )
    assert vendor(cam) == (128, 102)
    await cam.driver.relative_move(PtzVector(pan=5.0))  # clamped at the end stop
    assert vendor(cam) == (340, 102)


async def test_zoom_is_unsupported(cam: Cam) -> None:
    for move in (
        cam.driver.continuous_move(PtzVector(zoom=0.5)),
        cam.driver.relative_move(PtzVector(zoom=0.1)),
        cam.driver.absolute_move(PtzVector(zoom=1.0)),
    ):
        with pytest.raises(UnsupportedOperation):
            await move
    assert cam.calls() == []


async def test_presets_store_go_and_clear(cam: Cam) -> None:
    await cam.driver.absolute_move(PtzVector(pan=-0.5, tilt=0.5))
    cam.camera.requests.clear()
    token = await cam.driver.set_preset("Front door and more", "3")
    assert token == "3"
    assert [r.path for r in cam.calls()] == ["/mjpeg.cgi", "/pantiltcontrol.cgi"]
    assert sent(cam.calls()[1]) == ptz_post(
        {
            "PanTiltHorizontal": "85",
            "PanTiltVertical": "101",
            "SetPosition": "3",
            "SetName": "Front door a",  # the firmware keeps 12 characters
        }
    )
    await cam.driver.goto_home()
    assert vendor(cam) == (170, 45)
    cam.camera.requests.clear()
    await cam.driver.goto_preset("3")
    assert sent(cam.only("POST", "/pantiltcontrol.cgi")) == ptz_post(
        {"PanTiltPresetPositionMove": "3"}
    )
    assert vendor(cam) == (85, 101)
    cam.camera.requests.clear()
    await cam.driver.remove_preset("3")
    assert sent(cam.only("POST", "/pantiltcontrol.cgi")) == ptz_post({"ClearPosition": "3"})
    with pytest.raises(BadResponse, match="400"):
        await cam.driver.goto_preset("3")


async def test_goto_home(cam: Cam) -> None:
    await cam.driver.absolute_move(PtzVector(pan=1.0, tilt=1.0))
    cam.camera.requests.clear()
    await cam.driver.goto_home()
    assert sent(cam.only("POST", "/pantiltcontrol.cgi")) == ptz_post(
        {"PanTiltPresetPositionMove": "0"}
    )
    assert vendor(cam) == (170, 45)


@pytest.mark.parametrize("token", ["0", "25", "home", ""])
async def test_preset_tokens_outside_the_slots_are_refused(cam: Cam, token: str) -> None:
    with pytest.raises(UnsupportedOperation, match=r"1\.\.24"):
        await cam.driver.goto_preset(token)
    with pytest.raises(UnsupportedOperation):
        await cam.driver.set_preset("x", token)
    with pytest.raises(UnsupportedOperation):
        await cam.driver.remove_preset(token)
    assert cam.calls() == []


async def test_imaging_get_and_set(cam: Cam) -> None:
    assert await cam.driver.imaging() == ImagingSettings(
        brightness=DEFAULT_LEVEL,
        contrast=DEFAULT_LEVEL,
        saturation=DEFAULT_LEVEL,
        mirror=False,
        flip=False,
    )
    assert sent(cam.only("GET", "/image.cgi"))[:4] == ("GET", "/image.cgi", {}, {})
    cam.camera.requests.clear()

    await cam.driver.set_imaging(
        ImagingSettings(brightness=100, contrast=0, mirror=True, flip=True)
    )
    assert sent(cam.only("POST", "/image.cgi")) == (
        "POST",
        "/image.cgi",
        {},
        {"BrightnessControl": "128", "ContrastControl": "1", "Mirror": "3", "ConfigReboot": "No"},
        "application/x-www-form-urlencoded",
    )
    assert (cam.camera.settings.brightness, cam.camera.settings.contrast) == (128, 1)
    assert (cam.camera.state.mirror, cam.camera.state.flip) == (True, True)
    assert cam.camera.state.reboots == 0
    cam.camera.requests.clear()

    # Only flip given: the mirror bit is read first and kept.
    await cam.driver.set_imaging(ImagingSettings(flip=False))
    assert [(r.method, r.path, r.form) for r in cam.calls()] == [
        ("GET", "/image.cgi", {}),
        ("POST", "/image.cgi", {"Mirror": "1", "ConfigReboot": "No"}),
    ]
    assert await cam.driver.imaging() == ImagingSettings(
        brightness=100.0, contrast=0.0, saturation=DEFAULT_LEVEL, mirror=True,
        flip=False,
    )  # fmt: skip


async def test_sharpness_is_unsupported(cam: Cam) -> None:
    with pytest.raises(UnsupportedOperation):
        await cam.driver.set_imaging(ImagingSettings(sharpness=50, brightness=10))
    assert cam.calls() == []


async def test_relays_are_the_two_triggers(cam: Cam) -> None:
    assert await cam.driver.relay_outputs() == [RelayOutput("1", False), RelayOutput("2", False)]
    assert sent(cam.only("GET", "/iocontrol.cgi"))[:4] == ("GET", "/iocontrol.cgi", {}, {})
    cam.camera.requests.clear()
    await cam.driver.set_relay("2", True)
    assert sent(cam.only("POST", "/iocontrol.cgi")) == (
        "POST",
        "/iocontrol.cgi",
        {},
        {"Trigger2": "1"},
        "application/x-www-form-urlencoded",
    )
    assert cam.camera.state.relays == [False, True]
    assert await cam.driver.relay_outputs() == [RelayOutput("1", False), RelayOutput("2", True)]
    await cam.driver.set_relay("2", False)
    assert cam.camera.state.relays == [False, False]
    with pytest.raises(UnsupportedOperation):
        await cam.driver.set_relay("3", True)


async def test_digital_input_state_comes_from_the_frame_header(cam: Cam) -> None:
    assert await cam.driver.digital_inputs() == [DigitalInput("1", False)]
    await cam.sim_post("input", port="1", active="1")
    assert await cam.driver.digital_inputs() == [DigitalInput("1", True)]
    assert [(r.method, r.path) for r in cam.calls()] == [("GET", "/mjpeg.cgi")] * 2


async def test_events_report_motion_input_and_trigger_changes(cam: Cam) -> None:
    seen: list[CameraEvent] = []

    async def collect(count: int) -> None:
        async with aclosing(cam.driver.events()) as events:
            async for event in events:
                seen.append(event)
                if len(seen) == count:
                    return

    # Four initial states, then motion on, input on, trigger 1 on, motion off.
    collector = asyncio.create_task(collect(8))
    await until(lambda: len(seen) == 4, "the initial states")
    assert {(e.kind, e.source, e.active) for e in seen} == {
        (EventKind.MOTION, "", False),
        (EventKind.DIGITAL_INPUT, "1", False),
        (EventKind.RELAY, "1", False),
        (EventKind.RELAY, "2", False),
    }
    await cam.sim_post("motion", active="1", level="80")
    await until(lambda: len(seen) == 5, "motion")
    await cam.sim_post("input", port="1", active="1")
    await until(lambda: len(seen) == 6, "the input")
    await cam.driver.set_relay("1", True)
    await until(lambda: len(seen) == 7, "the trigger")
    await cam.sim_post("motion", active="0")
    await asyncio.wait_for(collector, DEADLINE)
    assert [(e.kind, e.source, e.active) for e in seen[4:]] == [
        (EventKind.MOTION, "", True),
        (EventKind.DIGITAL_INPUT, "1", True),
        (EventKind.RELAY, "1", True),
        (EventKind.MOTION, "", False),
    ]
    stamps = [e.timestamp for e in seen]
    assert stamps == sorted(stamps)
    assert [r.path for r in cam.calls() if r.method == "GET"] == ["/mjpeg.cgi"]


async def test_datetime_get_and_set_in_camera_local_time(cam: Cam) -> None:
    cam.camera.state.set_clock(datetime.datetime(2009, 12, 31, 23, 30, 0, tzinfo=datetime.UTC))
    clock = await cam.driver.get_datetime()
    assert clock.tzinfo == datetime.UTC
    assert abs(clock - datetime.datetime(2009, 12, 31, 23, 30, 0, tzinfo=datetime.UTC)) < (
        datetime.timedelta(seconds=2)
    )
    assert sent(cam.only("GET", "/datetime.cgi"))[:4] == ("GET", "/datetime.cgi", {}, {})
    cam.camera.requests.clear()

    wanted = datetime.datetime(2011, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    await cam.driver.set_datetime(wanted)
    assert sent(cam.only("POST", "/datetime.cgi")) == (
        "POST",
        "/datetime.cgi",
        {},
        # The camera is at GMT+01:00 (TimeZoneIndex 32): it is told its local time.
        {"DateTimeMode": "1", "Date": "2011-05-06", "Time": "08:08:09", "ConfigReboot": "No"},
        "application/x-www-form-urlencoded",
    )
    assert abs(cam.camera.state.now() - wanted) < datetime.timedelta(seconds=2)
    assert abs(await cam.driver.get_datetime() - wanted) < datetime.timedelta(seconds=2)
    with pytest.raises(ValueError, match="aware"):
        await cam.driver.set_datetime(datetime.datetime(2011, 5, 6))


async def test_reboot_and_factory_default(cam: Cam) -> None:
    await cam.driver.set_imaging(ImagingSettings(brightness=0, mirror=True, flip=True))
    await cam.driver.set_relay("1", True)
    cam.camera.requests.clear()
    await cam.driver.reboot()
    assert sent(cam.only("POST", "/reset.cgi"))[:4] == (
        "POST",
        "/reset.cgi",
        {},
        {"Reset": "Yes"},
    )
    assert cam.camera.state.reboots == 1
    cam.camera.requests.clear()
    await cam.driver.factory_default()
    assert sent(cam.only("POST", "/reset.cgi"))[3] == {"FactoryReset": "Yes"}
    assert cam.camera.state.factory_resets == 1
    assert (await cam.driver.imaging()).brightness == DEFAULT_LEVEL
    assert (cam.camera.state.mirror, cam.camera.state.relays) == (False, [False, False])


async def test_what_the_dialect_lacks_is_unsupported(cam: Cam) -> None:
    async def no_audio() -> AsyncIterator[bytes]:
        yield b""

    with pytest.raises(UnsupportedOperation):
        cam.driver.audio_chunks()
    with pytest.raises(UnsupportedOperation):
        await cam.driver.send_audio(no_audio())
    with pytest.raises(UnsupportedOperation):
        await cam.driver.presets()
    with pytest.raises(UnsupportedOperation, match="free preset slot"):
        await cam.driver.set_preset("anywhere")
    with pytest.raises(UnsupportedOperation):
        await cam.driver.set_home()
    with pytest.raises(UnsupportedOperation):
        await cam.driver.set_ptz_speed(0.5)
    assert cam.calls() == []


# -- the emulator on its own -----------------------------------------------------------------


async def raw_get(cam: Cam, target: str, *, user: str = USER, password: str = PASSWORD) -> bytes:
    """One request as an HTTP/1.1 client sends it, and the raw reply up to close."""
    host, port = cam.sim.host, cam.sim.port
    reader, writer = await asyncio.open_connection(host, port)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {token}\r\n\r\n".encode()
    )
    try:
        return await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_replies_are_http10_name_value_lines(cam: Cam) -> None:
    reply = await raw_get(cam, "/cgiversion.cgi")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"\r\nServer: Camera Web Server/1.0" in head
    assert b"\r\nContent-Type: text/html\r\n" in head
    assert body == b"CGIVersion=2\r\n"

    io = await raw_get(cam, "/iocontrol.cgi")
    assert io.partition(b"\r\n\r\n")[2].startswith(
        b"Trigger1= 0&Trigger2= 0&ImageUpload= 0&ImageEmail= 0&CurrentTime= "
    )
    system = (await raw_get(cam, "/isystem.cgi")).partition(b"\r\n\r\n")[2]
    assert b"\r\nMACAddress=00 40 8C CD 00 01\r\n" in system


async def test_mjpeg_wire_format(cam: Cam) -> None:
    async with cam.http.stream("/mjpeg.cgi") as reply:
        assert reply.content_type == "multipart/x-mixed-replace;boundary=--video boundary--"
        data = b""
        async for chunk in reply.chunks():
            data += chunk
            if data.count(b"--video boundary--") >= 2:
                break
    assert data.startswith(b"--video boundary--\r\nContent-Length: ")
    part_head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert part_head[2].startswith("Date: ")
    status = parse_frame_status(part_head[2].removeprefix("Date: "))
    assert status is not None
    assert (status.io, status.pan, status.tilt) == ("00000000", 170, 45)
    assert part_head[3] == "Content-Type: image/jpeg"
    length = int(part_head[1].removeprefix("Content-Length: "))
    body_start = data.index(b"\r\n\r\n") + 4
    assert data[body_start + length : body_start + length + 22] == b"\r\n\r\n--video boundary--"


HOME_FIELDS = {"PanTiltHorizontal": "170", "PanTiltVertical": "45"}
PAST_THE_END = {"PanTiltHorizontal": "341", "PanTiltVertical": "0"}


async def post(cam: Cam, path: str, fields: dict[str, str]) -> Reply:
    return await cam.http.request(
        "POST", path, data=fields, accept_status=frozenset({204, 400, 401})
    )


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/image.cgi", {"BrightnessControl": "0"}),
        ("/image.cgi", {"Mirror": "4"}),
        ("/image.cgi", {"Sharpness": "50"}),
        ("/image.cgi", {"BrightnessControl": "50", "ConfigReboot": "maybe"}),
        ("/datetime.cgi", {"Date": "2008-13-01"}),
        ("/datetime.cgi", {"TimeZone": "+14"}),
        ("/pantiltcontrol.cgi", {"PanTiltSingleMove": "2"}),  # reserved diagonal
        ("/pantiltcontrol.cgi", {"PanTiltSingleMove": "5", "PanSingleMoveDegree": "11"}),
        ("/pantiltcontrol.cgi", {"SetPosition": "0", **HOME_FIELDS}),
        ("/pantiltcontrol.cgi", {"SetPosition": "1", "PanTiltHorizontal": "1"}),
        ("/pantiltcontrol.cgi", {**PAST_THE_END, "PanTiltPositionMove": "true"}),
        ("/pantiltcontrol.cgi", {"PanTiltSwingMode": "1"}),
        ("/pantiltcontrol.cgi", {}),
        ("/iocontrol.cgi", {"Trigger3": "1"}),
        ("/reset.cgi", {"Reset": "No"}),
    ],
)  # fmt: skip
async def test_bad_parameters_are_400_and_change_nothing(
    cam: Cam, path: str, fields: dict[str, str]
) -> None:
    before = (dict(vars(cam.camera.settings)), cam.camera.state.as_json())
    reply = await post(cam, path, fields)
    assert (reply.status, reply.body) == (400, b"400 Bad Request\r\n")
    after = (dict(vars(cam.camera.settings)), cam.camera.state.as_json())
    assert after[0] == before[0]
    assert after[1]["ptz"] == before[1]["ptz"]


async def test_unknown_cgi_is_404(cam: Cam) -> None:
    reply = await cam.http.request("GET", "/ptz.cgi", accept_status=frozenset({404}))
    assert reply.status == 404


async def test_settings_may_come_in_the_query(cam: Cam) -> None:
    await cam.http.get("/image.cgi", {"SaturationControl": "100", "ConfigReboot": "Yes"})
    assert cam.camera.settings.saturation == 100
    assert cam.camera.state.reboots == 1
    reply = await cam.http.get("/pantiltcontrol.cgi", {"PanTiltSingleMove": "7"})
    assert reply.status == 204
    assert vendor(cam) == (170, 40)  # the default 5-degree step


async def test_user_list_and_privileges(cam: Cam) -> None:
    listed = await post(
        cam,
        "/userlist.cgi",
        {"UserName": "op", "UserPassword": "op-pw", "UserPrivilege": "1", "UserAdd": "Yes"},
    )
    await post(
        cam,
        "/userlist.cgi",
        {"UserName": "view", "UserPassword": "v", "UserPrivilege": "0", "UserAdd": "Yes"},
    )
    assert listed.body == b"UserName =op\r\nUserPassword =op-pw\r\nUserPrivilege =1\r\n"
    assert parse_pairs(listed.text()) == [
        ("UserName", "op"),
        ("UserPassword", "op-pw"),
        ("UserPrivilege", "1"),
    ]
    assert (await raw_get(cam, "/image.cgi", user="op", password="op-pw")).startswith(
        b"HTTP/1.0 401"
    )
    assert (await raw_get(cam, "/image.jpg", user="view", password="v")).startswith(b"HTTP/1.0 200")
    step_right = "/pantiltcontrol.cgi?PanTiltSingleMove=5"
    assert (await raw_get(cam, step_right, user="view", password="v")).startswith(b"HTTP/1.0 401")
    assert (await raw_get(cam, step_right, user="op", password="op-pw")).startswith(b"HTTP/1.0 204")
    assert vendor(cam) == (175, 45)
    removed = await post(cam, "/userlist.cgi", {"UserName": "view", "UserDelete": "Yes"})
    assert parse_pairs(removed.text())[0] == ("UserName", "op")
    assert (await raw_get(cam, "/image.jpg", user="view", password="v")).startswith(b"HTTP/1.0 401")
    duplicate_admin = await post(
        cam,
        "/userlist.cgi",
        {"UserName": USER, "UserPassword": "x", "UserPrivilege": "1", "UserAdd": "Yes"},
    )
    assert duplicate_admin.status == 400
