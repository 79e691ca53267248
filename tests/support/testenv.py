"""A test's own database and namespace on the shared local servers (used by conftest.py's
fixtures, and by module-scoped fixtures that serve several tests at once)."""

from __future__ import annotations

import ipaddress
import math
import secrets
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis_asyncio

from heron_common import bus, db
from heron_common.settings import Settings
from tests.support.servers import ServerURLs


async def copy_database(template_database: str) -> str:
    """A fresh database, copied from the migrated template (drop it with ``db.drop_database``)."""
    template = urlsplit(template_database).path.lstrip("/")
    url = urlunsplit(urlsplit(template_database)._replace(path=f"/heron_test_{secrets.token_hex(6)}"))
    await db.create_database_from(url, template)
    return url


# At the tests' sub-second scale any budget this large puts the rate model's alarm probability at
# its 0.5 cap: the deadline is the mean gap + min_tolerance (docs/detection.md).
TEST_FALSE_ALARMS_PER_YEAR = 1e9

# A fixed Fernet key for sealing webhook secrets in tests (not a secret: test data only).
TEST_SECRETS_KEY = "dGVzdC1zZWNyZXRzLWtleS1ub3QtYS1zZWNyZXQtMDA="


def make_settings(servers: ServerURLs, database_url: str, **overrides: object) -> Settings:
    """Settings for one test (or one module): its own key and queue namespace, timings on a
    scale of seconds. Clean up with :func:`remove_namespace`."""
    tag = f"heron-test-{secrets.token_hex(5)}"
    s = Settings(
        database_url=database_url,
        redis_url=servers.redis,
        amqp_url=servers.amqp,
        redis_prefix=tag,
        amqp_prefix=tag,
        shards=4,
        admin_token="test-admin-token",
        secrets_keys=(TEST_SECRETS_KEY,),
        http_host="127.0.0.1",
        key_cache_seconds=0.5,
        learning_threshold=3,
        min_tolerance=0.4,
        # Streams learned at a 0.2-s scale from 3 events: the rate model degenerates to
        # "mean gap + min_tolerance" (no young-stream cap; a budget so large that the per-silence
        # alarm probability sits at its 0.5 cap). test_detector_rate.py runs the real defaults.
        false_alarms_per_year=TEST_FALSE_ALARMS_PER_YEAR,
        young_clusters_per_hour=math.inf,
        min_interval=0.05,
        scan_interval=0.05,
        slack_retry_schedule=(0.0, 0.05, 0.1, 0.2),
        delivery_timeout=2.0,
        delivery_poll_interval=0.05,
        outbound_allow_cidrs=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        log_json=True,
    )
    return replace(s, **overrides) if overrides else s  # type: ignore[arg-type]


async def remove_namespace(s: Settings) -> None:
    """Delete the queues, exchanges and Redis keys of a test's namespace."""
    await bus.delete_topology(s.amqp_url, bus.Names(s.amqp_prefix), s.shards)
    r = redis_asyncio.Redis.from_url(s.redis_url)
    try:
        keys = [k async for k in r.scan_iter(match=f"{s.redis_prefix}:*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()
