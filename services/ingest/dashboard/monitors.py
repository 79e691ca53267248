"""The overview (every monitor of the project, open incidents on top) and a monitor's detail page
(its learned cadence, recent intervals against the deadline, flips, incidents, pings; a probe's
results and response times; a Heroku app's latest check), with pause and resume, which go to the
detector as the API's commands do."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from heron_common import charts, sessions
from heron_common.db import to_ts
from heron_common.monitors import RESOLVABLE_BY_HAND
from heron_common.monitors import event as event_kind
from heron_common.monitors import heartbeat as hb
from heron_common.monitors import heroku as hk
from heron_common.monitors import probe as pr
from heron_common.monitors import rate as rate_model
from heron_common.monitors import trigger as tr
from heron_common.service import CLOCK, PG, SETTINGS
from heron_common.views import DISPLAY_STATES, display_state, human_seconds, monitor_view, worst_state
from heron_ingest import heartbeats_api, monitors_api, params, probes_api, read, triggers_api
from heron_ingest.dashboard import heroku, probes, queries
from heron_ingest.dashboard.badges import service_badge_urls
from heron_ingest.dashboard.core import DASHBOARD, back, form_of, page, render, scope, viewer, writable
from heron_ingest.dashboard.incidents import shown
from heron_ingest.requests import owned_row, path_id

OVERVIEW_LIMIT = 200
OPEN_LIMIT = 50
HISTORY = 20
CHART_POINTS = 60


def cadence_text(row: Any, view: dict[str, Any]) -> str:
    """What the monitor expects, in words: a learned or fixed interval, a schedule, a timeout."""
    config = row["config"] or {}
    if row["kind"] == hb.KIND:
        if config.get("schedule"):
            return f"{config['schedule']} ({config.get('tz') or 'UTC'})"
        return f"every {human_seconds(config.get('interval'))}"
    if row["kind"] == tr.KIND:
        if config.get("trigger_kind") == tr.LIVENESS:
            return f"check-in every {human_seconds(config.get('timeout'))}"
        return "manual"
    if row["kind"] == pr.KIND:
        return f"probed every {human_seconds(config.get('interval'))}"
    if row["kind"] == hk.KIND:
        return f"checked every {human_seconds(hk.interval_seconds(config, 60.0))}"
    if view["expected_interval"] is None:
        return "learning…"
    return f"every {human_seconds(view['expected_interval'])}"


def card(row: Any, acknowledged: dict[int, bool], rates: dict[int, list[int]], now: float) -> dict[str, Any]:
    """A monitor as a row of the overview: the API's view plus what a person reads at a glance."""
    view = monitor_view(row)
    counts = rates.get(row["id"])
    return {
        **view,
        "display": display_state(row["state"], acknowledged.get(row["id"], False)),
        "last_seen_ts": to_ts(row["last_seen"]),
        "cadence_text": cadence_text(row, view),
        "spark": charts.sparkline(counts) if counts is not None else None,
    }


def _order(item: dict[str, Any]) -> tuple[int, str]:
    return DISPLAY_STATES.index(item["display"]), (item["name"] or "").lower()


