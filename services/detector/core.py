"""The detector's steps, each a small coroutine that takes ``now`` and reports what it did.

The service loops in ``app.py`` call these; tests call them directly with a controlled clock.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field

import asyncpg
import orjson
import redis.asyncio as redis_asyncio
from aio_pika.abc import AbstractExchange
from prometheus_client import Counter, Gauge

from heron_common import bus, messages
from heron_common.blind import Window
from heron_common.db import is_transient
from heron_common.deadletters import DeadLetter, project_of
from heron_common.logging import get_logger
from heron_common.messages import MessageError, TrackedEvent
from heron_common.monitors.event import params_from
from heron_common.monitors.rate import RateParams
from heron_common.settings import Settings
from heron_detector import commands, declared, kinds, observations, screen, store
from heron_detector.blindness import windows_since
from heron_detector.index import DeadlineIndex

EVENTS = Counter("heron_detector_events_total", "Events committed to Postgres")
DUPLICATES = Counter("heron_detector_duplicate_messages_total", "Redelivered messages recognised and skipped")
REPEATED_EVENTS = Counter(
    "heron_detector_repeated_events_total", "Events whose idempotency key was seen before (client retries), skipped"
)
OPENED = Counter("heron_detector_incidents_opened_total", "Incidents opened")
# Every alert the detector publishes, by routing key (incident.opened.<kind>, heartbeat.down, …):
# incidents by kind, and what the notifier is being handed.
ALERTS_PUBLISHED = Counter(
    "heron_detector_alerts_published_total", "Alerts published from the outbox, by routing key", ["routing_key"]
)
WATERMARK = Gauge("heron_detector_watermark_seconds", "Newest tick time scanned, per shard", ["shard"])
POISON_MESSAGES = Counter("heron_detector_poison_messages_total", "Messages that could not be applied, dead-lettered")
POISON_ROWS = Counter(
    "heron_detector_poison_rows_total", "Event rows Postgres cannot store, dead-lettered; their messages' rest applied"
)

SCAN_BATCH = 500
CHANGES_TIMEOUT = 2.0  # seconds a change notice may hold the shard up (the broker is slow or away)


@dataclass
class _Pending:
    """An events message waiting in a run: its place in the batch, its events, its refused rows."""

    index: int
    message_id: str  # normalised (str of the UUID), as processed_messages stores it
    events: list[TrackedEvent]
    bad: list[screen.RejectedRow]
    letter: DeadLetter | None  # the refused rows as a dead letter, stored with the message


def _encode_rows(envelope: dict) -> bytes:
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: the stdlib goes deeper
        pass
    try:
        return json.dumps(envelope).encode()
    except (RecursionError, ValueError) as exc:
        # Rows that cannot even be written back out: dead-letter the whole message as received.
        raise MessageError(f"event rows cannot be re-encoded for the dead-letter queue: {exc}") from exc


log = get_logger("detector")
_ = declared  # the declared kinds register themselves on import


def rate_params(settings: Settings) -> RateParams:
    """The event streams' model parameters (heron_common.monitors.event.params_from)."""
    return params_from(settings)


@dataclass
class Handled:
    events: int = 0  # events committed
    duplicates: int = 0  # redelivered messages skipped
    opened: int = 0  # incidents opened by ticks
    poison: dict[int, MessageError] = field(default_factory=dict)  # index in the batch -> why
    rejected_rows: int = 0  # rows refused by the screen and dead-lettered (their messages acked)


