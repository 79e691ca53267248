"""Status badges, for READMEs and status pages: ``GET /badge/{monitor_id}/{token}.svg`` (and
``.json``) for one monitor, ``GET /badge/service/{project_id}/{service}/{token}.svg`` (and
``.json``) for a service: the worst state of the project's monitors labelled with that service
(``{service}`` is the name in base64url, ``badges.service_slug``). No session: the token (an HMAC
with the badge secret of the monitor id, or of the project and service name; see
``heron_common.sessions``) is the credential, and it only ever reads that one status. A wrong
token is answered like a missing badge, before any query."""

from __future__ import annotations

from aiohttp import web

from heron_common import badges, sessions
from heron_common.db import iso
from heron_common.service import PG, error_response, json_response
from heron_common.views import display_state, worst_state
from heron_ingest import params
from heron_ingest.dashboard import queries
from heron_ingest.dashboard.core import DASHBOARD
from heron_ingest.validation import InputError

# Badges are fetched by image proxies (GitHub's camo) that cache; a short max-age keeps them fresh.
CACHE = "public, max-age=30, must-revalidate"


async def badge(request: web.Request) -> web.StreamResponse:
    try:
        monitor_id = params.path_id(request.match_info, "monitor_id")
    except InputError:
        return error_response(404, "not_found", "no such badge")
    token, ext = request.match_info["token"], request.match_info["ext"]
    if not sessions.badge_ok(request.app[DASHBOARD].badge_secret, monitor_id, token):
        return error_response(404, "not_found", "no such badge")
    row = await queries.badge_monitor(request.app[PG], monitor_id)
    if row is None:
        return error_response(404, "not_found", "no such badge")
    state = display_state(row["state"], bool(row["acknowledged"]))
    status = badges.badge_status(state)
    name = row["name"] or row["event_name"] or f"monitor {monitor_id}"
    headers = {"Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"}
    if ext == "json":
        return json_response(badges.badge_json(name, status, row["state"], iso(row["last_seen"])), headers=headers)
    return web.Response(
        text=badges.badge_svg(name, status),
        content_type="image/svg+xml",
        headers={**headers, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


def service_badge_urls(request: web.Request, project_id: int, service: str) -> dict[str, str]:
    """Where a service's badges are (absolute, for a README; and the path, for the page)."""
    token = sessions.service_badge_token(request.app[DASHBOARD].badge_secret, project_id, service)
    path = f"/badge/service/{project_id}/{badges.service_slug(service)}/{token}"
    base = f"{request.scheme}://{request.host}{path}"
    return {"svg": f"{base}.svg", "json": f"{base}.json", "path": f"{path}.svg"}


async def service_badge(request: web.Request) -> web.StreamResponse:
    try:
        project_id = params.path_id(request.match_info, "project_id")
    except InputError:
        return error_response(404, "not_found", "no such badge")
    service = badges.service_from_slug(request.match_info["service"])
    token, ext = request.match_info["token"], request.match_info["ext"]
    secret = request.app[DASHBOARD].badge_secret
    if service is None or not sessions.service_badge_ok(secret, project_id, service, token):
        return error_response(404, "not_found", "no such badge")
    counts = (await queries.service_states(request.app[PG], project_id, service)).get(service)
    status = worst_state(counts or ())
    if not counts or status is None:
        return error_response(404, "not_found", "no such badge")  # no monitor carries it (any more)
    headers = {"Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"}
    if ext == "json":
        return json_response(badges.service_badge_json(service, status, counts), headers=headers)
    return web.Response(
        text=badges.badge_svg(service, status),
        content_type="image/svg+xml",
        headers={**headers, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/badge/{monitor_id}/{token}.{ext:svg|json}", badge, name="badge")
    app.router.add_get(
        r"/badge/service/{project_id}/{service}/{token}.{ext:svg|json}", service_badge, name="service_badge"
    )
