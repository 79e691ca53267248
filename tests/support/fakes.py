"""Stand-ins for third parties, as real local HTTP servers speaking their protocol."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class FakeReceiver:
    """A webhook receiver on 127.0.0.1 (or another loopback address).

    ``script`` gives the next responses as (status, headers, body); then 200. ``gate``, when set,
    holds every request until the test opens it — a receiver that is slow for exactly as long as
    the test wants, with no sleeping.
    """

    host: str = "127.0.0.1"
    path: str = "/hooks/heron"
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    attempts: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.attempts += 1
            self._arrived.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        async with self._arrived:
            status, headers, text = self.script.pop(0) if self.script else (200, {}, "ok")
            if 200 <= status < 300:
                self.received.append(Received(request.path, dict(request.headers), body))
            self._arrived.notify_all()
        return web.Response(status=status, headers=headers, text=text)

    async def start(self) -> FakeReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{port}{self.path}"
        return self

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._runner:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return self.received

    async def wait_for_attempts(self, count: int, timeout: float = 30.0) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self.attempts >= count), timeout)


@dataclass
class FakeSlack(FakeReceiver):
    """A Slack incoming-webhook endpoint: ``200 ok`` unless scripted to fail."""

    path: str = "/services/T000/B000/XXXX"
