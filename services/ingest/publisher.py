"""Group commit: events arriving within a few milliseconds go out as one message per shard,
and every caller is answered when the message carrying its events is confirmed by RabbitMQ.

One confirmed publish per request would cap ingest at the broker's round-trip rate; batching
amortises it over every request that arrived during the linger, and a caller still only hears
"accepted" once its events are safely in a durable quorum queue.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aio_pika.abc import AbstractExchange
from prometheus_client import Counter, Histogram

from heron_common import bus, messages
from heron_common.clock import Clock
from heron_common.messages import TrackedEvent

PUBLISHED_EVENTS = Counter("heron_ingest_published_events_total", "Events confirmed by RabbitMQ")
PUBLISHED_MESSAGES = Counter("heron_ingest_published_messages_total", "Messages confirmed by RabbitMQ")
PUBLISH_FAILURES = Counter("heron_ingest_publish_failures_total", "Messages RabbitMQ did not confirm")
BATCH_SIZE = Histogram(
    "heron_ingest_message_events", "Events per published message", buckets=(1, 5, 20, 100, 500, 2000, 5000)
)

# A message this large is sent at once rather than waiting for the linger to end.
MAX_EVENTS_PER_MESSAGE = 5000


class _Pending:
    __slots__ = ("events", "waiters")

    def __init__(self) -> None:
        self.events: list[TrackedEvent] = []
        self.waiters: list[asyncio.Future[None]] = []


class GroupPublisher:
    def __init__(self, exchange: AbstractExchange, shards: int, linger: float, clock: Clock) -> None:
        self._exchange = exchange
        self._shards = shards
        self._linger = linger
        self._clock = clock
        self._pending: dict[int, _Pending] = defaultdict(_Pending)
        self._flusher: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def publish(self, events: list[TrackedEvent]) -> None:
        """Return once every event is confirmed by the broker; raise if any was not."""
        loop = asyncio.get_running_loop()
        by_shard: dict[int, list[TrackedEvent]] = defaultdict(list)
        for event in events:
            shard = messages.stream_shard(
                event.project_id, event.event_name, event.service, event.environment, self._shards
            )
            by_shard[shard].append(event)
        waits = []
        for shard, shard_events in by_shard.items():
            pending = self._pending[shard]
            pending.events.extend(shard_events)
            waiter: asyncio.Future[None] = loop.create_future()
            pending.waiters.append(waiter)
            waits.append(waiter)
            if len(pending.events) >= MAX_EVENTS_PER_MESSAGE:
                self._send(shard)
        if self._pending and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after_linger())
        await asyncio.gather(*waits)

    async def _flush_after_linger(self) -> None:
        try:
            await asyncio.sleep(self._linger)
        finally:
            self._flusher = None
            for shard in list(self._pending):
                self._send(shard)

    def _send(self, shard: int) -> None:
        pending = self._pending.pop(shard, None)
        if pending is None or not pending.events:
            return
        task = asyncio.create_task(self._publish_one(shard, pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _publish_one(self, shard: int, pending: _Pending) -> None:
        message = messages.events_message(pending.events, self._clock.now())
        try:
            await bus.publish(self._exchange, bus.Names.shard_key(shard), message)
        except BaseException as exc:
            PUBLISH_FAILURES.inc()
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        PUBLISHED_MESSAGES.inc()
        PUBLISHED_EVENTS.inc(len(pending.events))
        BATCH_SIZE.observe(len(pending.events))
        for waiter in pending.waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Send whatever is pending and wait for every publish in flight (graceful shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
        for shard in list(self._pending):
            self._send(shard)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
