"""What a page says, on each channel. Pure: no I/O.

Every page names the incident, why this person is paged (on call, a reminder, an escalation), and
carries its own acknowledge link (``{HERON_PUBLIC_URL}/ack/{token}``); the Slack message also has
an Acknowledge button whose value is the same token (served by ingest's ``/slack/interactivity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from heron_notifier.slack import SLACK_BODY_CHARS

ACTION_ID = "heron_acknowledge"  # ingest's oncall_ack.ACTION_ID: the two must agree
TOPIC = "oncall.page"
REASONS = {
    "primary": "you are on call",
    "repeat": "reminder: you are on call and it is still unacknowledged",
    "escalation": "escalated to you: the on-call person has not acknowledged it",
}


@dataclass(frozen=True, slots=True)
class Page:
    """One page to send: the step and what it is about (``incident``: ``views.incident_view``)."""

    step_id: str
    reason: str
    email: str
    name: str | None
    incident: dict[str, Any]
    project: dict[str, Any]
    ack_url: str | None
    ack_token: str | None
    due_at: float


def ack_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/ack/{token}"


def subject(page: Page) -> str:
    title = page.incident.get("title") or "incident"
    tag = {"repeat": " (reminder)", "escalation": " (escalated)"}.get(page.reason, "")
    return f"[Heron] {title}{tag}"


def _facts(page: Page) -> list[tuple[str, str]]:
    incident = page.incident
    facts = [
        ("Why you", REASONS.get(page.reason, page.reason)),
        ("Project", str(page.project.get("name") or page.project.get("id"))),
        ("Service", incident.get("service") or "—"),
        ("Opened", incident.get("opened_at") or "—"),
    ]
    if incident.get("environment"):
        facts.append(("Environment", incident["environment"]))
    return facts


def _body(page: Page) -> str | None:
    body = (page.incident.get("details") or {}).get("body")
    if not body:
        return None
    text = str(body)
    return text if len(text) <= SLACK_BODY_CHARS else text[:SLACK_BODY_CHARS] + "…"


def email_text(page: Page) -> str:
    lines = [f"{page.incident.get('title') or 'An incident'} needs someone.", ""]
    lines += [f"{k}: {v}" for k, v in _facts(page)]
    body = _body(page)
    if body:
        lines += ["", "Details:", body]
    lines.append("")
    if page.ack_url:
        lines += ["Acknowledge (stops further pages and escalation):", page.ack_url, ""]
        lines.append("The link works once and expires; it acknowledges this incident only.")
    else:
        lines.append("Acknowledge it in Heron: POST /v1/incidents/{}/acknowledge".format(page.incident.get("id")))
    return "\n".join(lines) + "\n"


def slack_message(page: Page, *, channel: str | None = None) -> dict[str, Any]:
    """Block Kit for chat.postMessage (``channel``: a member id, for the bot) or an incoming webhook."""
    title = f"🚨 {page.incident.get('title') or 'Heron incident'}"
    if page.reason == "escalation":
        title = f"⏫ Escalated: {page.incident.get('title') or 'Heron incident'}"
    elif page.reason == "repeat":
        title = f"🔁 Still unacknowledged: {page.incident.get('title') or 'Heron incident'}"
    facts = _facts(page)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts]},
    ]
    body = _body(page)
    if body:
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": body, "emoji": False}})
    if page.ack_token:
        button: dict[str, Any] = {
            "type": "button",
            "style": "primary",
            "text": {"type": "plain_text", "text": "Acknowledge", "emoji": False},
            "action_id": ACTION_ID,
            "value": page.ack_token,
        }
        blocks.append({"type": "actions", "elements": [button]})
    if page.ack_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{page.ack_url}|Acknowledge>"}]})
    message: dict[str, Any] = {"text": f"{title}: " + ", ".join(f"{k}: {v}" for k, v in facts), "blocks": blocks}
    if channel is not None:
        message["channel"] = channel
    return message


def webhook_payload(page: Page) -> dict[str, Any]:
    """``{"topic": "oncall.page", "created", "data", "meta"}``, signed like every Heron webhook."""
    created = datetime.fromtimestamp(page.due_at, UTC).isoformat(timespec="seconds")
    return {
        "topic": TOPIC,
        "created": created,
        "data": {
            "page": {"id": page.step_id, "reason": page.reason, "email": page.email, "acknowledge_url": page.ack_url},
            "incident": page.incident,
            "project": page.project,
        },
        "meta": None,
    }
