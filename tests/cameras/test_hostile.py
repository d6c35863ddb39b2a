"""Hostile cameras: whatever a camera answers, every driver hands on sane values or raises from
the error tree (issue 9: "every camera reply field validated where it enters").

One fake camera on loopback answers every CGI with the same text, drawn by hypothesis from the
parameter names the five dialects read and values no firmware should send (thousands of digits,
``nan``, ``inf``, superscript digits, control characters, 65000x65000 ...). Each driver connects
and reads what it can; what comes out is checked against the gateway's caps.
"""

from __future__ import annotations

import asyncio
import datetime
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from aiohttp import web
from conftest import Serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.cameras import ipcamcgi, openapi, vapix2
from bridge.cameras.base import (
    CameraDriver,
    Capabilities,
    DeviceInfo,
    Dialect,
    ImagingSettings,
    Preset,
    PtzVector,
)
from bridge.cameras.fields import MAX_IO_PORTS, MAX_PRESETS, TEXT_LIMIT, normalize_mac, printable
from bridge.cameras.http import CameraHttp
from bridge.cameras.registry import DRIVERS
from bridge.codecs.jpeg import plausible_size
from bridge.errors import BadResponse, BridgeError
from bridge.simulator import media as simulated

DEADLINE = 10.0  # seconds any one driver call may take against the fake camera

