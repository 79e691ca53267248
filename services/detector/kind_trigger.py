"""The detector's side of on-call triggers (``heron_common.monitors.trigger``).

Trigger calls (``/triggers/{id}/alert|acknowledge|resolve|checkin``) arrive as observations
``{"action", "body", "by"}`` on the trigger's shard; a liveness trigger's timeout arrives through
the scan (``due``); the generic incident and monitor commands reach ``acknowledge``/``resolve``/
``resume``/``configure``. Every flip that changes the incident also writes the kind's own topic
(``trigger.alerting`` …) beside the ``incident.*`` alert, in the same transaction.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from heron_common import blind
from heron_common.db import to_dt, to_ts
from heron_common.logging import get_logger
from heron_common.messages import MessageError
from heron_common.monitors import Flip
from heron_common.monitors import trigger as tr
from heron_detector import incidents, kinds

log = get_logger("detector.trigger")

# What a configure command may change in a trigger's config (the API validates the values).
CONFIG_KEYS = ("trigger_kind", "timeout", "critical", "escalate", "service_id")


def _load(row: asyncpg.Record) -> tr.Trigger:
    return tr.from_row(row["state"], row["config"] or {}, row["data"] or {})


async def _save(conn: asyncpg.Connection, row: asyncpg.Record, trigger: tr.Trigger) -> float | None:
    deadline = trigger.deadline()
    await conn.execute(
        "UPDATE monitors SET state = $2, data = $3, last_seen = $4, deadline = $5, updated_at = now() WHERE id = $1",
        row["id"],
        trigger.state,
        {**(row["data"] or {}), **tr.to_data(trigger)},
        to_dt(trigger.last_checkin),
        to_dt(deadline),
    )
    return deadline


async def _record(
    conn: asyncpg.Connection, row: asyncpg.Record, flip: Flip | None, now: float, by: str | None
) -> list[int]:
    """The flip, its incident change and alert, and the trigger topic of the same change."""
    if flip is None:
        return []
    topic = tr.TOPICS[flip.incident] if flip.incident is not None else None
    return await incidents.record_flip(conn, row, flip, now, by=by, topic=topic)


async def _change(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    changed: tuple[tr.Trigger, Flip | None],
    before: tr.Trigger,
    now: float,
    by: str | None,
) -> kinds.Outcome:
    trigger, flip = changed
    if flip is None and trigger == before:
        return kinds.Outcome(to_ts(row["deadline"]))  # nothing changed: keep the stored deadline
    deadline = await _save(conn, row, trigger)
    return kinds.Outcome(deadline, await _record(conn, row, flip, now, by))


async def due(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    """A liveness trigger's deadline fell due: it alerts, unless Heron was blind meanwhile."""
    trigger = _load(row)
    deadline = trigger.deadline()
    if deadline is None or now < deadline:
        return kinds.Outcome(deadline)
    # Heron's own outages never page: a check-in sent while Heron was blind may have been turned
    # away, so a timeout spanning a blind window is judged one timeout after it instead.
    windows = await ctx.windows(trigger.since)
    if windows and trigger.timeout is not None:
        moved = blind.deadline_past_windows(
            trigger.since, trigger.timeout, deadline, windows, min_tolerance=ctx.params.min_tolerance
        )
        if now < moved:
            await conn.execute("UPDATE monitors SET deadline = $2 WHERE id = $1", row["id"], to_dt(moved))
            return kinds.Outcome(moved)
    return await _change(conn, row, tr.check_timeout(trigger, now), trigger, now, None)


async def observe(
    conn: asyncpg.Connection, row: asyncpg.Record, payload: dict[str, Any], at: float, ctx: kinds.Context
) -> kinds.Outcome:
    action, body, by = payload.get("action"), payload.get("body"), payload.get("by")
    if action not in tr.ACTIONS or not (body is None or isinstance(body, dict)):
        raise MessageError(f"malformed trigger observation: action {action!r}")
    trigger = _load(row)
    who = by if isinstance(by, str) else None
    return await _change(conn, row, tr.apply(trigger, action, at, body), trigger, at, who)


async def acknowledge(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    trigger = _load(row)
    return await _change(conn, row, tr.acknowledge(trigger, now), trigger, now, ctx.by)


async def resolve(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    trigger = _load(row)
    return await _change(conn, row, tr.resolve(trigger, now), trigger, now, ctx.by)


async def resume(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    trigger = _load(row)
    incident = await conn.fetchrow(
        "SELECT acknowledged_at FROM incidents WHERE monitor_id = $1 AND resolved_at IS NULL", row["id"]
    )
    open_state = None if incident is None else tr.ACKNOWLEDGED if incident["acknowledged_at"] else tr.ALERTING
    resumed, flip = tr.resume(trigger, now, open_state)
    return await _change(conn, row, (resumed, flip), trigger, now, ctx.by)


async def configure(
    conn: asyncpg.Connection, row: asyncpg.Record, args: dict[str, Any], now: float, ctx: kinds.Context
) -> kinds.Outcome:
    """New settings (and name/service, columns of the row); ``{}`` just (re)arms the timer, which
    is how a new trigger's first deadline reaches the index."""
    config = {**(row["config"] or {}), **{k: args[k] for k in CONFIG_KEYS if k in args}}
    config = {k: v for k, v in config.items() if v is not None}
    trigger = tr.reconfigure(_load(row), config, now)
    update = "UPDATE monitors SET config = $2, name = coalesce($3, name), service = coalesce($4, service) WHERE id = $1"
    try:
        # A savepoint: the API checked the name is free, but a trigger created meanwhile (ingest
        # inserts new ones itself) may have taken it. Then the rest of the change still applies.
        async with conn.transaction():
            await conn.execute(update, row["id"], config, args.get("name"), args.get("service"))
    except asyncpg.UniqueViolationError:
        log.warning("trigger name taken meanwhile; the rest of the change applied", monitor_id=row["id"])
        await conn.execute(update, row["id"], config, None, None)
    return kinds.Outcome(await _save(conn, row, trigger))


kinds.register(tr.KIND, kinds.Kind(due, observe, resume, acknowledge, resolve, configure))
