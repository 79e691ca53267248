"""Chaos fixtures: the test's settings with every server reached through a TCP proxy the test
controls, and a webhook receiver."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from heron_common.settings import Settings
from tests.chaos import broker
from tests.support.chaos import LINES, MIN_TOLERANCE
from tests.support.fakes import FakeReceiver
from tests.support.tcpproxy import TcpProxy


@dataclasses.dataclass
class Proxies:
    postgres: TcpProxy
    redis: TcpProxy
    rabbitmq: TcpProxy


@pytest.fixture
async def proxies(settings: Settings) -> AsyncIterator[Proxies]:
    found = Proxies(
        await TcpProxy.for_url(settings.database_url, 5432).start(),
        await TcpProxy.for_url(settings.redis_url, 6379).start(),
        await TcpProxy.for_url(settings.amqp_url, 5672).start(),
    )
    yield found
    for proxy in (found.postgres, found.redis, found.rabbitmq):
        await proxy.stop()


def chaos_settings(settings: Settings, proxies: Proxies | None = None) -> Settings:
    """Timings for chaos: a tolerance a short fault stays within, keys cached across a Postgres
    outage (ingest then needs no database to accept events). The shard count stays the fixture's:
    its teardown deletes exactly those queues."""
    s = dataclasses.replace(
        settings,
        min_tolerance=MIN_TOLERANCE,
        scan_interval=0.2,
        key_cache_seconds=300.0,
        webhook_retry_schedule=(0.0, 0.2, 0.5, 1.0),
    )
    if proxies is None:
        return s
    return dataclasses.replace(
        s,
        database_url=proxies.postgres.url(s.database_url),
        redis_url=proxies.redis.url(s.redis_url),
        amqp_url=proxies.rabbitmq.url(s.amqp_url),
    )


@pytest.fixture
async def receiver() -> AsyncIterator[FakeReceiver]:
    fake = await FakeReceiver().start()
    yield fake
    await fake.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("chaos figures")
        for line in LINES:
            terminalreporter.write_line(line)


def pytest_sessionfinish() -> None:
    broker.ensure_started()  # whatever happened, a broker this run stopped is started again
