"""The prober: a runnable skeleton for now (health, readiness, metrics, graceful shutdown).

HTTP and Heroku checks land here in later work; results will go to the monitor's shard on the
ingest exchange, like events.
"""

from __future__ import annotations

from aiohttp import web

from heron_common.clock import Clock
from heron_common.service import base_app, use_link, use_redis
from heron_common.settings import Settings


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = base_app(settings, clock)
    use_redis(app)
    use_link(app, "heron-prober")
    return app
