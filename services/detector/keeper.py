"""The dead-letter keeper: move what lands in ``P.detector.dead`` / ``P.notifier.dead`` into the
``dead_letters`` table, where an operator can list and replay it (``heron_ingest.admin``).

A message is acked only once its row is committed, so nothing is lost between the queue and the
table; storing one twice (the keeper died before acking) updates the same row. Every detector
runs a keeper: they compete for the two queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from functools import partial

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from prometheus_client import Counter

from heron_common import deadletter_store, deadletters
from heron_common.db import is_transient
from heron_common.logging import get_logger
from heron_common.service import AMQP, NAMES, PG, STOPPING, consume, sleep_or_stop

STORED = Counter("heron_dead_letters_stored_total", "Dead-lettered messages stored for inspection", ["queue"])
log = get_logger("dead-letter-keeper")


async def _store(app: web.Application, queue: str, message: AbstractIncomingMessage) -> None:
    letter = deadletters.from_delivery(
        queue, message.body, dict(message.headers or {}), message.message_id, message.routing_key
    )
    try:
        try:
            await deadletter_store.insert(app[PG], [letter])
        except Exception as exc:
            if is_transient(exc):
                raise
            # Something in the headers Postgres will not take: keep the message, lose the detail.
            log.warning("dead letter stored without its headers", queue=queue, error=str(exc))
            await deadletter_store.insert(app[PG], [dataclasses.replace(letter, headers={})])
    except Exception:
        log.exception("could not store a dead letter; it stays queued", queue=queue)
        await message.nack(requeue=True)
        await asyncio.sleep(1.0)  # Postgres is down: do not spin on the queue
        return
    await message.ack()
    STORED.labels(queue).inc()
    log.warning("dead letter stored", queue=queue, reason=letter.reason, message_id=letter.message_id)


async def keep(app: web.Application) -> None:
    """Keep consuming until shutdown; a lost channel is reopened (a dead letter waits, never lost)."""
    while not app[STOPPING].is_set():
        try:
            await _keep(app)
        except Exception:
            log.exception("dead-letter keeper failed; restarting")
        if await sleep_or_stop(app, 1.0):
            return


async def _keep(app: web.Application) -> None:
    names = app[NAMES]
    channel = await app[AMQP].channel()
    await channel.set_qos(prefetch_count=16)
    try:
        queues = [await channel.get_queue(q, ensure=False) for q in (names.detector_dead, names.notifier_dead)]
        await asyncio.gather(*(consume(q, partial(_store, app, q.name)) for q in queues))
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
