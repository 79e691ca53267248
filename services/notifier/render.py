"""What goes over the wire for a delivery. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heron_common import webhooks
from heron_notifier import slack


def webhook_payload(message: dict[str, Any]) -> dict[str, Any]:
    """``{"topic", "created", "data", "meta"}`` as published; ``created`` is when the alert was made,
    so a retry sends the same body (its ``webhook-timestamp`` is the attempt's own time)."""
    created = datetime.fromtimestamp(float(message["at"]), UTC).isoformat(timespec="seconds")
    return {"topic": message["type"], "created": created, "data": message["data"], "meta": message.get("meta")}


def request(
    fmt: str, message: dict[str, Any], alert_id: str, secrets: tuple[str, ...], attempted_at: float
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt."""
    headers = {"Content-Type": "application/json"}
    if fmt == "slack_bot":
        raise ValueError("a Slack bot message is built by bot_request (it needs the channel and token)")
    if fmt == "slack":
        return webhooks.body_bytes(slack.message(message["type"], message["data"])), headers
    body = webhooks.body_bytes(webhook_payload(message))
    if secrets:
        headers.update(webhooks.signing_headers(secrets, alert_id, int(attempted_at), body))
    return body, headers


def bot_request(channel: str, message: dict[str, Any], token: str) -> tuple[bytes, dict[str, str]]:
    """``chat.postMessage`` to ``channel`` as the Slack bot (Web API: JSON body, Bearer token)."""
    body = {"channel": channel, **slack.message(message["type"], message["data"]), "unfurl_links": False}
    headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}
    return webhooks.body_bytes(body), headers
