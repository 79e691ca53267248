"""Acting on monitors and incidents: acknowledge, resolve, pause, resume, delete, override.

The detector is the only writer of monitor state, so each action is a command published to the
monitor's shard (with the broker's confirm) and applied there in order with its events and ticks.
The handler then waits briefly for the change to show and answers ``200`` with the result, or
``202`` (accepted, applied shortly) if the detector is busy or down — the command is not lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.monitors import RESOLVABLE_BY_HAND
from heron_common.monitors.event import MAX_SENSITIVITY, MIN_SENSITIVITY
from heron_common.service import json_response
from heron_common.views import INCIDENT_SCHEMA, MONITOR_SCHEMA, incident_view, monitor_view
from heron_ingest import params
from heron_ingest.commands import applied, delete_monitor, monitor_after, send_command
from heron_ingest.dryrun import db
from heron_ingest.requests import caller_project, handles_errors, json_object, monitor_params, owned_row, path_id
from heron_ingest.validation import InputError


async def own_incident(request: web.Request, project_id: int) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The incident in the path and its monitor, both of ``project_id``; 404 otherwise."""
    pool = db(request)
    incident = await owned_row(pool, "incidents", path_id(request, "incident_id"), project_id, "incident")
    monitor = await owned_row(pool, "monitors", incident["monitor_id"], project_id, "monitor")
    return incident, monitor


def _answer(row: asyncpg.Record | None, incident: asyncpg.Record) -> web.Response:
    if row is None:
        return json_response({"status": "accepted", "incident": incident_view(incident)}, status=202)
    return json_response(incident_view(row))


@handles_errors
async def acknowledge(request: web.Request) -> web.Response:
    incident, monitor = await own_incident(request, await caller_project(request))
    return _answer(await acknowledge_incident(request, incident, monitor), incident)


async def acknowledge_incident(
    request: web.Request, incident: asyncpg.Record, monitor: asyncpg.Record
) -> asyncpg.Record | None:
    """Acknowledge through the detector; the incident once it shows, or None (queued, not lost)."""
    if incident["resolved_at"] is not None:
        raise InputError(409, "incident_resolved", "the incident is resolved already; nothing to acknowledge")
    if incident["acknowledged_at"] is None:
        await send_command(request, monitor, "acknowledge", {"incident_id": incident["id"]})
    pool = db(request)
    return await applied(
        lambda: pool.fetchrow(
            "SELECT * FROM incidents WHERE id = $1 AND (acknowledged_at IS NOT NULL OR resolved_at IS NOT NULL)",
            incident["id"],
        )
    )


@handles_errors
async def resolve(request: web.Request) -> web.Response:
    incident, monitor = await own_incident(request, await caller_project(request))
    return _answer(await resolve_incident(request, incident, monitor), incident)


async def resolve_incident(
    request: web.Request, incident: asyncpg.Record, monitor: asyncpg.Record
) -> asyncpg.Record | None:
    """Resolve by hand through the detector (kinds that allow it); the incident once resolved, or None."""
    if monitor["kind"] not in RESOLVABLE_BY_HAND:
        # An event stream's incident resolves when its events come back: resolving it by hand
        # would only hide a silence that is still going on.
        raise InputError(
            409, "not_resolvable", f"incidents of {monitor['kind']} monitors resolve by themselves when it recovers"
        )
    if incident["resolved_at"] is None:
        await send_command(request, monitor, "resolve", {"incident_id": incident["id"]})
    pool = db(request)
    return await applied(
        lambda: pool.fetchrow("SELECT * FROM incidents WHERE id = $1 AND resolved_at IS NOT NULL", incident["id"])
    )


async def _own_monitor(request: web.Request) -> asyncpg.Record:
    project_id = await caller_project(request)
    return await owned_row(db(request), "monitors", path_id(request, "monitor_id"), project_id, "monitor")


# What each state change is asked as, and how to tell it was applied.
STATE_CHANGES: dict[str, Callable[[asyncpg.Record], bool]] = {
    "pause": lambda m: m["state"] == "paused",
    "resume": lambda m: m["state"] != "paused",
}


async def change_state(request: web.Request, monitor: asyncpg.Record, action: str) -> asyncpg.Record | None:
    """Pause or resume (``action``) through the detector; the monitor once changed, or None (queued)."""
    done = STATE_CHANGES[action]
    if not done(monitor):
        await send_command(request, monitor, action)
    return await monitor_after(request, monitor["id"], done)


async def _state_change(request: web.Request, action: str) -> web.Response:
    monitor = await _own_monitor(request)
    row = await change_state(request, monitor, action)
    if row is None:
        return json_response(
            {"status": "accepted", "monitor": monitor_view(monitor, *monitor_params(request))}, status=202
        )
    return json_response(monitor_view(row, *monitor_params(request)))


@handles_errors
async def pause(request: web.Request) -> web.Response:
    return await _state_change(request, "pause")


@handles_errors
async def resume(request: web.Request) -> web.Response:
    return await _state_change(request, "resume")


@handles_errors
async def delete(request: web.Request) -> web.Response:
    return await delete_monitor(request, await _own_monitor(request))


