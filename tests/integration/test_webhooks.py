"""Signed webhooks: the API, what receivers verify, retries, disabling, pacing and SSRF."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import standardwebhooks

import heron.webhooks as sdk_webhooks
from heron_common import messages, webhooks
from heron_common.clock import FrozenClock, SystemClock
from heron_common.outbound import GuardedSession
from heron_common.settings import Settings
from heron_notifier import ledger
from heron_notifier.worker import DeliveryWorker
from tests.support.fakes import FakeReceiver, FakeSlack
from tests.support.system import System, running_system

T0 = 1_800_000_000.0


def incident_alert(
    project_id: int, topic: str = "incident.opened", at: float = T0, name: str = "paiement.reçu"
) -> dict:
    data = {
        "incident": {
            "id": 9,
            "event_name": name,
            "service": "pay",
            "environment": "prod",
            "duration": None,
            "started_at": "2027-01-15T08:00:00Z",
            "opened_at": "2027-01-15T08:18:00Z",
            "expected_interval": 180.5,
        },
        "project": {"id": project_id, "name": "fixture"},
    }
    return messages.alert_message(topic, messages.new_id(), at, data)


async def record(pool: asyncpg.Pool, message: dict, now: float) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await ledger.record_alert(conn, message, now, {ledger.SLACK: 0.0, ledger.WEBHOOK: 0.0})


async def add_endpoint(
    pg: asyncpg.Pool, project_id: int, url: str, topics=("*",), fmt: str = "json"
) -> tuple[int, str]:
    secret = webhooks.new_secret()
    endpoint_id = await pg.fetchval(
        "INSERT INTO webhook_endpoints (project_id, url, topics, format, secret) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id",
        project_id,
        url,
        list(topics),
        fmt,
        secret,
    )
    return endpoint_id, secret


@pytest.fixture
async def receiver() -> AsyncIterator[FakeReceiver]:
    r = await FakeReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def wsettings(settings: Settings) -> Settings:
    return replace(settings, webhook_retry_schedule=(0.0, 5.0, 300.0), endpoint_disable_after=3600.0)


@pytest.fixture
async def worker(pg, redis, wsettings: Settings, clock) -> AsyncIterator[DeliveryWorker]:
    http = GuardedSession(wsettings.outbound_allow_cidrs, timeout=wsettings.delivery_timeout)
    yield DeliveryWorker(pg, redis, http, wsettings, clock)
    await http.close()


def published_example_signature(secret: str, body: bytes) -> str:
    """The receiver side of the published Python example, verbatim in spirit."""
    data = json.loads(body)
    message = json.dumps(data, separators=(",", ":"))
    dig = hmac.new(secret.encode("utf-8"), msg=message.encode("utf-8"), digestmod=hashlib.sha256).digest()
    return base64.b64encode(dig).decode()


# --- what receivers see and verify ---------------------------------------------------------------------


async def test_every_delivery_verifies_with_the_published_example_and_standard_webhooks(
    pg, redis, settings: Settings, project, receiver: FakeReceiver
) -> None:
    project_id, _ = project
    _, secret = await add_endpoint(pg, project_id, receiver.url)
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=5)
    worker = DeliveryWorker(pg, redis, http, settings, SystemClock())
    sent = [incident_alert(project_id, at=T0 + i, name=n) for i, n in enumerate(["paiement.reçu", 'a/b"c', "ü🚀"])]
    try:
        for message in sent:
            await record(pg, message, time.time())
        assert await worker.step()
    finally:
        await http.close()
    got = await receiver.wait_for(3)
    standard = standardwebhooks.Webhook("whsec_" + secret.removeprefix("sec_"))
    for request in got:
        body, headers = request.body, request.headers
        assert headers["Heron-Signature"] == published_example_signature(secret, body)
        payload = standard.verify(body, {k.lower(): v for k, v in headers.items()})
        assert sdk_webhooks.verify(secret, body, headers) == payload
        assert set(payload) == {"topic", "created", "data", "meta"}
        assert payload["topic"] == "incident.opened" and payload["meta"] is None
    by_id = {r.headers["webhook-id"]: r.json for r in got}
    assert set(by_id) == {m["id"] for m in sent}  # webhook-id is the alert id
    first = by_id[sent[0]["id"]]
    assert first["created"] == "2027-01-15T08:00:00+00:00"
    assert first["data"]["incident"]["event_name"] == "paiement.reçu"

    # Tampered bodies, wrong secrets and stale timestamps fail, with every verifier.
    request = got[0]
    tampered = request.body.replace(b"prod", b"dev")
    stale = {**request.headers, "webhook-timestamp": str(int(request.headers["webhook-timestamp"]) - 3600)}
    for body, headers, key in (
        (tampered, request.headers, secret),
        (request.body, request.headers, webhooks.new_secret()),
        (request.body, stale, secret),
    ):
        with pytest.raises(sdk_webhooks.WebhookVerificationError):
            sdk_webhooks.verify(key, body, headers)
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook("whsec_" + key.removeprefix("sec_")).verify(
                body, {k.lower(): v for k, v in headers.items()}
            )
        with pytest.raises(webhooks.WebhookVerificationError):
            webhooks.verify(key, body, headers, now=time.time())
    assert published_example_signature(secret, tampered) != request.headers["Heron-Signature"]

    # Replayed an hour later stripped of its webhook-* headers: Heron-Signature alone carries no
    # time, so neither verifier accepts it unless asked to.
    stripped = {k: v for k, v in request.headers.items() if not k.lower().startswith("webhook-")}
    with pytest.raises(sdk_webhooks.WebhookVerificationError, match="can be replayed"):
        sdk_webhooks.verify(secret, request.body, stripped)
    with pytest.raises(webhooks.WebhookVerificationError, match="can be replayed"):
        webhooks.verify(secret, request.body, stripped, now=time.time() + 3600)
    assert sdk_webhooks.verify(secret, request.body, stripped, allow_untimestamped=True) == request.json


# --- retries, Retry-After, 410, disabling ---------------------------------------------------------------


async def test_failing_receiver_gets_the_retry_when_it_recovers(pg, project, receiver, worker, clock) -> None:
    project_id, _ = project
    await add_endpoint(pg, project_id, receiver.url)
    receiver.script = [(500, {}, "down"), (302, {"Location": "http://127.0.0.1:1/"}, "moved")]
    message = incident_alert(project_id)
    await record(pg, message, T0)
    assert await worker.step()
    clock.advance(5)
    assert await worker.step()  # 302: a failure, not followed
    assert not await worker.step()  # next is 300 s later
    clock.advance(300)
    assert await worker.step()
    [got] = receiver.received
    assert got.headers["webhook-id"] == message["id"]
    row = await pg.fetchrow("SELECT * FROM deliveries WHERE project_id = $1", project_id)
    assert (row["status"], row["attempts"]) == ("succeeded", 3)
    codes = [
        r["status_code"]
        for r in await pg.fetch(
            "SELECT status_code FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id", row["id"]
        )
    ]
    assert codes == [500, 302, 200]
    endpoint = await pg.fetchrow("SELECT * FROM webhook_endpoints WHERE project_id = $1", project_id)
    assert endpoint["failing_since"] is None and endpoint["last_success_at"] is not None


async def test_retry_after_is_honoured(pg, project, receiver, worker, clock) -> None:
    project_id, _ = project
    await add_endpoint(pg, project_id, receiver.url)
    receiver.script = [(503, {"Retry-After": "120"}, "busy")]
    await record(pg, incident_alert(project_id), T0)
    assert await worker.step()
    clock.advance(119)
    assert not await worker.step()
    clock.advance(1)
    assert await worker.step()
    assert len(receiver.received) == 1


async def test_410_disables_the_endpoint_and_tells_the_other_channels(
    pg, project, receiver, worker, clock, slack: FakeSlack
) -> None:
    project_id, _ = project
    await pg.execute("UPDATE projects SET slack_webhook_url = $1 WHERE id = $2", slack.url, project_id)
    gone_id, _ = await add_endpoint(pg, project_id, receiver.url)
    other = await FakeReceiver().start()
    try:
        await add_endpoint(pg, project_id, other.url, topics=("notice.*",))
        receiver.script = [(410, {}, "gone")]
        await record(pg, incident_alert(project_id), T0)
        assert await worker.step()  # the incident: Slack gets it, the endpoint answers 410
        endpoint = await pg.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", gone_id)
        assert not endpoint["enabled"] and endpoint["disabled_reason"] == "HTTP 410 Gone"
        clock.advance(2)
        await worker.redis.delete(
            *[k async for k in worker.redis.scan_iter(match=f"{worker.settings.redis_prefix}:pace:*")]
        )
        assert await worker.step()  # the notice: to Slack and to the notice.* endpoint, not to the gone one
        [notice] = await other.wait_for(1)
        assert notice.json["topic"] == "notice.endpoint_disabled"
        assert notice.json["data"]["endpoint"] == {"id": gone_id, "url": receiver.url, "reason": "HTTP 410 Gone"}
        texts = [r.json["text"] for r in slack.received]
        assert any(t.startswith("⚠️ Heron webhook endpoint disabled") for t in texts)
        # New alerts no longer go to the disabled endpoint.
        assert await record(pg, incident_alert(project_id), T0 + 10) == 1  # Slack only
    finally:
        await other.stop()


async def test_endpoint_failing_too_long_is_disabled(pg, project, receiver, worker, clock) -> None:
    project_id, _ = project
    endpoint_id, _ = await add_endpoint(pg, project_id, receiver.url)
    receiver.script = [(500, {}, "x")] * 10
    await record(pg, incident_alert(project_id), T0)
    assert await worker.step()
    clock.advance(5)
    assert await worker.step()
    assert (await pg.fetchrow("SELECT enabled FROM webhook_endpoints WHERE id = $1", endpoint_id))["enabled"]
    clock.advance(3600)  # past endpoint_disable_after with no success
    await record(pg, incident_alert(project_id), clock.now())
    assert await worker.step()
    row = await pg.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)
    assert not row["enabled"] and row["disabled_reason"].startswith("no successful delivery since")


# --- concurrency --------------------------------------------------------------------------------------


async def test_two_notifiers_each_attempt_once(pg, redis, settings, project, receiver: FakeReceiver) -> None:
    project_id, _ = project
    await add_endpoint(pg, project_id, receiver.url)
    for i in range(40):
        await record(pg, incident_alert(project_id, at=T0 + i), T0)
    sessions = [GuardedSession(settings.outbound_allow_cidrs, timeout=5) for _ in range(2)]
    clock = FrozenClock(T0)
    try:
        a, b = (DeliveryWorker(pg, redis, s, replace(settings, delivery_concurrency=7), clock) for s in sessions)
        while any(await asyncio.gather(a.step(), b.step())):
            pass
    finally:
        for s in sessions:
            await s.close()
    assert receiver.attempts == 40
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 40
    rows = await pg.fetch("SELECT status, attempts FROM deliveries WHERE project_id = $1", project_id)
    assert [(r["status"], r["attempts"]) for r in rows] == [("succeeded", 1)] * 40


async def test_a_slow_receiver_does_not_delay_the_others(pg, redis, settings, project) -> None:
    project_id, _ = project
    slow = FakeReceiver(gate=asyncio.Event())
    fast = FakeReceiver()
    await slow.start()
    await fast.start()
    await add_endpoint(pg, project_id, slow.url)
    await add_endpoint(pg, project_id, fast.url)
    for i in range(20):
        await record(pg, incident_alert(project_id, at=T0 + i), T0)
    s = replace(settings, delivery_concurrency=8, endpoint_concurrency=2, delivery_timeout=30)
    http = GuardedSession(s.outbound_allow_cidrs, timeout=30)
    worker = DeliveryWorker(pg, redis, http, s, FrozenClock(T0))
    stopping, wake = asyncio.Event(), asyncio.Event()
    loop = asyncio.create_task(worker.run(stopping, wake, poll_interval=0.05))
    try:
        # All 20 reach the fast receiver while the slow one holds its 2 slots.
        await fast.wait_for(20)
        assert slow.attempts <= 2 and slow.received == []
        slow.gate.set()  # type: ignore[union-attr]
        await slow.wait_for(20)
    finally:
        stopping.set()
        await loop
        await http.close()
        await slow.stop()
        await fast.stop()


# --- SSRF -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://localhost:9/hook",
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]:9/hook",
    ],
)
async def test_private_targets_are_refused_in_the_attempt_log(pg, redis, settings, project, target) -> None:
    project_id, _ = project
    await add_endpoint(pg, project_id, target)
    await record(pg, incident_alert(project_id), T0)
    strict = replace(settings, outbound_allow_cidrs=())
    http = GuardedSession((), timeout=2)
    try:
        assert await DeliveryWorker(pg, redis, http, strict, FrozenClock(T0)).step()
    finally:
        await http.close()
    [attempt] = await pg.fetch(
        "SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.project_id = $1",
        project_id,
    )
    assert attempt["status_code"] is None and "refused" in attempt["error"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        # A name that resolves to loopback once saved (DNS can change after the check at saving).
        ("http://localhost:{port}/hook", "refused: localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[64:ff9b::7f00:1]:{port}/hook", "points at a NAT64 form of 127.0.0.1, a loopback address"),
        ("http://exa mple.com:{port}/hook", "must not contain spaces or control characters"),
    ],
)
async def test_a_refused_target_fails_at_once_with_the_reason(
    settings: Settings, pg, redis, receiver: FakeReceiver, target: str, reason: str
) -> None:
    strict = replace(settings, outbound_allow_cidrs=())  # 127.0.0.0/8 is not allow-listed here
    async with running_system(strict, services=()) as system:
        project_id, key = await system.create_project()
        url = target.format(port=receiver.url.split(":")[2].split("/")[0])
        await add_endpoint(pg, project_id, url)  # stored directly: saving through the API refuses some
        await record(pg, incident_alert(project_id), T0)
        http = GuardedSession((), timeout=2)
        clock = FrozenClock(T0)
        worker = DeliveryWorker(pg, redis, http, strict, clock)
        try:
            assert await worker.step()
            clock.advance(86400 * 2)  # long past every retry the schedule would make
            assert not await worker.step()
        finally:
            await http.close()
        [delivery_id] = [r["id"] for r in await pg.fetch("SELECT id FROM deliveries WHERE project_id = $1", project_id)]
        status, delivery = await call(system, "GET", f"/v1/deliveries/{delivery_id}", key)
    assert status == 200 and delivery["status"] == "failed" and delivery["attempts"] == 1  # type: ignore[index]
    assert reason in delivery["last_error"]  # type: ignore[index]
    [attempt] = delivery["attempt_log"]  # type: ignore[index]
    assert attempt["status_code"] is None and reason in attempt["error"]
    assert receiver.attempts == 0


async def test_a_redirect_to_a_private_address_is_not_followed(pg, redis, settings, project) -> None:
    project_id, _ = project
    private = await FakeReceiver(host="127.0.0.1").start()
    public = await FakeReceiver(host="127.0.0.2").start()  # stands in for a public name
    try:
        public.script = [(302, {"Location": private.url}, "see other")]
        await add_endpoint(pg, project_id, public.url)
        await record(pg, incident_alert(project_id), T0)
        only_public = replace(settings, outbound_allow_cidrs=(ipaddress.ip_network("127.0.0.2/32"),))
        http = GuardedSession(only_public.outbound_allow_cidrs, timeout=2)
        try:
            assert await DeliveryWorker(pg, redis, http, only_public, FrozenClock(T0)).step()
        finally:
            await http.close()
        assert public.attempts == 1 and private.attempts == 0
        row = await pg.fetchrow("SELECT * FROM deliveries WHERE project_id = $1", project_id)
        assert (row["status"], row["last_status_code"]) == ("pending", 302)
    finally:
        await private.stop()
        await public.stop()


# --- the API --------------------------------------------------------------------------------------------


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    async with running_system(settings, services=()) as s:
        yield s


async def call(system: System, method: str, path: str, key: str, body=None) -> tuple[int, object]:
    async with system.http.request(
        method, system.ingest.url + path, json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        return r.status, (await r.json() if r.status != 204 else None)


async def test_webhook_endpoints_api(system: System, receiver: FakeReceiver) -> None:
    _, key = await system.create_project()
    _, other_key = await system.create_project()
    status, created = await call(
        system,
        "POST",
        "/v1/webhooks",
        key,
        {"url": receiver.url, "topics": ["incident.opened", "notice.*"], "description": "ops"},
    )
    assert status == 201 and created["secret"].startswith("sec_")
    assert created["format"] == "json" and created["enabled"]
    wid = created["id"]
    status, listed = await call(system, "GET", "/v1/webhooks", key)
    assert [w["id"] for w in listed] == [wid] and "secret" not in listed[0]
    assert (await call(system, "GET", f"/v1/webhooks/{wid}", other_key))[0] == 404
    status, updated = await call(system, "PATCH", f"/v1/webhooks/{wid}", key, {"enabled": False, "topics": ["*"]})
    assert status == 200 and not updated["enabled"] and updated["topics"] == ["*"]
    status, rotated = await call(system, "POST", f"/v1/webhooks/{wid}/rotate-secret", key)
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_valid_until"] is not None
    status, slack_like = await call(
        system,
        "POST",
        "/v1/webhooks",
        key,
        {"url": "https://hooks.slack.com/services/T/B/X", "topics": ["incident.opened"]},
    )
    assert slack_like["format"] == "slack"
    assert (await call(system, "DELETE", f"/v1/webhooks/{wid}", key))[0] == 204
    assert (await call(system, "GET", f"/v1/webhooks/{wid}", key))[0] == 404

    status, topics = await call(system, "GET", "/v1/topics", key)
    names = {t["topic"] for t in topics}
    assert {"incident.opened", "incident.acknowledged", "incident.resolved", "notice.endpoint_disabled"} <= names
    # Issue #8's per-kind topics, each with an example a subscriber can read.
    per_kind = {"heartbeat.late", "heartbeat.down", "heartbeat.up"}
    per_kind |= {"trigger.alerting", "trigger.acknowledged", "trigger.resolved"}
    assert per_kind <= names
    assert all("example" in t for t in topics)
    examples = {t["topic"]: t["example"] for t in topics}
    assert all(examples[f"incident.{step}"]["data"]["incident"]["kind"] for step in ("opened", "resolved"))
    assert examples["trigger.alerting"]["data"]["incident"]["kind"] == "trigger"
    assert examples["heartbeat.down"]["data"]["heartbeat"]["state"] == "down"


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({}, "url"),
        ({"url": "ftp://x"}, "url"),
        ({"url": "http://10.1.2.3/h"}, "url"),
        ({"url": "http://169.254.169.254/"}, "url"),
        ({"url": "https://ok.example/h", "topics": ["nope"]}, "topics"),
        ({"url": "https://ok.example/h", "topics": "*"}, "topics"),
        ({"url": "https://ok.example/h", "enabled": "yes"}, "enabled"),
        ({"url": "https://ok.example/h", "format": "xml"}, "format"),
    ],
)
async def test_bad_webhook_input_is_refused_with_the_field_named(settings: Settings, body, mentions) -> None:
    strict = replace(settings, outbound_allow_cidrs=())
    async with running_system(strict, services=()) as system:
        _, key = await system.create_project()
        status, error = await call(system, "POST", "/v1/webhooks", key, body)
    assert status == 422 and mentions in error["error"]["message"]  # type: ignore[index]


BAD_TARGETS = [
    ("https://user:pass@hooks.example.com/h", "must not contain credentials (user:password@)"),
    ("https://token@hooks.example.com/h", "must not contain credentials (user:password@)"),
    ("https://hooks example.com/h", "must not contain spaces or control characters"),
    ("https://hooks\x00.example.com/h", "contains a NUL character"),  # refused before the URL check
    ("https://hooks<x>.example.com/h", "has an invalid host"),
    ("http://[::127.0.0.1]/h", "points at an IPv4-compatible form of 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::7f00:1]/h", "points at a NAT64 form of 127.0.0.1, a loopback address"),
    ("http://[2002:7f00:1::]/h", "points at a 6to4 form of 127.0.0.1, a loopback address"),
]


@pytest.mark.parametrize(("url", "says"), BAD_TARGETS)
async def test_credentials_bad_hosts_and_embedded_private_addresses_are_refused_where_urls_are_saved(
    settings: Settings, url: str, says: str
) -> None:
    strict = replace(settings, outbound_allow_cidrs=())
    async with running_system(strict, services=()) as system:
        project_id, key = await system.create_project()
        status, error = await call(system, "POST", "/v1/webhooks", key, {"url": url})
        assert status == 422 and error["error"]["message"].startswith(f"url {says}")  # type: ignore[index]
        status, error = await call(system, "PATCH", f"/v1/projects/{project_id}/slack", key, {"slack_webhook_url": url})
        assert status == 422 and error["error"]["message"].startswith(f"slack_webhook_url {says}")  # type: ignore[index]
        _, listed = await call(system, "GET", "/v1/webhooks", key)
        assert listed == []  # nothing stored, so nothing shown back


async def test_rotation_signs_with_both_secrets_during_the_overlap(pg, redis, settings, project, receiver) -> None:
    project_id, _ = project
    endpoint_id, old = await add_endpoint(pg, project_id, receiver.url)
    new = webhooks.new_secret()
    await pg.execute(
        "INSERT INTO webhook_secrets (endpoint_id, secret, expires_at)"
        " SELECT id, secret, now() + interval '1 hour' FROM webhook_endpoints WHERE id = $1",
        endpoint_id,
    )
    await pg.execute("UPDATE webhook_endpoints SET secret = $2 WHERE id = $1", endpoint_id, new)
    await record(pg, incident_alert(project_id), time.time())
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=5)
    try:
        await DeliveryWorker(pg, redis, http, settings, SystemClock()).step()
    finally:
        await http.close()
    [got] = receiver.received
    for secret in (old, new):
        assert sdk_webhooks.verify(secret, got.body, {k: v for k, v in got.headers.items() if k != "Heron-Signature"})
    assert got.headers["Heron-Signature"] == published_example_signature(new, got.body)
    assert got.headers["Heron-Signature-Previous"] == published_example_signature(old, got.body)


async def test_rotating_twice_within_the_overlap_keeps_every_secret_until_it_expires(
    settings: Settings, pg, redis, receiver: FakeReceiver
) -> None:
    s = replace(settings, webhook_secret_overlap=3600.0)
    clock = FrozenClock(T0)
    async with running_system(s, clock=clock, services=()) as system:
        project_id, key = await system.create_project()
        _, created = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url})
        wid = created["id"]  # type: ignore[index]
        first = created["secret"]  # type: ignore[index]
        clock.set(T0 + 600)
        _, rotated = await call(system, "POST", f"/v1/webhooks/{wid}/rotate-secret", key)
        second = rotated["secret"]  # type: ignore[index]
        clock.set(T0 + 1200)  # the second rotation, well inside the first one's overlap
        _, rotated = await call(system, "POST", f"/v1/webhooks/{wid}/rotate-secret", key)
        third = rotated["secret"]  # type: ignore[index]
        assert rotated["previous_secret_valid_until"] == "2027-01-15T09:20:00Z"  # type: ignore[index]

        http = GuardedSession(s.outbound_allow_cidrs, timeout=5)
        worker = DeliveryWorker(pg, redis, http, s, clock)

        async def deliver() -> tuple[bytes, dict[str, str]]:
            count = len(receiver.received)
            await record(pg, incident_alert(project_id, at=clock.now()), clock.now())
            assert await worker.step()
            got = (await receiver.wait_for(count + 1))[count]
            return got.body, got.headers

        def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
            try:
                webhooks.verify(secret, body, headers, now=clock.now())
            except webhooks.WebhookVerificationError:
                return False
            return True

        try:
            # Receivers holding any of the three secrets verify the next delivery.
            clock.set(T0 + 1300)
            body, headers = await deliver()
            assert [verifies(x, body, headers) for x in (first, second, third)] == [True, True, True]
            assert headers["webhook-signature"].count("v1,") == 3
            assert headers["Heron-Signature"] == published_example_signature(third, body)
            assert headers["Heron-Signature-Previous"] == published_example_signature(second, body)
            # Past the first rotation's overlap: the original secret no longer signs.
            clock.set(T0 + 600 + 3600 + 1)
            body, headers = await deliver()
            assert [verifies(x, body, headers) for x in (first, second, third)] == [False, True, True]
            # Past the second's: only the newest.
            clock.set(T0 + 1200 + 3600 + 1)
            body, headers = await deliver()
            assert [verifies(x, body, headers) for x in (first, second, third)] == [False, False, True]
            assert "Heron-Signature-Previous" not in headers
        finally:
            await http.close()
        _, shown = await call(system, "GET", f"/v1/webhooks/{wid}", key)
        assert shown["previous_secret_valid_until"] is None  # type: ignore[index]
    # Expired secrets are pruned, not kept forever.
    await ledger.prune(pg, retention_days=30, now=clock.now())
    assert await pg.fetchval("SELECT count(*) FROM webhook_secrets") == 0


async def test_rotations_are_bounded_while_old_secrets_still_sign(system: System, receiver: FakeReceiver) -> None:
    _, key = await system.create_project()
    _, created = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url})
    path = f"/v1/webhooks/{created['id']}/rotate-secret"  # type: ignore[index]
    for _ in range(10):
        assert (await call(system, "POST", path, key))[0] == 200
    status, error = await call(system, "POST", path, key)
    assert status == 409 and error["error"]["code"] == "too_many_rotations"  # type: ignore[index]


async def test_delivery_log_and_redelivery(system: System, pg, redis, receiver: FakeReceiver) -> None:
    project_id, key = await system.create_project()
    status, endpoint = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url})
    receiver.script = [(410, {}, "gone for now")]
    await record(pg, incident_alert(project_id), T0)
    http = GuardedSession(system.settings.outbound_allow_cidrs, timeout=5)
    clock = FrozenClock(T0)
    worker = DeliveryWorker(pg, redis, http, system.settings, clock)
    try:
        assert await worker.step()
        status, deliveries = await call(
            system, "GET", f"/v1/deliveries?endpoint_id={endpoint['id']}&status=failed", key
        )
        [d] = deliveries
        assert d["status"] == "failed" and d["topic"] == "incident.opened"
        [attempt] = d["attempt_log"]
        assert attempt["status_code"] == 410 and attempt["response"] == "gone for now" and attempt["latency_ms"] >= 0
        assert (await call(system, "GET", "/v1/deliveries?status=bogus", key))[0] == 422

        # Re-enable the endpoint and redeliver that one delivery.
        await call(system, "PATCH", f"/v1/webhooks/{endpoint['id']}", key, {"enabled": True})
        status, again = await call(system, "POST", f"/v1/deliveries/{d['id']}/redeliver", key)
        assert status == 202 and again["status"] == "pending"
        assert (await call(system, "POST", f"/v1/deliveries/{d['id']}/redeliver", key))[0] == 409
        assert await worker.step()
        assert len(receiver.received) == 1
        status, done = await call(system, "GET", f"/v1/deliveries/{d['id']}", key)
        assert done["status"] == "succeeded" and [a["status_code"] for a in done["attempt_log"]] == [410, 200]

        # Bulk: everything failed since a time.
        receiver.script = [(500, {}, "x")] * 3
        await record(pg, incident_alert(project_id, at=T0 + 1), T0)
        await pg.execute(
            "UPDATE deliveries SET status = 'failed', finished_at = now() WHERE status = 'pending' AND project_id = $1",
            project_id,
        )
        status, bulk = await call(system, "POST", "/v1/deliveries/redeliver", key, {"since": "2000-01-01T00:00:00Z"})
        assert status == 202 and bulk["redelivering"] == 1
        assert (await call(system, "POST", "/v1/deliveries/redeliver", key, {"since": "last week"}))[0] == 422
    finally:
        await http.close()


async def test_a_slack_url_registered_as_an_endpoint_gets_slack_messages(
    pg, redis, settings, project, slack: FakeSlack, worker, clock
) -> None:
    project_id, _ = project
    await add_endpoint(pg, project_id, slack.url, topics=("incident.opened",), fmt="slack")
    await record(pg, incident_alert(project_id, name="email.sent"), T0)
    assert await record(pg, incident_alert(project_id, topic="incident.resolved"), T0) == 0  # not subscribed
    assert await worker.step()
    [message] = slack.received
    assert message.json["blocks"][0]["text"]["text"] == "🚨 Heron alert"
    assert "email.sent" in message.json["text"]
    assert "Heron-Signature" not in message.headers  # Slack gets its own format, unsigned


async def test_old_attempts_are_pruned(pg, project, receiver, worker) -> None:
    project_id, _ = project
    await add_endpoint(pg, project_id, receiver.url)
    await record(pg, incident_alert(project_id), T0)
    assert await worker.step()
    await pg.execute("UPDATE delivery_attempts SET attempted_at = now() - interval '40 days'")
    await pg.execute("UPDATE deliveries SET finished_at = now() - interval '40 days'")
    await ledger.prune(pg, retention_days=30)
    assert await pg.fetchval("SELECT count(*) FROM delivery_attempts") == 0
    assert await pg.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_signing_secrets_are_sealed_at_rest_and_a_key_rotation_reseals_them(
    settings: Settings, pg, redis, receiver: FakeReceiver
) -> None:
    from cryptography.fernet import Fernet

    from heron_common.secretbox import PREFIX, SecretBox, SecretsKeyError, reseal_all

    async with running_system(settings, services=()) as system:
        project_id, key = await system.create_project()
        _, created = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url})
        wid = created["id"]  # type: ignore[index]
        _, rotated = await call(system, "POST", f"/v1/webhooks/{wid}/rotate-secret", key)
        shown = {created["secret"], rotated["secret"]}  # type: ignore[index]
    # A legacy endpoint stored before encryption existed.
    legacy_id, legacy = await add_endpoint(pg, project_id, receiver.url)

    async def stored() -> list[str]:
        rows = await pg.fetch(
            "SELECT secret AS v FROM webhook_endpoints UNION ALL SELECT previous_secret FROM webhook_endpoints"
            " WHERE previous_secret IS NOT NULL UNION ALL SELECT secret FROM webhook_secrets"
        )
        return [r["v"] for r in rows]

    values = await stored()
    assert legacy in values  # the legacy one, in the clear until re-sealed
    sealed = [v for v in values if v != legacy]
    assert len(sealed) == 3 and all(v.startswith(PREFIX) for v in sealed)
    assert not any(secret in v for v in sealed for secret in shown)

    # Rotation: a new key first, the old one kept; heron-migrate's re-seal moves everything to it.
    new_key = Fernet.generate_key().decode()
    rotated_keys = (new_key, *settings.secrets_keys)
    async with pg.acquire() as conn:
        # The 4 secrets, the 2 endpoints' URLs and the acknowledge-link key.
        assert await reseal_all(conn, SecretBox(rotated_keys)) == 7
        assert await reseal_all(conn, SecretBox(rotated_keys)) == 0  # nothing left to do
    only_new = SecretBox((new_key,))
    assert all(v.startswith(PREFIX) for v in await stored())
    assert {only_new.open(v) for v in await stored()} >= shown | {legacy}
    with pytest.raises(SecretsKeyError):
        SecretBox(settings.secrets_keys).open((await stored())[0])  # the old key alone no longer opens it

    # The notifier, holding only the new key, signs with the secrets it opens.
    await pg.execute("DELETE FROM webhook_endpoints WHERE id = $1", legacy_id)
    await record(pg, incident_alert(project_id), time.time())
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=5)
    try:
        assert await DeliveryWorker(pg, redis, http, replace(settings, secrets_keys=(new_key,)), SystemClock()).step()
    finally:
        await http.close()
    [got] = await receiver.wait_for(1)
    headers = {k: v for k, v in got.headers.items() if k != "Heron-Signature"}
    assert sdk_webhooks.verify(rotated["secret"], got.body, headers)  # type: ignore[index]


def test_a_missing_or_malformed_secrets_key_stops_start_up_with_how_to_make_one() -> None:
    from heron_common.secretbox import SecretBox, SecretsKeyError
    from heron_common.settings import SettingsError

    with pytest.raises(SecretsKeyError, match=r"HERON_SECRETS_KEY is required.*Fernet\.generate_key"):
        SecretBox(())
    with pytest.raises(SettingsError, match="key 2 is not a Fernet key"):
        Settings.from_env({"HERON_SECRETS_KEY": "dGVzdC1zZWNyZXRzLWtleS1ub3QtYS1zZWNyZXQtMDA=,nope"})
    s = Settings.from_env({"HERON_SECRETS_KEY": "dGVzdC1zZWNyZXRzLWtleS1ub3QtYS1zZWNyZXQtMDA="})
    assert s.public()["secrets_keys"] == "***" and "dGVz" not in repr(s)
