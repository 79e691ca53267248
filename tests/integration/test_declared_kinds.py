"""The machinery every declared kind plugs into (heron_detector.kinds), exercised with a toy kind
registered by the test: observations applied once per message id, the scan calling ``due`` with
the blind-window hook, and the generic commands (pause, resume, acknowledge, resolve) — so a new
kind only has to supply its rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from heron_common import messages
from heron_common.db import to_dt
from heron_common.monitors import ACKNOWLEDGE, OPEN, RESOLVE, Flip
from heron_common.settings import Settings
from heron_detector import incidents, kinds
from heron_detector.core import Detector

T0 = 1_800_000_000.0
TIMEOUT = 10.0


async def _save(conn: asyncpg.Connection, row: asyncpg.Record, state: str, deadline: float | None) -> None:
    await conn.execute(
        "UPDATE monitors SET state = $2, deadline = $3, updated_at = now() WHERE id = $1",
        row["id"],
        state,
        to_dt(deadline),
    )


async def _flip(
    conn: asyncpg.Connection, row: asyncpg.Record, to: str, at: float, action: str | None, by: str | None = None
) -> list[int]:
    return await incidents.record_flip(conn, row, Flip(row["state"], to, at, f"toy {to}", incident=action), at, by=by)


async def toy_observe(conn, row, payload: dict[str, Any], at: float, ctx: kinds.Context) -> kinds.Outcome:
    """A check-in keeps the toy up for TIMEOUT seconds; one after it went down resolves it."""
    sent = await _flip(conn, row, "up", at, RESOLVE if row["state"] == "down" else None)
    await _save(conn, row, "up", at + TIMEOUT)
    return kinds.Outcome(at + TIMEOUT, sent)


async def toy_due(conn, row, now: float, ctx: kinds.Context) -> kinds.Outcome:
    deadline = row["deadline"].timestamp()
    if now < deadline or row["state"] != "up":
        return kinds.Outcome(deadline if row["state"] == "up" else None)
    sent = await _flip(conn, row, "down", now, OPEN)
    await _save(conn, row, "down", None)
    return kinds.Outcome(None, sent)


async def toy_resume(conn, row, now: float, ctx: kinds.Context) -> kinds.Outcome:
    await _flip(conn, row, "new", now, None)
    await _save(conn, row, "new", None)
    return kinds.Outcome(None)


async def toy_acknowledge(conn, row, now: float, ctx: kinds.Context) -> kinds.Outcome:
    sent = await _flip(conn, row, "acknowledged", now, ACKNOWLEDGE, ctx.by)
    await _save(conn, row, "acknowledged", None)
    return kinds.Outcome(None, sent)


async def toy_resolve(conn, row, now: float, ctx: kinds.Context) -> kinds.Outcome:
    sent = await _flip(conn, row, "new", now, RESOLVE)
    await _save(conn, row, "new", None)
    return kinds.Outcome(None, sent)


@pytest.fixture
def toy() -> Iterator[str]:
    kinds.register("toy", kinds.Kind(toy_due, toy_observe, toy_resume, toy_acknowledge, toy_resolve))
    yield "toy"
    kinds.KINDS.pop("toy", None)


async def _toy_monitor(pg: asyncpg.Pool, project_id: int) -> int:
    await pg.execute("ALTER TABLE monitors DROP CONSTRAINT IF EXISTS monitors_state_check")  # the toy's own states
    return await pg.fetchval(
        "INSERT INTO monitors (project_id, kind, name, shard) VALUES ($1, 'toy', 'nightly', 0) RETURNING id", project_id
    )


async def test_a_declared_kind_gets_observations_scans_and_commands(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project, toy: str
) -> None:
    project_id, _ = project
    monitor_id = await _toy_monitor(pg, project_id)
    detector = Detector(pg, redis, None, settings)

    def observation(at: float) -> bytes:
        return messages.encode(messages.observation_message(monitor_id, project_id, at, {"ping": True}))

    def tick(at: float) -> bytes:
        return messages.encode(messages.tick_message(0, at))

    def command(action: str, at: float, **args: Any) -> bytes:
        return messages.encode(messages.command_message(monitor_id, project_id, action, at, by="tester", args=args))

    async def state() -> str:
        return await pg.fetchval("SELECT state FROM monitors WHERE id = $1", monitor_id)

    ping = observation(T0)
    await detector.handle_many(0, [ping], T0)
    await detector.handle_many(0, [ping], T0)  # redelivered: applied once
    assert await state() == "up"
    assert await pg.fetchval("SELECT count(*) FROM flips WHERE monitor_id = $1", monitor_id) == 1

    await detector.handle_many(0, [tick(T0 + TIMEOUT - 1)], T0 + TIMEOUT)
    assert await state() == "up"
    await detector.handle_many(0, [tick(T0 + TIMEOUT + 1)], T0 + TIMEOUT + 1)
    assert await state() == "down"
    incident = await pg.fetchrow("SELECT * FROM incidents WHERE monitor_id = $1", monitor_id)
    assert incident["kind"] == "toy" and incident["title"] == "nightly is down" and incident["resolved_at"] is None

    handled = await detector.handle_many(0, [command("acknowledge", T0 + 20)], T0 + 20)
    assert not handled.poison
    assert await state() == "acknowledged"
    acked = await pg.fetchrow("SELECT * FROM incidents WHERE id = $1", incident["id"])
    assert acked["acknowledged_by"] == "tester"

    await detector.handle_many(0, [command("resolve", T0 + 30)], T0 + 30)
    resolved = await pg.fetchrow("SELECT * FROM incidents WHERE id = $1", incident["id"])
    assert resolved["resolved_at"] is not None and await state() == "new"

    await detector.handle_many(0, [command("pause", T0 + 40)], T0 + 40)
    assert await state() == "paused"
    assert await pg.fetchval("SELECT deadline FROM monitors WHERE id = $1", monitor_id) is None
    await detector.handle_many(0, [command("resume", T0 + 50)], T0 + 50)
    assert await state() == "new"

    topics = [r["routing_key"] for r in await pg.fetch("SELECT routing_key FROM outbox ORDER BY id")]
    assert topics == ["incident.opened.toy", "incident.acknowledged.toy", "incident.resolved.toy"]


async def test_a_kind_without_a_hook_makes_the_command_poison_not_a_stall(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project
) -> None:
    project_id, _ = project
    kinds.register("bare", kinds.Kind(toy_due))
    try:
        await pg.execute("ALTER TABLE monitors DROP CONSTRAINT IF EXISTS monitors_state_check")
        monitor_id = await pg.fetchval(
            "INSERT INTO monitors (project_id, kind, name, shard, state) VALUES ($1, 'bare', 'x', 0, 'paused')"
            " RETURNING id",
            project_id,
        )
        detector = Detector(pg, redis, None, settings)
        body = messages.encode(messages.command_message(monitor_id, project_id, "resume", T0))
        after = messages.encode(messages.tick_message(0, T0))
        handled = await detector.handle_many(0, [body, after], T0)
        assert list(handled.poison) == [0]  # the resume is dead-lettered; the tick after it still ran
    finally:
        kinds.KINDS.pop("bare", None)


async def test_a_run_of_observations_commits_together_and_isolates_the_bad_one(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project, toy: str
) -> None:
    """Observations gather into one transaction; one that cannot be applied (its kind takes none)
    is split off as poison and the others of the run are still applied."""
    project_id, _ = project
    first = await _toy_monitor(pg, project_id)
    second = await pg.fetchval(
        "INSERT INTO monitors (project_id, kind, name, shard) VALUES ($1, 'toy', 'hourly', 0) RETURNING id", project_id
    )
    kinds.register("bare", kinds.Kind(toy_due))
    try:
        bare = await pg.fetchval(
            "INSERT INTO monitors (project_id, kind, name, shard) VALUES ($1, 'bare', 'x', 0) RETURNING id", project_id
        )
        detector = Detector(pg, redis, None, settings)
        bodies = [
            messages.encode(messages.observation_message(monitor, project_id, T0, {}))
            for monitor in (first, bare, second)
        ]
        handled = await detector.handle_many(0, bodies, T0)
        assert list(handled.poison) == [1]
        states = {r["id"]: r["state"] for r in await pg.fetch("SELECT id, state FROM monitors")}
        assert states[first] == states[second] == "up" and states[bare] == "new"
    finally:
        kinds.KINDS.pop("bare", None)