# What the five dialects read from their parameter lists, status and PTZ replies.
NAMES = (
    "Brand.Brand", "Brand.ProdShortName", "Brand.ProdFullName", "Brand.ProdNbr",
    "Properties.Firmware.Version", "Properties.System.SerialNumber",
    "Properties.System.HardwareID", "Network.eth0.MACAddress",
    "Network.Interface.I0.Active.MACAddress", "Properties.Audio", "Properties.Audio.Audio",
    "Properties.Audio.AudioCodec", "Properties.PTZ.PTZ", "Properties.Image.FlipMode",
    "Image.I0.Appearance.Resolution", "Image.I0.Appearance.Brightness",
    "Image.I0.Appearance.Mirror", "ImageSource.I0.Sensor.Brightness", "Input.NbrOfInputs",
    "Output.NbrOfOutputs", "Time.TimeZone", "AudioSource.A0.AudioEncoding",
    "Audio.A0.AudioEncoding", "Audio.DuplexMode", "Motion.M0.WindowType",
    "PTZ.Limit.L1.MinPan", "PTZ.Limit.L1.MaxPan", "PTZ.Limit.L1.MinTilt", "PTZ.Limit.L1.MaxTilt",
    "PTZ.Limit.L1.MinZoom", "PTZ.Limit.L1.MaxZoom", "PTZ.Support.S1.AbsolutePan",
    "PTZ.Support.S1.AbsoluteTilt", "PTZ.Support.S1.AbsoluteZoom", "PTZ.Support.S1.ServerPreset",
    "PTZ.Preset.P0.MaxPresets", "PTZ.Preset.P0.Position.P1.Name", "Model", "FirmwareVersion",
    "MACAddress", "VideoResolution", "BrightnessControl", "Mirror", "Trigger1", "Trigger2",
    "TimeZoneIndex", "TimeZone", "Date", "Time", "CGIVersion", "id", "sys_ver", "app_ver",
    "alias", "now", "tz", "alarm_status", "pri", "resolution", "brightness", "contrast", "flip",
    "mode", "pan", "tilt", "zoom", "presetposno1",
)  # fmt: skip
HUGE = "9" * 5000  # past int()'s 4300 digits
VALUES = st.one_of(
    st.sampled_from(
        [
            "", "yes", "1", "0", "-1", "nan", "inf", "-inf", "1e999", HUGE, "1" * 400,
            "\xb2", "\u0663", "65000x65000", "0x0", "640x480", HUGE + "x480", "GMT+99",
            "GMT-12", "CST-99", "00:40:8C:1A:2B:3C", "Cam\x00\x1b[2J\r", "x" * 5000,
            "2010-13-45", "0001-01-01", "9999-12-31", "23:59:59", "Jan 01, 0001 00:00:00",
            "Dec 31, 9999 23:59:59", "99999999999999999999", "253402300800", "g711", "g726",
        ]
    ),
    st.text(max_size=40),
    st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{1,5})?", fullmatch=True),
)  # fmt: skip
# ptz.cgi?info=1 and query replies, in the forms vapix2 and openapi read.
SPECIAL_LINES = st.sampled_from(
    [
        "{gotoserverpresetno=[1-" + "9" * 400 + "]}",
        "{gotoserverpresetno=[1-99999]}",
        "{pan=[-1e999-1e999]}{tilt=[-170-170]}{query={position}}{zoom=[1-" + HUGE + "]}",
        "IO" + HUGE + ":/",
        "group=" + HUGE + ";level=" + HUGE + ";threshold=1;",
        "Trigger" + HUGE + "=1",
        "presetposno" + HUGE + "=x",
        "image width = 65000\nimage height = " + HUGE,
        "Apr 03, 0001 00:00:01",
        "input1=active",
    ]
)
LINE = st.one_of(st.tuples(st.sampled_from(NAMES), VALUES), SPECIAL_LINES)
# What each dialect needs to connect and offer its PTZ, I/O and clock, so that the hostile
# lines after it (a repeated name keeps its last value) reach every parser.
BASE: dict[str, str] = {
    "hama": "Brand.Brand=HAMA\r\nProperties.PTZ.PTZ=yes\r\n",
    "vapix2": "Brand.Brand=AXIS\r\nProperties.PTZ.PTZ=yes\r\nInput.NbrOfInputs=1\r\n"
    "Output.NbrOfOutputs=1\r\nImageSource.I0.Sensor.Brightness=50\r\n"
    "pan=10\r\ntilt=-5\r\nTime.Now=Apr 03, 2009 15:16:04\r\n"
    "{query={position|presetposall}}{pan=[-170-170]}{tilt=[-90-90]}{gotoserverpresetno=[1-20]}",
    "openapi": "Brand.Brand=X\r\nProperties.PTZ.PTZ=yes\r\nPTZ.Limit.L1.MinPan=-170\r\n"
    "PTZ.Limit.L1.MaxPan=170\r\nPTZ.Limit.L1.MinTilt=-90\r\nPTZ.Limit.L1.MaxTilt=90\r\n"
    "PTZ.Support.S1.AbsolutePan=yes\r\nPTZ.Support.S1.AbsoluteTilt=yes\r\n"
    "PTZ.Support.S1.ServerPreset=yes\r\nPTZ.Preset.P0.MaxPresets=20\r\nInput.NbrOfInputs=1\r\n"
    "Image.I0.Appearance.Brightness=100\r\npan=10\r\ntilt=-5\r\n"
    "Time.Now=Apr 03, 2009 15:16:04\r\n",
    "ipcamcgi": "Model=CAS-330\r\nTrigger1=0\r\nBrightnessControl=64\r\nDate=2010-01-01\r\n"
    "Time=12:00:00\r\nTimeZone=1\r\n",
    "foscam": "var id='00626e4a3cd0';var sys_ver='0.1.2.3';var resolution=8;var flip=0;"
    "var now=1262304000;",
}


def render(dialect: Dialect, lines: Sequence[tuple[str, str] | str]) -> str:
    out = [BASE[dialect]]
    for line in lines:
        if isinstance(line, str):
            out.append(line)
        elif dialect == "foscam":
            out.append(f"var {line[0]}='{line[1]}';")
        else:
            out.append(f"{line[0]}={line[1]}")
    return "\r\n".join(out) + "\r\n"


class FakeCamera:
    """Answers every request with ``text``; a live MJPEG stream's frames carry no state."""

    def __init__(self) -> None:
        self.text = ""

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=self.text, content_type="text/plain")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


