"""What an incident alert says: the ``data`` of ``incident.opened`` / ``incident.resolved``."""

from __future__ import annotations

from typing import Any

import asyncpg

from heron_common.db import iso


def incident_data(incident: asyncpg.Record, project_name: str) -> dict[str, Any]:
    return {
        "incident": {
            "id": incident["id"],
            "monitor_id": incident["monitor_id"],
            "kind": "event",
            "event_name": incident["event_name"],
            "service": incident["service"] or None,
            "environment": incident["environment"] or None,
            "started_at": iso(incident["started_at"]),
            "opened_at": iso(incident["opened_at"]),
            "resolved_at": iso(incident["resolved_at"]),
            "duration": incident["duration"],
            "expected_interval": incident["expected_interval"],
        },
        "project": {"id": incident["project_id"], "name": project_name},
    }
