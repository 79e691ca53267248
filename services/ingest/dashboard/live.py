"""``GET /dashboard/p/{project_id}/events``: server-sent events, fed from RabbitMQ, so a page sees a
monitor go down, get acknowledged or recover within a moment, without reloading.

Each stream binds its own exclusive, auto-delete queue to the alerts exchange (``#``: every
``incident.*``, ``heartbeat.*``, ``trigger.*`` and ``notice.*`` alert the detector and notifier
publish) and forwards the alerts of its project (``views.alert_summary``) as ``alert`` events. The
same queue is bound to the changes exchange with its project's key (``project.<id>``): the
``monitor.changed`` notices the detector publishes after every committed state change (a flip, a
ping, a probe result, a command) and ingest after creating a monitor, forwarded as ``change``
events, so a page shows a heartbeat going late or a monitor being paused as soon as it happens,
not only the changes that alert someone. The queue is deleted
when the browser goes away (noticed within a second) and, failing that, with the connection;
it lives on the ingest's own broker connection, so nothing here touches the publishing path.
Streams end when the process shuts down (browsers reconnect by themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from heron_common import bus, messages
from heron_common.logging import get_logger
from heron_common.service import AMQP, NAMES, STOPPING, error_response, rabbitmq_up
from heron_common.views import alert_summary
from heron_ingest.dashboard.core import DASHBOARD, SignIn, scope, viewer, with_headers
from heron_ingest.validation import InputError

MAX_STREAMS = 200  # per process; each holds a channel and a queue
INBOX = 100  # alerts waiting to be written to one browser; beyond, the newest are dropped
CHECK = 1.0  # how often a quiet stream looks whether its browser is still there
KEEPALIVE = 15.0  # a comment line now and then keeps proxies from closing a quiet stream
SETUP_TIMEOUT = 5.0
log = get_logger("dashboard")


async def events(request: web.Request) -> web.StreamResponse:
    try:
        session = await viewer(request)
        project = await scope(request, session)
    except SignIn:
        return error_response(401, "signed_out", "the session ended; sign in again")
    except InputError as exc:
        return error_response(exc.status, exc.code, exc.message)
    config = request.app[DASHBOARD]
    if config.streams >= MAX_STREAMS:
        return error_response(503, "too_many_streams", "too many live views are open; this page still works")
    if not rabbitmq_up(request.app):
        return error_response(503, "unavailable", "live updates are unavailable right now; retrying")
    config.streams += 1
    try:
        return await _stream(request, project.id)
    finally:
        config.streams -= 1


async def _stream(request: web.Request, project_id: int) -> web.StreamResponse:
    inbox: asyncio.Queue[tuple[bytes, dict[str, Any]]] = asyncio.Queue(maxsize=INBOX)

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            decoded = messages.decode(message.body)
        except messages.MessageError:
            return
        change = _change(decoded, project_id)
        if change is not None:
            entry = (b"change", change)
        else:
            found = alert_summary(decoded)
            if found is None or found[0] != project_id:
                return
            entry = (b"alert", found[1])
        with contextlib.suppress(asyncio.QueueFull):
            inbox.put_nowait(entry)

    names = request.app[NAMES]
    config = request.app[DASHBOARD]
    queue_name = f"{names.prefix}.dashboard.{secrets.token_hex(8)}"
    channel = None
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            channel = await request.app[AMQP].channel()
            exchange = await bus.declare_alerts(channel, names)
            queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
            await queue.bind(exchange, "#")
            changes = await bus.declare_changes(channel, names)
            await queue.bind(changes, names.changes_key(project_id))
            consumer_tag = await queue.consume(on_message, no_ack=True)
    except Exception as exc:
        log.warning("live stream not started", error=str(exc) or type(exc).__name__)
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()
        return error_response(503, "unavailable", "live updates are unavailable right now; retrying")
    config.queues.add(queue_name)
    response = with_headers(
        web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
    )
    try:
        await response.prepare(request)
        # Bound before the first byte: once the browser sees the stream open, nothing is missed.
        await response.write(b"retry: 3000\n: live\n\n")
        await _forward(request, response, inbox)
    except ConnectionResetError:
        pass  # the browser went away mid-write
    finally:
        config.queues.discard(queue_name)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SETUP_TIMEOUT):
                await queue.cancel(consumer_tag)  # first, so the broker has no consumer to cancel
                await queue.delete(if_unused=False, if_empty=False)
                await channel.close()
    return response


def _change(message: Any, project_id: int) -> dict[str, Any] | None:
    """What a ``change`` event says of a ``monitor.changed`` notice of ``project_id``, else None."""
    if not isinstance(message, dict) or message.get("type") != messages.CHANGED:
        return None
    data = message.get("data")
    project = data.get("project") if isinstance(data, dict) else None
    if not isinstance(project, dict) or project.get("id") != project_id:
        return None
    ids = data.get("monitor_ids") if isinstance(data, dict) else None
    monitor_ids = [i for i in ids if type(i) is int] if isinstance(ids, list) else []
    return {"topic": messages.CHANGED, "monitor_ids": monitor_ids}


async def _forward(
    request: web.Request, response: web.StreamResponse, inbox: asyncio.Queue[tuple[bytes, dict[str, Any]]]
) -> None:
    loop = asyncio.get_running_loop()
    stopping = request.app[STOPPING]
    last_write = loop.time()
    while not stopping.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        try:
            async with asyncio.timeout(CHECK):
                event, item = await inbox.get()
        except TimeoutError:
            if loop.time() - last_write >= KEEPALIVE:
                await response.write(b": keepalive\n\n")
                last_write = loop.time()
            continue
        await response.write(b"event: " + event + b"\ndata: " + orjson.dumps(item) + b"\n\n")
        last_write = loop.time()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/p/{project_id}/events", events, name="dashboard.events")
