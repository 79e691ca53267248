"""Services: the logical subsystems (API, Frontend…) that triggers belong to.

``POST/GET /v1/services``, ``GET/DELETE /v1/services/{id}``. A service still used by a trigger
cannot be deleted (409): move or delete its triggers first, so no trigger names a missing service.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import iso
from heron_common.service import json_response
from heron_ingest import params
from heron_ingest.dryrun import db
from heron_ingest.requests import caller_project, handles_errors, json_object, owned_row, path_id
from heron_ingest.validation import InputError

MAX_NAME = 200


def service_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "rotation_id": row.get("rotation_id"),  # who is on call for it (PUT /v1/services/{id}/rotation)
        "created_at": iso(row["created_at"]),
    }


@handles_errors
async def create(request: web.Request) -> web.Response:
    body = await json_object(request)
    project_id = await caller_project(request, body)
    assert body is not None
    return json_response(service_view(await create_service(db(request), project_id, body)), status=201)


async def create_service(pool: asyncpg.Pool, project_id: int, body: dict[str, Any]) -> asyncpg.Record:
    name = params.text_field(body, "name", max_len=MAX_NAME, required=True)
    assert name is not None
    try:
        return await pool.fetchrow(
            "INSERT INTO services (project_id, name) VALUES ($1, $2) RETURNING *", project_id, name.strip()
        )
    except asyncpg.UniqueViolationError:
        raise InputError(409, "name_taken", f"a service named {name.strip()!r} exists already", "name") from None


async def service_rows(pool: asyncpg.Pool, project_id: int) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM services WHERE project_id = $1 ORDER BY id", project_id)


@handles_errors
async def list_all(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    return json_response([service_view(r) for r in await service_rows(db(request), project_id)])


@handles_errors
async def show(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await owned_row(db(request), "services", path_id(request, "service_id"), project_id, "service")
    return json_response(service_view(row))


@handles_errors
async def delete(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    service_id = path_id(request, "service_id")
    async with db(request).acquire() as conn, conn.transaction():
        # Locked: a trigger being created for it waits (it takes a share lock), then finds it gone.
        row = await conn.fetchrow(
            "SELECT * FROM services WHERE id = $1 AND project_id = $2 FOR UPDATE", service_id, project_id
        )
        if row is None:
            raise InputError(404, "not_found", "no such service")
        used = await conn.fetchval(
            "SELECT count(*) FROM monitors WHERE project_id = $1 AND kind = 'trigger'"
            " AND (config->>'service_id')::bigint = $2",
            project_id,
            service_id,
        )
        if used:
            raise InputError(409, "service_in_use", f"{used} trigger(s) belong to this service; move or delete them")
        await conn.execute("DELETE FROM services WHERE id = $1", service_id)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/services", create)
    app.router.add_get("/v1/services", list_all)
    app.router.add_get("/v1/services/{service_id}", show)
    app.router.add_delete("/v1/services/{service_id}", delete)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_SERVICE = oa.obj({"id": oa.ID, "name": oa.STRING, "created_at": oa.TIME})
_SERVICE_ID = oa.path_param("service_id")

PATHS = {
    "/v1/services": {
        "post": oa.operation(
            "Add a service (what triggers belong to)",
            tag="services",
            operation_id="createService",
            body=oa.json_body(oa.obj({"name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME}})),
            errors={409: "A service of that name exists already"},
            responses={201: oa.json_response(_SERVICE, "Created")},
        ),
        "get": oa.operation(
            "The project's services",
            tag="services",
            operation_id="listServices",
            responses={200: oa.json_response(oa.array(_SERVICE), "Every service, oldest first")},
        ),
    },
    "/v1/services/{service_id}": {
        "get": oa.operation(
            "One service",
            tag="services",
            operation_id="getService",
            parameters=[_SERVICE_ID],
            responses={200: oa.json_response(_SERVICE, "The service")},
        ),
        "delete": oa.operation(
            "Delete a service no trigger uses",
            tag="services",
            operation_id="deleteService",
            parameters=[_SERVICE_ID],
            errors={409: "Triggers still belong to it"},
            responses={204: oa.NO_CONTENT},
        ),
    },
}
