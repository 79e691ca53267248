"""Turning request bodies into events, with errors that name the offending field.

Pure: no I/O. Raises :class:`InputError` carrying the HTTP status, a stable code and a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from heron_common.db import JSON_NUL
from heron_common.messages import TrackedEvent, event_key

# The clamp rule belongs to the cadence model (docs/detection.md); ingest applies it on receipt.
from heron_common.monitors.cadence import event_time

MAX_NAME = 200
MAX_LABEL = 200
# Containers nested in metadata, metadata itself included (and in any request body): the default of
# HERON_MAX_JSON_DEPTH. The bound keeps every event well inside what orjson will encode (255
# levels, and the broker message wraps metadata in three more), hence the setting's maximum.
MAX_DEPTH = 32
MAX_DEPTH_LIMIT = 200


def _min_too_deep(max_depth: int) -> int:
    """The shortest JSON of metadata nested deeper than ``max_depth``: '{"":[[…]]}'. Anything
    shorter cannot be too deep, so the usual small metadata is not even scanned for brackets."""
    return 5 + 2 * max_depth


def nested_deeper(value: Any, limit: int, depth: int = 0) -> bool:
    """Whether ``value`` holds containers nested more than ``limit`` deep. Stops at ``limit`` + 1,
    so the recursion stays short however deep the body (the JSON parser allows 1024 levels,
    more than Python's own recursion limit)."""
    if isinstance(value, dict | list):
        if depth >= limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        return any(nested_deeper(v, limit, depth + 1) for v in children)
    return False


# How a NUL can appear in a JSON body: orjson refuses a raw 0x00 inside a string, and refuses lone
# surrogates, so this escape (db.JSON_NUL) is the one way in of a character Postgres cannot hold.
NUL_REFUSED = "contains a NUL character (\\u0000), which cannot be stored"


@dataclass
class InputError(Exception):
    status: int
    code: str
    message: str
    # The body field the error is about, when there is one (a form shows the message beside it).
    field: str | None = None
    headers: dict[str, str] | None = None  # e.g. Retry-After on a 429
    # Every bad field's message, when all of a form's fields were checked at once (the answer
    # names the first; a dashboard form shows each beside its field).
    errors: dict[str, str] | None = None


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise InputError(400, "empty_body", "the request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def may_hold_nul(raw: bytes) -> bool:
    """False when the JSON text ``raw`` certainly holds no U+0000 (one scan of the body, so the
    per-event fast path need not look at every string)."""
    return JSON_NUL in raw


def _shown(key: str) -> str:
    return (key[:40] + "…" if len(key) > 40 else key).replace("\x00", "\\u0000")


def unstorable(value: Any, path: str, depth: int = 1, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``value`` (metadata, found at ``path``) cannot be stored, naming the innermost field;
    None if it can. Postgres text and jsonb refuse U+0000, in keys as in values."""
    if isinstance(value, str):
        return f"{path} {NUL_REFUSED}" if "\x00" in value else None
    if depth > max_depth:
        return f"{path} is nested more than {max_depth} levels deep"
    if isinstance(value, dict):
        for k, v in value.items():
            inner = f"{path}.{_shown(k)}"
            if "\x00" in k:
                return f"{inner}: the key {NUL_REFUSED}"
            if type(v) is dict or type(v) is list or type(v) is str:
                problem = unstorable(v, inner, depth + 1, max_depth)
                if problem:
                    return problem
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if type(v) is dict or type(v) is list or type(v) is str:
                problem = unstorable(v, f"{path}[{i}]", depth + 1, max_depth)
                if problem:
                    return problem
    return None


def _text(value: str, name: str, where: str) -> None:
    if "\x00" in value:
        raise InputError(422, "invalid_field", f"{where}{name} {NUL_REFUSED}")


def _label(raw: dict[str, Any], name: str, where: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(422, "invalid_field", f"{where}{name} must be a string")
    if len(value) > MAX_LABEL:
        raise InputError(422, "invalid_field", f"{where}{name} is longer than {MAX_LABEL} characters")
    _text(value, name, where)
    return value or None


def parse_event(
    raw: Any,
    *,
    project_id: int,
    received_at: float,
    max_metadata_bytes: int,
    max_skew: float,
    where: str = "",
    max_depth: int = MAX_DEPTH,
) -> TrackedEvent:
    if not isinstance(raw, dict):
        raise InputError(422, "invalid_event", f"{where or 'the body'} must be a JSON object")
    name = raw.get("event_name", raw.get("event"))
    if name is None:
        raise InputError(422, "missing_field", f"{where}event_name is required")
    if not isinstance(name, str) or not name.strip():
        raise InputError(422, "invalid_field", f"{where}event_name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InputError(422, "invalid_field", f"{where}event_name is longer than {MAX_NAME} characters")
    _text(name, "event_name", where)

    metadata = raw.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InputError(422, "invalid_field", f"{where}metadata must be a JSON object")
        # Before measuring: orjson cannot even encode metadata nested 255 levels deep.
        problem = unstorable(metadata, f"{where}metadata", max_depth=max_depth)
        if problem:
            raise InputError(422, "invalid_field", problem)
        size = len(orjson.dumps(metadata))
        if size > max_metadata_bytes:
            raise InputError(
                413,
                "metadata_too_large",
                f"{where}metadata is {size} bytes as JSON; the limit is {max_metadata_bytes}",
            )

    ts = raw.get("timestamp")
    if ts is not None:
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise InputError(422, "invalid_field", f"{where}timestamp must be unix seconds (a number)")
        ts = float(ts)

    return TrackedEvent(
        project_id=project_id,
        event_name=name,
        service=_label(raw, "service", where),
        environment=_label(raw, "environment", where),
        event_time=event_time(ts, received_at, max_skew),
        received_at=received_at,
        metadata=metadata,
    )


def parse_rows(
    items: list[Any],
    *,
    project_id: int,
    received_at: float,
    max_metadata_bytes: int,
    max_skew: float,
    batch: bool,
    nul_free: bool = False,
    max_depth: int = MAX_DEPTH,
) -> list[list[Any]]:
    """Wire rows (``TrackedEvent.to_wire`` shape) for ``items``: the hot path of ingest.

    The common, valid event is checked inline and becomes its row directly (no dataclass, no
    per-event calls); anything unusual goes through :func:`parse_event`, so errors are exactly
    its errors, naming ``events[i].field``. ``nul_free`` (see :func:`may_hold_nul`) says the body
    holds no NUL at all; without it every event takes the full path. Metadata takes the fast path
    only when its JSON is too short, or has too few brackets, to be nested too deeply: flat
    metadata, the usual kind, is never walked.
    """
    rows = []
    too_deep = _min_too_deep(max_depth)
    oldest = received_at - max_skew
    for i, raw in enumerate(items):
        row = None
        if nul_free and type(raw) is dict:
            # try costs nothing unless raised (3.11+): orjson refuses metadata 255 levels deep.
            try:
                name = raw["event_name"] if "event_name" in raw else raw.get("event")
                service = raw.get("service")
                env = raw.get("environment")
                ts = raw.get("timestamp")
                md = raw.get("metadata")
                if (
                    type(name) is str
                    and 0 < len(name) <= MAX_NAME
                    and name.strip()
                    and (service is None or (type(service) is str and len(service) <= MAX_LABEL))
                    and (env is None or (type(env) is str and len(env) <= MAX_LABEL))
                    and (
                        md is None
                        or (
                            type(md) is dict
                            and (size := len(enc := orjson.dumps(md))) <= max_metadata_bytes
                            and (size < too_deep or enc.count(b"{") + enc.count(b"[") <= max_depth)
                        )
                    )
                ):
                    if ts is None:
                        row = [project_id, name, service or None, env or None, received_at, received_at, md]
                    elif (type(ts) is float or type(ts) is int) and math.isfinite(ts):
                        t = received_at if ts > received_at else (oldest if ts < oldest else float(ts))
                        row = [project_id, name, service or None, env or None, t, received_at, md]
            except orjson.JSONEncodeError:
                row = None  # the full path names the field
        if row is None:
            row = parse_event(
                raw,
                project_id=project_id,
                received_at=received_at,
                max_metadata_bytes=max_metadata_bytes,
                max_skew=max_skew,
                where=f"events[{i}]." if batch else "",
                max_depth=max_depth,
            ).to_wire()
        rows.append(row)
    return rows


MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(value: str | None) -> str | None:
    """The request's ``Idempotency-Key`` header: 1–255 visible ASCII characters, or absent."""
    if value is None:
        return None
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or not all(" " < c <= "~" for c in value):
        raise InputError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (a UUID is ideal)",
        )
    return value


def add_event_keys(rows: list[list[Any]], project_id: int, key: str) -> None:
    """Give each row the key of its position in the request (see ``messages.event_key``)."""
    for index, row in enumerate(rows):
        row.append(event_key(project_id, key, index))


def batch_items(body: Any, max_events: int) -> list[Any]:
    """The events of a batch body: ``{"events": [...]}`` (what SDKs send) or a bare array."""
    items = body.get("events") if isinstance(body, dict) else body
    if isinstance(body, dict) and "events" not in body:
        raise InputError(422, "missing_field", "events is required: an array of event objects")
    if not isinstance(items, list):
        raise InputError(422, "invalid_field", "events must be an array of event objects")
    if not items:
        raise InputError(422, "invalid_field", "events is empty; send at least one event")
    if len(items) > max_events:
        raise InputError(413, "batch_too_large", f"{len(items)} events in one batch; the limit is {max_events}")
    return items
