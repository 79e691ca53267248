"""What every API handler needs: the caller's project, path ids, and JSON errors."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from multidict import MultiDictProxy

from heron_common.keys import constant_time_equal
from heron_common.monitors.event import params_from
from heron_common.monitors.rate import RateParams
from heron_common.service import CLOCK, SETTINGS, error_response
from heron_ingest import params
from heron_ingest.auth import bearer_token, presented_key
from heron_ingest.context import AUTH, KEY_LIMIT
from heron_ingest.dryrun import dry_run
from heron_ingest.ratelimit import retry_after
from heron_ingest.validation import InputError, nested_deeper, parse_json

# Set on a request authenticated by a test key: it answers as a real call would, changes nothing.
TEST_KEY = web.RequestKey("test_key", bool)
READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def caller_project(
    request: web.Request, body: Any = None, *, key: str | None = None, test_ok: bool = False
) -> int:
    """The caller's project. A test key may read anything; it may only write through the calls
    that integrations make (``test_ok``: track/events, trigger calls), which then change nothing
    (``is_test``); every other write runs in a rolled-back transaction and publishes nothing
    (``heron_ingest.dryrun``), or, where the key did not come as a header, refuses it (403 ``test_key``)."""
    key = key if key is not None else presented_key(request, body)
    if key is None:
        raise InputError(401, "missing_api_key", "send your project API key as 'Authorization: Bearer heron_…'")
    found = await request.app[AUTH].lookup(key)
    if found is None:
        raise InputError(401, "invalid_api_key", "the API key is not valid (unknown or revoked)")
    project_id, test = found
    wait = await request.app[KEY_LIMIT].check(key)
    if wait is not None:
        limit = request.app[KEY_LIMIT]
        raise InputError(
            429,
            "rate_limited",
            f"this API key sent more than {limit.rate:g} requests a second (burst {limit.burst}); retry later",
            headers={"Retry-After": retry_after(wait)},
        )
    if test:
        request[TEST_KEY] = True
        if not test_ok and request.method not in READS and not dry_run():
            raise InputError(403, "test_key", "a test key changes nothing: this call needs a real API key")
    return project_id


def is_test(request: web.Request) -> bool:
    return bool(request.get(TEST_KEY))


def is_admin(request: web.Request) -> bool:
    token = request.app[SETTINGS].admin_token
    presented = bearer_token(request)
    # A header that is not ASCII cannot be the token (and would not encode for the comparison).
    return bool(token and presented and presented.isascii() and constant_time_equal(presented, token))


async def json_object(request: web.Request, *, required: bool = True) -> dict[str, Any] | None:
    """The body as a JSON object (None for an empty optional body), or a clear 400/422."""
    raw = await request.read()
    if not raw.strip() and not required:
        return None
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InputError(422, "invalid_body", "the body must be a JSON object")
    limit = request.app[SETTINGS].max_json_depth
    if nested_deeper(body, limit):
        raise InputError(
            422, "invalid_body", f"the body is nested more than {limit} levels deep (HERON_MAX_JSON_DEPTH)"
        )
    return body


async def posted_form(request: web.Request, message: str) -> MultiDictProxy[Any]:
    """The posted form (urlencoded or multipart), or ``400 invalid_form`` with ``message``.

    aiohttp refuses a broken form with any of several exceptions: ValueError (bad encoding, no
    boundary), LookupError (a ``charset`` that names no codec, in the form's or a part's
    Content-Type), AssertionError and RuntimeError (a malformed multipart body). A body over the
    size limit stays a 413."""
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except (ValueError, LookupError, AssertionError, RuntimeError, web.HTTPException):
        raise InputError(400, "invalid_form", message) from None


async def owned_row(pool: asyncpg.Pool, table: str, row_id: int, project_id: int, noun: str) -> asyncpg.Record:
    """A row of ``table`` (a constant of ours, never input) that belongs to the caller's project;
    404 otherwise, the same whether it exists elsewhere or not at all."""
    row = await pool.fetchrow(f"SELECT * FROM {table} WHERE id = $1 AND project_id = $2", row_id, project_id)
    if row is None:
        raise InputError(404, "not_found", f"no such {noun}")
    return row


async def owned_monitor(pool: asyncpg.Pool, monitor_id: int, project_id: int, kind: str, noun: str) -> asyncpg.Record:
    """A monitor of ``kind`` (a heartbeat, a trigger) of the caller's project; 404 otherwise."""
    row = await pool.fetchrow(
        "SELECT * FROM monitors WHERE id = $1 AND project_id = $2 AND kind = $3", monitor_id, project_id, kind
    )
    if row is None:
        raise InputError(404, "not_found", f"no such {noun}")
    return row


def path_id(request: web.Request, name: str) -> int:
    return params.path_id(request.match_info, name)


def handles_errors(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InputError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.headers)

    wrapped.__name__ = handler.__name__
    return wrapped


# -- pagination: newest first, ``before`` an id from the previous page, a Link header to the next --

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


# The parameters a next-page link carries over (each checked by its route); others are dropped.
FILTERS = ("environment", "endpoint_id", "status", "topic")


def page_args(request: web.Request) -> tuple[int, int | None, str | None]:
    """``limit``, ``before`` (an id) and ``environment`` of a list request: one pagination for every list."""
    q = request.query
    limit = params.query_int(q, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    before = params.query_id(q, "before", "an id from a previous page")
    return limit, before, params.query_text(q, "environment")


def next_link(request: web.Request, rows: list[Any], limit: int) -> dict[str, str]:
    if len(rows) < limit:
        return {}
    query = {k: v for k, v in request.query.items() if k in FILTERS}
    query["before"] = str(rows[-1]["id"])
    query["limit"] = str(limit)
    url = request.rel_url.with_query(query)  # path and query only: the Host plays no part
    return {"Link": f'<{url.path_qs}>; rel="next"'}


# The tables a quota counts rows of (constants of ours, never input).
_QUOTA_SQL = {
    "webhooks": "SELECT count(*) FROM webhook_endpoints WHERE project_id = $1",
    "monitors": "SELECT count(*) FROM monitors WHERE project_id = $1 AND kind = $2",
}


async def within_quota(
    pool: asyncpg.Pool, project_id: int, limit: int, noun: str, setting: str, kind: str | None = None
) -> None:
    """422 ``limit_reached`` when the project already has ``limit`` of what it is creating.

    Checked before the insert, so two racing creations may both pass at the limit's edge: a
    quota against runaway scripts and abuse, not an exact count."""
    sql = _QUOTA_SQL["monitors" if kind else "webhooks"]
    count = await pool.fetchval(sql, project_id, *([kind] if kind else []))
    if count >= limit:
        raise InputError(
            422,
            "limit_reached",
            f"this project already has {count} {noun}, the most allowed ({setting}={limit}); delete one first",
        )


def monitor_params(request: web.Request) -> tuple[RateParams, float]:
    """What an event stream's view is explained with: the detector's model parameters (from the
    same settings) and now."""
    return params_from(request.app[SETTINGS]), request.app[CLOCK].now()
