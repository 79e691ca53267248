"""The rate model in the detector, on real Postgres and Redis, with time handed in (no waiting).

The rest of the suite runs the model degenerated to "mean gap + min_tolerance" (conftest.py: the
0.2-s scale of the end-to-end tests). Here the detector runs the production defaults — one false
alarm per stream per year, young streams capped at 10 clusters an hour, a 60-s floor — over days
of simulated traffic handed in as messages, as the shard consumer would deliver them.
"""

from __future__ import annotations

import random
from dataclasses import replace

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from heron_common import messages
from heron_common.messages import TrackedEvent
from heron_common.monitors import rate
from heron_common.monitors.rate import RateParams
from heron_common.settings import Settings
from heron_common.views import monitor_view
from heron_detector.core import Detector
from heron_notifier import slack

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
NAME = "payment.completed"
DEFAULTS = RateParams()


def events_body(project_id: int, times: list[float]) -> bytes:
    evs = [TrackedEvent(project_id, NAME, "svc", "prod", t, t, {}) for t in times]
    return messages.encode(messages.events_message(evs, now=times[-1]))


def tick_body(shard: int, at: float) -> bytes:
    return messages.encode(messages.tick_message(shard, at))


@pytest.fixture
def production(settings: Settings) -> Settings:
    """The suite's servers and namespaces, with the rate model's production defaults."""
    return replace(
        settings,
        min_tolerance=DEFAULTS.min_tolerance,
        learning_threshold=DEFAULTS.learning_threshold,
        false_alarms_per_year=DEFAULTS.false_alarms_per_year,
        young_clusters_per_hour=DEFAULTS.young_clusters_per_hour,
    )


@pytest.fixture
def detector(pg: asyncpg.Pool, redis: redis_asyncio.Redis, production: Settings) -> Detector:
    return Detector(pg, redis, None, production)


def poisson(rng: random.Random, per_second: float, start: float, end: float) -> list[float]:
    out, t = [], start
    while (t := t + rng.expovariate(per_second)) < end:
        out.append(t)
    return out


async def feed(detector: Detector, shard: int, project_id: int, times: list[float], rng: random.Random) -> None:
    """The events in messages of 1 to 300 events, each handled as a run of its own."""
    i = 0
    while i < len(times):
        n = rng.choice([1, 3, 40, 300])
        batch = times[i : i + n]
        await detector.handle(shard, events_body(project_id, batch), now=batch[-1])
        i += n


async def test_production_budget_through_the_detector(
    detector: Detector, pg: asyncpg.Pool, project, production: Settings
) -> None:
    """Two days of a stream averaging one event a minute: the deadline is the calibrated one (one
    false alarm a year: about 13 minutes of silence), the silence opens one incident whose alert
    explains itself, and the stored events replay into the state the detector keeps."""
    project_id, _ = project
    shard = messages.stream_shard(project_id, NAME, "svc", "prod", production.shards)
    rng = random.Random(9)
    times = poisson(rng, 1 / MIN, T0, T0 + 2 * DAY)
    await feed(detector, shard, project_id, times, rng)

    row = await pg.fetchrow("SELECT * FROM monitors WHERE project_id = $1", project_id)
    assert row["state"] == "up" and row["event_count"] == len(times)
    assert row["cadence"]["v"] == rate.SNAPSHOT_VERSION
    stored = rate.from_dict(row["cadence"])
    deadline = row["deadline"].timestamp()
    # The model itself, fed the same events at once: the same deadline (to the snapshots' rounding).
    pure = rate.observe_many(rate.Rate(), times, DEFAULTS)
    assert deadline == pytest.approx(rate.deadline(pure, DEFAULTS), abs=1.0)
    quiet = deadline - times[-1]
    assert 8 * MIN < quiet < 20 * MIN  # -ln(1/525,960) ≈ 13.2 mean gaps; the profile adds noise
    # The stored events (what a rebuild would replay) give back the state the detector keeps.
    replayed = rate.observe_many(
        rate.Rate(),
        [
            r["t"]
            for r in await pg.fetch(
                "SELECT extract(epoch FROM event_time)::float8 AS t FROM events WHERE monitor_id = $1", row["id"]
            )
        ],
        DEFAULTS,
    )
    assert replayed.gaps == stored.gaps and replayed.last_seen == pytest.approx(stored.last_seen, abs=1e-5)
    assert replayed.b == pytest.approx(stored.b, rel=1e-6) and replayed.span == pytest.approx(stored.span, rel=1e-6)
    assert rate.deadline(replayed, DEFAULTS) == pytest.approx(deadline, abs=1.0)

    # The API explains the deadline from the same model.
    view = monitor_view(row, detector.params, times[-1] + 5 * MIN)
    assert view["detection"]["model"] == "rate" and view["detection"]["quiet_for"] == pytest.approx(300, abs=1)
    assert view["detection"]["expected_events"] == pytest.approx(5, rel=0.3)
    assert len(view["detection"]["profile"]["hour_of_day"]) == 24

    # Quiet, but not improbably so: nothing. Past the deadline: one incident, explained.
    assert (await detector.handle(shard, tick_body(shard, deadline - 1), now=deadline - 1)).opened == 0
    assert (await detector.handle(shard, tick_body(shard, deadline + 5), now=deadline + 5)).opened == 1
    incident = await pg.fetchrow("SELECT * FROM incidents WHERE monitor_id = $1", row["id"])
    silence = incident["details"]["silence"]
    assert silence["model"] == "rate" and silence["quiet_for"] == pytest.approx(quiet + 5, abs=0.1)
    assert silence["expected_interval"] == pytest.approx(MIN, rel=0.2)
    assert silence["expected_events"] == pytest.approx(quiet / MIN, rel=0.3)
    assert silence["alarm_probability"] == pytest.approx(silence["expected_interval"] / (365.25 * DAY), rel=0.01)
    assert silence["silence_probability"] <= silence["alarm_probability"]
    assert incident["expected_interval"] == pytest.approx(silence["expected_interval"], rel=1e-3)
    message = await pg.fetchval("SELECT message FROM outbox WHERE alert_id = $1", incident["alert_id"])
    assert message["data"]["incident"]["details"]["silence"] == silence
    text = slack.message("incident.opened", message["data"])["text"]
    assert "Chance of this silence: 1 in " in text and "(learned rate; alerts below 1 in " in text
    assert "Normally by now: ~" in text and "after the last event" in text


