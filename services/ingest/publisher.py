"""Group commit: while a shard's message is waiting for RabbitMQ's confirm, the events that
arrive for that shard gather into the next message, sent the moment the confirm comes back.
Every caller is answered when the message carrying its events is confirmed.

One confirmed publish per request would cap ingest at the broker's round-trip rate; a fixed
linger would make an idle ingest wait for nothing. Here an idle shard publishes at the end of
the current event-loop iteration, and under load batches grow by themselves to whatever arrives
during one confirm round trip (at most one message in flight per shard, unless a batch reaches
``MAX_EVENTS_PER_MESSAGE``).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from typing import Any

import orjson
from aio_pika.abc import AbstractExchange
from prometheus_client import Counter, Histogram

from heron_common import bus, messages
from heron_common.clock import Clock

PUBLISHED_EVENTS = Counter("heron_ingest_published_events_total", "Events confirmed by RabbitMQ")
PUBLISHED_MESSAGES = Counter("heron_ingest_published_messages_total", "Messages confirmed by RabbitMQ")
PUBLISH_FAILURES = Counter("heron_ingest_publish_failures_total", "Messages RabbitMQ did not confirm")
BATCH_SIZE = Histogram(
    "heron_ingest_message_events", "Events per published message", buckets=(1, 5, 20, 100, 500, 2000, 5000)
)

# A message this large is sent at once rather than waiting for the linger to end.
MAX_EVENTS_PER_MESSAGE = 5000
# Streams whose shard is remembered (crc32 of the key costs more than a dict lookup).
SHARD_CACHE_SIZE = 100_000
# Messages awaiting their confirm per shard. One channel keeps them in order; two lets a shard's
# next batch go out while the previous confirm is on its way back.
MAX_IN_FLIGHT = 2


class UnencodableEvents(ValueError):
    """A request's events could not be encoded into a message; only that request fails."""


class _Pending:
    __slots__ = ("ends", "events", "waiters")

    def __init__(self) -> None:
        self.events: list[list[Any]] = []  # wire rows
        self.waiters: list[asyncio.Future[None]] = []
        self.ends: list[int] = []  # waiters[i]'s rows end at events[ends[i]]

    def without_unencodable(self) -> _Pending:
        """The requests whose rows encode, each alone; the others' waiters fail at once.

        Validation should make this unreachable; it is here so that one bad request can never
        fail the other requests of its group commit.
        """
        kept = _Pending()
        start = 0
        for waiter, end in zip(self.waiters, self.ends, strict=True):
            rows = self.events[start:end]
            start = end
            try:
                orjson.dumps(rows)
            except orjson.JSONEncodeError as exc:
                if not waiter.done():
                    waiter.set_exception(UnencodableEvents(str(exc)))
                continue
            kept.events.extend(rows)
            kept.waiters.append(waiter)
            kept.ends.append(len(kept.events))
        return kept


class GroupPublisher:
    def __init__(self, exchange: AbstractExchange, shards: int, clock: Clock) -> None:
        self._exchange = exchange
        self._shards = shards
        self._clock = clock
        self._pending: dict[int, _Pending] = {}
        self._busy: dict[int, int] = defaultdict(int)  # messages in flight per shard
        self._kick_scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._shard_cache: dict[tuple[int, str, str | None, str | None], int] = {}

    async def publish(self, rows: list[list[Any]]) -> None:
        """Return once every event (a wire row) is confirmed by the broker; raise if any was not."""
        loop = asyncio.get_running_loop()
        by_shard: dict[int, list[list[Any]]] = defaultdict(list)
        for row in rows:
            by_shard[self._shard_of(row[0], row[1], row[2], row[3])].append(row)
        waits = []
        for shard, shard_events in by_shard.items():
            pending = self._pending.get(shard)
            if pending is None:
                pending = self._pending[shard] = _Pending()
            pending.events.extend(shard_events)
            waiter: asyncio.Future[None] = loop.create_future()
            pending.waiters.append(waiter)
            pending.ends.append(len(pending.events))
            waits.append(waiter)
            if len(pending.events) >= MAX_EVENTS_PER_MESSAGE:
                self._send(shard)
            elif self._busy[shard] < MAX_IN_FLIGHT and not self._kick_scheduled:
                # Idle shard: send at the end of this loop iteration, with whatever else arrived in it.
                self._kick_scheduled = True
                loop.call_soon(self._send_idle)
        if len(waits) == 1:
            await waits[0]
        else:
            await asyncio.gather(*waits)

    async def publish_message(self, shard: int, message: dict[str, Any]) -> None:
        """One message of its own (a command) to ``shard``, returning once the broker confirmed it."""
        await bus.publish(self._exchange, bus.Names.shard_key(shard), message)

    def _shard_of(self, project_id: int, name: str, service: str | None, environment: str | None) -> int:
        key = (project_id, name, service, environment)
        shard = self._shard_cache.get(key)
        if shard is None:
            if len(self._shard_cache) >= SHARD_CACHE_SIZE:
                self._shard_cache.clear()
            shard = self._shard_cache[key] = messages.stream_shard(project_id, name, service, environment, self._shards)
        return shard

    def _send_idle(self) -> None:
        self._kick_scheduled = False
        for shard in list(self._pending):
            if self._busy[shard] < MAX_IN_FLIGHT:
                self._send(shard)

    def _send(self, shard: int) -> None:
        pending = self._pending.pop(shard, None)
        if pending is None or not pending.events:
            return
        self._busy[shard] += 1
        task = asyncio.create_task(self._publish_one(shard, pending))
        self._inflight.add(task)
        task.add_done_callback(functools.partial(self._sent, shard=shard))

    def _sent(self, task: asyncio.Task[None], *, shard: int) -> None:
        self._inflight.discard(task)
        self._busy[shard] -= 1
        if self._busy[shard] < MAX_IN_FLIGHT and shard in self._pending:
            self._send(shard)  # what gathered while this message was in flight

    async def _publish_one(self, shard: int, pending: _Pending) -> None:
        try:
            try:
                message = messages.events_message(pending.events, self._clock.now())
                await bus.publish(self._exchange, bus.Names.shard_key(shard), message)
            except orjson.JSONEncodeError:
                # Raised while encoding, before anything was sent: publish the others without it.
                pending = pending.without_unencodable()
                if not pending.events:
                    return
                message = messages.events_message(pending.events, self._clock.now())
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
        while self._pending or self._inflight:
            for shard in list(self._pending):
                if not self._busy[shard]:
                    self._send(shard)
            if self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
