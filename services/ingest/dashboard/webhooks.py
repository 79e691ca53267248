"""Webhook endpoints with their health, the delivery log with every attempt, and redelivery
(``webhooks_api``'s queries and its redeliver, unchanged)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common.db import to_ts
from heron_common.service import CLOCK, PG
from heron_ingest import webhooks_api
from heron_ingest.context import SECRETS
from heron_ingest.dashboard.core import FormState, back, form_of, page, render, safe_next, scope, viewer, writable
from heron_ingest.requests import page_args, path_id


def health(endpoint: dict[str, Any]) -> tuple[str, str]:
    """A word for an endpoint's health and the display state its badge is drawn with."""
    if not endpoint["enabled"]:
        return "Disabled", "paused"
    if endpoint["failing_since"]:
        return "Failing", "down"
    if endpoint["last_success_at"]:
        return "Healthy", "up"
    return "No deliveries yet", "new"


@page
async def webhooks(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    pool = request.app[PG]
    now = request.app[CLOCK].now()
    limit, before, _ = page_args(request)
    # A filter form sends "" for "any"; the API's checks take absent for that.
    endpoint_id, status, topic = webhooks_api.delivery_filters({k: v for k, v in request.query.items() if v})
    endpoints = []
    for row in await webhooks_api.endpoint_rows(pool, project.id):
        view = webhooks_api.endpoint_view(row, now, request.app[SECRETS])
        word, state = health(view)
        endpoints.append({**view, "health": word, "health_state": state})
    rows = await webhooks_api.delivery_rows(
        pool, project.id, before=before, limit=limit, endpoint_id=endpoint_id, status=status, topic=topic
    )
    deliveries = await webhooks_api.with_attempts(pool, rows)
    created = {r["id"]: to_ts(r["created_at"]) for r in rows}
    for d in deliveries:
        d["created_ts"] = created[d["id"]]
    filters = {"endpoint_id": endpoint_id, "status": status, "topic": topic}
    older = None
    if len(rows) == limit:
        older = {k: v for k, v in filters.items() if v is not None} | {"before": rows[-1]["id"]}
    options = {
        "endpoint_id": [("", "Any target")] + [(e["id"], f"#{e['id']} {e['url']}") for e in endpoints],
        "status": [("", "Any status")] + [(s, s) for s in webhooks_api.DELIVERY_STATUSES],
    }
    return render(
        request,
        "webhooks.html",
        {
            "endpoints": endpoints,
            "deliveries": deliveries,
            "filters": FormState({k: "" if v is None else v for k, v in filters.items()}, {}),
            "options": options,
            "older": older,
        },
        project=project,
        active="webhooks",
    )


@page
async def redeliver(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    await webhooks_api.redeliver_one(request, project.id, path_id(request, "delivery_id"))
    return back(safe_next(form.get("next"), f"/dashboard/p/{project.id}/webhooks"), "redelivering")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/p/{project_id}/webhooks", webhooks, name="dashboard.webhooks")
    app.router.add_post("/dashboard/p/{project_id}/deliveries/{delivery_id}/redeliver", redeliver)
