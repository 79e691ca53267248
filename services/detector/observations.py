"""Observations of declared monitors (a heartbeat ping, a trigger call, a probe result), applied
through the monitor's kind (``kinds.py``) — once per message: a redelivered observation is
recognised by its id (``processed_messages``, as for events) and changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from heron_common.messages import MessageError
from heron_detector import kinds


def parse(message: dict[str, Any]) -> tuple[uuid.UUID, int, int, dict[str, Any]]:
    try:
        message_id = uuid.UUID(message["id"])
        monitor_id, project_id = int(message["monitor_id"]), int(message["project_id"])
        payload = message["payload"]
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"malformed observation: {exc}") from exc
    if not isinstance(payload, dict):
        raise MessageError("malformed observation: payload is not an object")
    return message_id, monitor_id, project_id, payload


async def apply(
    conn: asyncpg.Connection, message: dict[str, Any], now: float, ctx: kinds.Context
) -> kinds.Outcome | None:
    """Apply one observation; None if it was applied before or its monitor is gone."""
    message_id, monitor_id, project_id, payload = parse(message)
    async with conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO processed_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
            message_id,
        )
        if not fresh:
            return None
        row = await kinds.lock(conn, monitor_id, project_id)
        if row is None:
            return None  # deleted since: nothing to observe
        kind = kinds.of(row)
        if kind.observe is None:
            raise MessageError(f"monitors of kind {row['kind']!r} take no observations")
        return await kind.observe(conn, row, payload, float(message.get("at") or now), ctx)