class Detector:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: redis_asyncio.Redis,
        alerts: AbstractExchange | None,
        settings: Settings,
        changes: AbstractExchange | None = None,
    ) -> None:
        self.pool = pool
        self.index = DeadlineIndex(redis, settings.redis_prefix)
        self.alerts = alerts
        self.changes = changes  # live views' monitor.changed notices (bus.publish_changes)
        self.params = rate_params(settings)
        self.settings = settings
        self.names = bus.Names(settings.amqp_prefix)
        # Shards whose Redis index missed an update after a commit (Redis was down then).
        self._stale_index: set[int] = set()

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
        sees every event queued before it. Poison messages are reported, not raised: only
        transient errors (``is_transient``: an outage, worth retrying the batch) escape.
        """
        handled = Handled()
        run: list[_Pending] = []
        # Observations (pings, trigger calls) touch declared monitors, never event streams, so
        # they gather in a run of their own beside the events run; ticks and commands end both.
        observed: list[tuple[int, dict]] = []
        for index, body in enumerate(bodies):
            try:
                message = messages.decode(body)
                kind = message["type"]
                if kind == messages.EVENTS:
                    run.append(self._pending(index, message, shard))
                    continue
                if kind == messages.OBSERVATION:
                    observed.append((index, message))
                    continue
                if kind == messages.OBSERVATIONS:  # a prober's results, many per message
                    observed.extend((index, m) for m in messages.expand_observations(message))
                    continue
                if kind not in (messages.TICK, messages.COMMAND):
                    raise MessageError(f"unknown message type {kind!r}")
                at = float(message["at"])
            except (MessageError, TypeError, ValueError, KeyError, OverflowError) as exc:
                self._poison(handled, index, exc)
                continue
            await self._apply(shard, run, now, handled)
            await self._observe(shard, observed, now, handled)
            run, observed = [], []
            try:
                if kind == messages.COMMAND:
                    await self.command(shard, message, now)
                else:
                    handled.opened += await self.tick(shard, at)
            except Exception as exc:
                if is_transient(exc):
                    raise
                # The next tick comes within a scan interval; a tick that cannot be scanned must
                # not hold the shard's events up.
                self._poison(handled, index, exc)
        await self._apply(shard, run, now, handled)
        await self._observe(shard, observed, now, handled)
        return handled

    def _pending(self, index: int, message: dict, shard: int) -> _Pending:
        raw_id = message.get("id")
        try:
            message_id = str(uuid.UUID(raw_id)) if isinstance(raw_id, str) else None
        except ValueError:
            message_id = None
        if message_id is None:
            raise MessageError(f"malformed events message: id {raw_id!r} is not a UUID")
        events, bad = screen.screen_rows(message.get("events"))
        letter = None
        if bad:
            # The refused rows as an events message of their own: replaying it sends them back
            # to this shard (after whatever made them unstorable is fixed).
            letter_id = str(uuid.uuid5(uuid.UUID(message_id), "refused-rows"))
            body = _encode_rows(
                {
                    "type": messages.EVENTS,
                    "v": messages.SCHEMA_VERSION,
                    "id": letter_id,
                    "at": message.get("at"),
                    "events": [r.row for r in bad],
                }
            )
            letter = DeadLetter(
                queue=self.names.detector_dead,
                exchange=self.names.ingest_exchange,
                routing_key=self.names.shard_key(shard),
                reason="refused by the detector: " + screen.summarise(bad),
                message_id=letter_id,
                project_id=project_of(body),
                body=body,
                headers={"x-heron-source-message-id": message_id, "x-heron-rows": [r.index for r in bad]},
                deaths=1,
                dead_at=None,
            )
        return _Pending(index, message_id, events, bad, letter)

    def _poison(self, handled: Handled, index: int, exc: BaseException) -> None:
        error = exc if isinstance(exc, MessageError) else MessageError(f"{type(exc).__name__}: {exc}")
        handled.poison[index] = error
        POISON_MESSAGES.inc()
        log.warning("poison message", index=index, error=str(error)[:500])

    def context(self, conn: asyncpg.Connection, by: str | None = None) -> kinds.Context:
        async def windows(since: float) -> list[Window]:
            return await windows_since(conn, since)

        return kinds.Context(self.params, windows, by)

    async def _observe(self, shard: int, run: list[tuple[int, dict]], now: float, handled: Handled) -> None:
        """Apply a run of observations (pings, trigger calls) in one transaction, through each
        monitor's kind; like events, a run that fails for a reason other than an outage is split
        until only the observations that fail alone are poison."""
        if not run:
            return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                ctx = self.context(conn)
                outcomes = [(message, await observations.apply(conn, message, now, ctx)) for _, message in run]
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(run) == 1:
                self._poison(handled, run[0][0], exc)
                return
            middle = len(run) // 2
            await self._observe(shard, run[:middle], now, handled)
            await self._observe(shard, run[middle:], now, handled)
            return
        deadlines = {int(m["monitor_id"]): o.deadline for m, o in outcomes if o is not None}
        # Every applied observation changed its monitor (a ping's last seen, a probe's result).
        changed = {(int(m["project_id"]), int(m["monitor_id"])) for m, o in outcomes if o is not None}
        await self._after_commit(
            shard, deadlines, [i for _, o in outcomes if o is not None for i in o.outbox_ids], changed, now
        )

    async def _after_commit(
        self,
        shard: int,
        deadlines: dict[int, float | None],
        outbox_ids: list[int],
        changed: set[tuple[int, int]] | None = None,
        now: float = 0.0,
    ) -> None:
        """Index the new deadlines, publish the alerts of a committed change and tell live views
        which monitors (``(project_id, monitor_id)``) changed.

        Committed already: retrying the messages would only find them processed, so nothing here
        may raise. A deadline the index missed is restored by rebuilding the shard's index from
        Postgres before its next scan; an unsent alert by the outbox relay; a lost change notice
        by the live view's next refresh.
        """
        try:
            await self.index.update(shard, deadlines)
        except Exception as exc:
            self._stale_index.add(shard)
            log.warning("deadline index not updated; it is rebuilt before the next scan", shard=shard, error=str(exc))
        try:
            await self.publish_outbox(outbox_ids)
        except Exception as exc:
            log.warning("alerts not published yet; the outbox relay will", shard=shard, error=str(exc))
        await self.announce(changed, now)

    async def announce(self, changed: set[tuple[int, int]] | None, now: float) -> None:
        """Publish ``monitor.changed`` notices for live views (best effort: never raises, and
        never holds the shard up for long while the broker is slow)."""
        if self.changes is None or not changed:
            return
        try:
            async with asyncio.timeout(CHANGES_TIMEOUT):
                await bus.publish_changes(self.changes, self.names, changed, now)
        except Exception as exc:
            log.info("change notices not published; live views catch up on their next refresh", error=str(exc))

    async def command(self, shard: int, message: dict, now: float) -> None:
        """Apply a change asked for through the API (``commands.py``), in queue order."""
        async with self.pool.acquire() as conn:
            done = await commands.apply(conn, message, now, self.params, self.context(conn, message.get("by")))
        # A command that did something (a deadline set or removed, an alert) changed its monitor.
        changed = None
        if done.deadlines or done.outbox_ids:
            changed = {(int(message["project_id"]), int(message["monitor_id"]))}
        await self._after_commit(shard, done.deadlines, done.outbox_ids, changed, now)

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

    async def _apply(self, shard: int, run: list[_Pending], now: float, handled: Handled) -> None:
        """Apply a run in one transaction; if it fails for a reason other than an outage, apply
        its halves, down to single messages, so only a message that fails alone is poison.

        Bisection is safe to repeat: a failed transaction left nothing, and what a half committed
        is skipped by id if seen again. A run of n messages with one bad costs ~2·log2(n)
        transactions, once.
        """
        if not run:
            return
        rejected = {p.message_id: p.letter for p in run if p.letter is not None}
        try:
            async with self.pool.acquire() as conn:
                applied = await store.apply_events_messages(
                    conn, [(p.message_id, p.events) for p in run], shard, self.params, now, rejected
                )
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(run) == 1:
                self._poison(handled, run[0].index, exc)
                return
            middle = len(run) // 2
            await self._apply(shard, run[:middle], now, handled)
            await self._apply(shard, run[middle:], now, handled)
            return
        DUPLICATES.inc(applied.duplicates)
        handled.duplicates += applied.duplicates
        REPEATED_EVENTS.inc(applied.repeated_events)
        committed = applied.events - applied.dropped
        EVENTS.inc(committed)
        handled.events += committed
        if applied.rejected:
            refused = {p.message_id: len(p.bad) for p in run}
            rows = sum(refused[m] for m in applied.rejected)
            POISON_ROWS.inc(rows)
            handled.rejected_rows += rows
            log.warning("event rows Postgres cannot store dead-lettered", rows=rows, shard=shard)
        if applied.dropped:
            log.warning("events for unknown projects dropped", count=applied.dropped, shard=shard)
        await self._after_commit(shard, applied.deadlines, applied.outbox_ids, applied.changed, now)

    async def scan(self, shard: int, now: float) -> tuple[bool, int]:
        """Open incidents for what is overdue on ``shard`` at ``now``. Returns (found work, opened)."""
        if shard in self._stale_index:
            await self.index.rebuild(shard, await store.due_from_postgres(self.pool, shard))
            self._stale_index.discard(shard)
        due = await self.index.due(shard, now, SCAN_BATCH, lambda s: store.due_from_postgres(self.pool, s))
        if not due:
            return False, 0
        changed: set[tuple[int, int]] = set()
        async with self.pool.acquire() as conn:
            outbox_ids, corrections, opened = await store.open_overdue(conn, due, now, self.params, changed)
        await self.index.update(shard, corrections)
        OPENED.inc(opened)
        await self.publish_outbox(outbox_ids)
        await self.announce(changed, now)
        return True, opened

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
                ALERTS_PUBLISHED.labels(row["routing_key"]).inc()
                sent += 1
            if rows:
                await conn.execute(
                    "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
        return sent