def overrides(body: dict[str, Any]) -> dict[str, float | None]:
    """The event-stream overrides in a PATCH body (null clears one). Pure."""
    known = {"expected_interval", "grace", "sensitivity"}
    params.known_fields(body, known)
    if not known & set(body):
        raise InputError(422, "missing_field", "send expected_interval (+ grace), or sensitivity; null clears one")
    changes: dict[str, float | None] = {}
    if "expected_interval" in body:
        changes["expected_interval"] = params.seconds_field(body, "expected_interval", minimum=1.0)
    if "grace" in body:
        changes["grace"] = params.seconds_field(body, "grace", minimum=0.0)
    if "sensitivity" in body:
        value = body["sensitivity"]
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not MIN_SENSITIVITY <= value <= MAX_SENSITIVITY
        ):
            raise InputError(
                422, "invalid_field", f"sensitivity must be a number from {MIN_SENSITIVITY:g} to {MAX_SENSITIVITY:g}"
            )
        changes["sensitivity"] = None if value is None else float(value)
    return changes


@handles_errors
async def configure(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    changes = overrides(body)
    monitor = await _own_monitor(request)
    if monitor["kind"] != "event":
        raise InputError(422, "invalid_field", f"a {monitor['kind']} monitor has no learned deadline to override")
    wanted = {k: v for k, v in {**monitor["config"], **changes}.items() if v is not None}
    if "grace" in wanted and "expected_interval" not in wanted:
        raise InputError(422, "invalid_field", "grace needs expected_interval (the fixed interval it is added to)")
    await send_command(request, monitor, "configure", changes)
    row = await monitor_after(request, monitor["id"], lambda m: dict(m["config"]) == wanted)
    if row is None:
        return json_response(
            {"status": "accepted", "monitor": monitor_view(monitor, *monitor_params(request))}, status=202
        )
    return json_response(monitor_view(row, *monitor_params(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/incidents/{incident_id}/acknowledge", acknowledge)
    app.router.add_post("/v1/incidents/{incident_id}/resolve", resolve)
    app.router.add_post("/v1/monitors/{monitor_id}/pause", pause)
    app.router.add_post("/v1/monitors/{monitor_id}/resume", resume)
    app.router.add_delete("/v1/monitors/{monitor_id}", delete)
    app.router.add_patch("/v1/monitors/{monitor_id}", configure)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_INCIDENT = oa.path_param("incident_id")
_MONITOR = oa.path_param("monitor_id")
_QUEUED = {503: "The command could not be queued; retry"}


def _incident_action(summary: str, operation_id: str, conflict: str) -> dict[str, Any]:
    return oa.operation(
        summary,
        tag="incidents",
        operation_id=operation_id,
        parameters=[_INCIDENT],
        errors={409: conflict, **_QUEUED},
        responses={
            200: oa.json_response(INCIDENT_SCHEMA, "Done"),
            202: oa.json_response(oa.accepted("incident", INCIDENT_SCHEMA), "Queued for the detector; applied shortly"),
        },
    )


def _monitor_change(summary: str, operation_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return oa.operation(
        summary,
        tag="monitors",
        operation_id=operation_id,
        parameters=[_MONITOR],
        body=body,
        errors=_QUEUED,
        responses={
            200: oa.json_response(MONITOR_SCHEMA, "Done"),
            202: oa.json_response(oa.accepted("monitor", MONITOR_SCHEMA), "Queued for the detector; applied shortly"),
        },
    )


_SECONDS = oa.nullable({"type": ["number", "string"], "description": "seconds, or a duration like `5m`"})
PATHS = {
    "/v1/incidents/{incident_id}/acknowledge": {
        "post": _incident_action("Acknowledge an incident", "acknowledgeIncident", "The incident is resolved already")
    },
    "/v1/incidents/{incident_id}/resolve": {
        "post": _incident_action(
            "Resolve an incident by hand (kinds that allow it)", "resolveIncident", "This kind resolves by itself"
        )
    },
    "/v1/monitors/{monitor_id}/pause": {"post": _monitor_change("Pause a monitor (any kind)", "pauseMonitor")},
    "/v1/monitors/{monitor_id}/resume": {"post": _monitor_change("Resume a monitor", "resumeMonitor")},
    "/v1/monitors/{monitor_id}": {
        "delete": oa.operation(
            "Delete a monitor (any kind)",
            tag="monitors",
            operation_id="deleteMonitor",
            parameters=[_MONITOR],
            errors=_QUEUED,
            responses={
                204: oa.NO_CONTENT,
                202: oa.json_response(oa.obj({"status": {"const": "accepted"}}), "Queued; deleted shortly"),
            },
        ),
        "patch": _monitor_change(
            "Override an event stream's learned cadence (null clears an override)",
            "configureMonitor",
            oa.json_body(
                oa.obj(
                    {
                        "expected_interval": _SECONDS,
                        "grace": _SECONDS,
                        "sensitivity": oa.nullable(
                            {"type": "number", "minimum": MIN_SENSITIVITY, "maximum": MAX_SENSITIVITY}
                        ),
                    },
                    required=[],
                    minProperties=1,
                )
            ),
        ),
    },
}
