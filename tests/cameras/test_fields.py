"""What a camera reports, checked where it enters: numbers, text, MACs, sizes, clocks."""

from __future__ import annotations

import datetime
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.cameras.base import DeviceInfo, Preset
from bridge.cameras.fields import (
    TEXT_LIMIT,
    local_to_utc,
    normalize_mac,
    parse_float,
    parse_int,
    parse_resolution,
    printable,
)
from bridge.errors import BadResponse


@pytest.mark.parametrize(
    ("raw", "mac"),
    [
        ("00:11:09:15:10:ab", "00:11:09:15:10:AB"),
        ("00-11-09-15-10-AB", "00:11:09:15:10:AB"),
        ("0011.0915.10ab", "00:11:09:15:10:AB"),
        ("001109 1510AB", "00:11:09:15:10:AB"),
        ("00 FF 5C 8A 13 18", "00:FF:5C:8A:13:18"),
        ("00626e4a3cd0", "00:62:6E:4A:3C:D0"),
        ("00:11:09:15:10", ""),
        ("00:11:09:15:10:AB:CD", ""),
        ("MAC 00:11:09:15:10:AB", ""),
        ("0g:11:09:15:10:ab", ""),
        ("unknown", ""),
        ("ctf", ""),
        ("", ""),
    ],
)
def test_a_mac_is_one_mac_address_or_nothing(raw: str, mac: str) -> None:
    assert normalize_mac(raw) == mac


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 42 ", 42),
        ("-3", -3),
        ("+7", 7),
        ("\xb2", None),  # "²": str.isdigit() says yes, int() says no
        ("\u0663", None),  # an Arabic-Indic 3, which int() would take
        ("1_000", None),
        ("9" * 5000, None),  # past int()'s 4300 digits
        ("101", None),  # out of range
        ("", None),
        (None, None),
    ],
)
def test_parse_int_takes_plain_numbers_in_range(raw: str | None, expected: int | None) -> None:
    assert parse_int(raw, -100, 100) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("170.5", 170.5),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("1e2", 100.0),
        ("nan", None),
        ("inf", None),
        ("-Infinity", None),
        ("1" * 400, None),  # float() makes it inf
        ("1e400", None),
        ("1_0", None),
        ("1000.1", None),  # out of range
        ("", None),
    ],
)
def test_parse_float_takes_finite_decimals_in_range(raw: str, expected: float | None) -> None:
    assert parse_float(raw, -1000.0, 1000.0) == expected


@given(st.text(max_size=40), st.integers(-(10**20), 10**20), st.integers(-(10**20), 10**20))
def test_number_parsers_never_raise(text: str, low: int, high: int) -> None:
    number = parse_int(text, low, high)
    assert number is None or low <= number <= high
    decimal = parse_float(text, low, high)
    assert decimal is None or low <= decimal <= high


def test_printable_drops_controls_and_caps_length() -> None:
    assert printable("AXIS\x00 2100\x1b[2J\r\nNetwork  Camera") == "AXIS 2100[2J Network Camera"
    assert printable("x" * 1000) == "x" * TEXT_LIMIT
    assert printable("\ufeffM\u200bodel\ud800") == "Model"  # format marks, lone surrogates
    assert printable("Zürich, 東京") == "Zürich, 東京"


@given(st.text(max_size=600), st.integers(1, 200))
def test_printable_text_is_safe_anywhere(text: str, limit: int) -> None:
    clean = printable(text, limit)
    assert len(clean) <= limit
    assert clean == clean.strip()
    assert "  " not in clean
    assert all(ch == " " or not unicodedata.category(ch).startswith(("C", "Z")) for ch in clean)
    clean.encode("utf-8")  # no lone surrogates


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("640x480", (640, 480)),
        ("1280X1024", (1280, 1024)),
        ("320 x 240", (320, 240)),
        ("VGA (640x480)", (640, 480)),
        ("", None),
        ("0x480", None),
        ("65000x65000", None),
        ("4096x4096", None),  # each side fits, the picture does not
        ("123456x480", None),
        ("9" * 5000 + "x480", None),
    ],
)
def test_parse_resolution_takes_sizes_a_camera_can_send(
    raw: str, size: tuple[int, int] | None
) -> None:
    assert parse_resolution(raw) == size


def test_local_to_utc_maps_a_clock_out_of_range_to_bad_response() -> None:
    plus_one = datetime.timedelta(hours=1)
    assert local_to_utc(datetime.datetime(2010, 5, 1, 12), plus_one) == datetime.datetime(
        2010, 5, 1, 11, tzinfo=datetime.UTC
    )
    with pytest.raises(BadResponse, match="out of range"):
        local_to_utc(datetime.datetime(1, 1, 1), plus_one)
    with pytest.raises(BadResponse, match="out of range"):
        local_to_utc(datetime.datetime(9999, 12, 31, 23), -2 * plus_one)


def test_device_info_and_presets_hold_only_clean_camera_text() -> None:
    info = DeviceInfo(
        manufacturer="Acme\x00",
        model="Cam\r\n<script>" + "x" * 200,
        firmware="1.0\x1b[31m",
        serial=" SN 1 ",
        mac="00-40-8c-1a-2b-3c",
        hardware_id="\x7f",
    )
    assert info == DeviceInfo(
        "Acme", ("Cam <script>" + "x" * 200)[:TEXT_LIMIT], "1.0[31m", "SN 1", "00:40:8C:1A:2B:3C"
    )
    assert DeviceInfo("", "", "", "", "garbage").mac == ""
    assert Preset("1\n", "Gate\x07" + "y" * 100) == Preset("1", "Gate" + "y" * (TEXT_LIMIT - 4))
