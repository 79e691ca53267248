"""A message the detector cannot apply never takes other events with it nor stalls its shard;
dead letters are kept, listed and replayable. Real Postgres, Redis and RabbitMQ."""

from __future__ import annotations

import json

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from prometheus_client import REGISTRY

from heron_common import bus, deadletter_store, messages
from heron_common.db import create_pool, is_transient
from heron_common.deadletters import DeadLetter
from heron_common.messages import TrackedEvent
from heron_common.service import AMQP
from heron_common.settings import Settings
from heron_detector.core import Detector
from tests.support.system import System, running_system
from tests.support.waiting import eventually

T0 = 1_800_000_000.0


def counter(name: str, **labels: str) -> float:
    """A counter's value in this process's registry (the detector runs in-process here)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def stored_letters() -> float:
    """heron_dead_letters_stored_total over every queue label."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == "heron_dead_letters_stored_total"
    )


ADMIN = {"Authorization": "Bearer test-admin-token"}

# Postgres refusing a value for a reason the screen cannot know: a trigger on the events table.
REFUSE_BOOM = """
CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.metadata->>'k' = 'boom' THEN RAISE EXCEPTION 'boom is not allowed'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_boom();
"""


def row(project_id: int, name: str, metadata: object = None, t: float = T0) -> list:
    return TrackedEvent(project_id, name, None, None, t, t, metadata).to_wire()  # type: ignore[arg-type]


def body(*rows: list) -> bytes:
    # The stdlib encoder: it writes nesting orjson refuses to (an older producer might).
    return json.dumps(messages.events_message(list(rows), now=T0)).encode()


def same_shard_names(a: int, b: int, shards: int) -> tuple[str, str, int]:
    """An event name for project ``a`` and one for ``b`` whose streams share a shard."""
    shard = messages.stream_shard(a, "x", None, None, shards)
    for i in range(1000):
        if messages.stream_shard(b, f"y{i}", None, None, shards) == shard:
            return "x", f"y{i}", shard
    raise AssertionError("no name found")


async def count(pg: asyncpg.Pool, project_id: int) -> int:
    return await pg.fetchval("SELECT coalesce(sum(event_count), 0) FROM monitors WHERE project_id = $1", project_id)


@pytest.fixture
def detector(pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings) -> Detector:
    return Detector(pg, redis, None, settings)


@pytest.fixture
async def two_projects(pg: asyncpg.Pool) -> tuple[int, int]:
    a = await pg.fetchval("INSERT INTO projects (name) VALUES ('a') RETURNING id")
    b = await pg.fetchval("INSERT INTO projects (name) VALUES ('b') RETURNING id")
    return a, b


async def test_nul_row_is_dead_lettered_and_the_rest_of_the_shard_goes_on(
    detector: Detector, pg: asyncpg.Pool, settings: Settings, two_projects: tuple[int, int]
) -> None:
    a, b = two_projects
    name_a, name_b, shard = same_shard_names(a, b, settings.shards)
    mixed = body(row(a, name_a, {"k": "a\u0000"}), row(b, name_b, {"k": "fine"}))
    later = body(row(a, name_a, {"k": "later"}, T0 + 1))
    rows_before = counter("heron_detector_poison_rows_total")
    messages_before = counter("heron_detector_poison_messages_total")
    handled = await detector.handle_many(shard, [mixed, later], now=T0 + 1)
    # An operator sees it: one row counted as refused, no whole message poisoned.
    assert counter("heron_detector_poison_rows_total") == rows_before + 1
    assert counter("heron_detector_poison_messages_total") == messages_before

    # Nothing is poison: the mixed message's good row and the later message are both committed.
    assert handled.poison == {}
    assert (handled.events, handled.rejected_rows) == (2, 1)
    assert await count(pg, b) == 1
    assert await count(pg, a) == 1
    assert await pg.fetchval("SELECT metadata->>'k' FROM events WHERE project_id = $1", a) == "later"

    [letter] = await deadletter_store.page(pg, None, None, 10)
    assert letter["project_id"] == a
    assert "events[0]" in letter["reason"] and "NUL" in letter["reason"]
    names = bus.Names(settings.amqp_prefix)
    assert (letter["queue"], letter["exchange"], letter["routing_key"]) == (
        names.detector_dead,
        names.ingest_exchange,
        names.shard_key(shard),
    )
    assert messages.decode(bytes(letter["body"]))["events"] == [row(a, name_a, {"k": "a\u0000"})]

    # Redelivered (say the ack was lost): counted once, dead-lettered once.
    again = await detector.handle_many(shard, [mixed], now=T0 + 2)
    assert (again.duplicates, again.events, again.rejected_rows) == (1, 0, 0)
    assert len(await deadletter_store.page(pg, None, None, 10)) == 1


