"""What a VMS sets on a camera device over ONVIF that the gateway keeps across restarts.

ONVIF Media and Media2 say a created, deleted or refilled profile "shall be persistent", and
that a changed encoder configuration outlives a reboot (ForcePersistence is obsolete and
"should always be assumed to be true"); a tracker's GotoPreset "home" must find the preset it
stored last week. Each camera device's record in the state file (:mod:`bridge.identity`)
carries these values, so they follow the camera (its MAC, else its name) like its identity.

These are the typed values as the file holds them, shared by the layers that keep them (the
ONVIF media profiles, the media encoders, the PTZ head) without any of them importing another.
The file is input like any other: every value is bounded here, an entry that does not fit is
dropped alone (:func:`valid_entries`), and what no longer fits the camera (a size it stopped
offering, a preset slot it lacks) is dropped by the layer that knows the camera.
"""

from __future__ import annotations

import enum
import logging
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

MAX_PROFILES = 8  # a device's media profiles, fixed and created together
MAX_ENCODERS = 2  # the H.264 profiles, main and sub (the jpeg one passes pictures through)
MAX_PRESETS = 256  # more slots than any legacy head has; each camera's own count decides
MAX_NAME = 64  # tt:Name
# tt:ReferenceToken is at most 64 characters; the gateway's own and those clients choose
# are printable words.
Token = Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,64}$")]
Name = Annotated[str, Field(max_length=MAX_NAME)]
_Entry = TypeVar("_Entry", bound=BaseModel)


class Kind(enum.Enum):
    """The configurations a profile can hold, by Media2's names (tr2:ConfigurationEnumeration)."""

    VIDEO_SOURCE = "VideoSource"
    AUDIO_SOURCE = "AudioSource"
    VIDEO_ENCODER = "VideoEncoder"
    AUDIO_ENCODER = "AudioEncoder"
    PTZ = "PTZ"
    AUDIO_OUTPUT = "AudioOutput"
    AUDIO_DECODER = "AudioDecoder"


class _Kept(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeptProfile(_Kept):
    """A media profile a client created, or a fixed one it changed."""

    token: Token
    name: Name
    configurations: dict[Kind, Token] = {}  # kind -> the configuration's token


class KeptEncoder(_Kept):
    """What an H.264 profile was set to encode (:class:`bridge.media.source.VideoLimits`):
    the size chosen among the offered ones, the rate limit (None: the camera's), the bitrate
    (None: follows size and rate) and the GOP."""

    profile: Token  # an H.264 profile of bridge.media.source.Profile: main or sub
    width: int = Field(ge=2, le=16384)
    height: int = Field(ge=2, le=16384)
    max_fps: float | None = Field(default=None, gt=0, le=1000)
    bitrate: int | None = Field(default=None, ge=1, le=1_000_000_000)
    gop_seconds: float = Field(default=1.0, gt=0, le=3600)


class KeptPreset(_Kept):
    """A preset of a camera that cannot list its own: its slot, name and, when known, the
    head's normalized position when it was stored (where a move there leads)."""

    token: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,3}$")]  # the camera's slot, from 1
    name: Annotated[Name, Field(min_length=1)]
    pan: float | None = Field(default=None, ge=-1, le=1)
    tilt: float | None = Field(default=None, ge=-1, le=1)
    zoom: float | None = Field(default=None, ge=0, le=1)


def valid_entries(
    model: type[_Entry],
    entries: object,
    *,
    limit: int,
    camera: str,
    what: str,
) -> list[_Entry]:
    """The entries of a list from the state file that fit ``model``, at most ``limit``; each
    one dropped is one log line naming the camera and the entry."""
    if not isinstance(entries, list):
        if entries is not None:
            log.warning("camera %s: state file: its %s are not a list: dropped", camera, what)
        return []
    kept: list[_Entry] = []
    for index, entry in enumerate(entries):
        if index >= limit:
            log.warning(
                "camera %s: state file: %d %s beyond the %d it can have dropped",
                camera,
                len(entries) - limit,
                what,
                limit,
            )
            break
        try:
            kept.append(model.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            log.warning(
                "camera %s: state file: dropped %s entry %s: %s: %s",
                camera,
                what,
                _label(entry),
                where,
                first["msg"],
            )
    return kept


def _label(entry: object) -> str:
    """An entry as a log line names it: by its token (or profile), never all of it."""
    if isinstance(entry, dict):
        entry = entry.get("token", entry.get("profile", "?"))
    return repr(entry)[:80]
