"""The notifier service: alerts in from RabbitMQ, into the ledger, out to Slack."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

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
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=settings.delivery_timeout)
    app[WORKER] = DeliveryWorker(app[PG], app[REDIS], http, settings, app[CLOCK])
    app[WAKE] = asyncio.Event()
    yield
    await http.close()


async def _consume_alerts(app: web.Application) -> None:
    channel = await app[AMQP].channel()
    await channel.set_qos(prefetch_count=64)
    queue = await bus.declare_notifier_queue(channel, app[NAMES])
    q_log = log.bind(queue=queue.name)

    async def process(message: AbstractIncomingMessage) -> None:
        m_log = q_log.bind(message_id=message.message_id)
        try:
            alert = messages.decode(message.body)
            created = await ledger.record_alert(
                app[PG], alert, app[CLOCK].now() + app[SETTINGS].slack_retry_schedule[0]
            )
        except (MessageError, KeyError, TypeError, ValueError) as exc:
            m_log.error("poison alert dead-lettered", error=str(exc))
            await message.reject(requeue=False)
            return
        except Exception:
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
    worker = app[WORKER]
    wake = app[WAKE]
    interval = app[SETTINGS].delivery_poll_interval
    while not app[STOPPING].is_set():
        try:
            found = await worker.step()
        except Exception:
            log.exception("delivery step failed")
            found = False
        if found:
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=interval)


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = base_app(settings, clock)
    use_postgres(app)
    use_redis(app)
    use_rabbitmq(app, "heron-notifier")
    app.cleanup_ctx.append(_worker_ctx)
    background(app, "deliveries", _deliver_loop)
    consumers(app, "alerts-consumer", _consume_alerts)
    return app