@pytest.fixture
async def camera(serve: Serve) -> AsyncIterator[tuple[FakeCamera, CameraHttp]]:
    fake = FakeCamera()
    async with CameraHttp(await serve(fake.app()), name="hostile") as http:
        yield fake, http


def check_text(value: str) -> None:
    assert value == printable(value)
    assert len(value) <= TEXT_LIMIT


def check_info(info: DeviceInfo) -> None:
    for value in (info.manufacturer, info.model, info.firmware, info.serial, info.hardware_id):
        check_text(value)
    assert info.mac in ("", normalize_mac(info.mac))


def check_capabilities(caps: Capabilities) -> None:
    assert caps.resolution is None or plausible_size(*caps.resolution)
    assert 0 <= caps.relay_outputs <= MAX_IO_PORTS
    assert 0 <= caps.digital_inputs <= MAX_IO_PORTS
    assert 0 <= caps.ptz.presets <= MAX_PRESETS
    audio = caps.audio_in
    assert audio is None or (8000 <= audio.sample_rate <= 48000 and 0 < audio.channels <= 2)


def check_result(result: object) -> None:
    """Whatever a getter returned is within the normalized ranges base.py promises."""
    if isinstance(result, PtzVector):
        values = (result.pan, result.tilt, result.zoom)
        assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in values)
    elif isinstance(result, ImagingSettings):
        levels = (result.brightness, result.contrast, result.saturation, result.sharpness)
        assert all(v is None or 0.0 <= v <= 100.0 for v in levels)
    elif isinstance(result, datetime.datetime):
        assert result.tzinfo is not None
    elif isinstance(result, list):
        assert len(result) <= MAX_PRESETS
        for item in result:
            check_text(getattr(item, "token", ""))
            check_text(getattr(item, "name", ""))


GETTERS: tuple[Callable[[CameraDriver], Awaitable[object]], ...] = (
    lambda d: d.device_info(),
    lambda d: d.imaging(),
    lambda d: d.presets(),
    lambda d: d.ptz_position(),
    lambda d: d.relay_outputs(),
    lambda d: d.digital_inputs(),
    lambda d: d.get_datetime(),
)


async def drive(driver: CameraDriver) -> None:
    """Connect and read everything; only the error tree may come out."""
    try:
        async with asyncio.timeout(DEADLINE):
            info = await driver.connect()
    except BridgeError:
        return
    check_info(info)
    check_capabilities(driver.capabilities)
    for getter in GETTERS:
        try:
            async with asyncio.timeout(DEADLINE):
                result = await getter(driver)
        except BridgeError:
            continue
        check_result(result)


@pytest.mark.parametrize("dialect", list(DRIVERS))
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(LINE, max_size=12))
async def test_any_reply_gives_sane_values_or_a_bridge_error(
    camera: tuple[FakeCamera, CameraHttp], dialect: Dialect, lines: list[tuple[str, str] | str]
) -> None:
    fake, http = camera
    fake.text = render(dialect, lines)
    driver = DRIVERS[dialect](http)
    try:
        await drive(driver)
    finally:
        await driver.close()


# -- the specific replies that broke drivers before ----------------------------------------------


async def connected(camera: tuple[FakeCamera, CameraHttp], dialect: str, text: str) -> CameraDriver:
    fake, http = camera
    fake.text = text
    driver = DRIVERS[Dialect(dialect)](http)
    async with asyncio.timeout(DEADLINE):
        check_info(await driver.connect())
    check_capabilities(driver.capabilities)
    return driver


# (relay outputs, digital inputs, resolution, presets, absolute moves) the unit then has.
NOTHING = (0, 0, None, 0, False)


