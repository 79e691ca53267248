"""The public HTTP API: authentication, validation errors, scoping, pagination, no loss."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest

from heron_common.keys import hash_key
from heron_common.settings import Settings
from heron_ingest.context import AUTH, REVOCATIONS
from tests.support.system import Running, System, running_system, start
from tests.support.waiting import eventually


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    async with running_system(settings, services=("detector",)) as s:
        yield s


async def post(system: System, path: str, body: object = None, *, raw: bytes | None = None, headers=None, params=None):
    data = raw if raw is not None else orjson.dumps(body)
    async with system.http.post(system.ingest.url + path, data=data, headers=headers or {}, params=params) as r:
        return r.status, await r.json(), r.headers


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_project_creation_needs_the_admin_token(system: System) -> None:
    status, body, _ = await post(system, "/v1/projects", params={"name": "x"})
    assert status == 401 and body["error"]["code"] == "invalid_admin_token"
    status, body, _ = await post(system, "/v1/projects", params={"name": "x"}, headers=bearer("wrong"))
    assert status == 401
    status, body, _ = await post(system, "/v1/projects", {}, headers=bearer(system.settings.admin_token or ""))
    assert status == 422 and "name" in body["error"]["message"]
    project_id, key = await system.create_project("MyApp")
    assert key.startswith("heron_") and project_id > 0


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "mentions"),
    [
        ("/v1/track", {}, 422, "missing_field", "event_name"),
        ("/v1/track", {"event_name": ""}, 422, "invalid_field", "event_name"),
        ("/v1/track", {"event_name": 5}, 422, "invalid_field", "event_name"),
        ("/v1/track", {"event_name": "a", "metadata": [1]}, 422, "invalid_field", "metadata"),
        ("/v1/track", {"event_name": "a", "metadata": {"x": "y" * 9000}}, 413, "metadata_too_large", "metadata"),
        ("/v1/track", {"event_name": "a", "timestamp": "yesterday"}, 422, "invalid_field", "timestamp"),
        ("/v1/track", {"event_name": "a", "service": 3}, 422, "invalid_field", "service"),
        ("/v1/track", [1, 2], 422, "invalid_event", "object"),
        ("/v1/events", {"events": []}, 422, "invalid_field", "events"),
        ("/v1/events", {"events": "no"}, 422, "invalid_field", "events"),
        ("/v1/events", {"nothing": 1}, 422, "missing_field", "events"),
        (
            "/v1/events",
            {"events": [{"event": "ok"}, {"event": "ok"}, {"evnt": "typo"}]},
            422,
            "missing_field",
            "events[2].event_name",
        ),
        ("/v1/events", {"events": [{"event": "x"}] * 1001}, 413, "batch_too_large", "1000"),
    ],
)
async def test_bad_input_gets_a_clear_error(system: System, path, body, status, code, mentions) -> None:
    _, key = await system.create_project()
    got_status, got, _ = await post(system, path, body, headers=bearer(key))
    assert got_status == status
    assert got["error"]["code"] == code
    assert mentions in got["error"]["message"]


async def test_malformed_requests(system: System) -> None:
    _, key = await system.create_project()
    status, body, _ = await post(system, "/v1/track", raw=b"{nope", headers=bearer(key))
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    status, body, _ = await post(system, "/v1/track", raw=b"", headers=bearer(key))
    assert (status, body["error"]["code"]) == (400, "empty_body")
    big = b'{"event_name": "a", "metadata": {"x": "' + b"y" * 2_000_000 + b'"}}'
    status, body, _ = await post(system, "/v1/track", raw=big, headers=bearer(key))
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    async with system.http.get(system.ingest.url + "/v1/nothing-here") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    async with system.http.get(system.ingest.url + "/v1/track") as r:
        assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"


async def test_invalid_keys_are_never_accepted(system: System) -> None:
    status, body, _ = await post(system, "/v1/events", {"events": [{"event": "a"}]})
    assert (status, body["error"]["code"]) == (401, "missing_api_key")
    for key in ("heron_forged", "", "x" * 500):
        status, body, _ = await post(system, "/v1/events", {"api_key": key, "events": [{"event": "a"}]})
        assert status == 401, key
    status, _, _ = await post(system, "/v1/track", {"event_name": "a"}, params={"api_key": "heron_nope"})
    assert status == 401


async def test_revoked_key_stops_working(system: System) -> None:
    project_id, key = await system.create_project()
    async with system.http.post(f"{system.ingest.url}/v1/projects/{project_id}/keys", headers=bearer(key)) as r:
        assert r.status == 201
        second = await r.json()
    assert (await post(system, "/v1/track", {"event_name": "a"}, headers=bearer(second["api_key"])))[0] == 202
    async with system.http.delete(
        f"{system.ingest.url}/v1/projects/{project_id}/keys/{second['id']}", headers=bearer(key)
    ) as r:
        assert r.status == 204
    assert (await post(system, "/v1/track", {"event_name": "a"}, headers=bearer(second["api_key"])))[0] == 401
    assert (await post(system, "/v1/track", {"event_name": "a"}, headers=bearer(key)))[0] == 202
    async with system.http.get(f"{system.ingest.url}/v1/projects/{project_id}/keys", headers=bearer(key)) as r:
        listed = await r.json()
    assert [k["revoked_at"] is not None for k in listed] == [False, True]
    assert all("api_key" not in k for k in listed)  # plaintext is shown once, at creation


async def test_accepted_events_are_all_stored_in_every_accepted_shape(system: System) -> None:
    _, key = await system.create_project()
    accepted = 0
    # Bearer, single event.
    status, body, _ = await post(system, "/v1/track", {"event_name": "signup"}, headers=bearer(key))
    assert (status, body["status"]) == (202, "accepted")
    accepted += 1
    # The shape existing SDKs send: api_key in the body, "event" for the name, and 200 "stored".
    legacy = {
        "api_key": key,
        "events": [
            {
                "event": "payment.completed",
                "timestamp": 1732300000,
                "service": "pay",
                "environment": "prod",
                "metadata": {"amount": 1},
            },
            {"event_name": "payment.completed", "service": "pay", "environment": "prod"},
        ],
    }
    status, body, _ = await post(system, "/v1/events", legacy)
    assert (status, body) == (200, {"status": "stored", "count": 2})
    accepted += 2
    # ?api_key= and a gzip body.
    gz = gzip.compress(orjson.dumps({"events": [{"event": "email.sent"}] * 50}))
    status, body, _ = await post(
        system,
        "/v1/events",
        raw=gz,
        params={"api_key": key},
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert (status, body) == (200, {"status": "stored", "count": 50})
    accepted += 50
    # Rejected requests store nothing.
    await post(system, "/v1/events", {"events": [{"event": "email.sent"}, {}]}, headers=bearer(key))

    async def stored() -> int:
        async with system.http.get(system.ingest.url + "/v1/monitors", headers=bearer(key)) as r:
            return sum(m["event_count"] for m in await r.json())

    assert await eventually(stored, lambda n: n >= accepted) == accepted
    async with system.http.get(system.ingest.url + "/v1/monitors", headers=bearer(key)) as r:
        monitors = {(m["event_name"], m["service"], m["environment"]): m for m in await r.json()}
    assert set(monitors) == {("signup", None, None), ("payment.completed", "pay", "prod"), ("email.sent", None, None)}
    pay = monitors[("payment.completed", "pay", "prod")]
    async with system.http.get(f"{system.ingest.url}/v1/monitors/{pay['id']}/events", headers=bearer(key)) as r:
        events = await r.json()
    assert {"amount": 1} in [e["metadata"] for e in events]
    # The 2024 client timestamp was clamped to an hour before receipt: that is the gap learned.
    assert pay["state"] == "new" and pay["deadline"] is None
    assert abs(pay["expected_interval"] - 3600) < 5


async def test_a_retry_with_the_same_idempotency_key_counts_once(system: System, pg) -> None:
    # A client whose first try was stored but whose answer was lost retries with the same key.
    project_id, key = await system.create_project()
    other_id, other_key = await system.create_project()
    batch = {"events": [{"event_name": "charge", "metadata": {"n": i}} for i in range(3)]}
    once = {**bearer(key), "Idempotency-Key": "batch-1"}
    for _ in range(3):
        status, body, _ = await post(system, "/v1/events", batch, headers=once)
        assert (status, body) == (200, {"status": "stored", "count": 3})
    # The retry may carry more events after the first try's: those are new, and counted.
    longer = {"events": batch["events"] + [{"event_name": "charge", "metadata": {"n": 3}}]}
    assert (await post(system, "/v1/events", longer, headers=once))[0] == 200
    # Another key, no key, or the same key in another project: distinct requests, counted.
    assert (await post(system, "/v1/events", batch, headers={**bearer(key), "Idempotency-Key": "batch-2"}))[0] == 200
    assert (await post(system, "/v1/track", {"event_name": "charge"}, headers=bearer(key)))[0] == 202
    assert (await post(system, "/v1/events", batch, headers={**bearer(other_key), "Idempotency-Key": "batch-1"}))[
        0
    ] == 200

    async def counts() -> dict[int, int]:
        rows = await pg.fetch(
            "SELECT project_id, event_count FROM monitors WHERE project_id = ANY($1::bigint[])", [project_id, other_id]
        )
        return {r["project_id"]: r["event_count"] for r in rows}

    # Events are applied in order within a stream's shard: once the last request's event is
    # counted, every earlier one has been applied (or skipped as a repeat).
    assert await eventually(counts, lambda c: c.get(project_id, 0) >= 8 and c.get(other_id, 0) >= 3) == {
        project_id: 8,
        other_id: 3,
    }
    # A malformed key is refused before anything is stored.
    for bad in ("", "x" * 256, "ünïcode", "with space"):
        status, body, _ = await post(
            system, "/v1/track", {"event_name": "charge"}, headers={**bearer(key), "Idempotency-Key": bad}
        )
        assert (status, body["error"]["code"]) == (400, "invalid_idempotency_key"), bad


async def test_projects_cannot_see_each_other(system: System, slack) -> None:
    a_id, a_key = await system.create_project("a")
    b_id, b_key = await system.create_project("b")
    await post(system, "/v1/track", {"event_name": "a.event"}, headers=bearer(a_key))

    async def a_monitors() -> list:
        async with system.http.get(system.ingest.url + "/v1/monitors", headers=bearer(a_key)) as r:
            return await r.json()

    [monitor] = await eventually(a_monitors, lambda ms: len(ms) == 1)
    async with system.http.get(f"{system.ingest.url}/v1/monitors/{monitor['id']}", headers=bearer(b_key)) as r:
        assert r.status == 404
    async with system.http.get(f"{system.ingest.url}/v1/monitors", headers=bearer(b_key)) as r:
        assert await r.json() == []
    async with system.http.patch(
        f"{system.ingest.url}/v1/projects/{a_id}/slack", json={"slack_webhook_url": slack.url}, headers=bearer(b_key)
    ) as r:
        assert r.status == 404
    async with system.http.get(f"{system.ingest.url}/v1/projects/{a_id}/keys", headers=bearer(b_key)) as r:
        assert r.status == 404
    del b_id


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/services/x", "http://169.254.169.254/latest", "http://[::ffff:127.0.0.1]/x", "ftp://x/y", "nope"],
)
async def test_slack_url_must_be_a_public_http_target(settings: Settings, url: str) -> None:
    strict = Settings(**{**settings.__dict__, "outbound_allow_cidrs": ()})
    async with running_system(strict, services=()) as system:
        project_id, key = await system.create_project()
        async with system.http.patch(
            f"{system.ingest.url}/v1/projects/{project_id}/slack", json={"slack_webhook_url": url}, headers=bearer(key)
        ) as r:
            assert r.status == 422
            assert "slack_webhook_url" in (await r.json())["error"]["message"]


async def test_incidents_are_paginated_newest_first(system: System, pg) -> None:
    project_id, key = await system.create_project()
    monitor_id = await pg.fetchval(
        "INSERT INTO monitors (project_id, event_name, shard) VALUES ($1, 'x', 0) RETURNING id", project_id
    )
    for i in range(5):
        await pg.execute(
            "INSERT INTO incidents (project_id, monitor_id, alert_id, event_name, environment, started_at, opened_at,"
            " resolved_at, duration) VALUES ($1, $2, gen_random_uuid(), 'x', $3, now() - interval '1 hour',"
            " now(), now(), 3600)",
            project_id,
            monitor_id,
            "prod" if i % 2 else "staging",
        )
    async with system.http.get(system.ingest.url + "/v1/incidents?limit=2", headers=bearer(key)) as r:
        first = await r.json()
        link = r.headers["Link"]
    assert len(first) == 2 and first[0]["id"] > first[1]["id"]
    assert set(first[0]) >= {"id", "event_name", "service", "environment", "started_at", "resolved_at", "duration"}
    assert first[0]["started_at"].endswith("Z")
    next_url = link.split(">")[0].lstrip("<")
    async with system.http.get(system.ingest.url + next_url, headers=bearer(key)) as r:
        second = await r.json()
    assert len(second) == 2 and second[0]["id"] < first[1]["id"]
    async with system.http.get(system.ingest.url + "/v1/incidents?environment=prod", headers=bearer(key)) as r:
        assert [i["environment"] for i in await r.json()] == ["prod", "prod"]
    async with system.http.get(system.ingest.url + "/v1/incidents?limit=0", headers=bearer(key)) as r:
        assert r.status == 422


@pytest.fixture
async def two_replicas(settings: Settings) -> AsyncIterator[tuple[System, Running]]:
    """Two ingest replicas on the same settings; key cache TTL far longer than any wait here, so
    only the revocation announcement can explain a revoked key being refused."""
    from heron_ingest.app import create_app

    slow_ttl = replace(settings, key_cache_seconds=60.0)
    async with running_system(slow_ttl, services=()) as system:
        other = await start(create_app(slow_ttl))
        try:
            # Subscribed (the first subscription is counted once it is confirmed).
            await eventually(lambda: _value(other.app[REVOCATIONS].subscriptions), lambda n: n >= 1)
            yield system, other
        finally:
            await other.runner.cleanup()


async def _value(v: int) -> int:
    return v


async def _status_on(system: System, replica: Running, key: str) -> int:
    async with system.http.get(replica.url + "/v1/monitors", headers=bearer(key)) as r:
        return r.status


async def test_revocation_reaches_every_replica_long_before_the_cache_ttl(two_replicas) -> None:
    system, other = two_replicas
    project_id, key = await system.create_project()
    async with system.http.post(f"{system.ingest.url}/v1/projects/{project_id}/keys", headers=bearer(key)) as r:
        second = await r.json()
    assert await _status_on(system, other, second["api_key"]) == 200  # now cached on the other replica
    assert other.app[AUTH].cached(hash_key(second["api_key"]))
    async with system.http.delete(
        f"{system.ingest.url}/v1/projects/{project_id}/keys/{second['id']}", headers=bearer(key)
    ) as r:
        assert r.status == 204
    assert await eventually(lambda: _status_on(system, other, second["api_key"]), lambda s: s == 401) == 401
    assert await _status_on(system, other, key) == 200


async def test_a_replica_that_lost_its_subscription_clears_its_key_cache(two_replicas, pg, redis) -> None:
    system, other = two_replicas
    project_id, key = await system.create_project()
    assert await _status_on(system, other, key) == 200  # cached for 60 s
    # Revoked behind every replica's back: the announcement is "missed".
    await pg.execute("UPDATE api_keys SET revoked_at = now() WHERE project_id = $1", project_id)
    assert await _status_on(system, other, key) == 200
    before = other.app[REVOCATIONS].subscriptions
    name = other.app[REVOCATIONS].client_name
    [client_id] = [c["id"] for c in await redis.client_list() if c.get("name") == name]
    await redis.client_kill_filter(_id=client_id)  # only that replica's subscription connection
    await eventually(lambda: _value(other.app[REVOCATIONS].subscriptions), lambda n: n > before)
    assert await _status_on(system, other, key) == 401


async def test_ingest_starts_and_accepts_events_without_redis(settings: Settings) -> None:
    no_redis = replace(settings, redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    async with running_system(no_redis, services=()) as system:
        project_id, key = await system.create_project()
        assert (await post(system, "/v1/track", {"event_name": "a"}, headers=bearer(key)))[0] == 202
        async with system.http.get(f"{system.ingest.url}/readyz") as r:
            assert r.status == 200, await r.text()  # still serving: not pulled from the load balancer
        async with system.http.post(f"{system.ingest.url}/v1/projects/{project_id}/keys", headers=bearer(key)) as r:
            second = await r.json()
        async with system.http.delete(
            f"{system.ingest.url}/v1/projects/{project_id}/keys/{second['id']}", headers=bearer(key)
        ) as r:
            assert r.status == 204  # not announced, but revoked: this replica refuses it at once
        assert (await post(system, "/v1/track", {"event_name": "a"}, headers=bearer(second["api_key"])))[0] == 401
