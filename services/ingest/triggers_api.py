"""Managing on-call triggers (Heii On-Call semantics): ``POST/GET /v1/triggers``,
``GET/PATCH/DELETE /v1/triggers/{id}``.

The calls integrations make (``/triggers/{id}/alert|acknowledge|resolve|checkin``) are a hot path
and live apart, in ``trigger_calls``.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from heron_common import messages
from heron_common import openapi as oa
from heron_common.db import iso
from heron_common.monitors import trigger as tr
from heron_common.service import CLOCK, SETTINGS, json_response
from heron_ingest import params
from heron_ingest.commands import announce_new, applied, delete_monitor, send_command
from heron_ingest.dryrun import db
from heron_ingest.requests import (
    caller_project,
    handles_errors,
    json_object,
    owned_monitor,
    path_id,
    within_quota,
)
from heron_ingest.validation import InputError

MAX_NAME = 200
# What the detector keeps in a trigger's config (heron_detector.kind_trigger.CONFIG_KEYS).
CONFIG_KEYS = ("trigger_kind", "timeout", "critical", "escalate", "service_id")
FIELDS = {"name", "service_id", "kind", "timeout", "critical", "escalate"}


def trigger_view(row: Any) -> dict[str, Any]:
    config = row["config"] or {}
    trigger_id = row["id"]
    return {
        "id": trigger_id,
        "name": row["name"],
        "kind": config.get("trigger_kind", tr.MANUAL),
        "state": row["state"],
        "paused": row["state"] == "paused",
        "service_id": config.get("service_id"),
        "service": row["service"] or None,
        "timeout": config.get("timeout"),
        "critical": config.get("critical", True),
        "escalate": config.get("escalate", True),
        "last_checkin": iso(row["last_seen"]),
        "deadline": iso(row["deadline"]),
        "monitor_id": trigger_id,  # a trigger is a monitor: /v1/monitors/{id}/pause works on it
        "created_at": iso(row["created_at"]),
    }


def settings_from(body: dict[str, Any], current: dict[str, Any], min_timeout: float) -> dict[str, Any]:
    """The trigger's config after ``body`` (a POST, or a PATCH over ``current``), checked. Pure."""
    params.known_fields(body, FIELDS)
    config = dict(current)
    if "kind" in body:
        if body["kind"] not in tr.TRIGGER_KINDS:
            raise InputError(422, "invalid_field", "kind must be 'manual' or 'liveness'", "kind")
        config["trigger_kind"] = body["kind"]
    config.setdefault("trigger_kind", tr.MANUAL)
    if "timeout" in body:
        config["timeout"] = params.seconds_field(body, "timeout", minimum=min_timeout)
    if config["trigger_kind"] == tr.LIVENESS and config.get("timeout") is None:
        raise InputError(422, "missing_field", "timeout (seconds) is required for a liveness trigger", "timeout")
    if config["trigger_kind"] == tr.MANUAL:
        config["timeout"] = None
    for flag in ("critical", "escalate"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise InputError(422, "invalid_field", f"{flag} must be true or false", flag)
            config[flag] = body[flag]
        config.setdefault(flag, True)
    return config


async def _service(pool: asyncpg.Pool, body: dict[str, Any], project_id: int) -> tuple[int | None, str]:
    service_id = params.id_field(body, "service_id", "a service id")
    if service_id is None:
        return None, ""
    name = await pool.fetchval("SELECT name FROM services WHERE id = $1 AND project_id = $2", service_id, project_id)
    if name is None:
        raise InputError(422, "invalid_field", "service_id names no service of this project", "service_id")
    return service_id, name


async def own_trigger(request: web.Request, project_id: int) -> asyncpg.Record:
    """The caller's trigger; 404 for anything else, another project's trigger included."""
    return await owned_monitor(db(request), path_id(request, "trigger_id"), project_id, tr.KIND, "trigger")


@handles_errors
async def create(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    return json_response(trigger_view(await create_trigger(request, project_id, body)), status=201)


async def create_trigger(request: web.Request, project_id: int, body: dict[str, Any]) -> asyncpg.Record:
    """Check ``body`` (InputError naming the field otherwise), insert the trigger and, for a
    liveness trigger, have the detector arm its timer."""
    settings = request.app[SETTINGS]
    config = settings_from(body, {}, settings.min_interval)
    name = (params.text_field(body, "name", max_len=MAX_NAME, required=True) or "").strip()
    pool = db(request)
    limit = settings.max_triggers_per_project
    await within_quota(pool, project_id, limit, "triggers", "HERON_MAX_TRIGGERS_PER_PROJECT", tr.KIND)
    service_id, service = await _service(pool, body, project_id)
    config["service_id"] = service_id
    shard = messages.stream_shard(project_id, f"{tr.KIND}:{name}", service, None, settings.shards)
    now = request.app[CLOCK].now()
    try:
        row = await pool.fetchrow(
            "INSERT INTO monitors (project_id, kind, name, service, shard, state, config, data)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            project_id,
            tr.KIND,
            name,
            service,
            shard,
            tr.RESOLVED,
            {k: v for k, v in config.items() if v is not None},
            {"since": now, "last_checkin": None},
        )
    except asyncpg.UniqueViolationError:
        raise InputError(
            409, "name_taken", f"a trigger named {name!r} exists already in this service", "name"
        ) from None
    if config["trigger_kind"] == tr.LIVENESS:
        # The detector (the only writer of monitor state) arms the timer: that is how the first
        # deadline reaches its index. Not queued means never timing out, so undo and say so.
        try:
            await send_command(request, row, "configure", {})
        except InputError:
            await pool.execute("DELETE FROM monitors WHERE id = $1", row["id"])
            raise
    await announce_new(request, row)
    return row


async def trigger_rows(pool: asyncpg.Pool, project_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM monitors WHERE project_id = $1 AND kind = $2 ORDER BY id", project_id, tr.KIND
    )


@handles_errors
async def list_all(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    return json_response([trigger_view(r) for r in await trigger_rows(db(request), project_id)])


@handles_errors
async def show(request: web.Request) -> web.Response:
    return json_response(trigger_view(await own_trigger(request, await caller_project(request))))


@handles_errors
async def update(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    row = await own_trigger(request, project_id)
    done = await update_trigger(request, project_id, row, body)
    if done is None:
        return json_response({"status": "accepted", "trigger": trigger_view(row)}, status=202)
    return json_response(trigger_view(done))


async def update_trigger(
    request: web.Request, project_id: int, row: asyncpg.Record, body: dict[str, Any]
) -> asyncpg.Record | None:
    """Check the changes in ``body`` and have the detector apply them; the trigger once they
    show, or None (queued, not lost)."""
    config = settings_from(body, dict(row["config"] or {}), request.app[SETTINGS].min_interval)
    args: dict[str, Any] = {k: config.get(k) for k in ("trigger_kind", "timeout", "critical", "escalate")}
    if "name" in body:
        args["name"] = (params.text_field(body, "name", max_len=MAX_NAME, required=True) or "").strip()
    if "service_id" in body:
        args["service_id"], args["service"] = await _service(db(request), body, project_id)
    wanted = {k: v for k, v in {**row["config"], **args}.items() if k in CONFIG_KEYS and v is not None}
    clash = await db(request).fetchval(
        "SELECT 1 FROM monitors WHERE project_id = $1 AND kind = $2 AND name = $3 AND service = $4 AND id <> $5",
        project_id,
        tr.KIND,
        args.get("name", row["name"]),
        args.get("service", row["service"]),
        row["id"],
    )
    if clash:
        raise InputError(409, "name_taken", "a trigger of that name exists already in that service", "name")
    await send_command(request, row, "configure", args)
    pool = db(request)
    name, service = args.get("name", row["name"]), args.get("service", row["service"])
    return await applied(
        lambda: pool.fetchrow(
            "SELECT * FROM monitors WHERE id = $1 AND config = $2 AND name = $3 AND service = $4",
            row["id"],
            wanted,
            name,
            service,
        )
    )


@handles_errors
async def delete(request: web.Request) -> web.Response:
    return await delete_monitor(request, await own_trigger(request, await caller_project(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/triggers", create)
    app.router.add_get("/v1/triggers", list_all)
    app.router.add_get("/v1/triggers/{trigger_id}", show)
    app.router.add_patch("/v1/triggers/{trigger_id}", update)
    app.router.add_delete("/v1/triggers/{trigger_id}", delete)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_SECONDS = {"type": "number", "description": "seconds, at least HERON_MIN_INTERVAL"}
_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
    "service_id": oa.nullable(oa.ID),
    "kind": {"enum": list(tr.TRIGGER_KINDS), "default": tr.MANUAL},
    "timeout": oa.nullable(_SECONDS),
    "critical": oa.BOOLEAN,
    "escalate": oa.BOOLEAN,
}
_TRIGGER = oa.obj(
    {
        "id": oa.ID,
        "name": oa.STRING,
        "kind": {"enum": list(tr.TRIGGER_KINDS)},
        "state": oa.STRING,
        "paused": oa.BOOLEAN,
        "service_id": oa.nullable(oa.ID),
        "service": oa.OPTIONAL_STRING,
        "timeout": oa.OPTIONAL_NUMBER,
        "critical": oa.BOOLEAN,
        "escalate": oa.BOOLEAN,
        "last_checkin": oa.OPTIONAL_TIME,
        "deadline": oa.OPTIONAL_TIME,
        "monitor_id": oa.ID,
        "created_at": oa.TIME,
    }
)
_TRIGGER_ID = oa.path_param("trigger_id")
_QUEUED = {503: "Could not be queued; retry"}
PATHS: dict[str, dict[str, Any]] = {
    "/v1/triggers": {
        "post": oa.operation(
            "Declare a trigger (manual, or liveness with a timeout)",
            tag="triggers",
            operation_id="createTrigger",
            body=oa.json_body(oa.obj(_FIELDS, required=["name"])),
            errors={409: "A trigger of that name exists already in that service", **_QUEUED},
            responses={201: oa.json_response(_TRIGGER, "Created")},
        ),
        "get": oa.operation(
            "The project's triggers",
            tag="triggers",
            operation_id="listTriggers",
            responses={200: oa.json_response(oa.array(_TRIGGER), "Every trigger, oldest first")},
        ),
    },
    "/v1/triggers/{trigger_id}": {
        "get": oa.operation(
            "One trigger",
            tag="triggers",
            operation_id="getTrigger",
            parameters=[_TRIGGER_ID],
            responses={200: oa.json_response(_TRIGGER, "The trigger")},
        ),
        "patch": oa.operation(
            "Change a trigger",
            tag="triggers",
            operation_id="updateTrigger",
            parameters=[_TRIGGER_ID],
            body=oa.json_body(oa.obj(_FIELDS, required=[])),
            errors={409: "A trigger of that name exists already in that service", **_QUEUED},
            responses={
                200: oa.json_response(_TRIGGER, "Changed"),
                202: oa.json_response(oa.accepted("trigger", _TRIGGER), "Queued for the detector; applied shortly"),
            },
        ),
        "delete": oa.operation(
            "Delete a trigger",
            tag="triggers",
            operation_id="deleteTrigger",
            parameters=[_TRIGGER_ID],
            errors=_QUEUED,
            responses={
                204: oa.NO_CONTENT,
                202: oa.json_response(oa.obj({"status": {"const": "accepted"}}), "Queued; deleted shortly"),
            },
        ),
    },
}
