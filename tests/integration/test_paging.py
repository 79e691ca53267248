"""Paging end to end, on the real servers with every service in-process: an alerting trigger pages
the on-call person by email (a real local SMTP server receives it), escalates at the configured
delays, repeats to the primary, and stops the moment it is acknowledged — from the API, from the
signed link in the email, and from the Slack button (a local Slack-compatible Web API); a shift
reassigned changes who is paged; a gap pages nobody but the ladder runs; escalate=false pages the
primary only."""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from heron_common import oncall_store, slack
from heron_common.oncall import ack
from heron_common.settings import Settings
from heron_ingest.context import SECRETS
from tests.support.fakes import FakeReceiver
from tests.support.oncall_fakes import FakeSlackAPI, FakeSMTP
from tests.support.system import System, running_system
from tests.support.waiting import eventually

SIGNING_SECRET = "slack-signing-secret-for-tests"
LINK = re.compile(r"http://heron\.test/ack/([A-Za-z0-9_\-.]+)")


@dataclass
class Env:
    system: System
    key: str
    smtp: FakeSMTP
    slack: FakeSlackAPI
    pg: Any


def paging_settings(settings: Settings, smtp: FakeSMTP, slack: FakeSlackAPI) -> Settings:
    return replace(
        settings,
        public_url="http://heron.test",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        smtp_from="heron@example.com",
        slack_bot_token=slack.token,
        slack_api_url=f"{slack.url}/api",
        slack_signing_secret=SIGNING_SECRET,
        oncall_min_repeat=0.5,
        paging_interval=0.05,
        paging_horizon=1.0,  # steps are written a second ahead: the planner loop keeps extending
        page_retry_schedule=(0.0, 0.2, 0.5),
    )


@pytest.fixture
async def env(settings: Settings, pg: Any) -> AsyncIterator[Env]:
    smtp = await FakeSMTP().start()
    slack = await FakeSlackAPI().start()
    try:
        async with running_system(paging_settings(settings, smtp, slack), services=("detector", "notifier")) as system:
            _, key = await system.create_project("paging")
            yield Env(system, key, smtp, slack, pg)
    finally:
        await slack.stop()
        await smtp.stop()


