"""What every service process shares: the aiohttp app with /healthz, /readyz and /metrics,
the connections opened in ``cleanup_ctx``, and ``run`` with graceful shutdown on SIGTERM.

Each service is an app factory (used by ``run_app`` and by tests alike). Background loops are
started in a cleanup context and stopped there: aiohttp's shutdown first stops accepting
requests, then unwinds the contexts in reverse, so loops finish their in-flight work while
the connections they need are still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis_asyncio
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heron_common import bus, db
from heron_common import openapi as oa
from heron_common.clock import Clock, SystemClock
from heron_common.consumer import ConsumerStatus, stuck_consumers
from heron_common.link import Link
from heron_common.logging import configure_logging, get_logger
from heron_common.settings import Settings, SettingsError

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
PG = web.AppKey("pg", asyncpg.Pool)
REDIS = web.AppKey("redis", redis_asyncio.Redis)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
LINK = web.AppKey("link", Link)
CONSUMERS = web.AppKey("consumers", list)  # ConsumerStatus of every queue this process should consume
NAMES = web.AppKey("names", bus.Names)
STOPPING = web.AppKey("stopping", asyncio.Event)

ReadyCheck = Callable[[web.Application], Coroutine[Any, Any, None]]
READY_CHECKS = web.AppKey("ready_checks", list)

# Graceful shutdown on SIGTERM (``run``): the HTTP server stops accepting and in-flight requests get
# SHUTDOWN_TIMEOUT; then the cleanup contexts unwind one by one, each background loop getting
# LOOP_STOP_TIMEOUT to finish its step. Deployments give a stopping process longer than the sum
# (docker-compose.yml stop_grace_period, terminationGracePeriodSeconds; tests/unit/test_deploy_*.py).
SHUTDOWN_TIMEOUT = 15.0
LOOP_STOP_TIMEOUT = 10.0


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


async def _healthz(request: web.Request) -> web.Response:
    # Liveness: the event loop answers, and no consumer is stuck. Dependencies are /readyz's
    # business: a broker or database outage must not restart every pod in a loop. A consumer
    # unsubscribed for HERON_CONSUMER_STUCK_SECONDS while the broker is reachable is different:
    # its loop resubscribes by itself after any outage, so this is a fault only a restart mends.
    app = request.app
    statuses: list[ConsumerStatus] = app[CONSUMERS]
    if LINK in app and statuses:
        stuck = stuck_consumers(statuses, app[LINK].up_since, time.monotonic(), app[SETTINGS].consumer_stuck_seconds)
        if stuck:
            return json_response({"status": "stuck", "failures": {"consumers": ", ".join(stuck)}}, status=503)
    return json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    failures = {}
    for check in request.app[READY_CHECKS]:
        try:
            await asyncio.wait_for(check(request.app), timeout=2.0)
        except Exception as exc:
            failures[check.__name__.removeprefix("check_")] = str(exc) or type(exc).__name__
    if request.app[STOPPING].is_set():
        failures["shutdown"] = "shutting down"
    if failures:
        return json_response({"status": "unavailable", "failures": failures}, status=503)
    return json_response({"status": "ready"})


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def check_postgres(app: web.Application) -> None:
    await app[PG].fetchval("SELECT 1")


async def check_redis(app: web.Application) -> None:
    await app[REDIS].ping()


def rabbitmq_up(app: web.Application) -> bool:
    """Whether the robust connection (ingest's) is connected now. Its ``is_closed`` stays False
    while it reconnects (only an explicit close sets it); ``connected`` is cleared at once."""
    return not app[AMQP].is_closed and app[AMQP].connected.is_set()


def instance_id() -> str:
    """This process among its replicas, in Redis sets of live members: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def check_rabbitmq(app: web.Application) -> None:
    if not rabbitmq_up(app):
        raise ConnectionError("connection down")


async def check_link(app: web.Application) -> None:
    app[LINK].current()  # raises ConnectionError naming why while the connection is down


async def check_consumers(app: web.Application) -> None:
    """Every queue this process should consume has a subscription. Subscribed is what matters,
    not active: a detector waiting behind another on a single-active-consumer shard is fine."""
    missing = [status.label for status in app[CONSUMERS] if not status.subscribed]
    if missing:
        raise ConnectionError(", ".join(f"{label} not subscribed" for label in missing))


def base_app(settings: Settings, clock: Clock | None = None, **app_kwargs: Any) -> web.Application:
    app = web.Application(**app_kwargs)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[NAMES] = bus.Names(settings.amqp_prefix)
    app[STOPPING] = asyncio.Event()
    app[READY_CHECKS] = []
    app[CONSUMERS] = []
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)

    async def freeze_startup_objects(app: web.Application) -> None:
        # Everything allocated at start-up lives for the process: keep it out of the cyclic
        # collector's view, so young collections (see run()) only look at request garbage.
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze_startup_objects)

    async def mark_stopping(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(mark_stopping)
    return app


def use_postgres(app: web.Application, *, max_size: int = 10) -> None:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[PG] = await db.create_pool(app[SETTINGS].database_url, max_size=max_size)
        app[READY_CHECKS].append(check_postgres)
        yield
        await app[PG].close()

    app.cleanup_ctx.append(ctx)


def use_redis(app: web.Application, *, required: bool = True) -> None:
    """``required=False`` for a service that keeps serving without Redis (ingest: Redis only
    speeds up revocation and carries its readiness beat), so /readyz does not pull it from a load
    balancer while Redis is down."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[REDIS] = redis_asyncio.Redis.from_url(app[SETTINGS].redis_url)
        if required:
            app[READY_CHECKS].append(check_redis)
        yield
        await app[REDIS].aclose()

    app.cleanup_ctx.append(ctx)


def use_rabbitmq(app: web.Application, name: str) -> None:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[AMQP] = await bus.connect(app[SETTINGS].amqp_url, name)
        app[READY_CHECKS].append(check_rabbitmq)
        yield
        await app[AMQP].close()

    app.cleanup_ctx.append(ctx)


def use_link(app: web.Application, name: str) -> None:
    """A supervised AMQP connection (``link.py``) for services whose consumers and publishers
    re-create their channels themselves."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[LINK] = Link(app[SETTINGS].amqp_url, name)
        await app[LINK].open()
        app[READY_CHECKS].append(check_link)
        yield
        await app[LINK].close()

    app.cleanup_ctx.append(ctx)


def background(app: web.Application, name: str, loop: Callable[[web.Application], Coroutine[Any, Any, None]]) -> None:
    """Run ``loop(app)`` for the app's lifetime; at shutdown it is cancelled after STOPPING is set
    and given the chance to finish what it was doing (loops check STOPPING between steps)."""
    log = get_logger(name)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(app), name=name)

        def _done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("background loop crashed", exc_info=t.exception())

        task.add_done_callback(_done)
        yield
        app[STOPPING].set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=LOOP_STOP_TIMEOUT)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(ctx)


