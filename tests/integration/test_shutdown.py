"""SIGTERM under load: every event ingest acknowledged is stored; nothing accepted is lost."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from heron_common.settings import Settings
from tests.support.processes import free_port, settings_env, start_service, wait_ready
from tests.support.system import running_system
from tests.support.waiting import eventually


async def test_sigterm_during_load_loses_no_acknowledged_event(settings: Settings, pg) -> None:
    port = free_port()
    proc = await start_service("heron_ingest", settings_env(settings, HERON_INGEST_PORT=str(port)))
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, proc)
    acked: list[int] = []
    enough = asyncio.Event()

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/v1/projects",
            params={"name": "shutdown"},
            headers={"Authorization": f"Bearer {settings.admin_token}"},
        ) as r:
            project = await r.json()
        auth = {"Authorization": f"Bearer {project['api_key']}"}

        async def sender(worker: int) -> None:
            seq = worker * 1_000_000
            while True:
                seq += 1
                body = {"events": [{"event": "load.tick", "metadata": {"seq": seq}}]}
                try:
                    async with http.post(f"{url}/v1/events", json=body, headers=auth) as r:
                        if r.status == 200:
                            acked.append(seq)
                            if len(acked) >= 300:
                                enough.set()
                        elif r.status != 503:
                            raise AssertionError(f"unexpected {r.status}: {await r.text()}")
                except aiohttp.ClientError:
                    return  # the server has gone: stop

        senders = [asyncio.create_task(sender(w)) for w in range(16)]
        await enough.wait()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.gather(*senders)

    # A detector now drains the queues: every acknowledged event is there.
    async with running_system(settings, services=("detector",)):
        stored = await eventually(
            lambda: pg.fetch(
                "SELECT (metadata->>'seq')::bigint AS seq FROM events WHERE project_id = $1", project["project_id"]
            ),
            lambda rows: len(rows) >= len(acked),
        )
    assert set(acked) <= {r["seq"] for r in stored}
