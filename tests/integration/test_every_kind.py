"""Every kind's incidents through one project: an event stream, a heartbeat and a trigger each open
an incident, are acknowledged through /v1/incidents and resolve (events return, a ping, by hand),
and Slack and a webhook each hear of every step exactly once."""

from __future__ import annotations

import collections
import time
from dataclasses import replace

from heron_common.settings import Settings
from tests.integration.test_triggers import call, new_trigger
from tests.support.fakes import FakeReceiver, FakeSlack
from tests.support.system import running_system
from tests.support.waiting import eventually

KINDS = ("event", "heartbeat", "trigger")
STEPS = ("incident.opened", "incident.acknowledged", "incident.resolved")


async def test_every_kind_is_acknowledged_resolved_and_notified_once_each(settings: Settings, slack: FakeSlack) -> None:
    receiver = await FakeReceiver().start()
    try:
        async with running_system(replace(settings, min_tolerance=0.5)) as system:
            project_id, key = await system.create_project("every-kind")
            status, _ = await call(
                system, "PATCH", f"/v1/projects/{project_id}/slack", key, {"slack_webhook_url": slack.url}
            )
            assert status == 200
            status, _ = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url, "topics": ["incident.*"]})
            assert status == 201

            # An event stream learned, then silent.
            now = time.time()
            for i in range(5):
                body = {"event_name": "order.placed", "timestamp": now - (5 - i) * 0.1}
                assert (await call(system, "POST", "/v1/track", key, body))[0] == 202
            # A heartbeat that pinged once and then missed its interval and grace.
            status, beat = await call(
                system, "POST", "/v1/heartbeats", key, {"name": "backup", "interval": 0.3, "grace": 0.3}
            )
            assert status == 201, beat
            async with system.http.post(beat["ping_url"]) as r:
                assert r.status == 200
            # A trigger alerted by hand.
            trigger = await new_trigger(system, key, kind="manual")
            assert (await call(system, "POST", f"/triggers/{trigger['id']}/alert", key, {"why": "cpu"}))[0] == 200

            _, opened = await eventually(
                lambda: call(system, "GET", "/v1/incidents/active", key),
                lambda r: sorted(i["kind"] for i in r[1]) == sorted(KINDS),
                timeout=30.0,
            )
            for incident in opened:
                status, acked = await call(system, "POST", f"/v1/incidents/{incident['id']}/acknowledge", key)
                assert status == 200 and acked["acknowledged_at"] is not None, acked

            by_kind = {i["kind"]: i for i in opened}
            # Once back, the stream must not go silent again within the test: an hour's interval.
            monitor = by_kind["event"]["monitor_id"]
            status, _ = await call(system, "PATCH", f"/v1/monitors/{monitor}", key, {"expected_interval": 3600})
            assert status == 200
            assert (await call(system, "POST", "/v1/track", key, {"event_name": "order.placed"}))[0] == 202
            status, _ = await call(system, "PATCH", f"/v1/heartbeats/{beat['id']}", key, {"interval": 3600})
            assert status in (200, 202)
            async with system.http.post(beat["ping_url"]) as r:
                assert r.status == 200
            status, _ = await call(system, "POST", f"/v1/incidents/{by_kind['trigger']['id']}/resolve", key)
            assert status == 200

            ids = {i["id"] for i in opened}
            _, seen = await eventually(
                lambda: call(system, "GET", "/v1/incidents", key),
                lambda r: all(i["resolved_at"] for i in r[1] if i["id"] in ids),
                timeout=30.0,
            )
            assert all(i["acknowledged_by"] for i in seen if i["id"] in ids)

            hooks = await receiver.wait_for(len(KINDS) * len(STEPS), timeout=60.0)
            per_hook = collections.Counter(
                (d.json["data"]["incident"]["id"], d.json["topic"])
                for d in hooks
                if d.json["data"]["incident"]["id"] in ids
            )
            assert set(per_hook) == {(i, s) for i in ids for s in STEPS} and set(per_hook.values()) == {1}, per_hook

            messages = await slack.wait_for(len(KINDS) * len(STEPS), timeout=60.0)
            said = collections.Counter(
                (m.json["blocks"][0]["text"]["text"], m.json["text"].split(",")[0].split(": ", 1)[1]) for m in messages
            )
            assert len(said) == len(KINDS) * len(STEPS) and set(said.values()) == {1}, said  # once each
            named = {what.split(" is ")[0] for _, what in said}
            assert named == {"Event: order.placed", "Heartbeat: backup", "Trigger: Database CPU"}, said
    finally:
        await receiver.stop()
