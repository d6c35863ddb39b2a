"""The values a camera reports, checked where they enter: numbers, text, MAC addresses.

Camera firmware is hostile until shown otherwise: a number may have thousands of digits (more
than ``int()`` takes), be ``nan`` or ``inf`` (which ``float()`` takes) or lie far outside what
the field can mean; text may hold control characters (which XML refuses and terminals obey) or
run for megabytes. These helpers turn such values into ``None`` or a cleaned string, the
"unknown" each driver already handles, so no absurd value travels on and nothing raises
anything but the error tree.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata

from bridge.codecs.jpeg import plausible_size
from bridge.errors import BadResponse

# Caps on what a camera reports, a little past what any unit of the era has.
MAX_IO_PORTS = 16  # digital inputs or relay outputs
MAX_PRESETS = 256  # PTZ preset slots
PTZ_LIMIT = 1e6  # no PTZ range or position, in degrees or zoom steps, reaches this
TEXT_LIMIT = 64  # characters of a model, firmware, serial or preset name

_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
# Decimal notation only: no "nan", "inf", "1_000" or non-ASCII digits, which float() takes.
_DECIMAL = re.compile(
    r"[+-]?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})(?:[eE][+-]?[0-9]{1,3})?"
)
_RESOLUTION = re.compile(r"(?<![0-9])([0-9]{1,5})\s*[xX\u00d7]\s*([0-9]{1,5})(?![0-9])")
_MAC_SEPARATORS = re.compile(r"[\s:.\-]")
_MAC_DIGITS = re.compile(r"[0-9A-Fa-f]{12}")


def parse_int(value: str | None, low: int, high: int) -> int | None:
    """An integer written in ASCII digits (surrounding spaces allowed) within [low, high];
    None when missing, not such a number, or out of range."""
    if value is None:
        return None
    text = value.strip()
    if not _INTEGER.fullmatch(text):
        return None
    number = int(text)
    return number if low <= number <= high else None


def parse_float(value: str | None, low: float, high: float) -> float | None:
    """A finite decimal number within [low, high]; None when missing, not one, or out of
    range."""
    if value is None:
        return None
    text = value.strip()
    if not _DECIMAL.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) and low <= number <= high else None


def printable(value: str, limit: int = TEXT_LIMIT) -> str:
    """``value`` fit for XML, URIs (quoted), logs and terminals: control and format
    characters dropped, runs of white space made one space, at most ``limit`` characters."""
    kept = "".join(
        " " if char.isspace() else char
        # Bounded work: a megabyte of camera text is not scanned to keep 64 characters.
        for char in value[: 4 * limit]
        if char.isspace() or not unicodedata.category(char).startswith("C")
    )
    return " ".join(kept.split())[:limit].rstrip()


def local_to_utc(local: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    """A camera's naive local time, ``offset`` east of UTC, as an aware UTC datetime.

    A clock read near year 1 or 9999 (a reset or garbled RTC) has no UTC equivalent that
    ``datetime`` can hold: :class:`BadResponse` then, not an OverflowError.
    """
    try:
        return (local - offset).replace(tzinfo=datetime.UTC)
    except OverflowError as exc:
        raise BadResponse(f"camera clock {local.isoformat()} is out of range") from exc


def normalize_mac(value: str) -> str:
    """``00:11:22:AA:BB:CC`` from the ways firmware writes a MAC (colons, dashes, dots, spaces
    or none, any case); "" when the value is not exactly one MAC address."""
    digits = _MAC_SEPARATORS.sub("", value[:64])
    if not _MAC_DIGITS.fullmatch(digits):
        return ""
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).upper()


def parse_resolution(value: str) -> tuple[int, int] | None:
    """(width, height) from ``640x480``, ``640X480`` or ``640 x 480`` within the text; None
    when absent or not a size a camera could send (the JPEG caps)."""
    match = _RESOLUTION.search(value[:256])
    if match is None:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    return (width, height) if plausible_size(width, height) else None
