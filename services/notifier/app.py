"""The notifier service: alerts in from RabbitMQ, into the ledger, out to Slack."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from heron_common import bus, messages
from heron_common.clock import Clock
from heron_common.logging import get_logger
from heron_common.messages import MessageError
from heron_common.outbound import GuardedSession
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
    consume,
    consumers,
    sleep_or_stop,
    use_postgres,
    use_rabbitmq,
    use_redis,
)
from heron_common.settings import Settings
from heron_notifier import ledger
from heron_notifier.worker import DeliveryWorker

WORKER = web.AppKey("worker", DeliveryWorker)
WAKE = web.AppKey("wake", asyncio.Event)
log = get_logger("notifier")


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # As many connections as attempts in flight: a smaller pool would queue requests, and the wait
    # would count against each request's timeout.
    http = GuardedSession(
        settings.outbound_allow_cidrs, timeout=settings.delivery_timeout, limit=settings.delivery_concurrency
    )
    app[WORKER] = DeliveryWorker(app[PG], app[REDIS], http, settings, app[CLOCK])
    app[WAKE] = asyncio.Event()
    yield
    await http.close()


def parse_alert(body: bytes) -> dict[str, Any]:
    """An alert envelope with what the ledger needs, or MessageError."""
    alert = messages.decode(body)
    try:
        uuid.UUID(alert["id"])
        int(alert["data"]["project"]["id"])
        float(alert["at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError(f"alert lacks {exc}") from exc
    return alert


async def _consume_alerts(app: web.Application) -> None:
    channel = await app[AMQP].channel()
    await channel.set_qos(prefetch_count=64)
    queue = await bus.declare_notifier_queue(channel, app[NAMES])
    q_log = log.bind(queue=queue.name)

    async def process(message: AbstractIncomingMessage) -> None:
        m_log = q_log.bind(message_id=message.message_id)
        try:
            alert = parse_alert(message.body)
        except MessageError as exc:
            m_log.error("poison alert dead-lettered", error=str(exc))
            await message.reject(requeue=False)
            return
        settings = app[SETTINGS]
        first_delay = {
            ledger.SLACK: settings.slack_retry_schedule[0],
            ledger.WEBHOOK: settings.webhook_retry_schedule[0],
        }
        try:
            async with app[PG].acquire() as conn, conn.transaction():
                created = await ledger.record_alert(conn, alert, app[CLOCK].now(), first_delay)
        except Exception:
            # Not the message's fault (the database, a bug): requeue; the delivery limit
            # dead-letters it if it can never succeed.
            m_log.exception("alert not recorded; it will be redelivered")
            await message.nack(requeue=True)
            await asyncio.sleep(1.0)
            return
        await message.ack()
        m_log.info("alert recorded", topic=alert["type"], deliveries=created)
        app[WAKE].set()

    try:
        await consume(queue, process)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def _deliver_loop(app: web.Application) -> None:
    while True:
        try:
            await app[WORKER].run(app[STOPPING], app[WAKE], app[SETTINGS].delivery_poll_interval)
            return
        except Exception:
            log.exception("delivery loop failed; restarting it")
            if await sleep_or_stop(app, 1.0):
                return


async def _retention(app: web.Application) -> None:
    """Drop delivery attempts (and finished deliveries) older than HERON_DELIVERY_RETENTION_DAYS, hourly."""
    while True:
        try:
            await ledger.prune(app[PG], app[SETTINGS].delivery_retention_days)
        except Exception:
            log.exception("delivery retention failed")
        if await sleep_or_stop(app, 3600.0):
            return


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = base_app(settings, clock)
    use_postgres(app)
    use_redis(app)
    use_rabbitmq(app, "heron-notifier")
    app.cleanup_ctx.append(_worker_ctx)
    background(app, "deliveries", _deliver_loop)
    background(app, "delivery-retention", _retention)
    consumers(app, "alerts-consumer", _consume_alerts)
    return app
