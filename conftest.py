"""Fixtures for every test tree (tests/ and sdk/python/tests/): real Postgres, Redis and
RabbitMQ, isolated per run and per test. They are only set up for the tests that ask for them,
so the SDK's own unit tests need none of the servers.

- one fresh database per test run (``heron_test_<random>``), dropped at the end;
- a fresh Redis key prefix and RabbitMQ name prefix per test, removed after it;
so two runs, or leftovers of a crashed one, never collide.

Every line logged during the run, here and by service processes the tests start, is copied to a
per-run file that is scanned for secrets at the end (tests/support/logscan.py); a finding fails
the run.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as redis_asyncio

from heron_common import db
from heron_common.settings import Settings
from tests.support import logscan
from tests.support.fakes import FakeSlack
from tests.support.servers import ServerURLs, locate
from tests.support.testenv import copy_database, make_settings, remove_namespace

_log_capture: Path | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    # Before any test: apps built in-process log through the same pipeline as the services.
    global _log_capture
    _log_capture = logscan.start_capture()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _log_capture is None:
        return
    lines, findings = logscan.scan_file(_log_capture)
    _log_capture.unlink(missing_ok=True)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else print
    for finding in findings:
        write(f"log scan: secret in the logs, {finding}")
    write(f"log scan: {lines} lines, {len(findings)} secrets")
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerURLs]:
    with ExitStack() as stack:
        yield locate(stack)


@pytest.fixture(scope="session")
async def template_database(servers: ServerURLs) -> AsyncIterator[str]:
    """Migrated once per run; every test gets a copy (CREATE DATABASE … TEMPLATE is cheap)."""
    parts = urlsplit(servers.postgres)
    url = urlunsplit(parts._replace(path=f"/heron_tpl_{secrets.token_hex(6)}"))
    await db.ensure_database(url)
    await db.migrate(url)
    yield url
    await db.drop_database(url)


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    url = await copy_database(template_database)
    yield url
    await db.drop_database(url)


@pytest.fixture
async def settings(servers: ServerURLs, database_url: str) -> AsyncIterator[Settings]:
    """Settings for one test: its own key and queue namespace, timings on a scale of seconds."""
    s = make_settings(servers, database_url)
    yield s
    await remove_namespace(s)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def pg(settings: Settings) -> AsyncIterator[object]:
    pool = await db.create_pool(settings.database_url, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[redis_asyncio.Redis]:
    r = redis_asyncio.Redis.from_url(settings.redis_url)
    yield r
    await r.aclose()


@pytest.fixture
async def project(pg: object) -> tuple[int, str]:
    """A project and one API key, made directly in the database."""
    from heron_common.keys import hash_key, key_hint, new_api_key

    key = new_api_key()
    project_id = await pg.fetchval("INSERT INTO projects (name) VALUES ('fixture') RETURNING id")  # type: ignore[attr-defined]
    await pg.execute(  # type: ignore[attr-defined]
        "INSERT INTO api_keys (project_id, key_hash, hint) VALUES ($1, $2, $3)",
        project_id,
        hash_key(key),
        key_hint(key),
    )
    return project_id, key
