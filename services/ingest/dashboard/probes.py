"""HTTP probes: the list with each probe's state and last result (why it is down, the status, the
time each phase took), forms to create and edit one, pause and resume. A form becomes the API's
JSON body and goes through the API's own checks and changes (``probes_api.create_probe`` /
``change_probe`` / ``pause_probe`` / ``resume_probe``): one set of rules and messages, each shown
beside the field it is about. A probe's results history is on its monitor page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from heron_common.monitors import probe as pr
from heron_common.service import PG, SETTINGS
from heron_common.views import display_state, human_seconds
from heron_ingest import params, probes_api
from heron_ingest.dashboard import nav, queries
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

LABELS = ("name", "service", "environment")
SECONDS = ("interval", "request_timeout", "timeout", "max_latency")
TEXTS = (
    "url",
    "method",
    "body",
    "expected_location",
    "header_name",
    "header_contains",
    "body_contains",
    "body_regex",
    "json_path",
)
FIELDS = (*LABELS, *TEXTS, "headers", *SECONDS, "expected_status", "json_equals")
# The checks beyond the status code, folded away on the form unless one is set (or wrong).
CHECKS = (
    "expected_location",
    "max_latency",
    "header_name",
    "header_contains",
    "body_contains",
    "body_regex",
    "json_path",
    "json_equals",
)
LIST_LIMIT = 200
PHASE_LABELS = {"dns": "DNS", "connect": "connect", "tls": "TLS", "first_byte": "first byte", "total": "total"}

nav.register(
    nav.Entry(
        "probes",
        "Probes",
        "probes",
        55,
        "Tip: a probe only opens an incident once the endpoint has been down for its whole timeout; "
        "a shorter blip shows as late (failing) and goes away by itself.",
        live=True,
    )
)


def _headers(raw: str | None) -> dict[str, str] | None:
    """``Name: value`` lines as the API's headers object (None when there are none)."""
    if raw is None:
        return None
    headers: dict[str, str] = {}
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise InputError(422, "invalid_field", f"headers line {n} must read 'Name: value'", "headers")
        headers[name.strip()] = value.strip()
    return headers or None


def _statuses(raw: str | None) -> list[Any] | None:
    """``200, 204`` as the API's list of codes; a part that is not a number is passed on as typed,
    so the API's message names it."""
    if raw is None:
        return None
    parts = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
    return [int(p) if p.isascii() and p.isdigit() and len(p) <= 3 else p for p in parts] or None


def _json_value(raw: str | None) -> Any:
    """What a JSON path must equal, as typed: JSON (``"ok"``, ``200``, ``true``, ``null``), or
    else the text itself as a string."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def body_of(form: Any, *, editing: bool = False) -> dict[str, Any]:
    """The API body a probe form stands for. Creating, empty fields are absent (the API's
    defaults); editing, every setting is sent and an empty one is cleared (null: back to its
    default), the name is kept when left empty, and an emptied service is refused by the API."""
    body: dict[str, Any] = {name: text(form, name) for name in (*LABELS, *TEXTS)}
    body.update({name: number(form, name) for name in SECONDS})
    body["headers"] = _headers(text(form, "headers"))
    body["expected_status"] = _statuses(text(form, "expected_status"))
    equals = text(form, "json_equals")
    if equals is not None:
        body["json_equals"] = _json_value(equals)
    if body.get("body") is not None and isinstance(form.get("body"), str):
        body["body"] = form["body"]  # a request body is sent as typed (spaces and all)
    if not editing:
        # null is a value a JSON path may be expected to equal: kept when it was typed.
        return {k: v for k, v in body.items() if v is not None or (k == "json_equals" and equals is not None)}
    if body["name"] is None:
        del body["name"]
    body["service"] = body["service"] or ""
    body["environment"] = body["environment"] or ""
    return body


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):g}"


def values_of(view: dict[str, Any]) -> dict[str, Any]:
    """A probe's settings as its edit form shows them (header credentials stay masked: sent back
    as ``***``, they keep their stored value)."""
    return {
        "name": view["name"] or "",
        "service": view["service"] or "",
        "environment": view["environment"] or "",
        "url": view["url"],
        "method": view["method"],
        "headers": "\n".join(f"{k}: {v}" for k, v in (view.get("headers") or {}).items()),
        "body": view.get("body") or "",
        **{name: _seconds(view.get(name)) for name in SECONDS},
        "expected_status": ", ".join(str(s) for s in view.get("expected_status") or []),
        **{name: view.get(name) or "" for name in CHECKS if name not in ("max_latency", "json_equals")},
        "json_equals": orjson.dumps(view.get("json_equals")).decode() if view.get("json_path") else "",
    }


def phase_times(timings: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The time each phase took, as shown: ``[("DNS", "2 ms"), …, ("total", "35 ms")]``; phases
    that did not happen (no TLS over http, a refused connection) are left out."""
    shown = []
    for phase in pr.PHASES:
        value = (timings or {}).get(phase)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown.append((PHASE_LABELS[phase], f"{value * 1000:.0f} ms" if value < 1 else human_seconds(value)))
    return shown


