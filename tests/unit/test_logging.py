"""The logging pipeline: redaction, JSON, levels, for structlog's lines and the standard library's,
and the end-of-run scanner that proves no secret reached a log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from heron_common.keys import new_admin_token, new_api_key
from heron_common.logging import configure_logging, get_logger, redact_text
from heron_common.settings import Settings
from heron_common.webhooks import new_secret
from tests.support import logscan

# Made at import time, before the test configures logging: the module-level pattern of services.
EARLY = get_logger("early", component="test")

KEY = new_api_key()
ADMIN = new_admin_token()
SECRET = new_secret()
SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdefghijklmnopqrstuvwx"


@pytest.fixture
def logs() -> Iterator[Callable[..., io.StringIO]]:
    """configure_logging into a buffer; the run's own configuration is put back afterwards."""

    def configure(level: str = "INFO", json: bool | None = True) -> io.StringIO:
        out = io.StringIO()
        configure_logging(level, json, stream=out, copy_path="")
        return out

    yield configure
    logscan.configure_for_tests()


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_logger_made_before_configuration_follows_it(logs: Callable[..., io.StringIO]) -> None:
    out = logs("WARNING")
    EARLY.info("below the level")
    EARLY.warning("visible", api_key=KEY, note=f"sent Authorization: Bearer {KEY}")
    (line,) = lines(out)
    assert line["event"] == "visible" and line["level"] == "warning"
    assert line["logger"] == "early" and line["component"] == "test"
    assert line["api_key"] == "***"
    assert KEY not in out.getvalue()


def test_a_bound_logger_keeps_redacting(logs: Callable[..., io.StringIO]) -> None:
    out = logs()
    get_logger("bound").bind(admin_token=ADMIN, signing_secret=SECRET).info("rotated", detail=f"new {SECRET}")
    assert ADMIN not in out.getvalue() and SECRET not in out.getvalue()
    (line,) = lines(out)
    assert line["admin_token"] == "***" and line["signing_secret"] == "***" and line["detail"] == "new sec_***"


def test_values_of_any_type_are_redacted(logs: Callable[..., io.StringIO]) -> None:
    out = logs()
    get_logger("types").info(
        "sent",
        error=ValueError(f"bad {KEY}"),
        raw=f"Authorization: Bearer {KEY}".encode(),
        nested={"headers": {"Authorization": "Basic abc"}, "targets": [SLACK]},
        tokens=3,
    )
    (line,) = lines(out)
    assert KEY not in out.getvalue() and "T0AAAAAAA" not in out.getvalue()
    assert line["nested"] == {"headers": {"Authorization": "***"}, "targets": ["https://hooks.slack.com/***"]}
    assert line["tokens"] == 3  # a count under a secret-sounding name is not a secret


def test_exception_text_is_redacted(logs: Callable[..., io.StringIO]) -> None:
    out = logs()
    try:
        raise ValueError(f"cannot post to {SLACK} with {KEY}")
    except ValueError:
        get_logger("boom").exception("failed")
    (line,) = lines(out)
    assert "ValueError: cannot post to https://hooks.slack.com/***" in line["exception"]
    assert KEY not in out.getvalue() and "T0AAAAAAA" not in out.getvalue()


def test_standard_library_lines_are_json_and_redacted(logs: Callable[..., io.StringIO]) -> None:
    out = logs()
    logging.getLogger("aio_pika.robust").warning("reconnecting to %s", "amqp://guest:hunter2@127.0.0.1:5672/")
    logging.getLogger("asyncpg").error("password=hunter2 rejected", exc_info=RuntimeError(f"dsn with {KEY}"))
    first, second = lines(out)
    assert first["logger"] == "aio_pika.robust" and first["level"] == "warning"
    assert first["event"] == "reconnecting to amqp://guest:***@127.0.0.1:5672/"
    assert second["event"] == "password=*** rejected" and "heron_***" in second["exception"]
    assert "hunter2" not in out.getvalue() and KEY not in out.getvalue()


def test_off_a_terminal_standard_library_lines_are_json_too(logs: Callable[..., io.StringIO]) -> None:
    out = logs(json=None)  # a StringIO is not a terminal
    logging.getLogger("aiohttp.server").error("plain")
    get_logger("ours").info("structured")
    assert [(line["logger"], line["event"]) for line in lines(out)] == [
        ("aiohttp.server", "plain"),
        ("ours", "structured"),
    ]


def test_level_filters_structlog_and_library_lines(logs: Callable[..., io.StringIO]) -> None:
    level = Settings.from_env({"HERON_LOG_LEVEL": "error"}).log_level
    out = logs(level)
    get_logger("ours").warning("dropped")
    logging.getLogger("aiormq").warning("dropped")
    get_logger("ours").error("kept")
    logging.getLogger("aiormq").error("kept too")
    assert [line["event"] for line in lines(out)] == ["kept", "kept too"]


