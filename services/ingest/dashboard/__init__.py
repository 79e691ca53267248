"""The web dashboard: server-rendered pages on the API's base URL, under ``/dashboard``.

Served by ingest but kept off its hot path: its routes are plain routes of their own (no
middleware is added, so ``/v1/track`` pays nothing for them), its reads go through the API's query
helpers, and every change it makes goes through the API's own validation and, for monitor state,
the same commands to the detector (the only writer of monitor state).

Pages are modules listed in :data:`PAGES`; each has ``add_routes(app)`` and registers its menu
entry in ``nav``. To add a page (On-call, Probes, Heroku…): write ``heron_ingest/dashboard/<name>.py``
with its handlers (wrapped in ``core.page``; forms checked with ``core.form_of``), a template
extending ``base.html``, register a ``nav.Entry``, and add the module to PAGES. See
docs/architecture.md, "Dashboard".
"""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from heron_common import badges as badge_palette
from heron_common.logging import get_logger
from heron_common.service import SETTINGS
from heron_common.views import ago, human_seconds
from heron_ingest.dashboard import (
    access,
    badges,
    core,
    heartbeats,
    heroku,
    incidents,
    live,
    monitors,
    oncall,
    probes,
    triggers,
    webhooks,
)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Every page module, in the order their routes are added (the catch-all 404 comes last).
PAGES = (access, monitors, incidents, heartbeats, triggers, oncall, webhooks, probes, heroku, live, badges)
log = get_logger("dashboard")


async def theme_css(_: web.Request) -> web.Response:
    return web.Response(
        text=badge_palette.theme_css(),
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def setup(app: web.Application) -> None:
    """Add the dashboard to the ingest app (called by ``heron_ingest.app.create_app``)."""
    settings = app[SETTINGS]
    secret = settings.session_secret
    if secret is None:
        secret = secrets.token_urlsafe(32)
        log.warning(
            "HERON_SESSION_SECRET is not set: this process made its own, so dashboard sessions and badge URLs"
            " last only as long as it runs and differ between replicas; set it (32+ characters) in production"
        )
    app[core.DASHBOARD] = core.Config(secret=secret, badge_secret=settings.badge_secret or secret)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(ago=ago, human=human_seconds, palette=badge_palette.PALETTE)
    app.router.add_static("/dashboard/static", STATIC, name="dashboard.static", append_version=False)
    app.router.add_get("/dashboard/theme.css", theme_css)
    for module in PAGES:
        module.add_routes(app)
    app.router.add_route("*", "/dashboard/{tail:.*}", access.not_found)
