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

_PROBE_INCIDENT = {
    "incident": {
        **_INCIDENT["incident"],
        "kind": "probe",
        "title": "API health is down",
        "name": "API health",
        "event_name": None,
        "service": "API",
        "environment": None,
        "started_at": "2026-11-01T14:26:00Z",
        "expected_interval": None,
        "details": {
            "url": "https://api.example.com/health",
            "method": "HEAD",
            "reason": "TLS handshake timed out after 10 s",
            "status": None,
            "timings": {"dns": 0.004, "connect": 0.012, "total": 10.0},
            "down_since": "2026-11-01T14:26:00Z",
            "failures": 6,
            "summary": "TLS handshake timed out after 10 s; 6 failed checks over 5 min;"
            " total 10 s (DNS 4 ms, connect 12 ms)",
        },
    },
    "project": {"id": 1, "name": "MyApp"},
}

_HEROKU: dict[str, Any] = {
    "heroku": {
        "id": 21,
        "name": "my-app",
        "app_name": "my-app",
        "slack_channel": "#ops",
        "check_interval": 5,
        "state": "down",
    },
    "project": {"id": 1, "name": "MyApp"},
    "checked_at": "2026-11-01T14:31:00Z",
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
    "probe.down": {
        "description": "An HTTP probe was down continuously for its timeout: an incident is open. details"
        " say why (the last result's reason, e.g. 'status 503 (expected 200 or 204)') and how long each phase"
        " took. Sent beside incident.opened.",
        "data": _PROBE_INCIDENT,
    },
    "probe.up": {
        "description": "A probe that was down answered as expected again: its incident is resolved."
        " Sent beside incident.resolved.",
        "data": {
            **_PROBE_INCIDENT,
            "incident": {**_PROBE_INCIDENT["incident"], "resolved_at": "2026-11-01T14:40:00Z", "duration": 840},
        },
    },
    "heroku.dyno_crashed": {
        "description": "Dynos of a Heroku app crashed (new since the last check): 🚨 ALERT: Dyno Crash Detected."
        " The app's incident opens with its first problem (incident.opened, kind heroku).",
        "data": {**_HEROKU, "dynos": [{"name": "web.1", "type": "web", "state": "crashed"}]},
    },
    "heroku.dynos_down": {
        "description": "Dynos of a Heroku app are down (new since the last check): ⚠️ WARNING: Dynos Down.",
        "data": {**_HEROKU, "dynos": [{"name": "worker.1", "type": "worker", "state": "down"}]},
    },
    "heroku.addon_changed": {
        "description": "Add-ons of a Heroku app left the provisioned state.",
        "data": {
            **_HEROKU,
            "addons": [
                {
                    "name": "postgresql-rigid-12345",
                    "service": "heroku-postgresql",
                    "plan": "heroku-postgresql:essential-0",
                    "state": "deprovisioning",
                }
            ],
        },
    },
    "heroku.recovered": {
        "description": "Dynos are back up (or add-ons provisioned again); all_clear says whether the app's"
        " incident resolved with it.",
        "data": {
            **_HEROKU,
            "heroku": {**_HEROKU["heroku"], "state": "up"},
            "dynos": [{"name": "web.1", "type": "web", "state": "up"}],
            "addons": [],
            "all_clear": True,
        },
    },
    "heroku.deploy": {
        "description": "A new release of a Heroku app with new code (another slug): 🚀 New Deploy Detected.",
        "data": {
            **_HEROKU,
            "heroku": {**_HEROKU["heroku"], "state": "up"},
            "release": {
                "version": 42,
                "user": "user@example.com",
                "slug": "b6a8ec82-0d5b-4f0c-9d4e-1d7c3c8d2c11",
                "status": "succeeded",
                "description": "Deploy 3e1f9a2",
                "created_at": "2026-11-01T14:30:12Z",
            },
        },
    },
    "heroku.config_changed": {
        "description": "A Heroku app's config vars changed (only a keyed hash is kept, never the values):"
        " ⚙️ Config Vars Changed.",
        "data": {**_HEROKU, "heroku": {**_HEROKU["heroku"], "state": "up"}},
    },
    "heroku.error": {
        "description": "A Heroku app cannot be checked (the API key was refused, no such app, Heroku unreachable):"
        " told once per kind of error; no alert is raised about the app meanwhile.",
        "data": {
            **_HEROKU,
            "heroku": {**_HEROKU["heroku"], "state": "error"},
            "error": {
                "code": "not_found",
                "message": "Heroku has no app named my-app (404), or the API key cannot see it",
                "since": 1793543460.0,
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
