"""Trigger calls — a hot path, kept apart from managing triggers (``triggers_api``).

``POST /triggers/{id}/alert|acknowledge|resolve|checkin`` (Heii On-Call's paths, no ``/v1``; also
under ``/v1/triggers/{id}/…``), with ``Authorization: Bearer <key>`` or — discouraged, since URLs
end up in logs and histories — ``?token=<key>``. Each publishes an observation to the trigger's
shard (with the broker's confirm) and answers ``200 {"status": "ok", …}``; the detector applies
them in order, idempotently (alerting twice opens one incident and notifies once). ``alert`` may
carry a body — JSON, form-encoded or plain text — kept up to 10,240 bytes (longer is cut and
marked, never refused). A test key gets the same answers and changes nothing: nothing is published.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import JSON_NUL
from heron_common.monitors import trigger as tr
from heron_common.service import PG, SETTINGS, json_response
from heron_ingest.auth import bearer_token, presented_key
from heron_ingest.commands import send_observation, who
from heron_ingest.requests import caller_project, handles_errors, is_test, owned_monitor, path_id
from heron_ingest.validation import MAX_DEPTH, InputError, nested_deeper


def _storable(text: str) -> str:
    """NUL, which Postgres cannot store, shown as U+FFFD."""
    return text.replace("\x00", "\ufffd")


def alert_body(raw: bytes, content_type: str, max_depth: int = MAX_DEPTH) -> dict[str, Any] | None:
    """What an alert's body shows with its incident: the text (cut to 10,240 bytes, marked), its
    type and, for JSON or a form that arrived whole, the parsed ``data`` (only when nested at most
    ``max_depth`` levels, HERON_MAX_JSON_DEPTH: deeper is kept as text alone). Pure."""
    if not raw.strip():
        return None
    # Whatever arrives is shown, never refused: undecodable bytes become U+FFFD, and NUL (which
    # Postgres cannot store) too.
    text = _storable(raw.decode("utf-8", errors="replace"))
    kept = tr.cut_body(text)
    body: dict[str, Any] = {"body": kept, "content_type": content_type}
    if kept == text and content_type == "application/json" and JSON_NUL not in raw:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            # Deeper than the bound, the broker message could not even be encoded (orjson stops
            # at 255 levels) and the call would fail for good: the text alone is shown.
            if not nested_deeper(data, max_depth):
                body["data"] = data
    elif kept == text and content_type == "application/x-www-form-urlencoded":
        # %00 decodes to NUL: made storable, as in the text.
        fields = parse_qs(text, keep_blank_values=True)
        body["data"] = {
            _storable(k): _storable(v[0]) if len(v) == 1 else [_storable(x) for x in v] for k, v in fields.items()
        }
    return body


def _action(name: str) -> Any:
    @handles_errors
    async def act(request: web.Request) -> web.Response:
        # Heii's ?token= for integrations that cannot set a header (discouraged: URLs get logged).
        key = bearer_token(request) or request.query.get("token") or presented_key(request)
        project_id = await caller_project(request, key=key or None, test_ok=True)
        row = await owned_monitor(request.app[PG], path_id(request, "trigger_id"), project_id, tr.KIND, "trigger")
        config = row["config"] or {}
        if name == "checkin" and config.get("trigger_kind") != tr.LIVENESS:
            raise InputError(409, "not_liveness", "only a liveness trigger takes check-ins")
        body = None
        if name == "alert":  # the other calls carry nothing worth reading
            body = alert_body(await request.read(), request.content_type, request.app[SETTINGS].max_json_depth)
        if not is_test(request):
            payload = {"action": name, "body": body, "by": who(request, key)}
            await send_observation(request, row["id"], project_id, row["shard"], payload, "the call")
        return json_response({"status": "ok", "trigger_id": row["id"], "action": name})

    act.__name__ = name
    return act


def add_routes(app: web.Application) -> None:
    for name in tr.ACTIONS:
        handler = _action(name)
        app.router.add_post(f"/triggers/{{trigger_id}}/{name}", handler)
        app.router.add_post(f"/v1/triggers/{{trigger_id}}/{name}", handler)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_TRIGGER_ID = oa.path_param("trigger_id")
_QUEUED = {503: "Could not be queued; retry"}
_ACTION_SUMMARY = {
    "alert": "Alert: open the trigger's incident (once, however often it is called); the body is kept",
    "acknowledge": "Acknowledge the trigger's open incident",
    "resolve": "Resolve the trigger's incident",
    "checkin": "Check in a liveness trigger (it alerts when check-ins stop for its timeout)",
}


def _action_op(name: str, prefix: str) -> dict[str, Any]:
    body = None
    if name == "alert":
        body = {
            "required": False,
            "description": "kept with the incident (10,240 bytes at most; longer is cut and marked)",
            "content": {
                "application/json": {"schema": oa.ANY},
                "application/x-www-form-urlencoded": {"schema": oa.OBJECT},
                "text/plain": {"schema": oa.STRING},
            },
        }
    op = oa.operation(
        _ACTION_SUMMARY[name] + ("" if prefix else " (Heii's path)"),
        tag="triggers",
        auth="token",
        operation_id=f"trigger{name.capitalize()}{'V1' if prefix else ''}",
        parameters=[_TRIGGER_ID],
        errors={409: "Only a liveness trigger takes check-ins", **_QUEUED} if name == "checkin" else _QUEUED,
        responses={
            200: oa.json_response(
                oa.obj({"status": {"const": "ok"}, "trigger_id": oa.ID, "action": {"const": name}}),
                "Recorded (a test key: answered, nothing changed)",
            )
        },
    )
    if body is not None:
        op["requestBody"] = body
    return op


PATHS: dict[str, dict[str, Any]] = {}
for _name in tr.ACTIONS:
    PATHS[f"/triggers/{{trigger_id}}/{_name}"] = {"post": _action_op(_name, "")}
    PATHS[f"/v1/triggers/{{trigger_id}}/{_name}"] = {"post": _action_op(_name, "/v1")}
