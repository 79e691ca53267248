"""The ingest app factory, used by ``run_app`` and by tests alike."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestPayloadError

from heron_common import bus
from heron_common.clock import Clock
from heron_common.logging import get_logger
from heron_common.secretbox import SecretBox
from heron_common.service import (
    AMQP,
    CLOCK,
    NAMES,
    PG,
    REDIS,
    SETTINGS,
    background,
    base_app,
    error_response,
    use_postgres,
    use_rabbitmq,
    use_redis,
)
from heron_common.settings import Settings
from heron_ingest import (
    admin,
    dashboard,
    heartbeats_api,
    heroku_api,
    manage,
    monitors_api,
    oncall_ack,
    oncall_api,
    openapi,
    pings,
    presence,
    probes_api,
    protocol_errors,
    read,
    services_api,
    slack_commands,
    track,
    trigger_calls,
    triggers_api,
    webhooks_api,
)
from heron_ingest.auth import KeyAuthenticator
from heron_ingest.context import ADDRESS_LIMIT, AUTH, CHANGES, KEY_LIMIT, PUBLISHER, REVOCATIONS, SECRETS
from heron_ingest.dryrun import test_keys_change_nothing
from heron_ingest.publisher import GroupPublisher
from heron_ingest.ratelimit import Limiter, client_address, retry_after
from heron_ingest.revocations import RevocationListener

log = get_logger("ingest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The API's modules, in routing order: each has ``add_routes(app)`` and describes those routes in
# ``PATHS`` (its OpenAPI fragment), so one list both routes and documents them. Add new ones here.
API_MODULES = (
    track,
    manage,
    read,
    webhooks_api,
    monitors_api,
    services_api,
    triggers_api,
    trigger_calls,
    pings,
    heartbeats_api,
    probes_api,
    heroku_api,
    slack_commands,
    admin,
    oncall_api,  # on-call (issue #11): people, rotations, shifts, escalations
    oncall_ack,  # acknowledging from a page: the signed link, Slack's button
)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON ``{"error": {"code", "message"}}``, including aiohttp's own 404/405/413."""
    try:
        return await handler(request)
    except (RequestPayloadError, http_exceptions.HttpProcessingError) as exc:
        # Raised by the first read of a body that does not decode (Content-Encoding: gzip over
        # something that is not gzip, a truncated stream): the client's fault, whatever the route.
        log.info("request body could not be decoded", path=request.path, error=type(exc).__name__)
        return error_response(
            400, "invalid_body", "the request body could not be read: it does not decode as its Content-Encoding says"
        )
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, "body_too_large", f"the request body is larger than {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)


# A Host header as a client may send it: a DNS name or IPv4 address, or a bracketed IPv6 address,
# then an optional port. Pages and API answers build URLs from it (ping URLs, badge URLs, Link).
_HOST = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?\Z")


@web.middleware
async def valid_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A ``Host`` that names no host (non-ASCII bytes, a port out of range, stray characters) is a
    400 at the door: otherwise it fails deep inside, wherever a URL is built from it."""
    host = request.headers.get("Host")
    if host is not None:
        found = _HOST.match(host)
        if found is None or (found[1] is not None and not 0 < int(found[1]) < 65536):
            return error_response(
                400, "invalid_host", "the Host header is not a host name or address, with a port 1-65535"
            )
    return await handler(request)


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the whole body within ``HERON_BODY_READ_TIMEOUT``, else 408 and close.

    A client that sends less than its Content-Length would otherwise hold the connection (and a
    handler) for as long as it likes. A body already received in full (the usual case: it came
    with the headers) costs one check.
    """
    if request.body_exists and not request.content.is_eof():
        timeout = request.app[SETTINGS].body_read_timeout
        try:
            async with asyncio.timeout(timeout):
                await request.read()  # kept by aiohttp: the handler's read() returns it at once
        except TimeoutError:
            response = error_response(408, "body_timeout", f"the request body did not arrive within {timeout:g} s")
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            # Close now (the reply is flushed first): otherwise aiohttp lingers, reading the rest of
            # the body for up to 10 s more, which is what this deadline is here to prevent.
            request.protocol.force_close()
            return response
    return await handler(request)


