"""The ingest app factory, used by ``run_app`` and by tests alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from heron_common import bus
from heron_common.clock import Clock
from heron_common.service import (
    AMQP,
    CLOCK,
    NAMES,
    PG,
    SETTINGS,
    background,
    base_app,
    error_response,
    use_postgres,
    use_rabbitmq,
    use_redis,
)
from heron_common.settings import Settings
from heron_ingest import admin, manage, presence, read, track, webhooks_api
from heron_ingest.auth import KeyAuthenticator
from heron_ingest.context import AUTH, PUBLISHER
from heron_ingest.publisher import GroupPublisher

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON ``{"error": {"code", "message"}}``, including aiohttp's own 404/405/413."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, "body_too_large", f"the request body is larger than {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)


async def _publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    channel = await app[AMQP].channel(publisher_confirms=True, on_return_raises=True)
    # Declaring the shard queues here means a publish can never be unroutable, even before
    # the first detector has started.
    await bus.declare_shard_queues(channel, app[NAMES], settings.shards)
    exchange = await bus.declare_ingest(channel, app[NAMES])
    publisher = GroupPublisher(exchange, settings.shards, app[CLOCK])
    app[PUBLISHER] = publisher
    yield
    await publisher.drain()
    await channel.close()


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    app[AUTH] = KeyAuthenticator(app[PG], app[CLOCK], app[SETTINGS].key_cache_seconds)
    yield


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = base_app(settings, clock, client_max_size=settings.max_body_bytes, middlewares=[json_errors])
    use_postgres(app, max_size=20)
    use_redis(app)
    use_rabbitmq(app, "heron-ingest")
    app.cleanup_ctx.append(_auth_ctx)
    app.cleanup_ctx.append(_publisher_ctx)
    track.add_routes(app)
    manage.add_routes(app)
    read.add_routes(app)
    webhooks_api.add_routes(app)
    background(app, "ready-beat", presence.announce_ready)
    admin.add_routes(app)
    return app
