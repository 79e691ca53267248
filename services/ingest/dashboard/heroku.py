"""Heroku monitoring: each watched app's configuration (app, Slack channel, interval) with its
ACTIVE / INACTIVE status, the monitor's state, the last check and what it saw (dynos, release,
add-ons) or the error Heroku answered, and the PRD's form to change it.

The form posts to ``POST /update-config``, the PRD's endpoint (``heroku_api``). A post from a
signed-in browser (the session cookie, no API key) is handed to :func:`update_config_form` here:
CSRF, the session's project, then the very function the API runs (``heroku_api.apply_config``:
one validation, every bad field named beside its field), and back to this page. The change is a
``configure`` command to the detector; the prober sees the new config on its next look and checks
the app at once.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common.monitors import heroku as hk
from heron_common.service import CLOCK, PG, SETTINGS
from heron_common.views import display_state
from heron_ingest import heroku_api
from heron_ingest.dashboard import nav, queries
from heron_ingest.dashboard.core import (
    CSRF_FIELD,
    FormState,
    back,
    form_error,
    form_of,
    home_of,
    page,
    read_form,
    redirect,
    render,
    scope,
    text,
    viewer,
    writable,
)
from heron_ingest.validation import InputError

FIELDS = hk.CONFIG_FIELDS
NEW = "new"  # the key of the form that starts monitoring (no monitor yet)
LIST_LIMIT = 50
# How a dyno's or an add-on's state is coloured, in the palette of monitor states.
DYNO_DISPLAY = {"up": "up", "idle": "up", "starting": "new", "crashed": "down", "down": "down"}
ADDON_DISPLAY = {"provisioned": "up", "provisioning": "new"}

nav.register(
    nav.Entry(
        "heroku",
        "Heroku",
        "heroku",
        65,
        "Tip: changes apply at once, no redeploy: the app is checked again as soon as you save. "
        "Watch more apps (each with its own channel) through POST /v1/heroku-apps.",
        live=True,
    )
)


def values_of(row: Any) -> dict[str, Any]:
    config = row["config"] or {}
    return {name: "" if config.get(name) is None else str(config[name]) for name in FIELDS}


def body_of(form: Any) -> dict[str, Any]:
    """The ``/update-config`` body a dashboard form stands for: the three fields as typed (an
    empty one is missing), and which monitor."""
    body: dict[str, Any] = {name: text(form, name) for name in FIELDS}
    body = {k: v for k, v in body.items() if v is not None}
    monitor_id = text(form, "monitor_id")
    if monitor_id is not None:
        body["monitor_id"] = monitor_id
    return body


def card(row: Any, acknowledged: dict[int, bool], settings: Any, now: float) -> dict[str, Any]:
    """A watched app as the page shows it: the API's view, plus colours for what it saw."""
    view = heroku_api.view(row, settings, now)
    return {
        **view,
        "display": display_state(row["state"], acknowledged.get(row["id"], False)),
        "checked_ts": hk.load(row["state"], row["data"] or {}).checked_at,
        "interval_text": f"every {view['check_interval']} minute{'s' if view['check_interval'] != 1 else ''}"
        if view["check_interval"]
        else "—",
        "dynos_shown": [{**d, "display": DYNO_DISPLAY.get(d["state"], "late")} for d in view["dynos"] or []],
        "addons_shown": [{**a, "display": ADDON_DISPLAY.get(a["state"], "down")} for a in view["addons"] or []],
    }


async def _page(
    request: web.Request, project: Any, forms: dict[str, FormState] | None = None, status: int = 200
) -> web.Response:
    pool = request.app[PG]
    rows = await heroku_api.heroku_rows(pool, project.id, before=None, limit=LIST_LIMIT)
    rows = sorted(rows, key=lambda r: r["id"])  # the first app first
    acknowledged = await queries.open_acknowledged(pool, project.id)
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    apps = [card(r, acknowledged, settings, now) for r in rows]
    shown = {str(r["id"]): FormState(values_of(r), {}) for r in rows}
    if not rows:
        shown[NEW] = FormState({"app_name": "", "slack_channel": "#", "check_interval": str(hk.DEFAULT_INTERVAL)}, {})
    shown.update(forms or {})
    return render(
        request,
        "heroku.html",
        {
            "apps": apps,
            "forms": shown,
            "new_form": shown.get(NEW),
            "min_interval": hk.MIN_INTERVAL,
            "max_interval": hk.MAX_INTERVAL,
            "api_key_set": settings.heroku_api_key is not None,
        },
        project=project,
        active="heroku",
        status=status,
    )


@page
async def heroku(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    return await _page(request, project)


@page
async def update_config_form(request: web.Request) -> web.StreamResponse:
    """``POST /update-config`` from the dashboard's form (see ``heroku_api.update_config``)."""
    form = await read_form(request)
    if "api_key" in form and CSRF_FIELD not in form:
        # A plain HTML form carrying its key (the PRD's), from a browser that also happens to
        # be signed in: the key decides, as for any API call.
        return await heroku_api.update_config_api(request)
    form = await form_of(request)  # CSRF: a form this session's page gave out, or 403
    session = await viewer(request)
    writable(session)
    raw_project = text(form, "project_id")
    if raw_project is None and not session.admin:
        raw_project = str(session.project_id)
    project = await scope(request, session, raw_project or "")
    body = body_of(form)
    try:
        applied = await heroku_api.apply_config(request, project.id, body)
    except InputError as exc:
        if exc.status not in (409, 422):
            raise  # another project's monitor (404) is a page of its own
        values = {name: body.get(name, "") for name in FIELDS}
        key = str(body.get("monitor_id") or NEW)
        return await _page(request, project, {key: form_error(values, exc, FIELDS)}, status=exc.status)
    notice = "queued" if applied.queued else "heroku_created" if applied.created else "heroku_saved"
    return back(f"/dashboard/p/{project.id}/heroku", notice)


@page
async def update_config_page(request: web.Request) -> web.StreamResponse:
    """``GET /update-config`` in a browser: the Heroku page of the session's project."""
    session = await viewer(request)
    if session.admin:
        return redirect(home_of(session))
    return redirect(f"/dashboard/p/{session.project_id}/heroku")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/p/{project_id}/heroku", heroku, name="dashboard.heroku")
    app.router.add_get("/update-config", update_config_page)
    app[heroku_api.FORM_HANDLER] = update_config_form
