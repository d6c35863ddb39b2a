"""The config schema and loader: the only place the gateway reads its config file.

A bad file raises :class:`~bridge.errors.ConfigError` with one message naming the file, the
field (``cameras[1].name``) and what is wrong; secrets are ``SecretStr`` so they never appear
in a repr, a log line or an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from yarl import URL

from bridge.errors import ConfigError

_Model = TypeVar("_Model", bound=BaseModel)
Port = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (tests, side-by-side runs)
DialectName = Literal["auto", "hama", "ipcamcgi", "openapi", "foscam", "vapix2"]


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


class CameraConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9-]+$", max_length=63)
    url: str
    dialect: DialectName = "auto"
    username: str = ""
    password: SecretStr = SecretStr("")
    audio: Literal["pcmu", "aac", "off"] = "pcmu"  # what RTSP serves of the camera's sound

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
        return self


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


def users_file_for(config_path: Path) -> Path:
    """Where the users created over ONVIF are kept: ``<config stem>.users.yaml`` beside it."""
    return config_path.with_name(f"{config_path.stem}.users.yaml")


def load_users_file(path: Path) -> list[SavedUser]:
    """The saved users; none while the file does not exist yet."""
    if not path.exists():
        return []
    return _validated(SavedUsers, _read_yaml(path) or {}, str(path)).users


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
