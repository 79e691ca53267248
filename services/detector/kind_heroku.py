"""The detector's side of Heroku apps (``heron_common.monitors.heroku`` holds the rules).

The prober's checks arrive as observations ``{"checked_at", "snapshot"}`` or ``{"checked_at",
"error"}`` on the monitor's shard. Each is folded in inside the transaction that locked the row:
the new state and ``data`` (latest snapshot, open problems, error) are saved, flips recorded
(``record_flip``: the incident opens with the first problem and resolves with the last), and each
thing to tell people is one outbox row of the kind's own topic (``heroku.dyno_crashed`` …) carrying
the app and its Slack channel. Applied once per message id (``observations.py``), so a redelivered
check tells nothing twice.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from heron_common.db import to_dt
from heron_common.logging import get_logger
from heron_common.messages import MessageError
from heron_common.monitors import heroku as hk
from heron_detector import incidents, kinds

log = get_logger("detector.heroku")


def _load(row: asyncpg.Record) -> hk.Heroku:
    return hk.load(row["state"], row["data"] or {})


def app_view(row: asyncpg.Record, state: str) -> dict[str, Any]:
    """What every ``heroku.*`` alert says about the app."""
    config = row["config"] or {}
    return {
        "id": row["id"],
        "name": row["name"],
        "app_name": config.get("app_name"),
        "slack_channel": config.get("slack_channel"),
        "check_interval": config.get("check_interval"),
        "state": state,
    }


async def _apply(conn: asyncpg.Connection, row: asyncpg.Record, step: hk.Step, now: float) -> kinds.Outcome:
    h = step.heroku
    await conn.execute(
        "UPDATE monitors SET state = $2, data = $3, last_seen = coalesce($4, last_seen), updated_at = now()"
        " WHERE id = $1",
        row["id"],
        h.state,
        hk.to_data(h),
        to_dt(h.checked_at),
    )
    outcome = kinds.Outcome(None)
    for flip in step.flips:
        outcome.outbox_ids.extend(await incidents.record_flip(conn, row, flip, now))
    if step.notices:
        base = {
            "heroku": app_view(row, h.state),
            "project": {"id": row["project_id"], "name": row["project_name"]},
            "checked_at": hk.iso(h.checked_at),
        }
        for notice in step.notices:
            data = {**base, **notice.data}
            outcome.outbox_ids.append(await incidents.outbox(conn, notice.topic, None, uuid.uuid4(), now, data))
    return outcome


async def due(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    """Heroku apps keep no deadline: the prober's checks drive them (Heron's own outages never page)."""
    return kinds.Outcome(None)


async def observe(
    conn: asyncpg.Connection, row: asyncpg.Record, payload: dict[str, Any], at: float, ctx: kinds.Context
) -> kinds.Outcome:
    try:
        obs = hk.parse_observation(payload)
    except ValueError as exc:
        raise MessageError(f"malformed heroku observation: {exc}") from exc
    if payload.get("app_name") != (row["config"] or {}).get("app_name"):
        return kinds.Outcome(None)  # a check of the app watched before a change of app_name
    before = _load(row)
    step = hk.observe(before, obs)
    if step.heroku == before and not step.flips:
        return kinds.Outcome(None)  # paused, or a check overtaken by a newer one
    return await _apply(conn, row, step, obs.checked_at)


async def resume(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    resumed, flip = hk.resume(_load(row), now)
    return await _apply(conn, row, hk.Step(resumed, [flip]), now)


async def configure(
    conn: asyncpg.Connection, row: asyncpg.Record, args: dict[str, Any], now: float, ctx: kinds.Context
) -> kinds.Outcome:
    """New settings, checked by the API (``{"config": {...}}``, whole). Another app name starts
    the monitor afresh; one another monitor of the project already watches is refused here too
    (the API checks first; this covers a race between two changes)."""
    try:
        old = hk.Config.from_dict(row["config"])
        new = hk.parse_config(args.get("config") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"malformed heroku configure: {exc}") from exc
    if new.app_name != old.app_name:
        taken = await conn.fetchval(
            "SELECT 1 FROM monitors WHERE project_id = $1 AND kind = $2 AND config ->> 'app_name' = $3 AND id <> $4",
            row["project_id"],
            hk.KIND,
            new.app_name,
            row["id"],
        )
        if taken:
            log.warning("app already watched by another monitor; change ignored", monitor_id=row["id"])
            return kinds.Outcome(None)
    await conn.execute(
        "UPDATE monitors SET config = $2, name = $3, updated_at = now() WHERE id = $1",
        row["id"],
        new.to_dict(),
        new.app_name,
    )
    step = hk.reconfigure(_load(row), old, new, now)
    if not step.flips and step.heroku == _load(row):
        return kinds.Outcome(None)
    row = await kinds.lock(conn, row["id"], row["project_id"])  # the new name and config (locked already)
    assert row is not None
    return await _apply(conn, row, step, now)


kinds.register(hk.KIND, kinds.Kind(due=due, observe=observe, resume=resume, configure=configure))
