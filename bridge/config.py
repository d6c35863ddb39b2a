"""The config schema and loader: the only place the gateway reads its config file.

A bad file raises :class:`~bridge.errors.ConfigError` with one message naming the file, the
field (``cameras[1].name``) and what is wrong; secrets are ``SecretStr`` so they never appear
in a repr, a log line or an error.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from yarl import URL

from bridge.errors import ConfigError
from bridge.kept import (
    MAX_ENCODERS,
    MAX_PRESETS,
    MAX_PROFILES,
    KeptEncoder,
    KeptPreset,
    KeptProfile,
    valid_entries,
)

_Model = TypeVar("_Model", bound=BaseModel)
Port = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (tests, side-by-side runs)
DialectName = Literal["auto", "hama", "ipcamcgi", "openapi", "foscam", "vapix2"]
DEFAULT_ADDRESS_PORT = 80  # a camera device on its own address answers where ONVIF expects


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Strict):
    advertise_host: str = "auto"
    listen_host: str = "0.0.0.0"
    rtsp_port: Port = 8554
    web_port: Port = 8080
    onvif_base_port: Port = 8000
    username: str = Field(default="admin", min_length=1)
    password: SecretStr = SecretStr("change-me")
    # How long a camera keeps streaming after its last viewer leaves, so a VMS that reconnects
    # (or switches main -> sub) finds it warm.
    stream_idle_seconds: float = Field(default=10.0, ge=0, le=3600)
    # A test and debugging aid: check every ONVIF response against the WSDL schemas before it
    # is sent, answering ter:Action (and logging the error) when one does not fit. Costs time.
    onvif_validate_responses: bool = False
    # Be found: WS-Discovery, SSDP and zeroconf announce every camera device on the interfaces
    # the gateway listens on (all of them with listen_host 0.0.0.0).
    announce: bool = True
    # Find: sweep the LAN every few minutes and log (and list) cameras not in this file;
    # discovery_networks (CIDRs) limits the sweep, else this host's own subnets.
    discovery: bool = False
    discovery_networks: list[str] = Field(default=[], max_length=64)

    @field_validator("discovery_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                network = ipaddress.IPv4Network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not an IPv4 network like 192.0.2.0/24") from None
            if network.num_addresses > 65536:
                raise ValueError(f"{text} is larger than a /16")
        return value


def _yaml_off(value: object) -> object:
    """YAML 1.1 reads a bare ``off`` (or ``no``, ``false``) as false: for a setting whose values
    include "off", that is what the user meant."""
    return "off" if value is False else value


class MotionConfig(_Strict):
    """Where a camera's motion events come from. ``auto``: the camera's own motion detection
    where its CGI has one, else the gateway's, on the camera's pictures; ``camera`` or
    ``pixels``: only that one; ``off``: no motion events. ``sensitivity`` (1..100) and
    ``min_area`` (percent of the picture a moving region must cover) tune the gateway's."""

    detect: Annotated[Literal["auto", "camera", "pixels", "off"], BeforeValidator(_yaml_off)] = (
        "auto"
    )
    sensitivity: int = Field(default=50, ge=1, le=100)
    # Above the 1 % a camera's OSD clock changes when it ticks over, below a person crossing.
    min_area: float = Field(default=1.5, gt=0, le=100)

    def sources(self, camera_detects: bool) -> tuple[bool, bool]:
        """(the camera's own motion, motion from its pictures): which ones to report, for a
        camera whose CGI does (``camera_detects``) or does not detect motion."""
        camera = camera_detects and self.detect in ("auto", "camera")
        pixels = self.detect == "pixels" or (self.detect == "auto" and not camera_detects)
        return camera, pixels


class CameraConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9-]+$", max_length=63)
    url: str
    # false keeps the entry, and the camera's identity, but serves nothing of it: a camera
    # taken offline on purpose (readiness does not wait for it; the status page lists it)
    enabled: bool = True
    dialect: DialectName = "auto"
    username: str = ""
    password: SecretStr = SecretStr("")
    # what RTSP serves of the camera's sound
    audio: Annotated[Literal["pcmu", "aac", "off"], BeforeValidator(_yaml_off)] = "pcmu"
    # The camera device's own address on the gateway host (a macvlan interface with its own
    # MAC, say): its ONVIF device listens there, and answers discovery from there.
    address: str | None = None
    onvif_port: Port | None = None  # default: 80 with an address, else kept in the state file
    location: str = Field(default="", max_length=200)  # its ONVIF location scope, if any
    motion: MotionConfig = MotionConfig()

    @field_validator("address")
    @classmethod
    def _unicast_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address, like 192.0.2.51") from None
        if address.is_multicast or address.is_unspecified:
            raise ValueError("must be a unicast address of this host")
        return str(address)

    @property
    def device_port(self) -> int | None:
        """The ONVIF port the config fixes for this camera, if it fixes one."""
        if self.onvif_port is not None:
            return self.onvif_port
        return DEFAULT_ADDRESS_PORT if self.address is not None else None

    @field_validator("url")
    @classmethod
    def _http_root(cls, value: str) -> str:
        try:
            url = URL(value)
        except ValueError as exc:
            raise ValueError("not a URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be the camera's HTTP root, like http://192.0.2.10[:port]")
        if url.user is not None or url.password is not None:
            raise ValueError("put credentials in username/password, not in the URL")
        return value


