"""The dead-letter keeper: move what lands in ``P.detector.dead`` / ``P.notifier.dead`` into the
``dead_letters`` table, where an operator can list and replay it (``heron_ingest.admin``).

A message is acked only once its row is committed, so nothing is lost between the queue and the
table; storing one twice (the keeper died before acking) updates the same row. Every detector
runs a keeper: they compete for the two queues.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import partial

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiohttp import web
from prometheus_client import Counter

from heron_common import bus, deadletter_store, deadletters
from heron_common.consumer import RETRIES, Abandoned, ConsumerStatus, retry_in_place, subscription, supervise
from heron_common.db import is_transient
from heron_common.logging import get_logger
from heron_common.service import LINK, NAMES, PG, STOPPING, sleep_or_stop

STORED = Counter("heron_dead_letters_stored_total", "Dead-lettered messages stored for inspection", ["queue"])
log = get_logger("dead-letter-keeper")


async def _store(app: web.Application, queue: str, message: AbstractIncomingMessage) -> None:
    letter = deadletters.from_delivery(
        queue, message.body, dict(message.headers or {}), message.message_id, message.routing_key
    )
    try:
        await deadletter_store.insert(app[PG], [letter])
    except Exception as exc:
        if is_transient(exc):
            raise  # retried in place: the letter stays in hand until Postgres is back
        # Something in the headers Postgres will not take: keep the message, lose the detail.
        log.warning("dead letter stored without its headers", queue=queue, error=str(exc))
        await deadletter_store.insert(app[PG], [dataclasses.replace(letter, headers={})])
    await message.ack()
    STORED.labels(queue).inc()
    log.warning("dead letter stored", queue=queue, reason=letter.reason, message_id=letter.message_id)


async def _declare(channel: AbstractChannel, *, name: str, names: bus.Names) -> AbstractQueue:
    await bus.declare_dead_letters(channel, names)
    return await channel.get_queue(name, ensure=True)


async def _keep_one(app: web.Application, status: ConsumerStatus) -> None:
    queue = status.queue
    k_log = log.bind(queue=queue)

    def retrying(exc: BaseException, attempt: int) -> None:
        RETRIES.labels("detector", "dead-letters").inc()
        k_log.warning("could not store a dead letter; retrying in place", attempt=attempt, error=repr(exc))

    async def handle(batch: list[AbstractIncomingMessage], alive: Callable[[], bool]) -> None:
        for message in batch:
            try:
                await retry_in_place(
                    partial(_store, app, queue, message), stopping=app[STOPPING], alive=alive, on_retry=retrying
                )
            except Abandoned:
                raise
            except Exception:
                k_log.exception("dead letter not stored; it stays queued")
                await message.nack(requeue=True)
                await sleep_or_stop(app, 1.0)

    def ended(error: BaseException | None, attempt: int) -> None:
        k_log.warning("dead-letter subscription ended; subscribing again", attempt=attempt, error=repr(error))

    await supervise(
        lambda: subscription(
            app[LINK], status, partial(_declare, name=queue, names=app[NAMES]), handle, prefetch=16, max_batch=16
        ),
        stopping=app[STOPPING],
        on_end=ended,
    )


def statuses(names: bus.Names) -> list[ConsumerStatus]:
    return [
        ConsumerStatus("detector", names.detector_dead, "dead letters (detector)"),
        ConsumerStatus("detector", names.notifier_dead, "dead letters (notifier)"),
    ]


def keepers(app: web.Application, keep: list[ConsumerStatus]) -> list[Callable[[web.Application], Awaitable[None]]]:
    """One consumer loop per dead-letter queue (registered with ``service.consumers``)."""
    return [partial(_keep_one, status=s) for s in keep]
