"""Event validation refuses at the door what storage cannot keep: NUL anywhere, metadata too deep."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from heron_ingest.validation import MAX_DEPTH, InputError, may_hold_nul, parse_event, parse_rows, unstorable

KWARGS: dict[str, Any] = {"project_id": 1, "received_at": 1000.0, "max_metadata_bytes": 8192, "max_skew": 3600.0}


def nested(levels: int, leaf: Any = 1) -> dict[str, Any]:
    """Metadata ``levels`` containers deep (the metadata object itself is level 1)."""
    value: Any = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def rows(body: bytes) -> list[list[Any]]:
    """What ingest does with a batch body: the one-scan NUL flag, then the fast path."""
    items = orjson.loads(body)
    return parse_rows(items, batch=True, nul_free=not may_hold_nul(body), **KWARGS)


def refused(body: bytes) -> InputError:
    with pytest.raises(InputError) as got:
        rows(body)
    return got.value


def test_the_reported_batch_is_refused_naming_the_field() -> None:
    err = refused(b'[{"event_name":"x","metadata":{"k":"a\\u0000"}},{"event_name":"x"}]')
    assert (err.status, err.code) == (422, "invalid_field")
    assert "events[0].metadata.k" in err.message and "NUL" in err.message


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ('{"event_name":"a\\u0000"}', "events[0].event_name"),
        ('{"event":"a\\u0000"}', "events[0].event_name"),
        ('{"event_name":"a","service":"\\u0000"}', "events[0].service"),
        ('{"event_name":"a","environment":"p\\u0000"}', "events[0].environment"),
        ('{"event_name":"a","metadata":{"k\\u0000":1}}', "events[0].metadata.k\\u0000"),
        ('{"event_name":"a","metadata":{"l":[1,{"m":"\\u0000"}]}}', "events[0].metadata.l[1].m"),
    ],
)
def test_nul_is_refused_in_every_stored_string_and_key(event: str, field: str) -> None:
    err = refused(f"[{event}]".encode())
    assert err.code == "invalid_field" and field in err.message


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    # The body scan is only a hint; the full path decides.
    [row] = rows(b'[{"event_name":"a\\\\u0000","metadata":{"k":"\\\\u0000"}}]')
    assert row[1] == "a\\u0000" and row[6] == {"k": "\\u0000"}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 252, 253, 254, 255, 256, 600])
def test_metadata_nested_too_deep_is_refused_naming_the_field(levels: int) -> None:
    # Written by hand, as a client would: orjson cannot encode the deeper ones inside a batch.
    body = b'[{"event_name":"a","metadata":' + b'{"a":' * levels + b"1" + b"}" * levels + b"}]"
    err = refused(body)
    assert (err.status, err.code) == (422, "invalid_field")
    assert err.message.startswith("events[0].metadata.a.a") and f"more than {MAX_DEPTH} levels" in err.message


def test_metadata_exactly_at_the_depth_bound_is_accepted_on_either_path() -> None:
    md = nested(MAX_DEPTH, leaf="deepest string")
    [row] = rows(orjson.dumps([{"event_name": "a", "metadata": md}]))
    assert row[6] == md
    assert parse_event({"event_name": "a", "metadata": md}, **KWARGS).metadata == md


def test_many_shallow_containers_are_not_too_deep() -> None:
    md = {"items": [{"id": i} for i in range(100)]}  # 102 brackets, 3 levels: takes the full path
    [row] = rows(orjson.dumps([{"event_name": "a", "metadata": md}]))
    assert row[6] == md


def test_unstorable_is_none_for_ordinary_metadata() -> None:
    assert unstorable({"a": 1, "b": [1, "x", None, {"c": True}], "d": "é😀"}, "metadata") is None


def test_without_the_nul_flag_every_event_is_checked_in_full() -> None:
    with pytest.raises(InputError) as got:
        parse_rows([{"event_name": "a\x00"}], batch=False, **KWARGS)
    assert got.value.message.startswith("event_name")


def test_the_shortest_metadata_too_deep_for_the_bound_is_refused() -> None:
    md: Any = []
    for _ in range(MAX_DEPTH - 2):
        md = [md]
    deepest = {"": md}  # 32 levels: allowed; one more is refused
    assert rows(orjson.dumps([{"event_name": "a", "metadata": deepest}]))[0][6] == deepest
    err = refused(orjson.dumps([{"event_name": "a", "metadata": {"": [md]}}]))
    assert "more than 32 levels" in err.message
