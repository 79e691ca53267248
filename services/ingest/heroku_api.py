"""Heroku app monitors: ``/v1/heroku-apps`` (create, list, read, change, delete), the PRD's
``POST /update-config`` (form or JSON), and seeding the first monitor from the environment.

Creating one inserts its row here (nothing else can know of it yet); every later change of its
settings is a ``configure`` command applied by the detector, as for any monitor, and the prober
sees the new config on its next look (an app whose config changed is checked at once): a change
applies immediately, with no restart. Pause, resume and acknowledge go through ``/v1/monitors``
and ``/v1/incidents`` like every kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common import sessions
from heron_common.db import iso
from heron_common.logging import get_logger
from heron_common.messages import stream_shard
from heron_common.monitors import heroku as hk
from heron_common.service import CLOCK, PG, SETTINGS, STOPPING, json_response, sleep_or_stop
from heron_common.settings import Settings
from heron_ingest import params
from heron_ingest.auth import presented_key
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
    posted_form,
)
from heron_ingest.validation import InputError

FIELDS = set(hk.CONFIG_FIELDS)
SEED = "heroku_monitor"  # the seeds row of the environment's first monitor
log = get_logger("ingest.heroku")


def _status(state: str, checked_at: float | None, config: dict[str, Any], now: float, settings: Settings) -> str:
    return "ACTIVE" if hk.active(state, checked_at, config, now, settings.heroku_minute) else "INACTIVE"


def view(row: Any, settings: Settings, now: float) -> dict[str, Any]:
    config = row["config"] or {}
    data = row["data"] or {}
    h = hk.load(row["state"], data)
    snap = h.snapshot or {}
    return {
        "id": row["id"],
        "kind": row["kind"],
        "app_name": config.get("app_name"),
        "slack_channel": config.get("slack_channel"),
        "check_interval": config.get("check_interval"),
        "state": row["state"],
        "paused": row["state"] == "paused",
        "status": _status(row["state"], h.checked_at, config, now, settings),
        "error": h.error,
        "last_check_at": hk.iso(h.checked_at),
        "dynos": snap.get("dynos"),
        "release": snap.get("release"),
        "addons": snap.get("addons"),
        "maintenance": (snap.get("app") or {}).get("maintenance"),
        "monitor_id": row["id"],  # /v1/monitors/{id}/pause, /resume work on it
        "created_at": iso(row["created_at"]),
    }


def _respond(request: web.Request, row: Any, status: int = 200) -> web.Response:
    return json_response(view(row, request.app[SETTINGS], request.app[CLOCK].now()), status=status)


def _config(
    body: dict[str, Any], current: dict[str, Any] | None = None, *, required: tuple[str, ...] = ()
) -> hk.Config:
    """The checked configuration; a 422 naming the first bad field (and carrying every bad
    field's message, for a form to show each beside its field)."""
    try:
        return hk.parse_config(body, current, required=required)
    except hk.ConfigError as exc:
        code = "missing_field" if exc.missing else "invalid_field"
        raise InputError(422, code, exc.message, exc.field, errors=exc.errors) from None


async def insert(pool: asyncpg.Pool, settings: Settings, project_id: int, config: hk.Config) -> asyncpg.Record | None:
    """A new Heroku monitor's row (state ``new``); None if the project already watches that app."""
    shard = stream_shard(project_id, f"{hk.KIND}:{config.app_name}", None, None, settings.shards)
    try:
        return await pool.fetchrow(
            "INSERT INTO monitors (project_id, kind, name, shard, state, config)"
            " VALUES ($1, $2, $3, $4, 'new', $5) RETURNING *",
            project_id,
            hk.KIND,
            config.app_name,
            shard,
            config.to_dict(),
        )
    except asyncpg.UniqueViolationError:
        return None


def _already(app_name: str) -> InputError:
    return InputError(409, "app_already_monitored", f"this project already monitors the Heroku app {app_name}")


@dataclass(frozen=True)
class Applied:
    """What a configuration change did: the monitor as it is now (as it was, if ``queued``)."""

    row: asyncpg.Record
    created: bool = False
    queued: bool = False  # sent to the detector, which has not applied it yet (busy or down)


async def _create(request: web.Request, project_id: int, config: hk.Config) -> Applied:
    row = await insert(db(request), request.app[SETTINGS], project_id, config)
    if row is None:
        raise _already(config.app_name)
    await announce_new(request, row)
    return Applied(row, created=True)


async def _change(request: web.Request, row: asyncpg.Record, config: hk.Config) -> Applied:
    wanted = config.to_dict()
    if dict(row["config"]) == wanted:
        return Applied(row)
    if config.app_name != row["config"].get("app_name"):
        taken = await db(request).fetchval(
            "SELECT 1 FROM monitors WHERE project_id = $1 AND kind = $2 AND config ->> 'app_name' = $3 AND id <> $4",
            row["project_id"],
            hk.KIND,
            config.app_name,
            row["id"],
        )
        if taken:
            raise _already(config.app_name)
    await send_command(request, row, "configure", {"config": wanted})
    changed = await monitor_after(request, row["id"], lambda m: dict(m["config"]) == wanted)
    return Applied(row, queued=True) if changed is None else Applied(changed)


def _applied(request: web.Request, applied: Applied) -> web.Response:
    if applied.queued:
        now = request.app[CLOCK].now()
        view_now = view(applied.row, request.app[SETTINGS], now)
        return json_response({"status": "accepted", "heroku_app": view_now}, status=202)
    return _respond(request, applied.row, status=201 if applied.created else 200)


@handles_errors
async def create(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    params.known_fields(body, FIELDS)
    return _applied(request, await _create(request, project_id, _config(body)))


async def _own(request: web.Request) -> asyncpg.Record:
    project_id = await caller_project(request)
    return await owned_monitor(db(request), path_id(request, "heroku_id"), project_id, hk.KIND, "Heroku app")


async def heroku_rows(pool: asyncpg.Pool, project_id: int, *, before: int | None, limit: int) -> list[asyncpg.Record]:
    """A project's Heroku monitors, newest first, one page."""
    return await pool.fetch(
        "SELECT * FROM monitors WHERE project_id = $1 AND kind = $2 AND ($3::bigint IS NULL OR id < $3)"
        " ORDER BY id DESC LIMIT $4",
        project_id,
        hk.KIND,
        before,
        limit,
    )


@handles_errors
async def listing(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    limit, before, _ = page_args(request)
    rows = await heroku_rows(db(request), project_id, before=before, limit=limit)
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    return json_response([view(r, settings, now) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def read(request: web.Request) -> web.Response:
    return _respond(request, await _own(request))


@handles_errors
async def change(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    row = await _own(request)
    params.known_fields(body, FIELDS)
    if not FIELDS & set(body):
        raise InputError(422, "missing_field", f"send at least one of {', '.join(sorted(FIELDS))}")
    return _applied(request, await _change(request, row, _config(body, row["config"])))


@handles_errors
async def delete(request: web.Request) -> web.Response:
    return await delete_monitor(request, await _own(request))


# -- POST /update-config: the PRD's form, for the project's Heroku monitor ------------------------

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _form_or_json(request: web.Request) -> dict[str, Any]:
    if request.content_type not in FORM_TYPES:
        body = await json_object(request)
        assert body is not None
        return body
    if request.content_type == "multipart/form-data":
        form = await posted_form(request, "the form is not valid multipart/form-data")
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(400, "invalid_form", "the form is not valid UTF-8") from None
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError:
        raise InputError(400, "invalid_form", "the form has too many fields") from None
    return {k: v[-1] for k, v in fields.items()}


# The dashboard's handler of its own form posts to /update-config (set by the dashboard's Heroku
# page): a browser signed in to the dashboard posts with its session cookie and CSRF token, not a key.
FormHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FORM_HANDLER: web.AppKey[FormHandler] = web.AppKey("update_config_form")


def _from_dashboard(request: web.Request) -> bool:
    """A form a signed-in browser posts (a session cookie, and no key in the headers or query):
    the dashboard answers it, with a page, after checking its CSRF token. A key always wins."""
    return (
        FORM_HANDLER in request.app
        and request.content_type in FORM_TYPES
        and sessions.COOKIE in request.cookies
        and presented_key(request) is None
    )


async def update_config(request: web.Request) -> web.StreamResponse:
    """``POST /update-config``: the API's form or JSON (answered in JSON), or the dashboard's
    Heroku form posted by a signed-in browser (answered with a page)."""
    if _from_dashboard(request):
        return await request.app[FORM_HANDLER](request)
    return await update_config_api(request)


@handles_errors
async def update_config_api(request: web.Request) -> web.Response:
    """Set the Heroku monitor's ``app_name``, ``slack_channel`` and ``check_interval`` (1–60
    minutes), all three required as in the PRD's dashboard form; ``422`` names the field that is
    missing or wrong.

    Which monitor: ``monitor_id`` if given, else the project's only one; a project with none gets
    one (``201``); a project with several must say which."""
    body = await _form_or_json(request)
    project_id = await caller_project(request, body)
    if request.content_type not in FORM_TYPES:
        params.known_fields(body, FIELDS | {"monitor_id"})
    return _applied(request, await apply_config(request, project_id, body))


async def apply_config(request: web.Request, project_id: int, body: dict[str, Any]) -> Applied:
    """What ``/update-config`` does for ``project_id``, whoever posted it (a key, or a dashboard
    session): find the monitor (``monitor_id``, else the project's only one, else a new one),
    check all three fields (InputError naming the first bad one, ``errors`` every one) and apply
    the change through the detector (the prober sees it on its next look and checks at once)."""
    pool = db(request)
    monitor_id = params.id_field(body, "monitor_id", "the id of one of the project's Heroku monitors", text_ok=True)
    if monitor_id is not None:
        row = await owned_monitor(pool, monitor_id, project_id, hk.KIND, "Heroku app")
    else:
        rows = await pool.fetch(
            "SELECT * FROM monitors WHERE project_id = $1 AND kind = $2 ORDER BY id LIMIT 2", project_id, hk.KIND
        )
        if len(rows) > 1:
            raise InputError(422, "missing_field", "monitor_id is required: this project monitors several Heroku apps")
        row = rows[0] if rows else None
    # The form's fields are all required (a partial change is PATCH /v1/heroku-apps/{id}).
    config = _config({k: body[k] for k in hk.CONFIG_FIELDS if k in body}, required=hk.CONFIG_FIELDS)
    if row is None:
        return await _create(request, project_id, config)
    return await _change(request, row, config)


# -- the first monitor, from the environment ---------------------------------------------------


async def seed_project(pool: asyncpg.Pool, settings: Settings) -> int | None:
    """The project the seeded monitor (and /heroku-status) belongs to: HERON_HEROKU_PROJECT, an id
    or a name, else the first project; None while there is none."""
    wanted = settings.heroku_project
    if wanted is None:
        return await pool.fetchval("SELECT id FROM projects ORDER BY id LIMIT 1")
    if wanted.isascii() and wanted.isdigit() and len(wanted) < 19:
        found = await pool.fetchval("SELECT id FROM projects WHERE id = $1", int(wanted))
        if found is not None:
            return found
    return await pool.fetchval("SELECT id FROM projects WHERE name = $1 ORDER BY id LIMIT 1", wanted)


async def seed_once(pool: asyncpg.Pool, settings: Settings) -> str:
    """Create the monitor MONITORED_APP_NAME / SLACK_CHANNEL / CHECK_INTERVAL_MINUTES describe, once
    ever (a ``seeds`` row remembers it, so a deleted monitor stays deleted); what happened."""
    if settings.heroku_seed_app is None or settings.heroku_seed_channel is None:
        return "nothing to seed"
    config = hk.Config(settings.heroku_seed_app, settings.heroku_seed_channel, settings.heroku_seed_interval)
    async with pool.acquire() as conn, conn.transaction():
        # One ingest replica seeds; the others wait here and then find it done.
        await conn.execute("LOCK TABLE seeds IN SHARE ROW EXCLUSIVE MODE")
        if await conn.fetchval("SELECT 1 FROM seeds WHERE name = $1", SEED):
            return "seeded before"
        project_id = await seed_project(pool, settings)
        if project_id is None:
            return "no project yet"
        shard = stream_shard(project_id, f"{hk.KIND}:{config.app_name}", None, None, settings.shards)
        monitor_id = await conn.fetchval(
            "INSERT INTO monitors (project_id, kind, name, shard, state, config) VALUES ($1, $2, $3, $4, 'new', $5)"
            " ON CONFLICT DO NOTHING RETURNING id",
            project_id,
            hk.KIND,
            config.app_name,
            shard,
            config.to_dict(),
        )
        await conn.execute(
            "INSERT INTO seeds (name, project_id, monitor_id) VALUES ($1, $2, $3)", SEED, project_id, monitor_id
        )
    log.info("Heroku monitor seeded from the environment", project_id=project_id, monitor_id=monitor_id)
    return "seeded"


async def seed(app: web.Application) -> None:
    """Background: seed as soon as there is a project to seed into (a fresh install has none)."""
    settings = app[SETTINGS]
    if settings.heroku_seed_app is None:
        return
    while not app[STOPPING].is_set():
        try:
            if await seed_once(app[PG], settings) != "no project yet":
                return
        except Exception as exc:
            log.warning("seeding the Heroku monitor failed; retrying", error=str(exc) or type(exc).__name__)
        if await sleep_or_stop(app, 5.0):
            return


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/heroku-apps", create)
    app.router.add_get("/v1/heroku-apps", listing)
    app.router.add_get("/v1/heroku-apps/{heroku_id}", read)
    app.router.add_patch("/v1/heroku-apps/{heroku_id}", change)
    app.router.add_delete("/v1/heroku-apps/{heroku_id}", delete)
    app.router.add_post("/update-config", update_config)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_APP_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,28}[a-z0-9]$", "description": "Heroku's app name"}
_CHANNEL = {"type": "string", "minLength": 1, "description": "Slack channel, e.g. #ops"}
_INTERVAL = {"type": "integer", "minimum": 1, "maximum": 60, "description": "minutes"}
_CONFIG = {"app_name": _APP_NAME, "slack_channel": _CHANNEL, "check_interval": _INTERVAL}
_HEROKU = oa.obj(
    {
        "id": oa.ID,
        "kind": {"const": hk.KIND},
        "app_name": oa.STRING,
        "slack_channel": oa.STRING,
        "check_interval": oa.INTEGER,
        "state": oa.STRING,
        "paused": oa.BOOLEAN,
        "status": {"enum": ["ACTIVE", "INACTIVE"]},
        "error": oa.nullable(oa.ANY),
        "last_check_at": oa.OPTIONAL_TIME,
        "dynos": oa.ANY,
        "release": oa.ANY,
        "addons": oa.ANY,
        "maintenance": oa.ANY,
        "monitor_id": oa.ID,
        "created_at": oa.TIME,
    }
)
_ID = oa.path_param("heroku_id", "the Heroku app monitor's id")
_QUEUED = {503: "Could not be queued; retry"}
_TAKEN = {409: "This project already monitors that app"}
_CHANGED = {
    200: oa.json_response(_HEROKU, "Done (or nothing to change)"),
    202: oa.json_response(oa.accepted("heroku_app", _HEROKU), "Queued for the detector; applied shortly"),
}

PATHS = {
    "/v1/heroku-apps": {
        "post": oa.operation(
            "Monitor a Heroku app (dynos, release, add-ons), reported to a Slack channel",
            tag="heroku",
            operation_id="createHerokuApp",
            body=oa.json_body(oa.obj(_CONFIG, required=["app_name", "slack_channel"], additionalProperties=False)),
            errors=_TAKEN,
            responses={201: oa.json_response(_HEROKU, "Created")},
        ),
        "get": oa.operation(
            "The project's Heroku app monitors, newest first",
            tag="heroku",
            operation_id="listHerokuApps",
            parameters=list(oa.PAGE),
            responses={200: oa.page_of(_HEROKU, "One page of Heroku app monitors")},
        ),
    },
    "/v1/heroku-apps/{heroku_id}": {
        "get": oa.operation(
            "One Heroku app monitor",
            tag="heroku",
            operation_id="getHerokuApp",
            parameters=[_ID],
            responses={200: oa.json_response(_HEROKU, "It")},
        ),
        "patch": oa.operation(
            "Change a Heroku app monitor (applies at once, no restart)",
            tag="heroku",
            operation_id="updateHerokuApp",
            parameters=[_ID],
            body=oa.json_body(oa.obj(_CONFIG, required=[], minProperties=1, additionalProperties=False)),
            errors={**_TAKEN, **_QUEUED},
            responses=_CHANGED,
        ),
        "delete": oa.operation(
            "Stop monitoring a Heroku app",
            tag="heroku",
            operation_id="deleteHerokuApp",
            parameters=[_ID],
            errors=_QUEUED,
            responses={
                204: oa.NO_CONTENT,
                202: oa.json_response(oa.obj({"status": {"const": "accepted"}}), "Queued; deleted shortly"),
            },
        ),
    },
    "/update-config": {
        "post": oa.operation(
            "Set the project's Heroku monitor (all three fields, form or JSON); creates it if there is none",
            tag="heroku",
            operation_id="updateConfig",
            body={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": oa.obj({**_CONFIG, "monitor_id": oa.ID, "api_key": oa.STRING}, required=list(_CONFIG))
                    },
                    "application/x-www-form-urlencoded": {
                        "schema": oa.obj(
                            {
                                "app_name": _APP_NAME,
                                "slack_channel": _CHANNEL,
                                "check_interval": {"type": "string", "pattern": "^[0-9]{1,2}$"},
                                "monitor_id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                                "api_key": oa.STRING,
                            },
                            required=list(_CONFIG),
                        )
                    },
                },
            },
            errors={404: "monitor_id names no Heroku monitor of this project", **_TAKEN, **_QUEUED},
            responses={201: oa.json_response(_HEROKU, "Created"), **_CHANGED},
        )
    },
}
