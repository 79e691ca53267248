"""The delivery ledger in Postgres: one row per (alert, target), claimed with SKIP LOCKED.

- ``record_alert`` turns an alert into its delivery rows in one transaction (idempotent on the
  alert id, so a redelivered alert creates nothing new); the consumer acks only after it.
- ``claim`` takes due rows under a lease. The lease outlives the request timeout, so a row is
  never claimed by two notifiers for the same attempt; if a notifier dies mid-send, the lease
  lapses and another one retries it (at-least-once).
- ``finish`` records the attempt and the outcome, but only while the lease is still ours.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from heron_common.db import to_dt
from heron_notifier.policy import Decision


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    alert_id: str
    topic: str
    target_kind: str
    target: str
    payload: dict[str, Any]
    attempts: int
    lease: float


async def record_alert(pool: asyncpg.Pool, message: dict[str, Any], first_attempt_at: float) -> int:
    """Create the deliveries for one alert; returns how many were new."""
    data = message["data"]
    project_id = data["project"]["id"]
    alert_id = uuid.UUID(message["id"])
    async with pool.acquire() as conn, conn.transaction():
        project = await conn.fetchrow("SELECT slack_webhook_url FROM projects WHERE id = $1", project_id)
        targets = []
        if project is not None and project["slack_webhook_url"]:
            targets.append(("slack", project["slack_webhook_url"]))
        created = 0
        for kind, target in targets:
            status = await conn.execute(
                "INSERT INTO deliveries (alert_id, project_id, topic, target_kind, target, payload, next_attempt_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (alert_id, target_kind, target) DO NOTHING",
                alert_id,
                project_id,
                message["type"],
                kind,
                target,
                message,
                to_dt(first_attempt_at),
            )
            created += status == "INSERT 0 1"
        return created


async def claim(pool: asyncpg.Pool, now: float, lease_seconds: float, limit: int) -> list[Claimed]:
    lease = now + lease_seconds
    rows = await pool.fetch(
        "UPDATE deliveries SET locked_until = $2 WHERE id IN ("
        "  SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1"
        "  AND (locked_until IS NULL OR locked_until < $1)"
        "  ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED"
        ") RETURNING id, alert_id, topic, target_kind, target, payload, attempts",
        to_dt(now),
        to_dt(lease),
        limit,
    )
    return [
        Claimed(
            r["id"], str(r["alert_id"]), r["topic"], r["target_kind"], r["target"], r["payload"], r["attempts"], lease
        )
        for r in rows
    ]


async def postpone(pool: asyncpg.Pool, claimed: Claimed, until: float) -> None:
    """Give a claimed row back without counting an attempt (pacing)."""
    await pool.execute(
        "UPDATE deliveries SET next_attempt_at = $2, locked_until = NULL WHERE id = $1 AND locked_until = $3",
        claimed.id,
        to_dt(until),
        to_dt(claimed.lease),
    )


async def finish(
    pool: asyncpg.Pool,
    claimed: Claimed,
    decision: Decision,
    *,
    attempted_at: float,
    status_code: int | None,
    latency_ms: float,
    error: str | None,
    response_body: str | None,
) -> bool:
    """Record the attempt and its outcome; False if the lease was lost (nothing written)."""
    next_at = attempted_at + (decision.retry_in or 0.0)
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3, locked_until = NULL,"
            " last_status_code = $4, last_error = $5,"
            " finished_at = CASE WHEN $2::text = 'pending' THEN NULL ELSE $6::timestamptz END"
            " WHERE id = $1 AND locked_until = $7",
            claimed.id,
            decision.status,
            to_dt(next_at),
            status_code,
            error or (decision.reason if decision.status != "succeeded" else None),
            to_dt(attempted_at),
            to_dt(claimed.lease),
        )
        if status != "UPDATE 1":
            return False
        await conn.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, status_code, latency_ms, error, response_body)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            claimed.id,
            to_dt(attempted_at),
            status_code,
            latency_ms,
            error,
            response_body,
        )
    return True
