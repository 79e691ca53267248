"""On-call triggers through the API, as Heii On-Call's manual has them: its curl examples run as
written (with our host), bodies, idempotency, liveness timeouts, test keys, and trigger incidents
through the generic incident endpoints."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import Any

from heron_common.monitors import trigger as tr
from heron_common.service import PG
from heron_common.settings import Settings
from tests.support.fakes import FakeReceiver
from tests.support.system import System, running_system
from tests.support.waiting import eventually


async def call(system: System, method: str, path: str, key: str | None, body: Any = None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with system.http.request(method, f"{system.ingest.url}{path}", json=body, headers=headers, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else None)


async def curl(*args: str) -> tuple[int, Any]:
    """The real curl (the manual's examples), run without blocking the loop serving the system."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    body, _, code = out.decode().rpartition("\n")
    return int(code), json.loads(body) if body else None


async def new_trigger(system: System, key: str, **fields: Any) -> dict[str, Any]:
    status, service = await call(system, "POST", "/v1/services", key, {"name": f"API {fields.get('name', '')}"})
    assert status == 201, service
    status, trigger = await call(
        system, "POST", "/v1/triggers", key, {"name": "Database CPU", "service_id": service["id"], **fields}
    )
    assert status == 201, trigger
    assert trigger["service"] == service["name"] and trigger["state"] == tr.RESOLVED
    return trigger


async def trigger_state(system: System, key: str, trigger_id: int, state: str) -> dict[str, Any]:
    _, found = await eventually(
        lambda: call(system, "GET", f"/v1/triggers/{trigger_id}", key), lambda r: r[1]["state"] == state
    )
    return found


async def incidents(system: System, key: str, n: int, done: Any = lambda i: True) -> list[dict[str, Any]]:
    _, rows = await eventually(
        lambda: call(system, "GET", "/v1/incidents", key), lambda r: len(r[1]) == n and all(done(i) for i in r[1])
    )
    return rows


async def test_the_manuals_curl_examples_are_idempotent_and_notify_once_each_way(settings: Settings) -> None:
    receiver = await FakeReceiver().start()
    try:
        async with running_system(settings) as system:
            _, key = await system.create_project("curl")
            status, _ = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url, "topics": ["*"]})
            assert status == 201
            trigger = await new_trigger(system, key, critical=False)
            base = f"{system.ingest.url}/triggers/{trigger['id']}"
            auth = f"Authorization: Bearer {key}"

            for _ in range(2):  # idempotent: one incident, one notification
                status, answer = await curl("-X", "POST", "-H", auth, f"{base}/alert")
                assert status == 200 and answer == {"status": "ok", "trigger_id": trigger["id"], "action": "alert"}
            await trigger_state(system, key, trigger["id"], tr.ALERTING)
            [incident] = await incidents(system, key, 1)
            assert incident["kind"] == "trigger" and incident["title"] == "Database CPU is alerting"
            assert incident["details"]["critical"] is False and incident["details"]["escalate"] is True

            for _ in range(2):
                status, _ = await curl("-X", "POST", "-H", auth, f"{base}/acknowledge")
                assert status == 200
            # Alerting an acknowledged trigger has no effect.
            assert (await curl("-X", "POST", "-H", auth, f"{base}/alert"))[0] == 200
            await trigger_state(system, key, trigger["id"], tr.ACKNOWLEDGED)
            # The discouraged ?token= form, and the /v1 path.
            status, _ = await curl("-X", "POST", f"{base}/resolve?token={key}")
            assert status == 200
            status, _ = await curl("-X", "POST", "-H", auth, f"{system.ingest.url}/v1/triggers/{trigger['id']}/resolve")
            assert status == 200
            await trigger_state(system, key, trigger["id"], tr.RESOLVED)
            [incident] = await incidents(system, key, 1, lambda i: i["resolved_at"] is not None)
            assert incident["acknowledged_by"].startswith("api key heron_")

            got = await receiver.wait_for(6)
            topics = collections.Counter(d.json["topic"] for d in got)
            assert topics == {
                t: 1
                for t in (
                    "incident.opened",
                    "trigger.alerting",
                    "incident.acknowledged",
                    "trigger.acknowledged",
                    "incident.resolved",
                    "trigger.resolved",
                )
            }, topics
            assert all(d.json["data"]["incident"]["id"] == incident["id"] for d in got)

            # It can fire again once resolved.
            assert (await curl("-X", "POST", f"{base}/alert?token={key}"))[0] == 200
            await incidents(system, key, 2)
    finally:
        await receiver.stop()