@pytest.mark.parametrize(
    ("dialect", "reply", "expected"),
    [
        # str.isdigit() accepts "²", int() does not: connect failed with a ValueError.
        pytest.param(
            "openapi", "Brand.Brand=X\r\nInput.NbrOfInputs=\xb2\r\n", NOTHING, id="openapi-²"
        ),
        pytest.param(
            "vapix2", "Brand.Brand=X\r\nInput.NbrOfInputs=\xb2\r\n", NOTHING, id="vapix2-²"
        ),
        # Ten million inputs: a tuple of ten million ports, and monitoring requests for them.
        pytest.param(
            "openapi",
            "Brand.Brand=X\r\nInput.NbrOfInputs=10000000\r\nOutput.NbrOfOutputs=99\r\n",
            NOTHING,
            id="openapi-ten-million-inputs",
        ),
        pytest.param(
            "vapix2",
            "Brand.Brand=X\r\nInput.NbrOfInputs=10000000\r\nOutput.NbrOfOutputs=99\r\n",
            NOTHING,
            id="vapix2-ten-million-inputs",
        ),
        # A preset range whose end float() reads as inf: int(inf) raised OverflowError. The
        # range is not understood, so the document's default applies.
        pytest.param(
            "vapix2",
            "Brand.Brand=X\r\nProperties.PTZ.PTZ=yes\r\n{gotoserverpresetno=[1-" + "9" * 400 + "]}",
            (0, 0, None, vapix2.DEFAULT_PRESET_SLOTS, False),
            id="vapix2-infinite-presets",
        ),
        pytest.param(
            "vapix2",
            "Brand.Brand=X\r\nProperties.PTZ.PTZ=yes\r\n{gotoserverpresetno=[1-99999]}",
            (0, 0, None, MAX_PRESETS, False),
            id="vapix2-a-hundred-thousand-presets",
        ),
        # 5000 digits are past what int() reads: ValueError.
        pytest.param(
            "hama",
            f"Brand.Brand=X\r\nImage.I0.Appearance.Resolution={HUGE}x480\r\n",
            NOTHING,
            id="hama-5000-digit-width",
        ),
        pytest.param(
            "ipcamcgi",
            f"Model=X\r\nTrigger{HUGE}=1\r\nTrigger1=0\r\nVideoResolution=2\r\n",
            (1, 1, (640, 480), ipcamcgi.PRESET_SLOTS, True),
            id="ipcamcgi-5000-digit-trigger",
        ),
        # A clock past year 9999: fromtimestamp() raised OverflowError.
        pytest.param(
            "foscam",
            "var id='000000000001';var sys_ver='0.1.2.3';var now=99999999999999999999;"
            "var resolution=8;",
            (1, 1, (320, 240), 16, True),
            id="foscam-clock-past-9999",
        ),
        # Infinite PTZ limits made an absolute move send "nan" and round() raise.
        pytest.param(
            "openapi",
            "Brand.Brand=X\r\nProperties.PTZ.PTZ=yes\r\nPTZ.Limit.L1.MinPan=-inf\r\n"
            "PTZ.Limit.L1.MaxPan=inf\r\nPTZ.Limit.L1.MinTilt=-1e999\r\n"
            "PTZ.Limit.L1.MaxTilt=1e999\r\nPTZ.Support.S1.AbsolutePan=yes\r\n"
            "PTZ.Support.S1.AbsoluteTilt=yes\r\n",
            NOTHING,
            id="openapi-infinite-ptz-limits",
        ),
        # A picture size no camera has, passed on as the camera's resolution.
        pytest.param(
            "openapi",
            "Brand.Brand=X\r\nImage.I0.Appearance.Resolution=65000x65000\r\n",
            NOTHING,
            id="openapi-65000x65000",
        ),
        # Control characters in the model: refused by XML, obeyed by terminals (check_info).
        pytest.param(
            "hama",
            "Brand.Brand=Acme\x1b[2J\r\nBrand.ProdShortName=Cam\x00\x07" + "x" * 500,
            NOTHING,
            id="hama-control-characters",
        ),
    ],
)
async def test_hostile_fields_are_refused_where_they_enter(
    camera: tuple[FakeCamera, CameraHttp],
    dialect: str,
    reply: str,
    expected: tuple[int, int, tuple[int, int] | None, int, bool],
) -> None:
    driver = await connected(camera, dialect, reply)
    caps = driver.capabilities
    got = (caps.relay_outputs, caps.digital_inputs, caps.resolution, caps.ptz.presets)
    assert (*got, caps.ptz.absolute) == expected
    await driver.close()


