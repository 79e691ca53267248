"""Running Heron's services in-process, on ephemeral ports, from their real app factories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from heron_common.clock import Clock
from heron_common.settings import Settings


@dataclass
class Running:
    runner: web.AppRunner
    url: str

    @property
    def app(self) -> web.Application:
        return self.runner.app


async def start(app: web.Application) -> Running:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return Running(runner, f"http://127.0.0.1:{port}")


@dataclass
class System:
    settings: Settings
    ingest: Running
    http: aiohttp.ClientSession
    others: dict[str, Running] = field(default_factory=dict)

    async def create_project(self, name: str = "test") -> tuple[int, str]:
        async with self.http.post(
            f"{self.ingest.url}/v1/projects",
            params={"name": name},
            headers={"Authorization": f"Bearer {self.settings.admin_token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            body = await resp.json()
        return body["project_id"], body["api_key"]


@asynccontextmanager
async def running_system(
    settings: Settings, *, clock: Clock | None = None, services: tuple[str, ...] = ("detector", "notifier", "prober")
) -> AsyncIterator[System]:
    from heron_ingest.app import create_app as ingest_app

    factories = {}
    if "detector" in services:
        from heron_detector.app import create_app as detector_app

        factories["detector"] = detector_app
    if "notifier" in services:
        from heron_notifier.app import create_app as notifier_app

        factories["notifier"] = notifier_app
    if "prober" in services:
        from heron_prober.app import create_app as prober_app

        factories["prober"] = prober_app

    started: list[Running] = []
    http = aiohttp.ClientSession()
    try:
        ingest = await start(ingest_app(settings, clock))
        started.append(ingest)
        system = System(settings, ingest, http)
        for name, factory in factories.items():
            running = await start(factory(settings, clock))
            started.append(running)
            system.others[name] = running
        yield system
    finally:
        await http.close()
        for running in reversed(started):
            await running.runner.cleanup()