@pytest.mark.parametrize("bad", ["trigger", "deep"])
async def test_unforeseen_failure_isolates_only_the_message_that_fails_alone(
    detector: Detector, pg: asyncpg.Pool, settings: Settings, two_projects: tuple[int, int], monkeypatch, bad: str
) -> None:
    a, b = two_projects
    name_a, name_b, shard = same_shard_names(a, b, settings.shards)
    if bad == "trigger":
        await pg.execute(REFUSE_BOOM)
        metadata: object = {"k": "boom"}
    else:
        # Nested deeper than orjson encodes; with the screen off, the COPY's encoder fails.
        from heron_detector import screen

        monkeypatch.setattr(screen, "_flagged", lambda rows: False)
        metadata = 1
        for _ in range(300):
            metadata = {"a": metadata}
    batch = [body(row(a if i % 2 else b, name_a if i % 2 else name_b, {"i": i}, T0 + i)) for i in range(6)]
    batch[3] = body(row(a, name_a, metadata, T0 + 3), row(b, name_b, {"i": 3}, T0 + 3))
    messages_before = counter("heron_detector_poison_messages_total")
    handled = await detector.handle_many(shard, batch, now=T0 + 6)

    assert list(handled.poison) == [3]
    assert counter("heron_detector_poison_messages_total") == messages_before + 1
    assert handled.events == 5
    assert await count(pg, a) + await count(pg, b) == 5
    # The poison message left nothing behind: not even its good row, nor its id.
    assert await pg.fetchval("SELECT count(*) FROM processed_messages") == 5
    # The pool's connections are fine afterwards.
    assert (await detector.handle_many(shard, [body(row(a, name_a, {"i": 9}, T0 + 9))], now=T0 + 9)).events == 1


async def test_transient_errors_still_raise(redis: redis_asyncio.Redis, settings: Settings) -> None:
    pool = await create_pool(settings.database_url, max_size=2)
    await pool.close()
    detector = Detector(pool, redis, None, settings)
    with pytest.raises(Exception) as caught:
        await detector.handle_many(0, [body(row(1, "x"))], now=T0)
    assert is_transient(caught.value)


