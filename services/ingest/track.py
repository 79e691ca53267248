"""``POST /v1/track`` and ``POST /v1/events``: authenticate, validate, publish with confirms."""

from __future__ import annotations

import time

import orjson
from aiohttp import web
from prometheus_client import Counter, Histogram

from heron_common import openapi as oa
from heron_common.service import CLOCK, SETTINGS, error_response, json_response
from heron_ingest.context import PUBLISHER
from heron_ingest.publisher import UnencodableEvents
from heron_ingest.requests import caller_project, is_test
from heron_ingest.validation import (
    InputError,
    add_event_keys,
    batch_items,
    idempotency_key,
    may_hold_nul,
    parse_json,
    parse_rows,
)

REQUESTS = Counter("heron_ingest_requests_total", "Ingest requests by endpoint and outcome", ["endpoint", "status"])
# Bound once: labels() takes a lock and hashes the label tuple, on the hottest path there is.
# From the request reaching the handler to its answer: the publish's confirm is most of it.
SECONDS = Histogram(
    "heron_ingest_request_seconds",
    "Time to answer an ingest request (validation and RabbitMQ's confirm), by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_SECONDS = {"track": SECONDS.labels("track"), "events": SECONDS.labels("events")}
_OK = {"track": REQUESTS.labels("track", "202"), "events": REQUESTS.labels("events", "200")}
_ACCEPTED = orjson.dumps({"status": "accepted", "count": 1})


async def _read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        raise InputError(413, "body_too_large", f"the request body is larger than {limit} bytes") from None


async def _ingest(request: web.Request, endpoint: str, batch: bool) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        raw = await _read_body(request)
        body = parse_json(raw)
        project_id = await caller_project(request, body, test_ok=True)
        received_at = request.app[CLOCK].now()
        items = batch_items(body, settings.max_batch_events) if batch else [body]
        rows = parse_rows(
            items,
            project_id=project_id,
            received_at=received_at,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_depth=settings.max_json_depth,
            max_skew=settings.max_clock_skew,
            batch=batch,
            nul_free=not may_hold_nul(raw),
        )
        # A retry of a request whose first try the broker stored (its answer lost) is counted once.
        key = idempotency_key(request.headers.get("Idempotency-Key"))
        if key is not None:
            add_event_keys(rows, project_id, key)
    except InputError as exc:
        REQUESTS.labels(endpoint, str(exc.status)).inc()
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    try:
        if not is_test(request):  # a test key: validated and answered as usual, nothing published
            await request.app[PUBLISHER].publish(rows)
    except UnencodableEvents as exc:
        # Validation lets nothing unencodable through; should it ever, only this request fails.
        REQUESTS.labels(endpoint, "422").inc()
        return error_response(422, "invalid_event", f"the events cannot be encoded: {exc}")
    except Exception:
        REQUESTS.labels(endpoint, "503").inc()
        # Not confirmed, so not accepted: the client keeps the events and retries.
        return error_response(
            503, "unavailable", "events could not be stored right now; retry", headers={"Retry-After": "1"}
        )
    _OK[endpoint].inc()
    if batch:
        # 200 with this exact body: existing SDKs treat anything else as failure and resend.
        return json_response({"status": "stored", "count": len(rows)})
    return web.Response(body=_ACCEPTED, status=202, content_type="application/json")


async def track(request: web.Request) -> web.Response:
    started = time.perf_counter()
    try:
        return await _ingest(request, "track", batch=False)
    finally:
        _SECONDS["track"].observe(time.perf_counter() - started)


async def events(request: web.Request) -> web.Response:
    started = time.perf_counter()
    try:
        return await _ingest(request, "events", batch=True)
    finally:
        _SECONDS["events"].observe(time.perf_counter() - started)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/track", track)
    app.router.add_post("/v1/events", events)


# -- the contract (OpenAPI fragment; services/ingest/openapi.py assembles the document) -----------

_EVENT = oa.obj(
    {
        "event_name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "also accepted as `event`"},
        "service": {"type": "string", "maxLength": 200},
        "environment": {"type": "string", "maxLength": 200},
        "timestamp": {"type": "number", "description": "unix seconds; clamped to [receipt − 1 h, receipt]"},
        "metadata": {
            "type": "object",
            "description": "≤ HERON_MAX_METADATA_BYTES as JSON, nested ≤ HERON_MAX_JSON_DEPTH (32) levels",
        },
        "api_key": {"type": "string", "description": "the key, for clients that cannot send a header"},
    },
    required=["event_name"],
)
_IDEMPOTENCY = oa.query_param("Idempotency-Key", oa.STRING, "")
_IDEMPOTENCY.update(
    {"in": "header", "description": "the same key on a retry of the same request counts its events once"}
)
_INGEST_ERRORS = {503: "The broker did not confirm: nothing was accepted; retry (Retry-After)"}

PATHS = {
    "/v1/track": {
        "post": oa.operation(
            "Record one event",
            tag="events",
            auth="key_or_test",
            operation_id="track",
            parameters=[_IDEMPOTENCY],
            body=oa.json_body(_EVENT),
            errors=_INGEST_ERRORS,
            responses={
                202: oa.json_response(
                    oa.obj({"status": {"const": "accepted"}, "count": {"const": 1}}), "Accepted (broker-confirmed)"
                )
            },
        )
    },
    "/v1/events": {
        "post": oa.operation(
            "Record a batch of events (up to HERON_MAX_BATCH_EVENTS)",
            tag="events",
            auth="key_or_test",
            operation_id="events",
            parameters=[_IDEMPOTENCY],
            body=oa.json_body(
                {
                    "oneOf": [
                        oa.obj({"events": oa.array(_EVENT, minItems=1), "api_key": oa.STRING}, required=["events"]),
                        oa.array(_EVENT, minItems=1),
                    ]
                }
            ),
            errors=_INGEST_ERRORS,
            responses={
                200: oa.json_response(
                    oa.obj({"status": {"const": "stored"}, "count": {"type": "integer", "minimum": 1}}),
                    "Stored (broker-confirmed); SDKs count exactly this answer as success",
                )
            },
        )
    },
}
