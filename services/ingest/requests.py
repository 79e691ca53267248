"""What every API handler needs: the caller's project, path ids, and JSON errors."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common.service import error_response
from heron_ingest.auth import presented_key
from heron_ingest.context import AUTH
from heron_ingest.validation import InputError


async def caller_project(request: web.Request, body: Any = None) -> int:
    key = presented_key(request, body)
    if key is None:
        raise InputError(401, "missing_api_key", "send your project API key as 'Authorization: Bearer heron_…'")
    project_id = await request.app[AUTH].project_for(key)
    if project_id is None:
        raise InputError(401, "invalid_api_key", "the API key is not valid (unknown or revoked)")
    return project_id


def path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise InputError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return int(raw)


def handles_errors(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InputError as exc:
            return error_response(exc.status, exc.code, exc.message)

    wrapped.__name__ = handler.__name__
    return wrapped
