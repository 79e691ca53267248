"""Third-party credentials at rest (issue 13): a project's Slack incoming-webhook URL and on-call
channel targets are stored sealed, deliveries name the project rather than the URL (so dedup holds
without keeping the URL), rows stored before sealing keep working, and heron-migrate's re-seal
(also a HERON_SECRETS_KEY rotation) seals them."""

from __future__ import annotations

import time
from dataclasses import replace
from importlib import resources
from typing import Any

import asyncpg
from cryptography.fernet import Fernet

from heron_common import messages, oncall_store
from heron_common.clock import SystemClock
from heron_common.oncall import ack
from heron_common.outbound import GuardedSession
from heron_common.secretbox import PREFIX, SecretBox, reseal_all
from heron_common.settings import Settings
from heron_notifier import ledger
from heron_notifier.worker import DeliveryWorker
from tests.support.fakes import FakeSlack
from tests.support.system import System, running_system


def incident(project_id: int) -> dict:
    data = {
        "incident": {"id": 1, "monitor_id": 1, "kind": "event", "event_name": "payment.completed"},
        "project": {"id": project_id, "name": "sealed"},
    }
    return messages.alert_message("incident.opened", messages.new_id(), time.time(), data)


async def record(pool: asyncpg.Pool, message: dict) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await ledger.record_alert(conn, message, time.time(), {ledger.SLACK: 0.0, ledger.WEBHOOK: 0.0})


async def call(system: System, method: str, path: str, key: str, body: object = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {key}"}
    async with system.http.request(method, system.ingest.url + path, json=body, headers=headers) as r:
        return r.status, (await r.json() if r.status != 204 else None)


async def deliver(pg: asyncpg.Pool, redis: Any, settings: Settings) -> bool:
    # Slack pacing (one message a second per URL) is wall-clock in Redis: move past it.
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:pace:*")]
    if keys:
        await redis.delete(*keys)
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=5)
    try:
        return await DeliveryWorker(pg, redis, http, settings, SystemClock()).step()
    finally:
        await http.close()


async def test_a_projects_slack_url_is_sealed_and_deliveries_name_the_project_not_the_url(
    settings: Settings, pg: asyncpg.Pool, redis: Any, slack: FakeSlack
) -> None:
    async with running_system(settings, services=()) as system:
        project_id, key = await system.create_project()
        status, body = await call(
            system, "PATCH", f"/v1/projects/{project_id}/slack", key, {"slack_webhook_url": slack.url}
        )
        assert status == 200 and body == {"project_id": project_id, "slack_webhook_url": slack.url}
    stored = await pg.fetchval("SELECT slack_webhook_url FROM projects WHERE id = $1", project_id)
    assert stored.startswith(PREFIX) and slack.url not in stored
    assert SecretBox(settings.secrets_keys).open(stored) == slack.url

    message = incident(project_id)
    assert await record(pg, message) == 1
    assert await record(pg, message) == 0  # a redelivered alert still makes no second delivery
    row = await pg.fetchrow("SELECT target_kind, target FROM deliveries WHERE project_id = $1", project_id)
    assert (row["target_kind"], row["target"]) == (ledger.SLACK, f"project:{project_id}")
    assert await deliver(pg, redis, settings)
    [got] = await slack.wait_for(1)
    assert "payment.completed" in got.body.decode()
    assert await pg.fetchval("SELECT status FROM deliveries WHERE project_id = $1", project_id) == "succeeded"
    assert not await pg.fetchval("SELECT count(*) FROM deliveries WHERE target LIKE '%' || $1 || '%'", slack.url)

    # Removed meanwhile: the pending delivery fails saying so (nothing is sent anywhere).
    assert await record(pg, incident(project_id)) == 1
    await pg.execute("UPDATE projects SET slack_webhook_url = NULL WHERE id = $1", project_id)
    assert await deliver(pg, redis, settings)
    last = await pg.fetchrow(
        "SELECT status, last_error FROM deliveries WHERE project_id = $1 ORDER BY id DESC LIMIT 1", project_id
    )
    assert (last["status"], last["last_error"]) == ("failed", "the project's Slack URL was removed")
    assert len(slack.received) == 1


