"""The few reads only the dashboard makes (everything else goes through the API's helpers in
``read``, ``heartbeats_api``, ``triggers_api``, ``webhooks_api``…). Every one is scoped to a
project, or to monitor ids the caller already scoped.
"""

from __future__ import annotations

import asyncpg

from heron_common.monitors import heartbeat as hb
from heron_common.views import display_state

# The overview's sparkline: the last day in hourly buckets, each counted up to CAP events (an
# index range scan that stops there), so a stream of thousands of events a second costs the
# same as a quiet one; such a bucket is drawn at the cap.
SPARK_BUCKETS = 24
SPARK_SECONDS = 3600.0
SPARK_CAP = 1000


async def event_rates(
    pool: asyncpg.Pool, monitor_ids: list[int], end: float, *, max_skew: float
) -> dict[int, list[int]]:
    """Events per bucket (oldest first) of each event stream in ``monitor_ids``, up to ``end``."""
    if not monitor_ids:
        return {}
    start = end - SPARK_BUCKETS * SPARK_SECONDS
    rows = await pool.fetch(
        "SELECT m.id AS monitor_id, b.i AS bucket, ("
        "  SELECT count(*) FROM ("
        "    SELECT 1 FROM events e WHERE e.monitor_id = m.id"
        "      AND e.event_time >= to_timestamp(b.lo) AND e.event_time < to_timestamp(b.lo + $3::float8)"
        # event_time <= received_at <= event_time + skew: lets Postgres skip day partitions.
        "      AND e.received_at >= to_timestamp(b.lo) AND e.received_at < to_timestamp(b.lo + $3::float8 + $6::float8)"
        "    LIMIT $5::bigint) capped) AS n"
        " FROM unnest($1::bigint[]) AS m(id)"
        " CROSS JOIN (SELECT i, $2::float8 + i * $3::float8 AS lo FROM generate_series(0, $4::int - 1) AS g(i)) AS b",
        monitor_ids,
        start,
        SPARK_SECONDS,
        SPARK_BUCKETS,
        SPARK_CAP,
        max_skew,
    )
    counts = {monitor_id: [0] * SPARK_BUCKETS for monitor_id in monitor_ids}
    for row in rows:
        counts[row["monitor_id"]][row["bucket"]] = row["n"]
    return counts


async def ping_rates(pool: asyncpg.Pool, monitor_ids: list[int], end: float) -> dict[int, list[int]]:
    """Pings per bucket (oldest first) of each heartbeat in ``monitor_ids`` (heartbeats ping at
    most once a minute or so: a plain count)."""
    if not monitor_ids:
        return {}
    start = end - SPARK_BUCKETS * SPARK_SECONDS
    rows = await pool.fetch(
        "SELECT monitor_id, floor((extract(epoch FROM received_at) - $2::float8) / $3::float8)::int AS bucket,"
        " count(*) AS n FROM pings WHERE monitor_id = ANY($1::bigint[]) AND received_at >= to_timestamp($2::float8)"
        " AND received_at < to_timestamp($4::float8) GROUP BY 1, 2",
        monitor_ids,
        start,
        SPARK_SECONDS,
        end,
    )
    counts = {monitor_id: [0] * SPARK_BUCKETS for monitor_id in monitor_ids}
    for row in rows:
        if 0 <= row["bucket"] < SPARK_BUCKETS:
            counts[row["monitor_id"]][row["bucket"]] = row["n"]
    return counts


async def finished_ping_times(pool: asyncpg.Pool, monitor_id: int, limit: int) -> list[float]:
    """When a heartbeat's newest finished runs (not ``start`` pings) came, newest first."""
    rows = await pool.fetch(
        "SELECT extract(epoch FROM received_at)::float8 AS at FROM pings"
        " WHERE monitor_id = $1 AND kind <> $2 ORDER BY id DESC LIMIT $3",
        monitor_id,
        hb.START,
        limit,
    )
    return [r["at"] for r in rows]


async def open_acknowledged(pool: asyncpg.Pool, project_id: int) -> dict[int, bool]:
    """For each monitor of the project with an open incident: whether it is acknowledged."""
    rows = await pool.fetch(
        "SELECT monitor_id, acknowledged_at IS NOT NULL AS acknowledged FROM incidents"
        " WHERE project_id = $1 AND resolved_at IS NULL",
        project_id,
    )
    return {r["monitor_id"]: r["acknowledged"] for r in rows}


async def labels(pool: asyncpg.Pool, project_id: int) -> dict[str, list[str]]:
    """The environments, services and kinds a project's monitors use (the incident filters)."""
    rows = await pool.fetch(
        "SELECT DISTINCT environment, service, kind FROM monitors WHERE project_id = $1", project_id
    )
    return {
        "environment": sorted({r["environment"] for r in rows if r["environment"]}),
        "service": sorted({r["service"] for r in rows if r["service"]}),
        "kind": sorted({r["kind"] for r in rows}),
    }


async def projects(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Every project with its monitor and open-incident counts (the admin's project picker)."""
    return await pool.fetch(
        "SELECT p.id, p.name, p.created_at,"
        " (SELECT count(*) FROM monitors m WHERE m.project_id = p.id) AS monitors,"
        " (SELECT count(*) FROM incidents i WHERE i.project_id = p.id AND i.resolved_at IS NULL) AS open_incidents"
        " FROM projects p ORDER BY p.id"
    )


async def badge_monitor(pool: asyncpg.Pool, monitor_id: int) -> asyncpg.Record | None:
    """A monitor for its badge (the badge token, checked first, is the credential)."""
    return await pool.fetchrow(
        "SELECT m.*, (SELECT acknowledged_at IS NOT NULL FROM incidents i"
        "  WHERE i.monitor_id = m.id AND i.resolved_at IS NULL) AS acknowledged"
        " FROM monitors m WHERE m.id = $1",
        monitor_id,
    )


async def service_states(pool: asyncpg.Pool, project_id: int, service: str | None = None) -> dict[str, dict[str, int]]:
    """How many monitors of each service of the project (or of ``service`` alone) are in each
    display state, by service name. Monitors without a service belong to none."""
    rows = await pool.fetch(
        "SELECT m.service, m.state, EXISTS (SELECT 1 FROM incidents i WHERE i.monitor_id = m.id"
        "   AND i.resolved_at IS NULL AND i.acknowledged_at IS NOT NULL) AS acknowledged, count(*) AS n"
        " FROM monitors m WHERE m.project_id = $1 AND m.service <> '' AND ($2::text IS NULL OR m.service = $2)"
        " GROUP BY 1, 2, 3",
        project_id,
        service,
    )
    states: dict[str, dict[str, int]] = {}
    for row in rows:
        shown = display_state(row["state"], row["acknowledged"])
        counts = states.setdefault(row["service"], {})
        counts[shown] = counts.get(shown, 0) + row["n"]
    return states
