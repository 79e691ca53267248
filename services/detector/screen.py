"""What Postgres cannot store, found before the transaction: pure, no I/O.

A row that would make the detector's transaction fail takes every other message of the run with
it; screening rows first lets the detector apply the good rows of a message and dead-letter only
the bad ones. The screen has to be cheap for ordinary rows, so the costly part (NUL and nesting
anywhere in the strings and metadata) is one C call over the whole message (``orjson.dumps``),
and rows are only examined one by one when that finds something.

What it catches: rows of the wrong shape, project ids outside bigint, times that are not finite
or outside what Postgres and Python datetimes represent (with room for deadline arithmetic),
labels that are not strings or too long for the monitors' unique index, NUL (U+0000: Postgres
text and jsonb refuse it) anywhere in names, labels, metadata keys and values, metadata nested
deeper than orjson encodes or that it cannot encode. (Lone surrogates never get this far:
``orjson.loads`` refuses them when the message is decoded.) Anything else Postgres refuses is left
to the detector's bisection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from heron_common.db import BIGINT_MAX, JSON_NUL, holds_json_nul
from heron_common.messages import MessageError, TrackedEvent

# 1970 .. 3000: every real event is near now (ingest clamps), and a deadline computed from a time
# in range still fits a datetime (year 9999).
MIN_TS = 0.0
MAX_TS = 32_503_680_000.0
# A btree entry must stay under ~2.7 kB: the monitors' unique index holds name, service and
# environment together. Ingest allows 200 characters each, so at most 2,400 bytes of UTF-8: the
# bound is exactly that, so nothing ingest accepts is refused here (2,400 random 4-byte characters
# fit the index: tests/integration/test_input_regressions.py stores them).
MAX_KEY_BYTES = 2400
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class RejectedRow:
    index: int  # position in the message's events
    row: Any  # the row as received
    reason: str


def _scalar_problem(e: TrackedEvent) -> str | None:
    if not 0 < e.project_id <= BIGINT_MAX:
        return "project id is not a positive bigint"
    # Written as "not in range" so that NaN (every comparison false) fails too.
    if not (MIN_TS <= e.event_time <= MAX_TS and MIN_TS <= e.received_at <= MAX_TS):
        return "event_time/received_at is not a unix time between 1970 and 3000"
    if not (e.service is None or type(e.service) is str) or not (e.environment is None or type(e.environment) is str):
        return "service and environment must be strings or null"
    if len(e.event_name) + len(e.service or "") + len(e.environment or "") > MAX_KEY_BYTES // 4 and (
        len(e.event_name.encode(errors="replace"))
        + len((e.service or "").encode(errors="replace"))
        + len((e.environment or "").encode(errors="replace"))
        > MAX_KEY_BYTES
    ):
        return f"event name, service and environment together exceed {MAX_KEY_BYTES} bytes"
    return None


def _deep_problem(e: TrackedEvent) -> str | None:
    """The costly checks, for rows of a message the fast path flagged."""
    for what, text in (("event_name", e.event_name), ("service", e.service), ("environment", e.environment)):
        if text and "\x00" in text:
            return f"{what} contains NUL (U+0000), which Postgres cannot store"
    try:
        encoded = orjson.dumps(e.metadata)
    except orjson.JSONEncodeError as exc:
        return f"metadata cannot be encoded as JSON: {exc}"
    if holds_json_nul(encoded):
        return "metadata contains NUL (U+0000), which Postgres cannot store"
    for text in (e.event_name, e.service or "", e.environment or ""):
        try:
            text.encode()
        except UnicodeEncodeError:
            return "a label is not valid Unicode (lone surrogate)"
    return None


def _flagged(rows: list[Any]) -> bool:
    """One pass in C over the whole message: False means no row has a NUL or deep nesting."""
    try:
        return JSON_NUL in orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return True


def screen_rows(rows: Any) -> tuple[list[TrackedEvent], list[RejectedRow]]:
    """Split a message's rows into events Postgres can store and rejected rows with a reason."""
    if not isinstance(rows, list):
        raise MessageError("malformed events message: events is not a list")
    deep = _flagged(rows)
    good: list[TrackedEvent] = []
    bad: list[RejectedRow] = []
    for index, row in enumerate(rows):
        # The common row, checked inline on the raw values and built directly: cheaper than
        # ``from_wire`` alone (a call per row costs as much as these comparisons). A row with an
        # idempotency key (eighth element) takes ``from_wire``, which checks the key is a UUID.
        if not deep and type(row) is list and len(row) == 7:
            p, n, svc, env, t, r, m = row
            if (
                type(p) is int
                and 0 < p <= BIGINT_MAX
                and type(n) is str
                and (type(t) is float or type(t) is int)
                and MIN_TS <= t <= MAX_TS
                and (type(r) is float or type(r) is int)
                and MIN_TS <= r <= MAX_TS
                and (svc is None or type(svc) is str)
                and (env is None or type(env) is str)
                and len(n) + (len(svc) if svc else 0) + (len(env) if env else 0) <= MAX_KEY_BYTES // 4
            ):
                good.append(TrackedEvent(p, n, svc, env, float(t), float(r), m))
                continue
        try:
            event = TrackedEvent.from_wire(row)
        except MessageError as exc:
            bad.append(RejectedRow(index, row, str(exc)[:MAX_REASON]))
            continue
        except OverflowError as exc:  # float() of an integer too big for a double
            bad.append(RejectedRow(index, row, f"malformed event row: {exc}"[:MAX_REASON]))
            continue
        problem = _scalar_problem(event) or (_deep_problem(event) if deep else None)
        if problem is None:
            good.append(event)
        else:
            bad.append(RejectedRow(index, row, problem))
    return good, bad


def summarise(bad: list[RejectedRow]) -> str:
    """One reason for a dead letter holding several rejected rows."""
    parts = [f"events[{r.index}]: {r.reason}" for r in bad[:5]]
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    return ("; ".join(parts) + more)[: MAX_REASON * 2]
