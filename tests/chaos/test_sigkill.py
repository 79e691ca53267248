"""The detector, the notifier and the prober each killed with SIGKILL and started again, one at
a time, with the other services left running, under load: nothing accepted is lost or counted
twice, no stream fed all along pages, a stream stopped afterwards still does, its alert once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import aiohttp
import pytest
from aiohttp import web

from heron_common.settings import Settings
from tests.chaos.conftest import chaos_settings
from tests.support.chaos import Figures, Load, detected, learned, project_with_receiver, recovered, report, verify
from tests.support.fakes import FakeReceiver
from tests.support.processes import free_port, settings_env, start_service, wait_ready
from tests.support.waiting import eventually

STREAMS = ["kill.a", "kill.b", "kill.c", "kill.stopped"]
SERVICES = ("ingest", "detector", "notifier", "prober")
PROBE_INTERVAL = 0.5


class HealthyEndpoint:
    """A local endpoint that is up all along: what the probe checks while the prober is killed."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self.health)
        self.runner = web.AppRunner(app)

    @staticmethod
    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/health"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def probe_results(pg, project_id: int) -> int:
    return await pg.fetchval("SELECT count(*) FROM probe_results WHERE project_id = $1 AND up", project_id)


class Service:
    """One service as a real process; its stderr is drained so a chatty log never blocks it."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, f"HERON_{name.upper()}_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await start_service(f"heron_{self.name}", self.env)

    def drain(self) -> None:
        async def run(stream: asyncio.StreamReader) -> None:
            while await stream.read(65536):
                pass

        assert self.proc is not None and self.proc.stderr is not None
        self._drain = asyncio.create_task(run(self.proc.stderr))

    async def ready(self) -> None:
        assert self.proc is not None
        await wait_ready(self.url, self.proc)
        self.drain()

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self._drain is not None:
            await self._drain

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await self._drain


async def test_each_service_sigkilled_and_restarted(
    settings: Settings, pg, receiver: FakeReceiver, request: pytest.FixtureRequest
) -> None:
    figures = Figures("detector, notifier, prober SIGKILLed in turn")
    s = chaos_settings(settings)
    env = settings_env(
        s,
        HERON_LOG_LEVEL="WARNING",
        HERON_KEY_CACHE_SECONDS=str(s.key_cache_seconds),
        HERON_WEBHOOK_RETRY_SCHEDULE=",".join(str(x) for x in s.webhook_retry_schedule),
        HERON_PROBE_MIN_INTERVAL=str(PROBE_INTERVAL),
    )
    services = {name: Service(name, env) for name in SERVICES}
    endpoint = HealthyEndpoint()
    async with aiohttp.ClientSession() as http:
        try:
            target = await endpoint.start()
            for service in services.values():
                await service.start()
            for service in services.values():
                await service.ready()
            ingest = services["ingest"].url
            project = await project_with_receiver(http, ingest, s.admin_token or "", receiver)
            # The prober has work when it is killed: a probe of an endpoint that is up all along,
            # which must keep being checked afterwards and never page.
            async with http.post(
                f"{ingest}/v1/probes",
                json={"url": target, "service": "kill.probe", "interval": PROBE_INTERVAL},
                headers={"Authorization": f"Bearer {project['api_key']}"},
            ) as r:
                assert r.status == 201, await r.text()
            load = Load(http, ingest, project["api_key"], STREAMS).start()
            try:
                await learned(pg, project["project_id"], STREAMS)
                recover = 0.0
                for name in ("detector", "notifier", "prober"):
                    await services[name].kill()
                    killed = time.monotonic()
                    await services[name].start()
                    await services[name].ready()
                    await recovered(http, [x.url for x in services.values()], pg, project["project_id"], load)
                    if name == "prober":
                        before = await probe_results(pg, project["project_id"])
                        await eventually(
                            lambda: probe_results(pg, project["project_id"]),
                            lambda n, before=before: n > before,
                            timeout=30.0,
                        )
                    recover = max(recover, time.monotonic() - killed)
                figures.recover_seconds = recover
                await load.stop("kill.stopped")
                await detected(pg, project["project_id"], "kill.stopped")
            finally:
                await load.stop_all()
            try:
                await verify(
                    figures,
                    pg=pg,
                    project_id=project["project_id"],
                    load=load,
                    stopped="kill.stopped",
                    receiver=receiver,
                )
            finally:
                report(request.config, figures)
        finally:
            for service in reversed(services.values()):
                await service.stop()
            await endpoint.stop()