async def test_values_stored_before_sealing_keep_working_and_the_reseal_and_migration_clear_them(
    settings: Settings, pg: asyncpg.Pool, redis: Any, slack: FakeSlack
) -> None:
    async with running_system(settings, services=()) as system:
        project_id, key = await system.create_project()
        _, user = await call(system, "POST", "/v1/users", key, {"email": "ana@example.com", "name": "Ana"})
        hook = slack.url + "/services/T0/B0/secret"
        status, channel = await call(
            system,
            "POST",
            f"/v1/users/{user['id']}/channels",
            key,
            {"kind": "slack", "target": hook},  # type: ignore[index]
        )
        assert status == 201 and channel["target"] == hook  # type: ignore[index]
        sealed = await pg.fetchval("SELECT target FROM user_channels WHERE id = $1", channel["id"])  # type: ignore[index]
        assert sealed.startswith(PREFIX) and hook not in sealed
        status, listed = await call(system, "GET", f"/v1/users/{user['id']}/channels", key)  # type: ignore[index]
        assert [c["target"] for c in listed] == [hook]  # type: ignore[union-attr,index]

        # Stored in the clear by an earlier version: a project URL, a channel, a delivery naming the URL.
        await pg.execute("UPDATE projects SET slack_webhook_url = $1 WHERE id = $2", slack.url, project_id)
        await pg.execute("UPDATE user_channels SET target = $1 WHERE id = $2", hook, channel["id"])  # type: ignore[index]
        status, listed = await call(system, "GET", f"/v1/users/{user['id']}/channels", key)  # type: ignore[index]
        assert [c["target"] for c in listed] == [hook]  # type: ignore[union-attr,index]
    message = incident(project_id)
    await pg.execute(
        "INSERT INTO deliveries (alert_id, project_id, topic, target_kind, target, payload, next_attempt_at)"
        " VALUES ($1, $2, 'incident.opened', 'slack', $3, $4, now())",
        message["id"],
        project_id,
        slack.url,
        message,
    )
    migration = resources.files("heron_common.migrations").joinpath("0019_slack_target_identity.sql").read_text()
    await pg.execute(migration)
    assert (
        await pg.fetchval("SELECT target FROM deliveries WHERE project_id = $1", project_id) == f"project:{project_id}"
    )
    assert await record(pg, message) == 0  # the legacy row and a redelivery are the same delivery
    assert await deliver(pg, redis, settings)  # the clear URL is read as it is
    await slack.wait_for(1)

    # heron-migrate's re-seal, here with a rotated key list (a new key first, the old one after).
    new_key = Fernet.generate_key().decode()
    rotated = (new_key, *settings.secrets_keys)
    async with pg.acquire() as conn:
        # The project URL, the channel target and the acknowledge-link key (hex until the first re-seal).
        assert await reseal_all(conn, SecretBox(rotated)) == 3
    only_new = SecretBox((new_key,))
    assert (
        only_new.open(await pg.fetchval("SELECT slack_webhook_url FROM projects WHERE id = $1", project_id))
        == slack.url
    )
    assert only_new.open(await pg.fetchval("SELECT target FROM user_channels WHERE id = $1", channel["id"])) == hook  # type: ignore[index]

    # A notifier holding only the new key delivers to the re-sealed URL.
    assert await record(pg, incident(project_id)) == 1
    assert await deliver(pg, redis, replace(settings, secrets_keys=(new_key,)))
    await slack.wait_for(2)


async def test_a_webhook_endpoints_url_is_sealed_shown_to_its_owner_and_opened_to_send(
    settings: Settings, pg: asyncpg.Pool, redis: Any, slack: FakeSlack
) -> None:
    hook = slack.url + "/services/T0/B0/endpoint-token"  # a Slack-format endpoint: the URL is the credential
    async with running_system(settings, services=()) as system:
        project_id, key = await system.create_project()
        status, endpoint = await call(
            system, "POST", "/v1/webhooks", key, {"url": hook, "format": "slack", "topics": ["incident.*"]}
        )
        assert status == 201 and endpoint["url"] == hook  # type: ignore[index]
        endpoint_id = endpoint["id"]  # type: ignore[index]
        stored = await pg.fetchval("SELECT url FROM webhook_endpoints WHERE id = $1", endpoint_id)
        assert stored.startswith(PREFIX) and "endpoint-token" not in stored
        status, listed = await call(system, "GET", "/v1/webhooks", key)
        assert [e["url"] for e in listed] == [hook]  # type: ignore[union-attr,index]
        moved = hook + "-2"
        status, changed = await call(system, "PATCH", f"/v1/webhooks/{endpoint_id}", key, {"url": moved})
        assert status == 200 and changed["url"] == moved  # type: ignore[index]
        stored = await pg.fetchval("SELECT url FROM webhook_endpoints WHERE id = $1", endpoint_id)
        assert stored.startswith(PREFIX) and "endpoint-token" not in stored

    assert await record(pg, incident(project_id)) == 1
    assert await deliver(pg, redis, settings)
    [got] = await slack.wait_for(1)
    assert got.path.endswith("/endpoint-token-2") and "payment.completed" in got.body.decode()


async def test_the_acknowledge_link_key_is_sealed_at_rest_and_links_signed_before_still_verify(
    settings: Settings, pg: asyncpg.Pool
) -> None:
    # Whoever holds this key can acknowledge any incident, and so stop its pages.
    box = SecretBox(settings.secrets_keys)
    key = await oncall_store.ack_key(pg, box)  # stored as hex until heron-migrate's first re-seal
    assert len(key) == 32
    claims = ack.AckClaims("8b0e7a52-4c8f-4a1c-9a7e-0d3f2b6c1e55", 7, 3, "ana@example.com", int(time.time()) + 600)
    token = ack.sign(key, claims)

    async with pg.acquire() as conn:
        assert await reseal_all(conn, box) == 1
    stored = await pg.fetchval("SELECT sealed_ack_key FROM oncall_keys WHERE id = 1")
    assert stored.startswith(PREFIX) and key.hex() not in stored
    assert await oncall_store.ack_key(pg, box) == key
    assert ack.verify(await oncall_store.ack_key(pg, box), token, time.time()) == claims
