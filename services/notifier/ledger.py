"""The delivery ledger in Postgres: one row per (alert, target), claimed under a lease.

- ``record_alert`` turns an alert into its delivery rows in one transaction (unique on
  ``(alert_id, target_kind, target)``, so a redelivered alert creates nothing new); the consumer
  acks only after it commits.
- ``claim`` takes due rows with ``FOR UPDATE SKIP LOCKED`` and stamps a lease (``locked_until``)
  that outlives the request timeout: no other notifier claims the row while the attempt may still
  be in flight, and if this notifier dies the lease lapses and another one retries it.
- Webhook rows are signed with the endpoint's secret and every rotated-out secret still in its
  overlap (``webhook_secrets``), newest first.
- ``finish`` records attempts in batches, each only while its lease is still ours, and keeps the
  endpoints' health (a success clears ``failing_since``; 410 or failing too long disables).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from heron_common import messages
from heron_common.db import to_dt
from heron_common.webhooks import topic_matches
from heron_notifier.policy import Decision

SLACK, WEBHOOK = "slack", "webhook"
# A message posted by the Slack bot (chat.postMessage, SLACK_BOT_TOKEN) to a channel named by the
# alert: a Heroku monitor's ``slack_channel``. The target is the channel.
SLACK_BOT = "slack_bot"


def project_slack(project_id: int) -> str:
    """The target identity of a project's Slack incoming-webhook URL (``deliveries.target``).

    Not the URL: that is a credential, stored sealed (secretbox.py) in ``projects`` and read, and
    opened, when the delivery is attempted. An alert is recorded once per project, so this keeps
    ``(alert_id, target_kind, target)`` unique exactly as the URL did.
    """
    return f"project:{project_id}"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    alert_id: str
    project_id: int
    topic: str
    target_kind: str
    target: str
    payload: dict[str, Any]
    attempts: int
    lease: float
    endpoint_id: int | None = None
    url: str | None = None  # where to send: the project's Slack URL (sealed) or the endpoint's current URL
    format: str = "json"
    secrets: tuple[str, ...] = ()  # newest first
    endpoint_enabled: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    claimed: Claimed
    decision: Decision
    attempted_at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    response_body: str | None
    sent: bool = True  # False when nothing went out (endpoint disabled)


@dataclass(frozen=True, slots=True)
class Disabled:
    endpoint_id: int
    project_id: int
    url: str
    reason: str


def slack_targets(
    topic: str, data: dict[str, Any], project_slack_url: str | None, slack_bot: bool
) -> list[tuple[str, str, int | None]]:
    """Where Slack hears of an alert (pure). ``project_slack_url`` is the target standing for the
    project's Slack URL (:func:`project_slack`), None when the project has none.

    The project's Slack URL gets incidents and notices; a kind's own topic (trigger.alerting…)
    repeats the incident.* alert of the same change, so it goes only to endpoints that ask for it.
    A Heroku app is the other way round: its ``heroku.*`` topics are the messages (one per crash,
    deploy, config change…, in the PRD's words), posted by the bot to the app's own channel, or
    with no bot token to the project's Slack URL; its ``incident.*`` alerts would repeat them, so
    they go only to endpoints that ask for them.
    """
    family = topic.split(".", 1)[0]
    if family == "heroku":
        channel = (data.get("heroku") or {}).get("slack_channel")
        if slack_bot and isinstance(channel, str) and channel:
            return [(SLACK_BOT, channel, None)]
        return [(SLACK, project_slack_url, None)] if project_slack_url else []
    if family == "incident" and (data.get("incident") or {}).get("kind") == "heroku":
        return []
    if project_slack_url and family in ("incident", "notice"):
        return [(SLACK, project_slack_url, None)]
    return []


async def record_alert(
    conn: asyncpg.Connection,
    message: dict[str, Any],
    now: float,
    first_delay: dict[str, float],
    *,
    exclude_endpoint: int | None = None,
    slack_bot: bool = False,
) -> int:
    """Create the deliveries for one alert inside the caller's transaction; returns how many are new.
    ``slack_bot``: this notifier can post as the Slack bot (SLACK_BOT_TOKEN is set)."""
    topic = message["type"]
    project_id = int(message["data"]["project"]["id"])
    alert_id = uuid.UUID(message["id"])
    project = await conn.fetchrow(
        "SELECT slack_webhook_url IS NOT NULL AS slack FROM projects WHERE id = $1", project_id
    )
    if project is None:
        return 0
    slack = project_slack(project_id) if project["slack"] else None
    targets = slack_targets(topic, message["data"], slack, slack_bot)
    endpoints = await conn.fetch(
        "SELECT id, topics FROM webhook_endpoints WHERE project_id = $1 AND enabled ORDER BY id", project_id
    )
    for endpoint in endpoints:
        if endpoint["id"] != exclude_endpoint and topic_matches(endpoint["topics"], topic):
            targets.append((WEBHOOK, str(endpoint["id"]), endpoint["id"]))
    created = 0
    for kind, target, endpoint_id in targets:
        status = await conn.execute(
            "INSERT INTO deliveries (alert_id, project_id, topic, target_kind, target, endpoint_id, payload,"
            " next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (alert_id, target_kind, target) DO NOTHING",
            alert_id,
            project_id,
            topic,
            kind,
            target,
            endpoint_id,
            message,
            to_dt(now + first_delay[SLACK if kind == SLACK_BOT else kind]),
        )
        created += status == "INSERT 0 1"
    return created


async def claim(
    pool: asyncpg.Pool, now: float, lease_seconds: float, limit: int, room: dict[str, int], per_target: int
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries, at most ``per_target`` per target and never more than
    ``room`` allows for targets already in flight here.

    Rows are picked without locks and taken with a conditional UPDATE that re-checks the lease under
    the row lock, so two notifiers racing for a row never both get it.
    """
    if limit <= 0:
        return []
    lease = now + lease_seconds
    full = [t for t, free in room.items() if free <= 0]
    rows = await pool.fetch(
        "WITH due AS ("
        "  SELECT id, target, next_attempt_at FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1"
        "  AND (locked_until IS NULL OR locked_until < $1) AND NOT (target = ANY($4::text[]))"
        "  ORDER BY next_attempt_at LIMIT 2000"
        "), picked AS ("
        "  SELECT id FROM (SELECT id, next_attempt_at,"
        "    row_number() OVER (PARTITION BY target ORDER BY next_attempt_at, id) AS rn FROM due) ranked"
        "  WHERE rn <= $5 ORDER BY next_attempt_at LIMIT $3"
        "), claimed AS ("
        "  UPDATE deliveries d SET locked_until = $2 FROM picked WHERE d.id = picked.id"
        "  AND d.status = 'pending' AND (d.locked_until IS NULL OR d.locked_until < $1) RETURNING d.*"
        ") SELECT c.*, e.url, e.format, e.secret, e.enabled, p.slack_webhook_url AS project_slack,"
        "  ARRAY(SELECT s.secret FROM webhook_secrets s WHERE s.endpoint_id = e.id AND s.expires_at > $1"
        "   ORDER BY s.id DESC) AS previous_secrets"  # every rotated-out secret still in its overlap
        " FROM claimed c LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id"
        " LEFT JOIN projects p ON p.id = c.project_id AND c.target_kind = 'slack'"
        " ORDER BY c.next_attempt_at, c.id",
        to_dt(now),
        to_dt(lease),
        limit,
        full,
        per_target,
    )
    claimed: list[Claimed] = []
    give_back: list[int] = []
    taken: dict[str, int] = {}
    for r in rows:
        target = r["target"]
        if taken.get(target, 0) >= room.get(target, per_target):
            give_back.append(r["id"])
            continue
        taken[target] = taken.get(target, 0) + 1
        kind = r["target_kind"]
        webhook = kind == WEBHOOK
        claimed.append(
            Claimed(
                id=r["id"],
                alert_id=str(r["alert_id"]),
                project_id=r["project_id"],
                topic=r["topic"],
                target_kind=r["target_kind"],
                target=target,
                payload=r["payload"],
                attempts=r["attempts"],
                lease=lease,
                endpoint_id=r["endpoint_id"],
                # Slack: the project's URL now, still sealed (the worker opens it); None once removed.
                url=r["url"] if webhook else r["project_slack"] if kind == SLACK else target,
                format=(r["format"] or "json") if webhook else SLACK_BOT if r["target_kind"] == SLACK_BOT else "slack",
                secrets=(r["secret"], *r["previous_secrets"]) if webhook and r["secret"] else (),
                endpoint_enabled=bool(r["enabled"]) if webhook else True,
            )
        )
    if give_back:
        await pool.execute(
            "UPDATE deliveries SET locked_until = NULL WHERE id = ANY($1::bigint[]) AND locked_until = $2",
            give_back,
            to_dt(lease),
        )
    return claimed


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
    outcomes: list[Outcome],
    *,
    disable_after: float,
    now: float,
    open_url: Callable[[str | None], str | None] = lambda url: url,
) -> tuple[set[int], list[Disabled]]:
    """Record a batch of attempts in one transaction.

    Returns the delivery ids recorded (a lost lease records nothing) and the endpoints this batch
    disabled, for which the caller announces ``notice.endpoint_disabled``. ``open_url`` opens an
    endpoint's stored (sealed) URL for that notice.
    """
    if not outcomes:
        return set(), []
    cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
    for o in outcomes:
        error = o.error or (o.decision.reason if o.decision.status != "succeeded" else None)
        values = (
            o.claimed.id,
            o.decision.status,
            to_dt(o.attempted_at + (o.decision.retry_in or 0.0)),
            o.status_code,
            error,
            to_dt(o.attempted_at),
            to_dt(o.claimed.lease),
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    async with pool.acquire() as conn, conn.transaction():
        recorded = {
            r["id"]
            for r in await conn.fetch(
                "UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, next_attempt_at = u.next_at,"
                " locked_until = NULL, last_status_code = u.code, last_error = u.err,"
                " finished_at = CASE WHEN u.status = 'pending' THEN NULL ELSE u.attempted_at END"
                " FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::int[], $5::text[],"
                " $6::timestamptz[], $7::timestamptz[]) AS u(id, status, next_at, code, err, attempted_at, lease)"
                " WHERE d.id = u.id AND d.locked_until = u.lease RETURNING d.id",
                *cols,
            )
        }
        kept = [o for o in outcomes if o.claimed.id in recorded and o.sent]
        if kept:
            await conn.copy_records_to_table(
                "delivery_attempts",
                records=[
                    (o.claimed.id, to_dt(o.attempted_at), o.status_code, o.latency_ms, o.error, o.response_body)
                    for o in kept
                ],
                columns=["delivery_id", "attempted_at", "status_code", "latency_ms", "error", "response_body"],
            )
        disabled = await _endpoint_health(conn, kept, disable_after, now, open_url)
    return recorded, disabled


async def _endpoint_health(
    conn: asyncpg.Connection,
    outcomes: list[Outcome],
    disable_after: float,
    now: float,
    open_url: Callable[[str | None], str | None],
) -> list[Disabled]:
    succeeded: dict[int, float] = {}
    failed: dict[int, float] = {}
    gone: set[int] = set()
    for o in outcomes:
        endpoint = o.claimed.endpoint_id
        if endpoint is None:
            continue
        if o.decision.status == "succeeded":
            succeeded[endpoint] = max(succeeded.get(endpoint, 0.0), o.attempted_at)
        else:
            failed[endpoint] = min(failed.get(endpoint, o.attempted_at), o.attempted_at)
            if o.status_code == 410:
                gone.add(endpoint)
    if succeeded:
        await conn.execute(
            "UPDATE webhook_endpoints e SET failing_since = NULL, last_success_at = u.at"
            " FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at) WHERE e.id = u.id",
            list(succeeded),
            [to_dt(t) for t in succeeded.values()],
        )
    still_failing = {e: t for e, t in failed.items() if e not in succeeded}
    if still_failing:
        await conn.execute(
            "UPDATE webhook_endpoints e SET failing_since = coalesce(e.failing_since, u.at)"
            " FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at) WHERE e.id = u.id",
            list(still_failing),
            [to_dt(t) for t in still_failing.values()],
        )
    disabled: list[Disabled] = []
    if gone:
        rows = await conn.fetch(
            "UPDATE webhook_endpoints SET enabled = false, disabled_at = $2, disabled_reason = 'HTTP 410 Gone'"
            " WHERE id = ANY($1::bigint[]) AND enabled RETURNING id, project_id, url, disabled_reason",
            list(gone),
            to_dt(now),
        )
        disabled += [Disabled(r["id"], r["project_id"], open_url(r["url"]) or "", r["disabled_reason"]) for r in rows]
    if still_failing:
        rows = await conn.fetch(
            "UPDATE webhook_endpoints SET enabled = false, disabled_at = $2,"
            " disabled_reason = 'no successful delivery since ' || to_char(failing_since AT TIME ZONE 'UTC',"
            ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'
            " WHERE id = ANY($1::bigint[]) AND enabled AND failing_since <= $3"
            " RETURNING id, project_id, url, disabled_reason",
            list(still_failing),
            to_dt(now),
            to_dt(now - disable_after),
        )
        disabled += [Disabled(r["id"], r["project_id"], open_url(r["url"]) or "", r["disabled_reason"]) for r in rows]
    for d in disabled:
        name = await conn.fetchval("SELECT name FROM projects WHERE id = $1", d.project_id)
        notice = messages.alert_message(
            "notice.endpoint_disabled",
            messages.new_id(),
            now,
            {
                "endpoint": {"id": d.endpoint_id, "url": d.url, "reason": d.reason},
                "project": {"id": d.project_id, "name": name},
            },
        )
        await record_alert(conn, notice, now, {SLACK: 0.0, WEBHOOK: 0.0}, exclude_endpoint=d.endpoint_id)
    return disabled


async def prune(pool: asyncpg.Pool, retention_days: int, now: float | None = None) -> None:
    """Drop old attempts and finished deliveries, and rotated-out secrets past their overlap
    (``now`` defaults to the database's clock)."""
    await pool.execute("DELETE FROM webhook_secrets WHERE expires_at <= coalesce($1, now())", to_dt(now))
    await pool.execute(
        "DELETE FROM delivery_attempts WHERE attempted_at < now() - make_interval(days => $1)", retention_days
    )
    await pool.execute(
        "DELETE FROM deliveries WHERE status <> 'pending' AND finished_at < now() - make_interval(days => $1)",
        retention_days,
    )
