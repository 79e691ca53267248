"""Ingest's OpenAPI 3.1 document, served at ``/openapi.json`` and shown at ``/docs``.

Each API module describes its own routes beside its handlers (``PATHS``, built with
``heron_common.openapi``); this module assembles them. A new API module is added to
``app.API_MODULES`` and so both routed and described, and ``tests/integration/test_openapi.py``
walks the router: a route the document does not describe, or an operation no route serves,
fails it.

Not the API, so not described: the dashboard's HTML pages (``/``, ``/dashboard…``, ``GET
/update-config``) and the status badges (``/badge…``), excluded here by prefix or route.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import orjson
from aiohttp import web

from heron_common import openapi as oa
from heron_common import service

# Routes that are not the API: the dashboard's pages and the badges (images for READMEs).
EXCLUDED_PREFIXES = ("/dashboard", "/badge")
EXCLUDED_PATHS = frozenset({"/"})  # the dashboard's front door (a redirect)
# A dashboard page at an API path: GET /update-config in a browser redirects to the Heroku page
# (POST /update-config is the API, described by heroku_api).
EXCLUDED_ROUTES = frozenset({("GET", "/update-config")})
DOCUMENT = web.AppKey("openapi_document", dict)
_DOCUMENT_BYTES = web.AppKey("openapi_bytes", bytes)
_DOCS_PAGE = web.AppKey("openapi_docs_page", bytes)

DESCRIPTION = """\
Heron's HTTP API: events in, monitors and incidents out, and their management.

