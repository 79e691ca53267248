"""The detector's side of heartbeats (``heron_common.monitors.heartbeat`` holds the rules).

Each handler runs in the transaction that locked the monitor row: it records what came in (a
ping row), saves the state, ``data``, ``last_seen`` and ``deadline`` the pure kind returns, records
its flips (``record_flip``: the incident, with the last ping as its ``details``) and writes the
kind's own topics (``heartbeat.late``/``down``/``up``) to the outbox.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from heron_common.db import to_dt
from heron_common.messages import MessageError
from heron_common.monitors import heartbeat as hb
from heron_detector import incidents, kinds

MAX_BODY = 10 * 1024


def _config(row: asyncpg.Record) -> hb.Config:
    return hb.Config.from_dict(row["config"])


def _load(row: asyncpg.Record) -> hb.Heartbeat:
    return hb.Heartbeat.load(row["state"], row["data"] or {})


def _view(row: asyncpg.Record, beat: hb.Heartbeat, deadline: float | None) -> dict[str, Any]:
    """What a ``heartbeat.*`` alert says about the heartbeat."""
    return {
        "id": row["id"],
        "name": row["name"],
        "service": row["service"] or None,
        "environment": row["environment"] or None,
        "state": beat.state,
        **row["config"],
        **hb.summary(beat),
        "deadline": hb.iso(deadline),
    }


async def _apply(
    conn: asyncpg.Connection, row: asyncpg.Record, step: hb.Step, now: float, config: hb.Config
) -> kinds.Outcome:
    beat = step.heartbeat
    await conn.execute(
        "UPDATE monitors SET state = $2, data = $3, last_seen = $4, deadline = $5, updated_at = now() WHERE id = $1",
        row["id"],
        beat.state,
        beat.data(),
        to_dt(beat.last_ping),
        to_dt(step.deadline),
    )
    outcome = kinds.Outcome(step.deadline)
    interval = config.interval
    for flip in step.flips:
        outcome.outbox_ids.extend(await incidents.record_flip(conn, row, flip, now, expected_interval=interval))
    if step.topics:
        # Rows reach a kind through kinds.lock or the scan, both with the project's name.
        data = {
            "heartbeat": _view(row, beat, step.deadline),
            "project": {"id": row["project_id"], "name": row["project_name"]},
        }
        for topic in step.topics:
            outcome.outbox_ids.append(await incidents.outbox(conn, topic, None, uuid.uuid4(), now, data))
    return outcome


async def due(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    beat, config = _load(row), _config(row)
    since = beat.started if beat.started is not None else beat.last_ping
    windows = await ctx.windows(since) if since is not None else []
    step = hb.due(beat, config, now, windows)
    if not step.flips and step.deadline == (row["deadline"].timestamp() if row["deadline"] else None):
        return kinds.Outcome(step.deadline)  # nothing changed (a racing scan or a stale index entry)
    return await _apply(conn, row, step, now, config)


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "")[:limit]


async def observe(
    conn: asyncpg.Connection, row: asyncpg.Record, payload: dict[str, Any], at: float, ctx: kinds.Context
) -> kinds.Outcome:
    """One ping (``pings.py`` in ingest builds the payload)."""
    kind = payload.get("kind")
    exit_code = payload.get("exit_code")
    if kind not in hb.PING_KINDS or not (exit_code is None or type(exit_code) is int):
        raise MessageError(f"malformed heartbeat ping: kind {kind!r}, exit_code {exit_code!r}")
    ping = hb.Ping(kind, at, exit_code, _text(payload.get("rid"), 200))
    config = _config(row)
    step = hb.ping(_load(row), config, ping)
    await conn.execute(
        "INSERT INTO pings (monitor_id, project_id, received_at, kind, exit_code, rid, duration, body, remote_addr,"
        " user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        row["id"],
        row["project_id"],
        to_dt(at),
        kind,
        exit_code,
        ping.rid,
        step.duration,
        _text(payload.get("body"), MAX_BODY),
        _text(payload.get("remote_addr"), 100),
        _text(payload.get("user_agent"), 500),
    )
    return await _apply(conn, row, step, at, config)


async def resume(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    """Back from paused: ``new`` (waits for the next ping), or ``down`` while an incident is open."""
    incident_open = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM incidents WHERE monitor_id = $1 AND resolved_at IS NULL)", row["id"]
    )
    return await _apply(conn, row, hb.resume(_load(row), now, incident_open=incident_open), now, _config(row))


async def configure(
    conn: asyncpg.Connection, row: asyncpg.Record, args: dict[str, Any], now: float, ctx: kinds.Context
) -> kinds.Outcome:
    """New settings (checked by the API): ``config`` (whole), and optionally the name, service and
    environment. The deadline is recomputed from them."""
    try:
        config = hb.Config.from_dict(args["config"]) if args.get("config") is not None else _config(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"malformed heartbeat configure: {exc}") from exc
    labels = {k: args[k] for k in ("name", "service", "environment") if isinstance(args.get(k), str)}
    await conn.execute(
        "UPDATE monitors SET config = $2, name = coalesce($3, name), service = coalesce($4, service),"
        " environment = coalesce($5, environment) WHERE id = $1",
        row["id"],
        config.to_dict(),
        labels.get("name"),
        labels.get("service"),
        labels.get("environment"),
    )
    row = await kinds.lock(conn, row["id"], row["project_id"])  # with the new labels (locked already)
    assert row is not None
    return await _apply(conn, row, hb.reconfigure(_load(row), config, now), now, config)


kinds.register(hb.KIND, kinds.Kind(due=due, observe=observe, resume=resume, configure=configure))
