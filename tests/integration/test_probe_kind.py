"""The detector's probe kind on frozen time, fed the prober's batched ``observations`` messages:
each result applied once however often its message comes, down continuously for the timeout opens
one incident (with ``probe.down``), any up result resolves it (``probe.up``), acknowledging, pausing
and resuming work as for every kind, and a malformed result is poison alone."""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as redis_asyncio

from heron_common import messages
from heron_common.monitors import probe as pr
from heron_common.settings import Settings
from heron_detector.core import Detector

T0 = 1_800_000_000.0


def result(monitor_id: int, project_id: int, at: float, up: bool, **extra: Any) -> dict[str, Any]:
    payload = {
        "up": up,
        "status": 200 if up else 503,
        "reason": None if up else "status 503 (expected 200 or 204)",
        "timings": {"connect": 0.001, "first_byte": 0.05, "total": 0.052},
        "prober": "p1",
        **extra,
    }
    return {"monitor_id": monitor_id, "project_id": project_id, "at": at, "payload": payload}


async def test_results_in_batches_open_and_resolve_one_incident(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project: tuple[int, str]
) -> None:
    project_id, _ = project
    config = pr.Config("https://example.com/health", interval=60, request_timeout=10, timeout=300).to_dict()
    monitor_id = await pg.fetchval(
        "INSERT INTO monitors (project_id, kind, name, service, shard, state, config)"
        " VALUES ($1, 'probe', 'API health', 'API', 0, 'new', $2) RETURNING id",
        project_id,
        config,
    )
    detector = Detector(pg, redis, None, settings)

    async def feed(*rows: dict[str, Any], twice: bool = False) -> Any:
        body = messages.encode(messages.observations_message(list(rows), rows[-1]["at"]))
        handled = await detector.handle_many(0, [body, body] if twice else [body], rows[-1]["at"])
        return handled

    async def state() -> str:
        return await pg.fetchval("SELECT state FROM monitors WHERE id = $1", monitor_id)

    # Up, then down for 4 minutes: failing, no incident; the batch delivered twice counts once.
    await feed(
        result(monitor_id, project_id, T0, True),
        *(result(monitor_id, project_id, T0 + 60 * i, False) for i in range(1, 5)),
        twice=True,
    )
    assert await state() == pr.FAILING
    assert await pg.fetchval("SELECT count(*) FROM probe_results WHERE monitor_id = $1", monitor_id) == 5
    assert await pg.fetchval("SELECT count(*) FROM incidents") == 0

    # A malformed result is poison alone; the good one beside it is applied: down for 5 minutes.
    handled = await feed(
        result(monitor_id, project_id, T0 + 330, False, status="503"), result(monitor_id, project_id, T0 + 360, False)
    )
    assert list(handled.poison) == [0]
    assert await state() == pr.DOWN
    incident = await pg.fetchrow("SELECT * FROM incidents WHERE monitor_id = $1", monitor_id)
    assert incident["kind"] == "probe" and incident["title"] == "API health is down"
    assert incident["started_at"].timestamp() == T0 + 60 and incident["opened_at"].timestamp() == T0 + 360
    assert incident["details"]["reason"] == "status 503 (expected 200 or 204)"
    assert incident["details"]["timings"]["first_byte"] == 0.05

    await detector.handle_many(
        0, [messages.encode(messages.command_message(monitor_id, project_id, "acknowledge", T0 + 370, by="me"))], T0
    )
    assert (await pg.fetchrow("SELECT * FROM incidents WHERE id = $1", incident["id"]))["acknowledged_by"] == "me"
    await feed(result(monitor_id, project_id, T0 + 420, False), result(monitor_id, project_id, T0 + 480, True))
    assert await state() == pr.UP
    resolved = await pg.fetchrow("SELECT * FROM incidents WHERE id = $1", incident["id"])
    assert resolved["resolved_at"].timestamp() == T0 + 480 and resolved["duration"] == 420

    topics = [r["routing_key"] for r in await pg.fetch("SELECT routing_key FROM outbox ORDER BY id")]
    assert topics == [
        "incident.opened.probe",
        "probe.down",
        "incident.acknowledged.probe",
        "incident.resolved.probe",
        "probe.up",
    ]

    # Paused: results kept, nothing judged; resumed: new, the pause not held against it.
    def command(action: str, at: float) -> bytes:
        return messages.encode(messages.command_message(monitor_id, project_id, action, at))

    await detector.handle_many(0, [command("pause", T0 + 500)], T0 + 500)
    await feed(*(result(monitor_id, project_id, T0 + 540 + 60 * i, False) for i in range(10)))
    assert await state() == "paused"
    await detector.handle_many(0, [command("resume", T0 + 1200)], T0 + 1200)
    assert await state() == pr.NEW
    assert await pg.fetchval("SELECT count(*) FROM incidents") == 1
