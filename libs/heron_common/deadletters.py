"""Dead letters, the pure half: what a dead-lettered message is, where it came from, and what a
replay sends. No I/O; ``deadletter_store`` keeps them in Postgres and republishes them.

RabbitMQ records where a message died in its headers: ``x-first-death-{queue,exchange,reason}``
and the ``x-death`` list (``queue``, ``exchange``, ``routing-keys``, ``reason``, ``count``,
``time``). The exchange and routing key are where it was first *published*, which is what a
replay must use again. Rows the detector refuses itself are stored directly with the same fields
(see ``heron_detector.store``).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from heron_common import messages
from heron_common.db import BIGINT_MAX

MAX_REASON = 1000

# Envelopes a replay gives a fresh id: their id only says "this delivery", and the original id may
# already be recorded as processed. An alert's id is the alert's identity end to end (receivers
# deduplicate on it), so alerts keep theirs.
_FRESH_ID_TYPES = frozenset({messages.EVENTS, messages.TICK})


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the dead-letter queue it was taken from
    exchange: str  # where it was first published: a replay publishes there again
    routing_key: str
    reason: str
    message_id: str | None
    project_id: int | None
    body: bytes
    headers: dict[str, Any]
    deaths: int
    dead_at: datetime | None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    # NUL would make Postgres refuse the very row that records the refusal.
    return str(value).replace("\x00", "\ufffd")


def jsonable(value: Any) -> Any:
    """Headers as JSON Postgres accepts: bytes decoded, times as ISO strings, no NUL anywhere."""
    if isinstance(value, dict):
        return {_text(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float):
        return value if not isinstance(value, int) or abs(value) <= BIGINT_MAX else str(value)
    return _text(value)


def project_of(body: bytes) -> int | None:
    """The project a Heron message concerns, when it says so unambiguously."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    ids: set[Any] = set()
    if message.get("type") == messages.EVENTS and isinstance(message.get("events"), list):
        ids = {row[0] for row in message["events"] if isinstance(row, list) and row}
    elif isinstance(message.get("data"), dict) and isinstance(message["data"].get("project"), dict):
        ids = {message["data"]["project"].get("id")}
    if len(ids) == 1:
        (only,) = ids
        if type(only) is int and 0 < only <= BIGINT_MAX:
            return only
    return None


def from_delivery(
    queue: str,
    body: bytes,
    headers: dict[str, Any] | None,
    message_id: str | None,
    routing_key: str | None,
) -> DeadLetter:
    """Describe a message taken from a dead-letter queue, from RabbitMQ's death headers."""
    headers = headers or {}
    deaths = headers.get("x-death")
    first: dict[str, Any] = deaths[-1] if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict) else {}
    keys = first.get("routing-keys") or []
    reason = _text(headers.get("x-heron-reason") or headers.get("x-first-death-reason") or first.get("reason") or "")
    died_in = _text(headers.get("x-first-death-queue") or first.get("queue") or "")
    if died_in:
        reason = f"{reason or 'dead-lettered'} in {died_in}"
    total = sum(d.get("count", 1) for d in deaths if isinstance(d, dict)) if isinstance(deaths, list) else 1
    dead_at = first.get("time") if isinstance(first.get("time"), datetime) else None
    return DeadLetter(
        queue=queue,
        exchange=_text(headers.get("x-first-death-exchange") or first.get("exchange") or ""),
        routing_key=_text(keys[0] if keys else routing_key or ""),
        reason=(reason or "dead-lettered")[:MAX_REASON],
        message_id=_text(message_id) if message_id else None,
        project_id=project_of(body),
        body=body,
        headers=jsonable(headers),
        deaths=max(1, int(total)),
        dead_at=dead_at,
    )


def replay_body(body: bytes) -> tuple[bytes, str | None, str | None]:
    """What a replay publishes: the original body, with a fresh id for detector envelopes.

    Returns (body, message id, message type); the id and type are None for a body that is not a
    Heron envelope (it is sent back unchanged).
    """
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body, None, None
    if not isinstance(message, dict) or "id" not in message:
        return body, None, None
    kind = message.get("type")
    if kind in _FRESH_ID_TYPES:
        message["id"] = str(uuid.uuid4())
        body = orjson.dumps(message)
    return body, _text(message["id"]), _text(kind) if kind is not None else None


def body_view(body: bytes) -> dict[str, Any]:
    """The body for the admin API: parsed JSON where it is JSON, base64 otherwise."""
    try:
        return {"body": orjson.loads(body)}
    except orjson.JSONDecodeError:
        return {"body": None, "body_base64": base64.b64encode(body).decode()}