def _ts(iso_text: str | None) -> float | None:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp() if iso_text else None


def item(view: dict[str, Any], display: str) -> dict[str, Any]:
    """A probe as a row of the list: the API's view plus what a person reads at a glance."""
    last = view["last_result"]
    return {
        **view,
        "display": display,
        "shown_url": pr.shown_url(view["url"]),
        "expects": ", ".join(str(s) for s in view["expected_status"]),
        "last": {**last, "phases": phase_times(last.get("timings")), "at_ts": _ts(last.get("at"))} if last else None,
    }


def _new_values(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {
        "method": pr.DEFAULT_METHOD,
        "interval": _seconds(max(pr.DEFAULT_INTERVAL, settings.probe_min_interval)),
        "request_timeout": _seconds(pr.DEFAULT_REQUEST_TIMEOUT),
        "timeout": _seconds(max(pr.DEFAULT_TIMEOUT, settings.probe_min_timeout)),
        "expected_status": ", ".join(str(s) for s in pr.DEFAULT_STATUS),
    }


def _context(request: web.Request, form: FormState) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {
        "form": form,
        "methods": [(m, m) for m in pr.METHODS],
        "checks_open": any(form.values.get(name) for name in CHECKS) or any(name in form.errors for name in CHECKS),
        "min_interval": settings.probe_min_interval,
        "min_timeout": settings.probe_min_timeout,
    }


async def _list(request: web.Request, project: Any, form: FormState, status: int = 200) -> web.Response:
    pool = request.app[PG]
    before = params.query_id(request.query, "before", "a probe id from the previous page")
    rows = await probes_api.probe_rows(pool, project.id, before=before, limit=LIST_LIMIT)
    acknowledged = await queries.open_acknowledged(pool, project.id)
    probes = [item(probes_api.view(r), display_state(r["state"], acknowledged.get(r["id"], False))) for r in rows]
    return render(
        request,
        "probes.html",
        {
            **_context(request, form),
            "probes": probes,
            "older": rows[-1]["id"] if len(rows) == LIST_LIMIT else None,
        },
        project=project,
        active="probes",
        status=status,
    )


@page
async def probes(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    return await _list(request, project, FormState(_new_values(request), {}))


def _typed(form: Any) -> dict[str, Any]:
    """What was typed, to show again beside the error."""
    return {name: form.get(name) if isinstance(form.get(name), str) else "" for name in FIELDS}


@page
async def create(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    try:
        await probes_api.create_probe(request, project.id, body_of(form))
    except InputError as exc:
        return await _list(request, project, form_error(_typed(form), exc, FIELDS), status=exc.status)
    return back(f"/dashboard/p/{project.id}/probes", "probe_created")


def _edit(request: web.Request, project: Any, row: Any, form: FormState, status: int = 200) -> web.Response:
    return render(
        request,
        "probe_edit.html",
        {**_context(request, form), "probe": probes_api.view(row)},
        project=project,
        active="probes",
        status=status,
    )


@page
async def edit_form(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    row = await probes_api.own_probe(request, project.id)
    return _edit(request, project, row, FormState(values_of(probes_api.view(row)), {}))


@page
async def edit(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = await viewer(request)
    writable(session)
    project = await scope(request, session)
    row = await probes_api.own_probe(request, project.id)
    try:
        changed = await probes_api.change_probe(request, row, body_of(form, editing=True))
    except InputError as exc:
        return _edit(request, project, row, form_error(_typed(form), exc, FIELDS), status=exc.status)
    return back(f"/dashboard/p/{project.id}/probes", "probe_saved" if changed is not None else "queued")


def _state_action(action: str, notice: str) -> Any:
    """Pause or resume a probe through the API's own functions (resuming also probes at once)."""

    @page
    async def act(request: web.Request) -> web.StreamResponse:
        await form_of(request)
        session = await viewer(request)
        writable(session)
        project = await scope(request, session)
        row = await probes_api.own_probe(request, project.id)
        change = probes_api.pause_probe if action == "pause" else probes_api.resume_probe
        changed = await change(request, row)
        return back(f"/dashboard/p/{project.id}/probes", notice if changed is not None else "queued")

    act.__name__ = action
    return act


def add_routes(app: web.Application) -> None:
    base = "/dashboard/p/{project_id}/probes"
    app.router.add_get(base, probes, name="dashboard.probes")
    app.router.add_post(base, create)
    app.router.add_get(base + "/{probe_id}/edit", edit_form, name="dashboard.probe_edit")
    app.router.add_post(base + "/{probe_id}/edit", edit)
    app.router.add_post(base + "/{probe_id}/pause", _state_action("pause", "paused"))
    app.router.add_post(base + "/{probe_id}/resume", _state_action("resume", "resumed"))
