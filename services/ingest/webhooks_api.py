"""Webhook endpoints, topics and the delivery log: ``/v1/webhooks``, ``/v1/topics``, ``/v1/deliveries``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import iso, to_dt
from heron_common.outbound import check_url
from heron_common.secretbox import SecretBox
from heron_common.service import CLOCK, SETTINGS, json_response
from heron_common.topics import TOPICS, valid_pattern
from heron_common.webhooks import new_secret
from heron_ingest import params
from heron_ingest.context import SECRETS
from heron_ingest.dryrun import db
from heron_ingest.requests import (
    caller_project,
    handles_errors,
    json_object,
    next_link,
    owned_row,
    page_args,
    path_id,
    within_quota,
)
from heron_ingest.validation import InputError

MAX_URL = 2000
MAX_DESCRIPTION = 500
MAX_TOPICS = 50
SLACK_HOSTS = ("hooks.slack.com",)
DELIVERY_STATUSES = ("pending", "succeeded", "failed")


def endpoint_view(r: asyncpg.Record, now: float, box: SecretBox, secret: str | None = None) -> dict[str, Any]:
    rotating = r["previous_secret_expires_at"]
    out = {
        "id": r["id"],
        "url": box.open(r["url"]),  # stored sealed: a URL may carry a token (a Slack webhook always does)
        "topics": list(r["topics"]),
        "description": r["description"],
        "format": r["format"],
        "enabled": r["enabled"],
        "disabled_reason": r["disabled_reason"],
        "disabled_at": iso(r["disabled_at"]),
        "failing_since": iso(r["failing_since"]),
        "last_success_at": iso(r["last_success_at"]),
        "previous_secret_valid_until": iso(rotating) if rotating and rotating.timestamp() > now else None,
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
    }
    if secret is not None:
        out["secret"] = secret  # shown only when created or rotated
    return out


def _validated(body: dict[str, Any], settings_allow: tuple, *, partial: bool) -> dict[str, Any]:
    """The endpoint fields in ``body``, checked; every problem names its field."""
    out: dict[str, Any] = {}
    if "url" in body or not partial:
        url = params.text_field(body, "url", max_len=MAX_URL, required=True)
        assert url is not None  # required
        problem = check_url(url, settings_allow)
        if problem:
            raise InputError(422, "invalid_field", f"url {problem}")
        out["url"] = url
    if "topics" in body or not partial:
        topics = body.get("topics", ["*"])
        if (
            not isinstance(topics, list)
            or not topics
            or len(topics) > MAX_TOPICS
            or not all(isinstance(t, str) for t in topics)
        ):
            raise InputError(422, "invalid_field", "topics must be a non-empty array of topic names")
        unknown = [t for t in topics if not valid_pattern(t)]
        if unknown:
            raise InputError(
                422,
                "invalid_field",
                f"topics: unknown {', '.join(unknown)} (see GET /v1/topics; '*' and 'notice.*' work)",
            )
        out["topics"] = sorted(set(topics))
    if "description" in body:
        out["description"] = params.text_field(body, "description", max_len=MAX_DESCRIPTION) or ""
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise InputError(422, "invalid_field", "enabled must be true or false")
        out["enabled"] = body["enabled"]
    if "format" in body:
        if body["format"] not in ("json", "slack"):
            raise InputError(422, "invalid_field", "format must be 'json' or 'slack'")
        out["format"] = body["format"]
    elif "url" in out and not partial:
        # A Slack incoming-webhook URL gets Slack-formatted messages instead of raw JSON.
        out["format"] = "slack" if urlsplit(out["url"]).hostname in SLACK_HOSTS else "json"
    return out


@handles_errors
async def create_webhook(request: web.Request) -> web.Response:
    body = await json_object(request)
    project_id = await caller_project(request, body)
    fields = _validated(body, request.app[SETTINGS].outbound_allow_cidrs, partial=False)
    limit = request.app[SETTINGS].max_webhooks_per_project
    await within_quota(db(request), project_id, limit, "webhook endpoints", "HERON_MAX_WEBHOOKS_PER_PROJECT")
    secret = new_secret()
    row = await db(request).fetchrow(
        "INSERT INTO webhook_endpoints (project_id, url, topics, description, format, enabled, secret)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        project_id,
        request.app[SECRETS].seal(fields["url"]),
        fields["topics"],
        fields.get("description", ""),
        fields["format"],
        fields.get("enabled", True),
        request.app[SECRETS].seal(secret),
    )
    return json_response(endpoint_view(row, request.app[CLOCK].now(), request.app[SECRETS], secret), status=201)


async def _own_endpoint(request: web.Request, project_id: int) -> asyncpg.Record:
    return await owned_row(db(request), "webhook_endpoints", path_id(request, "webhook_id"), project_id, "webhook")


async def endpoint_rows(pool: asyncpg.Pool, project_id: int) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM webhook_endpoints WHERE project_id = $1 ORDER BY id", project_id)


@handles_errors
async def list_webhooks(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    rows = await endpoint_rows(db(request), project_id)
    now = request.app[CLOCK].now()
    return json_response([endpoint_view(r, now, request.app[SECRETS]) for r in rows])


@handles_errors
async def get_webhook(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    return json_response(
        endpoint_view(await _own_endpoint(request, project_id), request.app[CLOCK].now(), request.app[SECRETS])
    )


@handles_errors
async def update_webhook(request: web.Request) -> web.Response:
    body = await json_object(request)
    project_id = await caller_project(request, body)
    await _own_endpoint(request, project_id)
    fields = _validated(body, request.app[SETTINGS].outbound_allow_cidrs, partial=True)
    if not fields:
        raise InputError(422, "invalid_body", "nothing to change: send url, topics, description, format or enabled")
    if "url" in fields:
        fields["url"] = request.app[SECRETS].seal(fields["url"])
    sets = [f"{name} = ${i}" for i, name in enumerate(fields, start=3)]
    if fields.get("enabled") is True:
        # Re-enabling starts afresh: the failure clock and the reason are cleared.
        sets += ["disabled_reason = NULL", "disabled_at = NULL", "failing_since = NULL"]
    row = await db(request).fetchrow(
        f"UPDATE webhook_endpoints SET {', '.join(sets)}, updated_at = now()"
        " WHERE id = $1 AND project_id = $2 RETURNING *",
        path_id(request, "webhook_id"),
        project_id,
        *fields.values(),
    )
    return json_response(endpoint_view(row, request.app[CLOCK].now(), request.app[SECRETS]))


@handles_errors
async def delete_webhook(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    endpoint = await _own_endpoint(request, project_id)
    await db(request).execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint["id"])
    return web.Response(status=204)


# Rotated-out secrets still in their overlap; each adds a signature to every delivery's headers.
MAX_PREVIOUS_SECRETS = 10


@handles_errors
async def rotate_secret(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    endpoint = await _own_endpoint(request, project_id)
    now = request.app[CLOCK].now()
    secret = new_secret()
    async with db(request).acquire() as conn, conn.transaction():
        # Every rotated-out secret signs until its own overlap ends, so a second rotation inside
        # the window does not cut off receivers still holding the first secret. Rotations of one
        # endpoint take turns (the row lock), so the count below is exact.
        await conn.execute("SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR UPDATE", endpoint["id"])
        await conn.execute(
            "DELETE FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at <= $2", endpoint["id"], to_dt(now)
        )
        kept = await conn.fetchval("SELECT count(*) FROM webhook_secrets WHERE endpoint_id = $1", endpoint["id"])
        if kept >= MAX_PREVIOUS_SECRETS:
            raise InputError(
                409,
                "too_many_rotations",
                f"{kept} rotated-out secrets still sign this endpoint's deliveries; rotate again once the"
                " oldest expires (every signature is a header entry receivers must check)",
            )
        expires = to_dt(now + request.app[SETTINGS].webhook_secret_overlap)
        await conn.execute(
            "INSERT INTO webhook_secrets (endpoint_id, secret, expires_at)"
            " SELECT id, secret, $2 FROM webhook_endpoints WHERE id = $1",
            endpoint["id"],
            expires,
        )
        row = await conn.fetchrow(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $2, secret = $3,"
            " updated_at = now() WHERE id = $1 RETURNING *",
            endpoint["id"],
            expires,
            request.app[SECRETS].seal(secret),
        )
    return json_response(endpoint_view(row, now, request.app[SECRETS], secret))


async def topics(_: web.Request) -> web.Response:
    return json_response(
        [
            {"topic": name, "description": t["description"], "example": {"topic": name, "data": t["data"]}}
            for name, t in TOPICS.items()
        ]
    )


def _delivery(r: asyncpg.Record, attempts: list[asyncpg.Record]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "alert_id": str(r["alert_id"]),
        "topic": r["topic"],
        "endpoint_id": r["endpoint_id"],
        "target": r["target_kind"] if r["target_kind"] in ("slack", "slack_bot") else "webhook",
        "channel": r["target"] if r["target_kind"] == "slack_bot" else None,
        "status": r["status"],
        "attempts": r["attempts"],
        "next_attempt_at": iso(r["next_attempt_at"]) if r["status"] == "pending" else None,
        "last_status_code": r["last_status_code"],
        "last_error": r["last_error"],
        "created_at": iso(r["created_at"]),
        "finished_at": iso(r["finished_at"]),
        "attempt_log": [
            {
                "attempted_at": iso(a["attempted_at"]),
                "status_code": a["status_code"],
                "latency_ms": round(a["latency_ms"], 1) if a["latency_ms"] is not None else None,
                "error": a["error"],
                "response": a["response_body"],
            }
            for a in attempts
        ],
    }


async def with_attempts(pool: asyncpg.Pool, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    attempts: dict[int, list[asyncpg.Record]] = {r["id"]: [] for r in rows}
    if rows:
        for a in await pool.fetch(
            "SELECT * FROM delivery_attempts WHERE delivery_id = ANY($1::bigint[]) ORDER BY id", list(attempts)
        ):
            attempts[a["delivery_id"]].append(a)
    return [_delivery(r, attempts[r["id"]]) for r in rows]


def delivery_filters(query: Any) -> tuple[int | None, str | None, str | None]:
    """``endpoint_id``, ``status`` and ``topic`` of a delivery-log request, checked."""
    endpoint_id = params.query_id(query, "endpoint_id", "a webhook id")
    status = query.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise InputError(422, "invalid_parameter", f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    return endpoint_id, status, params.query_text(query, "topic")


async def delivery_rows(
    pool: asyncpg.Pool,
    project_id: int,
    *,
    before: int | None,
    limit: int,
    endpoint_id: int | None = None,
    status: str | None = None,
    topic: str | None = None,
) -> list[asyncpg.Record]:
    """A project's delivery log, newest first, one page."""
    return await pool.fetch(
        "SELECT * FROM deliveries WHERE project_id = $1 AND ($2::bigint IS NULL OR id < $2)"
        " AND ($3::bigint IS NULL OR endpoint_id = $3) AND ($4::text IS NULL OR status = $4)"
        " AND ($5::text IS NULL OR topic = $5) ORDER BY id DESC LIMIT $6",
        project_id,
        before,
        endpoint_id,
        status,
        topic,
        limit,
    )


