"""The one monitor model through the API: acknowledge, pause and resume, overrides, delete —
each applied by the detector (the only writer of monitor state) and answered once it shows."""

from __future__ import annotations

import time
from typing import Any

from heron_common.settings import Settings
from tests.support.fakes import FakeReceiver
from tests.support.system import System, running_system
from tests.support.waiting import eventually

STREAM = {"event_name": "invoice.sent", "service": "billing", "environment": "production"}


async def call(system: System, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    async with system.http.request(
        method, f"{system.ingest.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else None)


async def learned_stream(system: System, key: str, events: int = 6) -> dict[str, Any]:
    """A stream with a learned cadence of ~0.1 s (the monitor is up)."""
    now = time.time()
    for i in range(events):
        status, _ = await call(system, "POST", "/v1/track", key, {**STREAM, "timestamp": now - (events - i) * 0.1})
        assert status == 202
    _, [monitor] = await eventually(
        lambda: call(system, "GET", "/v1/monitors", key),
        lambda r: len(r[1]) == 1 and r[1][0]["event_count"] == events and r[1][0]["state"] in ("up", "down"),
    )
    return monitor


async def open_incident(system: System, key: str) -> dict[str, Any]:
    _, active = await eventually(lambda: call(system, "GET", "/v1/incidents/active", key), lambda r: len(r[1]) == 1)
    return active[0]


async def test_acknowledging_an_incident_is_recorded_alerted_once_and_idempotent(settings: Settings) -> None:
    receiver = await FakeReceiver().start()
    try:
        async with running_system(settings) as system:
            _, key = await system.create_project("ack")
            status, _ = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url, "topics": ["*"]})
            assert status == 201
            await learned_stream(system, key)
            incident = await open_incident(system, key)
            assert incident["kind"] == "event" and incident["title"] == "invoice.sent went silent"
            assert incident["acknowledged_at"] is None
            # The incident says why (the model's reasoning at the moment it opened), as does the monitor.
            silence = incident["details"]["silence"]
            assert silence["model"] in ("rate", "regular") and silence["quiet_for"] > 0
            assert 0 <= silence["silence_probability"] <= 1 and silence["expected_events"] > 0
            _, monitor = await call(system, "GET", f"/v1/monitors/{incident['monitor_id']}", key)
            assert monitor["detection"]["model"] in ("rate", "regular")
            assert monitor["detection"]["quiet_for"] >= silence["quiet_for"]
            assert set(monitor["detection"]["profile"]) == {"hour_of_day", "day_of_week"}

            status, acked = await call(system, "POST", f"/v1/incidents/{incident['id']}/acknowledge", key)
            assert status == 200, acked
            assert acked["acknowledged_at"] is not None and acked["acknowledged_by"].startswith("api key heron_")
            again_status, again = await call(system, "POST", f"/v1/incidents/{incident['id']}/acknowledge", key)
            assert again_status == 200 and again["acknowledged_at"] == acked["acknowledged_at"]

            # An event stream's incident resolves when its events return, not by hand.
            status, error = await call(system, "POST", f"/v1/incidents/{incident['id']}/resolve", key)
            assert status == 409 and error["error"]["code"] == "not_resolvable"
            status, _ = await call(system, "POST", "/v1/track", key, STREAM)
            assert status == 202

            got = await receiver.wait_for(3)
            topics = [d.json["topic"] for d in got]
            assert topics == ["incident.opened", "incident.acknowledged", "incident.resolved"], topics
            assert got[0].json["data"]["incident"]["details"]["silence"] == silence
            ack_alert = got[1].json["data"]["incident"]
            assert ack_alert["id"] == incident["id"] and ack_alert["acknowledged_by"] == acked["acknowledged_by"]
            assert all(d.json["data"]["incident"]["kind"] == "event" for d in got)

            status, error = await call(system, "POST", f"/v1/incidents/{incident['id']}/acknowledge", key)
            assert status == 409 and error["error"]["code"] == "incident_resolved"
            status, error = await call(system, "POST", "/v1/incidents/999999/acknowledge", key)
            assert status == 404
    finally:
        await receiver.stop()


async def _ticked_past(system: System, at: float) -> None:
    """The ticker's watermark has passed ``at``: every scan up to then has run."""
    from heron_common.service import PG

    pool = system.others["detector"].app[PG]
    await eventually(
        lambda: pool.fetchval("SELECT extract(epoch FROM last_tick_at) FROM ticker_state"),
        lambda t: t is not None and float(t) > at,
    )


