"""Checking Heroku apps: the prober's loop (``heroku_client.py`` reads the Platform API).

- **Schedule.** ``heroku_checks`` is the prober's own table, one row per monitor of kind
  ``heroku`` (added by whichever prober sees the monitor first). An app is due when it was never
  checked, when its config differs from the one of its last check (a new app name or interval
  applies at once, no restart), or when ``check_interval`` minutes have passed since its last
  check *started*. So the first check of a new monitor runs at once, not one interval later.
- **No double checks.** Due rows are taken ``FOR UPDATE SKIP LOCKED`` and claimed with a
  conditional ``UPDATE … SET locked_until`` (a lease longer than a check can take), so any number
  of probers share the apps with no coordinator and never check one twice at once; a prober that
  dies mid-check frees its rows when the lease lapses.
- **What it reports.** The snapshot (or the error) goes to the detector as an ``observation`` on
  the monitor's shard, like a heartbeat's ping: the detector decides states, incidents and
  messages. The prober writes no monitor state.
- **Rate limit.** Every answer's ``RateLimit-Remaining`` is read: below
  ``HERON_HEROKU_RATE_RESERVE`` every prober pauses for a minute (a Redis key they all read), as
  on a ``429``, which also moves that app's next try past ``Retry-After`` (or a doubling backoff).
  Neither is the app's fault, so neither is reported as an error. Heroku unreachable three times
  in a row is (``unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import redis.asyncio as redis_asyncio
from aio_pika.abc import AbstractExchange
from aiohttp import web
from prometheus_client import Counter

from heron_common import bus, messages
from heron_common.clock import Clock
from heron_common.db import is_transient, to_dt
from heron_common.link import Publisher
from heron_common.logging import get_logger
from heron_common.monitors import heroku as hk
from heron_common.outbound import GuardedSession
from heron_common.service import CLOCK, LINK, NAMES, PG, REDIS, SETTINGS, STOPPING, background, instance_id
from heron_common.settings import Settings
from heron_prober.heroku_client import CheckFailed, PlatformAPI, RateLimited

CHECKS = Counter("heron_prober_heroku_checks_total", "Heroku app checks by outcome", ["outcome"])
MAX_BACKOFF = 900.0
RATE_PAUSE = 60.0  # Heroku refills about 75 requests a minute: a minute's pause lets the budget recover
UNAVAILABLE_AFTER = 3  # consecutive failures to reach Heroku before the monitor shows it
log = get_logger("prober.heroku")

_ENSURE = (
    "INSERT INTO heroku_checks (monitor_id, salt)"
    " SELECT m.id, gen_random_uuid()::text FROM monitors m"
    " WHERE m.kind = 'heroku' AND NOT EXISTS (SELECT 1 FROM heroku_checks c WHERE c.monitor_id = m.id)"
    " ON CONFLICT DO NOTHING"
)

# $1 now, $2 lease end, $3 me, $4 how many, $5 seconds in a check_interval minute.
_CLAIM = (
    "WITH due AS ("
    "  SELECT c.monitor_id FROM heroku_checks c JOIN monitors m ON m.id = c.monitor_id"
    "  WHERE m.kind = 'heroku' AND m.state <> 'paused'"
    "  AND (c.locked_until IS NULL OR c.locked_until < $1) AND (c.not_before IS NULL OR c.not_before <= $1)"
    "  AND (c.last_started_at IS NULL OR c.checked_config IS DISTINCT FROM m.config"
    "   OR c.last_started_at + make_interval(secs => coalesce((m.config ->> 'check_interval')::float, 5) * $5) <= $1)"
    "  ORDER BY c.last_started_at NULLS FIRST, c.monitor_id LIMIT $4"
    "  FOR UPDATE OF c SKIP LOCKED"
    ") UPDATE heroku_checks c SET locked_until = $2, locked_by = $3, last_started_at = $1, checked_config = m.config"
    " FROM due, monitors m WHERE c.monitor_id = due.monitor_id AND m.id = c.monitor_id"
    " AND (c.locked_until IS NULL OR c.locked_until < $1)"
    " RETURNING c.monitor_id, c.salt, c.failures, m.project_id, m.shard, m.config"
)

_RELEASE = (
    "UPDATE heroku_checks SET locked_until = NULL, locked_by = NULL, failures = $3, not_before = $4"
    " WHERE monitor_id = $1 AND locked_by = $2"
)


def backoff(failures: int, base: float, retry_after: float | None) -> float:
    """How long to leave an app alone after its ``failures``-th 429 in a row (pure)."""
    # The exponent is capped: past 2**40 every base is over the cap anyway, and an unbounded one
    # overflows a float after about a thousand 429s in a row (a week of an app that stays refused).
    wait = min(base * 2 ** min(max(0, failures - 1), 40), MAX_BACKOFF)
    return max(wait, retry_after or 0.0)


class HerokuProber:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: redis_asyncio.Redis,
        publisher: AbstractExchange,
        http: GuardedSession,
        settings: Settings,
        clock: Clock,
        me: str,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.publisher = publisher
        self.settings = settings
        self.clock = clock
        self.me = me
        self.names = bus.Names(settings.amqp_prefix)
        self.pause_key = f"{settings.redis_prefix}:heroku:paused"
        self.api = (
            PlatformAPI(http, settings.heroku_api_url, settings.heroku_api_key, clock.now)
            if settings.heroku_api_key
            else None
        )
        # A check reads up to ~25 pages; the lease outlives the slowest one.
        self.lease = settings.heroku_timeout * 25 + 10.0

    async def paused(self) -> bool:
        return bool(await self.redis.exists(self.pause_key))

    async def pause(self, seconds: float, why: str) -> None:
        """Pause every prober's checks for ``seconds`` (a pause already longer is kept)."""
        ms = max(1, int(seconds * 1000))
        if await self.redis.pttl(self.pause_key) < ms:
            await self.redis.set(self.pause_key, why, px=ms)
            log.warning("pausing Heroku checks", why=why, seconds=round(seconds, 1))

    async def claim(self, limit: int) -> list[asyncpg.Record]:
        now = self.clock.now()
        async with self.pool.acquire() as conn:
            await conn.execute(_ENSURE)
            return await conn.fetch(
                _CLAIM, to_dt(now), to_dt(now + self.lease), self.me, limit, self.settings.heroku_minute
            )

    async def _publish(self, row: asyncpg.Record, payload: dict[str, Any]) -> None:
        message = messages.observation_message(row["monitor_id"], row["project_id"], self.clock.now(), payload)
        await bus.publish(self.publisher, self.names.shard_key(row["shard"]), message)

    async def check(self, row: asyncpg.Record) -> str:
        """Check one claimed app, report it, release the claim; returns the outcome."""
        app = (row["config"] or {}).get("app_name", "")
        started = self.clock.now()
        failures, not_before = 0, None
        report: dict[str, Any] = {"app_name": app, "checked_at": started}
        payload: dict[str, Any] | None = report
        a_log = log.bind(monitor_id=row["monitor_id"], app=app)
        try:
            if self.api is None:
                report["error"] = {"code": hk.NO_KEY, "message": "HEROKU_API_KEY is not set: Heroku cannot be read"}
                outcome = hk.NO_KEY
            else:
                reading = await self.api.read(app, row["salt"])
                report["snapshot"] = reading.snapshot
                outcome = "ok"
                if reading.rate_remaining is not None and reading.rate_remaining < self.settings.heroku_rate_reserve:
                    await self.pause(RATE_PAUSE, f"RateLimit-Remaining {reading.rate_remaining}")
        except RateLimited as exc:
            failures = row["failures"] + 1
            wait = backoff(failures, self.settings.heroku_backoff, exc.retry_after)
            not_before = started + wait
            await self.pause(wait, "429 Too Many Requests")
            payload, outcome = None, "rate_limited"
        except CheckFailed as exc:
            outcome = exc.code
            if exc.code == hk.UNAVAILABLE:
                failures = row["failures"] + 1
                a_log.warning("Heroku check failed", error=exc.message, failures=failures)
                if failures < UNAVAILABLE_AFTER:
                    payload = None
            report["error"] = {"code": exc.code, "message": exc.message}
        CHECKS.labels(outcome).inc()
        if payload is not None:
            try:
                await self._publish(row, payload)
            except Exception as exc:
                # Not reported: try again shortly rather than waiting a whole interval.
                a_log.warning("check not reported; retrying soon", error=str(exc) or type(exc).__name__)
                not_before = self.clock.now() + min(5.0, self.settings.heroku_minute)
                await self.pool.execute(
                    "UPDATE heroku_checks SET last_started_at = NULL WHERE monitor_id = $1 AND locked_by = $2",
                    row["monitor_id"],
                    self.me,
                )
        await self.pool.execute(_RELEASE, row["monitor_id"], self.me, failures, to_dt(not_before))
        return outcome

    async def step(self) -> list[str]:
        """Claim what is due now and check it all (tests drive this); the outcomes."""
        if await self.paused():
            return []
        rows = await self.claim(self.settings.heroku_concurrency)
        return list(await asyncio.gather(*(self.check(row) for row in rows)))

    async def run(self, app: web.Application) -> None:
        """The service loop: keep up to HERON_HEROKU_CONCURRENCY checks in flight."""
        inflight: set[asyncio.Task[str]] = set()
        finished = asyncio.Event()

        def done(task: asyncio.Task[str]) -> None:
            inflight.discard(task)
            finished.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("Heroku check crashed", exc_info=task.exception())

        try:
            while not app[STOPPING].is_set():
                free = self.settings.heroku_concurrency - len(inflight)
                claimed = 0
                try:
                    if free > 0 and not await self.paused():
                        for row in await self.claim(free):
                            task = asyncio.create_task(self.check(row))
                            inflight.add(task)
                            task.add_done_callback(done)
                            claimed += 1
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("cannot claim Heroku checks now", error=str(exc) or type(exc).__name__)
                    else:
                        log.exception("claiming Heroku checks failed")
                if claimed and len(inflight) < self.settings.heroku_concurrency:
                    continue
                finished.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), timeout=self.settings.heroku_poll_interval)
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)


HEROKU = web.AppKey("heroku", HerokuProber)


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    names = app[NAMES]

    async def declare(channel: Any) -> AbstractExchange:
        # The shard queues too, so an observation is never unroutable before a detector started.
        await bus.declare_shard_queues(channel, names, settings.shards)
        return await bus.declare_ingest(channel, names)

    publisher = Publisher(app[LINK], declare)
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=settings.heroku_timeout, limit=50)
    app[HEROKU] = HerokuProber(
        app[PG], app[REDIS], cast(AbstractExchange, publisher), http, settings, app[CLOCK], instance_id()
    )
    yield
    await http.close()
    await publisher.close()


def use(app: web.Application) -> None:
    """Heroku app checks in this prober (needs Postgres, Redis and the link)."""
    app.cleanup_ctx.append(_ctx)
    background(app, "heroku-checks", lambda a: a[HEROKU].run(a))
