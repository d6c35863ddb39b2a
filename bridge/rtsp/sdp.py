"""SDP (RFC 4566) for the DESCRIBE answer, and a parser small enough to read it back (the
parser is for the tests only: the server writes SDP, it never reads any).

The server describes each camera as one aggregate session (``a=control:*``, live
``a=range:npt=now-``) with a media section per track, built by :func:`h264_media`,
:func:`jpeg_media`, :func:`pcmu_media` or :func:`aac_media`; a client asking for the ONVIF
back channel also gets :func:`backchannel_media`, the section it sends in. Ports are 0 and the
connection address unspecified, as RTSP negotiates both in SETUP. The parser reads what this
module writes and what FFmpeg writes; it skips line types it does not model (``b=``, ``i=``,
``k=`` ...).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from bridge.codecs.h264 import parse_sps
from bridge.errors import ProtocolError
from bridge.rtsp.h264 import profile_level_id, sprop_parameter_sets

Attribute = tuple[str, str | None]  # (name, value); value None for a flag like a=recvonly

PT_PCMU = 0
PT_PCMA = 8
PT_JPEG = 26
PT_H264 = 96  # dynamic payload types (96-127) are ours to choose
PT_AAC = 97
_UNSPECIFIED = {"IP4": "0.0.0.0", "IP6": "::"}


def _address_type(address: str) -> str:
    """``IP6`` for an IPv6 literal, else ``IP4`` (also for host names, as RFC 4566 allows)."""
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"


def _attribute_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def _find(attributes: tuple[Attribute, ...], name: str) -> list[str]:
    return [value for key, value in attributes if key == name and value is not None]


@dataclass(frozen=True, slots=True)
class MediaDescription:
    media: str  # "video" or "audio"
    formats: tuple[int, ...]  # RTP payload types
    attributes: tuple[Attribute, ...] = ()
    port: int = 0
    protocol: str = "RTP/AVP"

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=<name>:`` line, or None."""
        values = _find(self.attributes, name)
        return values[0] if values else None

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    def rtpmap(self, payload_type: int) -> str | None:
        """The encoding of a payload type, e.g. ``H264/90000``; None when not mapped."""
        return self._per_format("rtpmap", payload_type)

    def fmtp(self, payload_type: int) -> dict[str, str]:
        """The format parameters of a payload type, keys lower-cased."""
        params = self._per_format("fmtp", payload_type) or ""
        pairs = (param.partition("=") for param in params.split(";") if param.strip())
        return {key.strip().lower(): value.strip() for key, _, value in pairs}

    def _per_format(self, name: str, payload_type: int) -> str | None:
        for value in _find(self.attributes, name):
            fmt, _, rest = value.partition(" ")
            if fmt == str(payload_type):
                return rest.strip()
        return None

    def lines(self) -> list[str]:
        formats = " ".join(str(fmt) for fmt in self.formats)
        head = f"m={self.media} {self.port} {self.protocol} {formats}"
        return [head, *(_attribute_line(name, value) for name, value in self.attributes)]


