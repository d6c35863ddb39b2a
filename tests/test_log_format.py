"""``--log-format json``: one JSON object a line, masked as text lines are."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from pathlib import Path

from bridge.logs import JsonFormatter, register_secret

SECRET = 'pa"ss\\word-7'  # a quote and a backslash: JSON escaping must not hide it from the mask


def test_json_lines_parse_and_carry_no_credential() -> None:
    register_secret(SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bridge.test_log_format")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.warning("camera %s: offline: %s", "porch", f"http://operator:{SECRET}@192.0.2.1/")
        logger.info("headers %s", {"Authorization": "Basic YWRtaW46aHVudGVyMg=="})
        try:
            raise ValueError(f"refused pwd={SECRET}")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    for line in lines:
        assert "word-7" not in line
        assert "YWRtaW46aHVudGVyMg" not in line
    assert entries[0]["level"] == "WARNING"
    assert entries[0]["logger"] == "bridge.test_log_format"
    assert entries[0]["message"] == "camera porch: offline: http://operator:***@192.0.2.1/"
    assert entries[0]["time"].endswith("+00:00")
    assert "exception" not in entries[0]
    assert "ValueError: refused pwd=***" in entries[2]["exception"]


async def test_bridge_run_logs_json(tmp_path: Path) -> None:
    """The real command: every line it writes is JSON, and the camera's password is in none."""
    config = tmp_path / "bridge.yaml"
    # Port 9 on loopback: nothing listens, the camera goes offline at once.
    config.write_text(
        "gateway: {listen_host: 127.0.0.1, advertise_host: 127.0.0.1, rtsp_port: 0, web_port: 0,"
        " onvif_base_port: 0, password: gateway-secret-1, announce: false}\n"
        "cameras: [{name: porch, url: 'http://127.0.0.1:9', dialect: hama, username: admin,"
        " password: camera-secret-2}]\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "--log-format", "json", "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            async for raw in process.stderr:
                lines.append(raw.decode())
                if "camera porch: offline" in lines[-1]:
                    break
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, rest = await process.communicate()
    lines += rest.decode().splitlines() if rest else []
    messages = [json.loads(line)["message"] for line in lines]
    assert any(m.startswith("gateway started") for m in messages)
    assert any(m.startswith("camera porch: offline: ") for m in messages)
    assert not any("secret" in line for line in lines)
