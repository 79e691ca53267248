"""The row screen and the dead-letter descriptions: pure, tested directly."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson

from heron_common import deadletters, messages
from heron_detector import screen

GOOD = [7, "job.done", "svc", "prod", 1_800_000_000.0, 1_800_000_000.0, {"seq": 1, "tags": ["a", {"b": None}]}]


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def variant(index: int, value: object) -> list:
    row = list(GOOD)
    row[index] = value
    return row


def test_ordinary_rows_pass_untouched() -> None:
    good, bad = screen.screen_rows([GOOD, variant(2, None), variant(6, None)])
    assert bad == []
    assert [e.to_wire() for e in good] == [GOOD, variant(2, None), variant(6, None)]


def test_a_row_with_an_idempotency_key_keeps_it_and_a_malformed_key_is_refused() -> None:
    key = messages.event_key(7, "batch-1", 0)
    assert key == messages.event_key(7, "batch-1", 0) != messages.event_key(8, "batch-1", 0)
    assert key != messages.event_key(7, "batch-1", 1) != messages.event_key(7, "batch-2", 1)
    good, bad = screen.screen_rows([[*GOOD, key], [*GOOD, "not a uuid"], [*GOOD, 5]])
    assert [e.key for e in good] == [key] and good[0].to_wire() == [*GOOD, key]
    assert [r.index for r in bad] == [1, 2]


def test_each_kind_of_bad_row_is_refused_with_a_reason_and_the_rest_kept() -> None:
    cases = {
        "NUL": variant(6, {"k": "a\x00"}),
        "NUL in a key": variant(6, {"\x00": 1}),
        "NUL in a name": variant(1, "job\x00"),
        "NUL in a label": variant(3, "p\x00"),
        "too deep": variant(6, nested(300)),
        "bigint": variant(0, 2**63),
        "zero project": variant(0, 0),
        "NaN": variant(4, "nan"),
        "infinite": variant(5, math.inf),
        "year 10000": variant(4, 253_402_300_800.0),
        "label type": variant(2, 5),
        "too long": variant(1, "x" * (screen.MAX_KEY_BYTES + 1)),
        "shape": [1, 2],
        "not a list": "row",
    }
    rows = [GOOD, *cases.values(), GOOD]
    good, bad = screen.screen_rows(rows)
    assert len(good) == 2
    assert [r.index for r in bad] == list(range(1, len(cases) + 1))
    for r, name in zip(bad, cases, strict=True):
        assert r.reason, name
    assert "NUL" in bad[0].reason
    assert "events[1]" in screen.summarise(bad) and "more" in screen.summarise(bad)


def test_nesting_orjson_still_writes_passes() -> None:
    good, bad = screen.screen_rows([variant(6, nested(250))])
    assert bad == [] and len(good) == 1


def test_from_delivery_reads_rabbitmqs_death_headers() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    body = orjson.dumps(messages.events_message([[5, "x", None, None, 1.0, 1.0, None]], 1.0))
    headers = {
        "x-death": [
            {
                "count": 20,
                "reason": "delivery_limit",
                "queue": "h.detector.shard.2",
                "time": when,
                "exchange": "h.ingest",
                "routing-keys": ["shard.2"],
            }
        ],
        "x-first-death-reason": "delivery_limit",
        "x-first-death-queue": "h.detector.shard.2",
        "x-first-death-exchange": "h.ingest",
        "odd": b"bytes\x00",
    }
    letter = deadletters.from_delivery("h.detector.dead", body, headers, "m", "detector.shard.2")
    assert (letter.exchange, letter.routing_key, letter.deaths, letter.dead_at) == ("h.ingest", "shard.2", 20, when)
    assert letter.reason == "delivery_limit in h.detector.shard.2"
    assert letter.project_id == 5
    assert letter.headers["odd"] == "bytes\ufffd"
    assert letter.headers["x-death"][0]["time"] == when.isoformat()
    # No headers at all (published straight to the queue): still described, never refused.
    bare = deadletters.from_delivery("q", b"junk", None, None, "k")
    assert (bare.reason, bare.routing_key, bare.project_id) == ("dead-lettered", "k", None)


def test_replay_gives_detector_messages_a_fresh_id_and_alerts_keep_theirs() -> None:
    events = messages.events_message([], 1.0)
    body, new_id, kind = deadletters.replay_body(orjson.dumps(events))
    assert kind == "events" and new_id != events["id"] and orjson.loads(body)["id"] == new_id
    alert = messages.alert_message("incident.opened", "a-1", 1.0, {"project": {"id": 3}})
    assert deadletters.replay_body(orjson.dumps(alert))[1] == "a-1"
    assert deadletters.project_of(orjson.dumps(alert)) == 3
    assert deadletters.replay_body(b"junk") == (b"junk", None, None)


def test_anything_ingest_accepts_as_a_stream_key_the_screen_lets_through() -> None:
    # Found by an audit: 3 x 200 emoji passed ingest (200 characters each) and were then refused
    # here (2,000 bytes), accepted and lost. Every code point is at most 4 bytes of UTF-8.
    from heron_ingest import validation

    assert 4 * (validation.MAX_NAME + 2 * validation.MAX_LABEL) <= screen.MAX_KEY_BYTES
