"""Building the OpenAPI 3.1 document from fragments each API module keeps next to its handlers.

Pure: no I/O. A module describes its own routes as ``PATHS = {"/v1/things": {"get": operation(…)}}``
with the helpers here; a service assembles its modules' fragments with :func:`assemble`, and a test
compares the result with the routes its router really has (:func:`differences`), so a route and its
description cannot drift apart.

The helpers keep the common parts in one place: the error shape ``{"error": {"code", "message"}}``,
the statuses every call of a kind can answer (a project key: 401 and 429; a body: 400, 408, 413),
ids in paths, and the pagination every list shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

Schema = dict[str, Any]
Auth = Literal["key", "key_or_test", "admin", "key_or_admin", "token", "slack", "none"]

OPENAPI_VERSION = "3.1.0"
BIGINT_MAX = 2**63 - 1

# Who may call an operation, kept in the document (an ``x-`` extension, which OpenAPI allows) for
# the access-matrix test: key (a project key; a test key may read, not write), key_or_test (a
# test key is answered as usual and changes nothing), admin, key_or_admin, token (a trigger
# call), slack (a signed Slack request), none.
AUTH_FIELD = "x-heron-auth"

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable (`invalid_field`)"},
                "message": {"type": "string", "description": "for people; names the field when there is one"},
            },
        }
    },
}

# What each status means wherever it is answered; an operation may say more in its own words.
_ERROR_MEANING = {
    400: "The body is not valid JSON (or not the form this call takes)",
    401: "No credential, or one that is unknown or revoked",
    403: "The credential may not do this (a test key writing, administration disabled)",
    404: "No such resource in the caller's project (the same whether it exists elsewhere or not)",
    405: "Method not allowed",
    408: "The body did not arrive within HERON_BODY_READ_TIMEOUT",
    409: "Conflicts with the resource's current state",
    413: "The body is larger than HERON_MAX_BODY_BYTES",
    422: "A field or parameter is missing or wrong; the message names it",
    429: "Rate limited (per address, per key); retry after Retry-After seconds",
    503: "Could not be queued or stored right now; retry (nothing was lost)",
}

SECURITY_SCHEMES: Schema = {
    "projectKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A project API key (`heron_…`; a test key `heron_TEST_…` reads and changes nothing).",
    },
    "apiKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "The project API key as `?api_key=` (older SDKs; a body `api_key` also works).",
    },
    "adminToken": {"type": "http", "scheme": "bearer", "description": "`HERON_ADMIN_TOKEN`."},
    "triggerToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The project API key as `?token=` (Heii's form; discouraged: URLs get logged).",
    },
    "slackSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Slack-Signature",
        "description": "Slack's request signature (with X-Slack-Request-Timestamp).",
    },
}

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "key": [{"projectKey": []}, {"apiKeyQuery": []}],
    "key_or_test": [{"projectKey": []}, {"apiKeyQuery": []}],
    "admin": [{"adminToken": []}],
    "key_or_admin": [{"projectKey": []}, {"apiKeyQuery": []}, {"adminToken": []}],
    "token": [{"projectKey": []}, {"triggerToken": []}, {"apiKeyQuery": []}],
    "slack": [{"slackSignature": []}],
    "none": [],
}


# -- schema shorthands -------------------------------------------------------------------------


def nullable(schema: Schema) -> Schema:
    """``schema`` or null (3.1: a type list, or ``anyOf`` for a schema without a plain type)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
TIME: Schema = {"type": "string", "format": "date-time"}
OPTIONAL_TIME: Schema = nullable(TIME)
OPTIONAL_STRING: Schema = nullable(STRING)
OPTIONAL_NUMBER: Schema = nullable(NUMBER)
OPTIONAL_INTEGER: Schema = nullable(INTEGER)
ANY: Schema = {}


def obj(properties: Mapping[str, Any], required: Iterable[str] | None = None, **extra: Any) -> Schema:
    """An object; every listed property is required unless ``required`` says which are."""
    names = list(properties) if required is None else list(required)
    out: Schema = {"type": "object", "properties": dict(properties)}
    if names:
        out["required"] = names
    out.update(extra)
    return out


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def accepted(field: str, schema: Schema) -> Schema:
    """The ``202 {"status": "accepted", field: …}`` of a change queued for the detector."""
    return obj({"status": {"const": "accepted"}, field: schema})


# -- parameters ----------------------------------------------------------------------------------


def path_param(name: str, description: str | None = None, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description or f"the {name.removesuffix('_id').replace('_', ' ')}'s id",
        "schema": schema or ID,
    }


