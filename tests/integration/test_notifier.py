"""The notifier's ledger and Slack delivery, with a controlled clock and a real fake Slack."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from heron_common import messages
from heron_common.clock import FrozenClock
from heron_common.outbound import GuardedSession
from heron_common.settings import Settings
from heron_notifier import ledger
from heron_notifier.worker import DeliveryWorker
from tests.support.fakes import FakeSlack

T0 = 1_800_000_000.0


def alert(project_id: int, topic: str = "incident.opened") -> dict:
    data = {
        "incident": {
            "id": 1,
            "monitor_id": 1,
            "kind": "event",
            "event_name": "payment.completed",
            "service": "payments",
            "environment": "production",
            "started_at": "2027-01-15T08:00:00Z",
            "opened_at": "2027-01-15T08:18:00Z",
            "resolved_at": None,
            "duration": None,
            "expected_interval": 180.0,
        },
        "project": {"id": project_id, "name": "fixture"},
    }
    return messages.alert_message(topic, messages.new_id(), T0, data)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
async def worker(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, clock
) -> AsyncIterator[DeliveryWorker]:
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=settings.delivery_timeout)
    yield DeliveryWorker(pg, redis, http, settings, clock)
    await http.close()


async def record(pool: asyncpg.Pool, message: dict, now: float) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await ledger.record_alert(conn, message, now, {ledger.SLACK: 0.0, ledger.WEBHOOK: 0.0})


async def with_slack(pg: asyncpg.Pool, project_id: int, url: str) -> None:
    await pg.execute("UPDATE projects SET slack_webhook_url = $1 WHERE id = $2", url, project_id)


async def delivery(pg: asyncpg.Pool, project_id: int) -> asyncpg.Record:
    return await pg.fetchrow("SELECT * FROM deliveries WHERE project_id = $1", project_id)


async def attempts(pg: asyncpg.Pool, delivery_id: int) -> list[asyncpg.Record]:
    return await pg.fetch("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id", delivery_id)


async def test_alert_becomes_one_delivery_even_if_redelivered(pg, project, slack: FakeSlack) -> None:
    project_id, _ = project
    await with_slack(pg, project_id, slack.url)
    message = alert(project_id)
    assert await record(pg, message, T0) == 1
    assert await record(pg, message, T0) == 0
    assert await pg.fetchval("SELECT count(*) FROM deliveries WHERE project_id = $1", project_id) == 1


async def test_slack_message_has_the_published_fields(pg, project, slack: FakeSlack, worker: DeliveryWorker) -> None:
    project_id, _ = project
    await with_slack(pg, project_id, slack.url)
    await record(pg, alert(project_id), T0)
    assert await worker.step()
    [received] = slack.received
    body = received.json
    assert body["blocks"][0]["text"]["text"] == "🚨 Heron alert"
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields == [
        "*Event*\npayment.completed",
        "*Last seen*\n18 minutes ago",
        "*Expected interval*\n~3 minutes",
        "*Service*\npayments",
        "*Environment*\nproduction",
    ]
    assert body["text"].startswith("🚨 Heron alert")
    row = await delivery(pg, project_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("succeeded", 1, 200)
    assert not await worker.step()  # nothing left to do


async def test_transient_failures_are_retried_with_backoff(pg, project, slack: FakeSlack, worker, clock) -> None:
    project_id, _ = project
    await with_slack(pg, project_id, slack.url)
    slack.script = [(500, {}, "oops"), (429, {"Retry-After": "7"}, "rate_limited")]
    await record(pg, alert(project_id), T0)

    assert await worker.step()  # 500
    row = await delivery(pg, project_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 500)
    assert row["next_attempt_at"].timestamp() == pytest.approx(T0 + worker.settings.slack_retry_schedule[1])

    clock.advance(worker.settings.slack_retry_schedule[1])
    await redis_pace_reset(worker, slack)
    assert await worker.step()  # 429 with Retry-After: 7
    row = await delivery(pg, project_id)
    assert (row["attempts"], row["last_status_code"]) == (2, 429)
    assert row["next_attempt_at"].timestamp() == pytest.approx(clock.now() + 7)

    clock.advance(6.9)
    assert not await worker.step()  # Retry-After is honoured: not due yet
    clock.advance(0.2)
    await redis_pace_reset(worker, slack)
    assert await worker.step()
    row = await delivery(pg, project_id)
    assert (row["status"], row["attempts"]) == ("succeeded", 3)
    assert len(slack.received) == 1
    recorded = await attempts(pg, row["id"])
    assert [a["status_code"] for a in recorded] == [500, 429, 200]
    assert recorded[0]["response_body"] == "oops"


async def redis_pace_reset(worker: DeliveryWorker, slack: FakeSlack) -> None:
    """Pacing (one message a second per Slack target) is wall-clock in Redis; the test moves past it."""
    keys = [k async for k in worker.redis.scan_iter(match=f"{worker.settings.redis_prefix}:pace:*")]
    if keys:
        await worker.redis.delete(*keys)


@pytest.mark.parametrize("status", [404, 410])
async def test_permanent_failures_stop_and_are_recorded(pg, project, slack: FakeSlack, worker, clock, status) -> None:
    project_id, _ = project
    await with_slack(pg, project_id, slack.url)
    slack.script = [(status, {}, "no_service")]
    await record(pg, alert(project_id), T0)
    assert await worker.step()
    row = await delivery(pg, project_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("failed", 1, status)
    assert "permanent" in row["last_error"]
    clock.advance(3600)
    assert not await worker.step()
    assert slack.attempts == 1


async def test_gives_up_after_the_schedule(pg, project, slack: FakeSlack, worker, clock) -> None:
    project_id, _ = project
    await with_slack(pg, project_id, slack.url)
    slack.script = [(503, {}, "down")] * 10
    await record(pg, alert(project_id), T0)
    for _ in range(len(worker.settings.slack_retry_schedule)):
        await redis_pace_reset(worker, slack)
        assert await worker.step()
        clock.advance(3600)
    row = await delivery(pg, project_id)
    assert (row["status"], row["attempts"]) == ("failed", len(worker.settings.slack_retry_schedule))
    assert not await worker.step()


async def test_two_notifiers_never_send_the_same_attempt(pg, redis, settings, project, slack: FakeSlack, clock) -> None:
    project_id, _ = project
    await with_slack(pg, project_id, slack.url)
    await record(pg, alert(project_id), T0)
    sessions = [GuardedSession(settings.outbound_allow_cidrs, timeout=2) for _ in range(2)]
    try:
        a, b = (DeliveryWorker(pg, redis, s, settings, clock) for s in sessions)
        import asyncio

        await asyncio.gather(a.step(), b.step(), a.step(), b.step())
    finally:
        for s in sessions:
            await s.close()
    assert slack.attempts == 1
    assert (await delivery(pg, project_id))["attempts"] == 1


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/services/x",
        "http://169.254.169.254/services/x",
        "http://[::ffff:127.0.0.1]:9/services/x",
        "http://localhost:9/services/x",
    ],
)
async def test_private_targets_are_refused_unless_allow_listed(pg, redis, settings, project, clock, target) -> None:
    project_id, _ = project
    strict = replace(settings, outbound_allow_cidrs=(ipaddress.ip_network("192.0.2.0/24"),))
    await with_slack(pg, project_id, target)
    await record(pg, alert(project_id), T0)
    http = GuardedSession(strict.outbound_allow_cidrs, timeout=2)
    try:
        assert await DeliveryWorker(pg, redis, http, strict, clock).step()
    finally:
        await http.close()
    row = await delivery(pg, project_id)
    [attempt] = await attempts(pg, row["id"])
    assert attempt["status_code"] is None
    assert "refused" in attempt["error"]
