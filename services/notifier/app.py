"""The notifier service: alerts in from RabbitMQ, into the ledger, out to Slack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiohttp import web

from heron_common import bus, messages
from heron_common.clock import Clock
from heron_common.consumer import RETRIES, Abandoned, ConsumerStatus, retry_in_place, subscription, supervise
from heron_common.logging import get_logger
from heron_common.messages import MessageError
from heron_common.outbound import GuardedSession
from heron_common.service import (
    CLOCK,
    LINK,
    NAMES,
    PG,
    REDIS,
    SETTINGS,
    STOPPING,
    background,
    base_app,
    consumers,
    sleep_or_stop,
    use_link,
    use_postgres,
    use_redis,
)
from heron_common.settings import Settings
from heron_notifier import ledger, paging
from heron_notifier.selfwatch_loop import self_watch_loop
from heron_notifier.worker import DeliveryWorker

WORKER = web.AppKey("worker", DeliveryWorker)
WAKE = web.AppKey("wake", asyncio.Event)
ALERTS_STATUS = web.AppKey("alerts_status", ConsumerStatus)
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


async def _declare_alerts_queue(channel: AbstractChannel, *, names: bus.Names) -> AbstractQueue:
    return await bus.declare_notifier_queue(channel, names)


async def _consume_alerts(app: web.Application) -> None:
    """Keep a subscription on the alerts queue; subscribe again (with backoff) whenever one ends."""
    names = app[NAMES]
    q_log = log.bind(queue=names.notifier_queue)

    def retrying(exc: BaseException, attempt: int) -> None:
        RETRIES.labels("notifier", "alerts").inc()
        q_log.warning("transient failure; retrying the alert in place", attempt=attempt, error=repr(exc))

    async def record(alerts: list[dict[str, Any]]) -> list[int]:
        settings = app[SETTINGS]
        first_delay = {
            ledger.SLACK: settings.slack_retry_schedule[0],
            ledger.WEBHOOK: settings.webhook_retry_schedule[0],
        }
        now = app[CLOCK].now()
        # Every alert already delivered, in one transaction: one commit per alert capped a burst
        # (1,000 heartbeats down at once) at a few hundred alerts a second (bench/heartbeat_alert_latency.py).
        async with app[PG].acquire() as conn, conn.transaction():
            bot = settings.slack_bot_token is not None
            created = [await ledger.record_alert(conn, alert, now, first_delay, slack_bot=bot) for alert in alerts]
            # On-call: an opened incident starts paging its service's rotation; acknowledged or
            # resolved stops it (cancelling pending pages) — in this same transaction.
            await paging.on_alerts(conn, alerts, settings, now)
            return created

    async def record_run(run: list[tuple[AbstractIncomingMessage, dict[str, Any]]], alive: Callable[[], bool]) -> None:
        if not run:
            return
        try:
            # A database outage keeps the alerts in hand and retries them, rather than spending
            # their delivery limit (twenty requeues would dead-letter good alerts).
            created = await retry_in_place(
                partial(record, [alert for _, alert in run]), stopping=app[STOPPING], alive=alive, on_retry=retrying
            )
        except Abandoned:
            raise
        except Exception:
            if len(run) > 1:  # not an outage: find the alert that fails alone, record the rest
                middle = len(run) // 2
                await record_run(run[:middle], alive)
                await record_run(run[middle:], alive)
                return
            message = run[0][0]
            # A bug, not the alert's shape: requeue; the delivery limit dead-letters it if it never succeeds.
            q_log.bind(message_id=message.message_id).exception("alert not recorded; it will be redelivered")
            await message.nack(requeue=True)
            await sleep_or_stop(app, 1.0)
            return
        for (message, alert), deliveries in zip(run, created, strict=True):
            await message.ack()
            q_log.bind(message_id=message.message_id).info("alert recorded", topic=alert["type"], deliveries=deliveries)
        app[WAKE].set()
        app[paging.PAGES_WAKE].set()

    async def process(batch: list[AbstractIncomingMessage], alive: Callable[[], bool]) -> None:
        run = []
        for message in batch:
            try:
                run.append((message, parse_alert(message.body)))
            except MessageError as exc:
                q_log.bind(message_id=message.message_id).error("poison alert dead-lettered", error=str(exc))
                await message.reject(requeue=False)
        await record_run(run, alive)

    def ended(error: BaseException | None, attempt: int) -> None:
        q_log.warning("alerts subscription ended; subscribing again", attempt=attempt, error=repr(error))

    await supervise(
        lambda: subscription(
            app[LINK],
            app[ALERTS_STATUS],
            partial(_declare_alerts_queue, names=names),
            process,
            prefetch=64,
            max_batch=64,
        ),
        stopping=app[STOPPING],
        on_end=ended,
    )


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
    use_link(app, "heron-notifier")
    app.cleanup_ctx.append(_worker_ctx)
    background(app, "deliveries", _deliver_loop)
    background(app, "delivery-retention", _retention)
    background(app, "self-watch", self_watch_loop)  # Heron watching itself (issue #14)
    paging.add_paging(app)  # on-call pages, their planner and the shift top-up (issue #11)
    app[ALERTS_STATUS] = ConsumerStatus("notifier", app[NAMES].notifier_queue, "alerts")
    consumers(app, "alerts-consumer", _consume_alerts, statuses=[app[ALERTS_STATUS]])
    return app