@handles_errors
async def list_deliveries(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    limit, before, _ = page_args(request)
    endpoint_id, status, topic = delivery_filters(request.query)
    rows = await delivery_rows(
        db(request), project_id, before=before, limit=limit, endpoint_id=endpoint_id, status=status, topic=topic
    )
    return json_response(await with_attempts(db(request), rows), headers=next_link(request, rows, limit))


@handles_errors
async def get_delivery(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await owned_row(db(request), "deliveries", path_id(request, "delivery_id"), project_id, "delivery")
    [delivery] = await with_attempts(db(request), [row])
    return json_response(delivery)


_REDELIVER = (
    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, locked_until = NULL,"
    " finished_at = NULL WHERE project_id = $2 AND status <> 'pending'"
)


@handles_errors
async def redeliver(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await redeliver_one(request, project_id, path_id(request, "delivery_id"))
    [delivery] = await with_attempts(db(request), [row])
    return json_response(delivery, status=202)


async def redeliver_one(request: web.Request, project_id: int, delivery_id: int) -> asyncpg.Record:
    """Put a finished delivery of ``project_id`` back in the queue, attempts reset; 404 or 409."""
    row = await db(request).fetchrow(
        _REDELIVER + " AND id = $3 RETURNING *", to_dt(request.app[CLOCK].now()), project_id, delivery_id
    )
    if row is None:
        exists = await db(request).fetchval(
            "SELECT status FROM deliveries WHERE id = $1 AND project_id = $2", delivery_id, project_id
        )
        if exists is None:
            raise InputError(404, "not_found", "no such delivery")
        raise InputError(409, "already_pending", "the delivery is already pending; it will be attempted")
    return row


@handles_errors
async def redeliver_failed(request: web.Request) -> web.Response:
    body = await json_object(request)
    project_id = await caller_project(request, body)
    if "since" not in body:
        raise InputError(422, "missing_field", "since is required: redeliver everything that failed since then")
    since = params.time_value(body["since"], "since")
    endpoint_id = params.id_field(body, "endpoint_id", "a webhook id")
    rows = await db(request).fetch(
        _REDELIVER + " AND status = 'failed' AND finished_at >= $3 AND ($4::bigint IS NULL OR endpoint_id = $4)"
        " RETURNING id",
        to_dt(request.app[CLOCK].now()),
        project_id,
        since,
        endpoint_id,
    )
    return json_response({"redelivering": len(rows), "ids": [r["id"] for r in rows]}, status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks", create_webhook)
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_get("/v1/webhooks/{webhook_id}", get_webhook)
    app.router.add_patch("/v1/webhooks/{webhook_id}", update_webhook)
    app.router.add_delete("/v1/webhooks/{webhook_id}", delete_webhook)
    app.router.add_post("/v1/webhooks/{webhook_id}/rotate-secret", rotate_secret)
    app.router.add_get("/v1/topics", topics)
    app.router.add_get("/v1/deliveries", list_deliveries)
    app.router.add_post("/v1/deliveries/redeliver", redeliver_failed)
    app.router.add_get("/v1/deliveries/{delivery_id}", get_delivery)
    app.router.add_post("/v1/deliveries/{delivery_id}/redeliver", redeliver)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_URL = {"type": "string", "format": "uri", "maxLength": MAX_URL, "description": "public http(s) URL"}
_TOPICS = oa.array(
    {"type": "string", "description": "a topic of GET /v1/topics, `*` or `prefix.*`"},
    minItems=1,
    maxItems=MAX_TOPICS,
)
_FIELDS = {
    "url": _URL,
    "topics": _TOPICS,
    "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
    "format": {"enum": ["json", "slack"], "description": "default: slack for hooks.slack.com, else json"},
    "enabled": oa.BOOLEAN,
}
_ENDPOINT_PROPS = {
    "id": oa.ID,
    "url": oa.STRING,
    "topics": oa.array(oa.STRING),
    "description": oa.STRING,
    "format": {"enum": ["json", "slack"]},
    "enabled": oa.BOOLEAN,
    "disabled_reason": oa.OPTIONAL_STRING,
    "disabled_at": oa.OPTIONAL_TIME,
    "failing_since": oa.OPTIONAL_TIME,
    "last_success_at": oa.OPTIONAL_TIME,
    "previous_secret_valid_until": oa.OPTIONAL_TIME,
    "created_at": oa.TIME,
    "updated_at": oa.TIME,
}
_ENDPOINT = oa.obj(_ENDPOINT_PROPS)
_WITH_SECRET = oa.obj({**_ENDPOINT_PROPS, "secret": {"type": "string", "description": "shown only now"}})
_DELIVERY = oa.obj(
    {
        "id": oa.ID,
        "alert_id": oa.STRING,
        "topic": oa.STRING,
        "endpoint_id": oa.nullable(oa.ID),
        "target": {"enum": ["webhook", "slack", "slack_bot"]},
        "channel": oa.OPTIONAL_STRING,
        "status": {"enum": list(DELIVERY_STATUSES)},
        "attempts": oa.INTEGER,
        "next_attempt_at": oa.OPTIONAL_TIME,
        "last_status_code": oa.OPTIONAL_INTEGER,
        "last_error": oa.OPTIONAL_STRING,
        "created_at": oa.TIME,
        "finished_at": oa.OPTIONAL_TIME,
        "attempt_log": oa.array(
            oa.obj(
                {
                    "attempted_at": oa.TIME,
                    "status_code": oa.OPTIONAL_INTEGER,
                    "latency_ms": oa.OPTIONAL_NUMBER,
                    "error": oa.OPTIONAL_STRING,
                    "response": oa.OPTIONAL_STRING,
                }
            )
        ),
    }
)
_WEBHOOK = oa.path_param("webhook_id")
_DELIVERY_ID = oa.path_param("delivery_id")

PATHS = {
    "/v1/webhooks": {
        "post": oa.operation(
            "Add a webhook endpoint (Standard Webhooks signing; the secret is shown once)",
            tag="webhooks",
            operation_id="createWebhook",
            body=oa.json_body(oa.obj(_FIELDS, required=["url"])),
            responses={201: oa.json_response(_WITH_SECRET, "Created")},
        ),
        "get": oa.operation(
            "The project's webhook endpoints",
            tag="webhooks",
            operation_id="listWebhooks",
            responses={200: oa.json_response(oa.array(_ENDPOINT), "Every endpoint, oldest first")},
        ),
    },
    "/v1/webhooks/{webhook_id}": {
        "get": oa.operation(
            "One webhook endpoint",
            tag="webhooks",
            operation_id="getWebhook",
            parameters=[_WEBHOOK],
            responses={200: oa.json_response(_ENDPOINT, "The endpoint")},
        ),
        "patch": oa.operation(
            "Change a webhook endpoint (enabled: true re-enables a disabled one)",
            tag="webhooks",
            operation_id="updateWebhook",
            parameters=[_WEBHOOK],
            body=oa.json_body(oa.obj(_FIELDS, required=[], minProperties=1)),
            responses={200: oa.json_response(_ENDPOINT, "Changed")},
        ),
        "delete": oa.operation(
            "Delete a webhook endpoint",
            tag="webhooks",
            operation_id="deleteWebhook",
            parameters=[_WEBHOOK],
            responses={204: oa.NO_CONTENT},
        ),
    },
    "/v1/webhooks/{webhook_id}/rotate-secret": {
        "post": oa.operation(
            "A new signing secret; the old one keeps signing for HERON_WEBHOOK_SECRET_OVERLAP",
            tag="webhooks",
            operation_id="rotateWebhookSecret",
            parameters=[_WEBHOOK],
            errors={409: "Too many rotated-out secrets still in their overlap"},
            responses={200: oa.json_response(_WITH_SECRET, "Rotated")},
        )
    },
    "/v1/topics": {
        "get": oa.operation(
            "Every alert topic, with an example payload",
            tag="webhooks",
            auth="none",
            operation_id="listTopics",
            responses={
                200: oa.json_response(
                    oa.array(oa.obj({"topic": oa.STRING, "description": oa.STRING, "example": oa.OBJECT})),
                    "The topics",
                )
            },
        )
    },
    "/v1/deliveries": {
        "get": oa.operation(
            "The delivery log, newest first",
            tag="webhooks",
            operation_id="listDeliveries",
            parameters=[
                *oa.PAGE,
                oa.query_param("endpoint_id", oa.ID, "only this endpoint's"),
                oa.query_param("status", {"enum": list(DELIVERY_STATUSES)}, "only these"),
                oa.query_param("topic", {"type": "string", "maxLength": 200}, "only this topic"),
            ],
            responses={200: oa.page_of(_DELIVERY, "One page of deliveries")},
        )
    },
    "/v1/deliveries/redeliver": {
        "post": oa.operation(
            "Redeliver everything that failed since a time (optionally of one endpoint)",
            tag="webhooks",
            operation_id="redeliverFailed",
            body=oa.json_body(
                oa.obj(
                    {
                        "since": {"type": ["number", "string"], "description": "unix seconds or ISO 8601"},
                        "endpoint_id": oa.ID,
                    },
                    required=["since"],
                )
            ),
            responses={
                202: oa.json_response(
                    oa.obj({"redelivering": oa.INTEGER, "ids": oa.array(oa.ID)}), "Queued again, attempts reset"
                )
            },
        )
    },
    "/v1/deliveries/{delivery_id}": {
        "get": oa.operation(
            "One delivery with its attempts",
            tag="webhooks",
            operation_id="getDelivery",
            parameters=[_DELIVERY_ID],
            responses={200: oa.json_response(_DELIVERY, "The delivery")},
        )
    },
    "/v1/deliveries/{delivery_id}/redeliver": {
        "post": oa.operation(
            "Deliver a finished delivery again",
            tag="webhooks",
            operation_id="redeliver",
            parameters=[_DELIVERY_ID],
            errors={409: "Already pending"},
            responses={202: oa.json_response(_DELIVERY, "Queued again, attempts reset")},
        )
    },
}