async def test_alert_bodies_json_form_text_and_cut_when_too_long(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("bodies")
        trigger = await new_trigger(system, key)
        url = f"{system.ingest.url}/triggers/{trigger['id']}/alert"
        auth = f"Authorization: Bearer {key}"
        cases = [
            (
                ["-H", "Content-Type: application/json", "-d", '{"host":"server1", "status":"onfire"}'],
                '{"host":"server1", "status":"onfire"}',
                {"host": "server1", "status": "onfire"},
            ),
            (
                ["-H", "Content-Type: application/x-www-form-urlencoded", "-d", "host=server1&status=onfire"],
                "host=server1&status=onfire",
                {"host": "server1", "status": "onfire"},
            ),
            (["-H", "Content-Type: text/plain", "-d", "server 1 is on fire"], "server 1 is on fire", None),
            # %00 decodes to NUL, which Postgres refuses: an audit found the call answered 200 and
            # then no incident ever opened. Shown as U+FFFD instead.
            (
                ["-H", "Content-Type: application/x-www-form-urlencoded", "-d", "msg=a%00b"],
                "msg=a%00b",
                {"msg": "a\ufffdb"},
            ),
        ]
        for n, (args, text, data) in enumerate(cases, start=1):
            status, _ = await curl("-X", "POST", "-H", auth, *args, url)
            assert status == 200
            rows = await incidents(system, key, n)
            assert rows[0]["details"]["body"] == text and rows[0]["details"].get("data") == data
            assert (await call(system, "POST", f"/v1/incidents/{rows[0]['id']}/resolve", key))[0] == 200

        long = "x" * (tr.MAX_BODY_BYTES + 5000)
        async with system.http.post(
            url, data=long, headers={"Authorization": f"Bearer {key}", "Content-Type": "text/plain"}
        ) as r:
            assert r.status == 200
        rows = await incidents(system, key, 5)
        kept = rows[0]["details"]["body"]
        assert kept.endswith(tr.TRUNCATED) and len(kept.encode()) <= tr.MAX_BODY_BYTES and long.startswith(kept[:100])
        assert (await call(system, "POST", f"/v1/incidents/{rows[0]['id']}/resolve", key))[0] == 200

        # JSON nested deeper than HERON_MAX_JSON_DEPTH (32) is shown as text alone. Found by an
        # audit: 253+ levels answered 503 "retry" for ever (the message could not be encoded) and
        # the incident never opened; 33-252 levels were stored parsed, past the bound.
        for n, levels in enumerate((40, 300), start=6):
            deep = '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            async with system.http.post(url, data=deep, headers=headers) as r:
                assert r.status == 200, await r.text()
            rows = await incidents(system, key, n)
            assert rows[0]["details"]["body"] == deep and "data" not in rows[0]["details"]
            assert (await call(system, "POST", f"/v1/incidents/{rows[0]['id']}/resolve", key))[0] == 200


async def test_a_liveness_trigger_alerts_by_itself_and_a_checkin_resolves_it(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("liveness")
        status, error = await call(system, "POST", "/v1/triggers", key, {"name": "cron", "kind": "liveness"})
        assert status == 422 and "timeout" in error["error"]["message"]
        status, error = await call(
            system, "POST", "/v1/triggers", key, {"name": "cron", "kind": "liveness", "timeout": 0.01}
        )
        assert status == 422 and error["error"]["code"] == "invalid_field"
        trigger = await new_trigger(system, key, name="nightly", kind="liveness", timeout=0.3)
        assert trigger["kind"] == "liveness" and trigger["timeout"] == 0.3

        await trigger_state(system, key, trigger["id"], tr.ALERTING)
        [incident] = await incidents(system, key, 1)
        assert incident["kind"] == "trigger" and incident["details"]["reason"] == "timeout"

        status, _ = await curl(
            "-X", "POST", "-H", f"Authorization: Bearer {key}", f"{system.ingest.url}/triggers/{trigger['id']}/checkin"
        )
        assert status == 200
        [incident] = await incidents(system, key, 1, lambda i: i["resolved_at"] is not None)
        _, found = await eventually(
            lambda: call(system, "GET", f"/v1/triggers/{trigger['id']}", key),
            lambda r: r[1]["last_checkin"] is not None,
        )
        assert found["last_checkin"] is not None


async def test_trigger_incidents_through_the_generic_incident_endpoints(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("generic")
        trigger = await new_trigger(system, key)
        assert (await call(system, "POST", f"/v1/triggers/{trigger['id']}/alert", key))[0] == 200
        [incident] = await incidents(system, key, 1)
        status, acked = await call(system, "POST", f"/v1/incidents/{incident['id']}/acknowledge", key)
        assert status == 200 and acked["acknowledged_at"] is not None
        await trigger_state(system, key, trigger["id"], tr.ACKNOWLEDGED)
        status, resolved = await call(system, "POST", f"/v1/incidents/{incident['id']}/resolve", key)
        assert status == 200 and resolved["resolved_at"] is not None and resolved["kind"] == "trigger"
        await trigger_state(system, key, trigger["id"], tr.RESOLVED)


async def test_test_keys_answer_as_usual_and_change_nothing(settings: Settings) -> None:
    async with running_system(settings) as system:
        project_id, key = await system.create_project("testkeys")
        trigger = await new_trigger(system, key)
        status, made = await call(system, "POST", f"/v1/projects/{project_id}/keys", key, {"test": True})
        assert status == 201 and made["test"] is True and made["api_key"].startswith("heron_TEST_")
        test_key = made["api_key"]
        base = f"{system.ingest.url}/triggers/{trigger['id']}"

        for action in ("alert", "acknowledge", "resolve"):
            status, answer = await curl("-X", "POST", "-H", f"Authorization: Bearer {test_key}", f"{base}/{action}")
            assert status == 200 and answer == {"status": "ok", "trigger_id": trigger["id"], "action": action}
        status, _ = await curl(
            "-X", "POST", "-H", "Content-Type: text/plain", "-d", "test", f"{base}/alert?token={test_key}"
        )
        assert status == 200
        stream = {"event_name": "job.done"}
        assert (await call(system, "POST", "/v1/track", test_key, stream))[0] == 202
        status, stored = await call(system, "POST", "/v1/events", test_key, [stream, stream])
        assert status == 200 and stored == {"status": "stored", "count": 2}
        # Reads work; every other write answers as a real call would and changes nothing.
        assert (await call(system, "GET", "/v1/triggers", test_key))[0] == 200
        pool = system.ingest.app[PG]
        tables = ("monitors", "services", "api_keys", "incidents", "webhook_endpoints")
        before = {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
        status, service = await call(system, "POST", "/v1/services", test_key, {"name": "made by a test key"})
        assert status == 201, service
        assert service["name"] == "made by a test key" and service["id"] > 0
        status, made_trigger = await call(
            system, "POST", "/v1/triggers", test_key, {"name": "x", "service_id": trigger["service_id"]}
        )
        assert status == 201 and made_trigger["name"] == "x" and made_trigger["state"] == "resolved"
        status, error = await call(system, "POST", "/v1/triggers", test_key, {"name": ""})
        assert status == 422 and error["error"]["code"] != "test_key"  # validated as a real call is
        status, new_key = await call(system, "POST", f"/v1/projects/{project_id}/keys", test_key, {})
        assert status == 201 and new_key["api_key"].startswith("heron_")
        assert (await call(system, "GET", "/v1/triggers", new_key["api_key"]))[0] == 401  # never stored
        status, _ = await call(system, "DELETE", f"/v1/triggers/{trigger['id']}", test_key)
        assert status == 202  # as when the detector has not applied it yet: here it never will
        status, _ = await call(system, "POST", f"/v1/monitors/{trigger['id']}/pause", test_key)
        assert status in (200, 202)
        assert {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables} == before
        status, listed = await call(system, "GET", "/v1/triggers", key)
        assert [t["id"] for t in listed] == [trigger["id"]]

        # A real call on the same shard comes after the test ones: when it shows, they would have.
        assert (await curl("-X", "POST", "-H", "Content-Type: text/plain", "-d", "real", f"{base}/alert?token={key}"))[
            0
        ] == 200
        assert (await call(system, "POST", "/v1/track", key, stream))[0] == 202
        [incident] = await incidents(system, key, 1)
        assert incident["details"]["body"] == "real"
        _, monitors = await eventually(
            lambda: call(system, "GET", "/v1/monitors", key), lambda r: any(m["kind"] == "event" for m in r[1])
        )
        [stream_monitor] = [m for m in monitors if m["kind"] == "event"]
        assert stream_monitor["event_count"] == 1


async def test_ids_that_are_not_the_callers_are_404_and_bad_calls_are_clear(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("mine")
        _, other = await system.create_project("theirs")
        trigger = await new_trigger(system, key)
        for path in (f"/triggers/{trigger['id']}/alert", "/triggers/999999/alert", "/triggers/x/alert"):
            status, error = await call(system, "POST", path, other)
            assert status == 404 and error["error"]["code"] == "not_found"
        assert (await call(system, "GET", f"/v1/triggers/{trigger['id']}", other))[0] == 404
        status, error = await call(system, "POST", f"/triggers/{trigger['id']}/alert", None)
        assert status == 401 and error["error"]["code"] == "missing_api_key"
        status, error = await call(system, "POST", f"/triggers/{trigger['id']}/checkin", key)
        assert status == 409 and error["error"]["code"] == "not_liveness"
        status, error = await call(system, "POST", "/v1/triggers", key, {"name": "x", "kind": "sometimes"})
        assert status == 422 and "kind" in error["error"]["message"]
        status, error = await call(system, "POST", "/v1/triggers", key, {"name": "x", "service_id": 999999})
        assert status == 422 and "service_id" in error["error"]["message"]

        # Services: unique names, in use means 409, then deletable.
        status, error = await call(system, "POST", "/v1/services", key, {"name": trigger["service"]})
        assert status == 409 and error["error"]["code"] == "name_taken"
        status, error = await call(system, "DELETE", f"/v1/services/{trigger['service_id']}", key)
        assert status == 409 and error["error"]["code"] == "service_in_use"
        status, patched = await call(
            system, "PATCH", f"/v1/triggers/{trigger['id']}", key, {"service_id": None, "critical": False}
        )
        assert status == 200 and patched["service_id"] is None and patched["critical"] is False, patched
        assert (await call(system, "DELETE", f"/v1/services/{trigger['service_id']}", key))[0] == 204
        assert (await call(system, "GET", f"/v1/services/{trigger['service_id']}", key))[0] == 404
        assert (await call(system, "DELETE", f"/v1/triggers/{trigger['id']}", key))[0] == 204
        assert (await call(system, "GET", "/v1/triggers", key))[1] == []


async def test_a_rename_to_a_name_taken_meanwhile_applies_the_rest_and_loses_nothing(
    settings: Settings, pg, redis
) -> None:
    # Found by an audit: PATCH {"name": "Y"} raced with POST {"name": "Y"}: both passed the API's
    # check, and the detector's configure hit the unique index and was dead-lettered. The
    # command below is that PATCH arriving after the other trigger took the name.
    from heron_common import messages
    from heron_detector.core import Detector

    async with running_system(settings, services=()) as system:
        _, key = await system.create_project("race")
        first = await new_trigger(system, key, name="X")
        second = await new_trigger(system, key, name="Y")
    row = await pg.fetchrow("SELECT * FROM monitors WHERE id = $1", first["id"])
    if second["service"] != first["service"]:  # the name is unique per service: share one
        await pg.execute("UPDATE monitors SET service = $2 WHERE id = $1", second["id"], row["service"])
    command = messages.command_message(
        row["id"], row["project_id"], "configure", time.time(), by="race", args={"name": "Y", "escalate": False}
    )
    handled = await Detector(pg, redis, None, settings).handle_many(
        row["shard"], [messages.encode(command)], time.time()
    )
    assert handled.poison == {}
    after = await pg.fetchrow("SELECT name, config FROM monitors WHERE id = $1", row["id"])
    assert after["name"] == "X" and after["config"]["escalate"] is False
