"""Consumers that come back by themselves, and work retried in place through an outage.

A *subscription* is one life of a consumer: a channel on the link's current connection, the
queue declared again (idempotent; the broker may have lost it), ``basic.consume``, then batches
handed to the handler until the channel closes (connection lost, broker restarted) or the broker
cancels the consumer (a quorum queue does on a leader change or when the queue is deleted). The
caller's loop starts the next subscription after a backoff; nothing depends on a library
restoring state behind our back.

Each subscription reports whether it is subscribed (``ConsumerStatus``), which feeds ``/readyz``
and the ``heron_consumer_up`` gauge: a process that should be consuming a queue and is not says so.
A consumer that stays unsubscribed while the broker is reachable (``stuck_consumers``) fails
``/healthz`` too, so an orchestrator restarts the process: the loop resubscribes by itself after
any outage, so a long gap with the broker up means something the loop cannot mend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from prometheus_client import Counter, Gauge

from heron_common.backoff import delay
from heron_common.db import is_transient
from heron_common.link import Link

T = TypeVar("T")

CONSUMER_UP = Gauge(
    "heron_consumer_up", "1 while this process is subscribed to a queue it should consume", ["service", "queue"]
)
RETRIES = Counter(
    "heron_transient_retries_total", "Work retried in place after a transient failure (an outage)", ["service", "what"]
)


@dataclass
class ConsumerStatus:
    service: str
    queue: str
    label: str  # how /readyz names it: "shard 3", "alerts"
    subscribed: bool = False
    ever_subscribed: bool = False
    since: float = field(default_factory=time.monotonic)  # when ``subscribed`` last changed

    def __post_init__(self) -> None:
        CONSUMER_UP.labels(self.service, self.queue).set(0)

    def set(self, subscribed: bool, now: float | None = None) -> None:
        if subscribed != self.subscribed:
            self.since = time.monotonic() if now is None else now
        self.subscribed = subscribed
        self.ever_subscribed = self.ever_subscribed or subscribed
        CONSUMER_UP.labels(self.service, self.queue).set(1 if subscribed else 0)


def stuck_consumers(
    statuses: Iterable[ConsumerStatus], link_up_since: float | None, now: float, bound: float
) -> list[str]:
    """Consumers unsubscribed for ``bound`` seconds during which the broker link was up, as
    ``/healthz`` names them. While the link is down nothing is stuck: every consumer resubscribes
    once it is back, and restarting the process would not bring the broker back sooner."""
    if link_up_since is None:
        return []
    return [
        f"{s.label} not subscribed for {now - max(s.since, link_up_since):.0f} s while the broker is reachable"
        for s in statuses
        if not s.subscribed and now - max(s.since, link_up_since) >= bound
    ]


class Abandoned(Exception):
    """Work given up because the service is stopping or its channel closed: the messages it
    held return to the queue by themselves."""


async def retry_in_place(
    work: Callable[[], Awaitable[T]],
    *,
    stopping: asyncio.Event,
    alive: Callable[[], bool],
    on_retry: Callable[[BaseException, int], None],
) -> T:
    """Run ``work`` until it succeeds, retrying transient failures (``is_transient``) with capped
    backoff. Non-transient errors are raised at once (the caller's poison path).

    An outage must not count against the messages' delivery limit: the batch stays in hand
    (unacked) and is tried again, rather than being requeued and redelivered twenty times.
    Raises :class:`Abandoned` if the service begins stopping or ``alive()`` turns False.
    """
    attempt = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            if not is_transient(exc):
                raise
            on_retry(exc, attempt)
        if not alive():
            raise Abandoned("channel closed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay(attempt))
        if stopping.is_set():
            raise Abandoned("stopping")
        if not alive():
            raise Abandoned("channel closed")
        attempt += 1


class ConsumerLost(ConnectionError):
    """The channel closed or the broker cancelled the consumer; subscribe again."""


Handler = Callable[[list[AbstractIncomingMessage], Callable[[], bool]], Awaitable[None]]


async def subscription(
    link: Link,
    status: ConsumerStatus,
    declare: Callable[[AbstractChannel], Awaitable[AbstractQueue]],
    handle: Handler,
    *,
    prefetch: int,
    max_batch: int,
) -> None:
    """One subscription (see the module's docstring). Returns or raises when it ends; a
    cancellation lands between batches, after the batch in hand is finished."""
    connection = await link.wait()
    channel = await connection.channel()
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_lost(reason: str) -> Callable[..., None]:
        def callback(*_: Any) -> None:
            if not lost.done():
                lost.set_result(reason)

        return callback

    try:
        channel.close_callbacks.add(on_lost("channel closed"))
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(on_lost("consumer cancelled by the broker"))
        await channel.set_qos(prefetch_count=prefetch)
        queue = await declare(channel)
        buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(buffer.put)
        status.set(True)

        def alive() -> bool:
            return not lost.done() and not channel.is_closed

        while True:
            get = asyncio.ensure_future(buffer.get())
            either: set[asyncio.Future[Any]] = {get, lost}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            if not get.done() or get.cancelled():
                raise ConsumerLost(lost.result())
            batch = [get.result()]
            while len(batch) < max_batch and not buffer.empty():
                batch.append(buffer.get_nowait())
            task = asyncio.ensure_future(handle(batch, alive))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                with contextlib.suppress(Abandoned):
                    await task
                raise
            except Abandoned:
                if lost.done():
                    raise ConsumerLost(lost.result()) from None
                return
    finally:
        status.set(False)
        if not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()


async def supervise(
    run_once: Callable[[], Awaitable[None]],
    *,
    stopping: asyncio.Event,
    on_end: Callable[[BaseException | None, int], None],
) -> None:
    """Run ``run_once`` (a subscription) again and again until the service stops, backing off
    between lives; a life that lasted a while (it was an outage, not a crash loop) starts the
    backoff afresh."""
    loop = asyncio.get_running_loop()
    attempt = 0
    while not stopping.is_set():
        started = loop.time()
        try:
            await run_once()
            error: BaseException | None = None
        except Exception as exc:
            error = exc
        if stopping.is_set():
            return
        attempt = 0 if loop.time() - started > 30.0 else attempt + 1
        on_end(error, attempt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay(attempt))