@dataclass(frozen=True, slots=True)
class SessionDescription:
    media: tuple[MediaDescription, ...]
    host: str  # the origin address: the server's address as the client reached it
    session_id: int = 0
    session_version: int = 0
    name: str = "bridge"
    connection: str | None = None  # None: unspecified (0.0.0.0 or ::), negotiated by SETUP
    attributes: tuple[Attribute, ...] = (("control", "*"), ("range", "npt=now-"))

    def attribute(self, name: str) -> str | None:
        values = _find(self.attributes, name)
        return values[0] if values else None

    def serialize(self) -> str:
        host = self.host.strip("[]")  # an IPv6 literal as found in a URL
        connection = self.connection or _UNSPECIFIED[_address_type(host)]
        lines = [
            "v=0",
            f"o=- {self.session_id} {self.session_version} IN {_address_type(host)} {host}",
            f"s={self.name or ' '}",  # RFC 4566: a single space when there is no name
            f"c=IN {_address_type(connection)} {connection}",
            "t=0 0",
            *(_attribute_line(name, value) for name, value in self.attributes),
        ]
        for media in self.media:
            lines += media.lines()
        if any(char in line for line in lines for char in "\r\n\0"):
            # A camera name from the config must not be able to inject SDP lines.
            raise ValueError("SDP field contains a line break or NUL")
        return "\r\n".join(lines) + "\r\n"

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Read an SDP as this module or FFmpeg writes it; for the tests only."""
        origin: list[str] | None = None
        name = ""
        connection: str | None = None
        session_attributes: list[Attribute] = []
        media: list[tuple[list[str], list[Attribute]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            kind, sep, value = line.partition("=")
            if not sep or len(kind) != 1:
                raise ProtocolError(f"malformed SDP line {line[:100]!r}")
            if kind == "m":
                fields = value.split()
                if len(fields) < 4 or not fields[1].split("/")[0].isdigit():
                    raise ProtocolError(f"malformed SDP media line {line[:100]!r}")
                media.append((fields, []))
            elif kind == "a":
                key, has_value, attribute_value = value.partition(":")
                attribute = (key, attribute_value if has_value else None)
                (media[-1][1] if media else session_attributes).append(attribute)
            elif kind == "o":
                origin = value.split()
                if len(origin) != 6 or not (origin[1].isdigit() and origin[2].isdigit()):
                    raise ProtocolError(f"malformed SDP origin {line[:100]!r}")
            elif kind == "s":
                name = value.strip()
            elif kind == "c" and not media:
                address = value.split()[-1].split("/")[0]  # drop a multicast TTL
                connection = None if address in _UNSPECIFIED.values() else address
        if origin is None:
            raise ProtocolError("SDP without an o= line")
        return cls(
            media=tuple(
                MediaDescription(
                    media=fields[0],
                    port=int(fields[1].split("/")[0]),
                    protocol=fields[2],
                    formats=tuple(_payload_type(fmt) for fmt in fields[3:]),
                    attributes=tuple(attributes),
                )
                for fields, attributes in media
            ),
            host=origin[5],
            session_id=int(origin[1]),
            session_version=int(origin[2]),
            name=name,
            connection=connection,
            attributes=tuple(session_attributes),
        )


def _payload_type(text: str) -> int:
    if not text.isdigit() or int(text) > 127:
        raise ProtocolError(f"bad RTP payload type {text!r} in SDP media line")
    return int(text)


def _optional_framerate(framerate: float | None) -> tuple[Attribute, ...]:
    return () if framerate is None else (("framerate", f"{framerate:g}"),)


def h264_media(
    sps: bytes,
    pps: bytes,
    *,
    control: str = "trackID=0",
    payload_type: int = PT_H264,
    framerate: float | None = None,
) -> MediaDescription:
    """An H.264 track in packetization mode 1, parameter sets in-band in the SDP too."""
    info = parse_sps(sps)
    fmtp = (
        f"{payload_type} packetization-mode=1;profile-level-id={profile_level_id(sps)};"
        f"sprop-parameter-sets={sprop_parameter_sets(sps, pps)}"
    )
    return MediaDescription(
        "video",
        (payload_type,),
        (
            ("rtpmap", f"{payload_type} H264/90000"),
            ("fmtp", fmtp),
            *_optional_framerate(framerate),
            ("x-dimensions", f"{info.width},{info.height}"),
            ("control", control),
        ),
    )


def jpeg_media(*, control: str = "trackID=0", framerate: float | None = None) -> MediaDescription:
    """An RTP/JPEG (RFC 2435) track; PT 26 is static, the rtpmap only spells it out."""
    return MediaDescription(
        "video",
        (PT_JPEG,),
        (
            ("rtpmap", f"{PT_JPEG} JPEG/90000"),
            *_optional_framerate(framerate),
            ("control", control),
        ),
    )


def pcmu_media(*, control: str = "trackID=1") -> MediaDescription:
    """A G.711 u-law track at 8 kHz mono (static PT 0)."""
    return MediaDescription(
        "audio", (PT_PCMU,), (("rtpmap", f"{PT_PCMU} PCMU/8000"), ("control", control))
    )


def backchannel_media(*, control: str) -> MediaDescription:
    """The ONVIF audio back channel (Streaming Specification, "Back channel connection"): what
    the client may send, every codec the server decodes listed in one section (G.711 u-law and
    A-law at 8 kHz, static PTs 0 and 8), ``a=sendonly`` as the specification names the
    client-to-server direction."""
    return MediaDescription(
        "audio",
        (PT_PCMU, PT_PCMA),
        (
            ("rtpmap", f"{PT_PCMU} PCMU/8000"),
            ("rtpmap", f"{PT_PCMA} PCMA/8000"),
            ("control", control),
            ("sendonly", None),
        ),
    )


def received_by_client(media: MediaDescription) -> MediaDescription:
    """``media`` marked ``a=recvonly``: next to a back channel, the specification has every
    server-to-client section say its direction (the client receives it)."""
    return replace(media, attributes=(*media.attributes, ("recvonly", None)))


def aac_media(
    sample_rate: int,
    channels: int,
    config: bytes,
    *,
    control: str = "trackID=1",
    payload_type: int = PT_AAC,
) -> MediaDescription:
    """An AAC track (RFC 3640 AAC-hbr); ``config`` is the AudioSpecificConfig (extradata)."""
    fmtp = (
        f"{payload_type} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;"
        f"indexlength=3;indexdeltalength=3;config={config.hex()}"
    )
    return MediaDescription(
        "audio",
        (payload_type,),
        (
            ("rtpmap", f"{payload_type} MPEG4-GENERIC/{sample_rate}/{channels}"),
            ("fmtp", fmtp),
            ("control", control),
        ),
    )
