"""On-call: each service with who is on call now and next, and each rotation with its text (edited
with the API's own parser and messages: a line it refuses is named beside the field) and its
upcoming shifts. Rotations, people and escalations are created through the API (docs/oncall.md);
this page is where a team checks and fixes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from heron_common.service import CLOCK, PG
from heron_ingest import oncall_api, params
from heron_ingest.dashboard import nav
from heron_ingest.dashboard.core import FormState, back, form_error, form_of, page, render, scope, viewer, writable
from heron_ingest.requests import owned_row
from heron_ingest.validation import InputError

SHIFTS_SHOWN = 8
FIELDS = ("spec",)

nav.register(
    nav.Entry(
        "oncall",
        "On-call",
        "oncall",
        45,
        "Tip: one line per shift, `email, until Mon 9:00am PT`; a changed text applies to shifts generated"
        " from now on (delete future shifts through the API to regenerate them). 🌵",
    )
)


def _timed(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """A shift (API view) with its times as timestamps too, for the page's "in 2 d" texts."""
    if item is None:
        return None
    stamps = {f"{k}_ts": datetime.fromisoformat(item[k]).timestamp() for k in ("starts_at", "ends_at") if item.get(k)}
    return {**item, **stamps}


async def _page(
    request: web.Request, project: Any, forms: dict[int, FormState] | None = None, status: int = 200
) -> web.Response:
    pool = request.app[PG]
    now = datetime.fromtimestamp(request.app[CLOCK].now(), UTC)
    services = await pool.fetch("SELECT * FROM services WHERE project_id = $1 ORDER BY name, id", project.id)
    rotations = await pool.fetch("SELECT * FROM rotations WHERE project_id = $1 ORDER BY name, id", project.id)
    names = {r["id"]: r["name"] for r in rotations}
    service_items = []
    for s in services:
        oncall = await oncall_api.oncall_of(pool, s, now)
        # The rotation's name: oncall_of's own "rotation" is an object, not text to show.
        service_items.append(
            {
                "name": s["name"],
                "rotation": names.get(s["rotation_id"]),
                "now": _timed(oncall["now"]),
                "next": _timed(oncall["next"]),
            }
        )
    forms = forms or {}
    rotation_items = [
        {
            **(await oncall_api.rotation_view(pool, r)),
            "shifts": [
                _timed(shift)
                for shift in await oncall_api.upcoming_shifts(pool, project.id, r["id"], now, SHIFTS_SHOWN)
            ],
            "form": forms.get(r["id"], FormState({"spec": r["spec"]}, {})),
        }
        for r in rotations
    ]
    return render(
        request,
        "oncall.html",
        {"services": service_items, "rotations": rotation_items},
        project=project,
        active="oncall",
        status=status,
    )


@page
async def oncall(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    return await _page(request, await scope(request, session))


@page
async def edit_rotation(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    rotation_id = params.path_id(request.match_info, "rotation_id")
    row = await owned_row(request.app[PG], "rotations", rotation_id, project.id, "rotation")
    spec = form.get("spec") if isinstance(form.get("spec"), str) else ""
    # Browsers send a textarea's lines ending in CRLF: store the text as the API would have it.
    spec = spec.replace("\r\n", "\n")
    try:
        await oncall_api.change_rotation(request, row, {"spec": spec})
    except InputError as exc:
        state = form_error({"spec": spec}, exc, FIELDS)
        return await _page(request, project, {row["id"]: state}, status=exc.status)
    return back(f"/dashboard/p/{project.id}/oncall", "rotation_saved")


def add_routes(app: web.Application) -> None:
    base = "/dashboard/p/{project_id}/oncall"
    app.router.add_get(base, oncall, name="dashboard.oncall")
    app.router.add_post(base + "/rotations/{rotation_id}", edit_rotation)
