"""Config loading: a good file becomes typed objects; a bad one, one clear message."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import MotionConfig, load_config
from bridge.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config" / "bridge.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    return path


def test_example_config_loads_into_typed_values() -> None:
    config = load_config(EXAMPLE)
    assert config.gateway.rtsp_port == 8554
    assert config.gateway.onvif_base_port == 8000
    (camera,) = config.cameras
    assert (camera.name, camera.dialect, camera.url) == ("porch", "auto", "http://192.0.2.10")
    assert camera.motion == MotionConfig(detect="auto", sensitivity=50, min_area=1.5)
    assert "change-me" not in repr(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cameras:\n  - name: Porch!\n    url: http://x\n", r"cameras\[0\]\.name: .*pattern"),
        (
            "cameras:\n  - name: a\n    url: ftp://x\n",
            r"cameras\[0\]\.url: must be the camera's HTTP",
        ),
        ("cameras:\n  - name: a\n    url: http://x\n    dialect: sony\n", r"cameras\[0\]\.dialect"),
        ("gateway:\n  rtsp_port: 70000\n", r"gateway\.rtsp_port: .*65535"),
        ("gateway:\n  colour: red\n", r"gateway\.colour: Extra inputs"),
        (
            "cameras:\n  - {name: a, url: 'http://x'}\n  - {name: a, url: 'http://y'}\n",
            r"unique: a repeated",
        ),
        ("gateway:\n  web_port: 8000\ncameras:\n  - {name: a, url: 'http://x'}\n", r"collides"),
        ("cameras: [\n", r"line \d+, column \d+"),
        ("- just a list\n", r"top level must be a mapping"),
        (
            "cameras:\n  - name: a\n    url: http://admin:pw@x\n",
            r"credentials in username/password",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', address: cam.local}\n",
            r"cameras\[0\]\.address: must be an IP address",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', address: 239.1.2.3}\n",
            r"cameras\[0\]\.address: must be a unicast address",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', motion: {detect: always}}\n",
            r"cameras\[0\]\.motion\.detect: Input should be 'auto', 'camera', 'pixels' or 'off'",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', motion: {sensitivity: 0}}\n",
            r"cameras\[0\]\.motion\.sensitivity: Input should be greater than or equal to 1",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', motion: {min_area: 120}}\n",
            r"cameras\[0\]\.motion\.min_area: Input should be less than or equal to 100",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', motion: {sensitivty: 80}}\n",
            r"cameras\[0\]\.motion\.sensitivty: Extra inputs are not permitted",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', onvif_port: 8554}\n",
            r"cameras\[0\] ONVIF port 8554 on 0\.0\.0\.0 is already gateway\.rtsp_port's",
        ),
        (
            "cameras:\n  - {name: a, url: 'http://x', address: 192.0.2.51}\n"
            "  - {name: b, url: 'http://y', address: 192.0.2.51}\n",
            r"cameras\[1\] ONVIF port 80 on 192\.0\.2\.51 is already cameras\[0\]'s",
        ),
    ],
)
def test_bad_config_names_file_field_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


def test_check_config_command_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == f"{EXAMPLE}: OK, 1 camera(s)\n"
    cameras = "".join(
        f"  - name: {name}\n    url: http://192.0.2.{i}\n    enabled: {on}\n"
        for i, (name, on) in enumerate([("a", "true"), ("b", "off"), ("c", "false")])
    )
    assert main(["check-config", str(write(tmp_path, f"cameras:\n{cameras}"))]) == 0
    assert "OK, 3 camera(s), 2 disabled" in capsys.readouterr().out
    bad = write(tmp_path, "cameras:\n  - name: BAD\n    url: http://x\n    password: hunter22\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: cameras[0].name" in err
    assert "hunter22" not in err
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cameras_on_their_own_addresses_listen_on_port_80_by_default(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "cameras:\n"
            "  - {name: a, url: 'http://x', address: 192.0.2.51}\n"
            "  - {name: b, url: 'http://y', address: 192.0.2.52}\n"
            "  - {name: c, url: 'http://z', address: 192.0.2.52, onvif_port: 8081}\n"
            "  - {name: d, url: 'http://w'}\n",
        )
    )
    assert [c.device_port for c in config.cameras] == [80, 80, 8081, None]


@pytest.mark.parametrize(
    ("detect", "camera_detects", "expected"),
    [
        ("auto", True, (True, False)),  # the camera's own, where its CGI has it
        ("auto", False, (False, True)),  # else the pictures'
        ("camera", True, (True, False)),
        ("camera", False, (False, False)),
        ("pixels", True, (False, True)),
        ("pixels", False, (False, True)),
        ("off", True, (False, False)),
        ("off", False, (False, False)),
    ],
)
def test_motion_detect_chooses_where_motion_comes_from(
    detect: str, camera_detects: bool, expected: tuple[bool, bool]
) -> None:
    motion = MotionConfig.model_validate({"detect": detect})
    assert motion.sources(camera_detects) == expected


def test_a_bare_off_in_yaml_means_off(tmp_path: Path) -> None:
    """YAML reads a bare ``off`` as false; a user writing it means the setting's "off"."""
    config = load_config(
        write(
            tmp_path,
            "cameras:\n  - {name: a, url: 'http://x', audio: off, motion: {detect: off}}\n",
        )
    )
    assert (config.cameras[0].audio, config.cameras[0].motion.detect) == ("off", "off")


def test_a_port_taken_or_an_address_not_on_this_host_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(
            tmp_path,
            "gateway: {listen_host: 127.0.0.1, web_port: 0, announce: false, "
            f"rtsp_port: {port}}}\ncameras: []\n",
        )
        assert main(["run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot start:")
    assert str(port) in err
    assert "Traceback" not in err
