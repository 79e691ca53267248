"""Dead letters in Postgres: store them, list them, replay them (used by the detector's keeper,
the detector's own row screen, the admin API and ``heron-dead-letters``)."""

from __future__ import annotations

from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from heron_common.db import iso
from heron_common.deadletters import DeadLetter, body_view, replay_body

_INSERT = (
    "INSERT INTO dead_letters (queue, exchange, routing_key, reason, message_id, project_id, body, headers,"
    " deaths, first_dead_at, last_dead_at)"
    " SELECT q, x, k, r, m, p, b, h, d, coalesce(t, now()), coalesce(t, now())"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bytea[],"
    " $8::jsonb[], $9::int[], $10::timestamptz[]) AS u(q, x, k, r, m, p, b, h, d, t)"
    # Stored before but not acked (the keeper died), or an alert replayed that died again: one row,
    # dead again.
    " ON CONFLICT (queue, message_id) WHERE message_id IS NOT NULL DO UPDATE SET"
    " last_dead_at = excluded.last_dead_at, deaths = greatest(dead_letters.deaths, excluded.deaths),"
    " reason = excluded.reason, replayed_at = NULL"
)


async def insert(conn: asyncpg.Connection | asyncpg.Pool, letters: list[DeadLetter]) -> None:
    if not letters:
        return
    cols: tuple[list[Any], ...] = tuple([] for _ in range(10))
    for d in letters:
        values = (
            d.queue,
            d.exchange,
            d.routing_key,
            d.reason,
            d.message_id,
            d.project_id,
            d.body,
            d.headers,
            d.deaths,
            d.dead_at,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    await conn.execute(_INSERT, *cols)


def summary(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "queue": r["queue"],
        "exchange": r["exchange"],
        "routing_key": r["routing_key"],
        "reason": r["reason"],
        "message_id": r["message_id"],
        "project_id": r["project_id"],
        "deaths": r["deaths"],
        "size": len(r["body"]),
        "first_dead_lettered_at": iso(r["first_dead_at"]),
        "last_dead_lettered_at": iso(r["last_dead_at"]),
        "replayed_at": iso(r["replayed_at"]),
        "replay_message_id": r["replay_message_id"],
    }


def detail(r: asyncpg.Record) -> dict[str, Any]:
    return {**summary(r), "headers": r["headers"], **body_view(bytes(r["body"]))}


async def page(pool: asyncpg.Pool, queue: str | None, before: int | None, limit: int) -> list[asyncpg.Record]:
    """Newest first; ``before`` is the last id of the previous page."""
    return await pool.fetch(
        "SELECT * FROM dead_letters WHERE ($1::text IS NULL OR queue = $1) AND ($2::bigint IS NULL OR id < $2)"
        " ORDER BY id DESC LIMIT $3",
        queue,
        before,
        limit,
    )


async def get(pool: asyncpg.Pool, letter_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM dead_letters WHERE id = $1", letter_id)


class AlreadyReplayed(Exception):
    def __init__(self, row: asyncpg.Record) -> None:
        super().__init__(f"dead letter {row['id']} was replayed at {iso(row['replayed_at'])}")
        self.row = row


async def replay(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, letter_id: int, *, force: bool = False
) -> asyncpg.Record | None:
    """Publish the dead letter again where it was first published (None if there is no such id).

    The row is claimed first (``replayed_at`` set only if unset, unless ``force``), so two
    operators replaying at once publish once; a failed publish releases the claim and raises.
    """
    row = await get(pool, letter_id)
    if row is None:
        return None
    claimed = await pool.fetchrow(
        "UPDATE dead_letters SET replayed_at = now() WHERE id = $1 AND (replayed_at IS NULL OR $2) RETURNING *",
        letter_id,
        force,
    )
    if claimed is None:
        raise AlreadyReplayed(await get(pool, letter_id) or row)
    body, message_id, kind = replay_body(bytes(row["body"]))
    try:
        channel = await amqp.channel(publisher_confirms=True, on_return_raises=True)
        try:
            exchange = (
                channel.default_exchange
                if not row["exchange"]
                else await channel.get_exchange(row["exchange"], ensure=False)
            )
            await exchange.publish(
                aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                    message_id=message_id,
                    type=kind,
                ),
                routing_key=row["routing_key"],
                mandatory=True,
            )
        finally:
            await channel.close()
    except BaseException:
        await pool.execute("UPDATE dead_letters SET replayed_at = $2 WHERE id = $1", letter_id, row["replayed_at"])
        raise
    return await pool.fetchrow(
        "UPDATE dead_letters SET replay_message_id = $2 WHERE id = $1 RETURNING *", letter_id, message_id
    )
