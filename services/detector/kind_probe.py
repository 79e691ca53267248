"""The detector's side of HTTP probes (``heron_common.monitors.probe`` holds the rules).

The probers report every result as an observation ``{started_at, up, status, reason, timings,
prober}`` on the probe's shard; here, in the transaction that locked the monitor row, the result
is kept (``probe_results``), folded into the state, and the flips recorded: the incident when the
probe has been down continuously for its timeout (``incident.opened`` + ``probe.down``, its details
saying why and how long each phase took), resolved by the first up result (``incident.resolved`` +
``probe.up``). Probes have no deadline: only results move them, so a probe that is not probed
(its prober down) is never judged on time alone.
"""

from __future__ import annotations

import math
from typing import Any

import asyncpg

from heron_common.db import to_dt
from heron_common.messages import MessageError
from heron_common.monitors import Flip
from heron_common.monitors import probe as pr
from heron_detector import incidents, kinds

MAX_REASON = 1000


def _config(row: asyncpg.Record) -> pr.Config:
    return pr.Config.from_dict(row["config"])


def _load(row: asyncpg.Record) -> pr.Probe:
    return pr.Probe.load(row["state"], row["data"] or {})


async def _save(
    conn: asyncpg.Connection, row: asyncpg.Record, probe: pr.Probe, flips: list[Flip], now: float
) -> list[int]:
    await conn.execute(
        "UPDATE monitors SET state = $2, data = $3, last_seen = $4, deadline = NULL, updated_at = now() WHERE id = $1",
        row["id"],
        probe.state,
        {**(row["data"] or {}), **probe.data()},
        to_dt(probe.last_at),
    )
    sent: list[int] = []
    for flip in flips:
        topic = pr.TOPICS.get(flip.incident) if flip.incident is not None else None
        sent.extend(await incidents.record_flip(conn, row, flip, now, topic=topic))
    return sent


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return round(float(value), 6)


def parse_result(payload: dict[str, Any], at: float) -> tuple[pr.Result, str | None]:
    """The result in an observation (``heron_prober.probes`` builds it), and the prober's name."""
    up, status, reason = payload.get("up"), payload.get("status"), payload.get("reason")
    timings = payload.get("timings") or {}
    if (
        not isinstance(up, bool)
        or not (status is None or (type(status) is int and 100 <= status <= 999))
        or not (reason is None or isinstance(reason, str))
        or not isinstance(timings, dict)
    ):
        raise MessageError(f"malformed probe result: up {up!r}, status {status!r}")
    kept = {k: _number(timings.get(k)) for k in pr.PHASES}
    prober = payload.get("prober")
    text = reason.replace("\x00", "")[:MAX_REASON] if reason is not None else None
    return pr.Result(at, up, status, text, kept), prober[:200] if isinstance(prober, str) else None


async def observe(
    conn: asyncpg.Connection, row: asyncpg.Record, payload: dict[str, Any], at: float, ctx: kinds.Context
) -> kinds.Outcome:
    """One result; ``at`` is when its request started (the message's time)."""
    result, prober = parse_result(payload, at)
    await conn.execute(
        "INSERT INTO probe_results (monitor_id, project_id, started_at, up, status, reason, timings, prober)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        row["id"],
        row["project_id"],
        to_dt(at),
        result.up,
        result.status,
        result.reason,
        {k: v for k, v in result.timings.items() if v is not None},
        prober,
    )
    before = _load(row)
    probe, flips = pr.observe(before, _config(row), result)
    if probe == before:
        return kinds.Outcome(None)  # an overtaken result: kept in the history, nothing else changes
    return kinds.Outcome(None, await _save(conn, row, probe, flips, at))


async def due(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    """Probes keep no deadline; a stale index entry just goes away."""
    return kinds.Outcome(None)


async def resume(conn: asyncpg.Connection, row: asyncpg.Record, now: float, ctx: kinds.Context) -> kinds.Outcome:
    incident_open = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM incidents WHERE monitor_id = $1 AND resolved_at IS NULL)", row["id"]
    )
    probe, flip = pr.resume(_load(row), now, incident_open=incident_open)
    return kinds.Outcome(None, await _save(conn, row, probe, [flip], now))


async def configure(
    conn: asyncpg.Connection, row: asyncpg.Record, args: dict[str, Any], now: float, ctx: kinds.Context
) -> kinds.Outcome:
    """New settings (checked by the API: ``config`` whole) and labels; the state is kept, and the
    next result is judged by the new rules (a shorter timeout included)."""
    config = args.get("config")
    if config is not None:
        try:
            pr.Config.from_dict(config)
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"malformed probe configure: {exc}") from exc
    labels = {k: args[k] for k in ("name", "service", "environment") if isinstance(args.get(k), str)}
    await conn.execute(
        "UPDATE monitors SET config = coalesce($2, config), name = coalesce($3, name),"
        " service = coalesce($4, service), environment = coalesce($5, environment), updated_at = now() WHERE id = $1",
        row["id"],
        config,
        labels.get("name"),
        labels.get("service"),
        labels.get("environment"),
    )
    return kinds.Outcome(None)


kinds.register(pr.KIND, kinds.Kind(due=due, observe=observe, resume=resume, configure=configure))
