"""Managing HTTP probes: ``/v1/probes`` (create, list, read, change, pause, resume, delete) and
their results and flips.

Creating one inserts its monitor row and its ``probe_schedule`` row (due at once: the first check
runs right away) in one transaction; every later change of its settings or state is a command
applied by the detector, as for any monitor. Changing a probe also makes it due at once, so the
new settings are tried without waiting out the old interval. Settings are checked by
``heron_common.monitors.probe.parse_config``; a bad one is a 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import iso, to_dt
from heron_common.messages import stream_shard
from heron_common.monitors import probe as pr
from heron_common.service import CLOCK, SETTINGS, json_response
from heron_ingest import params
from heron_ingest.commands import announce_new, delete_monitor, monitor_after, send_command
from heron_ingest.dryrun import db
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

SETTINGS_FIELDS = {
    "url",
    "method",
    "headers",
    "body",
    "interval",
    "request_timeout",
    "timeout",
    "expected_status",
    "expected_location",
    "header_name",
    "header_contains",
    "body_contains",
    "body_regex",
    "json_path",
    "json_equals",
    "max_latency",
}
LABELS = ("name", "service", "environment")
FIELDS = SETTINGS_FIELDS | set(LABELS)


def view(row: asyncpg.Record) -> dict[str, Any]:
    config = dict(row["config"] or {})
    data = row["data"] or {}
    config["headers"] = pr.masked_headers(config.get("headers") or {})
    config.setdefault("expected_location", None)
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "service": row["service"] or None,
        "environment": row["environment"] or None,
        "state": row["state"],
        "paused": row["state"] == "paused",
        **config,
        "last_result": {
            "at": iso(row["last_seen"]),
            "up": data.get("last_up"),
            "status": data.get("last_status"),
            "reason": data.get("last_reason"),
            "timings": data.get("last_timings"),
        }
        if row["last_seen"] is not None
        else None,
        "failing_since": pr.iso(data.get("down_since")),
        "monitor_id": row["id"],  # a probe is a monitor: /v1/monitors/{id} works on it too
        "created_at": iso(row["created_at"]),
    }


def _limits(request: web.Request) -> pr.Limits:
    settings = request.app[SETTINGS]
    return pr.Limits(settings.probe_min_interval, settings.probe_min_timeout, settings.outbound_allow_cidrs)


def _config(request: web.Request, fields: dict[str, Any]) -> pr.Config:
    try:
        return pr.parse_config(fields, _limits(request))
    except pr.ConfigError as exc:
        code = "missing_field" if "is required" in str(exc) else "invalid_field"
        raise InputError(422, code, str(exc), exc.field) from None


def _labels(body: dict[str, Any], *, creating: bool) -> dict[str, str]:
    labels = {
        "name": params.text_field(body, "name", max_len=200),
        "service": params.text_field(body, "service", max_len=200, required=creating),
        "environment": params.text_field(body, "environment", max_len=200),
    }
    return {k: v.strip() for k, v in labels.items() if v is not None}


@handles_errors
async def create(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    return json_response(view(await create_probe(request, project_id, body)), status=201)


async def create_probe(request: web.Request, project_id: int, body: dict[str, Any]) -> asyncpg.Record:
    """Check ``body`` (InputError naming the field otherwise) and insert the probe with its
    schedule row, due at once."""
    params.known_fields(body, FIELDS)
    labels = _labels(body, creating=True)
    config = _config(request, {k: v for k, v in body.items() if k in SETTINGS_FIELDS})
    name = labels.get("name") or pr.shown_url(config.url)[:200]
    settings = request.app[SETTINGS]
    shard = stream_shard(project_id, f"{pr.KIND}:{name}", labels["service"], labels.get("environment"), settings.shards)
    pool = db(request)
    limit = settings.max_probes_per_project
    await within_quota(pool, project_id, limit, "probes", "HERON_MAX_PROBES_PER_PROJECT", pr.KIND)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO monitors (project_id, kind, name, service, environment, shard, state, config)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            project_id,
            pr.KIND,
            name,
            labels["service"],
            labels.get("environment", ""),
            shard,
            pr.NEW,
            config.to_dict(),
        )
        await conn.execute(
            "INSERT INTO probe_schedule (monitor_id, next_at) VALUES ($1, $2)",
            row["id"],
            to_dt(request.app[CLOCK].now()),
        )
    await announce_new(request, row)
    return row


async def _own(request: web.Request) -> asyncpg.Record:
    return await own_probe(request, await caller_project(request))


async def own_probe(request: web.Request, project_id: int) -> asyncpg.Record:
    """The probe in the path, of ``project_id``; 404 for anything else."""
    return await owned_monitor(db(request), path_id(request, "probe_id"), project_id, pr.KIND, "probe")


async def _due_now(request: web.Request, monitor_id: int) -> None:
    """Probe it at once (the schedule is the probers', not monitor state)."""
    await db(request).execute(
        "UPDATE probe_schedule SET next_at = least(next_at, $2) WHERE monitor_id = $1",
        monitor_id,
        to_dt(request.app[CLOCK].now()),
    )


async def probe_rows(
    pool: asyncpg.Pool, project_id: int, *, before: int | None, limit: int, environment: str | None = None
) -> list[asyncpg.Record]:
    """A project's probes, newest first, one page."""
    return await pool.fetch(
        "SELECT * FROM monitors WHERE project_id = $1 AND kind = $2"
        " AND ($3::bigint IS NULL OR id < $3) AND ($4::text IS NULL OR environment = $4)"
        " ORDER BY id DESC LIMIT $5",
        project_id,
        pr.KIND,
        before,
        environment,
        limit,
    )


@handles_errors
async def listing(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    limit, before, environment = page_args(request)
    rows = await probe_rows(db(request), project_id, before=before, limit=limit, environment=environment)
    return json_response([view(r) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def read(request: web.Request) -> web.Response:
    return json_response(view(await _own(request)))


@handles_errors
async def change(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    row = await _own(request)
    return _answer(row, await change_probe(request, row, body))


def _answer(row: asyncpg.Record, changed: asyncpg.Record | None) -> web.Response:
    if changed is None:
        return json_response({"status": "accepted", "probe": view(row)}, status=202)
    return json_response(view(changed))


async def change_probe(request: web.Request, row: asyncpg.Record, body: dict[str, Any]) -> asyncpg.Record | None:
    """Check the changes in ``body`` over the stored settings (InputError naming the field
    otherwise), have the detector apply them and probe at once; the probe once they show, or
    None (queued, not lost)."""
    params.known_fields(body, FIELDS)
    if not FIELDS & set(body):
        raise InputError(422, "missing_field", f"send at least one of {', '.join(sorted(FIELDS))}")
    labels = _labels({k: body[k] for k in LABELS if k in body}, creating=False)
    if "service" in body and not labels.get("service"):
        raise InputError(422, "missing_field", "service cannot be removed", "service")
    stored = dict(row["config"] or {})
    if "headers" in body and body["headers"] is not None:
        # Masked values (what GET shows) stand for the stored ones, so a read-modify-write keeps them.
        kept = stored.get("headers") or {}
        sent = body["headers"]
        if isinstance(sent, dict):
            body = {**body, "headers": {k: kept.get(k, v) if v == "***" else v for k, v in sent.items()}}
    if body.get("json_path", stored.get("json_path")) is None:
        stored.pop("json_equals", None)
    wanted = {**stored, **{k: v for k, v in body.items() if k in SETTINGS_FIELDS}}
    config = _config(request, wanted).to_dict()
    await send_command(request, row, "configure", {"config": config, **labels})
    await _due_now(request, row["id"])
    return await monitor_after(
        request, row["id"], lambda m: dict(m["config"]) == config and all(m[k] == v for k, v in labels.items())
    )


@handles_errors
async def pause(request: web.Request) -> web.Response:
    row = await _own(request)
    return _answer(row, await pause_probe(request, row))


async def pause_probe(request: web.Request, row: asyncpg.Record) -> asyncpg.Record | None:
    """Pause through the detector (nothing is probed or judged meanwhile); the probe once
    paused, or None (queued)."""
    if row["state"] != "paused":
        await send_command(request, row, "pause")
    return await monitor_after(request, row["id"], lambda m: m["state"] == "paused")


@handles_errors
async def resume(request: web.Request) -> web.Response:
    row = await _own(request)
    return _answer(row, await resume_probe(request, row))


async def resume_probe(request: web.Request, row: asyncpg.Record) -> asyncpg.Record | None:
    """Resume through the detector and probe at once; the probe once resumed, or None (queued)."""
    if row["state"] == "paused":
        await send_command(request, row, "resume")
    changed = await monitor_after(request, row["id"], lambda m: m["state"] != "paused")
    await _due_now(request, row["id"])
    return changed


@handles_errors
async def delete(request: web.Request) -> web.Response:
    return await delete_monitor(request, await _own(request))


def result_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "started_at": iso(row["started_at"]),
        "up": row["up"],
        "status": row["status"],
        "reason": row["reason"],
        "timings": row["timings"],
        "prober": row["prober"],
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
    """A probe's ``probe_results`` or ``flips`` (``table``: a constant of ours), newest first, one page."""
    return await pool.fetch(
        f"SELECT * FROM {table} WHERE monitor_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        monitor_id,
        before,
        limit,
    )


async def _history(request: web.Request, table: str, shape: Callable[[Any], dict[str, Any]]) -> web.Response:
    """A probe's results or flips, newest first, paginated."""
    row = await _own(request)
    limit, before, _ = page_args(request)
    rows = await history(db(request), table, row["id"], before=before, limit=limit)
    return json_response([shape(r) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def results(request: web.Request) -> web.Response:
    return await _history(request, "probe_results", result_view)


@handles_errors
async def flips(request: web.Request) -> web.Response:
    return await _history(request, "flips", flip_view)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/probes", create)
    app.router.add_get("/v1/probes", listing)
    app.router.add_get("/v1/probes/{probe_id}", read)
    app.router.add_patch("/v1/probes/{probe_id}", change)
    app.router.add_delete("/v1/probes/{probe_id}", delete)
    app.router.add_post("/v1/probes/{probe_id}/pause", pause)
    app.router.add_post("/v1/probes/{probe_id}/resume", resume)
    app.router.add_get("/v1/probes/{probe_id}/results", results)
    app.router.add_get("/v1/probes/{probe_id}/flips", flips)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_SECONDS = {"type": ["number", "string"], "description": "seconds, or a duration like `5m`"}
_SETTINGS: dict[str, Any] = {
    "url": {"type": "string", "format": "uri", "description": "public http(s) URL"},
    "method": oa.nullable({"enum": list(pr.METHODS)}),
    "headers": oa.nullable({"type": "object", "additionalProperties": oa.STRING}),
    "body": oa.OPTIONAL_STRING,
    "interval": oa.nullable(_SECONDS),
    "request_timeout": oa.nullable(_SECONDS),
    "timeout": oa.nullable(_SECONDS),
    "expected_status": oa.nullable({"type": ["integer", "array", "string"]}),
    "expected_location": oa.OPTIONAL_STRING,
    "header_name": oa.OPTIONAL_STRING,
    "header_contains": oa.OPTIONAL_STRING,
    "body_contains": oa.OPTIONAL_STRING,
    "body_regex": oa.OPTIONAL_STRING,
    "json_path": oa.OPTIONAL_STRING,
    "json_equals": oa.ANY,
    "max_latency": oa.nullable(_SECONDS),
}
_LABEL = {"type": "string", "maxLength": 200}
_FIELDS = {**_SETTINGS, "name": _LABEL, "service": {**_LABEL, "minLength": 1}, "environment": _LABEL}
_RESULT = oa.obj(
    {
        "id": oa.ID,
        "started_at": oa.TIME,
        "up": oa.BOOLEAN,
        "status": oa.OPTIONAL_INTEGER,
        "reason": oa.OPTIONAL_STRING,
        "timings": oa.nullable(oa.OBJECT),
        "prober": oa.OPTIONAL_STRING,
    }
)
_PROBE = oa.obj(
    {
        "id": oa.ID,
        "kind": {"const": pr.KIND},
        "name": oa.STRING,
        "service": oa.OPTIONAL_STRING,
        "environment": oa.OPTIONAL_STRING,
        "state": oa.STRING,
        "paused": oa.BOOLEAN,
        "url": oa.STRING,
        "method": oa.STRING,
        "headers": {"type": "object", "additionalProperties": oa.STRING, "description": "values shown as ***"},
        "interval": oa.NUMBER,
        "request_timeout": oa.NUMBER,
        "timeout": oa.NUMBER,
        "expected_status": oa.array(oa.INTEGER),
        "expected_location": oa.OPTIONAL_STRING,
        "last_result": oa.nullable(oa.OBJECT),
        "failing_since": oa.OPTIONAL_TIME,
        "monitor_id": oa.ID,
        "created_at": oa.TIME,
    }
)
_FLIP = oa.obj(
    {"id": oa.ID, "at": oa.TIME, "from_state": oa.STRING, "to_state": oa.STRING, "reason": oa.OPTIONAL_STRING}
)
_ID = oa.path_param("probe_id")
_QUEUED = {503: "Could not be queued; retry"}
_CHANGED = {
    200: oa.json_response(_PROBE, "Done"),
    202: oa.json_response(oa.accepted("probe", _PROBE), "Queued for the detector; applied shortly"),
}

PATHS = {
    "/v1/probes": {
        "post": oa.operation(
            "Create an HTTP probe (checked at once, then every interval)",
            tag="probes",
            operation_id="createProbe",
            body=oa.json_body(oa.obj(_FIELDS, required=["url", "service"], additionalProperties=False)),
            responses={201: oa.json_response(_PROBE, "Created")},
        ),
        "get": oa.operation(
            "The project's probes, newest first",
            tag="probes",
            operation_id="listProbes",
            parameters=[*oa.PAGE, oa.ENVIRONMENT],
            responses={200: oa.page_of(_PROBE, "One page of probes")},
        ),
    },
    "/v1/probes/{probe_id}": {
        "get": oa.operation(
            "One probe",
            tag="probes",
            operation_id="getProbe",
            parameters=[_ID],
            responses={200: oa.json_response(_PROBE, "The probe")},
        ),
        "patch": oa.operation(
            "Change a probe (masked header values keep the stored ones); checked at once",
            tag="probes",
            operation_id="updateProbe",
            parameters=[_ID],
            body=oa.json_body(oa.obj(_FIELDS, required=[], minProperties=1, additionalProperties=False)),
            errors=_QUEUED,
            responses=_CHANGED,
        ),
        "delete": oa.operation(
            "Delete a probe",
            tag="probes",
            operation_id="deleteProbe",
            parameters=[_ID],
            errors=_QUEUED,
            responses={
                204: oa.NO_CONTENT,
                202: oa.json_response(oa.obj({"status": {"const": "accepted"}}), "Queued; deleted shortly"),
            },
        ),
    },
    "/v1/probes/{probe_id}/pause": {
        "post": oa.operation(
            "Pause a probe",
            tag="probes",
            operation_id="pauseProbe",
            parameters=[_ID],
            errors=_QUEUED,
            responses=_CHANGED,
        )
    },
    "/v1/probes/{probe_id}/resume": {
        "post": oa.operation(
            "Resume a probe (checked at once)",
            tag="probes",
            operation_id="resumeProbe",
            parameters=[_ID],
            errors=_QUEUED,
            responses=_CHANGED,
        )
    },
    "/v1/probes/{probe_id}/results": {
        "get": oa.operation(
            "A probe's results, newest first",
            tag="probes",
            operation_id="listProbeResults",
            parameters=[_ID, *oa.PAGE],
            responses={200: oa.page_of(_RESULT, "One page of results")},
        )
    },
    "/v1/probes/{probe_id}/flips": {
        "get": oa.operation(
            "A probe's state changes, newest first",
            tag="probes",
            operation_id="listProbeFlips",
            parameters=[_ID, *oa.PAGE],
            responses={200: oa.page_of(_FLIP, "One page of flips")},
        )
    },
}
