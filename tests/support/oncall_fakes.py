"""Third parties that on-call pages reach, as real local servers speaking their protocol:

- :class:`FakeSMTP`: an SMTP server (aiosmtpd) on 127.0.0.1, on the test's own event loop; it
  keeps every message it accepted, parsed.
- :class:`FakeSlackAPI`: Slack's Web API ``chat.postMessage`` (bearer bot token, JSON in,
  ``{"ok": …}`` out, as Slack answers) and an incoming-webhook path.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def text(self) -> str:
        return self.message.get_content()


@dataclass
class FakeSMTP:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Mail] = field(default_factory=list)
    _server: asyncio.base_events.Server | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self._arrived:
            self.received.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    async def start(self) -> FakeSMTP:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="fake-smtp"), self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.received if address in m.recipients]

    async def wait_for(self, count: int, timeout: float = 30.0, *, to: str | None = None) -> list[Mail]:
        def enough() -> bool:
            return len(self.to(to) if to else self.received) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), timeout)
        return self.to(to) if to else list(self.received)


@dataclass
class FakeSlackAPI:
    """``POST /api/chat.postMessage`` with ``Authorization: Bearer <token>`` (Slack's Web API) and
    ``POST /services/T/B/X`` (an incoming webhook)."""

    token: str = "xoxb-test-bot-token"
    posted: list[dict[str, Any]] = field(default_factory=list)  # chat.postMessage bodies
    hooked: list[dict[str, Any]] = field(default_factory=list)  # incoming-webhook bodies
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _post_message(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        body = await request.json()
        if not str(body.get("channel", "")).startswith(("U", "W", "C")):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        async with self._arrived:
            self.posted.append(body)
            self._arrived.notify_all()
        return web.json_response({"ok": True, "channel": "D0001", "ts": "1700000000.000100"})

    async def _hook(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        async with self._arrived:
            self.hooked.append(body)
            self._arrived.notify_all()
        return web.Response(text="ok")

    async def start(self) -> FakeSlackAPI:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/services/{tail:.*}", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.posted) >= count), timeout)
        return list(self.posted)