class Config(_Strict):
    gateway: GatewayConfig = GatewayConfig()
    cameras: list[CameraConfig] = []

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [camera.name for camera in self.cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique: {', '.join(duplicates)} repeated")
        gw = self.gateway
        onvif = range(gw.onvif_base_port, gw.onvif_base_port + max(1, len(self.cameras)))
        for field_name, port in (("rtsp_port", gw.rtsp_port), ("web_port", gw.web_port)):
            if port and gw.onvif_base_port and port in onvif:
                raise ValueError(
                    f"gateway.{field_name} {port} collides with the ONVIF ports "
                    f"{onvif.start}-{onvif.stop - 1} (one per camera from onvif_base_port)"
                )
        if gw.onvif_base_port + len(self.cameras) - 1 > 65535:
            raise ValueError("gateway.onvif_base_port leaves no room for one port per camera")
        self._fixed_ports_distinct()
        return self

    def _fixed_ports_distinct(self) -> None:
        """Cameras whose config fixes their ONVIF port need it to themselves (on Linux a
        listener on 0.0.0.0 takes the port on every address)."""
        gw = self.gateway
        taken = [
            (gw.listen_host, gw.rtsp_port, "gateway.rtsp_port"),
            (gw.listen_host, gw.web_port, "gateway.web_port"),
        ]
        for index, camera in enumerate(self.cameras):
            port = camera.device_port
            if not port:
                continue
            host = camera.address or gw.listen_host
            for other_host, other_port, owner in taken:
                same_host = host == other_host or _is_wildcard(host) or _is_wildcard(other_host)
                if port == other_port and same_host:
                    raise ValueError(
                        f"cameras[{index}] ONVIF port {port} on {host} is already {owner}'s"
                    )
            taken.append((host, port, f"cameras[{index}]"))


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(data: Any, source: str) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with gateway: and cameras:")
    return _validated(Config, data, source)


def _validated(model: type[_Model], data: Any, source: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(tuple(first["loc"])) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where}: {message}{more}") from None


class SavedUser(_Strict):
    """A user created over ONVIF, as the users file next to the config keeps it."""

    username: str = Field(min_length=1)
    password: SecretStr
    level: Literal["Administrator", "Operator", "User"] = "User"


class SavedUsers(_Strict):
    users: list[SavedUser] = []


class SavedDevice(_Strict):
    """One camera device's identity, as the state file next to the config keeps it: what a
    VMS knows the device by must survive restarts and a reordered config; and what a VMS set
    on it over ONVIF (:mod:`bridge.kept`)."""

    name: str = Field(min_length=1, max_length=63)
    mac: str = ""
    endpoint: str = Field(pattern=r"^urn:uuid:[0-9a-fA-F-]{36}$")
    onvif_port: Port | None = None
    serial: str = Field(default="", max_length=64)
    discoverable: bool = True
    scopes: list[Annotated[str, Field(pattern=r"^\S{1,256}$")]] = Field(default=[], max_length=32)
    profiles: list[KeptProfile] = []
    encoders: list[KeptEncoder] = []
    presets: list[KeptPreset] = []

    @model_validator(mode="before")
    @classmethod
    def _kept_entry_by_entry(cls, data: Any) -> Any:
        """What a VMS set is kept entry by entry: one that does not fit is dropped with a log
        line, never the device's identity nor the gateway's start."""
        if not isinstance(data, dict):
            return data
        name = data.get("name")
        camera = name if isinstance(name, str) and name.isprintable() else "?"
        data = dict(data)
        for key, model, limit in (
            ("profiles", KeptProfile, MAX_PROFILES),
            ("encoders", KeptEncoder, MAX_ENCODERS),
            ("presets", KeptPreset, MAX_PRESETS),
        ):
            if key in data:
                data[key] = valid_entries(
                    model, data[key], limit=limit, camera=camera[:63], what=key
                )
        return data


class SavedDevices(_Strict):
    devices: list[SavedDevice] = []


def state_file_for(config_path: Path) -> Path:
    """Where the camera devices' identities are kept: ``<config stem>.state.yaml`` beside it."""
    return config_path.with_name(f"{config_path.stem}.state.yaml")


def load_state_file(path: Path) -> list[SavedDevice]:
    """The saved device identities; none while the file does not exist yet."""
    return _load_saved(SavedDevices, path).devices


def users_file_for(config_path: Path) -> Path:
    """Where the users created over ONVIF are kept: ``<config stem>.users.yaml`` beside it."""
    return config_path.with_name(f"{config_path.stem}.users.yaml")


def load_users_file(path: Path) -> list[SavedUser]:
    """The saved users; none while the file does not exist yet."""
    return _load_saved(SavedUsers, path).users


def _load_saved(model: type[_Model], path: Path) -> _Model:
    """A file the gateway writes itself; its defaults while it does not exist yet."""
    if not path.exists():
        return model()
    return _validated(model, _read_yaml(path) or {}, str(path))


def load_config(path: Path) -> Config:
    return parse_config(_read_yaml(path), str(path))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: {where}{problem}") from None
    return data
