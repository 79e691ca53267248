"""Slack messages for incidents, as Block Kit with a plain ``text`` fallback. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _unit(count: int, name: str) -> str:
    return f"{count} {name}{'' if count == 1 else 's'}"


def humanize(seconds: float) -> str:
    """``45 seconds``, ``18 minutes``, ``2 hours 5 minutes``, ``1 day 3 hours``: two units at most."""
    if 0 < seconds < 9.95 and round(seconds, 1) != round(seconds):
        return f"{seconds:.1f} seconds"  # sub-second cadences (demos, tests) stay readable
    s = max(0, round(seconds))
    if s < 60:
        return _unit(s, "second")
    if s < 3600:
        return _unit(round(s / 60), "minute")
    big, small, big_name, small_name = (3600, 60, "hour", "minute") if s < 86400 else (86400, 3600, "day", "hour")
    count, rest = divmod(s, big)
    parts = [_unit(count, big_name)]
    if rest // small:
        parts.append(_unit(rest // small, small_name))
    return " ".join(parts)


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]}


def _one_in(p: float) -> str:
    if p <= 0 or p < 1e-9:
        return "less than 1 in a billion"
    if p >= 0.5:
        return f"{p:.0%}"
    return f"1 in {round(1 / p):,}"


def _events(n: float) -> str:
    if n >= 10:
        return f"~{n:,.0f} events"
    return f"~{n:.1f} event{'' if round(n, 1) == 1 else 's'}"


def silence_fields(silence: Any, started: float | None) -> list[tuple[str, str]]:
    """Why an event stream's silence is an incident (``details.silence``, written by the detector):
    by when the next event was expected, how many would normally have come, how improbable the
    silence is under what the stream has shown."""
    if not isinstance(silence, dict):
        return []
    pairs: list[tuple[str, str]] = []
    due = _ts(silence.get("deadline")) if isinstance(silence.get("deadline"), str) else None
    if due is not None and started is not None:
        pairs.append(("Expected by", f"{humanize(due - started)} after the last event"))
    if isinstance(silence.get("expected_events"), int | float):
        pairs.append(("Normally by now", _events(float(silence["expected_events"]))))
    probability, threshold = silence.get("silence_probability"), silence.get("alarm_probability")
    if isinstance(probability, int | float):
        model = {"rate": "learned rate", "regular": "regular rhythm"}.get(str(silence.get("model")), "learned")
        chance = f"{_one_in(float(probability))} ({model}"
        if isinstance(threshold, int | float):
            chance += f"; alerts below {_one_in(float(threshold))}"
        pairs.append(("Chance of this silence", chance + ")"))
    elif silence.get("model") == "fixed":
        pairs.append(("Rule", "fixed interval + grace"))
    return pairs


def incident_message(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    incident = data["incident"]
    service = incident.get("service") or "—"
    environment = incident.get("environment") or "—"
    # What the incident is about: an event stream names its event, other kinds their monitor.
    kind = incident.get("kind") or "event"
    subject = "Event" if kind == "event" else kind.capitalize()
    event = incident.get("event_name") or incident.get("name") or incident.get("title") or "monitor"
    if topic == "incident.acknowledged":
        title = "👀 Heron incident acknowledged"
        pairs = [
            (subject, event),
            ("Acknowledged by", incident.get("acknowledged_by") or "someone"),
            ("Service", service),
            ("Environment", environment),
        ]
    elif topic == "incident.resolved":
        title = "✅ Heron recovery"
        downtime = humanize(incident.get("duration") or 0)
        pairs = [(subject, event), ("Downtime", downtime), ("Service", service), ("Environment", environment)]
    else:
        title = "🚨 Heron alert"
        started, opened = _ts(incident.get("started_at")), _ts(incident.get("opened_at"))
        last_seen = f"{humanize(opened - started)} ago" if started is not None and opened is not None else "never"
        expected = incident.get("expected_interval")
        interval = f"~{humanize(expected)}" if expected else "unknown"
        pairs = [(subject, event), ("Last seen", last_seen), ("Expected interval", interval)]
        pairs += silence_fields((incident.get("details") or {}).get("silence"), started)
        pairs += [("Service", service), ("Environment", environment)]
        if kind != "event":
            # A declared monitor: what it said (a trigger's body, a heartbeat's last ping) beats a cadence.
            pairs = [(subject, event), ("What happened", incident.get("title") or "—")]
            # A trigger's body, or a probe's reason and timings.
            details = incident.get("details") or {}
            body = details.get("body") or details.get("summary")
            if body:
                pairs.append(("Details", str(body)[:1000]))
            pairs += [("Service", service), ("Environment", environment)]
    text = f"{title}: " + ", ".join(f"{k}: {v}" for k, v in pairs)
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
            _fields(pairs),
        ],
    }


# Slack refuses a section text over 3,000 characters; an alert's body may be 10,240 bytes.
SLACK_BODY_CHARS = 2_900
_TRIGGER_TITLES = {
    "opened": "🚨 Heron trigger alerting",
    "alerting": "🚨 Heron trigger alerting",
    "acknowledged": "👀 Heron trigger acknowledged",
    "resolved": "✅ Heron trigger resolved",
}


def trigger_message(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    """A trigger's incident (``incident.*`` of kind trigger, or ``trigger.*``), with the alert's body."""
    incident = data["incident"]
    details = incident.get("details") or {}
    title = _TRIGGER_TITLES.get(topic.rsplit(".", 1)[-1], "🚨 Heron trigger")
    pairs = [("Trigger", incident.get("title") or "trigger"), ("Service", incident.get("service") or "—")]
    if topic.endswith(".acknowledged"):
        pairs.append(("Acknowledged by", incident.get("acknowledged_by") or "someone"))
    elif topic.endswith(".resolved"):
        pairs.append(("Alerting for", humanize(incident.get("duration") or 0)))
    else:
        pairs.append(("Why", "no check-in within its timeout" if details.get("reason") == "timeout" else "alerted"))
        pairs.append(("Critical", "yes" if details.get("critical", True) else "no"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        _fields(pairs),
    ]
    body = details.get("body")
    if body:
        shown = body if len(body) <= SLACK_BODY_CHARS else body[:SLACK_BODY_CHARS] + "…"
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": shown, "emoji": False}})
    text = f"{title}: " + ", ".join(f"{k}: {v}" for k, v in pairs)
    return {"text": text, "blocks": blocks}


def notice_message(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    if topic == "notice.endpoint_disabled":
        endpoint = data["endpoint"]
        title = "⚠️ Heron webhook endpoint disabled"
        pairs = [("Endpoint", endpoint["url"]), ("Reason", endpoint["reason"])]
    else:
        title = f"ℹ️ Heron notice: {topic.removeprefix('notice.')}"
        pairs = [(k, str(v)) for k, v in data.items() if k != "project"]
    return {
        "text": f"{title}: " + ", ".join(f"{k}: {v}" for k, v in pairs),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
            _fields(pairs),
        ],
    }


_HEARTBEAT_TITLES = {
    "heartbeat.late": "⏰ Heartbeat late",
    "heartbeat.down": "🔴 Heartbeat down",
    "heartbeat.up": "✅ Heartbeat up again",
}


def heartbeat_message(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    beat = data["heartbeat"]
    title = f"{_HEARTBEAT_TITLES.get(topic, topic)}: {beat.get('name') or 'heartbeat'}"
    if beat.get("schedule"):
        expected = f"{beat['schedule']} ({beat.get('tz') or 'UTC'}) + {humanize(beat.get('grace') or 0)} grace"
    else:
        expected = f"every {humanize(beat.get('interval') or 0)} + {humanize(beat.get('grace') or 0)} grace"
    last = beat.get("last_ping_at") or "never"
    if beat.get("last_exit_code") not in (None, 0):
        last += f" (exit code {beat['last_exit_code']})"
    elif beat.get("last_ping_kind") == "fail":
        last += " (reported failure)"
    pairs = [
        ("Service", beat.get("service") or "—"),
        ("Environment", beat.get("environment") or "—"),
        ("Expected", expected),
        ("Last ping", last),
    ]
    if beat.get("deadline"):
        pairs.append(("Alerts at" if topic == "heartbeat.late" else "Next due", beat["deadline"]))
    return {
        "text": f"{title}: " + ", ".join(f"{k}: {v}" for k, v in pairs),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
            _fields(pairs),
        ],
    }


_PROBE_TOPICS = {"probe.down": "incident.opened", "probe.up": "incident.resolved"}


def _dyno_lines(dynos: list[dict[str, Any]]) -> list[str]:
    return [f"• {d.get('name')} ({d.get('type')})" for d in dynos]


def _addon_lines(addons: list[dict[str, Any]]) -> list[str]:
    return [f"• {a.get('name')} ({a.get('service') or a.get('plan') or 'add-on'}): {a.get('state')}" for a in addons]


def heroku_text(topic: str, data: dict[str, Any]) -> str:
    """A Heroku app's message, in the PRD's words (Slack mrkdwn): the first line is the title."""
    app = (data.get("heroku") or {}).get("app_name") or "?"
    if topic == "heroku.dyno_crashed":
        lines = ["🚨 *ALERT: Dyno Crash Detected* 🚨", f"App: {app}", "Crashed dynos:", *_dyno_lines(data["dynos"])]
    elif topic == "heroku.dynos_down":
        lines = ["⚠️ *WARNING: Dynos Down* ⚠️", f"App: {app}", "Down dynos:", *_dyno_lines(data["dynos"])]
    elif topic == "heroku.addon_changed":
        lines = ["🧩 *ALERT: Add-on Not Provisioned* 🧩", f"App: {app}", "Add-ons:", *_addon_lines(data["addons"])]
    elif topic == "heroku.recovered":
        lines = ["✅ *RECOVERED: Dynos Back Up* ✅" if data.get("dynos") else "✅ *RECOVERED* ✅", f"App: {app}"]
        if data.get("dynos"):
            lines += ["Recovered dynos:", *_dyno_lines(data["dynos"])]
        if data.get("addons"):
            lines += ["Add-ons:", *_addon_lines(data["addons"])]
        if not data.get("all_clear"):
            lines.append("Other problems remain.")
    elif topic == "heroku.deploy":
        release = data.get("release") or {}
        lines = [
            "🚀 *New Deploy Detected* 🚀",
            f"App: {app}",
            f"Version: v{release.get('version')}",
            f"Deployed by: {release.get('user') or 'unknown'}",
        ]
    elif topic == "heroku.config_changed":
        lines = ["⚙️ *Config Vars Changed* ⚙️", f"App: {app}", "Review changes in Heroku dashboard."]
    elif topic == "heroku.error":
        error = data.get("error") or {}
        lines = ["⚠️ *Heroku monitoring cannot check the app* ⚠️", f"App: {app}", str(error.get("message") or "")]
    else:
        lines = [f"ℹ️ *{topic}*", f"App: {app}"]
    return "\n".join(lines)


def heroku_message(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    """Plain mrkdwn text, as the PRD's templates are written (no blocks: the text is the message)."""
    return {"text": heroku_text(topic, data)}


def message(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Slack message for any topic Heron emits."""
    if topic.startswith("heroku."):
        return heroku_message(topic, data)
    if topic.startswith("trigger.") or (
        topic.startswith("incident.") and (data.get("incident") or {}).get("kind") == "trigger"
    ):
        return trigger_message(topic, data)
    if topic.startswith("incident."):
        return incident_message(topic, data)
    if topic in _PROBE_TOPICS:  # the probe's incident, as its incident.* alert shows it
        return incident_message(_PROBE_TOPICS[topic], data)
    if topic.startswith("heartbeat."):
        return heartbeat_message(topic, data)
    return notice_message(topic, data)
