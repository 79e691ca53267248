"""What every API handler needs: the caller's project, path ids, and JSON errors."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from heron_common.keys import constant_time_equal
from heron_common.service import SETTINGS, error_response
from heron_ingest import params
from heron_ingest.auth import bearer_token, presented_key
from heron_ingest.context import AUTH
from heron_ingest.validation import InputError, parse_json


async def caller_project(request: web.Request, body: Any = None) -> int:
    key = presented_key(request, body)
    if key is None:
        raise InputError(401, "missing_api_key", "send your project API key as 'Authorization: Bearer heron_…'")
    project_id = await request.app[AUTH].project_for(key)
    if project_id is None:
        raise InputError(401, "invalid_api_key", "the API key is not valid (unknown or revoked)")
    return project_id


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
    return body


async def owned_row(pool: asyncpg.Pool, table: str, row_id: int, project_id: int, noun: str) -> asyncpg.Record:
    """A row of ``table`` (a constant of ours, never input) that belongs to the caller's project;
    404 otherwise, the same whether it exists elsewhere or not at all."""
    row = await pool.fetchrow(f"SELECT * FROM {table} WHERE id = $1 AND project_id = $2", row_id, project_id)
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
            return error_response(exc.status, exc.code, exc.message)

    wrapped.__name__ = handler.__name__
    return wrapped
