"""Every connection to RabbitMQ, Postgres or Redis cut (and refused for a while), under load,
with no Heron process restarted: everything resumes by itself, nothing accepted is lost or
counted twice, no stream fed all along pages, a stream stopped afterwards still does, and its
alert is delivered once."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis.asyncio as redis_asyncio

from heron_common.settings import Settings
from tests.chaos.conftest import Proxies, chaos_settings
from tests.support.chaos import (
    FAULT_SECONDS,
    Figures,
    Load,
    detected,
    learned,
    project_with_receiver,
    recovered,
    report,
    verify,
)
from tests.support.fakes import FakeReceiver
from tests.support.system import running_system
from tests.support.waiting import eventually

STREAMS = ["chaos.a", "chaos.b", "chaos.c", "chaos.stopped"]


async def _not_ready(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(f"{url}/readyz") as r:
        return {**(await r.json()), "code": r.status}


async def _empty_redis(settings: Settings) -> None:
    """'Redis emptied': every key of this test's prefix (isolated from everyone else's)."""
    r = redis_asyncio.Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in r.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


@pytest.mark.parametrize("server", ["rabbitmq", "postgres", "redis"])
async def test_connections_cut_and_refused(
    server: str, settings: Settings, proxies: Proxies, pg, receiver: FakeReceiver, request: pytest.FixtureRequest
) -> None:
    figures = Figures(f"{server} connections cut {FAULT_SECONDS:.0f} s")
    s = chaos_settings(settings, proxies)
    async with running_system(s) as system:
        urls = [system.ingest.url, *(r.url for r in system.others.values())]
        project = await project_with_receiver(system.http, system.ingest.url, s.admin_token or "", receiver)
        load = Load(system.http, system.ingest.url, project["api_key"], STREAMS).start()
        proxy = getattr(proxies, server)
        try:
            await learned(pg, project["project_id"], STREAMS)

            proxy.sever()
            if server == "redis":
                await _empty_redis(settings)
            if server != "postgres":
                # While the broker (or Redis) is unreachable, the detector says so, and with the
                # broker gone the ticker (this detector holds its lease) says it cannot tick.
                detector = system.others["detector"].url
                down = await eventually(
                    lambda: _not_ready(system.http, detector),
                    lambda b: b["code"] == 503 and (server != "rabbitmq" or "ticker" in b["failures"]),
                    timeout=10.0,
                )
                assert {"rabbitmq": "link", "redis": "redis"}[server] in down["failures"], down
            await asyncio.sleep(FAULT_SECONDS)  # the length of the fault
            proxy.restore()
            restored = time.monotonic()
            await recovered(system.http, urls, pg, project["project_id"], load)
            figures.recover_seconds = time.monotonic() - restored

            await load.stop("chaos.stopped")  # stopped after the fault: must still be detected
            await detected(pg, project["project_id"], "chaos.stopped")
        finally:
            proxy.restore()
            await load.stop_all()
        try:
            await verify(
                figures, pg=pg, project_id=project["project_id"], load=load, stopped="chaos.stopped", receiver=receiver
            )
        finally:
            report(request.config, figures)
