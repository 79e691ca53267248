"""The detector service: consume every shard queue, tick, relay the outbox, keep partitions.

Each shard queue is single-active-consumer: every detector subscribes to every shard, RabbitMQ
hands each shard to one of them, and a standby takes over when that one goes away. Detectors
step back from shards meant for another live detector (``balance.py``), so they share the load. Because the
ticks that trigger the silence scan travel through the same queue as the events, the scan of a
shard runs in the one process that owns it, after every event published before the tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue
from aiohttp import web
from prometheus_client import Counter, Gauge

from heron_common import bus, messages
from heron_common.backoff import delay
from heron_common.clock import Clock
from heron_common.consumer import RETRIES, Abandoned, ConsumerStatus, retry_in_place, subscription
from heron_common.db import is_transient
from heron_common.link import Publisher
from heron_common.logging import get_logger
from heron_common.service import (
    CLOCK,
    LINK,
    NAMES,
    PG,
    READY_CHECKS,
    REDIS,
    SETTINGS,
    STOPPING,
    background,
    base_app,
    consumers,
    instance_id,
    sleep_or_stop,
    use_link,
    use_postgres,
    use_redis,
)
from heron_common.settings import Settings
from heron_detector import balance, keeper, store
from heron_detector.blindness import BlindWatch
from heron_detector.core import Detector

# Messages a shard consumer holds at once; also the most it applies in one transaction.
PREFETCH = 64
DETECTOR = web.AppKey("detector", Detector)
INSTANCE = web.AppKey("instance", str)
SHARDS = web.AppKey("shards", list)
log = get_logger("detector")

TICK_FAILURES = Counter("heron_detector_tick_failures_total", "Rounds of ticks that failed to publish")
TICKER_FAILING = Gauge("heron_detector_ticker_failing", "1 while this detector holds the ticker lease and cannot tick")


@dataclass
class TickerHealth:
    """Whether this detector's ticker is doing its job: silence is only detected while ticks flow."""

    failing_since: float | None = None  # monotonic
    error: str = ""

    def published(self, now: float) -> None:
        self.failing_since = None
        TICKER_FAILING.set(0)

    def not_holding(self) -> None:
        # Another detector holds the lease and ticks: nothing for this one to report.
        self.failing_since = None
        TICKER_FAILING.set(0)

    def failed(self, now: float, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = now
        self.error = repr(exc)
        TICK_FAILURES.inc()
        TICKER_FAILING.set(1)


TICKER = web.AppKey("ticker", TickerHealth)


async def check_ticker(app: web.Application) -> None:
    health = app[TICKER]
    if health.failing_since is not None:
        raise ConnectionError(
            f"ticks failing to publish for {time.monotonic() - health.failing_since:.1f} s: {health.error}"
        )


# Lua: take the lease if free, extend it if ours. Only the holder publishes ticks.
_LEASE = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


async def _detector_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    names = app[NAMES]
    channel = await app[LINK].current().channel()
    await bus.declare_shard_queues(channel, names, settings.shards)
    await bus.declare_notifier_queue(channel, names)
    await channel.close()
    alerts = Publisher(app[LINK], partial(bus.declare_alerts, names=names))
    changes = Publisher(app[LINK], partial(bus.declare_changes, names=names))
    # A Publisher offers the exchange's ``publish`` and re-opens its channel after an outage.
    app[DETECTOR] = Detector(
        app[PG], app[REDIS], cast(AbstractExchange, alerts), settings, changes=cast(AbstractExchange, changes)
    )
    yield
    await alerts.close()
    await changes.close()


async def _declare_shard(channel: AbstractChannel, *, names: bus.Names, shard: int) -> AbstractQueue:
    # The whole topology the shard depends on, again: after a broker restart or a deleted queue
    # the consumer puts it back before subscribing.
    await bus.declare_dead_letters(channel, names)
    return await bus.declare_shard_queue(channel, names, shard)


async def _consume_shard(app: web.Application, *, shard: int) -> None:
    """One subscription to the shard's queue (``consumer.subscription``); returns or raises when it
    ends (connection lost, consumer cancelled by the broker) and the supervisor subscribes again."""
    detector = app[DETECTOR]
    clock = app[CLOCK]
    name = app[NAMES].shard_queue(shard)
    shard_log = log.bind(queue=name, shard=shard)
    state = app[SHARDS][shard]

    def retrying(exc: BaseException, attempt: int) -> None:
        RETRIES.labels("detector", "shard").inc()
        shard_log.warning("transient failure; retrying the messages in place", attempt=attempt, error=repr(exc))

    async def process(batch: list[AbstractIncomingMessage], alive: Callable[[], bool]) -> None:
        state.last_message = time.monotonic()
        bodies = [m.body for m in batch]
        try:
            # An outage (Postgres, Redis, the broker) keeps the batch in hand and retries it:
            # requeueing would spend the delivery limit and dead-letter good events.
            handled = await retry_in_place(
                lambda: detector.handle_many(shard, bodies, clock.now()),
                stopping=app[STOPPING],
                alive=alive,
                on_retry=retrying,
            )
        except Abandoned:
            raise
        except Exception:
            # Not an outage: a bug. Requeue; the delivery limit dead-letters what never succeeds.
            shard_log.exception("messages failed; they will be redelivered", messages=len(batch))
            for message in batch:
                await message.nack(requeue=True)
            await sleep_or_stop(app, 1.0)
            return
        for index, message in enumerate(batch):
            if index in handled.poison:
                shard_log.error(
                    "poison message dead-lettered", message_id=message.message_id, error=str(handled.poison[index])
                )
                await message.reject(requeue=False)
            else:
                await message.ack()
        if handled.opened:
            shard_log.info("scan opened incidents", opened=handled.opened)

    await subscription(
        app[LINK],
        state.status,
        partial(_declare_shard, names=app[NAMES], shard=shard),
        process,
        prefetch=PREFETCH,
        max_batch=PREFETCH,
    )


@dataclass
class ShardState:
    """What this process knows of its hold on one shard."""

    status: ConsumerStatus
    last_message: float = float("-inf")  # monotonic; ticks arrive every scan interval while active
    last_yield: float = float("-inf")
    step_back: asyncio.Event = field(default_factory=asyncio.Event)


async def _shard_supervisor(app: web.Application, *, shard: int) -> None:
    """Keep a subscription on the shard: subscribe again (with backoff) whenever one ends, and on
    request step back to the end of the line."""
    state = app[SHARDS][shard]
    attempt = 0
    while not app[STOPPING].is_set():
        inner = asyncio.create_task(_consume_shard(app, shard=shard))
        step_back = asyncio.create_task(state.step_back.wait())
        started = time.monotonic()
        try:
            await asyncio.wait({inner, step_back}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            inner.cancel()
            step_back.cancel()
            await asyncio.gather(inner, step_back, return_exceptions=True)
            raise
        step_back.cancel()
        if not inner.done():
            inner.cancel()  # lands between messages; unacked prefetched ones go to the next in line
            await asyncio.gather(inner, return_exceptions=True)
            state.step_back.clear()
            state.last_message = float("-inf")
            log.info("stepped back from shard for its preferred detector", shard=shard)
            continue
        state.last_message = float("-inf")
        if app[STOPPING].is_set():
            return
        # A subscription that lived a while ended by an outage: start the backoff afresh.
        attempt = 0 if time.monotonic() - started > 30.0 else attempt + 1
        error = inner.exception()
        log.warning("shard subscription ended; subscribing again", shard=shard, attempt=attempt, error=repr(error))
        if await sleep_or_stop(app, delay(attempt)):
            return


async def _balancer(app: web.Application) -> None:
    """Heartbeat in the live-detector set and step back from shards that belong to another."""
    settings = app[SETTINGS]
    redis = app[REDIS]
    key = f"{settings.redis_prefix}:detector:members"
    me = app[INSTANCE]
    interval = max(0.2, settings.scan_interval * 2)
    try:
        while True:
            try:
                now = time.time()
                pipe = redis.pipeline(transaction=False)
                pipe.zadd(key, {me: now})
                pipe.zremrangebyscore(key, "-inf", now - interval * 5)
                pipe.zrange(key, 0, -1)
                *_, raw = await pipe.execute()
                members = [m.decode() for m in raw]
                mono = time.monotonic()
                active_within = settings.scan_interval * 3 + 1.0
                states = app[SHARDS]
                active = [s for s, st in enumerate(states) if mono - st.last_message < active_within]
                last_yield = {s: st.last_yield for s, st in enumerate(states)}
                for shard in balance.shards_to_yield(me, members, active, last_yield, mono, interval * 10):
                    states[shard].last_yield = mono
                    states[shard].step_back.set()
            except Exception:
                log.exception("balancing failed")
            if await sleep_or_stop(app, interval):
                break
    finally:
        with contextlib.suppress(Exception):
            await redis.zrem(key, me)


async def _ticker(app: web.Application) -> None:
    """Publish a tick to every shard each scan interval, from whichever detector holds the lease."""
    settings = app[SETTINGS]
    names = app[NAMES]
    redis = app[REDIS]
    me = app[INSTANCE]
    lease_key = f"{settings.redis_prefix}:detector:ticker"
    lease_ms = max(1000, int(settings.scan_interval * 3000))
    watch = BlindWatch(app[PG], redis, settings)
    # Re-opens its channel (and declares the exchange again) after the broker comes back.
    exchange = cast(AbstractExchange, Publisher(app[LINK], partial(bus.declare_ingest, names=names)))
    ticker = app[TICKER]
    try:
        while not app[STOPPING].is_set():
            try:
                if await redis.eval(_LEASE, 1, lease_key, me, lease_ms):
                    now = app[CLOCK].now()
                    # Any blind window ending now is recorded before the ticks that will scan it.
                    await watch.before_round(now)
                    await asyncio.gather(
                        *(
                            bus.publish(exchange, names.shard_key(s), messages.tick_message(s, now))
                            for s in range(settings.shards)
                        )
                    )
                    await watch.after_round(now)
                    ticker.published(time.monotonic())
                else:
                    ticker.not_holding()
            except Exception as exc:
                ticker.failed(time.monotonic(), exc)
                if is_transient(exc):
                    # An outage: one line per round, no traceback (the blind window records it).
                    log.warning("tick not published", error=str(exc) or type(exc).__name__)
                else:
                    log.exception("tick failed")
            if await sleep_or_stop(app, settings.scan_interval):
                break
    finally:
        with contextlib.suppress(Exception):
            await cast(Publisher, exchange).close()


async def _outbox_relay(app: web.Application) -> None:
    """Publish outbox rows a crash left unsent (the normal path publishes right after commit)."""
    while not await sleep_or_stop(app, 5.0):
        try:
            await app[DETECTOR].publish_outbox(None)
        except Exception:
            log.exception("outbox relay failed")


async def _maintenance(app: web.Application) -> None:
    """Create event partitions ahead of time and drop those past retention, hourly."""
    while True:
        try:
            async with app[PG].acquire() as conn:
                dropped = await store.maintain(conn, app[SETTINGS].event_retention_days)
            for name in dropped:
                log.info("dropped event partition past retention", partition=name)
        except Exception:
            log.exception("maintenance failed")
        if await sleep_or_stop(app, 3600.0):
            break


def create_app(settings: Settings, clock: Clock | None = None, *, consume: bool = True) -> web.Application:
    app = base_app(settings, clock)
    app[INSTANCE] = instance_id()
    names = app[NAMES]
    app[SHARDS] = [
        ShardState(ConsumerStatus("detector", names.shard_queue(s), f"shard {s}")) for s in range(settings.shards)
    ]
    app[TICKER] = TickerHealth()
    app[READY_CHECKS].append(check_ticker)
    use_postgres(app, max_size=settings.shards + 4)
    use_redis(app)
    use_link(app, "heron-detector")
    app.cleanup_ctx.append(_detector_ctx)
    if consume:
        consumers(
            app,
            "shard-consumer",
            *(partial(_shard_supervisor, shard=s) for s in range(settings.shards)),
            statuses=[state.status for state in app[SHARDS]],
        )
        background(app, "balancer", _balancer)
        background(app, "ticker", _ticker)
        background(app, "outbox-relay", _outbox_relay)
        background(app, "maintenance", _maintenance)
        dead = keeper.statuses(names)
        consumers(app, "dead-letter-keeper", *keeper.keepers(app, dead), statuses=dead)
    return app
