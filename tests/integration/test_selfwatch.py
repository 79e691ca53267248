"""Heron watching itself (issue #14), on the real servers: the self-watch samples the real ticker
state and shard queues, pings the operator's dead-man's switch only while healthy, and says a stall
(once) and its recovery (once) to the operator's alert URL, a local receiver here. Time is passed
in: a sample an hour ahead sees the ticker an hour old."""

from __future__ import annotations

import time
from dataclasses import replace

from heron_common.outbound import GuardedSession
from heron_common.service import PG
from heron_common.settings import Settings
from heron_notifier.selfwatch_loop import SelfWatch, sample
from tests.support.fakes import FakeReceiver
from tests.support.system import running_system
from tests.support.waiting import eventually


async def test_heartbeat_while_healthy_one_alert_per_stall_and_one_recovery(settings: Settings) -> None:
    alerts = await FakeReceiver(path="/alerts").start()
    beats = await FakeReceiver(path="/ping/heron").start()
    settings = replace(
        settings,
        self_alert_url=alerts.url,
        self_heartbeat_url=beats.url,
        self_heartbeat_interval=60.0,
        self_confirm_after=0.0,
    )
    http = GuardedSession(settings.outbound_allow_cidrs, timeout=10.0)
    try:
        async with running_system(settings, services=("detector",)) as system:
            app = system.others["detector"].app
            await eventually(
                lambda: app[PG].fetchval("SELECT count(*) FROM ticker_state"), lambda n: n == 1
            )  # the ticker has ticked once
            seen = await eventually(lambda: sample(app, time.time()), lambda s: all(q.consumers >= 1 for q in s.queues))
            assert len(seen.queues) == settings.shards and not seen.unreachable

            watch = SelfWatch(app, http)
            now = time.time()
            assert await watch.step(now)
            await beats.wait_for(1)
            assert alerts.received == []

            # An hour on, the ticker has not ticked since: a stall, said once, and no heartbeat.
            assert await watch.step(now + 3600)
            [stalled] = await alerts.wait_for(1)
            body = stalled.json
            assert body["event"] == "heron.pipeline.stalled"
            assert body["reasons"] == ["no tick for over 120 s (the watermark stopped)"]
            assert "stalled" in body["text"]
            assert not await watch.step(now + 3610)
            assert len(alerts.received) == 1 and len(beats.received) == 1

            # The ticker catches up (as it does once the detector is back): the recovery, said
            # once with how long the stall lasted, and the heartbeat again.
            await app[PG].execute("UPDATE ticker_state SET last_tick_at = to_timestamp($1)", now + 3615)
            assert await watch.step(now + 3620)
            await alerts.wait_for(2)
            recovered = alerts.received[1].json
            assert recovered["event"] == "heron.pipeline.recovered" and "after 20 s" in recovered["text"]
            await beats.wait_for(2)
    finally:
        await http.close()
        await alerts.stop()
        await beats.stop()
