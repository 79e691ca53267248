"""What an incident or a monitor looks like to the outside, built in one place.

The API, the alert messages (and so every webhook and Slack message) and anything that shows one
later (the dashboard) use these, so they never disagree. Pure: rows in, JSON-able dicts out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from heron_common import openapi as oa
from heron_common.db import iso, to_ts
from heron_common.monitors import event, rate
from heron_common.monitors.rate import RateParams


def incident_title(kind: str, name: str | None, event_name: str | None) -> str:
    """A human title for a new incident of ``kind``."""
    if kind == "event":
        return f"{event_name} went silent"
    if kind == "trigger":
        return f"{name or kind} is alerting"
    if kind == "heroku":
        return f"Heroku app {name or '?'} has dynos or add-ons in trouble"
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


# What incident_view returns, for the API's OpenAPI document (kept beside the view it describes).
INCIDENT_SCHEMA = oa.obj(
    {
        "id": oa.ID,
        "monitor_id": oa.ID,
        "kind": oa.STRING,
        "title": oa.STRING,
        "name": oa.OPTIONAL_STRING,
        "event_name": oa.OPTIONAL_STRING,
        "service": oa.OPTIONAL_STRING,
        "environment": oa.OPTIONAL_STRING,
        "started_at": oa.TIME,
        "opened_at": oa.TIME,
        "acknowledged_at": oa.OPTIONAL_TIME,
        "acknowledged_by": oa.OPTIONAL_STRING,
        "resolved_at": oa.OPTIONAL_TIME,
        "resolved_by": oa.OPTIONAL_STRING,
        "duration": oa.OPTIONAL_NUMBER,
        "expected_interval": oa.OPTIONAL_NUMBER,
        "details": oa.OBJECT,
    }
)


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


MONITOR_SCHEMA = oa.obj(
    {
        "id": oa.ID,
        "kind": oa.STRING,
        "name": oa.OPTIONAL_STRING,
        "event_name": oa.OPTIONAL_STRING,
        "service": oa.OPTIONAL_STRING,
        "environment": oa.OPTIONAL_STRING,
        "state": oa.STRING,
        "paused": oa.BOOLEAN,
        "event_count": oa.OPTIONAL_INTEGER,
        "last_seen": oa.OPTIONAL_TIME,
        "expected_interval": oa.OPTIONAL_NUMBER,
        "tolerance": oa.OPTIONAL_NUMBER,
        "deadline": oa.OPTIONAL_TIME,
        "overrides": oa.OBJECT,
        "created_at": oa.TIME,
    }
)


# -- how a person sees it (the dashboard, status badges) --------------------------------------

# The states the dashboard shows, whatever the kind calls them (a trigger's ``alerting`` is down,
# its ``resolved`` is up; a probe ``failing`` for less than its timeout is late, as a heartbeat in
# its grace period: something is wrong, no incident yet), in the order of concern. ``error`` is a
# monitor that cannot check what it watches (a Heroku app whose key or name Heroku refuses): no
# alert about the app, but nobody is watching it either.
DISPLAY_STATES = ("down", "late", "error", "acknowledged", "new", "up", "paused")
_DISPLAY = {
    "new": "new",
    "up": "up",
    "resolved": "up",
    "late": "late",
    "failing": "late",
    "down": "down",
    "alerting": "down",
    "acknowledged": "acknowledged",
    "error": "error",
    "paused": "paused",
}


def display_state(state: str, acknowledged: bool = False) -> str:
    """New / Up / Late / Down / Error / Acknowledged / Paused for a monitor in ``state`` whose
    open incident is (or is not) ``acknowledged``. A state a newer kind adds shows as new until it
    is mapped here."""
    shown = _DISPLAY.get(state, "new")
    return "acknowledged" if shown == "down" and acknowledged else shown


# A service's state (its badge) is the worst of its monitors' in this order: new and paused
# monitors count only when nothing else does (a heartbeat that never pinged yet does not make
# a healthy service look new).
SERVICE_ORDER = ("down", "late", "error", "acknowledged", "up", "new", "paused")


def worst_state(shown: Iterable[str]) -> str | None:
    """The service state of monitors displayed as ``shown`` (display states); None for none."""
    present = set(shown)
    return next((s for s in SERVICE_ORDER if s in present), "new" if present else None)


def human_seconds(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``1 h 20 min``, ``2 d 3 h``; ``—`` for None."""
    if seconds is None:
        return "—"
    s = abs(float(seconds))
    if s < 10:
        return f"{s:.1f} s".replace(".0 s", " s")
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        minutes, rest = divmod(round(s), 60)
        return f"{minutes} min" + (f" {rest} s" if rest and minutes < 10 else "")
    if s < 86400:
        hours, rest = divmod(round(s / 60), 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days, rest = divmod(round(s / 3600), 24)
    return f"{days} d" + (f" {rest} h" if rest else "")


def ago(at: float | None, now: float) -> str:
    """``3 min ago`` (``in 3 min`` for a time ahead); ``never`` for None."""
    if at is None:
        return "never"
    delta = now - at
    if abs(delta) < 1:
        return "just now"
    return f"{human_seconds(delta)} ago" if delta > 0 else f"in {human_seconds(delta)}"


# Alert topics that repeat the incident.* alert of the same change (sent beside it): a live view
# shows the incident alert and skips these.
_REPEATS = ("trigger.", "heartbeat.down", "heartbeat.up", "probe.")


# What a live view says for each Heroku topic (heron_common.monitors.heroku.TOPICS).
_HEROKU_TOPICS = {
    "heroku.dyno_crashed": "a dyno crashed",
    "heroku.dynos_down": "dynos are down",
    "heroku.addon_changed": "an add-on is not provisioned",
    "heroku.recovered": "recovered",
    "heroku.deploy": "new deploy",
    "heroku.config_changed": "config vars changed",
    "heroku.error": "cannot be checked",
}


def alert_summary(message: Any) -> tuple[int, dict[str, Any]] | None:
    """The project an alert message belongs to and what a live view shows of it, or None (not
    an alert of a project, or one that repeats another). Pure: a decoded message in."""
    if not isinstance(message, dict):
        return None
    topic, data = message.get("type"), message.get("data")
    if not isinstance(topic, str) or not isinstance(data, dict) or topic.startswith(_REPEATS):
        return None
    project = data.get("project")
    project_id = project.get("id") if isinstance(project, dict) else None
    if type(project_id) is not int:
        return None
    summary: dict[str, Any] = {"topic": topic, "monitor_id": None, "incident_id": None}
    incident, heartbeat, endpoint = data.get("incident"), data.get("heartbeat"), data.get("endpoint")
    heroku = data.get("heroku")
    if isinstance(incident, dict):
        name = incident.get("name") or incident.get("event_name") or "a monitor"
        summary["monitor_id"], summary["incident_id"] = incident.get("monitor_id"), incident.get("id")
        summary["text"] = {
            "incident.opened": incident.get("title") or f"{name} is down",
            "incident.acknowledged": f"{name}: incident acknowledged",
            "incident.resolved": f"{name} recovered",
        }.get(topic, f"{name}: {topic}")
    elif isinstance(heartbeat, dict):
        summary["monitor_id"] = heartbeat.get("id")
        summary["text"] = f"{heartbeat.get('name') or 'a heartbeat'} is {heartbeat.get('state') or topic}"
    elif isinstance(heroku, dict):
        summary["monitor_id"] = heroku.get("id")
        what = _HEROKU_TOPICS.get(topic, topic)
        summary["text"] = f"Heroku app {heroku.get('app_name') or heroku.get('name') or '?'}: {what}"
    elif isinstance(endpoint, dict):
        summary["text"] = f"webhook endpoint {endpoint.get('id')} was disabled: {endpoint.get('reason')}"
    else:
        summary["text"] = topic
    return project_id, summary
