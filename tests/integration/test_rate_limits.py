"""Rate limits per API key and per client address, shared by every ingest replica through Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from heron_common.settings import Settings
from heron_ingest.ratelimit import client_address
from tests.support.system import Running, System, running_system, start

# Refill so slow that no token comes back during a test: exactly `burst` requests get through.
SLOW = 0.001


@pytest.fixture
async def two_replicas(settings: Settings) -> AsyncIterator[tuple[System, Running]]:
    from heron_ingest.app import create_app

    limited = replace(
        settings,
        rate_limit_per_key=SLOW,
        rate_limit_per_key_burst=6,
        rate_limit_per_address=SLOW,
        rate_limit_per_address_burst=8,
        trusted_proxy_hops=1,
    )
    async with running_system(limited, services=()) as system:
        other = await start(create_app(limited))
        try:
            yield system, other
        finally:
            await other.runner.cleanup()


async def _track(http: aiohttp.ClientSession, url: str, key: str, address: str) -> tuple[int, dict, str | None]:
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}
    async with http.post(f"{url}/v1/track", json={"event_name": "e"}, headers=headers) as r:
        return r.status, await r.json(), r.headers.get("Retry-After")


async def _project(system: System, address: str) -> str:
    # Created by the admin from its own address, so the projects' addresses start with full buckets.
    headers = {"Authorization": f"Bearer {system.settings.admin_token}", "X-Forwarded-For": address}
    async with system.http.post(f"{system.ingest.url}/v1/projects", params={"name": "p"}, headers=headers) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["api_key"]


async def test_a_keys_limit_is_shared_by_every_replica(two_replicas) -> None:
    system, other = two_replicas
    key = await _project(system, "10.0.0.100")
    urls = [system.ingest.url, other.url]
    # Each request from its own address: only the key's limit applies.
    results = [await _track(system.http, urls[i % 2], key, f"10.0.1.{i}") for i in range(12)]
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {202: 6, 429: 6}, statuses
    for status, body, retry_after in results:
        if status == 429:
            assert body["error"]["code"] == "rate_limited" and "API key" in body["error"]["message"]
            assert retry_after is not None and int(retry_after) >= 1


async def test_a_flood_from_one_project_never_refuses_another(two_replicas) -> None:
    system, other = two_replicas
    flooder = await _project(system, "10.0.0.100")
    quiet = await _project(system, "10.0.0.100")
    flood = [_track(system.http, (system.ingest.url, other.url)[i % 2], flooder, f"10.0.2.{i}") for i in range(200)]
    calm = [_track(system.http, system.ingest.url, quiet, f"10.0.3.{i}") for i in range(6)]
    results = await asyncio.gather(*flood, *calm)
    flooded = Counter(status for status, _, _ in results[:200])
    assert flooded == {202: 6, 429: 194}, flooded
    assert [status for status, _, _ in results[200:]] == [202] * 6


async def test_an_address_is_limited_whatever_key_it_uses(two_replicas) -> None:
    system, other = two_replicas
    keys = [await _project(system, "10.0.0.100") for _ in range(3)]
    statuses = Counter()
    for i in range(12):
        status, body, retry_after = await _track(
            system.http, (system.ingest.url, other.url)[i % 2], keys[i % 3], "10.9.9.9"
        )
        statuses[status] += 1
        if status == 429:
            assert body["error"]["code"] == "rate_limited" and "address" in body["error"]["message"]
            assert retry_after is not None
    assert statuses == {202: 8, 429: 4}, statuses
    # Another address is not affected, and operators' endpoints are never limited.
    assert (await _track(system.http, system.ingest.url, keys[0], "10.9.9.10"))[0] == 202
    for _ in range(10):
        async with system.http.get(f"{system.ingest.url}/healthz", headers={"X-Forwarded-For": "10.9.9.9"}) as r:
            assert r.status == 200


async def test_without_redis_requests_are_let_through(settings: Settings) -> None:
    # A limiter that cannot reach Redis must not refuse events (nothing accepted may be lost, and
    # nothing offered should be refused for a reason of ours).
    unreachable = replace(
        settings, redis_url="redis://127.0.0.1:1/0", rate_limit_per_key=SLOW, rate_limit_per_key_burst=1
    )
    async with running_system(unreachable, services=()) as system:
        _, key = await system.create_project()
        for _ in range(5):
            assert (await _track(system.http, system.ingest.url, key, "10.0.0.1"))[0] == 202


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        ("1.2.3.4", None, 0, "1.2.3.4"),
        ("1.2.3.4", "9.9.9.9", 0, "1.2.3.4"),  # not trusted: a client cannot pick its own bucket
        ("10.0.0.1", "9.9.9.9", 1, "9.9.9.9"),
        ("10.0.0.1", "6.6.6.6, 9.9.9.9, 10.0.0.2", 2, "9.9.9.9"),  # spoofed leftmost entry ignored
        ("10.0.0.1", "9.9.9.9", 2, "10.0.0.1"),  # fewer hops than trusted: the peer
        (None, None, 0, "unknown"),
    ],
)
def test_client_address(remote: str | None, forwarded: str | None, hops: int, expected: str) -> None:
    assert client_address(remote, forwarded, hops) == expected
