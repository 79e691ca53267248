"""Query parameters, path ids and text fields, checked in one place so no route answers 500.

Pure: no I/O. Each function takes the mapping the value comes from (``request.query``,
``request.match_info`` or a JSON body) and raises :class:`InputError` naming the field.

What this guards against, and why each is not obvious:
- ``str.isdigit`` accepts Unicode digits (``²``, ``٣``) that ``int()`` refuses: ids and numbers
  must be ASCII digits.
- Postgres ``bigint`` overflows at 2**63 - 1: an id beyond it can name no row.
- Postgres ``text`` cannot hold U+0000, and strings with lone surrogates (a header or path
  decoded with ``surrogateescape``) cannot be encoded for it at all.
- ``datetime`` overflows outside years 1-9999 and Postgres refuses some of what it accepts:
  times are bounded to [1970, 9999).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from heron_common.db import BIGINT_MAX
from heron_ingest.validation import InputError

MIN_TIME = 0.0  # 1970-01-01T00:00:00Z
MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC).timestamp()  # exclusive


def _id(raw: str) -> int | None:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= BIGINT_MAX else None


def text_problem(value: str) -> str | None:
    """Why Postgres text cannot hold ``value``, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid UTF-8"
    return None


def path_id(match_info: Mapping[str, str], name: str) -> int:
    """A row id from the path; anything that cannot be one is simply not found."""
    value = _id(match_info[name])
    if value is None:
        raise InputError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return value


def query_int(query: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = _id(raw)
    if value is None or not minimum <= value <= maximum:
        raise InputError(422, "invalid_parameter", f"{name} must be a whole number from {minimum} to {maximum}")
    return value


def query_id(query: Mapping[str, str], name: str, what: str) -> int | None:
    """An optional id parameter (``before``, ``endpoint_id``); ``what`` says what it should be."""
    raw = query.get(name)
    if raw is None:
        return None
    value = _id(raw)
    if value is None:
        raise InputError(422, "invalid_parameter", f"{name} must be {what}")
    return value


def query_text(query: Mapping[str, str], name: str, *, max_len: int = 200) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    problem = text_problem(raw) or (f"is longer than {max_len} characters" if len(raw) > max_len else None)
    if problem:
        raise InputError(422, "invalid_parameter", f"{name} {problem}")
    return raw


def text_field(body: Mapping[str, Any], name: str, *, max_len: int, required: bool = False) -> str | None:
    """A string field of a JSON body (None when absent or null and not required)."""
    value = body.get(name)
    if value is None:
        if required:
            raise InputError(422, "missing_field", f"{name} is required", name)
        return None
    if not isinstance(value, str):
        raise InputError(422, "invalid_field", f"{name} must be a string", name)
    if required and not value.strip():
        raise InputError(422, "missing_field", f"{name} is required", name)
    problem = text_problem(value) or (f"is longer than {max_len} characters" if len(value) > max_len else None)
    if problem:
        raise InputError(422, "invalid_field", f"{name} {problem}", name)
    return value


# The longest interval, grace or timeout a monitor accepts.
MAX_SECONDS = 366 * 86400.0


def known_fields(body: Mapping[str, Any], known: set[str]) -> None:
    """422 for the first field of ``body`` that is not in ``known`` (``api_key`` is always allowed)."""
    unknown = sorted(set(body) - known - {"api_key"})
    if unknown:
        raise InputError(422, "invalid_field", f"unknown field {unknown[0]}; known: {', '.join(sorted(known))}")


def seconds_field(body: Mapping[str, Any], name: str, *, minimum: float, maximum: float = MAX_SECONDS) -> float | None:
    """A number of seconds in [minimum, maximum], or None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(422, "invalid_field", f"{name} must be a number of seconds", name)
    if not minimum <= value <= maximum:
        raise InputError(422, "invalid_field", f"{name} must be between {minimum:g} and {maximum:g} seconds", name)
    return float(value)


def id_field(body: Mapping[str, Any], name: str, what: str, *, text_ok: bool = False) -> int | None:
    """A row id from a body; ``text_ok``: also as ASCII digits (a form posts every field as text),
    and an empty field is no id."""
    value = body.get(name)
    if value is None or (text_ok and value == ""):
        return None
    if text_ok and isinstance(value, str):
        parsed = _id(value)
        if parsed is None or parsed == 0:
            raise InputError(422, "invalid_field", f"{name} must be {what}", name)
        return parsed
    if type(value) is not int or not 0 < value <= BIGINT_MAX:
        raise InputError(422, "invalid_field", f"{name} must be {what}", name)
    return value


def time_value(raw: Any, name: str) -> datetime:
    """An ISO-8601 time or unix seconds, as an aware datetime in [1970, 9999)."""
    problem = f"{name} must be an ISO-8601 time or unix seconds, from 1970 up to (not including) 9999"
    try:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            ts = float(raw)
        elif isinstance(raw, str) and text_problem(raw) is None:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            ts = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        else:
            raise InputError(422, "invalid_field", problem)
        if not (math.isfinite(ts) and MIN_TIME <= ts < MAX_TIME):
            raise InputError(422, "invalid_field", problem)
        return datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):
        raise InputError(422, "invalid_field", problem) from None
