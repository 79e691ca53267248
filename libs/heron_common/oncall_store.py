"""On-call rows in Postgres, for the services that share them: ingest (the API) and the notifier
(the shift top-up and the pages). The rules live in the pure :mod:`heron_common.oncall`; this
module only reads and writes rows for them.

- Shifts are generated from a rotation when it is created and topped up afterwards (``top_up``,
  run by the notifier's loop and by "add a full rotation"); both hold the rotation's row lock, so
  two of them never generate the same shifts twice.
- The key acknowledge links are signed with is made by the migration (``oncall_keys``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import asyncpg

from heron_common.oncall import rotation as rot
from heron_common.oncall import shifts as sh
from heron_common.secretbox import SecretBox


@lru_cache(maxsize=256)
def parsed(spec: str) -> rot.Rotation:
    """A stored rotation text, parsed (it was valid when stored; the parser is pure, so cached)."""
    return rot.parse(spec)


def shift_of(row: asyncpg.Record) -> sh.Shift:
    return sh.Shift(row["email"], row["starts_at"], row["ends_at"], row["position"])


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


async def insert_shifts(
    conn: asyncpg.Connection, rotation_id: int, project_id: int, shifts: Sequence[sh.Shift]
) -> list[asyncpg.Record]:
    if not shifts:
        return []
    return await conn.fetch(
        "INSERT INTO shifts (rotation_id, project_id, email, starts_at, ends_at, position)"
        " SELECT $1, $2, u.email, u.starts_at, u.ends_at, u.position"
        " FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[], $6::int[])"
        " AS u(email, starts_at, ends_at, position) RETURNING *",
        rotation_id,
        project_id,
        [s.email for s in shifts],
        [s.starts_at for s in shifts],
        [s.ends_at for s in shifts],
        [s.position for s in shifts],
    )


async def latest_shifts(conn: asyncpg.Connection, rotation_id: int) -> list[sh.Shift]:
    """What the top-up needs to continue a schedule: the latest shift and the latest generated one
    (``shifts.extend`` looks at nothing else)."""
    rows = await conn.fetch(
        "(SELECT * FROM shifts WHERE rotation_id = $1 ORDER BY ends_at DESC, starts_at DESC LIMIT 1)"
        " UNION ALL (SELECT * FROM shifts WHERE rotation_id = $1 AND position IS NOT NULL"
        " ORDER BY ends_at DESC, starts_at DESC LIMIT 1)",
        rotation_id,
    )
    return [shift_of(r) for r in rows]


def horizon(now: datetime, days: int) -> datetime:
    """How far a top-up generates: the promised days ahead, plus one so that a schedule topped up
    at least daily never reaches less than the promise."""
    return now + timedelta(days=days + 1)


async def top_up(conn: asyncpg.Connection, rotation: asyncpg.Record, now: datetime, days: int) -> int:
    """Add the shifts that carry ``rotation`` (a locked row) ``days`` ahead; how many were added.
    Existing shifts are never changed (``shifts.extend``)."""
    existing = await latest_shifts(conn, rotation["id"])
    new = sh.extend(existing, parsed(rotation["spec"]), horizon(now, days), now=now)
    await insert_shifts(conn, rotation["id"], rotation["project_id"], new)
    return len(new)


async def top_up_all(pool: asyncpg.Pool, now: datetime, days: int) -> int:
    """Top up every rotation whose schedule ends before the horizon (the notifier's loop)."""
    until = horizon(now, days) - timedelta(days=1)
    ids = await pool.fetch(
        "SELECT r.id FROM rotations r WHERE coalesce((SELECT max(s.ends_at) FROM shifts s WHERE s.rotation_id = r.id),"
        " '-infinity') < $1 ORDER BY r.id",
        until,
    )
    added = 0
    for row in ids:
        async with pool.acquire() as conn, conn.transaction():
            rotation = await conn.fetchrow("SELECT * FROM rotations WHERE id = $1 FOR UPDATE", row["id"])
            if rotation is not None:
                added += await top_up(conn, rotation, now, days)
    return added


async def ack_key(conn: asyncpg.Connection | asyncpg.Pool, box: SecretBox) -> bytes:
    """The acknowledge-link key: stored sealed (hex inside), or as hex before the first re-seal."""
    stored = await conn.fetchval("SELECT sealed_ack_key FROM oncall_keys WHERE id = 1")
    if stored is None:  # pragma: no cover - the migration inserts it
        raise RuntimeError("oncall_keys has no ack key: migrations not applied?")
    return bytes.fromhex(box.open(stored) or "")


def by_email(emails: Iterable[str]) -> dict[str, str]:
    """Emails keyed case-insensitively: the rotation text and the users may differ in case."""
    return {e.lower(): e for e in emails}
