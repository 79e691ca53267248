"""Heartbeat pings — the hot path: ``POST|GET|HEAD /api/v1/hb/{token}[/start|/fail|/{exit_code}]``.

No API key: the unguessable token in the URL is the credential (a crontab line carries nothing
else). A ping is answered ``200 OK`` once its observation message is confirmed by the broker on
the heartbeat's shard; the detector records it and moves the state (the only writer of monitor
state). Tokens resolve through a short in-process cache (misses included, so a flood of made-up
tokens cannot hammer Postgres), like API keys; a regenerated or deleted heartbeat's old token may
be accepted by another replica for up to ``HERON_KEY_CACHE_SECONDS`` (the detector ignores pings
for a deleted heartbeat).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.monitors import heartbeat as hb
from heron_common.service import CLOCK, PG, SETTINGS, error_response
from heron_ingest.commands import send_observation
from heron_ingest.validation import InputError

MAX_BODY = 10 * 1024
MAX_TOKEN = 100
_MAX_CACHE = 100_000
Target = tuple[int, int, int]  # monitor id, project id, shard


class TokenCache:
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._cache: dict[str, tuple[Target | None, float]] = {}

    async def lookup(self, pool: asyncpg.Pool, token: str, now: float) -> Target | None:
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        row = await pool.fetchrow(
            "SELECT id, project_id, shard FROM monitors WHERE ping_token = $1 AND kind = $2", token, hb.KIND
        )
        target = (row["id"], row["project_id"], row["shard"]) if row is not None else None
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[token] = (target, now + self._ttl)
        return target

    def forget(self, token: str | None) -> None:
        if token is not None:
            self._cache.pop(token, None)


TOKENS = web.AppKey("heartbeat_tokens", TokenCache)


def _header(request: web.Request, name: str, limit: int) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    # Headers may carry bytes Postgres text cannot hold (decoded as surrogates): keep what can be.
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:limit]


async def _ping(request: web.Request, kind: str, exit_code: int | None = None) -> web.StreamResponse:
    token = request.match_info["token"]
    # Tokens are URL-safe ASCII: anything else (a NUL Postgres text refuses, say) names nothing.
    if not (token.isascii() and token.isprintable() and 0 < len(token) <= MAX_TOKEN):
        return error_response(404, "not_found", "no heartbeat has this ping URL")
    app = request.app
    now = app[CLOCK].now()
    target = await app[TOKENS].lookup(app[PG], token, now)
    if target is None:
        return error_response(404, "not_found", "no heartbeat has this ping URL")
    body = (await request.read())[:MAX_BODY].decode("utf-8", "replace").replace("\x00", "")
    rid = request.query.get("rid")
    if rid is not None and not (rid.isascii() and rid.isprintable() and len(rid) <= 200):
        return error_response(422, "invalid_parameter", "rid must be printable ASCII, at most 200 characters")
    payload = {
        "kind": kind,
        "exit_code": exit_code,
        "rid": rid,
        "body": body,
        "remote_addr": request.remote,
        "user_agent": _header(request, "User-Agent", 500),
    }
    monitor_id, project_id, shard = target
    try:
        await send_observation(request, monitor_id, project_id, shard, payload, "the ping")
    except InputError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    return web.Response(text="OK")


async def success(request: web.Request) -> web.StreamResponse:
    return await _ping(request, hb.SUCCESS)


async def action(request: web.Request) -> web.StreamResponse:
    """``/start``, ``/fail`` or ``/{exit_code}`` (0 is success, 1-255 a failure)."""
    what = request.match_info["action"]
    if what in (hb.START, hb.FAIL):
        return await _ping(request, what)
    if what.isascii() and what.isdigit() and len(what) <= 3 and int(what) <= 255:
        return await _ping(request, hb.EXIT, int(what))
    return error_response(404, "not_found", "ping /start, /fail or /{exit code 0-255}")


def add_routes(app: web.Application) -> None:
    app[TOKENS] = TokenCache(app[SETTINGS].key_cache_seconds)
    for path, handler in (("/api/v1/hb/{token}", success), ("/api/v1/hb/{token}/{action}", action)):
        app.router.add_post(path, handler)
        app.router.add_get(path, handler)  # HEAD too


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_TOKEN = oa.path_param(
    "token", "the heartbeat's ping token (its ping_url ends with it)", {"type": "string", "maxLength": MAX_TOKEN}
)
_ACTION = oa.path_param(
    "action",
    "`start`, `fail` or an exit code 0-255 (0 is success)",
    {"type": "string", "pattern": "^(start|fail|[0-9]{1,3})$"},
)
_RID = oa.query_param(
    "rid", {"type": "string", "maxLength": 200}, "a run id pairing a start with its finish (printable ASCII)"
)
_PING_BODY = {
    "required": False,
    "description": "anything (a log tail); the first 10 KiB are kept",
    "content": {"text/plain": {"schema": oa.STRING}},
}


def _ping_op(summary: str, operation_id: str, parameters: list[dict[str, Any]], body: bool) -> dict[str, Any]:
    op = oa.operation(
        summary,
        tag="heartbeats",
        auth="none",
        operation_id=operation_id,
        parameters=[*parameters, _RID],
        errors={404: "No heartbeat has this ping URL", 503: "Could not be queued; retry"},
        responses={200: {"description": "Recorded", "content": {"text/plain": {"schema": {"const": "OK"}}}}},
    )
    if body:
        op["requestBody"] = _PING_BODY
    return op


PATHS = {
    "/api/v1/hb/{token}": {
        "get": _ping_op("Ping: the job ran (success)", "pingGet", [_TOKEN], False),
        "post": _ping_op("Ping: the job ran (success), with a log tail", "ping", [_TOKEN], True),
    },
    "/api/v1/hb/{token}/{action}": {
        "get": _ping_op("Ping: started, failed or exited with a code", "pingActionGet", [_TOKEN, _ACTION], False),
        "post": _ping_op(
            "Ping: started, failed or exited with a code, with a log tail", "pingAction", [_TOKEN, _ACTION], True
        ),
    },
}