async def _dead_letters(system: System, **params: str) -> list[dict]:
    async with system.http.get(f"{system.ingest.url}/v1/admin/dead-letters", params=params, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_keeper_stores_a_poison_message_and_replay_applies_it_once_fixed(
    settings: Settings, pg: asyncpg.Pool
) -> None:
    await pg.execute(REFUSE_BOOM)
    async with running_system(settings, services=("detector",)) as system:
        project_id, _ = await system.create_project("p")
        names = bus.Names(settings.amqp_prefix)
        shard = messages.stream_shard(project_id, "job", None, None, settings.shards)
        poison = messages.events_message([row(project_id, "job", {"k": "boom"})], now=T0)
        stored_before = stored_letters()
        channel = await system.ingest.app[AMQP].channel()
        try:
            exchange = await channel.get_exchange(names.ingest_exchange, ensure=False)
            await bus.publish(exchange, names.shard_key(shard), poison)
        finally:
            await channel.close()

        # Rejected by the detector, dead-lettered by RabbitMQ, stored by the keeper.
        [listed] = await eventually(lambda: _dead_letters(system, queue="detector"), lambda rows: len(rows) == 1)
        assert listed["message_id"] == poison["id"]
        assert listed["project_id"] == project_id
        assert listed["reason"] == f"rejected in {names.shard_queue(shard)}"
        assert (listed["exchange"], listed["routing_key"]) == (names.ingest_exchange, names.shard_key(shard))
        assert listed["replayed_at"] is None
        assert stored_letters() == stored_before + 1
        assert await _dead_letters(system, queue="notifier") == []
        url = f"{system.ingest.url}/v1/admin/dead-letters/{listed['id']}"
        async with system.http.get(url, headers=ADMIN) as resp:
            shown = await resp.json()
        assert shown["body"]["events"] == poison["events"]
        assert shown["headers"]["x-first-death-reason"] == "rejected"
        assert await count(pg, project_id) == 0

        # The cause is fixed; the replay is applied (with a fresh message id).
        await pg.execute("DROP TRIGGER refuse_boom ON events")
        async with system.http.post(f"{url}/replay", headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
            replayed = await resp.json()
        assert replayed["replayed_at"] is not None and replayed["replay_message_id"] != poison["id"]
        await eventually(lambda: count(pg, project_id), lambda n: n == 1)

        async with system.http.post(f"{url}/replay", headers=ADMIN) as resp:
            assert resp.status == 409
            assert (await resp.json())["error"]["code"] == "already_replayed"


async def test_admin_api_refuses_strangers_and_unknown_ids(settings: Settings, pg: asyncpg.Pool) -> None:
    names = bus.Names(settings.amqp_prefix)
    async with running_system(settings, services=()) as system:
        base = f"{system.ingest.url}/v1/admin/dead-letters"
        await deadletter_store.insert(
            pg,
            [
                DeadLetter(
                    queue=names.notifier_dead,
                    exchange=names.alerts_exchange,
                    routing_key="incident.opened.event",
                    reason="delivery_limit in q",
                    message_id="m1",
                    project_id=None,
                    body=b"\x00not json",
                    headers={},
                    deaths=20,
                    dead_at=None,
                )
            ],
        )
        [letter] = await _dead_letters(system)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            for method, url in (("GET", base), ("GET", f"{base}/{letter['id']}"), ("POST", f"{base}/1/replay")):
                async with system.http.request(method, url, headers=headers) as resp:
                    assert resp.status == 401
                    assert (await resp.json())["error"]["code"] == "invalid_admin_token"
        for method, url in (("GET", f"{base}/999999"), ("GET", f"{base}/abc"), ("POST", f"{base}/999999/replay")):
            async with system.http.request(method, url, headers=ADMIN) as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == "not_found"
        async with system.http.get(base, params={"limit": "0"}, headers=ADMIN) as resp:
            assert resp.status == 422
        async with system.http.get(f"{base}/{letter['id']}", headers=ADMIN) as resp:
            shown = await resp.json()
        assert shown["body"] is None and shown["body_base64"] == "AG5vdCBqc29u"

        replay = f"{base}/{letter['id']}/replay"
        # The alerts exchange is not declared yet (no detector ran): 503, and the claim is released.
        async with system.http.post(replay, headers=ADMIN) as resp:
            assert resp.status == 503, await resp.text()
        channel = await system.ingest.app[AMQP].channel()
        await bus.declare_notifier_queue(channel, names)
        await channel.close()
        for params, status in (({}, 200), ({}, 409), ({"force": "true"}, 200)):
            async with system.http.post(replay, params=params, headers=ADMIN) as resp:
                assert resp.status == status, await resp.text()
        # An alert keeps its id on replay: it is the alert's identity end to end.
        [shown] = await _dead_letters(system, queue="notifier")
        assert shown["replay_message_id"] is None  # not a Heron envelope: sent unchanged


async def test_rows_too_deep_to_write_back_make_their_message_poison_alone(
    detector: Detector, pg: asyncpg.Pool, settings: Settings, two_projects: tuple[int, int]
) -> None:
    a, b = two_projects
    name_a, name_b, shard = same_shard_names(a, b, settings.shards)
    # orjson reads 1,020 levels but neither it nor the stdlib writes them back: the refused rows
    # cannot become a dead letter of their own, so the whole message is rejected as received.
    deep = '{"a":' * 1020 + "1" + "}" * 1020
    envelope = messages.events_message([], now=T0)
    raw = (
        f'{{"type":"events","v":1,"id":"{envelope["id"]}","at":{T0},'
        f'"events":[[{a},"{name_a}",null,null,{T0},{T0},{deep}]]}}'
    ).encode()
    handled = await detector.handle_many(shard, [raw, body(row(b, name_b, {"k": "next"}))], now=T0)
    assert list(handled.poison) == [0]
    assert handled.events == 1 and await count(pg, b) == 1
