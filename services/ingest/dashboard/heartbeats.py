"""Heartbeats: the list with each ping URL (and a button to copy it), and forms to create and
edit one. A form becomes the API's JSON body and goes through the API's own checks and inserts
(``heartbeats_api.create_heartbeat`` / ``change_heartbeat``): one set of rules, one set of
messages, shown beside the field they are about."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common.service import CLOCK, PG
from heron_common.views import display_state
from heron_ingest import heartbeats_api, params
from heron_ingest.dashboard import queries
from heron_ingest.dashboard.core import (
    FormState,
    back,
    form_error,
    form_of,
    page,
    render,
    scope,
    text,
    viewer,
    writable,
)
from heron_ingest.validation import InputError

FIELDS = ("name", "interval", "grace", "schedule", "tz", "service", "environment")
LIST_LIMIT = 200


def body_of(form: Any) -> dict[str, Any]:
    """The API body a heartbeat form stands for: empty fields are absent; durations stay text
    (the API reads ``10m`` as well as ``600``). A time zone only goes with a schedule."""
    body = {name: text(form, name) for name in FIELDS}
    if body["schedule"] is None:
        body["tz"] = None
    return {k: v for k, v in body.items() if v is not None}


def values_of(row: Any) -> dict[str, Any]:
    config = row["config"] or {}

    def seconds(value: Any) -> str:
        return "" if value is None else f"{float(value):g}"

    return {
        "name": row["name"] or "",
        "interval": seconds(config.get("interval")),
        "grace": seconds(config.get("grace")),
        "schedule": config.get("schedule") or "",
        "tz": config.get("tz") or "",
        "service": row["service"] or "",
        "environment": row["environment"] or "",
    }


@page
async def heartbeats(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    return await _list(request, project, FormState({"grace": "5m", "interval": "1h"}, {}))


async def _list(request: web.Request, project: Any, form: FormState, status: int = 200) -> web.Response:
    pool = request.app[PG]
    before = params.query_id(request.query, "before", "a heartbeat id from the previous page")
    rows = await heartbeats_api.heartbeat_rows(pool, project.id, before=before, limit=LIST_LIMIT)
    acknowledged = await queries.open_acknowledged(pool, project.id)
    items = [
        {**heartbeats_api.view(request, r), "display": display_state(r["state"], acknowledged.get(r["id"], False))}
        for r in rows
    ]
    return render(
        request,
        "heartbeats.html",
        {"heartbeats": items, "form": form, "now": request.app[CLOCK].now()},
        project=project,
        active="heartbeats",
        status=status,
    )


@page
async def create(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    body = body_of(form)
    try:
        await heartbeats_api.create_heartbeat(request, project.id, body)
    except InputError as exc:
        return await _list(request, project, form_error(dict(body), exc, FIELDS), status=exc.status)
    return back(f"/dashboard/p/{project.id}/heartbeats", "heartbeat_created")


@page
async def edit_form(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    row = await heartbeats_api.own_heartbeat(request, project.id)
    return _edit(request, project, row, FormState(values_of(row), {}))


def _edit(request: web.Request, project: Any, row: Any, form: FormState, status: int = 200) -> web.Response:
    return render(
        request,
        "heartbeat_edit.html",
        {"heartbeat": heartbeats_api.view(request, row), "form": form},
        project=project,
        active="heartbeats",
        status=status,
    )


@page
async def edit(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    row = await heartbeats_api.own_heartbeat(request, project.id)
    body = body_of(form)
    if body.get("schedule") is not None:
        body.pop("interval", None)  # the form shows both; a schedule filled in replaces the interval
    for name in ("name", "service", "environment"):
        body.setdefault(name, "")  # emptied on the form: cleared (and a name is required)
    try:
        changed = await heartbeats_api.change_heartbeat(request, row, body)
    except InputError as exc:
        return _edit(request, project, row, form_error({**values_of(row), **body}, exc, FIELDS), status=exc.status)
    return back(f"/dashboard/p/{project.id}/heartbeats", "heartbeat_saved" if changed is not None else "queued")


def add_routes(app: web.Application) -> None:
    base = "/dashboard/p/{project_id}/heartbeats"
    app.router.add_get(base, heartbeats, name="dashboard.heartbeats")
    app.router.add_post(base, create)
    app.router.add_get(base + "/{heartbeat_id}/edit", edit_form, name="dashboard.heartbeat_edit")
    app.router.add_post(base + "/{heartbeat_id}/edit", edit)
