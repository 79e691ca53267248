"""Status badges: ``GET /badge/{monitor_id}/{token}.svg`` and ``.json``, for READMEs and status
pages. No session: the token (an HMAC of the monitor id with the badge secret, see
``heron_common.sessions.badge_token``) is the credential, and it only ever reads one monitor's
status. A wrong token is answered like a missing monitor, before any query."""

from __future__ import annotations

from aiohttp import web

from heron_common import badges, sessions
from heron_common.db import iso
from heron_common.service import PG, error_response, json_response
from heron_common.views import display_state
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


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/badge/{monitor_id}/{token}.{ext:svg|json}", badge, name="badge")