Authenticate with a project API key as `Authorization: Bearer heron_…` (or `?api_key=`; trigger
calls also take Heii's `?token=`). A test key (`heron_TEST_…`) reads, and is answered as usual
by the calls integrations make (`/v1/track`, `/v1/events`, trigger calls), but changes nothing;
every other write is answered as with a real key, in a transaction that is rolled back.
Another project's resource is 404, the same as one that does not exist. Administration takes `HERON_ADMIN_TOKEN`.

Every error is JSON `{"error": {"code": "...", "message": "..."}}`: the code is stable, the
message names the field. Lists are newest first, paginated with `limit` and `before`; the
`Link` header has the next page. Rate limits answer `429` with `Retry-After`.
"""

TAGS = [
    {"name": "events", "description": "Sending events (the SDKs' calls)"},
    {"name": "monitors", "description": "Every monitor, whatever its kind"},
    {"name": "incidents", "description": "What went wrong, and acting on it"},
    {"name": "heartbeats", "description": "Cron-style jobs that ping a URL"},
    {"name": "triggers", "description": "On-call triggers (Heii On-Call's calls)"},
    {"name": "services", "description": "The subsystems triggers belong to"},
    {"name": "oncall", "description": "People, channels, rotations, shifts, escalations; acknowledge links"},
    {"name": "probes", "description": "HTTP checks run by the prober"},
    {"name": "heroku", "description": "Heroku app monitoring"},
    {"name": "webhooks", "description": "Signed webhooks, alert topics and the delivery log"},
    {"name": "projects", "description": "Projects, API keys, the Slack target"},
    {"name": "admin", "description": "Operators: dead letters"},
    {"name": "slack", "description": "Slack's slash commands and the Acknowledge button"},
    {"name": "operations", "description": "Health, readiness, metrics, this document"},
]

PATHS = {
    "/openapi.json": {
        "get": oa.operation(
            "This document (OpenAPI 3.1)",
            tag="operations",
            auth="none",
            operation_id="openapi",
            responses={200: oa.json_response(oa.OBJECT, "The OpenAPI document")},
        )
    },
    "/docs": {
        "get": oa.operation(
            "The API reference, as a page (self-contained: no script, nothing fetched)",
            tag="operations",
            auth="none",
            operation_id="docs",
            responses={200: {"description": "HTML", "content": {"text/html": {"schema": oa.STRING}}}},
        )
    },
}


def build(modules: Iterable[ModuleType]) -> dict[str, Any]:
    """The document from ``service`` (health, readiness, metrics), this module and ``modules``."""
    return oa.assemble(
        [service.PATHS, PATHS, *(m.PATHS for m in modules)],
        title="Heron API",
        version="1",
        description=DESCRIPTION,
        tags=TAGS,
    )


def is_api(path: str) -> bool:
    return path not in EXCLUDED_PATHS and not path.startswith(EXCLUDED_PREFIXES)


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every API route the app serves. HEAD is left out: aiohttp
    adds it beside every GET, and it answers as GET does without the body."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = resource.canonical
        if is_api(path) and (route.method, path) not in EXCLUDED_ROUTES:
            out.add((route.method, path))
    return out


# -- /docs: a page listing every operation, rendered once from the document ----------------------

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 1.5rem;color:#1d2430}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #dde} code{font-size:90%}
details{border:1px solid #dde;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer} .m{display:inline-block;min-width:4.2rem;font-weight:600;font-family:monospace}
.get{color:#1565c0}.post{color:#2e7d32}.patch{color:#ef6c00}.delete{color:#c62828}
pre{background:#f5f6fa;padding:.5rem;overflow:auto;font-size:12px} table{border-collapse:collapse}
td,th{padding:.15rem .6rem;text-align:left;vertical-align:top;border-bottom:1px solid #eef}
.muted{color:#667}
"""


def _json(value: Any) -> str:
    return html.escape(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _params_table(op: dict[str, Any]) -> str:
    rows = [
        f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
        f"<td>{'required' if p.get('required') else ''}</td><td>{html.escape(p.get('description', ''))}</td></tr>"
        for p in op.get("parameters", [])
    ]
    return f"<table><tr><th>parameter</th><th>in</th><th></th><th></th></tr>{''.join(rows)}</table>" if rows else ""


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<details id="{html.escape(op.get("operationId", ""))}"><summary><span class="m {method}">'
        f"{method.upper()}</span> <code>{html.escape(path)}</code> — {html.escape(op.get('summary', ''))}"
        f' <span class="muted">({html.escape(op.get(oa.AUTH_FIELD, ""))})</span></summary>',
    ]
    if op.get("description"):
        parts.append(f"<p>{html.escape(op['description'])}</p>")
    parts.append(_params_table(op))
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            parts.append(f"<p>Body <code>{html.escape(media)}</code>:</p><pre>{_json(content.get('schema'))}</pre>")
    rows = []
    for status, response in op["responses"].items():
        described: dict[str, Any] = next(iter(response.get("content", {}).values()), {})
        schema = described.get("schema")
        shown = "" if schema is None else f"<pre>{_json(schema)}</pre>"
        rows.append(f"<tr><td><b>{status}</b></td><td>{html.escape(response['description'])}{shown}</td></tr>")
    parts.append(f"<table>{''.join(rows)}</table></details>")
    return "".join(parts)


def docs_page(document: dict[str, Any]) -> str:
    by_tag: dict[str, list[str]] = {t["name"]: [] for t in document.get("tags", [])}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation(path, method, op))
    info = document["info"]
    sections = "".join(
        f'<h2 id="{html.escape(tag)}">{html.escape(tag)}</h2>{"".join(ops)}' for tag, ops in by_tag.items() if ops
    )
    description = "".join(f"<p>{html.escape(p)}</p>" for p in info["description"].split("\n\n"))
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(info['title'])}</title><style>{_STYLE}</style>"
        f"<h1>{html.escape(info['title'])}</h1>"
        f"<p class=muted>OpenAPI {document['openapi']} · the machine-readable document is "
        f'<a href="/openapi.json">/openapi.json</a></p>{description}'
        f"<p>Error shape:</p><pre>{_json(document['components']['schemas']['Error'])}</pre>{sections}</html>"
    )


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_DOCUMENT_BYTES], content_type="application/json")


async def docs(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_DOCS_PAGE], content_type="text/html", charset="utf-8")


def setup(app: web.Application, modules: Iterable[ModuleType]) -> None:
    """Build the document once (it describes code, so it cannot change while the app runs)."""
    document = build(modules)
    app[DOCUMENT] = document
    app[_DOCUMENT_BYTES] = orjson.dumps(document)
    app[_DOCS_PAGE] = docs_page(document).encode()
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