async def test_a_young_stream_is_tolerant_at_the_production_budget(
    detector: Detector, pg: asyncpg.Pool, project, production: Settings
) -> None:
    """Three events a minute apart end learning, but three events are little evidence: the
    deadline is hours away, not a minute (the test settings' degenerate model would say 2 minutes)."""
    project_id, _ = project
    shard = messages.stream_shard(project_id, NAME, "svc", "prod", production.shards)
    await detector.handle(shard, events_body(project_id, [T0, T0 + MIN, T0 + 2 * MIN]), now=T0 + 2 * MIN)
    row = await pg.fetchrow("SELECT state, deadline FROM monitors WHERE project_id = $1", project_id)
    assert row["state"] == "up" and row["deadline"].timestamp() - (T0 + 2 * MIN) > 2 * HOUR
    assert (await detector.handle(shard, tick_body(shard, T0 + HOUR), now=T0 + HOUR)).opened == 0


async def test_a_monitor_holding_a_v1_cadence_snapshot_is_processed(
    detector: Detector, pg: asyncpg.Pool, redis: redis_asyncio.Redis, project, production: Settings
) -> None:
    """A row written before the rate model (v1: mean/σ) keeps working: its events are folded into
    a young rate state, it stays up with a tolerant deadline, and it is saved as v3."""
    project_id, _ = project
    shard = messages.stream_shard(project_id, NAME, "svc", "prod", production.shards)
    v1 = {"v": 1, "count": 40, "last_seen": T0, "intervals": 39, "mean": 300.0, "var": 300.0**2, "peak": 900.0}
    monitor_id = await pg.fetchval(
        "INSERT INTO monitors (project_id, event_name, service, environment, shard, state, event_count, last_seen,"
        " cadence, deadline) VALUES ($1, $2, 'svc', 'prod', $3, 'up', 40, to_timestamp($4), $5,"
        " to_timestamp($4 + 1500)) RETURNING id",
        project_id,
        NAME,
        shard,
        T0,
        v1,
    )
    # A tick past the old cadence deadline, before any event: the scan finds the row due (the index
    # is built from monitors.deadline) and judges it by the migrated state, tolerant: the index
    # gets the new, later deadline.
    assert (await detector.handle(shard, tick_body(shard, T0 + 1600), now=T0 + 1600)).opened == 0
    key = f"{production.redis_prefix}:{{shard:{shard}}}:deadlines"
    assert await redis.zscore(key, str(monitor_id)) > T0 + 2 * HOUR
    rng = random.Random(3)
    times = poisson(rng, 1 / (5 * MIN), T0 + 10, T0 + DAY)
    await feed(detector, shard, project_id, times, rng)
    row = await pg.fetchrow("SELECT * FROM monitors WHERE id = $1", monitor_id)
    assert row["state"] == "up" and row["event_count"] == 40 + len(times)
    assert row["cadence"]["v"] == rate.SNAPSHOT_VERSION and row["cadence"]["count"] == 40 + len(times)
    assert await pg.fetchval("SELECT count(*) FROM incidents WHERE monitor_id = $1", monitor_id) == 0
    # Re-taught within a day: the deadline is the calibrated one for a 5-minute stream (~1 h), not days.
    allowed = row["deadline"].timestamp() - times[-1]
    assert 30 * MIN < allowed < 3 * HOUR
