"""The detector's writes: each one a single transaction, idempotent on the message id.

``apply_events_messages`` and ``open_overdue`` are the only two places monitors change state.
Both lock the monitor rows (``FOR UPDATE`` in id order, so racing detectors never deadlock) and
write the flip, the incident change and an outbox row in the same transaction as the state.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from heron_common import blind, deadletter_store
from heron_common.db import to_dt, to_ts
from heron_common.deadletters import DeadLetter
from heron_common.messages import TrackedEvent
from heron_common.monitors import event as machine
from heron_common.monitors import rate
from heron_common.monitors.rate import RateParams
from heron_detector import incidents, kinds
from heron_detector.blindness import windows_since

StreamKey = tuple[int, str, str, str]


@dataclass
class Applied:
    duplicates: int = 0  # messages committed before, skipped
    events: int = 0
    # monitor id -> deadline (None: remove from the deadline index)
    deadlines: dict[int, float | None] = field(default_factory=dict)
    outbox_ids: list[int] = field(default_factory=list)
    dropped: int = 0  # events of projects that no longer exist
    rejected: list[str] = field(default_factory=list)  # messages whose refused rows were dead-lettered now
    repeated_events: int = 0  # events whose idempotency key was seen before, skipped
    # (project id, monitor id) of the streams that flipped or were created: for live views
    changed: set[tuple[int, int]] = field(default_factory=set)


def _stream_key(e: TrackedEvent) -> StreamKey:
    return (e.project_id, e.event_name, e.service or "", e.environment or "")


def _load(row: asyncpg.Record, params: RateParams) -> machine.Monitor:
    """The monitor as the pure machine sees it; any stored snapshot version (a v1 cadence snapshot
    becomes a young rate state: heron_common.monitors.rate.from_dict)."""
    return machine.Monitor(row["state"], machine.load(row["cadence"], params), row["event_count"], row["config"])


async def apply_events_messages(
    conn: asyncpg.Connection,
    batch: list[tuple[str, list[TrackedEvent]]],
    shard: int,
    params: RateParams,
    now: float,
    rejected: dict[str, DeadLetter] | None = None,
) -> Applied:
    """Apply a run of events messages ``(message id, events)`` from one shard in one transaction.

    Messages already committed before (redeliveries) are recognised by id and skipped whole.
    ``rejected`` holds, by message id, the rows the screen refused: they are stored as a dead
    letter in the same transaction, so a message's good rows and its refused ones are recorded
    together, once.
    """
    applied = Applied()
    async with conn.transaction():
        ids = [uuid.UUID(message_id) for message_id, _ in batch]
        fresh = {
            r["message_id"]
            for r in await conn.fetch(
                "INSERT INTO processed_messages (message_id) SELECT unnest($1::uuid[])"
                " ON CONFLICT DO NOTHING RETURNING message_id",
                ids,
            )
        }
        applied.duplicates = len(batch) - len(fresh)
        if rejected:
            letters = {str(u): rejected[str(u)] for u in fresh if str(u) in rejected}
            await deadletter_store.insert(conn, list(letters.values()))
            applied.rejected = list(letters)
        streams: dict[StreamKey, list[tuple[TrackedEvent, uuid.UUID]]] = defaultdict(list)
        keyed: list[str] = []
        for message_uuid, (_, events) in zip(ids, batch, strict=True):
            if message_uuid in fresh:
                fresh.discard(message_uuid)  # the same message twice in one batch counts once
                for e in events:
                    streams[_stream_key(e)].append((e, message_uuid))
                    if e.key is not None:
                        keyed.append(e.key)
        if keyed:
            await _drop_seen_keys(conn, streams, keyed, applied)
        if not streams:
            return applied
        applied.events = sum(len(v) for v in streams.values())

        rows = await _lock_monitors(conn, list(streams), shard)
        event_records = []
        times: dict[float, datetime] = {}
        updates: tuple[list[Any], ...] = ([], [], [], [], [], [])
        for row in rows:
            key = (row["project_id"], row["event_name"], row["service"], row["environment"])
            stream_events = streams.pop(key)
            before = _load(row, params)
            after, flips = machine.apply_events(before, [e.event_time for e, _ in stream_events], params)
            for e, message_uuid in stream_events:
                event_records.append(
                    (
                        row["id"],
                        row["project_id"],
                        _dt(e.event_time, times),
                        _dt(e.received_at, times),
                        e.metadata,
                        message_uuid,
                    )
                )
            deadline = after.deadline(params)
            applied.deadlines[row["id"]] = deadline
            values = (
                row["id"],
                after.state,
                after.event_count,
                to_dt(after.learned.last_seen),
                rate.to_dict(after.learned),
                to_dt(deadline),
            )
            for col, value in zip(updates, values, strict=True):
                col.append(value)
            for flip in flips:
                await _record_flip(conn, row, flip, now, applied)
            if flips or row["event_count"] == 0:  # a new state, or a stream seen for the first time
                applied.changed.add((row["project_id"], row["id"]))
        applied.dropped = sum(len(v) for v in streams.values())

        if event_records:
            await conn.copy_records_to_table(
                "events",
                records=event_records,
                columns=["monitor_id", "project_id", "event_time", "received_at", "metadata", "message_id"],
            )
        if rows:
            await conn.execute(
                "UPDATE monitors m SET state = u.state, event_count = u.event_count, last_seen = u.last_seen,"
                " cadence = u.cadence, deadline = u.deadline, updated_at = now()"
                " FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[], $5::jsonb[],"
                " $6::timestamptz[]) AS u(id, state, event_count, last_seen, cadence, deadline)"
                " WHERE m.id = u.id",
                *updates,
            )
    return applied


def _dt(ts: float, seen: dict[float, datetime]) -> datetime:
    """``to_dt`` once per distinct time: a batch shares few receive times."""
    dt = seen.get(ts)
    if dt is None:
        dt = seen[ts] = datetime.fromtimestamp(ts, UTC)
    return dt


_LOCK = (
    "SELECT m.* FROM monitors m"
    " JOIN unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS k(p, n, s, e)"
    " ON m.project_id = k.p AND m.kind = 'event' AND m.event_name = k.n"
    " AND m.service = k.s AND m.environment = k.e"
    " ORDER BY m.id FOR UPDATE OF m"
)


def _columns(keys: list[StreamKey]) -> tuple[list[Any], ...]:
    cols: tuple[list[Any], ...] = ([], [], [], [])
    for key in keys:
        for col, value in zip(cols, key, strict=True):
            col.append(value)
    return cols


async def _lock_monitors(conn: asyncpg.Connection, keys: list[StreamKey], shard: int) -> list[asyncpg.Record]:
    """Lock the streams' monitors (in id order: racing detectors never deadlock), creating the
    missing ones first — only for projects that still exist."""
    rows = await conn.fetch(_LOCK, *_columns(keys))
    if len(rows) == len(keys):
        return rows  # the steady state: one round trip
    found = {(r["project_id"], r["event_name"], r["service"], r["environment"]) for r in rows}
    missing = [k for k in keys if k not in found]
    await conn.execute(
        "INSERT INTO monitors (project_id, event_name, service, environment, shard)"
        " SELECT k.p, k.n, k.s, k.e, $5"
        " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS k(p, n, s, e)"
        " JOIN projects ON projects.id = k.p"
        " ON CONFLICT DO NOTHING",
        *_columns(missing),
        shard,
    )
    return await conn.fetch(_LOCK, *_columns(keys))


async def _record_flip(
    conn: asyncpg.Connection, monitor: asyncpg.Record, flip: machine.Flip, now: float, applied: Applied
) -> None:
    applied.outbox_ids.extend(await incidents.record_flip(conn, monitor, flip, now))


async def open_overdue(
    conn: asyncpg.Connection,
    monitor_ids: list[int],
    now: float,
    params: RateParams,
    changed: set[tuple[int, int]] | None = None,
) -> tuple[list[int], dict[int, float | None], int]:
    """Open an incident for every monitor in ``monitor_ids`` that is still overdue at ``now``
    (a declared kind decides through its ``due``).

    Returns the outbox rows written, for every id that was not opened its true deadline (None if
    it no longer has one) so the caller can correct the deadline index, and how many incidents
    were opened. ``changed`` collects ``(project id, monitor id)`` of the monitors whose state
    (or deadline) this changed, for live views.
    """
    changed = changed if changed is not None else set()
    outbox_ids: list[int] = []
    corrections: dict[int, float | None] = {}
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT m.*, p.name AS project_name FROM monitors m JOIN projects p ON p.id = m.project_id"
            " WHERE m.id = ANY($1::bigint[]) ORDER BY m.id FOR UPDATE OF m",
            monitor_ids,
        )
        found = {row["id"] for row in rows}
        corrections.update({i: None for i in monitor_ids if i not in found})
        windows: list[blind.Window] | None = None
        since_all = min((to_ts(r["last_seen"]) or now for r in rows), default=now)
        seen: dict[float, list[blind.Window]] = {}

        async def windows_after(since: float) -> list[blind.Window]:
            if since not in seen:
                seen[since] = await windows_since(conn, since)
            return seen[since]

        ctx = kinds.Context(params, windows_after)
        for row in rows:
            if row["kind"] != machine.KIND:
                # A declared kind (heartbeat, trigger…): its own rules, the same bookkeeping.
                outcome = await kinds.of(row).due(conn, row, now, ctx)
                corrections[row["id"]] = outcome.deadline
                outbox_ids.extend(outcome.outbox_ids)
                # A kind that did something moved the deadline (a heartbeat up -> late -> down).
                if outcome.outbox_ids or outcome.deadline != to_ts(row["deadline"]):
                    changed.add((row["project_id"], row["id"]))
                continue
            monitor = _load(row, params)
            flip = machine.check_silence(monitor, now, params)
            # The stored state is the one that counts: a racing detector may have flipped it already.
            if flip is None or row["state"] != machine.UP:
                corrections[row["id"]] = monitor.deadline(params)
                continue
            # Heron's own outages never page: step the deadline over any window in which Heron was
            # blind while this monitor's next event was due (heron_common.blind).
            if windows is None:
                windows = await windows_after(since_all)
            deadline = monitor.deadline(params)
            if windows and deadline is not None and monitor.learned.last_seen is not None:
                moved = blind.deadline_past_windows(
                    monitor.learned.last_seen,
                    monitor.expected_interval(params),
                    deadline,
                    windows,
                    min_tolerance=params.min_tolerance,
                )
                if now < moved:
                    await conn.execute("UPDATE monitors SET deadline = $2 WHERE id = $1", row["id"], to_dt(moved))
                    corrections[row["id"]] = moved
                    continue
            status = await conn.execute(
                "UPDATE monitors SET state = 'down', deadline = NULL, updated_at = now()"
                " WHERE id = $1 AND state = 'up'",
                row["id"],
            )
            if status != "UPDATE 1":
                continue
            corrections[row["id"]] = None
            changed.add((row["project_id"], row["id"]))
            outbox_ids.extend(
                await incidents.record_flip(conn, row, flip, now, expected_interval=monitor.expected_interval(params))
            )
        # Alerts are not incidents (a heartbeat going late, a kind's own topic): count the openings.
        opened = outbox_ids and await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) AND routing_key LIKE 'incident.opened.%'",
            outbox_ids,
        )
    return outbox_ids, corrections, int(opened or 0)


async def due_from_postgres(pool: asyncpg.Pool, shard: int) -> list[tuple[int, float]]:
    """Every up monitor's deadline on a shard: what the Redis index is rebuilt from."""
    rows = await pool.fetch("SELECT id, deadline FROM monitors WHERE shard = $1 AND deadline IS NOT NULL", shard)
    return [(r["id"], to_ts(r["deadline"]) or 0.0) for r in rows]