def consumers(
    app: web.Application,
    name: str,
    *loops: Callable[[web.Application], Coroutine[Any, Any, None]],
    statuses: list[ConsumerStatus] | None = None,
    subscribe_timeout: float = 10.0,
) -> None:
    """Run consumer loops for the app's lifetime; at shutdown stop them between messages.

    ``statuses`` are the subscriptions the loops keep (one per queue they should consume): start-up
    waits (at most ``subscribe_timeout``) until each has subscribed once, and from then on
    ``/readyz`` fails, naming them, whenever one is not subscribed.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if statuses:
            app[CONSUMERS].extend(statuses)
            if check_consumers not in app[READY_CHECKS]:
                app[READY_CHECKS].append(check_consumers)
        tasks = [asyncio.create_task(loop(app), name=f"{name}-{i}") for i, loop in enumerate(loops)]
        loop_ = asyncio.get_running_loop()
        give_up = loop_.time() + subscribe_timeout
        while statuses and not all(s.ever_subscribed for s in statuses) and loop_.time() < give_up:
            if all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)  # subscriptions are made by the loops; nothing to await on
        yield
        app[STOPPING].set()
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                get_logger(name).error("consumer ended with an error", exc_info=result)

    app.cleanup_ctx.append(ctx)


async def sleep_or_stop(app: web.Application, seconds: float) -> bool:
    """Wait ``seconds`` or until shutdown begins; True if shutting down."""
    stopping = app[STOPPING]
    if stopping.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    return stopping.is_set()


def tune_process() -> None:
    """Process-wide settings every service runs with (benchmarks call this too)."""
    # A 100-event request allocates ~700 short-lived containers, none in a cycle: at the default
    # threshold (700) the collector ran about once per request and found nothing.
    gc.set_threshold(50_000, 20, 100)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): the same asyncio API, a faster loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(service: str, factory: Callable[[Settings], web.Application], port_of: Callable[[Settings], int]) -> None:
    """Entry point of ``python -m heron_<service>``: validate settings, then serve until SIGTERM."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"heron-{service}: configuration error: {exc}")
    configure_logging(settings.log_level, settings.log_json)
    tune_process()
    log = get_logger(service)
    log.info("starting", port=port_of(settings), shards=settings.shards, amqp_prefix=settings.amqp_prefix)
    log.debug("settings", settings=settings.public())
    port = port_of(settings)
    try:
        web.run_app(
            factory(settings),
            loop=new_event_loop(),
            host=settings.http_host,
            port=port,
            print=None,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=True,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            sys.exit(f"heron-{service}: port {port} is in use; set HERON_{service.upper()}_PORT to another port")
        raise
    log.info("stopped")


# -- the operators' endpoints every service serves, as its OpenAPI fragment ------------------------


def _probe(summary: str, operation_id: str, ok: str, failed: str, failed_description: str) -> dict[str, Any]:
    """A probe's operation: 200 with ``{"status": ok}``, or 503 with what failed (an
    orchestrator's or load balancer's answer, not an API error)."""
    failures = {"status": {"const": failed}, "failures": {"type": "object", "additionalProperties": oa.STRING}}
    return oa.operation(
        summary,
        tag="operations",
        auth="none",
        limited=False,
        operation_id=operation_id,
        responses={
            200: oa.json_response(oa.obj({"status": {"const": ok}}), ok.capitalize()),
            503: oa.json_response(oa.obj(failures), failed_description),
        },
    )


PATHS = {
    "/healthz": {
        "get": _probe(
            "Liveness: the event loop answers and no consumer is stuck",
            "healthz",
            "ok",
            "stuck",
            "A consumer unsubscribed for HERON_CONSUMER_STUCK_SECONDS while the broker is reachable:"
            " restart the process (detector and notifier only)",
        )
    },
    "/readyz": {
        "get": _probe(
            "Readiness: Postgres, Redis and RabbitMQ reachable, not shutting down",
            "readyz",
            "ready",
            "unavailable",
            "Not ready: what failed (a load balancer's answer, not an API error)",
        )
    },
    "/metrics": {
        "get": oa.operation(
            "Prometheus metrics",
            tag="operations",
            auth="none",
            limited=False,
            operation_id="metrics",
            responses={
                200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": oa.STRING}}}
            },
        )
    },
}
