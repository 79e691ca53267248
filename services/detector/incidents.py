"""Flips and the incidents they open, acknowledge and resolve — the same for every kind.

Called inside the transaction that changes the monitor's state, so the flip row, the incident
change and the alert in the outbox commit together with it (or not at all).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from heron_common import messages
from heron_common.db import to_dt
from heron_common.monitors import ACKNOWLEDGE, OPEN, RESOLVE, Flip
from heron_common.views import alert_data, incident_title


async def outbox(
    conn: asyncpg.Connection,
    topic: str,
    kind: str | None,
    alert_id: uuid.UUID,
    now: float,
    data: dict[str, Any],
) -> int:
    """Write an alert to the outbox. An ``incident.*`` alert's routing key carries the monitor's
    kind (``incident.opened.heartbeat``); a kind's own topic (``heartbeat.late``) is its own key
    (pass ``kind=None``)."""
    message = messages.alert_message(topic, str(alert_id), now, data)
    return await conn.fetchval(
        "INSERT INTO outbox (alert_id, routing_key, message) VALUES ($1, $2, $3) RETURNING id",
        alert_id,
        f"{topic}.{kind}" if kind else topic,
        message,
    )


async def _project_name(conn: asyncpg.Connection, monitor: asyncpg.Record) -> str:
    if "project_name" in monitor.keys():
        return monitor["project_name"]
    return await conn.fetchval("SELECT name FROM projects WHERE id = $1", monitor["project_id"])


async def record_flip(
    conn: asyncpg.Connection,
    monitor: asyncpg.Record,
    flip: Flip,
    now: float,
    *,
    expected_interval: float | None = None,
    by: str | None = None,
    incident_id: int | None = None,
    topic: str | None = None,
) -> list[int]:
    """Record ``flip`` of ``monitor`` and what it does to the monitor's incident.

    Returns the outbox rows of the alerts it caused: the ``incident.*`` alert, and ``topic`` (a
    kind's own topic, e.g. ``trigger.alerting``) with the same data beside it. Racing detectors
    and repeated commands are safe: one open incident per monitor (a unique index), and
    acknowledging or resolving only touches an incident still in the state that allows it.
    """
    if flip.from_state != flip.to_state:  # acknowledging an event stream's incident is no flip
        await conn.execute(
            "INSERT INTO flips (monitor_id, project_id, at, from_state, to_state, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            monitor["id"],
            monitor["project_id"],
            to_dt(flip.at),
            flip.from_state,
            flip.to_state,
            flip.reason,
        )
    if flip.incident is None:
        return []
    kind = monitor["kind"]
    alert_id = uuid.uuid4()
    if flip.incident == OPEN:
        incident = await conn.fetchrow(
            "INSERT INTO incidents (project_id, monitor_id, alert_id, kind, title, event_name, service, environment,"
            " started_at, opened_at, expected_interval, details, name)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            " ON CONFLICT (monitor_id) WHERE resolved_at IS NULL DO NOTHING RETURNING *",
            monitor["project_id"],
            monitor["id"],
            alert_id,
            kind,
            incident_title(kind, monitor["name"], monitor["event_name"]),
            monitor["event_name"],
            monitor["service"],
            monitor["environment"],
            to_dt(flip.silent_since if flip.silent_since is not None else flip.at),
            to_dt(flip.at),
            expected_interval,
            flip.details or {},
            monitor["name"] or monitor["event_name"],
        )
        incident_topic = "incident.opened"
    elif flip.incident == ACKNOWLEDGE:
        incident = await conn.fetchrow(
            "UPDATE incidents SET acknowledged_at = $2, acknowledged_by = $3, ack_alert_id = $4"
            " WHERE monitor_id = $1 AND resolved_at IS NULL AND acknowledged_at IS NULL"
            " AND ($5::bigint IS NULL OR id = $5) RETURNING *",
            monitor["id"],
            to_dt(flip.at),
            by,
            alert_id,
            incident_id,
        )
        incident_topic = "incident.acknowledged"
    elif flip.incident == RESOLVE:
        resolved_at = flip.resumed_at if flip.resumed_at is not None else flip.at
        incident = await conn.fetchrow(
            "UPDATE incidents SET resolved_at = $2, resolve_alert_id = $3, resolved_by = $4,"
            " duration = greatest(0, round(extract(epoch FROM $2 - started_at)))::int"
            " WHERE monitor_id = $1 AND resolved_at IS NULL RETURNING *",
            monitor["id"],
            to_dt(resolved_at),
            alert_id,
            by,
        )
        incident_topic = "incident.resolved"
    else:  # pragma: no cover - a kind returned an action this module does not know
        raise ValueError(f"unknown incident action {flip.incident!r}")
    if incident is None:
        return []
    data = alert_data(incident, monitor["project_id"], await _project_name(conn, monitor))
    ids = [await outbox(conn, incident_topic, kind, alert_id, now, data)]
    if topic is not None:
        ids.append(await outbox(conn, topic, None, uuid.uuid4(), now, data))
    return ids
