"""The SDK against the real system: ingest and detector (their real app factories, in this process)
on the real Postgres, RabbitMQ and Redis.

Self-contained on purpose: ``tests/conftest.py`` does not apply under ``sdk/python/tests`` and the
``tests`` package is not importable when this file is run on its own, so the few helpers needed
(isolated settings, starting the apps, polling) are below, in the shape of ``tests/conftest.py`` and
``tests/support``. Everything this module creates is removed at the end: its database
(``heron_sdk_it_<random>``), its RabbitMQ queues and exchanges, its Redis keys.

``heron.Client.flush()``/``close()`` block their caller until the sender thread has posted to
ingest; ingest serves on this very event loop, so they are called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import redis.asyncio as redis_asyncio
from aiohttp import web

import heron
from heron_common import bus, db
from heron_common.settings import Settings

T = TypeVar("T")

ADMIN_TOKEN = "sdk-it-admin-token"


def _server_url(name: str, default: str) -> str:
    env = os.environ
    return env.get(f"HERON_TEST_{name}_URL", env.get(f"HERON_{name}_URL", default))


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Poll another party's state with a deadline (as tests/support/waiting.py)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > give_up:
            raise AssertionError(f"condition not reached within {timeout} s; last value: {value!r}")
        await asyncio.sleep(0.02)


@dataclass
class System:
    settings: Settings
    ingest_url: str
    http: aiohttp.ClientSession

    async def create_project(self, name: str) -> tuple[int, str]:
        async with self.http.post(
            f"{self.ingest_url}/v1/projects",
            params={"name": name},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            body = await resp.json()
        return body["project_id"], body["api_key"]

    async def get(self, key: str, path: str) -> Any:
        async with self.http.get(f"{self.ingest_url}{path}", headers={"Authorization": f"Bearer {key}"}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def settings() -> AsyncIterator[Settings]:
    """A fresh migrated database and a private Redis/RabbitMQ namespace (shape of tests/conftest.py)."""
    postgres = _server_url("DATABASE", "postgresql://postgres@127.0.0.1:5432/postgres")
    tag = secrets.token_hex(5)
    database_url = urlunsplit(urlsplit(postgres)._replace(path=f"/heron_sdk_it_{tag}"))
    prefix = f"heron-sdk-it-{tag}"
    s = Settings(
        database_url=database_url,
        redis_url=_server_url("REDIS", "redis://127.0.0.1:6379/0"),
        amqp_url=_server_url("AMQP", "amqp://guest:guest@127.0.0.1:5672/"),
        redis_prefix=prefix,
        amqp_prefix=prefix,
        shards=4,
        admin_token=ADMIN_TOKEN,
        http_host="127.0.0.1",
        key_cache_seconds=0.5,
        learning_threshold=3,
        # tests/conftest.py uses 0.4 s; a stream with 1 s gaps would then be overdue 1.4 s after its
        # last event and flip to "down" while the test is still looking. A minute keeps it "up".
        min_tolerance=60.0,
        scan_interval=0.05,
        delivery_timeout=2.0,
        delivery_poll_interval=0.05,
        outbound_allow_cidrs=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        log_json=True,
    )
    await db.ensure_database(database_url)
    try:
        await db.migrate(database_url)
        yield s
    finally:
        try:
            await bus.delete_topology(s.amqp_url, bus.Names(s.amqp_prefix), s.shards)
        finally:
            r = redis_asyncio.Redis.from_url(s.redis_url)
            try:
                keys = [k async for k in r.scan_iter(match=f"{prefix}:*", count=1000)]
                if keys:
                    await r.delete(*keys)
            finally:
                await r.aclose()
                await db.drop_database(database_url)


@pytest.fixture(scope="module")
async def system(settings: Settings) -> AsyncIterator[System]:
    """Ingest and detector from their real app factories, on ephemeral loopback ports."""
    from heron_detector.app import create_app as detector_app
    from heron_ingest.app import create_app as ingest_app

    runners: list[web.AppRunner] = []
    http = aiohttp.ClientSession()
    try:
        ingest, ingest_url = await _serve(ingest_app(settings))
        runners.append(ingest)
        detector, _ = await _serve(detector_app(settings))
        runners.append(detector)
        yield System(settings, ingest_url, http)
    finally:
        await http.close()
        for runner in reversed(runners):
            await runner.cleanup()


async def _monitor(system: System, key: str, event_name: str, count: int) -> dict[str, Any]:
    """The project's monitor for ``event_name`` once it has ``count`` events and is up."""

    async def probe() -> list[dict[str, Any]]:
        return [m for m in await system.get(key, "/v1/monitors") if m["event_name"] == event_name]

    [monitor] = await eventually(
        probe, lambda ms: len(ms) == 1 and ms[0]["event_count"] == count and ms[0]["state"] == "up"
    )
    return monitor


async def test_client_events_reach_a_monitor_with_their_own_timestamps(system: System) -> None:
    _, key = await system.create_project("sdk-client")
    client = heron.Client(key, service="billing", environment="it", endpoint=system.ingest_url, debug=True)
    try:
        t0 = time.time()
        times = [t0 - 4 + i for i in range(5)]  # 1 s apart, the newest now; tracked back to back
        for i, ts in enumerate(times):
            client.track("invoice.paid", {"seq": i, "amount": 100 + i, "currency": "EUR"}, timestamp=ts)
        assert await asyncio.to_thread(client.flush, 10.0)
        stats = client.stats()
        assert (stats.sent, stats.queued, stats.dropped, stats.failed_requests) == (5, 0, 0, 0)
    finally:
        await asyncio.to_thread(client.close, 5.0)

    monitor = await _monitor(system, key, "invoice.paid", 5)
    assert (monitor["service"], monitor["environment"], monitor["kind"]) == ("billing", "it", "event")
    # Learned from the SDK's timestamps: batching did not squeeze the 1 s gaps together.
    assert monitor["expected_interval"] == pytest.approx(1.0, abs=0.01)
    assert datetime.fromisoformat(monitor["last_seen"].replace("Z", "+00:00")).timestamp() == pytest.approx(
        times[-1], abs=0.001
    )

    events = await system.get(key, f"/v1/monitors/{monitor['id']}/events")
    assert [e["metadata"] for e in events] == [
        {"seq": i, "amount": 100 + i, "currency": "EUR"} for i in range(4, -1, -1)
    ]


async def test_async_client_events_reach_a_monitor(system: System) -> None:
    _, key = await system.create_project("sdk-async")
    t0 = time.time()
    async with heron.AsyncClient(key, service="api", endpoint=system.ingest_url, debug=True) as client:
        for i in range(3):
            client.track("order.created", {"order": f"ord_{i}"}, timestamp=t0 - 2 * (2 - i))  # 2 s apart
        assert await client.flush(10.0)
        stats = client.stats()
        assert (stats.sent, stats.queued, stats.dropped) == (3, 0, 0)

    monitor = await _monitor(system, key, "order.created", 3)
    assert monitor["service"] == "api" and monitor["environment"] is None
    assert monitor["expected_interval"] == pytest.approx(2.0, abs=0.01)
    events = await system.get(key, f"/v1/monitors/{monitor['id']}/events")
    assert [e["metadata"] for e in events] == [{"order": f"ord_{i}"} for i in (2, 1, 0)]
