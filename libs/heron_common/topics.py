"""Every topic Heron emits, with an example ``data`` each (served by ``GET /v1/topics``)."""

from __future__ import annotations

from typing import Any

_INCIDENT = {
    "incident": {
        "id": 42,
        "monitor_id": 7,
        "kind": "event",
        "title": "payment.completed went silent",
        "event_name": "payment.completed",
        "service": "payments",
        "environment": "production",
        "started_at": "2026-11-01T14:22:00Z",
        "opened_at": "2026-11-01T14:58:30Z",
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolved_by": None,
        "duration": None,
        "expected_interval": 180.0,
        # Why the silence is abnormal (an event stream; heron_common.monitors.event.explain).
        "details": {
            "silence": {
                "model": "rate",
                "deadline": "2026-11-01T14:58:18.000Z",
                "quiet_for": 2190.0,
                "expected_interval": 180.0,
                "expected_arrivals": 12.17,
                "expected_events": 12.17,
                "events_per_cluster": 1.0,
                "silence_probability": 5.2e-06,
                "alarm_probability": 5.7e-06,
                "false_alarms_per_year": 1.0,
            }
        },
    },
    "project": {"id": 1, "name": "MyApp"},
}

_TRIGGER_INCIDENT = {
    "incident": {
        **_INCIDENT["incident"],
        "kind": "trigger",
        "title": "Database CPU above 90% is alerting",
        "event_name": None,
        "service": "API",
        "environment": None,
        "started_at": "2026-11-01T14:31:00Z",
        "opened_at": "2026-11-01T14:31:00Z",
        "expected_interval": None,
        "details": {
            "trigger_kind": "manual",
            "reason": "alert",
            "critical": True,
            "escalate": True,
            "body": '{"host":"server1", "status":"onfire"}',
            "content_type": "application/json",
            "data": {"host": "server1", "status": "onfire"},
        },
    },
    "project": {"id": 1, "name": "MyApp"},
}

_HEARTBEAT = {
    "heartbeat": {
        "id": 12,
        "name": "Daily DB backup",
        "service": "db",
        "environment": "production",
        "state": "late",
        "interval": 86400.0,
        "grace": 600.0,
        "last_ping_at": "2026-11-01T02:04:10Z",
        "last_ping_kind": "success",
        "last_exit_code": None,
        "run_started_at": None,
        "deadline": "2026-11-02T02:14:10Z",
    },
    "project": {"id": 1, "name": "MyApp"},
}

TOPICS: dict[str, dict[str, Any]] = {
    "incident.opened": {
        "description": "A monitor went silent past its deadline: an incident is open. An event stream's"
        " details.silence says why: the model (rate, regular or fixed), the deadline, how long it has been"
        " quiet, how many events would normally have come in that time, how improbable that silence is"
        " and the probability below which Heron alerts.",
        "data": _INCIDENT,
    },
    "incident.acknowledged": {
        "description": "Someone acknowledged an open incident (POST /v1/incidents/{id}/acknowledge).",
        "data": {
            **_INCIDENT,
            "incident": {
                **_INCIDENT["incident"],
                "acknowledged_at": "2026-11-01T15:00:00Z",
                "acknowledged_by": "api key heron_AbCd…wxyz",
            },
        },
    },
    "incident.resolved": {
        "description": "The monitor came back; duration is the real silence in seconds.",
        "data": {
            **_INCIDENT,
            "incident": {**_INCIDENT["incident"], "resolved_at": "2026-11-01T15:04:00Z", "duration": 2520},
        },
    },
    "trigger.alerting": {
        "description": "A trigger went from resolved to alerting (POST /triggers/{id}/alert, or a liveness"
        " trigger with no check-in within its timeout); details carry the alert's body and the"
        " critical/escalate flags. Sent beside incident.opened.",
        "data": _TRIGGER_INCIDENT,
    },
    "trigger.acknowledged": {
        "description": "Someone acknowledged an alerting trigger: no further escalation."
        " Sent beside incident.acknowledged.",
        "data": {
            **_TRIGGER_INCIDENT,
            "incident": {
                **_TRIGGER_INCIDENT["incident"],
                "acknowledged_at": "2026-11-01T14:33:00Z",
                "acknowledged_by": "api key heron_AbCd…wxyz",
            },
        },
    },
    "trigger.resolved": {
        "description": "A trigger was resolved (by hand, or by a liveness check-in) and may fire again."
        " Sent beside incident.resolved.",
        "data": {
            **_TRIGGER_INCIDENT,
            "incident": {**_TRIGGER_INCIDENT["incident"], "resolved_at": "2026-11-01T14:40:00Z", "duration": 540},
        },
    },
    "heartbeat.late": {
        "description": "A heartbeat's expected ping did not come; its grace period is running (no incident yet).",
        "data": _HEARTBEAT,
    },
    "heartbeat.down": {
        "description": "A heartbeat missed its grace period, or its job reported a failure: an incident is open.",
        "data": {**_HEARTBEAT, "heartbeat": {**_HEARTBEAT["heartbeat"], "state": "down", "deadline": None}},
    },
    "heartbeat.up": {
        "description": "A heartbeat that was down pinged again: its incident is resolved.",
        "data": {
            **_HEARTBEAT,
            "heartbeat": {
                **_HEARTBEAT["heartbeat"],
                "state": "up",
                "last_ping_at": "2026-11-02T03:01:00Z",
                "deadline": "2026-11-03T02:00:00Z",
            },
        },
    },
    "notice.endpoint_disabled": {
        "description": "A webhook endpoint was disabled (410 Gone, or failing for too long).",
        "data": {
            "endpoint": {"id": 3, "url": "https://example.com/hooks/heron", "reason": "HTTP 410 Gone"},
            "project": {"id": 1, "name": "MyApp"},
        },
    },
}


def valid_pattern(pattern: str) -> bool:
    if pattern == "*" or pattern in TOPICS:
        return True
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return any(topic.startswith(prefix) for topic in TOPICS)
    return False