@page
async def overview(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    pool = request.app[PG]
    now = request.app[CLOCK].now()
    before = params.query_id(request.query, "before", "a monitor id from the previous page")
    rows = await read.monitor_rows(pool, project.id, before=before, limit=OVERVIEW_LIMIT)
    acknowledged = await queries.open_acknowledged(pool, project.id)
    rates = await queries.event_rates(
        pool, [r["id"] for r in rows if r["kind"] == "event"], now, max_skew=request.app[SETTINGS].max_clock_skew
    )
    rates.update(await queries.ping_rates(pool, [r["id"] for r in rows if r["kind"] == hb.KIND], now))
    monitors = sorted((card(r, acknowledged, rates, now) for r in rows), key=_order)
    incidents = [
        shown(r, now) for r in await read.incident_rows(pool, project.id, before=None, limit=OPEN_LIMIT, status="open")
    ]
    counts = {state: sum(1 for m in monitors if m["display"] == state) for state in DISPLAY_STATES}
    services = [
        {
            "name": name,
            "display": worst_state(states) or "new",
            "monitors": sum(states.values()),
            "badge": service_badge_urls(request, project.id, name),
        }
        for name, states in sorted((await queries.service_states(pool, project.id)).items())
    ]
    return render(
        request,
        "overview.html",
        {
            "monitors": monitors,
            "incidents": incidents,
            "counts": counts,
            "services": services,
            "resolvable": RESOLVABLE_BY_HAND,
            "older": rows[-1]["id"] if len(rows) == OVERVIEW_LIMIT else None,
        },
        project=project,
        active="overview",
    )


def learned_tolerance(request: web.Request, row: Any, view: dict[str, Any]) -> float | None:
    """An event stream's tolerance: from its deadline while it is up; while it is down or paused
    (no deadline), what the deadline was after its last event, from the learned rate model."""
    if view["tolerance"] is not None or view["expected_interval"] is None or row["last_seen"] is None:
        return view["tolerance"]
    params = event_kind.params_from(request.app[SETTINGS])
    state = rate_model.from_dict(row["cadence"] or {}, params)
    deadline = event_kind.learned_or_fixed_deadline(state, row["config"] or {}, params)
    if deadline is None or state.last_seen is None:
        return None
    return round(deadline - state.last_seen - view["expected_interval"], 3)


def badge_urls(request: web.Request, monitor_id: int) -> dict[str, str]:
    token = sessions.badge_token(request.app[DASHBOARD].badge_secret, monitor_id)
    base = f"{request.scheme}://{request.host}/badge/{monitor_id}/{token}"
    return {"svg": f"{base}.svg", "json": f"{base}.json", "path": f"/badge/{monitor_id}/{token}.svg"}


async def _chart(request: web.Request, row: asyncpg.Record, view: dict[str, Any]) -> charts.IntervalChart | None:
    pool = request.app[PG]
    config = row["config"] or {}
    if row["kind"] == "event":
        times = [e["event_time"].timestamp() for e in await read.recent_events(pool, row["id"], CHART_POINTS + 1)]
        expected, tolerance = view["expected_interval"], learned_tolerance(request, row, view)
    elif row["kind"] == hb.KIND:
        times = await queries.finished_ping_times(pool, row["id"], CHART_POINTS + 1)
        expected, tolerance = config.get("interval"), config.get("grace")
    elif row["kind"] == pr.KIND:
        # Response times (oldest first) against the probe's latency limit, if it has one.
        results = await probes_api.history(pool, "probe_results", row["id"], before=None, limit=CHART_POINTS)
        totals = [(r["timings"] or {}).get("total") for r in reversed(results)]
        seconds = [float(t) for t in totals if isinstance(t, int | float) and not isinstance(t, bool)]
        limit = config.get("max_latency")
        return charts.interval_chart(seconds, limit, 0.0 if limit is not None else None) if seconds else None
    else:
        return None
    gaps = charts.gaps(times)
    return charts.interval_chart(gaps, expected, tolerance) if gaps else None


@page
async def monitor(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    project = await scope(request, session)
    pool = request.app[PG]
    row = await owned_row(pool, "monitors", path_id(request, "monitor_id"), project.id, "monitor")
    view = monitor_view(row)
    if row["kind"] == "event":
        view["tolerance"] = learned_tolerance(request, row, view)
    acknowledged = await queries.open_acknowledged(pool, project.id)
    flips = await heartbeats_api.history(pool, "flips", row["id"], before=None, limit=HISTORY)
    incidents = await read.incident_rows(pool, project.id, before=None, limit=HISTORY, monitor_id=row["id"])
    pings = []
    results: list[dict[str, Any]] = []
    kind_view: dict[str, Any] = {}
    if row["kind"] == pr.KIND:
        kind_view = probes.item(probes_api.view(row), "")
        results = [
            {**probes_api.result_view(r), "phases": probes.phase_times(r["timings"])}
            for r in await probes_api.history(pool, "probe_results", row["id"], before=None, limit=HISTORY)
        ]
    elif row["kind"] == hk.KIND:
        # Heroku checks keep no history: the latest one (dynos, add-ons, release), as its page shows.
        kind_view = heroku.card(row, acknowledged, request.app[SETTINGS], request.app[CLOCK].now())
    elif row["kind"] == hb.KIND:
        kind_view = heartbeats_api.view(request, row)
        pings = [
            heartbeats_api.ping_view(p)
            for p in await heartbeats_api.history(pool, "pings", row["id"], before=None, limit=HISTORY)
        ]
    elif row["kind"] == tr.KIND:
        kind_view = triggers_api.trigger_view(row)
    cadence = row["cadence"] or {}
    return render(
        request,
        "monitor.html",
        {
            "mon": {
                **view,
                "display": display_state(row["state"], acknowledged.get(row["id"], False)),
                "cadence_text": cadence_text(row, view),
                "last_seen_ts": to_ts(row["last_seen"]),
                "deadline_ts": to_ts(row["deadline"]),
            },
            "config": row["config"] or {},
            "observations": cadence.get("count", row["event_count"]),
            "intervals_learned": cadence.get("intervals"),
            "kind_view": kind_view,
            "chart": await _chart(request, row, view),
            "flips": [heartbeats_api.flip_view(f) for f in flips],
            "incidents": [shown(i, request.app[CLOCK].now()) for i in incidents],
            "pings": pings,
            "results": results,
            "badge": badge_urls(request, row["id"]),
            "resolvable": RESOLVABLE_BY_HAND,
        },
        project=project,
        active="monitor",
    )


def _state_action(action: str, notice: str) -> Any:
    @page
    async def act(request: web.Request) -> web.StreamResponse:
        await form_of(request)
        session = await viewer(request)
        writable(session)
        project = await scope(request, session)
        row = await owned_row(request.app[PG], "monitors", path_id(request, "monitor_id"), project.id, "monitor")
        changed = await monitors_api.change_state(request, row, action)
        return back(f"/dashboard/p/{project.id}/monitors/{row['id']}", notice if changed is not None else "queued")

    act.__name__ = action
    return act


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/p/{project_id}/", overview, name="dashboard.overview")
    app.router.add_get("/dashboard/p/{project_id}/monitors/{monitor_id}", monitor, name="dashboard.monitor")
    app.router.add_post("/dashboard/p/{project_id}/monitors/{monitor_id}/pause", _state_action("pause", "paused"))
    app.router.add_post("/dashboard/p/{project_id}/monitors/{monitor_id}/resume", _state_action("resume", "resumed"))
