"""track() to Slack alert and back, through all four services on the real servers."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from datetime import datetime

from heron_common.settings import Settings
from tests.support.fakes import FakeSlack
from tests.support.system import running_system


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_silence_opens_incident_and_resume_resolves_it(settings: Settings, slack: FakeSlack) -> None:
    # A second of tolerance: with the suite's 0.4 s, a loaded machine stalling the 0.2 s cadence
    # below could open an early incident mid-stream (and its recovery) before the real silence.
    async with running_system(replace(settings, min_tolerance=1.0)) as system:
        project_id, key = await system.create_project("e2e")
        auth = {"Authorization": f"Bearer {key}"}
        base = system.ingest.url
        async with system.http.patch(
            f"{base}/v1/projects/{project_id}/slack", json={"slack_webhook_url": slack.url}, headers=auth
        ) as resp:
            assert resp.status == 200, await resp.text()

        async def track(ts: float) -> None:
            body = {
                "event_name": "payment.completed",
                "service": "payments",
                "environment": "production",
                "timestamp": ts,
                "metadata": {"amount": 49.99},
            }
            async with system.http.post(f"{base}/v1/track", json=body, headers=auth) as r:
                assert r.status == 202, await r.text()

        # A steady cadence of ~200 ms until Heron has learned it.
        sent = []
        for _ in range(8):
            sent.append(time.time())
            await track(sent[-1])
            await asyncio.sleep(0.2)  # the cadence being generated, not a wait for an outcome

        # Silence: the alert arrives at the fake Slack.
        [alert] = await slack.wait_for(1)
        text = alert.json["text"]
        assert alert.json["blocks"][0]["text"]["text"] == "🚨 Heron alert"
        assert "payment.completed" in text and "payments" in text and "production" in text
        assert re.search(r"Expected interval: ~0\.[1-4] seconds", text), text
        assert re.search(r"Last seen: \d(\.\d)? seconds? ago", text), text

        async with system.http.get(f"{base}/v1/incidents/active", headers=auth) as r:
            active = await r.json()
        assert len(active) == 1
        assert active[0]["event_name"] == "payment.completed"
        assert active[0]["resolved_at"] is None and active[0]["duration"] is None
        assert abs(_ts(active[0]["started_at"]) - sent[-1]) < 0.001

        async with system.http.get(f"{base}/v1/monitors", headers=auth) as r:
            [monitor] = await r.json()
        assert monitor["state"] == "down"
        assert monitor["event_count"] == len(sent)
        assert 0.15 < monitor["expected_interval"] < 0.4

        # Resume: the incident resolves and Slack hears of the recovery.
        resumed = time.time()
        await track(resumed)
        [_, recovery] = await slack.wait_for(2)
        assert recovery.json["blocks"][0]["text"]["text"] == "✅ Heron recovery"
        assert "payment.completed" in recovery.json["text"]

        async with system.http.get(f"{base}/v1/incidents", headers=auth) as r:
            # After the single resuming event the stream falls silent again, so a second
            # incident may already be open: look at the first one.
            [incident] = [i for i in await r.json() if i["id"] == active[0]["id"]]
        assert incident["resolved_at"] is not None
        # Downtime is the real silence: resume time minus the last event before the gap.
        assert incident["duration"] == round(resumed - sent[-1])
        assert abs(_ts(incident["resolved_at"]) - resumed) < 0.001
        assert "Downtime: " in recovery.json["text"]
