"""Projects, API keys and the Slack target: the management half of the API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heron_common import openapi as oa
from heron_common.db import iso
from heron_common.keys import hash_key, key_hint, new_api_key
from heron_common.outbound import check_url
from heron_common.service import SETTINGS, json_response
from heron_ingest import params, revocations
from heron_ingest.context import AUTH, SECRETS
from heron_ingest.dryrun import db
from heron_ingest.requests import caller_project, handles_errors, is_admin, json_object, path_id
from heron_ingest.validation import InputError

MAX_PROJECT_NAME = 200
TEST_KEY_PREFIX = "heron_TEST_"


def _admin(request: web.Request) -> None:
    if not request.app[SETTINGS].admin_token:
        raise InputError(403, "admin_disabled", "set HERON_ADMIN_TOKEN to enable project administration")
    if not is_admin(request):
        raise InputError(401, "invalid_admin_token", "send 'Authorization: Bearer <HERON_ADMIN_TOKEN>'")


async def _project_scope(request: web.Request, body: Any = None) -> int:
    """The project in the path, which the caller's key (or the admin token) must own.

    Another project's key gets 404, not 403: it must not learn which ids exist.
    """
    project_id = path_id(request, "project_id")
    if is_admin(request):
        exists = await db(request).fetchval("SELECT 1 FROM projects WHERE id = $1", project_id)
    else:
        exists = await caller_project(request, body) == project_id
    if not exists:
        raise InputError(404, "not_found", "no such project")
    return project_id


async def _create_key(request: web.Request, project_id: int, name: str | None, test: bool = False) -> dict[str, Any]:
    # A test key (Heii's heii_TEST_…) reads like one, so nobody mistakes it for a working key.
    key = TEST_KEY_PREFIX + new_api_key().removeprefix("heron_") if test else new_api_key()
    row = await db(request).fetchrow(
        "INSERT INTO api_keys (project_id, key_hash, hint, name, test) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        project_id,
        hash_key(key),
        key_hint(key),
        name,
        test,
    )
    return {"id": row["id"], "api_key": key, "hint": key_hint(key), "name": name, "test": test}


@handles_errors
async def create_project(request: web.Request) -> web.Response:
    _admin(request)
    body = await json_object(request, required=False) or {}
    name = params.text_field(request.query if "name" in request.query else body, "name", max_len=MAX_PROJECT_NAME)
    if name is None or not name.strip():
        raise InputError(422, "missing_field", 'name is required (?name=MyApp or {"name": "MyApp"})')
    async with db(request).acquire() as conn, conn.transaction():
        project_id = await conn.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id", name.strip())
        key = new_api_key()
        await conn.execute(
            "INSERT INTO api_keys (project_id, key_hash, hint, name) VALUES ($1, $2, $3, 'default')",
            project_id,
            hash_key(key),
            key_hint(key),
        )
    return json_response({"project_id": project_id, "name": name.strip(), "api_key": key}, status=201)


@handles_errors
async def list_keys(request: web.Request) -> web.Response:
    project_id = await _project_scope(request)
    rows = await db(request).fetch(
        "SELECT id, hint, name, test, created_at, revoked_at FROM api_keys WHERE project_id = $1 ORDER BY id",
        project_id,
    )
    return json_response(
        [
            {
                "id": r["id"],
                "hint": r["hint"],
                "name": r["name"],
                "test": r["test"],
                "created_at": iso(r["created_at"]),
                "revoked_at": iso(r["revoked_at"]),
            }
            for r in rows
        ]
    )


@handles_errors
async def add_key(request: web.Request) -> web.Response:
    project_id = await _project_scope(request)
    body = await json_object(request, required=False) or {}
    name = params.text_field(body, "name", max_len=MAX_PROJECT_NAME)
    test = body.get("test", False)
    if not isinstance(test, bool):
        raise InputError(422, "invalid_field", "test must be true or false")
    return json_response(await _create_key(request, project_id, name, test), status=201)


@handles_errors
async def revoke_key(request: web.Request) -> web.Response:
    project_id = await _project_scope(request)
    key_id = path_id(request, "key_id")
    row = await db(request).fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND project_id = $2"
        " RETURNING key_hash",
        key_id,
        project_id,
    )
    if row is None:
        raise InputError(404, "not_found", "no such key")
    request.app[AUTH].forget(bytes(row["key_hash"]))
    await revocations.announce(request.app, bytes(row["key_hash"]))
    return web.Response(status=204)


@handles_errors
async def set_slack(request: web.Request) -> web.Response:
    body = await json_object(request)
    project_id = await _project_scope(request, body)
    if "slack_webhook_url" not in body:
        raise InputError(422, "missing_field", "slack_webhook_url is required (a URL, or null to remove it)")
    url = params.text_field(body, "slack_webhook_url", max_len=2000)
    if url is not None:
        problem = check_url(url, request.app[SETTINGS].outbound_allow_cidrs)
        if problem:
            raise InputError(422, "invalid_field", f"slack_webhook_url {problem}")
    # Stored sealed (secretbox.py): the URL is a credential; the notifier opens it to send.
    sealed = request.app[SECRETS].seal(url)
    await db(request).execute("UPDATE projects SET slack_webhook_url = $1 WHERE id = $2", sealed, project_id)
    return json_response({"project_id": project_id, "slack_webhook_url": url})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/projects", create_project)
    app.router.add_get("/v1/projects/{project_id}/keys", list_keys)
    app.router.add_post("/v1/projects/{project_id}/keys", add_key)
    app.router.add_delete("/v1/projects/{project_id}/keys/{key_id}", revoke_key)
    app.router.add_patch("/v1/projects/{project_id}/slack", set_slack)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_PROJECT_NAME}
_KEY_ROW = oa.obj(
    {
        "id": oa.ID,
        "hint": oa.STRING,
        "name": oa.OPTIONAL_STRING,
        "test": oa.BOOLEAN,
        "created_at": oa.TIME,
        "revoked_at": oa.OPTIONAL_TIME,
    }
)
_PROJECT = oa.path_param("project_id")
_URL = {"type": "string", "format": "uri", "maxLength": 2000}

PATHS = {
    "/v1/projects": {
        "post": oa.operation(
            "Create a project and its first API key (admin)",
            tag="projects",
            auth="admin",
            operation_id="createProject",
            parameters=[oa.query_param("name", _NAME, "the project's name (or in the body)")],
            body=oa.json_body(oa.obj({"name": _NAME}, required=[]), required=False),
            responses={
                201: oa.json_response(
                    oa.obj({"project_id": oa.ID, "name": oa.STRING, "api_key": oa.STRING}),
                    "Created; the key is shown only now",
                )
            },
        )
    },
    "/v1/projects/{project_id}/keys": {
        "get": oa.operation(
            "List a project's API keys (hints only)",
            tag="projects",
            auth="key_or_admin",
            operation_id="listKeys",
            parameters=[_PROJECT],
            responses={200: oa.json_response(oa.array(_KEY_ROW), "The keys, oldest first")},
        ),
        "post": oa.operation(
            "Add an API key (a test key with test: true)",
            tag="projects",
            auth="key_or_admin",
            operation_id="addKey",
            parameters=[_PROJECT],
            body=oa.json_body(oa.obj({"name": _NAME, "test": oa.BOOLEAN}, required=[]), required=False),
            responses={
                201: oa.json_response(
                    oa.obj(
                        {
                            "id": oa.ID,
                            "api_key": oa.STRING,
                            "hint": oa.STRING,
                            "name": oa.OPTIONAL_STRING,
                            "test": oa.BOOLEAN,
                        }
                    ),
                    "Created; the key is shown only now",
                )
            },
        ),
    },
    "/v1/projects/{project_id}/keys/{key_id}": {
        "delete": oa.operation(
            "Revoke an API key (every replica stops accepting it within a round trip)",
            tag="projects",
            auth="key_or_admin",
            operation_id="revokeKey",
            parameters=[_PROJECT, oa.path_param("key_id")],
            responses={204: oa.NO_CONTENT},
        )
    },
    "/v1/projects/{project_id}/slack": {
        "patch": oa.operation(
            "Set (or remove, with null) the project's Slack incoming-webhook URL",
            tag="projects",
            auth="key_or_admin",
            operation_id="setSlack",
            parameters=[_PROJECT],
            body=oa.json_body(oa.obj({"slack_webhook_url": oa.nullable(_URL)})),
            responses={
                200: oa.json_response(oa.obj({"project_id": oa.ID, "slack_webhook_url": oa.OPTIONAL_STRING}), "Changed")
            },
        )
    },
}
