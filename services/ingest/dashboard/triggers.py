"""On-call triggers: the list with acknowledge and resolve buttons, forms to create and edit one,
and services to put them in. Forms go through the API's own checks (``triggers_api.create_trigger``
/ ``update_trigger``, ``services_api.create_service``); acknowledging and resolving go through the
incident commands the API uses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common.monitors import trigger as tr
from heron_common.service import PG
from heron_common.views import display_state
from heron_ingest import monitors_api, read, services_api, triggers_api
from heron_ingest.dashboard import queries
from heron_ingest.dashboard.core import (
    FormState,
    back,
    form_error,
    form_of,
    number,
    page,
    render,
    scope,
    text,
    viewer,
    writable,
)
from heron_ingest.validation import InputError

FIELDS = ("name", "service_id", "kind", "timeout", "critical", "escalate")


def body_of(form: Any) -> dict[str, Any]:
    """The API body a trigger form stands for (checkboxes are booleans, ids and seconds numbers
    when they read as such: the API judges them)."""
    body: dict[str, Any] = {
        "name": text(form, "name") or "",
        "service_id": number(form, "service_id"),
        "kind": text(form, "kind") or tr.MANUAL,
        "critical": form.get("critical") == "on",
        "escalate": form.get("escalate") == "on",
    }
    timeout = number(form, "timeout")
    if timeout is not None:
        body["timeout"] = timeout
    return body


def values_of(row: Any) -> dict[str, Any]:
    view = triggers_api.trigger_view(row)
    return {
        "name": view["name"],
        "service_id": view["service_id"] or "",
        "kind": view["kind"],
        "timeout": "" if view["timeout"] is None else f"{float(view['timeout']):g}",
        "critical": view["critical"],
        "escalate": view["escalate"],
    }


NEW_TRIGGER = {"name": "", "service_id": "", "kind": tr.MANUAL, "timeout": "", "critical": True, "escalate": True}


async def _list(
    request: web.Request, project: Any, form: FormState, service_form: FormState | None = None, status: int = 200
) -> web.Response:
    pool = request.app[PG]
    acknowledged = await queries.open_acknowledged(pool, project.id)
    items = [
        {**triggers_api.trigger_view(r), "display": display_state(r["state"], acknowledged.get(r["id"], False))}
        for r in await triggers_api.trigger_rows(pool, project.id)
    ]
    services = await services_api.service_rows(pool, project.id)
    return render(
        request,
        "triggers.html",
        {
            "triggers": items,
            "services": services,
            "service_options": [(s["id"], s["name"]) for s in services],
            "form": form,
            "service_form": service_form or FormState({"name": ""}, {}),
            "base_url": f"{request.scheme}://{request.host}",
        },
        project=project,
        active="triggers",
        status=status,
    )


@page
async def triggers(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    return await _list(request, project, FormState(dict(NEW_TRIGGER), {}))


@page
async def create(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    body = body_of(form)
    try:
        await triggers_api.create_trigger(request, project.id, body)
    except InputError as exc:
        return await _list(request, project, form_error(dict(body), exc, FIELDS), status=exc.status)
    return back(f"/dashboard/p/{project.id}/triggers", "trigger_created")


@page
async def add_service(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    body = {"name": text(form, "name") or ""}
    try:
        await services_api.create_service(request.app[PG], project.id, body)
    except InputError as exc:
        state = form_error(body, exc, ("name",))
        return await _list(request, project, FormState(dict(NEW_TRIGGER), {}), state, status=exc.status)
    return back(f"/dashboard/p/{project.id}/triggers", "service_created")


def _edit(request: web.Request, project: Any, row: Any, form: FormState, services: Any, status: int = 200) -> Any:
    return render(
        request,
        "trigger_edit.html",
        {
            "trigger": triggers_api.trigger_view(row),
            "form": form,
            "service_options": [(s["id"], s["name"]) for s in services],
        },
        project=project,
        active="triggers",
        status=status,
    )


@page
async def edit_form(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    row = await triggers_api.own_trigger(request, project.id)
    services = await services_api.service_rows(request.app[PG], project.id)
    return _edit(request, project, row, FormState(values_of(row), {}), services)


@page
async def edit(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    row = await triggers_api.own_trigger(request, project.id)
    body = body_of(form)
    try:
        changed = await triggers_api.update_trigger(request, project.id, row, body)
    except InputError as exc:
        services = await services_api.service_rows(request.app[PG], project.id)
        return _edit(request, project, row, form_error(dict(body), exc, FIELDS), services, status=exc.status)
    return back(f"/dashboard/p/{project.id}/triggers", "trigger_saved" if changed is not None else "queued")


def _action(action: str) -> Any:
    """Acknowledge or resolve a trigger: its open incident, through the API's incident commands."""

    @page
    async def act(request: web.Request) -> web.StreamResponse:
        await form_of(request)
        session = await viewer(request)
        writable(session)
        project = await scope(request, session)
        monitor = await triggers_api.own_trigger(request, project.id)
        pool = request.app[PG]
        [incident] = await read.incident_rows(
            pool, project.id, before=None, limit=1, monitor_id=monitor["id"], status=read.OPEN
        ) or [None]
        target = f"/dashboard/p/{project.id}/triggers"
        if incident is None:
            return back(target, "nothing_open")
        if action == "acknowledge":
            done = await monitors_api.acknowledge_incident(request, incident, monitor)
        else:
            done = await monitors_api.resolve_incident(request, incident, monitor)
        return back(target, ("acknowledged" if action == "acknowledge" else "resolved") if done else "queued")

    act.__name__ = action
    return act


def add_routes(app: web.Application) -> None:
    base = "/dashboard/p/{project_id}/triggers"
    app.router.add_get(base, triggers, name="dashboard.triggers")
    app.router.add_post(base, create)
    app.router.add_post("/dashboard/p/{project_id}/services", add_service)
    app.router.add_get(base + "/{trigger_id}/edit", edit_form, name="dashboard.trigger_edit")
    app.router.add_post(base + "/{trigger_id}/edit", edit)
    for action in ("acknowledge", "resolve"):
        app.router.add_post(f"{base}/{{trigger_id}}/{action}", _action(action))
