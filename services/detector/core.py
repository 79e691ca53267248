"""The detector's steps, each a small coroutine that takes ``now`` and reports what it did.

The service loops in ``app.py`` call these; tests call them directly with a controlled clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as redis_asyncio
from aio_pika.abc import AbstractExchange
from prometheus_client import Counter, Gauge

from heron_common import bus, messages
from heron_common.logging import get_logger
from heron_common.messages import MessageError, TrackedEvent
from heron_common.settings import Settings
from heron_detector import store
from heron_detector.cadence import CadenceParams
from heron_detector.index import DeadlineIndex

EVENTS = Counter("heron_detector_events_total", "Events committed to Postgres")
DUPLICATES = Counter("heron_detector_duplicate_messages_total", "Redelivered messages recognised and skipped")
OPENED = Counter("heron_detector_incidents_opened_total", "Incidents opened")
WATERMARK = Gauge("heron_detector_watermark_seconds", "Newest tick time scanned, per shard", ["shard"])

SCAN_BATCH = 500


def _events_of(message: dict) -> tuple[str, list[TrackedEvent]]:
    try:
        uuid.UUID(message["id"])
        return message["id"], [TrackedEvent.from_wire(row) for row in message["events"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"malformed events message: {exc}") from exc


log = get_logger("detector")


def cadence_params(settings: Settings) -> CadenceParams:
    return CadenceParams(learning_threshold=settings.learning_threshold, min_tolerance=settings.min_tolerance)


@dataclass
class Handled:
    events: int = 0  # events committed
    duplicates: int = 0  # redelivered messages skipped
    opened: int = 0  # incidents opened by ticks
    poison: dict[int, MessageError] = field(default_factory=dict)  # index in the batch -> why


class Detector:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: redis_asyncio.Redis,
        alerts: AbstractExchange | None,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.index = DeadlineIndex(redis, settings.redis_prefix)
        self.alerts = alerts
        self.params = cadence_params(settings)
        self.settings = settings

    async def handle(self, shard: int, body: bytes, now: float) -> Handled:
        """Process one message; raises MessageError for a poison message."""
        handled = await self.handle_many(shard, [body], now)
        if handled.poison:
            raise handled.poison[0]
        return handled

    async def handle_many(self, shard: int, bodies: list[bytes], now: float) -> Handled:
        """Process messages of one shard in queue order.

        Consecutive events messages are applied in one transaction (the detector's cost is per
        transaction far more than per event); a tick ends such a run and scans alone, so it still
        sees every event queued before it. Poison messages are reported, not raised.
        """
        handled = Handled()
        run: list[tuple[str, list[TrackedEvent]]] = []
        for index, body in enumerate(bodies):
            try:
                message = messages.decode(body)
                kind = message["type"]
                if kind == messages.EVENTS:
                    run.append(_events_of(message))
                    continue
                if kind != messages.TICK:
                    raise MessageError(f"unknown message type {kind!r}")
                at = float(message["at"])
            except (MessageError, TypeError, ValueError) as exc:
                handled.poison[index] = exc if isinstance(exc, MessageError) else MessageError(str(exc))
                continue
            await self._apply(shard, run, now, handled)
            run = []
            handled.opened += await self.tick(shard, at)
        await self._apply(shard, run, now, handled)
        return handled

    async def tick(self, shard: int, at: float) -> int:
        """The shard's watermark reached ``at``: open everything overdue by then."""
        opened = 0
        while True:
            found, n = await self.scan(shard, at)
            opened += n
            if not found:
                break
        WATERMARK.labels(str(shard)).set(at)
        return opened

    async def _apply(self, shard: int, run: list[tuple[str, list[TrackedEvent]]], now: float, handled: Handled) -> None:
        if not run:
            return
        async with self.pool.acquire() as conn:
            applied = await store.apply_events_messages(conn, run, shard, self.params, now)
        DUPLICATES.inc(applied.duplicates)
        handled.duplicates += applied.duplicates
        committed = applied.events - applied.dropped
        EVENTS.inc(committed)
        handled.events += committed
        if applied.dropped:
            log.warning("events for unknown projects dropped", count=applied.dropped, shard=shard)
        await self.index.update(shard, applied.deadlines)
        await self.publish_outbox(applied.outbox_ids)

    async def scan(self, shard: int, now: float) -> tuple[bool, int]:
        """Open incidents for what is overdue on ``shard`` at ``now``. Returns (found work, opened)."""
        due = await self.index.due(shard, now, SCAN_BATCH, lambda s: store.due_from_postgres(self.pool, s))
        if not due:
            return False, 0
        async with self.pool.acquire() as conn:
            outbox_ids, corrections = await store.open_overdue(conn, due, now, self.params)
        await self.index.update(shard, corrections)
        OPENED.inc(len(outbox_ids))
        await self.publish_outbox(outbox_ids)
        return True, len(outbox_ids)

    async def publish_outbox(self, ids: list[int] | None = None) -> int:
        """Publish unsent outbox rows (these ``ids``, or any left over by a crash) and mark them sent.

        Rows are claimed with ``SKIP LOCKED`` so two detectors never publish the same row at once;
        a crash between the publish and the commit republishes it, and consumers deduplicate on
        the alert id.
        """
        if self.alerts is None or ids == []:
            return 0
        sent = 0
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, routing_key, message FROM outbox WHERE sent_at IS NULL"
                " AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))"
                " ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED",
                ids,
            )
            for row in rows:
                await bus.publish(self.alerts, row["routing_key"], row["message"])
                sent += 1
            if rows:
                await conn.execute(
                    "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
        return sent
