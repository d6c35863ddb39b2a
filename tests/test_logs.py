"""Passwords never reach a log line, wherever they hide in it."""

from __future__ import annotations

import logging

import pytest

from bridge import logs
from bridge.logs import RedactingFormatter, register_secret


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> tuple[logging.Logger, list[str]]:
    # Secrets are process-wide; gateways started by other tests registered theirs ("admin").
    monkeypatch.setattr(logs, "_SECRETS", set())
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(RedactingFormatter("%(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger, lines


def test_registered_secret_url_userinfo_and_query_password_are_masked(
    log_lines: tuple[logging.Logger, list[str]],
) -> None:
    logger, lines = log_lines
    register_secret("Tr0ub4dor")
    logger.warning("camera said %s", "password is Tr0ub4dor")
    logger.warning("GET http://admin:other-pass@192.0.2.1/x")
    logger.warning("GET /snapshot.cgi?user=admin&pwd=letmein&x=1")
    logger.warning("rtsp://viewer:pw@127.0.0.1:8554/porch/main")
    assert lines == [
        "camera said password is ***",
        "GET http://admin:***@192.0.2.1/x",
        "GET /snapshot.cgi?user=admin&pwd=***&x=1",
        "rtsp://viewer:***@127.0.0.1:8554/porch/main",
    ]


def test_secret_inside_a_traceback_is_masked(log_lines: tuple[logging.Logger, list[str]]) -> None:
    logger, lines = log_lines
    register_secret("zebra-crossing-42")
    try:
        raise RuntimeError("failed with zebra-crossing-42")
    except RuntimeError:
        logger.exception("boom")
    assert "zebra-crossing-42" not in lines[0]
    assert "failed with ***" in lines[0]
