"""Heron watching itself (issue #14): the notifier's loop around ``heron_common.selfwatch``.

One notifier at a time (a Redis lease) samples the pipeline every ``HERON_SELF_WATCH_INTERVAL``:
when the ticker last ticked (Postgres) and each detector shard queue's depth and consumers
(RabbitMQ, a passive declare). A stall is written to stderr as an error and POSTed, with its
recovery, to ``HERON_SELF_ALERT_URL`` (JSON with a ``text``, which a Slack incoming webhook shows
as is); while healthy, ``HERON_SELF_HEARTBEAT_URL`` is POSTed every ``HERON_SELF_HEARTBEAT_INTERVAL``,
so an outside dead-man's switch hears nothing both when Heron is down and when it is stalled.
Both go through the guarded outbound client (``HERON_OUTBOUND_ALLOW_CIDRS``). An alert that could
not be sent is sent again on the next sample (the state moves only once it is out).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import aiormq
from aio_pika.exceptions import ChannelClosed
from aiohttp import web
from prometheus_client import Gauge

from heron_common import selfwatch as sw
from heron_common.logging import get_logger
from heron_common.outbound import GuardedSession
from heron_common.service import CLOCK, LINK, NAMES, PG, REDIS, SETTINGS, sleep_or_stop

STALLED = Gauge("heron_self_stalled", "1 while Heron's own pipeline is stalled (as the self-watch sees it), else 0")
QUEUE_MESSAGES = Gauge("heron_queue_messages", "Messages waiting in a detector shard queue", ["queue"])
QUEUE_CONSUMERS = Gauge("heron_queue_consumers", "Consumers on a detector shard queue", ["queue"])
TICK_AGE = Gauge("heron_watermark_age_seconds", "Seconds since the ticker last ticked (the watermark's age)")
log = get_logger("selfwatch")


async def sample(app: web.Application, now: float, watching_since: float | None = None) -> sw.Sample:
    unreachable: list[str] = []
    last_tick: float | None = None
    try:
        value = await app[PG].fetchval("SELECT extract(epoch FROM last_tick_at) FROM ticker_state WHERE id = 1")
        last_tick = None if value is None else float(value)
    except Exception:
        unreachable.append("postgres")
    queues: list[sw.QueueSample] = []
    link = app[LINK]
    if not link.up:
        unreachable.append("rabbitmq")
    else:
        names = app[NAMES]
        channel = None
        try:
            for shard in range(app[SETTINGS].shards):
                name = names.shard_queue(shard)
                if channel is None or channel.is_closed:
                    channel = await link.current().channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    result = queue.declaration_result
                    queues.append(sw.QueueSample(name, result.message_count or 0, result.consumer_count or 0))
                except (ChannelClosed, aiormq.exceptions.ChannelNotFoundEntity):
                    queues.append(sw.QueueSample(name, 0, 0))  # no such queue: nobody consumes it
                    channel = None
        except Exception:
            unreachable.append("rabbitmq")
        finally:
            if channel is not None and not channel.is_closed:
                await channel.close()
    for q in queues:
        QUEUE_MESSAGES.labels(q.name).set(q.messages)
        QUEUE_CONSUMERS.labels(q.name).set(q.consumers)
    if last_tick is not None:
        TICK_AGE.set(max(0.0, now - last_tick))
    return sw.Sample(now, last_tick, tuple(queues), tuple(unreachable), watching_since)


async def _post(http: GuardedSession, url: str, body: dict[str, Any] | None) -> bool:
    try:
        async with http.request("POST", url, json=body) as response:
            return 200 <= response.status < 300
    except Exception as exc:
        log.warning("self-watch request failed", error=str(exc) or type(exc).__name__)
        return False


async def act(app: web.Application, http: GuardedSession, action: sw.Action, now: float) -> bool:
    """Carry out one action; False if it has to be tried again."""
    settings = app[SETTINGS]
    if action.kind == "heartbeat":
        return settings.self_heartbeat_url is None or await _post(http, settings.self_heartbeat_url, None)
    text = sw.message(action)
    if action.kind == "stalled":
        log.error(text, reasons=list(action.reasons))  # stderr, whatever else is down
    else:
        log.warning(text)
    if settings.self_alert_url is None:
        return True
    body = {
        "text": text,
        "event": f"heron.pipeline.{action.kind}",
        "reasons": list(action.reasons),
        "at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
    }
    return await _post(http, settings.self_alert_url, body)


class SelfWatch:
    def __init__(self, app: web.Application, http: GuardedSession) -> None:
        self.app = app
        self.http = http
        self.state = sw.WatchState()
        self.me = secrets.token_hex(8)
        settings = app[SETTINGS]
        self.limits = sw.Limits(settings.self_watermark_max_age, settings.self_queue_max_depth)
        self.lease_key = f"{settings.redis_prefix}:selfwatch:leader"
        self.started: float | None = None

    async def leading(self) -> bool:
        """One notifier watches at a time; the others take over within a few intervals."""
        redis = self.app[REDIS]
        ttl = int(self.app[SETTINGS].self_watch_interval * 3000)
        try:
            if await redis.set(self.lease_key, self.me, nx=True, px=ttl):
                return True
            holder = await redis.get(self.lease_key)
            if holder is not None and (holder.decode() if isinstance(holder, bytes) else holder) == self.me:
                await redis.pexpire(self.lease_key, ttl)
                return True
            return False
        except Exception:
            return True  # Redis down: watch anyway (two alerts beat none)

    async def step(self, now: float) -> bool:
        """One sample and what it calls for; True if it acted."""
        if not await self.leading():
            return False
        settings = self.app[SETTINGS]
        if self.started is None:
            self.started = now
        reasons = sw.problems(await sample(self.app, now, self.started), self.limits)
        interval = settings.self_heartbeat_interval if settings.self_heartbeat_url else None
        decided = sw.step(self.state, now, reasons, interval, settings.self_confirm_after)
        STALLED.set(1 if decided.state.stalled_since is not None else 0)
        for action in decided.actions:
            if not await act(self.app, self.http, action, now):
                return True  # keep the old state: the same action comes up again next time
        self.state = decided.state
        return bool(decided.actions)


async def self_watch_loop(app: web.Application) -> None:
    settings = app[SETTINGS]
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=10.0, limit=4)
    watch = SelfWatch(app, http)
    try:
        while True:
            try:
                await watch.step(app[CLOCK].now())
            except Exception:
                log.exception("self-watch step failed")
            if await sleep_or_stop(app, settings.self_watch_interval):
                return
    finally:
        await http.close()
