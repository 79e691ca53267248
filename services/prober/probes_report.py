"""Probe results to the detector, gathered per shard (group commit, as ingest does for events).

One confirmed publish per result would cap a prober near the broker's confirm rate (~1,400
messages/s on the development machine, whatever the concurrency). Here an idle shard's results go
out at the end of the event-loop iteration; while two messages of a shard await their confirms,
its results gather into the next ``observations`` message, sent as a confirm comes back. Batches
grow with load by themselves, and an idle prober never waits for a timer.

A result is never waited on by its probe: the slot frees as soon as the verdict is in. A publish
that fails drops its results (counted in ``heron_prober_results_unreported_total``): the next
run of each probe reports again, and the detector treats a gap as unobserved time.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from aio_pika.abc import AbstractExchange
from prometheus_client import Counter, Histogram

from heron_common import bus, messages
from heron_common.clock import Clock
from heron_common.logging import get_logger

log = get_logger("prober")

UNREPORTED = Counter("heron_prober_results_unreported_total", "Probe results whose publish failed (dropped)")
REPORTED = Counter("heron_prober_results_reported_total", "Probe results confirmed by the broker")
REPORT = Histogram(
    "heron_prober_report_seconds",
    "Publishing a message of results until the broker confirmed it",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
BATCH = Histogram("heron_prober_report_results", "Results per published message", buckets=(1, 5, 20, 100, 500))

MAX_IN_FLIGHT = 2  # messages awaiting their confirm per shard (one channel keeps them in order)
MAX_ROWS = 500  # results in one message


class Reporter:
    def __init__(self, exchange: AbstractExchange, clock: Clock) -> None:
        self._exchange = exchange
        self._clock = clock
        self._pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self._busy: dict[int, int] = defaultdict(int)
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._warned_at = 0.0

    def add(self, shard: int, monitor_id: int, project_id: int, at: float, payload: dict[str, Any]) -> None:
        """Queue one result for the detector; sent at the end of this loop iteration or after the
        shard's message in flight is confirmed."""
        self._pending[shard].append({"monitor_id": monitor_id, "project_id": project_id, "at": at, "payload": payload})
        self._idle.clear()
        if self._busy[shard] < MAX_IN_FLIGHT and not self._kick_scheduled:
            self._kick_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_idle)

    def _send_idle(self) -> None:
        self._kick_scheduled = False
        for shard in list(self._pending):
            while self._pending.get(shard) and self._busy[shard] < MAX_IN_FLIGHT:
                self._send(shard)

    def _send(self, shard: int) -> None:
        rows = self._pending[shard]
        batch, rest = rows[:MAX_ROWS], rows[MAX_ROWS:]
        if rest:
            self._pending[shard] = rest
        else:
            del self._pending[shard]
        self._busy[shard] += 1
        task = asyncio.create_task(self._publish(shard, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, shard: int, rows: list[dict[str, Any]]) -> None:
        try:
            BATCH.observe(len(rows))
            with REPORT.time():
                message = messages.observations_message(rows, self._clock.now())
                await bus.publish(self._exchange, bus.Names.shard_key(shard), message)
            REPORTED.inc(len(rows))
        except Exception as exc:
            UNREPORTED.inc(len(rows))
            now = time.monotonic()
            if now - self._warned_at > 10.0:  # one line per 10 s, not one per message
                self._warned_at = now
                log.warning("probe results not reported (dropped)", results=len(rows), error=str(exc)[:300])
        finally:
            self._busy[shard] -= 1
            if self._pending.get(shard):
                self._send(shard)
            elif not self._pending and not any(self._busy.values()):
                self._idle.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout``) until every queued result is published or dropped."""
        if self._pending:
            self._send_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("probe results still unconfirmed at shutdown", pending=sum(map(len, self._pending.values())))