def query_param(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


LIMIT = query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size")
BEFORE = query_param("before", ID, "the last id of the previous page (newest first); the Link header has it")
ENVIRONMENT = query_param("environment", {"type": "string", "maxLength": 200}, "only this environment")
PAGE = (LIMIT, BEFORE)
LINK_HEADER = {
    "Link": {"description": 'the next page, `<…?before=ID&limit=N>; rel="next"`', "schema": STRING},
}


# -- responses -----------------------------------------------------------------------------------


def json_response(schema: Schema, description: str, headers: Mapping[str, Any] | None = None) -> Schema:
    out: Schema = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = dict(headers)
    return out


def page_of(items: Schema, description: str) -> Schema:
    return json_response(array(items), description, LINK_HEADER)


def error_response(status: int, description: str | None = None) -> Schema:
    out = json_response({"$ref": "#/components/schemas/Error"}, description or _ERROR_MEANING.get(status, "Error"))
    if status in (429, 503):
        out["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": STRING}}
    return out


NO_CONTENT: Schema = {"description": "Done; no body"}


def json_body(schema: Schema, *, required: bool = True, description: str | None = None) -> Schema:
    out: Schema = {"required": required, "content": {"application/json": {"schema": schema}}}
    if description:
        out["description"] = description
    return out


def operation(
    summary: str,
    *,
    tag: str,
    auth: Auth = "key",
    responses: Mapping[int, Schema],
    parameters: Iterable[Schema] = (),
    body: Schema | None = None,
    errors: Mapping[int, str | None] | Iterable[int] = (),
    description: str | None = None,
    operation_id: str | None = None,
    limited: bool = True,
) -> Schema:
    """One operation. The errors its credential and body make possible are added: 401 for a key
    or token, 400/408/413 for a body, 429 for any rate-limited call (``limited``); ``errors``
    adds the route's own (a status, or status → what it means here)."""
    all_errors: dict[int, str | None] = {}
    if auth in ("key", "key_or_test", "admin", "key_or_admin", "token", "slack"):
        all_errors[401] = None
    if auth == "admin":
        all_errors[403] = "HERON_ADMIN_TOKEN is not set: administration is disabled"
    if body is not None:
        all_errors.update({400: None, 408: None, 413: None})
    if limited:
        all_errors[429] = None
    params = list(parameters)
    if any(p["in"] == "path" for p in params):
        all_errors[404] = None
    if body is not None or any(p["in"] == "query" for p in params):
        all_errors[422] = None
    extra = errors if isinstance(errors, Mapping) else {status: None for status in errors}
    all_errors.update(extra)
    out_responses: dict[str, Schema] = {str(status): response for status, response in responses.items()}
    for status, meaning in sorted(all_errors.items()):
        out_responses.setdefault(str(status), error_response(status, meaning))
    op: Schema = {
        "summary": summary,
        "tags": [tag],
        "security": _SECURITY[auth],
        "responses": out_responses,
        AUTH_FIELD: auth,
    }
    if operation_id:
        op["operationId"] = operation_id
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


# -- the document --------------------------------------------------------------------------------

Paths = Mapping[str, Mapping[str, Schema]]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
READS = ("get", "head", "options")


def _with_test_key_refusal(method: str, op: Schema) -> Schema:
    """A write that takes a project key refuses a test key (403 ``test_key``): added here, where
    the method is known, so no write can forget to say so."""
    if method in READS or op.get(AUTH_FIELD) not in ("key", "key_or_admin") or "403" in op["responses"]:
        return op
    refusal = error_response(403, "A test key that could not be run without a change (a key sent in the body)")
    responses = {**op["responses"], "403": refusal}
    return {**op, "responses": dict(sorted(responses.items()))}


def assemble(
    fragments: Iterable[Paths],
    *,
    title: str,
    version: str,
    description: str = "",
    schemas: Mapping[str, Schema] | None = None,
    tags: Iterable[Mapping[str, str]] = (),
) -> Schema:
    """The whole document from each module's ``PATHS``. Two fragments describing the same
    operation is a mistake (ValueError), not a merge that would hide one of them."""
    paths: dict[str, dict[str, Schema]] = {}
    for fragment in fragments:
        for path, methods in fragment.items():
            slot = paths.setdefault(path, {})
            for method, op in methods.items():
                if method not in METHODS:
                    raise ValueError(f"{path}: {method!r} is not an HTTP method")
                if method in slot:
                    raise ValueError(f"{method.upper()} {path} is described twice")
                slot[method] = _with_test_key_refusal(method, op)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "tags": [dict(t) for t in tags],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {
            "schemas": {"Error": ERROR, **(schemas or {})},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation the document describes."""
    return {
        (method.upper(), path)
        for path, methods in document.get("paths", {}).items()
        for method in methods
        if method in METHODS
    }


def differences(
    document: Mapping[str, Any], routes: Iterable[tuple[str, str]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(routes the document does not describe, operations no route serves)."""
    served = set(routes)
    described = operations(document)
    return served - described, described - served
