"""Operator API for dead letters: list, inspect and replay what no service could apply.

Admin token only (``Authorization: Bearer <HERON_ADMIN_TOKEN>``). Dead letters are kept by the
detector's keeper (``heron_detector.keeper``); a replay publishes the original body to where it was
first published, with a fresh id for detector messages, and marks the row replayed.
"""

from __future__ import annotations

from aiohttp import web

from heron_common import deadletter_store
from heron_common import openapi as oa
from heron_common.service import AMQP, NAMES, PG, SETTINGS, json_response
from heron_ingest import params
from heron_ingest.requests import handles_errors, is_admin, next_link, page_args, path_id
from heron_ingest.validation import InputError


def _admin(request: web.Request) -> None:
    if not request.app[SETTINGS].admin_token:
        raise InputError(403, "admin_disabled", "set HERON_ADMIN_TOKEN to enable administration")
    if not is_admin(request):
        raise InputError(401, "invalid_admin_token", "send 'Authorization: Bearer <HERON_ADMIN_TOKEN>'")


def _queue(request: web.Request) -> str | None:
    """``?queue=`` as a full queue name, or the short ``detector`` / ``notifier``."""
    raw = request.query.get("queue")
    problem = params.text_problem(raw) if raw is not None else None
    if problem is not None:  # a NUL would reach Postgres as a 500
        raise InputError(422, "invalid_parameter", f"queue {problem}")
    names = request.app[NAMES]
    return {"detector": names.detector_dead, "notifier": names.notifier_dead}.get(raw or "", raw)


@handles_errors
async def list_dead_letters(request: web.Request) -> web.Response:
    _admin(request)
    limit, before, _ = page_args(request)
    rows = await deadletter_store.page(request.app[PG], _queue(request), before, limit)
    return json_response([deadletter_store.summary(r) for r in rows], headers=next_link(request, rows, limit))


@handles_errors
async def show_dead_letter(request: web.Request) -> web.Response:
    _admin(request)
    row = await deadletter_store.get(request.app[PG], path_id(request, "letter_id"))
    if row is None:
        raise InputError(404, "not_found", "no such dead letter")
    return json_response(deadletter_store.detail(row))


@handles_errors
async def replay_dead_letter(request: web.Request) -> web.Response:
    _admin(request)
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false", "1", "0"):
        raise InputError(422, "invalid_parameter", "force must be true or false")
    # Read before the try below: a path that names no letter is a 404, not a broker failure.
    letter_id = path_id(request, "letter_id")
    try:
        row = await deadletter_store.replay(request.app[PG], request.app[AMQP], letter_id, force=force in ("true", "1"))
    except deadletter_store.AlreadyReplayed as exc:
        raise InputError(409, "already_replayed", f"{exc}; add ?force=true to replay it again") from None
    except Exception as exc:  # the broker refused or is unreachable: the claim was released
        raise InputError(503, "replay_failed", f"the message could not be published: {exc}") from None
    if row is None:
        raise InputError(404, "not_found", "no such dead letter")
    return json_response(deadletter_store.summary(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/dead-letters", list_dead_letters)
    app.router.add_get("/v1/admin/dead-letters/{letter_id}", show_dead_letter)
    app.router.add_post("/v1/admin/dead-letters/{letter_id}/replay", replay_dead_letter)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_SUMMARY = oa.obj(
    {
        "id": oa.ID,
        "queue": oa.STRING,
        "exchange": oa.OPTIONAL_STRING,
        "routing_key": oa.OPTIONAL_STRING,
        "reason": oa.OPTIONAL_STRING,
        "message_id": oa.OPTIONAL_STRING,
        "project_id": oa.nullable(oa.ID),
        "deaths": oa.OPTIONAL_INTEGER,
        "size": oa.INTEGER,
        "first_dead_lettered_at": oa.OPTIONAL_TIME,
        "last_dead_lettered_at": oa.OPTIONAL_TIME,
        "replayed_at": oa.OPTIONAL_TIME,
        "replay_message_id": oa.OPTIONAL_STRING,
    }
)
_LETTER = oa.path_param("letter_id", "the dead letter's id")

PATHS = {
    "/v1/admin/dead-letters": {
        "get": oa.operation(
            "Dead letters, newest first (admin)",
            tag="admin",
            auth="admin",
            operation_id="listDeadLetters",
            parameters=[
                *oa.PAGE,
                oa.query_param("queue", oa.STRING, "`detector`, `notifier` or a full queue name"),
            ],
            responses={200: oa.page_of(_SUMMARY, "One page of dead letters")},
        )
    },
    "/v1/admin/dead-letters/{letter_id}": {
        "get": oa.operation(
            "One dead letter with its headers and body (admin)",
            tag="admin",
            auth="admin",
            operation_id="getDeadLetter",
            parameters=[_LETTER],
            responses={200: oa.json_response({**_SUMMARY, "required": [*_SUMMARY["required"], "headers"]}, "It")},
        )
    },
    "/v1/admin/dead-letters/{letter_id}/replay": {
        "post": oa.operation(
            "Publish a dead letter again to where it was first published (admin)",
            tag="admin",
            auth="admin",
            operation_id="replayDeadLetter",
            parameters=[
                _LETTER,
                oa.query_param("force", {"type": "string", "enum": ["true", "false", "1", "0"]}, "replay again"),
            ],
            errors={409: "Replayed already (add ?force=true)", 503: "The broker refused; nothing changed"},
            responses={200: oa.json_response(_SUMMARY, "Replayed")},
        )
    },
}
