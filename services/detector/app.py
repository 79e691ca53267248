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
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from heron_common import bus, messages
from heron_common.clock import Clock
from heron_common.logging import get_logger
from heron_common.service import (
    AMQP,
    CLOCK,
    NAMES,
    PG,
    REDIS,
    SETTINGS,
    STOPPING,
    background,
    base_app,
    consume_batches,
    consumers,
    sleep_or_stop,
    use_postgres,
    use_rabbitmq,
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
    channel = await app[AMQP].channel(publisher_confirms=True, on_return_raises=True)
    await bus.declare_shard_queues(channel, app[NAMES], settings.shards)
    await bus.declare_notifier_queue(channel, app[NAMES])
    alerts = await bus.declare_alerts(channel, app[NAMES])
    app[DETECTOR] = Detector(app[PG], app[REDIS], alerts, settings)
    yield
    await channel.close()


async def _consume_shard(app: web.Application, *, shard: int) -> None:
    detector = app[DETECTOR]
    clock = app[CLOCK]
    channel = await app[AMQP].channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.get_queue(app[NAMES].shard_queue(shard), ensure=False)
    shard_log = log.bind(queue=queue.name, shard=shard)

    state = app[SHARDS][shard]

    async def process(batch: list[AbstractIncomingMessage]) -> None:
        state.last_message = time.monotonic()
        try:
            handled = await detector.handle_many(shard, [m.body for m in batch], clock.now())
        except Exception:
            shard_log.exception("messages failed; they will be redelivered", messages=len(batch))
            for message in batch:
                await message.nack(requeue=True)
            # Back off so a broken dependency does not spin; the delivery limit dead-letters
            # a message that can never succeed.
            await asyncio.sleep(1.0)
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

    try:
        await consume_batches(queue, process, max_batch=PREFETCH)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


@dataclass
class ShardState:
    """What this process knows of its hold on one shard."""

    last_message: float = float("-inf")  # monotonic; ticks arrive every scan interval while active
    last_yield: float = float("-inf")
    step_back: asyncio.Event = field(default_factory=asyncio.Event)


async def _shard_supervisor(app: web.Application, *, shard: int) -> None:
    """Keep a subscription on the shard; on request, step back to the end of the line."""
    state = app[SHARDS][shard]
    while True:
        inner = asyncio.create_task(_consume_shard(app, shard=shard))
        step_back = asyncio.create_task(state.step_back.wait())
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
        if inner.exception() is not None:
            log.error("shard consumer failed; resubscribing", shard=shard, exc_info=inner.exception())
        if await sleep_or_stop(app, 1.0):
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
    channel = await app[AMQP].channel(publisher_confirms=True, on_return_raises=True)
    exchange = await bus.declare_ingest(channel, names)
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
            except Exception:
                log.exception("tick failed")
            if await sleep_or_stop(app, settings.scan_interval):
                break
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


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
    app[INSTANCE] = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    app[SHARDS] = [ShardState() for _ in range(settings.shards)]
    use_postgres(app, max_size=settings.shards + 4)
    use_redis(app)
    use_rabbitmq(app, "heron-detector")
    app.cleanup_ctx.append(_detector_ctx)
    if consume:
        consumers(app, "shard-consumer", *(partial(_shard_supervisor, shard=s) for s in range(settings.shards)))
        background(app, "balancer", _balancer)
        background(app, "ticker", _ticker)
        background(app, "outbox-relay", _outbox_relay)
        background(app, "maintenance", _maintenance)
        consumers(app, "dead-letter-keeper", keeper.keep)
    return app
