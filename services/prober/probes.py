"""HTTP probes: claim the due ones, run them with bounded concurrency, report every result.

**Sharing the probes with no coordinator.** Each prober claims due probes in Postgres with one
statement (:data:`CLAIM`): ``SELECT … WHERE next_at <= now ORDER BY next_at LIMIT n FOR UPDATE
SKIP LOCKED`` picks rows no other prober holds, and the same statement moves their ``next_at`` on.
Two probers never get the same probe for the same run, and a probe is never run twice at once: the
next run is not due before this one's request timeout has passed (``next_at >= now +
request_timeout``), and this run is cut at that moment (counted from the claim).

**When.** Intervals run start to start: ``next_at`` moves from the *scheduled* time, not from when
the request ran, so a busy prober does not drift. Each step is jittered (``± HERON_PROBE_JITTER``
of the interval), so probes created together spread out instead of stampeding; a probe whose
next time has already passed (the probers were down) is spread over its next interval instead of
all firing at once.

**How many at once.** At most ``HERON_PROBE_CONCURRENCY`` requests are in flight: a prober only
claims as many probes as it has free slots, so a claimed probe starts at once (and its deadline,
counted from the claim, is its own). With 200 ms answers, 500 slots are ~2,500 probes/s.

**Results** go to the detector as observations on the probe's shard, gathered per shard into
``observations`` messages while the previous one awaits the broker's confirm (``probes_report``),
through the prober's supervised link; the detector decides the probe's state. While the broker is
unreachable nothing is claimed (a result that cannot be reported is a probe wasted); a result
whose publish fails is counted (``heron_prober_results_unreported_total``) and dropped: the next
run reports again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractExchange
from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from heron_common import bus
from heron_common.backoff import delay
from heron_common.clock import Clock
from heron_common.db import is_transient, to_dt
from heron_common.link import Link, Publisher
from heron_common.logging import get_logger
from heron_common.monitors import PAUSED
from heron_common.monitors import probe as pr
from heron_common.outbound import GuardedSession
from heron_common.service import CLOCK, LINK, NAMES, PG, SETTINGS, STOPPING, background, instance_id, sleep_or_stop
from heron_common.settings import Settings
from heron_prober import probes_http
from heron_prober.probes_report import Reporter

log = get_logger("prober")

PROBES = Counter("heron_prober_probes_total", "Probe runs finished, by verdict", ["result"])
CLAIM_FAILURES = Counter("heron_prober_claim_failures_total", "Claims that failed (Postgres unreachable…)")
IN_FLIGHT = Gauge("heron_prober_in_flight", "Probe requests in flight")
LATENESS = Histogram(
    "heron_prober_start_lateness_seconds",
    "How long after its scheduled time a probe was claimed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)

REQUEST = Histogram(
    "heron_prober_request_seconds",
    "A probe's request, start to verdict",
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)

# Seconds the runs in flight, then the unreported results, get at shutdown (aiohttp's whole
# shutdown allows the background loop 10 s).
SHUTDOWN_GRACE = 4.0
# Most probes claimed by one statement.
CLAIM_BATCH = 200

# $1 now, $2 how many, $3 this prober, $4 jitter (a fraction of the interval).
CLAIM = """
WITH due AS (
    SELECT s.monitor_id, s.next_at,
           make_interval(secs => (m.config->>'interval')::float8) AS step,
           make_interval(secs => (m.config->>'request_timeout')::float8) AS request_timeout,
           s.next_at + make_interval(secs => (m.config->>'interval')::float8 * (1 + $4 * (2 * random() - 1)))
               AS jittered
    FROM probe_schedule s JOIN monitors m ON m.id = s.monitor_id
    WHERE s.next_at <= $1
    ORDER BY s.next_at
    LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE probe_schedule s
SET next_at = greatest(
        CASE WHEN due.jittered > $1 THEN due.jittered
             ELSE $1 + due.request_timeout + (due.step - due.request_timeout) * random() END,
        $1 + due.request_timeout),
    claimed_by = $3,
    claimed_at = $1,
    runs = s.runs + 1
FROM due JOIN monitors m ON m.id = due.monitor_id
WHERE s.monitor_id = due.monitor_id
RETURNING s.monitor_id, due.next_at AS scheduled, m.project_id, m.shard, m.state, m.config
"""


async def claim(pool: asyncpg.Pool, now: float, limit: int, prober: str, jitter: float) -> list[asyncpg.Record]:
    """Take up to ``limit`` due probes for ``prober`` and schedule their next run (one statement)."""
    return await pool.fetch(CLAIM, to_dt(now), limit, prober, jitter)


class Prober:
    def __init__(
        self,
        pool: asyncpg.Pool,
        link: Link,
        reporter: Reporter,
        http: GuardedSession,
        settings: Settings,
        clock: Clock,
        instance: str,
    ) -> None:
        self.pool = pool
        self.link = link
        self.reporter = reporter
        self.http = http
        self.settings = settings
        self.clock = clock
        self.instance = instance
        self.in_flight: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()

    async def run(self, app: web.Application) -> None:
        """Claim and start probes until shutdown, then let the ones in flight finish briefly."""
        stopping = app[STOPPING]
        poll = self.settings.probe_poll_interval
        failures = 0
        while not stopping.is_set():
            free = self.settings.probe_concurrency - len(self.in_flight)
            if free <= 0:
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), poll)
                continue
            if not self.link.up:  # results could not be reported: leave the probes due
                await sleep_or_stop(app, poll)
                continue
            asked = min(free, CLAIM_BATCH)
            now, claimed_at = self.clock.now(), time.monotonic()
            try:
                rows = await claim(self.pool, now, asked, self.instance, self.settings.probe_jitter)
            except Exception as exc:
                CLAIM_FAILURES.inc()
                log.warning("claiming probes failed", error=str(exc)[:300], transient=is_transient(exc))
                await sleep_or_stop(app, delay(failures))
                failures += 1
                continue
            failures = 0
            for row in rows:
                self.start(row, now, claimed_at)
            if len(rows) < asked:
                await sleep_or_stop(app, poll)
        # Shutting down: the runs in flight get a few seconds (their results are worth reporting),
        # then are cut; their next runs were scheduled when they were claimed.
        if self.in_flight:
            _, cut = await asyncio.wait(self.in_flight, timeout=SHUTDOWN_GRACE)
            for task in cut:
                task.cancel()
        await self.reporter.drain(timeout=SHUTDOWN_GRACE)

    def start(self, row: asyncpg.Record, now: float, claimed_at: float) -> None:
        task = asyncio.create_task(self.probe(row, now, claimed_at))
        self.in_flight.add(task)
        IN_FLIGHT.set(len(self.in_flight))

        def done(t: asyncio.Task[None]) -> None:
            self.in_flight.discard(t)
            IN_FLIGHT.set(len(self.in_flight))
            self._freed.set()

        task.add_done_callback(done)

    async def probe(self, row: asyncpg.Record, now: float, claimed_at: float) -> None:
        """Run one claimed probe and report its result; never raises."""
        monitor_id = row["monitor_id"]
        try:
            if row["state"] == PAUSED:
                return  # its schedule moved on; nothing to judge while paused
            LATENESS.observe(max(0.0, now - row["scheduled"].timestamp()))
            config = pr.Config.from_dict(row["config"])
            started = self.clock.now()
            outcome = await probes_http.run(self.http, config, claimed_at + config.request_timeout)
            REQUEST.observe(outcome.timings.get("total") or 0.0)
            PROBES.labels("up" if outcome.up else "down").inc()
            payload: dict[str, Any] = {
                "up": outcome.up,
                "status": outcome.status,
                "reason": outcome.reason,
                "timings": outcome.timings,
                "prober": self.instance,
            }
            self.reporter.add(row["shard"], monitor_id, row["project_id"], started, payload)
        except Exception as exc:  # a bug: never let it take the loop down
            log.error("probe run failed", monitor_id=monitor_id, error=f"{type(exc).__name__}: {str(exc)[:300]}")


PROBER = web.AppKey("prober", Prober)


def setup(app: web.Application) -> None:
    """The probe loop for the prober app (Postgres and the link must be set up before)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings, names = app[SETTINGS], app[NAMES]

        async def declare(channel: AbstractChannel) -> AbstractExchange:
            # Like ingest: the shard queues exist before the first result, detector or not.
            await bus.declare_shard_queues(channel, names, settings.shards)
            return await bus.declare_ingest(channel, names)

        publisher = Publisher(app[LINK], declare)
        http = probes_http.session(settings.outbound_allow_cidrs, settings.probe_concurrency)
        reporter = Reporter(cast(AbstractExchange, publisher), app[CLOCK])
        app[PROBER] = Prober(app[PG], app[LINK], reporter, http, settings, app[CLOCK], instance_id())
        yield
        await publisher.close()
        await http.close()

    app.cleanup_ctx.append(ctx)
    background(app, "probes", _run)


async def _run(app: web.Application) -> None:
    await app[PROBER].run(app)
