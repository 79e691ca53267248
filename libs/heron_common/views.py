"""What an incident or a monitor looks like to the outside, built in one place.

The API, the alert messages (and so every webhook and Slack message) and anything that shows one
later (the dashboard) use these, so they never disagree. Pure: rows in, JSON-able dicts out.
"""

from __future__ import annotations

from typing import Any

from heron_common.db import iso, to_ts
from heron_common.monitors import event, rate
from heron_common.monitors.rate import RateParams


def incident_title(kind: str, name: str | None, event_name: str | None) -> str:
    """A human title for a new incident of ``kind``."""
    if kind == "event":
        return f"{event_name} went silent"
    if kind == "trigger":
        return f"{name or kind} is alerting"
    return f"{name or kind} is down"


def incident_view(row: Any) -> dict[str, Any]:
    """An incident, for the API and for alerts. Event streams keep the fields they always had."""
    kind = row.get("kind") or "event"
    return {
        "id": row["id"],
        "monitor_id": row["monitor_id"],
        "kind": kind,
        "title": row.get("title") or incident_title(kind, row.get("name"), row.get("event_name")),
        "name": row.get("name") or row.get("event_name"),
        "event_name": row.get("event_name"),
        "service": row.get("service") or None,
        "environment": row.get("environment") or None,
        "started_at": iso(row["started_at"]),
        "opened_at": iso(row["opened_at"]),
        "acknowledged_at": iso(row.get("acknowledged_at")),
        "acknowledged_by": row.get("acknowledged_by"),
        "resolved_at": iso(row["resolved_at"]),
        "resolved_by": row.get("resolved_by"),
        "duration": row["duration"],
        "expected_interval": row.get("expected_interval"),
        "details": row.get("details") or {},
    }


def alert_data(incident: Any, project_id: int, project_name: str) -> dict[str, Any]:
    """The ``data`` of every ``incident.*`` alert."""
    return {"incident": incident_view(incident), "project": {"id": project_id, "name": project_name}}


def monitor_view(row: Any, params: RateParams | None = None, now: float | None = None) -> dict[str, Any]:
    """A monitor for the API. An event stream also says how its deadline was reached
    (``detection``: the model, expected interval, how long it has been quiet at ``now``, how many
    events would normally have come since, how improbable that silence is, the alarm threshold, and
    the learned hour-of-day / day-of-week profile), from the same model the detector runs with
    ``params`` (the settings': ``heron_common.monitors.event.params_from``)."""
    config = row.get("config") or {}
    deadline = row["deadline"]
    last_seen = to_ts(row["last_seen"])
    detection: dict[str, Any] | None = None
    if row["kind"] == event.KIND:
        params = params or RateParams()
        monitor = event.Monitor(row["state"], event.load(row.get("cadence"), params), row["event_count"], config)
        expected = monitor.expected_interval(params)
        detection = event.explain(monitor, now if now is not None else (last_seen or 0.0), params)
        if detection["model"] in ("rate", "regular"):
            learned = rate.profile(monitor.learned, params)
            detection["profile"] = {k: [round(f, 3) for f in v] for k, v in learned.items()}
    else:
        expected = config.get("expected_interval")
    tolerance = None
    if deadline is not None and last_seen is not None and expected is not None:
        tolerance = round(deadline.timestamp() - last_seen - expected, 3)
    view = {
        "id": row["id"],
        "kind": row["kind"],
        "name": row.get("name") or row.get("event_name"),
        "event_name": row.get("event_name"),
        "service": row.get("service") or None,
        "environment": row.get("environment") or None,
        "state": row["state"],
        "paused": row["state"] == "paused",
        "event_count": row["event_count"],
        "last_seen": iso(row["last_seen"]),
        "expected_interval": round(float(expected), 3) if expected is not None else None,
        "tolerance": tolerance,
        "deadline": iso(deadline),
        "overrides": {k: config[k] for k in ("expected_interval", "grace", "sensitivity") if k in config},
        "created_at": iso(row["created_at"]),
    }
    if detection is not None:
        view["detection"] = detection
    return view