async def call(env: Env, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {env.key}", **kw.pop("headers", {})}
    async with env.system.http.request(method, f"{env.system.ingest.url}{path}", json=body, headers=headers, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def ok(env: Env, method: str, path: str, body: Any = None, status: int = 201) -> Any:
    got, answer = await call(env, method, path, body)
    assert got == status, (method, path, answer)
    return answer


async def person(env: Env, email: str, *channels: dict[str, Any]) -> dict[str, Any]:
    user = await ok(env, "POST", "/v1/users", {"email": email, "name": email.split("@")[0]})
    for channel in channels or ({"kind": "email", "target": email},):
        await ok(env, "POST", f"/v1/users/{user['id']}/channels", channel)
    return user


async def rotation(env: Env, spec: str, *, anchor: datetime | None = None, **more: Any) -> dict[str, Any]:
    anchor = anchor or datetime.now(UTC) - timedelta(days=10)
    body = {"name": f"r{time.monotonic_ns()}", "spec": spec, "anchor": anchor.isoformat(), **more}
    return await ok(env, "POST", "/v1/rotations", body)


async def on_call_now(env: Env, rotation_id: int, email: str, previous: str | None = None) -> None:
    """Make ``email`` the one on call now (and ``previous`` the one before), by reassigning shifts."""
    shifts = await ok(env, "GET", f"/v1/rotations/{rotation_id}/shifts", status=200, body=None)
    current = shifts[0]  # the list starts with the shift running now
    await ok(env, "PATCH", f"/v1/rotations/{rotation_id}/shifts/{current['id']}", {"email": email}, status=200)
    if previous is not None:
        before = await ok(
            env,
            "GET",
            f"/v1/rotations/{rotation_id}/shifts?from=2000-01-01T00:00:00Z&until={urllib.parse.quote(current['starts_at'])}",
            status=200,
        )
        await ok(
            env, "PATCH", f"/v1/rotations/{rotation_id}/shifts/{before[-1]['id']}", {"email": previous}, status=200
        )


async def trigger_for(env: Env, rotation_id: int, **fields: Any) -> dict[str, Any]:
    service = await ok(env, "POST", "/v1/services", {"name": f"API {time.monotonic_ns()}"})
    await ok(env, "PUT", f"/v1/services/{service['id']}/rotation", {"rotation_id": rotation_id}, status=200)
    return await ok(env, "POST", "/v1/triggers", {"name": "Database CPU", "service_id": service["id"], **fields})


async def alert(env: Env, trigger: dict[str, Any]) -> dict[str, Any]:
    await ok(env, "POST", f"/triggers/{trigger['id']}/alert", status=200)
    _, rows = await eventually(
        lambda: call(env, "GET", "/v1/incidents"),
        lambda r: any(i["monitor_id"] == trigger["id"] for i in r[1]),
    )
    return next(i for i in rows if i["monitor_id"] == trigger["id"])


async def pages(env: Env, incident_id: int) -> list[Any]:
    return await env.pg.fetch("SELECT * FROM pages WHERE incident_id = $1 ORDER BY due_at, id", incident_id)


async def assert_stopped(env: Env, incident_id: int) -> datetime:
    """Paging for the incident has stopped: no page pending, none sent for a step due after the
    acknowledgement. Returns when it was acknowledged."""
    acked = await env.pg.fetchval("SELECT acknowledged_at FROM incidents WHERE id = $1", incident_id)
    assert acked is not None
    await eventually(
        lambda: env.pg.fetchval("SELECT stopped_at FROM paging WHERE incident_id = $1", incident_id),
        lambda t: t is not None,
    )
    await eventually(
        lambda: env.pg.fetchval(
            "SELECT count(*) FROM pages WHERE incident_id = $1 AND (status = 'pending' OR locked_until IS NOT NULL)",
            incident_id,
        ),
        lambda n: n == 0,
    )
    late = [p for p in await pages(env, incident_id) if p["status"] == "sent" and p["due_at"] >= acked]
    assert late == [], late
    return acked


def token_in(text: str) -> str:
    found = LINK.search(text)
    assert found is not None, text
    return found.group(1)


async def test_an_alerting_trigger_pages_by_email_escalates_on_time_and_stops_when_acknowledged(env: Env) -> None:
    await person(env, "alice@example.com")
    await person(env, "bob@example.com")
    await person(env, "boss@example.com")
    rot = await rotation(env, "alice@example.com\nbob@example.com\n")
    await on_call_now(env, rot["id"], "alice@example.com", previous="bob@example.com")
    await ok(env, "POST", f"/v1/rotations/{rot['id']}/escalations", {"delay": 1.0, "target": "previous"})
    await ok(
        env,
        "POST",
        f"/v1/rotations/{rot['id']}/escalations",
        {"delay": 30.0, "target": "user", "email": "boss@example.com"},
    )
    trigger = await trigger_for(env, rot["id"])
    incident = await alert(env, trigger)

    [first] = await env.smtp.wait_for(1, to="alice@example.com")
    assert first.subject == "[Heron] Database CPU is alerting" and first.sender == "heron@example.com"
    assert "you are on call" in first.text and token_in(first.text)
    [escalated] = await env.smtp.wait_for(1, to="bob@example.com")
    assert escalated.subject.endswith("(escalated)")

    # Each step went out at its due time (its delay after the incident opened), once.
    sent = await eventually(
        lambda: env.pg.fetch("SELECT * FROM pages WHERE incident_id = $1 AND status = 'sent'", incident["id"]),
        lambda rows: len(rows) == 2,
    )
    rows = {p["email"]: p for p in sent}
    opened = datetime.fromisoformat(incident["opened_at"].replace("Z", "+00:00"))
    assert rows["alice@example.com"]["due_at"] == opened
    assert rows["bob@example.com"]["due_at"] == opened + timedelta(seconds=1)
    assert rows["bob@example.com"]["sent_at"] >= rows["bob@example.com"]["due_at"]
    assert {m.message_id for m in env.smtp.received} == {f"<{p['step_id']}@example.com>" for p in rows.values()}

    # Acknowledged through the API: the boss (30 s later) is never paged.
    status, acked = await call(env, "POST", f"/v1/incidents/{incident['id']}/acknowledge")
    assert status == 200 and acked["acknowledged_at"] is not None
    await assert_stopped(env, incident["id"])
    assert env.smtp.to("boss@example.com") == []
    boss = await env.pg.fetch(
        "SELECT status FROM pages WHERE incident_id = $1 AND email = 'boss@example.com'", incident["id"]
    )
    assert all(p["status"] == "cancelled" for p in boss)

    # The page history, as the API shows it: who, how, why and what became of each step.
    status, history = await call(env, "GET", f"/v1/incidents/{incident['id']}/pages")
    assert status == 200, history
    by_email = {p["email"]: p for p in history}
    # The boss's step is listed only if it was planned ahead before the acknowledgement.
    assert set(by_email) - {"boss@example.com"} == {"alice@example.com", "bob@example.com"}
    assert {k: by_email["alice@example.com"][k] for k in ("reason", "status", "channel_kind", "attempts")} == {
        "reason": "primary",
        "status": "sent",
        "channel_kind": "email",
        "attempts": 1,
    }
    assert (by_email["bob@example.com"]["reason"], by_email["bob@example.com"]["status"]) == ("escalation", "sent")
    assert all(p["status"] == "cancelled" and p["sent_at"] is None for p in history if p["email"] == "boss@example.com")
    assert all(p["user_id"] is not None for p in history)
    assert [p["due_at"] for p in history] == sorted(p["due_at"] for p in history)
    status, first = await call(env, "GET", f"/v1/incidents/{incident['id']}/pages?limit=1")
    assert status == 200 and [p["id"] for p in first] == [history[0]["id"]]


async def test_the_signed_link_in_the_email_acknowledges_once_and_stops_the_repeats(env: Env) -> None:
    await person(env, "alice@example.com")
    rot = await rotation(env, "alice@example.com\n", repeat_every=1.0)
    trigger = await trigger_for(env, rot["id"])
    incident = await alert(env, trigger)
    mails = await env.smtp.wait_for(2, to="alice@example.com")  # the page, then a reminder a second later
    assert mails[1].subject.endswith("(reminder)")
    token = token_in(mails[0].text)
    ingest = env.system.ingest.url

    async with env.system.http.get(f"{ingest}/ack/{token}") as r:  # a GET (a mail scanner) changes nothing
        page = await r.text()
        assert r.status == 200 and "Acknowledge this incident?" in page and "<form method='post'>" in page
        assert r.headers["Referrer-Policy"] == "no-referrer"
    assert (await env.pg.fetchval("SELECT acknowledged_at FROM incidents WHERE id = $1", incident["id"])) is None
    async with env.system.http.post(f"{ingest}/ack/{token}", data={}) as r:  # the page's button: a form post
        page = await r.text()
        assert r.status == 200 and "acknowledged by alice@example.com via acknowledge link" in page, page
    await assert_stopped(env, incident["id"])
    _, shown = await call(env, "GET", "/v1/incidents")
    assert [i["acknowledged_by"] for i in shown] == ["alice@example.com via acknowledge link"]

    # Single use, unforgeable, expiring.
    async with env.system.http.post(f"{ingest}/ack/{token}") as r:
        assert r.status == 410 and (await r.json())["error"]["code"] == "link_used"
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    async with env.system.http.post(f"{ingest}/ack/{forged}") as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_link"
    key = await oncall_store.ack_key(env.pg, env.system.ingest.app[SECRETS])
    # Signed with the real key, but expired (an expired token is refused before anything is looked up).
    old = ack.sign(key, ack.AckClaims(str(uuid.uuid4()), incident["id"], 1, "alice@example.com", 1))
    async with env.system.http.post(f"{ingest}/ack/{old}") as r:
        assert r.status == 410 and (await r.json())["error"]["code"] == "link_expired"
    async with env.system.http.get(f"{ingest}/ack/{old}") as r:
        assert r.status == 410 and "expired" in await r.text()


def slack_request(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    body = urllib.parse.urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    timestamp = str(int(at if at is not None else time.time()))
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack.sign(secret, timestamp, body),
    }


@pytest.fixture
async def slack_responses() -> AsyncIterator[FakeReceiver]:
    """Where Slack's response_url points: records what Heron says back to the interaction."""
    fake = await FakeReceiver(path="/actions/T0/1/secret").start()
    yield fake
    await fake.stop()


async def test_the_slack_button_acknowledges_through_a_signed_interactivity_request(
    env: Env, slack_responses: FakeReceiver
) -> None:
    await person(env, "alice@example.com", {"kind": "slack", "target": "U024BE7LH"})
    rot = await rotation(env, "alice@example.com\n", repeat_every=1.0)
    trigger = await trigger_for(env, rot["id"])
    incident = await alert(env, trigger)
    [message, *_] = await env.slack.wait_for(1)
    assert message["channel"] == "U024BE7LH" and "Database CPU is alerting" in message["text"]
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    [button] = actions["elements"]
    assert button["action_id"] == "heron_acknowledge" and button["text"]["text"] == "Acknowledge"
    payload = {
        "type": "block_actions",
        # A NUL in the name (found by an audit) once had the acknowledgement refused after its
        # link was spent: it is left out of acknowledged_by.
        "user": {"id": "U024BE7LH", "username": "alice.s\u0000"},
        "actions": [{"action_id": button["action_id"], "value": button["value"], "type": "button"}],
        "response_url": slack_responses.url,
        "message": {"text": message["text"]},
    }
    url = f"{env.system.ingest.url}/slack/interactivity"

    # Not Slack: a wrong secret, or a replay of an old request.
    for body, headers in (slack_request(payload, secret="wrong"), slack_request(payload, at=time.time() - 3600)):
        async with env.system.http.post(url, data=body, headers=headers) as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_signature"
    assert (await env.pg.fetchval("SELECT acknowledged_at FROM incidents WHERE id = $1", incident["id"])) is None

    # Malformed but signed: no button pressed, nothing to do (an audit found 500 for these).
    for odd in (5, True, 1.5, [5], [{"action_id": "heron_acknowledge", "value": 5}]):
        body, headers = slack_request({**payload, "actions": odd})
        async with env.system.http.post(url, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
    assert (await env.pg.fetchval("SELECT acknowledged_at FROM incidents WHERE id = $1", incident["id"])) is None

    body, headers = slack_request(payload)
    async with env.system.http.post(url, data=body, headers=headers) as r:
        answer = await r.json()
        assert r.status == 200 and answer["status"] == "acknowledged", answer
    assert answer["incident"]["acknowledged_by"] == "alice@example.com via Slack (alice.s)"
    # Slack ignores that answer: the message itself is replaced, saying who acknowledged, no button.
    [update] = await slack_responses.wait_for(1)
    assert update.json["replace_original"] is True
    assert [b["type"] for b in update.json["blocks"]] == ["section", "section"]  # no actions: no button
    assert update.json["text"].startswith(message["text"])
    assert "Acknowledged by alice@example.com via Slack (alice.s)" in update.json["text"]
    await assert_stopped(env, incident["id"])
    # The same button again (another copy of the page): the token has been used, and the person
    # who clicked is told so privately; the message is left as it is.
    body, headers = slack_request(payload)
    async with env.system.http.post(url, data=body, headers=headers) as r:
        assert r.status == 410
    [_, told] = await slack_responses.wait_for(2)
    assert told.json["response_type"] == "ephemeral" and told.json["replace_original"] is False
    assert told.json["text"].startswith("Not acknowledged: ")
    # Other interactions are none of Heron's business; a body that is not Slack's shape is a 400.
    body, headers = slack_request({"type": "view_submission"})
    async with env.system.http.post(url, data=body, headers=headers) as r:
        assert r.status == 200
    timestamp = str(int(time.time()))
    raw = b"not a form"
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack.sign(SIGNING_SECRET, timestamp, raw),
    }
    async with env.system.http.post(url, data=raw, headers=headers) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_payload"


async def test_reassigning_the_shift_changes_who_is_paged(env: Env) -> None:
    await person(env, "alice@example.com")
    await person(env, "dave@example.com")
    rot = await rotation(env, "alice@example.com\n", repeat_every=1.0)
    await on_call_now(env, rot["id"], "alice@example.com")
    trigger = await trigger_for(env, rot["id"])
    incident = await alert(env, trigger)
    await env.smtp.wait_for(1, to="alice@example.com")
    # Dave takes over the shift during the incident: the next rounds page him. (The shift is his
    # from its start now, so the plan counts him as the primary all along: a reminder.)
    await on_call_now(env, rot["id"], "dave@example.com")
    [first, *_] = await env.smtp.wait_for(1, to="dave@example.com")
    assert "you are on call" in first.text
    await ok(env, "POST", f"/v1/incidents/{incident['id']}/acknowledge", status=200)
    await assert_stopped(env, incident["id"])


async def test_a_gap_pages_nobody_as_primary_but_the_ladder_still_runs(env: Env) -> None:
    await person(env, "alice@example.com")
    await person(env, "boss@example.com")
    # A daily shift from 3 to 4 hours from now: at the moment of the alert nobody is on call.
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=3), now + timedelta(hours=4)
    spec = f"alice@example.com, from {start:%H:%M} UTC until {end:%H:%M} UTC\n"
    rot = await rotation(env, spec, anchor=now - timedelta(days=2), repeat_every=0.5)
    status, oncall = await call(env, "GET", f"/v1/services/{(await _service_of(env, rot['id']))}/oncall")
    assert status == 200 and oncall["now"] is None and oncall["next"]["email"] == "alice@example.com"
    await ok(
        env,
        "POST",
        f"/v1/rotations/{rot['id']}/escalations",
        {"delay": 1.0, "target": "user", "email": "boss@example.com"},
    )
    trigger = await trigger_for(env, rot["id"])
    incident = await alert(env, trigger)
    [page] = await env.smtp.wait_for(1, to="boss@example.com")
    assert page.subject.endswith("(escalated)")
    rows = await pages(env, incident["id"])
    assert [(p["email"], p["reason"]) for p in rows] == [("boss@example.com", "escalation")]
    await ok(env, "POST", f"/v1/incidents/{incident['id']}/acknowledge", status=200)
    await assert_stopped(env, incident["id"])
    assert env.smtp.to("alice@example.com") == []


async def _service_of(env: Env, rotation_id: int) -> int:
    service = await ok(env, "POST", "/v1/services", {"name": f"gap {time.monotonic_ns()}"})
    await ok(env, "PUT", f"/v1/services/{service['id']}/rotation", {"rotation_id": rotation_id}, status=200)
    return service["id"]


async def test_a_trigger_with_escalate_false_pages_the_primary_only(env: Env) -> None:
    await person(env, "alice@example.com")
    await person(env, "bob@example.com")
    rot = await rotation(env, "alice@example.com\nbob@example.com\n")
    await on_call_now(env, rot["id"], "alice@example.com", previous="bob@example.com")
    await ok(env, "POST", f"/v1/rotations/{rot['id']}/escalations", {"delay": 0.0, "target": "rotation"})
    quiet = await trigger_for(env, rot["id"], escalate=False)
    loud = await trigger_for(env, rot["id"])
    quiet_incident = await alert(env, quiet)
    await env.smtp.wait_for(1, to="alice@example.com")
    loud_incident = await alert(env, loud)
    # The escalating one pages the whole rotation at once (bob too); the quiet one only alice.
    await env.smtp.wait_for(1, to="bob@example.com")
    quiet_pages = await pages(env, quiet_incident["id"])
    assert [(p["email"], p["reason"]) for p in quiet_pages] == [("alice@example.com", "primary")]
    loud_pages = await pages(env, loud_incident["id"])
    assert sorted(p["email"] for p in loud_pages if p["reason"] == "escalation") == [
        "alice@example.com",
        "bob@example.com",
    ]


async def test_webhook_and_slack_webhook_channels_are_signed_and_carry_the_button(env: Env) -> None:
    from standardwebhooks import Webhook

    from heron_common import webhooks
    from tests.support.fakes import FakeReceiver

    receiver = await FakeReceiver(path="/pager").start()
    try:
        user = await ok(env, "POST", "/v1/users", {"email": "alice@example.com", "name": "alice"})
        hook = await ok(env, "POST", f"/v1/users/{user['id']}/channels", {"kind": "webhook", "target": receiver.url})
        slack_hook = f"{env.slack.url}/services/T1/B1/PAGE"
        await ok(env, "POST", f"/v1/users/{user['id']}/channels", {"kind": "slack", "target": slack_hook})
        rot = await rotation(env, "alice@example.com\n")
        incident = await alert(env, await trigger_for(env, rot["id"]))
        [delivery] = await receiver.wait_for(1)
        payload = webhooks.verify(hook["secret"], delivery.body, delivery.headers, time.time())
        assert payload["topic"] == "oncall.page" and payload["data"]["incident"]["id"] == incident["id"]
        assert payload["data"]["page"]["reason"] == "primary" and LINK.search(
            payload["data"]["page"]["acknowledge_url"]
        )
        # The reference Standard Webhooks verifier agrees (webhook-id is the page's step id).
        Webhook("whsec_" + hook["secret"][4:]).verify(delivery.body, delivery.headers)
        step = await env.pg.fetchval("SELECT step_id FROM pages WHERE channel_id = $1", hook["id"])
        assert delivery.headers["webhook-id"] == str(step)

        async def hooked() -> int:
            return len(env.slack.hooked)

        await eventually(hooked, lambda n: n == 1)
        [message] = env.slack.hooked
        assert any(b["type"] == "actions" for b in message["blocks"]) and "channel" not in message
    finally:
        await receiver.stop()
