"""Paging: the notifier's durable ledger of who is paged for an incident, and when.

- **Starting.** When ``incident.opened`` reaches the notifier (its alerts queue), the incident's
  monitor is mapped to its service (``config.service_id``, else the service of the monitor's
  ``service`` name) and the service to its rotation; if there is one, a ``paging`` row is written
  and the first steps planned, in the transaction that records the alert (a redelivered alert
  finds the row and plans nothing twice).
- **Planning.** ``heron_common.oncall.escalation.plan`` says which steps are due in a window;
  they are inserted as ``pages`` rows, idempotently by their deterministic step id, up to
  ``HERON_PAGING_HORIZON`` ahead, and ``planned_until`` moves on in the same transaction. The
  planner loop extends every open paging row before its window runs out, so repeats and a ladder
  of any length are planned as time goes on, with the shifts and channels as they are then (a
  shift reassigned during an incident changes who the next rounds page). A notifier that was down
  plans on from ``planned_until``: every step of the missed time is planned and sent late, none
  twice.
- **Stopping.** ``incident.acknowledged`` / ``incident.resolved`` set ``stopped_at`` and cancel
  every pending page not in flight, in one transaction; the planner locks the same row, so a plan
  and a stop never interleave. Until that message arrives the sender already skips pages of an
  incident the detector has marked acknowledged or resolved.
- **Sending** is ``paging_send.PageSender``; the shift top-up runs here too (every
  ``HERON_SHIFT_TOPUP_INTERVAL``, keeping every rotation ``HERON_SHIFT_HORIZON_DAYS`` ahead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import Counter

from heron_common import oncall_store
from heron_common.logging import get_logger
from heron_common.oncall import escalation as esc
from heron_common.oncall import shifts as sh
from heron_common.service import CLOCK, PG, SETTINGS, STOPPING, background, sleep_or_stop
from heron_common.settings import Settings

PLANNED = Counter("heron_notifier_pages_planned_total", "Page steps written to the paging ledger")
BATCH = 500
PAGES_WAKE = web.AppKey("pages_wake", asyncio.Event)  # set when pages may be due: the sender looks at once
# How far back shifts are read to find the person on call before the current one.
PREVIOUS_LOOKBACK = timedelta(days=35)
log = get_logger("notifier.paging")


@dataclass
class _Context:
    """What planning an incident of one rotation needs, read once per planning pass."""

    policy: esc.Policy
    shifts: list[sh.Shift]
    members: tuple[str, ...]
    channels: dict[str, list[esc.Channel]]


async def _contexts(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], until: datetime) -> dict[int, _Context]:
    earliest: dict[int, datetime] = {}
    for r in rows:
        rid = r["rotation_id"]
        earliest[rid] = min(earliest.get(rid, r["opened_at"]), r["opened_at"])
    out: dict[int, _Context] = {}
    for rotation_id, opened in earliest.items():
        rotation = await conn.fetchrow("SELECT * FROM rotations WHERE id = $1", rotation_id)
        if rotation is None:
            continue
        shift_rows = await conn.fetch(
            "SELECT * FROM shifts WHERE rotation_id = $1 AND ends_at > $2 AND starts_at <= $3",
            rotation_id,
            opened - PREVIOUS_LOOKBACK,
            until,
        )
        strategies = await conn.fetch(
            "SELECT e.*, u.email FROM escalation_strategies e LEFT JOIN users u ON u.id = e.user_id"
            " WHERE e.rotation_id = $1 ORDER BY e.delay, e.id",
            rotation_id,
        )
        channel_rows = await conn.fetch(
            "SELECT u.email, c.id, c.kind, c.delay FROM users u JOIN user_channels c ON c.user_id = u.id"
            " WHERE u.project_id = $1 ORDER BY c.delay, c.id",
            rotation["project_id"],
        )
        by_email: dict[str, list[esc.Channel]] = {}
        for c in channel_rows:
            by_email.setdefault(c["email"].lower(), []).append(
                esc.Channel(str(c["id"]), c["kind"], timedelta(seconds=c["delay"]))
            )
        members = oncall_store.parsed(rotation["spec"]).members
        shifts = [oncall_store.shift_of(r) for r in shift_rows]
        named = {s.email for s in shifts} | set(members) | {s["email"] for s in strategies if s["email"]}
        policy = esc.Policy(
            strategies=tuple(
                esc.Strategy(
                    timedelta(seconds=s["delay"]),
                    s["target"],
                    user=s["email"] if s["target"] == esc.USER else None,
                    key=str(s["id"]),
                )
                for s in strategies
                if s["target"] != esc.USER or s["email"]
            ),
            repeat_every=timedelta(seconds=rotation["repeat_every"]) if rotation["repeat_every"] else None,
        )
        out[rotation_id] = _Context(
            policy, shifts, members, {e: by_email[e.lower()] for e in named if e.lower() in by_email}
        )
    return out


async def stop(conn: asyncpg.Connection, incident_ids: list[int], at: datetime, now: datetime) -> int:
    """Stop paging these incidents: no more planning, every pending page not in flight cancelled
    (one in flight is recorded as it ends; a retry of it is cancelled then). Returns pages cancelled."""
    await conn.execute(
        "UPDATE paging SET stopped_at = coalesce(stopped_at, $2) WHERE incident_id = ANY($1::bigint[])",
        incident_ids,
        at,
    )
    status = await conn.execute(
        "UPDATE pages SET status = 'cancelled', locked_until = NULL WHERE incident_id = ANY($1::bigint[])"
        " AND status = 'pending' AND (locked_until IS NULL OR locked_until < $2)",
        incident_ids,
        now,
    )
    return int(status.split()[-1])


async def plan(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], now: datetime, horizon: float) -> int:
    """Write the steps of these paging rows (locked by the caller, joined with their incident's
    ``acknowledged_at``/``resolved_at``) due up to ``now + horizon``; returns how many are new."""
    until = now + timedelta(seconds=horizon)
    stopped = [r for r in rows if r["acknowledged_at"] is not None or r["resolved_at"] is not None]
    if stopped:
        for r in stopped:
            at = min(t for t in (r["acknowledged_at"], r["resolved_at"]) if t is not None)
            await stop(conn, [r["incident_id"]], at, now)
    orphans = [r["incident_id"] for r in rows if r["rotation_id"] is None]
    if orphans:  # the rotation was deleted: nobody left to page
        await stop(conn, orphans, now, now)
    done = {r["incident_id"] for r in stopped}
    live = [r for r in rows if r["incident_id"] not in done and r["rotation_id"] is not None]
    contexts = await _contexts(conn, live, until)
    cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [], [])
    planned: list[int] = []
    for r in live:
        ctx = contexts.get(r["rotation_id"])
        if ctx is None:
            continue
        incident = esc.Incident(r["incident_id"], r["opened_at"], escalate=r["escalate"])
        steps = esc.plan(
            incident,
            ctx.policy,
            shifts=ctx.shifts,
            members=ctx.members,
            channels=ctx.channels,
            until=until,
            after=r["planned_until"],
        )
        planned.append(r["incident_id"])
        for s in steps:
            values = (
                s.id,
                r["incident_id"],
                r["project_id"],
                s.due_at,
                s.email,
                int(s.channel),
                s.channel_kind,
                s.reason,
                s.round,
                s.strategy,
            )
            for col, value in zip(cols, values, strict=True):
                col.append(value)
    new = 0
    if cols[0]:
        status = await conn.execute(
            "INSERT INTO pages (step_id, incident_id, project_id, due_at, email, channel_id, channel_kind, reason,"
            " round, strategy, next_attempt_at)"
            " SELECT u.step_id, u.incident_id, u.project_id, u.due_at, u.email, c.id, u.channel_kind, u.reason,"
            " u.round, u.strategy, u.due_at"
            " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[], $6::bigint[],"
            " $7::text[], $8::text[], $9::int[], $10::text[])"
            " AS u(step_id, incident_id, project_id, due_at, email, channel_id, channel_kind, reason, round, strategy)"
            " LEFT JOIN user_channels c ON c.id = u.channel_id"  # deleted meanwhile: the page fails, saying so
            " ON CONFLICT (step_id) DO NOTHING",
            *cols,
        )
        new = int(status.split()[-1])
        PLANNED.inc(new)
    if planned:
        await conn.execute("UPDATE paging SET planned_until = $2 WHERE incident_id = ANY($1::bigint[])", planned, until)
    return new


_SELECT = "SELECT g.*, i.acknowledged_at, i.resolved_at FROM paging g JOIN incidents i ON i.id = g.incident_id"


async def start(conn: asyncpg.Connection, incident_ids: list[int], now: datetime, horizon: float) -> int:
    """Begin paging newly opened incidents whose service has a rotation, and plan their first
    steps; how many began (an incident without a rotation, or begun before — a redelivered alert —
    does not)."""
    rows = await conn.fetch(
        "INSERT INTO paging (incident_id, project_id, rotation_id, opened_at, escalate)"
        " SELECT DISTINCT ON (i.id) i.id, i.project_id, s.rotation_id, i.opened_at,"
        "  coalesce(i.details->'escalate' <> 'false', true)"
        " FROM incidents i JOIN monitors m ON m.id = i.monitor_id"
        " JOIN services s ON s.project_id = i.project_id AND s.rotation_id IS NOT NULL"
        "  AND CASE WHEN m.config ? 'service_id' THEN s.id = (m.config->>'service_id')::bigint"
        "   ELSE s.name = m.service END"
        " WHERE i.id = ANY($1::bigint[]) AND i.resolved_at IS NULL"
        " ORDER BY i.id, s.id"
        " ON CONFLICT (incident_id) DO NOTHING RETURNING incident_id",
        incident_ids,
    )
    if not rows:
        return 0
    began = [r["incident_id"] for r in rows]
    locked = await conn.fetch(_SELECT + " WHERE g.incident_id = ANY($1::bigint[]) FOR UPDATE OF g", began)
    await plan(conn, locked, now, horizon)
    return len(began)


def _incident_id(alert: dict[str, Any]) -> int | None:
    incident = (alert.get("data") or {}).get("incident") or {}
    try:
        return int(incident["id"])
    except (KeyError, TypeError, ValueError):
        return None  # not an incident Heron's detector made (a hand-made alert): nothing to page


def _stopped_at(alert: dict[str, Any], default: datetime) -> datetime:
    incident = (alert.get("data") or {}).get("incident") or {}
    when = (
        incident.get("acknowledged_at") if alert.get("type") == "incident.acknowledged" else incident.get("resolved_at")
    )
    try:
        stopped = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else default
    except ValueError:
        return default
    return stopped if stopped.tzinfo is not None else default


async def on_alerts(conn: asyncpg.Connection, alerts: Sequence[dict[str, Any]], settings: Settings, now: float) -> None:
    """The paging side of a run of alerts, inside the transaction that records them
    (app._consume_alerts): openings start paging, acknowledgements and resolutions stop it."""
    at = oncall_store.utc(now)
    opened = []
    for alert in alerts:
        topic = alert.get("type")
        incident_id = _incident_id(alert)
        if incident_id is None:
            continue
        if topic == "incident.opened":
            opened.append(incident_id)
        elif topic in ("incident.acknowledged", "incident.resolved"):
            if opened:  # keep the order of a run that opens and stops the same incident
                await start(conn, opened, at, settings.paging_horizon)
                opened = []
            await stop(conn, [incident_id], _stopped_at(alert, at), at)
    if opened:
        await start(conn, opened, at, settings.paging_horizon)


async def plan_due(pool: asyncpg.Pool, now: float, horizon: float) -> int:
    """One planning pass: every open paging row whose window ends within half a horizon."""
    at = oncall_store.utc(now)
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _SELECT + " WHERE g.stopped_at IS NULL AND (g.planned_until IS NULL OR g.planned_until < $1)"
                " ORDER BY g.planned_until NULLS FIRST LIMIT $2 FOR UPDATE OF g SKIP LOCKED",
                at + timedelta(seconds=horizon / 2),
                BATCH,
            )
            if not rows:
                return total
            total += await plan(conn, rows, at, horizon)
        if len(rows) < BATCH:
            return total


# -- the loops --------------------------------------------------------------------------------


async def _planner(app: web.Application) -> None:
    settings = app[SETTINGS]
    while True:
        try:
            if await plan_due(app[PG], app[CLOCK].now(), settings.paging_horizon):
                app[PAGES_WAKE].set()
        except Exception:
            log.exception("paging planner failed; retrying")
        if await sleep_or_stop(app, settings.paging_interval):
            return


async def _shift_top_up(app: web.Application) -> None:
    settings = app[SETTINGS]
    while True:
        try:
            added = await oncall_store.top_up_all(
                app[PG], oncall_store.utc(app[CLOCK].now()), settings.shift_horizon_days
            )
            if added:
                log.info("shifts topped up", added=added)
        except Exception:
            log.exception("shift top-up failed; retrying")
        if await sleep_or_stop(app, settings.shift_topup_interval):
            return


async def _retention(app: web.Application) -> None:
    """Hourly: forget pages of incidents stopped longer ago than HERON_DELIVERY_RETENTION_DAYS, and
    used acknowledge links once they could no longer be valid anyway."""
    settings = app[SETTINGS]
    while True:
        try:
            pool = app[PG]
            await pool.execute(
                "DELETE FROM paging WHERE stopped_at < now() - make_interval(days => $1)",
                settings.delivery_retention_days,
            )
            await pool.execute(
                "DELETE FROM ack_links_used WHERE used_at < now() - make_interval(secs => $1)",
                settings.ack_link_ttl * 2,
            )
        except Exception:
            log.exception("paging retention failed")
        if await sleep_or_stop(app, 3600.0):
            return


async def _sender(app: web.Application) -> None:
    from heron_notifier.paging_send import PageSender

    settings = app[SETTINGS]
    sender = PageSender(app[PG], settings, app[CLOCK])
    try:
        while True:
            try:
                await sender.run(app[STOPPING], app[PAGES_WAKE], settings.paging_interval)
                return
            except Exception:
                log.exception("page sender failed; restarting it")
                if await sleep_or_stop(app, 1.0):
                    return
    finally:
        await sender.close()


def add_paging(app: web.Application) -> None:
    """Everything paging adds to the notifier: the planner, the sender, the shift top-up."""
    app[PAGES_WAKE] = asyncio.Event()
    background(app, "paging-planner", _planner)
    background(app, "paging-sender", _sender)
    background(app, "shift-top-up", _shift_top_up)
    background(app, "paging-retention", _retention)
