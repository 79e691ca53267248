"""Reading what Heron knows: incidents and monitors, always scoped to the caller's project."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import iso
from heron_common.service import json_response
from heron_common.views import INCIDENT_SCHEMA, MONITOR_SCHEMA, incident_view, monitor_view
from heron_ingest.dryrun import db
from heron_ingest.requests import (
    caller_project,
    handles_errors,
    monitor_params,
    next_link,
    owned_row,
    page_args,
    path_id,
)

OPEN, RESOLVED = "open", "resolved"


async def incident_rows(
    pool: asyncpg.Pool,
    project_id: int,
    *,
    before: int | None,
    limit: int,
    environment: str | None = None,
    service: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    monitor_id: int | None = None,
) -> list[asyncpg.Record]:
    """A project's incidents, newest first, one page (``before`` an id), filtered by any of
    environment, service, kind, status (``open`` or ``resolved``) and monitor."""
    return await pool.fetch(
        "SELECT * FROM incidents WHERE project_id = $1"
        " AND ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR environment = $3)"
        " AND ($4::text IS NULL OR service = $4) AND ($5::text IS NULL OR kind = $5)"
        " AND ($6::text IS NULL OR (resolved_at IS NULL) = ($6 = 'open'))"
        " AND ($7::bigint IS NULL OR monitor_id = $7)"
        " ORDER BY id DESC LIMIT $8",
        project_id,
        before,
        environment,
        service,
        kind,
        status,
        monitor_id,
        limit,
    )


async def monitor_rows(
    pool: asyncpg.Pool, project_id: int, *, before: int | None, limit: int, environment: str | None = None
) -> list[asyncpg.Record]:
    """A project's monitors of every kind, newest first, one page."""
    return await pool.fetch(
        "SELECT * FROM monitors WHERE project_id = $1"
        " AND ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR environment = $3)"
        " ORDER BY id DESC LIMIT $4",
        project_id,
        before,
        environment,
        limit,
    )


async def _incidents(request: web.Request, active_only: bool) -> web.Response:
    project_id = await caller_project(request)
    limit, before, environment = page_args(request)
    rows = await incident_rows(
        db(request),
        project_id,
        before=before,
        limit=limit,
        environment=environment,
        status=OPEN if active_only else None,
    )
    return json_response([incident_view(r) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def incidents(request: web.Request) -> web.Response:
    return await _incidents(request, active_only=False)


@handles_errors
async def active_incidents(request: web.Request) -> web.Response:
    return await _incidents(request, active_only=True)


@handles_errors
async def monitors(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    limit, before, environment = page_args(request)
    rows = await monitor_rows(db(request), project_id, before=before, limit=limit, environment=environment)
    params, now = monitor_params(request)
    return json_response([monitor_view(r, params, now) for r in rows], headers=next_link(request, rows, limit))


async def _own_monitor(request: web.Request) -> asyncpg.Record:
    project_id = await caller_project(request)
    return await owned_row(db(request), "monitors", path_id(request, "monitor_id"), project_id, "monitor")


@handles_errors
async def monitor(request: web.Request) -> web.Response:
    return json_response(monitor_view(await _own_monitor(request), *monitor_params(request)))


async def recent_events(pool: asyncpg.Pool, monitor_id: int, limit: int) -> list[asyncpg.Record]:
    """An event stream's newest ``limit`` events (newest first)."""
    return await pool.fetch(
        "SELECT event_time, received_at, metadata FROM events WHERE monitor_id = $1 ORDER BY event_time DESC LIMIT $2",
        monitor_id,
        limit,
    )


@handles_errors
async def monitor_events(request: web.Request) -> web.Response:
    row = await _own_monitor(request)
    limit, _, _ = page_args(request)
    events = await recent_events(db(request), row["id"], limit)
    return json_response(
        [
            {"timestamp": iso(e["event_time"]), "received_at": iso(e["received_at"]), "metadata": e["metadata"]}
            for e in events
        ]
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/incidents", incidents)
    app.router.add_get("/v1/incidents/active", active_incidents)
    app.router.add_get("/v1/monitors", monitors)
    app.router.add_get("/v1/monitors/{monitor_id}", monitor)
    app.router.add_get("/v1/monitors/{monitor_id}/events", monitor_events)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_MONITOR = oa.path_param("monitor_id")
_EVENT = oa.obj({"timestamp": oa.TIME, "received_at": oa.TIME, "metadata": oa.nullable(oa.OBJECT)})

PATHS = {
    "/v1/incidents": {
        "get": oa.operation(
            "The project's incidents, newest first",
            tag="incidents",
            operation_id="listIncidents",
            parameters=[*oa.PAGE, oa.ENVIRONMENT],
            responses={200: oa.page_of(INCIDENT_SCHEMA, "One page of incidents")},
        )
    },
    "/v1/incidents/active": {
        "get": oa.operation(
            "The project's open incidents, newest first",
            tag="incidents",
            operation_id="listActiveIncidents",
            parameters=[*oa.PAGE, oa.ENVIRONMENT],
            responses={200: oa.page_of(INCIDENT_SCHEMA, "One page of open incidents")},
        )
    },
    "/v1/monitors": {
        "get": oa.operation(
            "Every monitor of the project (all kinds), newest first",
            tag="monitors",
            operation_id="listMonitors",
            parameters=[*oa.PAGE, oa.ENVIRONMENT],
            responses={200: oa.page_of(MONITOR_SCHEMA, "One page of monitors")},
        )
    },
    "/v1/monitors/{monitor_id}": {
        "get": oa.operation(
            "One monitor",
            tag="monitors",
            operation_id="getMonitor",
            parameters=[_MONITOR],
            responses={200: oa.json_response(MONITOR_SCHEMA, "The monitor")},
        )
    },
    "/v1/monitors/{monitor_id}/events": {
        "get": oa.operation(
            "An event stream's newest events",
            tag="monitors",
            operation_id="listMonitorEvents",
            parameters=[_MONITOR, oa.LIMIT],
            responses={200: oa.json_response(oa.array(_EVENT), "The newest events, newest first")},
        )
    },
}