async def test_a_paused_monitor_never_alerts_and_is_judged_again_once_resumed(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("pause")
        monitor = await learned_stream(system, key)
        status, paused = await call(system, "POST", f"/v1/monitors/{monitor['id']}/pause", key)
        assert status == 200 and paused["state"] == "paused" and paused["paused"] and paused["deadline"] is None
        await _ticked_past(system, time.time() + 3.0)  # far past the learned deadline (~0.5 s)
        status, active = await call(system, "GET", "/v1/incidents/active", key)
        assert active == []

        status, resumed = await call(system, "POST", f"/v1/monitors/{monitor['id']}/resume", key)
        assert status == 200 and resumed["state"] == "up" and resumed["deadline"] is not None
        incident = await open_incident(system, key)  # still silent: judged again from the resume
        assert incident["monitor_id"] == monitor["id"]


async def test_paused_heartbeats_and_triggers_never_alert_and_are_judged_again_once_resumed(
    settings: Settings,
) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("pause-declared")
        status, beat = await call(
            system, "POST", "/v1/heartbeats", key, {"name": "backup", "interval": 0.3, "grace": 0.3}
        )
        assert status == 201, beat
        status, service = await call(system, "POST", "/v1/services", key, {"name": "API"})
        assert status == 201, service
        status, trigger = await call(system, "POST", "/v1/triggers", key, {"name": "cron", "service_id": service["id"]})
        assert status == 201, trigger
        for monitor_id in (beat["id"], trigger["monitor_id"]):
            status, paused = await call(system, "POST", f"/v1/monitors/{monitor_id}/pause", key)
            assert status == 200 and paused["state"] == "paused" and paused["deadline"] is None, paused

        # While paused, a failing run and an alert are taken (and the ping recorded) but open nothing,
        # and a liveness timeout set meanwhile does not run.
        async with system.http.post(beat["ping_url"] + "/fail") as r:
            assert r.status == 200
        assert (await call(system, "POST", f"/triggers/{trigger['id']}/alert", key))[0] == 200
        status, changed = await call(
            system, "PATCH", f"/v1/triggers/{trigger['id']}", key, {"kind": "liveness", "timeout": 0.3}
        )
        assert status == 200 and changed["state"] == "paused" and changed["deadline"] is None, changed
        await eventually(
            lambda: call(system, "GET", f"/v1/heartbeats/{beat['id']}/pings", key), lambda r: len(r[1]) == 1
        )
        await _ticked_past(system, time.time() + 2.0)  # far past the timeout and interval + grace
        assert (await call(system, "GET", "/v1/incidents", key))[1] == []
        for path in (f"/v1/heartbeats/{beat['id']}", f"/v1/triggers/{trigger['id']}"):
            assert (await call(system, "GET", path, key))[1]["state"] == "paused"

        # Resumed, each is judged again: the trigger's timer restarts and runs out, the heartbeat
        # waits for its next ping and then misses its deadline.
        status, resumed = await call(system, "POST", f"/v1/monitors/{trigger['monitor_id']}/resume", key)
        assert status == 200 and resumed["state"] == "resolved", resumed
        status, resumed = await call(system, "POST", f"/v1/monitors/{beat['id']}/resume", key)
        assert status == 200 and resumed["state"] == "new", resumed
        async with system.http.post(beat["ping_url"]) as r:
            assert r.status == 200
        _, opened = await eventually(
            lambda: call(system, "GET", "/v1/incidents/active", key),
            lambda r: sorted(i["kind"] for i in r[1]) == ["heartbeat", "trigger"],
        )
        assert {i["monitor_id"] for i in opened} == {beat["id"], trigger["monitor_id"]}


async def test_overrides_fix_the_deadline_and_bad_ones_are_refused(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("overrides")
        monitor = await learned_stream(system, key)
        path = f"/v1/monitors/{monitor['id']}"
        status, fixed = await call(system, "PATCH", path, key, {"expected_interval": 3600, "grace": 60})
        assert status == 200, fixed
        assert fixed["overrides"] == {"expected_interval": 3600.0, "grace": 60.0}
        assert fixed["expected_interval"] == 3600.0
        last_seen = fixed["last_seen"]
        from datetime import datetime

        def ts(iso: str) -> float:
            return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

        assert abs(ts(fixed["deadline"]) - (ts(last_seen) + 3660)) < 0.01

        for body, code in (
            ({}, "missing_field"),
            ({"sensitivity": 11}, "invalid_field"),
            ({"expected_interval": "1h"}, "invalid_field"),
            ({"expected_interval": -5}, "invalid_field"),
            ({"bogus": 1}, "invalid_field"),
        ):
            status, error = await call(system, "PATCH", path, key, body)
            assert status == 422 and error["error"]["code"] == code, (body, error)
        status, error = await call(system, "PATCH", path, key, {"expected_interval": None})
        assert status == 422 and "grace needs expected_interval" in error["error"]["message"]

        status, learned = await call(system, "PATCH", path, key, {"expected_interval": None, "grace": None})
        assert status == 200 and learned["overrides"] == {} and learned["expected_interval"] < 1.0
        status, sensitive = await call(system, "PATCH", path, key, {"sensitivity": 0.5})
        assert status == 200 and sensitive["overrides"] == {"sensitivity": 0.5}


async def test_deleting_a_monitor(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("delete")
        _, other_key = await system.create_project("other")
        monitor = await learned_stream(system, key)
        status, _ = await call(system, "DELETE", f"/v1/monitors/{monitor['id']}", other_key)
        assert status == 404  # another project's monitor does not exist for it
        status, _ = await call(system, "DELETE", f"/v1/monitors/{monitor['id']}", key)
        assert status == 204
        status, _ = await call(system, "GET", f"/v1/monitors/{monitor['id']}", key)
        assert status == 404