# Operators' endpoints: a load balancer's probes and Prometheus must never be rate limited.
_UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@web.middleware
async def address_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per client address, before the body is read: a flood is turned away at the door."""
    limiter = request.app[ADDRESS_LIMIT]
    if limiter.enabled and request.path not in _UNLIMITED_PATHS:
        settings = request.app[SETTINGS]
        address = client_address(request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxy_hops)
        wait = await limiter.check(address)
        if wait is not None:
            response = error_response(
                429,
                "rate_limited",
                f"more than {limiter.rate:g} requests a second from this address (burst {limiter.burst}); retry later",
                {"Retry-After": retry_after(wait)},
            )
            return response
    return await handler(request)


async def _limits_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = app[REDIS]
    prefix = settings.redis_prefix
    app[KEY_LIMIT] = Limiter(redis, prefix, "key", settings.rate_limit_per_key, settings.rate_limit_per_key_burst)
    app[ADDRESS_LIMIT] = Limiter(
        redis, prefix, "address", settings.rate_limit_per_address, settings.rate_limit_per_address_burst
    )
    yield


async def _publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    channel = await app[AMQP].channel(publisher_confirms=True, on_return_raises=True)
    # Declaring the shard queues here means a publish can never be unroutable, even before
    # the first detector has started.
    await bus.declare_shard_queues(channel, app[NAMES], settings.shards)
    exchange = await bus.declare_ingest(channel, app[NAMES])
    publisher = GroupPublisher(exchange, settings.shards, app[CLOCK])
    app[PUBLISHER] = publisher
    app[CHANGES] = await bus.declare_changes(channel, app[NAMES])
    yield
    await publisher.drain()
    await channel.close()


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    app[AUTH] = KeyAuthenticator(app[PG], app[CLOCK], app[SETTINGS].key_cache_seconds)
    yield


async def _revocations_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    listener = app[REVOCATIONS] = RevocationListener(settings.redis_url, settings.redis_prefix, app[AUTH])
    task = asyncio.create_task(listener.run(app), name="ingest-revocations")
    yield
    # Nothing is ever half-done between two messages: cancelling is a clean stop.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await listener.close()


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    protocol_errors.install()  # what the HTTP parser refuses answers in the error shape too
    app = base_app(
        settings,
        clock,
        client_max_size=settings.max_body_bytes,
        # Bounds every header line and the request line, so the query string too (aiohttp answers 400).
        handler_args={"max_line_size": settings.max_header_bytes, "max_field_size": settings.max_header_bytes},
        middlewares=[json_errors, valid_host, address_limit, body_deadline, test_keys_change_nothing],
    )
    use_postgres(app, max_size=20)
    use_rabbitmq(app, "heron-ingest")
    # Redis only speeds up revocation (and carries the readiness beat): ingest starts, accepts
    # events and stays ready without it.
    use_redis(app, required=False)
    # Built here, not at start-up: a missing or malformed HERON_SECRETS_KEY stops the process
    # before it listens, with the message saying how to make one.
    app[SECRETS] = SecretBox(settings.secrets_keys)
    app.cleanup_ctx.append(_limits_ctx)
    app.cleanup_ctx.append(_auth_ctx)
    app.cleanup_ctx.append(_revocations_ctx)
    app.cleanup_ctx.append(_publisher_ctx)
    for module in API_MODULES:
        module.add_routes(app)
    openapi.setup(app, API_MODULES)
    background(app, "heroku-seed", heroku_api.seed)
    background(app, "ready-beat", presence.announce_ready)
    # Last: the dashboard's catch-all 404 page must come after every other route.
    dashboard.setup(app)
    return app