async def _drop_seen_keys(
    conn: asyncpg.Connection,
    streams: dict[StreamKey, list[tuple[TrackedEvent, uuid.UUID]]],
    keys: list[str],
    applied: Applied,
) -> None:
    """Record the events' idempotency keys and drop every event whose key was recorded before
    (a client's retry of a request the broker had already stored), or twice in this run."""
    new = {
        str(r["key"])
        for r in await conn.fetch(
            "INSERT INTO event_keys (key) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING RETURNING key", keys
        )
    }
    if len(new) == len(keys):
        return
    for stream, pairs in list(streams.items()):
        kept = []
        for pair in pairs:
            k = pair[0].key
            if k is None:
                kept.append(pair)
            elif k in new:
                new.discard(k)  # its first occurrence is kept, any other is a repeat
                kept.append(pair)
        applied.repeated_events += len(pairs) - len(kept)
        if kept:
            streams[stream] = kept
        else:
            del streams[stream]


async def maintain(conn: asyncpg.Connection, retention_days: int) -> list[str]:
    """Partitions for yesterday to three days ahead; drop whole days past retention (cheap,
    unlike DELETE); prune what has no partition to drop. Returns the partitions dropped."""
    await conn.execute("SELECT heron_ensure_event_partitions(1, 3)")
    old = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
        " AND c.relname ~ '^events_[0-9]{8}$'"
        " AND to_date(substr(c.relname, 8), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date - $1::int",
        retention_days,
    )
    for row in old:
        await conn.execute(f'DROP TABLE IF EXISTS "{row["relname"]}"')
    cutoff = "now() - make_interval(days => $1)"
    await conn.execute(f"DELETE FROM events_default WHERE received_at < {cutoff}", retention_days)
    await conn.execute(f"DELETE FROM processed_messages WHERE processed_at < {cutoff}", retention_days)
    await conn.execute(f"DELETE FROM event_keys WHERE seen_at < {cutoff}", retention_days)
    await conn.execute(f"DELETE FROM pings WHERE received_at < {cutoff}", retention_days)
    await conn.execute(f"DELETE FROM probe_results WHERE started_at < {cutoff}", retention_days)
    return [row["relname"] for row in old]
