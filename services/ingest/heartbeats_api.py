"""Managing heartbeats: ``/v1/heartbeats`` (create, list, read, change, pause, resume, delete,
regenerate the ping token) and their pings and flips.

Creating one inserts its row here (nothing else can know of it yet); every later change of its
settings or state is a command applied by the detector, as for any monitor (``monitors_api``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import iso
from heron_common.messages import stream_shard
from heron_common.monitors import heartbeat as hb
from heron_common.service import CLOCK, SETTINGS, json_response
from heron_ingest import params
from heron_ingest.commands import announce_new, delete_monitor, monitor_after, send_command
from heron_ingest.dryrun import db
from heron_ingest.pings import TOKENS
from heron_ingest.requests import (
    caller_project,
    handles_errors,
    json_object,
    next_link,
    owned_monitor,
    page_args,
    path_id,
    within_quota,
)
from heron_ingest.validation import InputError

FIELDS = {"name", "interval", "grace", "schedule", "tz", "service", "environment"}


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


def ping_url(request: web.Request, token: str) -> str:
    return f"{request.scheme}://{request.host}/api/v1/hb/{token}"


def view(request: web.Request, row: asyncpg.Record) -> dict[str, Any]:
    data = row["data"] or {}
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "service": row["service"] or None,
        "environment": row["environment"] or None,
        "state": row["state"],
        "paused": row["state"] == "paused",
        **row["config"],
        "last_ping_at": iso(row["last_seen"]),
        "last_ping_kind": data.get("last_kind"),
        "last_exit_code": data.get("last_exit_code"),
        "run_started_at": hb.iso(data.get("started")),
        "deadline": iso(row["deadline"]),
        "ping_url": ping_url(request, row["ping_token"]),
        "created_at": iso(row["created_at"]),
    }


def _config(request: web.Request, body: dict[str, Any]) -> hb.Config:
    try:
        return hb.parse_config(body, min_interval=request.app[SETTINGS].min_interval, now=request.app[CLOCK].now())
    except hb.ConfigError as exc:
        raise InputError(422, "invalid_field", str(exc), exc.field) from None


def _labels(body: dict[str, Any], *, name_required: bool) -> dict[str, str]:
    labels = {"name": params.text_field(body, "name", max_len=200, required=name_required)}
    for field in ("service", "environment"):
        labels[field] = params.text_field(body, field, max_len=200)
    return {k: v for k, v in labels.items() if v is not None}


@handles_errors
async def create(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    return json_response(view(request, await create_heartbeat(request, project_id, body)), status=201)


async def create_heartbeat(request: web.Request, project_id: int, body: dict[str, Any]) -> asyncpg.Record:
    """Check ``body`` (InputError naming the field otherwise) and insert the heartbeat."""
    params.known_fields(body, FIELDS)
    labels = _labels(body, name_required=True)
    config = _config(request, body)
    limit = request.app[SETTINGS].max_heartbeats_per_project
    await within_quota(db(request), project_id, limit, "heartbeats", "HERON_MAX_HEARTBEATS_PER_PROJECT", hb.KIND)
    shard = stream_shard(project_id, f"{hb.KIND}:{labels['name']}", None, None, request.app[SETTINGS].shards)
    row = await db(request).fetchrow(
        "INSERT INTO monitors (project_id, kind, name, service, environment, shard, state, config, ping_token)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8) RETURNING *",
        project_id,
        hb.KIND,
        labels["name"],
        labels.get("service", ""),
        labels.get("environment", ""),
        shard,
        config.to_dict(),
        new_token(),
    )
    await announce_new(request, row)
    return row


async def _own(request: web.Request) -> asyncpg.Record:
    return await own_heartbeat(request, await caller_project(request))


async def own_heartbeat(request: web.Request, project_id: int) -> asyncpg.Record:
    """The heartbeat in the path, of ``project_id``; 404 for anything else."""
    return await owned_monitor(db(request), path_id(request, "heartbeat_id"), project_id, hb.KIND, "heartbeat")


async def _after(request: web.Request, row: asyncpg.Record, done: Callable[[asyncpg.Record], bool]) -> web.Response:
    changed = await monitor_after(request, row["id"], done)
    if changed is None:
        return json_response({"status": "accepted", "heartbeat": view(request, row)}, status=202)
    return json_response(view(request, changed))


async def heartbeat_rows(
    pool: asyncpg.Pool, project_id: int, *, before: int | None, limit: int, environment: str | None = None
) -> list[asyncpg.Record]:
    """A project's heartbeats, newest first, one page."""
    return await pool.fetch(
        "SELECT * FROM monitors WHERE project_id = $1 AND kind = $2"
        " AND ($3::bigint IS NULL OR id < $3) AND ($4::text IS NULL OR environment = $4)"
        " ORDER BY id DESC LIMIT $5",
        project_id,
        hb.KIND,
        before,
        environment,
        limit,
    )