async def test_a_camera_clock_out_of_range_is_a_bad_response(
    camera: tuple[FakeCamera, CameraHttp],
) -> None:
    driver = await connected(camera, "vapix2", "Brand.Brand=X\r\nTime.TimeZone=GMT+2\r\n")
    camera[0].text = "Jan 01, 0001 00:30:00\r\n"
    with pytest.raises(BadResponse, match="out of range"):
        await driver.get_datetime()


@pytest.mark.parametrize(
    ("parse", "expected"),
    [
        pytest.param(
            lambda: vapix2.parse_io_monitor(f"IO{HUGE}:/\r\nIO1:/".encode()),
            [(1, True)],
            id="vapix2-input-monitor",
        ),
        pytest.param(
            lambda: vapix2.parse_motion_levels(
                f"group={HUGE};level=1;threshold=2;\r\ngroup=1;level=2;threshold=3;".encode()
            ),
            [vapix2.MotionLevel(1, 2, 3)],
            id="vapix2-motion-levels",
        ),
        pytest.param(
            lambda: vapix2.parse_presets(f"presetposno{HUGE}=x\r\npresetposno2=y\r\n"),
            [Preset("2", "y")],
            id="vapix2-presets",
        ),
        pytest.param(
            lambda: openapi.parse_io_monitor(f"IO{HUGE}:H\r\nIO1:L"),
            {1: False},
            id="openapi-input-monitor",
        ),
        pytest.param(
            lambda: ipcamcgi.parse_io_status(f"Trigger{HUGE}=1\r\nTrigger1=0").triggers,
            {1: False},
            id="ipcamcgi-triggers",
        ),
    ],
)
def test_stream_and_list_parsers_skip_numbers_past_reason(
    parse: Callable[[], object], expected: object
) -> None:
    """Event and list lines with thousands of digits are skipped and the rest still read
    (they raised ValueError out of event streams and PTZ calls, outside the error tree)."""
    assert parse() == expected


@pytest.mark.parametrize("dialect", list(DRIVERS))
async def test_no_driver_hands_out_a_snapshot_claiming_65000x65000(
    serve: Serve, dialect: Dialect
) -> None:
    jpeg = simulated.TestPattern(64, 48).render(0, datetime.datetime(2010, 1, 1))
    sof = jpeg.index(b"\xff\xc0")
    hostile = jpeg[: sof + 5] + b"\xfd\xe8\xfd\xe8" + jpeg[sof + 9 :]

    async def picture(request: web.Request) -> web.Response:
        return web.Response(body=hostile, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", picture)
    async with CameraHttp(await serve(app)) as http:
        with pytest.raises(BadResponse, match="claims a 65000x65000 picture"):
            await DRIVERS[dialect](http).snapshot()


async def test_a_video_stream_without_state_does_not_hold_a_ptz_query_forever(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ipcamcgi reads the PTZ position from the Date line of its MJPEG frames; a camera whose
    frames never carry one kept the request reading forever."""
    monkeypatch.setattr(ipcamcgi, "STATUS_WAIT", 0.5)
    jpeg = simulated.TestPattern(64, 48).render(0, datetime.datetime(2010, 1, 1))

    async def video(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(
            headers={"Content-Type": "multipart/x-mixed-replace; boundary=b"}
        )
        await reply.prepare(request)
        while request.transport is not None and not request.transport.is_closing():
            await reply.write(b"--b\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
            await asyncio.sleep(0.05)  # the camera's 20 fps
        return reply

    app = web.Application()
    app.router.add_get(ipcamcgi.VIDEO_CGI, video)
    async with CameraHttp(await serve(app)) as http:
        driver = ipcamcgi.IpCamCgiDriver(http)
        with pytest.raises(BadResponse, match="carry no state"):
            async with asyncio.timeout(5):  # the old code read on until this
                await driver.ptz_position()
