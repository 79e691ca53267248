"""The prober: it watches things from the outside and reports what it saw to the detector, as
observations on the monitor's shard of the ingest exchange: HTTP probes (``probes.py``) and
Heroku app checks (``heroku.py``).
"""

from __future__ import annotations

from aiohttp import web

from heron_common.clock import Clock
from heron_common.service import base_app, use_link, use_postgres, use_redis
from heron_common.settings import Settings
from heron_prober import heroku, probes


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = base_app(settings, clock)
    use_redis(app)
    use_link(app, "heron-prober")
    use_postgres(app)
    probes.setup(app)
    heroku.use(app)  # Heroku app checks (heroku.py)
    return app