@handles_errors
async def listing(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    limit, before, environment = page_args(request)
    rows = await heartbeat_rows(db(request), project_id, before=before, limit=limit, environment=environment)
    return json_response([view(request, r) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def read(request: web.Request) -> web.Response:
    return json_response(view(request, await _own(request)))


@handles_errors
async def change(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    row = await _own(request)
    changed = await change_heartbeat(request, row, body)
    if changed is None:
        return json_response({"status": "accepted", "heartbeat": view(request, row)}, status=202)
    return json_response(view(request, changed))


async def change_heartbeat(request: web.Request, row: asyncpg.Record, body: dict[str, Any]) -> asyncpg.Record | None:
    """Check the changes in ``body`` and have the detector apply them; the heartbeat once they
    show, or None (queued, not lost)."""
    params.known_fields(body, FIELDS)
    if not FIELDS & set(body):
        raise InputError(422, "missing_field", f"send at least one of {', '.join(sorted(FIELDS))}")
    labels = _labels(body, name_required="name" in body)
    wanted = dict(row["config"])
    if body.get("interval") is not None:  # switching to an interval drops the schedule, and back
        wanted.pop("schedule", None)
        wanted.pop("tz", None)
    if body.get("schedule") is not None:
        wanted.pop("interval", None)
    wanted.update({k: body[k] for k in ("interval", "grace", "schedule", "tz") if body.get(k) is not None})
    config = _config(request, wanted).to_dict()
    await send_command(request, row, "configure", {"config": config, **labels})
    return await monitor_after(
        request, row["id"], lambda m: dict(m["config"]) == config and all(m[k] == v for k, v in labels.items())
    )


@handles_errors
async def pause(request: web.Request) -> web.Response:
    row = await _own(request)
    if row["state"] != "paused":
        await send_command(request, row, "pause")
    return await _after(request, row, lambda m: m["state"] == "paused")


@handles_errors
async def resume(request: web.Request) -> web.Response:
    row = await _own(request)
    if row["state"] == "paused":
        await send_command(request, row, "resume")
    return await _after(request, row, lambda m: m["state"] != "paused")


@handles_errors
async def delete(request: web.Request) -> web.Response:
    row = await _own(request)
    response = await delete_monitor(request, row)
    request.app[TOKENS].forget(row["ping_token"])
    return response


@handles_errors
async def regenerate_token(request: web.Request) -> web.Response:
    """A new ping URL; the old one stops working (at once here, within the token cache's lifetime
    on other ingest replicas). The token is no monitor state, so it is written here directly."""
    row = await _own(request)
    changed = await db(request).fetchrow(
        "UPDATE monitors SET ping_token = $2 WHERE id = $1 RETURNING *", row["id"], new_token()
    )
    request.app[TOKENS].forget(row["ping_token"])
    if changed is None:
        raise InputError(404, "not_found", "no such heartbeat")
    return json_response(view(request, changed))


def ping_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "received_at": iso(row["received_at"]),
        "kind": row["kind"],
        "exit_code": row["exit_code"],
        "rid": row["rid"],
        "duration": row["duration"],
        "body": row["body"],
        "remote_addr": row["remote_addr"],
        "user_agent": row["user_agent"],
    }


def flip_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "reason": row["reason"],
    }


async def history(
    pool: asyncpg.Pool, table: str, monitor_id: int, *, before: int | None, limit: int
) -> list[asyncpg.Record]:
    """A monitor's ``pings`` or ``flips`` (``table``: a constant of ours), newest first, one page."""
    return await pool.fetch(
        f"SELECT * FROM {table} WHERE monitor_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        monitor_id,
        before,
        limit,
    )


async def _history(request: web.Request, table: str, shape: Callable[[Any], dict[str, Any]]) -> web.Response:
    """A heartbeat's pings or flips, newest first, paginated."""
    row = await _own(request)
    limit, before, _ = page_args(request)
    rows = await history(db(request), table, row["id"], before=before, limit=limit)
    return json_response([shape(r) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def pings(request: web.Request) -> web.Response:
    return await _history(request, "pings", ping_view)


@handles_errors
async def flips(request: web.Request) -> web.Response:
    return await _history(request, "flips", flip_view)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/heartbeats", create)
    app.router.add_get("/v1/heartbeats", listing)
    app.router.add_get("/v1/heartbeats/{heartbeat_id}", read)
    app.router.add_patch("/v1/heartbeats/{heartbeat_id}", change)
    app.router.add_delete("/v1/heartbeats/{heartbeat_id}", delete)
    app.router.add_post("/v1/heartbeats/{heartbeat_id}/pause", pause)
    app.router.add_post("/v1/heartbeats/{heartbeat_id}/resume", resume)
    app.router.add_post("/v1/heartbeats/{heartbeat_id}/regenerate-token", regenerate_token)
    app.router.add_get("/v1/heartbeats/{heartbeat_id}/pings", pings)
    app.router.add_get("/v1/heartbeats/{heartbeat_id}/flips", flips)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_DURATION = {"type": ["number", "string"], "description": "seconds, or `90s`, `10m`, `24h`, `1d`, `1h30m`, `2w`"}
_LABEL = {"type": "string", "maxLength": 200}
_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "interval": oa.nullable(_DURATION),
    "grace": _DURATION,
    "schedule": oa.nullable({"type": "string", "maxLength": 200, "description": "cron, e.g. `0 2 * * *`"}),
    "tz": oa.nullable({"type": "string", "maxLength": 64, "description": "IANA zone for the schedule (UTC)"}),
    "service": _LABEL,
    "environment": _LABEL,
}
_HEARTBEAT = oa.obj(
    {
        "id": oa.ID,
        "kind": {"const": hb.KIND},
        "name": oa.STRING,
        "service": oa.OPTIONAL_STRING,
        "environment": oa.OPTIONAL_STRING,
        "state": oa.STRING,
        "paused": oa.BOOLEAN,
        "grace": oa.NUMBER,
        "interval": oa.NUMBER,
        "schedule": oa.STRING,
        "tz": oa.STRING,
        "last_ping_at": oa.OPTIONAL_TIME,
        "last_ping_kind": oa.OPTIONAL_STRING,
        "last_exit_code": oa.OPTIONAL_INTEGER,
        "run_started_at": oa.OPTIONAL_TIME,
        "deadline": oa.OPTIONAL_TIME,
        "ping_url": oa.STRING,
        "created_at": oa.TIME,
    },
    required=["id", "kind", "name", "state", "paused", "grace", "ping_url", "created_at"],
)
_PING = oa.obj(
    {
        "id": oa.ID,
        "received_at": oa.TIME,
        "kind": oa.STRING,
        "exit_code": oa.OPTIONAL_INTEGER,
        "rid": oa.OPTIONAL_STRING,
        "duration": oa.OPTIONAL_NUMBER,
        "body": oa.OPTIONAL_STRING,
        "remote_addr": oa.OPTIONAL_STRING,
        "user_agent": oa.OPTIONAL_STRING,
    }
)
FLIP_SCHEMA = oa.obj(
    {"id": oa.ID, "at": oa.TIME, "from_state": oa.STRING, "to_state": oa.STRING, "reason": oa.OPTIONAL_STRING}
)
_ID = oa.path_param("heartbeat_id")
_QUEUED = {503: "Could not be queued; retry"}
_CHANGED = {
    200: oa.json_response(_HEARTBEAT, "Done"),
    202: oa.json_response(oa.accepted("heartbeat", _HEARTBEAT), "Queued for the detector; applied shortly"),
}

PATHS = {
    "/v1/heartbeats": {
        "post": oa.operation(
            "Create a heartbeat (interval + grace, or a cron schedule + grace); its ping_url is the credential",
            tag="heartbeats",
            operation_id="createHeartbeat",
            body=oa.json_body(oa.obj(_FIELDS, required=["name", "grace"], additionalProperties=False)),
            responses={201: oa.json_response(_HEARTBEAT, "Created")},
        ),
        "get": oa.operation(
            "The project's heartbeats, newest first",
            tag="heartbeats",
            operation_id="listHeartbeats",
            parameters=[*oa.PAGE, oa.ENVIRONMENT],
            responses={200: oa.page_of(_HEARTBEAT, "One page of heartbeats")},
        ),
    },
    "/v1/heartbeats/{heartbeat_id}": {
        "get": oa.operation(
            "One heartbeat",
            tag="heartbeats",
            operation_id="getHeartbeat",
            parameters=[_ID],
            responses={200: oa.json_response(_HEARTBEAT, "The heartbeat")},
        ),
        "patch": oa.operation(
            "Change a heartbeat",
            tag="heartbeats",
            operation_id="updateHeartbeat",
            parameters=[_ID],
            body=oa.json_body(oa.obj(_FIELDS, required=[], minProperties=1, additionalProperties=False)),
            errors=_QUEUED,
            responses=_CHANGED,
        ),
        "delete": oa.operation(
            "Delete a heartbeat (its ping URL stops working)",
            tag="heartbeats",
            operation_id="deleteHeartbeat",
            parameters=[_ID],
            errors=_QUEUED,
            responses={
                204: oa.NO_CONTENT,
                202: oa.json_response(oa.obj({"status": {"const": "accepted"}}), "Queued; deleted shortly"),
            },
        ),
    },
    "/v1/heartbeats/{heartbeat_id}/pause": {
        "post": oa.operation(
            "Pause a heartbeat",
            tag="heartbeats",
            operation_id="pauseHeartbeat",
            parameters=[_ID],
            errors=_QUEUED,
            responses=_CHANGED,
        )
    },
    "/v1/heartbeats/{heartbeat_id}/resume": {
        "post": oa.operation(
            "Resume a heartbeat",
            tag="heartbeats",
            operation_id="resumeHeartbeat",
            parameters=[_ID],
            errors=_QUEUED,
            responses=_CHANGED,
        )
    },
    "/v1/heartbeats/{heartbeat_id}/regenerate-token": {
        "post": oa.operation(
            "A new ping URL; the old one stops working",
            tag="heartbeats",
            operation_id="regenerateHeartbeatToken",
            parameters=[_ID],
            responses={200: oa.json_response(_HEARTBEAT, "The heartbeat with its new ping_url")},
        )
    },
    "/v1/heartbeats/{heartbeat_id}/pings": {
        "get": oa.operation(
            "A heartbeat's pings, newest first",
            tag="heartbeats",
            operation_id="listHeartbeatPings",
            parameters=[_ID, *oa.PAGE],
            responses={200: oa.page_of(_PING, "One page of pings")},
        )
    },
    "/v1/heartbeats/{heartbeat_id}/flips": {
        "get": oa.operation(
            "A heartbeat's state changes, newest first",
            tag="heartbeats",
            operation_id="listHeartbeatFlips",
            parameters=[_ID, *oa.PAGE],
            responses={200: oa.page_of(FLIP_SCHEMA, "One page of flips")},
        )
    },
}
