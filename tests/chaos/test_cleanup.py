"""A test run leaves the broker as it found it: once a test's namespace is removed, not one queue
or exchange of it is left (a broker holding hundreds of leftover quorum queues hangs for minutes
in ``stop_app``). Listed with ``rabbitmqctl``, so a queue or exchange added later that the
clean-up does not know of is caught too."""

from __future__ import annotations

import asyncio
import subprocess

from heron_common.settings import Settings
from tests.integration.test_dashboard import browser, events, sign_in
from tests.support.system import running_system
from tests.support.testenv import remove_namespace


def _listed(what: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", what, "name", "--quiet", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


async def leftovers(prefix: str) -> list[str]:
    queues, exchanges = await asyncio.gather(
        asyncio.to_thread(_listed, "list_queues"), asyncio.to_thread(_listed, "list_exchanges")
    )
    return [name for name in queues + exchanges if name.startswith(f"{prefix}.")]


async def test_removing_a_namespace_leaves_no_queue_or_exchange_behind(settings: Settings) -> None:
    async with running_system(settings, services=("detector", "notifier", "prober")) as system:
        project_id, key = await system.create_project("cleanup")
        async with browser() as http:
            await sign_in(http, system.ingest.url, key)
            # A live dashboard stream holds a queue of its own while it is open.
            async with events(http, f"{system.ingest.url}/dashboard/p/{project_id}/events") as stream:
                assert stream.status == 200
                while (await stream.content.readline()).strip() != b": live":
                    pass  # the stream is open once its first comment came: its queue is bound
                assert any(".dashboard." in name for name in await leftovers(settings.amqp_prefix))
        # Every service declared its topology: there is something to clean up.
        assert len(await leftovers(settings.amqp_prefix)) >= settings.shards + 3
    await remove_namespace(settings)
    assert await leftovers(settings.amqp_prefix) == []
