"""Heron's own outages never page: blind windows are recorded by the ticker and stepped over by the
scan, while a stream that really stopped is still detected (time handed in, no waiting)."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis_asyncio

from heron_common.presence import INGEST_STALE, beat_ingest_ready
from heron_common.settings import Settings
from heron_detector.blindness import BlindWatch, tick_gap_threshold, windows_since
from heron_detector.core import Detector
from tests.integration.test_detector import T0, events_body, learned, open_incidents, shard_of, tick_body


async def test_regular_ticks_record_no_window(pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings) -> None:
    watch = BlindWatch(pg, redis, settings)
    now = T0
    for _ in range(5):
        assert await watch.before_round(now) is None
        await watch.after_round(now)
        now += settings.scan_interval
    assert await windows_since(pg, 0.0) == []  # type: ignore[arg-type]


async def test_a_gap_in_ticks_is_recorded_before_the_next_round(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings
) -> None:
    watch = BlindWatch(pg, redis, settings)
    await watch.after_round(T0)
    gap = tick_gap_threshold(settings) + 20.0  # the broker was down: no round could be published
    assert await watch.before_round(T0 + gap) == (T0, T0 + gap)
    # The round failed again (still down): the same window grows instead of a second one appearing.
    assert await watch.before_round(T0 + gap + 5) == (T0, T0 + gap + 5)
    await watch.after_round(T0 + gap + 5)
    assert await watch.before_round(T0 + gap + 6) is None
    assert await windows_since(pg, 0.0) == [(T0, T0 + gap + 5)]  # type: ignore[arg-type]
    reason = await pg.fetchval("SELECT reason FROM blind_windows")
    assert "no tick was published" in reason


async def test_no_ingest_able_to_publish_is_a_window(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings
) -> None:
    watch = BlindWatch(pg, redis, settings)
    # Never any ingest (a detector on its own): nothing to say.
    assert await watch.before_round(T0) is None
    await watch.after_round(T0)
    await beat_ingest_ready(redis, settings.redis_prefix, "ingest-a", T0)
    assert await watch.before_round(T0 + 1) is None
    await watch.after_round(T0 + 1)
    # Every replica went quiet (crashed, or its broker connection is down).
    late = T0 + INGEST_STALE + 1
    assert await watch.before_round(late) == (T0, late)
    reason = await pg.fetchval("SELECT reason FROM blind_windows")
    assert "no ingest replica" in reason


async def test_a_stream_whose_event_fell_in_a_window_does_not_page(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project
) -> None:
    project_id, _ = project
    detector = Detector(pg, redis, None, settings)
    shard = shard_of(project_id, settings)
    await learned(detector, project_id, shard)  # events at T0, T0+1, T0+2: one a second
    raw_deadline = (await pg.fetchval("SELECT deadline FROM monitors WHERE project_id = $1", project_id)).timestamp()

    # Heron was blind over the moment the next event was due (its sender got 503s, and dropped it).
    watch = BlindWatch(pg, redis, settings)
    await watch.after_round(T0 + 2)
    back = T0 + 2 + tick_gap_threshold(settings) + 1
    await watch.before_round(back)
    await watch.after_round(back)

    # The first tick after recovery is past the raw deadline: it must not open an incident.
    assert back > raw_deadline
    await detector.handle(shard, tick_body(shard, back), now=back)
    assert await open_incidents(pg, project_id) == []
    moved = (await pg.fetchval("SELECT deadline FROM monitors WHERE project_id = $1", project_id)).timestamp()
    assert moved > back

    # The stream keeps its rhythm after recovery: still no incident, and none later either.
    await detector.handle(shard, events_body(project_id, [back + 0.5]), now=back + 0.5)
    await detector.handle(shard, tick_body(shard, back + 1.0), now=back + 1.0)
    assert await open_incidents(pg, project_id) == []


async def test_a_stream_that_really_stopped_is_still_detected_after_a_window(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project
) -> None:
    project_id, _ = project
    detector = Detector(pg, redis, None, settings)
    shard = shard_of(project_id, settings)
    await learned(detector, project_id, shard)
    watch = BlindWatch(pg, redis, settings)
    await watch.after_round(T0 + 2)
    back = T0 + 2 + tick_gap_threshold(settings) + 1
    await watch.before_round(back)
    await watch.after_round(back)
    await detector.handle(shard, tick_body(shard, back), now=back)
    assert await open_incidents(pg, project_id) == []

    moved = (await pg.fetchval("SELECT deadline FROM monitors WHERE project_id = $1", project_id)).timestamp()
    await detector.handle(shard, tick_body(shard, moved + 0.01), now=moved + 0.01)
    [incident] = await open_incidents(pg, project_id)
    assert incident["started_at"].timestamp() == T0 + 2  # the real silence, from the last event


async def test_a_window_that_ended_before_the_silence_changes_nothing(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project
) -> None:
    project_id, _ = project
    detector = Detector(pg, redis, None, settings)
    shard = shard_of(project_id, settings)
    watch = BlindWatch(pg, redis, settings)
    await watch.after_round(T0 - 100)
    await watch.before_round(T0 - 50)  # blind long before the stream's last event
    await learned(detector, project_id, shard)
    deadline = (await pg.fetchval("SELECT deadline FROM monitors WHERE project_id = $1", project_id)).timestamp()
    await detector.handle(shard, tick_body(shard, deadline + 0.01), now=deadline + 0.01)
    assert len(await open_incidents(pg, project_id)) == 1
