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


@dataclass
class FakeSlackAPI:
    """The Slack Web API's ``chat.postMessage`` (``/api/chat.postMessage``): a JSON body with
    ``channel`` and ``text``, ``Authorization: Bearer <bot token>``. Answers as Slack does: ``200
    {"ok": true, "channel", "ts", "message"}``, or ``200 {"ok": false, "error"}`` for a bad token
    (``invalid_auth``) or a channel the bot is not in (``channel_not_found``)."""

    token: str
    channels: set[str] = field(default_factory=lambda: {"#ops"})
    posted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""  # the API base, as HERON_SLACK_API_URL
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _post_message(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        async with self._arrived:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
                self.refused.append(body)
            elif body.get("channel") not in self.channels or not body.get("text"):
                answer = {"ok": False, "error": "channel_not_found" if body.get("text") else "no_text"}
                self.refused.append(body)
            else:
                ts = f"{1700000000 + len(self.posted)}.000100"
                self.posted.append(body)
                answer = {"ok": True, "channel": "C0123456789", "ts": ts, "message": {"text": body["text"], "ts": ts}}
            self._arrived.notify_all()
        return web.json_response(answer)

    async def start(self) -> FakeSlackAPI:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post_message)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/api"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.posted) >= count), timeout)
        return self.posted

    def texts(self) -> list[str]:
        return [m["text"] for m in self.posted]
