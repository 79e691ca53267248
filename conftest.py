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

import ipaddress
import math
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as redis_asyncio

from heron_common import bus, db
from heron_common.settings import Settings
from tests.support import logscan
from tests.support.fakes import FakeSlack
from tests.support.servers import ServerURLs, locate

_log_capture: Path | None = None
# At the tests' sub-second scale any budget this large puts the rate model's alarm probability at
# its 0.5 cap: the deadline is the mean gap + min_tolerance (docs/detection.md).
TEST_FALSE_ALARMS_PER_YEAR = 1e9


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
    template = urlsplit(template_database).path.lstrip("/")
    url = urlunsplit(urlsplit(template_database)._replace(path=f"/heron_test_{secrets.token_hex(6)}"))
    await db.create_database_from(url, template)
    yield url
    await db.drop_database(url)


@pytest.fixture
async def settings(servers: ServerURLs, database_url: str) -> AsyncIterator[Settings]:
    """Settings for one test: its own key and queue namespace, timings on a scale of seconds."""
    tag = f"heron-test-{secrets.token_hex(5)}"
    s = Settings(
        database_url=database_url,
        redis_url=servers.redis,
        amqp_url=servers.amqp,
        redis_prefix=tag,
        amqp_prefix=tag,
        shards=4,
        admin_token="test-admin-token",
        http_host="127.0.0.1",
        key_cache_seconds=0.5,
        learning_threshold=3,
        min_tolerance=0.4,
        # Streams learned at a 0.2-s scale from 3 events: the rate model degenerates to
        # "mean gap + min_tolerance" (no young-stream cap; a budget so large that the per-silence
        # alarm probability sits at its 0.5 cap). test_detector_rate.py runs the real defaults.
        false_alarms_per_year=TEST_FALSE_ALARMS_PER_YEAR,
        young_clusters_per_hour=math.inf,
        min_interval=0.05,
        scan_interval=0.05,
        slack_retry_schedule=(0.0, 0.05, 0.1, 0.2),
        delivery_timeout=2.0,
        delivery_poll_interval=0.05,
        outbound_allow_cidrs=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        log_json=True,
    )
    yield s
    await bus.delete_topology(s.amqp_url, bus.Names(s.amqp_prefix), s.shards)
    r = redis_asyncio.Redis.from_url(s.redis_url)
    try:
        keys = [k async for k in r.scan_iter(match=f"{tag}:*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


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
