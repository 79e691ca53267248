"""The SDK against the real system: ingest and detector (their real app factories, in this process)
on the real Postgres, RabbitMQ and Redis, with the shared fixtures of the repository's conftest.py.

``heron.Client.flush()``/``close()`` block their caller until the sender thread has posted to
ingest; ingest serves on this very event loop, so they are called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

import heron
from heron_common.settings import Settings
from tests.support.system import System, running_system
from tests.support.waiting import eventually


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    # A minute of tolerance: with the suite's 0.4 s a stream with 1 s gaps would be overdue
    # 1.4 s after its last event and flip to "down" while the test is still looking.
    async with running_system(replace(settings, min_tolerance=60.0), services=("detector",)) as s:
        yield s


async def get(system: System, key: str, path: str) -> Any:
    async with system.http.get(system.ingest.url + path, headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _monitor(system: System, key: str, event_name: str, count: int) -> dict[str, Any]:
    """The project's monitor for ``event_name`` once it has ``count`` events and is up."""

    async def probe() -> list[dict[str, Any]]:
        return [m for m in await get(system, key, "/v1/monitors") if m["event_name"] == event_name]

    [monitor] = await eventually(
        probe, lambda ms: len(ms) == 1 and ms[0]["event_count"] == count and ms[0]["state"] == "up"
    )
    return monitor


async def test_client_events_reach_a_monitor_with_their_own_timestamps(system: System) -> None:
    _, key = await system.create_project("sdk-client")
    client = heron.Client(key, service="billing", environment="it", endpoint=system.ingest.url, debug=True)
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

    events = await get(system, key, f"/v1/monitors/{monitor['id']}/events")
    assert [e["metadata"] for e in events] == [
        {"seq": i, "amount": 100 + i, "currency": "EUR"} for i in range(4, -1, -1)
    ]


async def test_async_client_events_reach_a_monitor(system: System) -> None:
    _, key = await system.create_project("sdk-async")
    t0 = time.time()
    async with heron.AsyncClient(key, service="api", endpoint=system.ingest.url, debug=True) as client:
        for i in range(3):
            client.track("order.created", {"order": f"ord_{i}"}, timestamp=t0 - 2 * (2 - i))  # 2 s apart
        assert await client.flush(10.0)
        stats = client.stats()
        assert (stats.sent, stats.queued, stats.dropped) == (3, 0, 0)

    monitor = await _monitor(system, key, "order.created", 3)
    assert monitor["service"] == "api" and monitor["environment"] is None
    assert monitor["expected_interval"] == pytest.approx(2.0, abs=0.01)
    events = await get(system, key, f"/v1/monitors/{monitor['id']}/events")
    assert [e["metadata"] for e in events] == [{"order": f"ord_{i}"} for i in (2, 1, 0)]


async def _heartbeat(system: System, key: str, name: str) -> dict[str, Any]:
    async with system.http.post(
        system.ingest.url + "/v1/heartbeats",
        json={"name": name, "interval": 3600, "grace": 600},
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def test_ping_and_the_heartbeat_decorator_drive_a_real_heartbeat(system: System) -> None:
    """The SDK's ping paths are the server's: a success ping brings a heartbeat up, the decorator's
    start/fail pair takes it down with the exception as the reason, and a token works like the URL."""
    _, key = await system.create_project("sdk-heartbeat")
    hb = await _heartbeat(system, key, "nightly export")
    client = heron.Client(key, endpoint=system.ingest.url, debug=True)
    try:
        assert await asyncio.to_thread(client.ping, hb["ping_url"])
        await eventually(lambda: get(system, key, f"/v1/heartbeats/{hb['id']}"), lambda h: h["state"] == "up")

        @client.heartbeat(hb["ping_url"].rsplit("/", 1)[1])  # the bare token, against the client's endpoint
        def export() -> None:
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError):
            await asyncio.to_thread(export)
        await eventually(lambda: get(system, key, f"/v1/heartbeats/{hb['id']}"), lambda h: h["state"] == "down")
        pings = await get(system, key, f"/v1/heartbeats/{hb['id']}/pings")
        kinds = [p["kind"] for p in pings]
        assert "start" in kinds and "fail" in kinds, pings
        fail = next(p for p in pings if p["kind"] == "fail")
        assert "disk full" in (fail.get("body") or ""), fail
    finally:
        await asyncio.to_thread(client.close)
