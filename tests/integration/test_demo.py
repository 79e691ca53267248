"""``heron-dev --demo``: the demo project's script, run against a real Heron on short timings:
one stream stops, an incident opens, the stream comes back and the incident resolves."""

from __future__ import annotations

import asyncio
from typing import Any

from heron_common.demo import PROJECT, STOPPING_STREAM, Demo, Timing
from heron_common.settings import Settings
from tests.support.system import running_system
from tests.support.waiting import eventually


async def test_the_demo_opens_an_incident_and_resolves_it(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system:
        said: list[str] = []
        timing = Timing(tick=0.1, stop_after=1.5, resume_after=3.5, heartbeat_interval=1.0)
        demo = Demo(system.ingest.url, settings.admin_token or "", timing, say=said.append)
        stop = asyncio.Event()
        task = asyncio.create_task(demo.run(stop))

        async def incidents() -> list[dict[str, Any]]:
            headers = {"Authorization": f"Bearer {demo.key}"}
            if not demo.key:
                return []
            async with system.http.get(f"{system.ingest.url}/v1/incidents", headers=headers) as r:
                return await r.json()

        try:
            found = await eventually(
                incidents,
                lambda rows: any(i["event_name"] == STOPPING_STREAM and i["resolved_at"] for i in rows),
                timeout=30,
            )
        finally:
            stop.set()
            await task
        incident = next(i for i in found if i["event_name"] == STOPPING_STREAM)
        assert incident["title"] == f"{STOPPING_STREAM} went silent" and incident["duration"] >= 1
        assert PROJECT in said[0] and f"/dashboard/signin#token={demo.key}" in said[0]
        assert any("went silent" in line for line in said) and any("is back" in line for line in said)
        headers = {"Authorization": f"Bearer {demo.key}"}
        async with system.http.get(f"{system.ingest.url}/v1/monitors", headers=headers) as r:
            names = {m["name"] for m in await r.json()}
        assert {"checkout.completed", STOPPING_STREAM, "Nightly backup", "Database CPU above 90%"} <= names


def test_the_demo_script_stops_one_stream_for_a_while() -> None:
    demo = Demo("http://heron.invalid", "token", Timing(stop_after=30, resume_after=80))
    assert demo.streaming(STOPPING_STREAM, 29.9) and not demo.streaming(STOPPING_STREAM, 30.0)
    assert not demo.streaming(STOPPING_STREAM, 79.9) and demo.streaming(STOPPING_STREAM, 80.0)
    assert demo.streaming("checkout.completed", 50.0)
