"""Changes people ask for through the API, applied by the detector — the only writer of monitor
state — in order with the shard's events and ticks (ingest publishes them to the monitor's shard).

Every command is idempotent: acknowledging twice acknowledges once, pausing a paused monitor does
nothing, deleting a deleted one does nothing; a redelivered command changes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from heron_common.db import to_dt
from heron_common.messages import MessageError
from heron_common.monitors import ACKNOWLEDGE, PAUSED, Flip, pause
from heron_common.monitors import event as event_kind
from heron_common.monitors import rate as rate_model
from heron_common.monitors.rate import RateParams
from heron_detector import incidents, kinds

ACTIONS = frozenset({"acknowledge", "resolve", "pause", "resume", "delete", "configure"})


@dataclass
class Done:
    # monitor id -> deadline (None: remove from the deadline index)
    deadlines: dict[int, float | None] = field(default_factory=dict)
    outbox_ids: list[int] = field(default_factory=list)


def parse(message: dict[str, Any]) -> tuple[int, int, str, str | None, dict[str, Any]]:
    try:
        monitor_id, project_id = int(message["monitor_id"]), int(message["project_id"])
        action = str(message["action"])
        by = message.get("by")
        args = message.get("args") or {}
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"malformed command: {exc}") from exc
    if action not in ACTIONS or not isinstance(args, dict) or not (by is None or isinstance(by, str)):
        raise MessageError(f"malformed command: action {action!r}")
    return monitor_id, project_id, action, by, args


def _event_monitor(row: asyncpg.Record, params: RateParams, config: dict[str, Any] | None = None) -> event_kind.Monitor:
    return event_kind.Monitor(
        row["state"],
        event_kind.load(row["cadence"], params),
        row["event_count"],
        row["config"] if config is None else config,
    )


async def _save(conn: asyncpg.Connection, row: asyncpg.Record, m: event_kind.Monitor, deadline: float | None) -> None:
    await conn.execute(
        "UPDATE monitors SET state = $2, cadence = $3, last_seen = $4, config = $5, deadline = $6, updated_at = now()"
        " WHERE id = $1",
        row["id"],
        m.state,
        rate_model.to_dict(m.learned),
        to_dt(m.learned.last_seen),
        dict(m.config),
        to_dt(deadline),
    )


async def apply(
    conn: asyncpg.Connection, message: dict[str, Any], now: float, params: RateParams, ctx: kinds.Context
) -> Done:
    monitor_id, project_id, action, by, args = parse(message)
    done = Done()
    async with conn.transaction():
        row = await kinds.lock(conn, monitor_id, project_id)
        if row is None:
            return done  # deleted meanwhile: nothing left to change
        if action == "delete":
            await conn.execute("DELETE FROM monitors WHERE id = $1", monitor_id)
            done.deadlines[monitor_id] = None
            return done
        if row["kind"] != event_kind.KIND:
            return await _declared(conn, row, action, args, now, ctx, done)
        if action == "resolve":
            raise MessageError("an event stream's incident resolves when its events return, not by hand")
        if action == "acknowledge":
            done.outbox_ids.extend(await _acknowledge_incident(conn, row, args, now, by))
            return done
        monitor = _event_monitor(row, params)
        flip: Flip | None = None
        if action == "pause":
            flip = pause(row["state"], now)
            if flip is not None:
                monitor = event_kind.Monitor(PAUSED, monitor.learned, monitor.event_count, monitor.config)
        elif action == "resume":
            if row["state"] == PAUSED:
                monitor, flip = event_kind.resume(monitor, now, params)
        elif action == "configure":
            config = {k: v for k, v in {**row["config"], **args}.items() if v is not None}
            monitor = _event_monitor(row, params, config)
            if monitor.state == event_kind.NEW and monitor.deadline(params) is None:
                learned = event_kind.learned_or_fixed_deadline(monitor.learned, config, params)
                if learned is not None:  # a fixed interval needs no learning
                    flip = Flip(event_kind.NEW, event_kind.UP, now, "expected interval set")
                    monitor = event_kind.Monitor(event_kind.UP, monitor.learned, monitor.event_count, config)
        deadline = monitor.deadline(params)
        await _save(conn, row, monitor, deadline)
        done.deadlines[monitor_id] = deadline
        if flip is not None:
            done.outbox_ids.extend(await incidents.record_flip(conn, row, flip, now, by=by))
    return done


async def _acknowledge_incident(
    conn: asyncpg.Connection, row: asyncpg.Record, args: dict[str, Any], now: float, by: str | None
) -> list[int]:
    """Acknowledge the monitor's open incident (``args["incident_id"]``, if given) without a
    state change: what acknowledging means for a kind with no state of its own for it."""
    ack = Flip(row["state"], row["state"], now, "acknowledged", incident=ACKNOWLEDGE)
    incident_id = args.get("incident_id")
    return await incidents.record_flip(
        conn, row, ack, now, by=by, incident_id=int(incident_id) if incident_id is not None else None
    )


async def _declared(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    action: str,
    args: dict[str, Any],
    now: float,
    ctx: kinds.Context,
    done: Done,
) -> Done:
    """A command for a declared kind: pausing is the same for all; the rest is the kind's."""
    kind = kinds.of(row)
    outcome: kinds.Outcome | None = None
    if action == "pause":
        flip = pause(row["state"], now)
        if flip is None:
            return done
        await conn.execute(
            "UPDATE monitors SET state = $2, deadline = NULL, updated_at = now() WHERE id = $1", row["id"], PAUSED
        )
        outcome = kinds.Outcome(None, await incidents.record_flip(conn, row, flip, now, by=ctx.by))
    elif action == "resume":
        if row["state"] != PAUSED:
            return done
        if kind.resume is None:
            raise MessageError(f"monitors of kind {row['kind']!r} cannot be resumed")
        outcome = await kind.resume(conn, row, now, ctx)
    elif action == "acknowledge":
        if kind.acknowledge is not None:
            outcome = await kind.acknowledge(conn, row, now, ctx)
        else:
            done.outbox_ids.extend(await _acknowledge_incident(conn, row, args, now, ctx.by))
            return done
    elif action == "resolve":
        if kind.resolve is None:
            raise MessageError(f"monitors of kind {row['kind']!r} cannot be resolved by hand")
        outcome = await kind.resolve(conn, row, now, ctx)
    elif action == "configure":
        if kind.configure is None:
            raise MessageError(f"monitors of kind {row['kind']!r} take no configure command")
        outcome = await kind.configure(conn, row, args, now, ctx)
    if outcome is not None:
        done.deadlines[row["id"]] = outcome.deadline
        done.outbox_ids.extend(outcome.outbox_ids)
    return done
