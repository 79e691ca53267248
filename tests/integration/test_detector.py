"""The detector's steps against real Postgres and Redis, with time handed in (no waiting)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from heron_common import messages
from heron_common.messages import TrackedEvent
from heron_common.monitors import rate
from heron_common.settings import Settings
from heron_detector.core import Detector

T0 = 1_800_000_000.0


def events_body(project_id: int, times: list[float], name: str = "job.done", received: float | None = None) -> bytes:
    evs = [TrackedEvent(project_id, name, "svc", "prod", t, received or t, {"n": i}) for i, t in enumerate(times)]
    return messages.encode(messages.events_message(evs, now=T0))


def tick_body(shard: int, at: float) -> bytes:
    return messages.encode(messages.tick_message(shard, at))


def shard_of(project_id: int, settings: Settings, name: str = "job.done") -> int:
    return messages.stream_shard(project_id, name, "svc", "prod", settings.shards)


@pytest.fixture
def detector(pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings) -> Detector:
    return Detector(pg, redis, None, settings)


async def learned(detector: Detector, project_id: int, shard: int) -> None:
    """Three events one second apart: the stream is learned (deadline ≈ last + 1 s + tolerance)."""
    for t in (T0, T0 + 1, T0 + 2):
        await detector.handle(shard, events_body(project_id, [t]), now=t)


async def open_incidents(pg: asyncpg.Pool, project_id: int) -> list[asyncpg.Record]:
    return await pg.fetch("SELECT * FROM incidents WHERE project_id = $1 AND resolved_at IS NULL", project_id)


async def test_redelivered_message_counts_once(detector: Detector, pg: asyncpg.Pool, project, settings) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    body = events_body(project_id, [T0, T0 + 1, T0 + 2])
    first = await detector.handle(shard, body, now=T0 + 2)
    again = await detector.handle(shard, body, now=T0 + 2)
    assert (first.events, first.duplicates) == (3, 0)
    assert (again.events, again.duplicates) == (0, 1)
    monitor = await pg.fetchrow("SELECT * FROM monitors WHERE project_id = $1", project_id)
    assert monitor["event_count"] == 3
    assert await pg.fetchval("SELECT count(*) FROM events WHERE monitor_id = $1", monitor["id"]) == 3


async def test_no_alert_while_learning(detector: Detector, pg: asyncpg.Pool, project, settings) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    await detector.handle(shard, events_body(project_id, [T0, T0 + 1]), now=T0 + 1)
    await detector.handle(shard, tick_body(shard, T0 + 3600), now=T0 + 3600)
    monitor = await pg.fetchrow("SELECT * FROM monitors WHERE project_id = $1", project_id)
    assert monitor["state"] == "new" and monitor["deadline"] is None
    assert await open_incidents(pg, project_id) == []


async def test_silence_opens_and_event_resolves_with_real_downtime(
    detector: Detector, pg: asyncpg.Pool, project, settings
) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    await learned(detector, project_id, shard)
    deadline = (await pg.fetchrow("SELECT deadline FROM monitors WHERE project_id = $1", project_id))["deadline"]
    assert deadline.timestamp() > T0 + 3

    # A tick before the deadline does nothing; one after it opens exactly one incident.
    assert (await detector.handle(shard, tick_body(shard, deadline.timestamp() - 0.01), now=T0)).opened == 0
    assert (await detector.handle(shard, tick_body(shard, T0 + 10), now=T0)).opened == 1
    assert (await detector.handle(shard, tick_body(shard, T0 + 20), now=T0)).opened == 0
    [incident] = await open_incidents(pg, project_id)
    assert incident["started_at"].timestamp() == T0 + 2  # the last event before the silence
    assert incident["opened_at"].timestamp() == T0 + 10
    outbox = await pg.fetch("SELECT * FROM outbox WHERE alert_id = $1", incident["alert_id"])
    assert [r["routing_key"] for r in outbox] == ["incident.opened.event"]

    # The event resumes at T0 + 62: downtime is the real silence, 60 s.
    await detector.handle(shard, events_body(project_id, [T0 + 62]), now=T0 + 62)
    row = await pg.fetchrow("SELECT * FROM incidents WHERE id = $1", incident["id"])
    assert row["resolved_at"].timestamp() == T0 + 62
    assert row["duration"] == 60
    monitor = await pg.fetchrow("SELECT * FROM monitors WHERE project_id = $1", project_id)
    assert monitor["state"] == "up"
    flips = await pg.fetch("SELECT from_state, to_state FROM flips WHERE monitor_id = $1 ORDER BY id", monitor["id"])
    assert [(f["from_state"], f["to_state"]) for f in flips] == [("new", "up"), ("up", "down"), ("down", "up")]
    resolved = await pg.fetchval(
        "SELECT message FROM outbox WHERE routing_key = 'incident.resolved.event' AND alert_id = $1",
        row["resolve_alert_id"],
    )
    assert resolved["data"]["incident"]["duration"] == 60
    # The outage gap was not learned: the expected interval is still about a second.
    assert rate.expected_interval(rate.from_dict(monitor["cadence"]), detector.params) < 10


async def test_two_detectors_racing_open_one_incident(pg: asyncpg.Pool, redis, settings: Settings, project) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    one, two = Detector(pg, redis, None, settings), Detector(pg, redis, None, settings)
    await learned(one, project_id, shard)
    results = await asyncio.gather(*(d.scan(shard, T0 + 30) for d in (one, two, one, two)))
    assert sum(opened for _, opened in results) == 1
    assert len(await open_incidents(pg, project_id)) == 1
    assert (
        await pg.fetchval(
            "SELECT count(*) FROM outbox WHERE routing_key = 'incident.opened.event'"
            " AND message->'data'->'project'->>'id' = $1",
            str(project_id),
        )
        == 1
    )


async def test_redis_emptied_rebuilds_without_false_alerts(
    detector: Detector, pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project
) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    await learned(detector, project_id, shard)
    # Everything hot is gone (only this test's keys: the Redis server is shared).
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
    assert keys
    await redis.delete(*keys)

    # Not yet due: the rebuilt index holds the monitor but nothing opens.
    assert (await detector.handle(shard, tick_body(shard, T0 + 2.5), now=T0 + 2.5)).opened == 0
    assert await open_incidents(pg, project_id) == []
    # Due: exactly one incident, found through the rebuilt index.
    assert (await detector.handle(shard, tick_body(shard, T0 + 30), now=T0 + 30)).opened == 1


async def test_backlog_is_judged_by_the_watermark_not_the_wall_clock(
    detector: Detector, pg: asyncpg.Pool, project, settings: Settings
) -> None:
    """A detector that was down catches up on a queue of events and ticks: the wall clock is
    hours later, but every tick only says how far the queue had got, so nothing is overdue."""
    project_id, _ = project
    shard = shard_of(project_id, settings)
    wall_clock = T0 + 7200
    for i in range(12):
        t = T0 + i
        await detector.handle(shard, events_body(project_id, [t]), now=wall_clock)
        await detector.handle(shard, tick_body(shard, t + 0.5), now=wall_clock)
    assert await open_incidents(pg, project_id) == []
    monitor = await pg.fetchrow("SELECT * FROM monitors WHERE project_id = $1", project_id)
    assert monitor["state"] == "up" and monitor["event_count"] == 12


async def test_out_of_order_and_duplicate_events_never_move_last_seen_back(
    detector: Detector, pg: asyncpg.Pool, project, settings: Settings
) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    await detector.handle(shard, events_body(project_id, [T0 + 5, T0 + 1, T0 + 5]), now=T0 + 5)
    monitor = await pg.fetchrow("SELECT * FROM monitors WHERE project_id = $1", project_id)
    assert monitor["last_seen"].timestamp() == T0 + 5
    assert monitor["event_count"] == 3


async def test_poison_message_is_refused(detector: Detector, settings: Settings) -> None:
    with pytest.raises(messages.MessageError):
        await detector.handle(0, b"not json", now=T0)
    with pytest.raises(messages.MessageError):
        await detector.handle(0, messages.encode({"type": "events", "id": "x", "events": [[1, 2]]}), now=T0)


async def test_events_of_a_deleted_project_are_dropped_not_stuck(detector: Detector, pg: asyncpg.Pool) -> None:
    result = await detector.handle(0, events_body(987654321, [T0]), now=T0)
    assert result.events == 0
    assert await pg.fetchval("SELECT count(*) FROM monitors WHERE project_id = 987654321") == 0


async def test_raw_events_past_retention_are_dropped_by_partition(pg: asyncpg.Pool) -> None:
    from heron_detector.store import maintain

    async with pg.acquire() as conn:
        await conn.execute(
            "CREATE TABLE events_20000101 PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2000-01-02')"
        )
        dropped = await maintain(conn, retention_days=7)
        names = {r["relname"] for r in await conn.fetch("SELECT relname FROM pg_class WHERE relname ~ '^events_2'")}
    assert dropped == ["events_20000101"]
    assert "events_20000101" not in names
    # Today's and the next three days' partitions exist.
    today = datetime.now(UTC).date()
    assert {f"events_{today + timedelta(days=d):%Y%m%d}" for d in range(4)} <= names


async def test_heartbeat_pings_past_retention_are_deleted(pg: asyncpg.Pool, project) -> None:
    from heron_detector.store import maintain

    project_id, _ = project
    monitor_id = await pg.fetchval(
        "INSERT INTO monitors (project_id, kind, name, shard) VALUES ($1, 'heartbeat', 'job', 0) RETURNING id",
        project_id,
    )
    for age in (30, 1):
        await pg.execute(
            "INSERT INTO pings (monitor_id, project_id, received_at, kind)"
            " VALUES ($1, $2, now() - make_interval(days => $3), 'success')",
            monitor_id,
            project_id,
            age,
        )
    async with pg.acquire() as conn:
        await maintain(conn, retention_days=7)
    assert await pg.fetchval("SELECT count(*) FROM pings") == 1


async def test_a_batch_is_applied_in_queue_order_with_ticks_and_poison_in_place(
    detector: Detector, pg: asyncpg.Pool, project, settings: Settings
) -> None:
    project_id, _ = project
    shard = shard_of(project_id, settings)
    learn = events_body(project_id, [T0, T0 + 1, T0 + 2])
    batch = [
        learn,
        learn,  # redelivered within the same batch: skipped
        tick_body(shard, T0 + 30),  # sees the three events before it: one incident
        b"garbage",
        events_body(project_id, [T0 + 40]),  # after the tick: resolves it
    ]
    handled = await detector.handle_many(shard, batch, now=T0 + 40)
    assert (handled.events, handled.duplicates, handled.opened) == (4, 1, 1)
    assert list(handled.poison) == [3]
    [incident] = await pg.fetch("SELECT * FROM incidents WHERE project_id = $1", project_id)
    assert incident["duration"] == 38  # from the last event before the gap (T0+2) to T0+40


async def test_a_deadline_the_index_missed_after_commit_is_restored_before_the_next_scan(
    detector: Detector, pg: asyncpg.Pool, project, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis failed between the commit and the index update: the events are committed (a retry
    would skip them as processed), so the shard's index is rebuilt from Postgres before its next
    scan, and the silence is still caught."""
    project_id, _ = project
    shard = shard_of(project_id, settings)
    await detector.handle(shard, tick_body(shard, T0 - 1), now=T0 - 1)  # the index is built (and empty)

    real_update = detector.index.update

    async def redis_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(detector.index, "update", redis_down)
    await learned(detector, project_id, shard)
    monkeypatch.setattr(detector.index, "update", real_update)
    deadline = (await pg.fetchval("SELECT deadline FROM monitors WHERE project_id = $1", project_id)).timestamp()

    await detector.handle(shard, tick_body(shard, deadline + 0.01), now=deadline + 0.01)
    assert len(await open_incidents(pg, project_id)) == 1
