"""Heron's own outage never pages: the broker is cut for several times longer than the streams'
tolerance. Some clients keep retrying (as the SDK does); one drops what was refused and goes on at
its own pace (a cron job's `curl … || true`), so without the blind-window rule the first tick after
the outage would page it. Afterwards no stream fed all along has an incident, and a stream that
stops once Heron is healthy again is still detected."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from heron_common.settings import Settings
from tests.chaos.conftest import Proxies, chaos_settings
from tests.support.chaos import Figures, Load, detected, learned, project_with_receiver, recovered, report, verify
from tests.support.fakes import FakeReceiver
from tests.support.system import running_system

STREAMS = ["blind.retried", "blind.dropped", "blind.stopped"]
DROPPED_EVERY = 1.0  # seconds between the dropping client's events
TOLERANCE = 1.0  # HERON_MIN_TOLERANCE: the streams' learned deadline is about 1.3 s after an event
OUTAGE = 5.0  # the broker is unreachable this long: several tolerances


async def test_an_outage_longer_than_the_tolerance_never_pages(
    settings: Settings, proxies: Proxies, pg, receiver: FakeReceiver, request: pytest.FixtureRequest
) -> None:
    figures = Figures(f"rabbitmq unreachable {OUTAGE:.0f} s, tolerance {TOLERANCE:.0f} s")
    s = dataclasses.replace(chaos_settings(settings, proxies), min_tolerance=TOLERANCE)
    async with running_system(s) as system:
        urls = [system.ingest.url, *(r.url for r in system.others.values())]
        project = await project_with_receiver(system.http, system.ingest.url, s.admin_token or "", receiver)
        load = Load(
            system.http, system.ingest.url, project["api_key"], STREAMS, drop={"blind.dropped": DROPPED_EVERY}
        ).start()
        try:
            await learned(pg, project["project_id"], STREAMS)
            deadlines = await pg.fetch(
                "SELECT extract(epoch FROM deadline) AS d FROM monitors WHERE project_id = $1", project["project_id"]
            )
            proxies.rabbitmq.sever()
            cut = time.time()
            await asyncio.sleep(OUTAGE)  # the length of the outage
            proxies.rabbitmq.restore()
            # Without the rule this would page: every deadline held before the cut has passed.
            assert all(float(r["d"]) < time.time() for r in deadlines)
            restored = time.monotonic()
            await recovered(system.http, urls, pg, project["project_id"], load)
            figures.recover_seconds = time.monotonic() - restored

            window = await pg.fetchrow("SELECT * FROM blind_windows ORDER BY id DESC LIMIT 1")
            assert window is not None and window["started_at"].timestamp() <= cut + 1.0, window
            assert window["ended_at"].timestamp() - window["started_at"].timestamp() >= OUTAGE - 1.0, window

            await load.stop("blind.stopped")  # stopped once Heron is healthy: still detected
            await detected(pg, project["project_id"], "blind.stopped")
        finally:
            proxies.rabbitmq.restore()
            await load.stop_all()
        try:
            await verify(
                figures, pg=pg, project_id=project["project_id"], load=load, stopped="blind.stopped", receiver=receiver
            )
        finally:
            report(request.config, figures)