def test_libraries_stay_at_warning_when_services_debug(logs: Callable[..., io.StringIO]) -> None:
    out = logs("DEBUG")
    get_logger("ours").debug("kept")
    logging.getLogger("aiormq.connection").info("library chatter")
    logging.getLogger("aiormq.connection").warning("library warning")
    assert [line["event"] for line in lines(out)] == ["kept", "library warning"]


async def test_aiohttp_parse_error_does_not_echo_the_authorization_header(logs: Callable[..., io.StringIO]) -> None:
    out = logs()
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # A control character makes the header line malformed: aiohttp logs it, quoted.
        writer.write(f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\x01\r\n\r\n".encode())
        response = await reader.read()  # aiohttp logs the error before it answers and closes
        writer.close()
        await writer.wait_closed()
    finally:
        await runner.cleanup()
    assert response.startswith(b"HTTP/1.0 400")
    parse_errors = [line for line in lines(out) if line["logger"] == "aiohttp.server"]
    assert parse_errors and "Authorization: ***" in parse_errors[0]["exception"]
    assert KEY not in out.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {KEY}.", "key heron_***."),
        (f"token {ADMIN}", "token heronadm_***"),
        (f"secret {SECRET}", "secret sec_***"),
        ("whsec_" + SECRET[4:], "whsec_***"),
        ("Authorization: Bearer abc.def", "Authorization: ***"),
        ("b'authorization: Basic dXNlcjpwYXNz\\r\\n'", "b'authorization: ***\\r\\n'"),
        ("header Bearer abc.def", "header Bearer ***"),
        ("GET /v1/track?api_key=abc&x=1", "GET /v1/track?api_key=***&x=1"),
        ("{'password': 'hunter2'}", "{'password': '***'}"),
        ("signing_secret=abc, next", "signing_secret=***, next"),
        ("X-Api-Key: abc", "X-Api-Key: ***"),
        ("webhook_secret_overlap=86400", "webhook_secret_overlap=86400"),
        (SLACK, "https://hooks.slack.com/***"),
        ("http://127.0.0.1:8123/hooks/heron?token=x", "http://127.0.0.1:8123/***"),
        ("url='https://example.com/a/b' sent", "url='https://example.com/***' sent"),
        ("postgresql://heron:pw@db:5432/heron", "postgresql://heron:***@db:5432/heron"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("amqps://user:p%40ss@mq/vhost", "amqps://user:***@mq/vhost"),
        ("https://user:pw@example.com", "https://user:***@example.com"),
        # What must stay readable.
        ("heron_test_0123456789ab", "heron_test_0123456789ab"),
        ("key heron_abcd…wxyz", "key heron_abcd…wxyz"),
        ("https://example.com", "https://example.com"),
        ("postgresql://127.0.0.1:5432/heron", "postgresql://127.0.0.1:5432/heron"),
        ("queue heron.detector.shard.3", "queue heron.detector.shard.3"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# -- the end-of-run scanner ------------------------------------------------------------------


def test_scanner_finds_planted_secrets(tmp_path: Path) -> None:
    planted = tmp_path / "raw.jsonl"
    planted.write_text(
        "\n".join(
            [
                json.dumps({"event": "clean line"}),
                json.dumps({"event": "leak", "key": KEY}),
                json.dumps({"event": "leak", "exception": f"posting to {SLACK}"}),
                json.dumps({"event": f"signed with {SECRET}"}),
                json.dumps({"event": f"admin {ADMIN}"}),
                json.dumps({"event": "Authorization: Bearer test-admin-token"}),
                json.dumps({"event": "amqp://guest:guest@127.0.0.1/"}),
                json.dumps({"event": "posted to http://127.0.0.1:9/services/T000/B000/XXXX"}),
            ]
        )
        + "\n"
    )
    count, findings = logscan.scan_file(planted)
    assert count == 8
    found = {(f.line, f.pattern) for f in findings}
    assert {
        (2, "api key"),
        (3, "slack webhook url"),
        (4, "webhook secret"),
        (5, "admin token"),
        (6, "bearer credential"),
        (6, "known secret 'test-admin-token'"),
        (7, "password in url"),
        (8, "known secret '/services/T000/B000/XXXX'"),
    } <= found
    assert 1 not in {f.line for f in findings}
    assert all(KEY not in str(f) and SECRET not in str(f) for f in findings)  # the report leaks nothing


def test_what_the_pipeline_writes_scans_clean(tmp_path: Path, logs: Callable[..., io.StringIO]) -> None:
    copy = tmp_path / "copy.jsonl"
    configure_logging("DEBUG", True, stream=io.StringIO(), copy_path=str(copy))
    log = get_logger("leaky")
    log.info("everything at once", api_key=KEY, detail=f"{ADMIN} {SECRET} {SLACK} Bearer test-admin-token")
    log.info("received", url="http://127.0.0.1:9/hooks/heron", amqp="amqp://guest:guest@127.0.0.1/")
    logging.getLogger("aiohttp.server").error("raw b'Authorization: Bearer %s\\r\\n'", KEY)
    assert logscan.scan_file(copy) == (3, [])
