"""Incidents, open and resolved, filtered by environment, service and kind; acknowledging and
resolving go to the detector through the API's own path (``monitors_api``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common.db import to_ts
from heron_common.monitors import RESOLVABLE_BY_HAND
from heron_common.service import CLOCK, PG
from heron_common.views import incident_view
from heron_ingest import monitors_api, params, read
from heron_ingest.dashboard import queries
from heron_ingest.dashboard.core import FormState, back, form_of, page, render, safe_next, scope, viewer, writable
from heron_ingest.requests import page_args
from heron_ingest.validation import InputError

STATUSES = (read.OPEN, read.RESOLVED)


def shown(row: Any, now: float) -> dict[str, Any]:
    """An incident as the API shows it, plus how long it has lasted (so far)."""
    view = incident_view(row)
    started = to_ts(row["started_at"])
    lasted = view["duration"] if view["resolved_at"] else (now - started if started is not None else None)
    return {**view, "lasted": lasted, "opened_ts": to_ts(row["opened_at"])}


@page
async def incidents(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    q = request.query
    limit, before, environment = page_args(request)
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise InputError(422, "invalid_parameter", "status must be open or resolved (or empty for all)")
    filters = {
        "environment": environment or None,
        "service": params.query_text(q, "service") or None,
        "kind": params.query_text(q, "kind") or None,
        "status": status,
    }
    pool = request.app[PG]
    rows = await read.incident_rows(pool, project.id, before=before, limit=limit, **filters)
    now = request.app[CLOCK].now()
    older = None
    if len(rows) == limit:
        older = {k: v for k, v in filters.items() if v} | {"before": rows[-1]["id"]}
    labels = await queries.labels(pool, project.id)
    options = {name: [("", "Any")] + [(v, v) for v in values] for name, values in labels.items()}
    options["status"] = [("", "Open and resolved"), (read.OPEN, "Open"), (read.RESOLVED, "Resolved")]
    return render(
        request,
        "incidents.html",
        {
            "incidents": [shown(r, now) for r in rows],
            "filters": FormState({k: v or "" for k, v in filters.items()}, {}),
            "options": options,
            "resolvable": RESOLVABLE_BY_HAND,
            "older": older,
        },
        project=project,
        active="incidents",
    )


def _incident_action(action: str) -> Any:
    @page
    async def act(request: web.Request) -> web.StreamResponse:
        form = await form_of(request)
        session = await viewer(request)
        writable(session)
        project = await scope(request, session)
        incident, monitor = await monitors_api.own_incident(request, project.id)
        if action == "acknowledge":
            done = await monitors_api.acknowledge_incident(request, incident, monitor)
        else:
            done = await monitors_api.resolve_incident(request, incident, monitor)
        target = safe_next(form.get("next"), f"/dashboard/p/{project.id}/incidents")
        return back(target, ("acknowledged" if action == "acknowledge" else "resolved") if done else "queued")

    act.__name__ = action
    return act


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/p/{project_id}/incidents", incidents, name="dashboard.incidents")
    for action in ("acknowledge", "resolve"):
        app.router.add_post(f"/dashboard/p/{{project_id}}/incidents/{{incident_id}}/{action}", _incident_action(action))
