"""Passwords never reach a log line, wherever they hide in it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from unittest import mock

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import logs
from bridge.logs import MalformedHttpRequests, RedactingFormatter, register_secret


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # Secrets are process-wide; gateways started by other tests registered theirs ("admin").
    monkeypatch.setattr(logs, "_SECRETS", set())


@pytest.fixture
def log_lines(no_secrets: None) -> tuple[logging.Logger, list[str]]:
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


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Authorization: Basic dXNlcjpwdw==", "Authorization: Basic ***"),
        (
            'authorization: Digest username="u", realm="bridge", nonce="1:2:3", uri="/", '
            'response="0123456789abcdef0123456789abcdef"',
            "authorization: Digest ***",
        ),
        (
            "Proxy-Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0",
            "Proxy-Authorization: Bearer ***",
        ),
        ("Authorization: some-custom-token", "Authorization: ***"),
        # Reprs of header mappings and lists: the value ends at its closing quote.
        (
            "{'Authorization': 'Basic dXNlcjpwdw==', 'CSeq': '2'}",
            "{'Authorization': 'Basic ***', 'CSeq': '2'}",
        ),
        (
            """[('CSeq', '3'), ('Authorization', 'Digest username="u", response="x"')]""",
            "[('CSeq', '3'), ('Authorization', 'Digest ***')]",
        ),
        # Quoted without its colon, as a parser's error message might.
        (
            "bad header line 'Authorization Basic dXNlcjpwdw=='",
            "bad header line 'Authorization Basic ***'",
        ),
        ('Digest response="0123456789abcdef0123456789abcdef"', 'Digest response="***"'),
        (
            '<wsse:Password Type="...#PasswordDigest">tuQSp8RIu6+A==</wsse:Password>',
            '<wsse:Password Type="...#PasswordDigest">***</wsse:Password>',
        ),
        ("rtsp://admin:p@ss:w0rd@192.0.2.7/live", "rtsp://admin:***@192.0.2.7/live"),
    ],
)
@pytest.mark.usefixtures("no_secrets")
def test_credentials_in_headers_are_masked(line: str, masked: str) -> None:
    assert logs.redact(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        'WWW-Authenticate: Digest realm="bridge", qop="auth", algorithm=MD5, nonce="1:ab:cd"',
        'WWW-Authenticate: Basic realm="bridge"',
        "camera asked for Basic auth, answered 401",
        "rtsp://127.0.0.1:8554/porch/main",
    ],
)
@pytest.mark.usefixtures("no_secrets")
def test_what_is_not_a_credential_stays_readable(line: str) -> None:
    assert logs.redact(line) == line


# Passwords as people choose them: printable ASCII, unescaped where the position allows it.
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
_PASSWORDS = st.text(alphabet=_PRINTABLE, min_size=1, max_size=24)
_IN_URL = st.text(alphabet=_PRINTABLE.replace("/", ""), min_size=1, max_size=24)
_IN_QUERY = st.text(alphabet=_PRINTABLE.translate(str.maketrans("", "", "&\"'#")), min_size=1)


def _digest_response(password: str) -> str:
    ha1 = hashlib.md5(f"viewer:bridge:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(b"DESCRIBE:rtsp://127.0.0.1/porch/main").hexdigest()
    return hashlib.md5(f"{ha1}:1:ab:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()


@settings(max_examples=200, deadline=None)
@given(password=_PASSWORDS, url_password=_IN_URL, query_password=_IN_QUERY)
def test_random_passwords_never_survive_redaction(
    password: str, url_password: str, query_password: str
) -> None:
    basic = base64.b64encode(f"viewer:{password}".encode()).decode()
    response = _digest_response(password)
    cases = [
        (
            f"DESCRIBE rtsp://viewer:{url_password}@127.0.0.1:8554/porch/main RTSP/1.0",
            "DESCRIBE rtsp://viewer:***@127.0.0.1:8554/porch/main RTSP/1.0",
        ),
        (
            f"GET /snapshot.cgi?user=viewer&pwd={query_password}&res=1",
            "GET /snapshot.cgi?user=viewer&pwd=***&res=1",
        ),
        (f"set?password={query_password}", "set?password=***"),
        (f"Authorization: Basic {basic}\r\nCSeq: 2", "Authorization: Basic ***\r\nCSeq: 2"),
        (
            f"malformed header line 'Authorization Basic {basic}'",
            "malformed header line 'Authorization Basic ***'",
        ),
        (
            repr({"Authorization": f"Basic {basic}", "CSeq": "2"}),
            "{'Authorization': 'Basic ***', 'CSeq': '2'}",
        ),
        (
            f'Authorization: Digest username="viewer", response="{response}"',
            "Authorization: Digest ***",
        ),
        (
            f'Digest username="viewer", nc=00000001, response="{response}"',
            'Digest username="viewer", nc=00000001, response="***"',
        ),
    ]
    # As no_secrets does (hypothesis runs many examples in one function-scoped fixture).
    with mock.patch.object(logs, "_SECRETS", set()):
        assert [logs.redact(line) for line, _ in cases] == [masked for _, masked in cases]


async def test_a_malformed_http_request_is_one_line_without_its_bytes(
    no_secrets: None, caplog: pytest.LogCaptureFixture
) -> None:
    """What a scanner or a fuzzer on the LAN gets into the log of an ONVIF or web port."""
    server = logging.getLogger("aiohttp.server")
    server.addFilter(log_filter := MalformedHttpRequests())
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    token = base64.b64encode(b"admin:s3cret-Pass").decode()
    bad = (
        f"POST /onvif/device_service HTTP/1.1\r\nHost: x\r\nAuthorization Basic {token}\r\n"
        "Content-Type: a\r\nContent-Type: b\r\n\r\n"
    ).encode()
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(bad)
                answer = await reader.read()  # aiohttp answers 400 and closes
                writer.close()
                await writer.wait_closed()
                assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    finally:
        server.removeFilter(log_filter)
        await runner.cleanup()
    # (aiohttp's access log, which the gateway keeps at WARNING, aside)
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    lines = [r.getMessage() for r in records]
    assert lines == ["refused a malformed HTTP request from 127.0.0.1 (BadHttpMessage)"]
    assert not [r for r in records if r.exc_info]
