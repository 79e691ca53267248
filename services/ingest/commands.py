"""Changes asked for through the API travel as commands to the detector, the only writer of
monitor state: published to the monitor's shard with the broker's confirm, applied there in order
with the shard's events and ticks. A handler then waits briefly (``applied``) for the change to
show, to answer with the result, or ``202`` if the detector is busy or down (the command is queued,
not lost). Shared by every management module that changes a monitor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from heron_common import messages
from heron_common.keys import key_hint
from heron_common.service import CLOCK
from heron_ingest.auth import presented_key
from heron_ingest.context import PUBLISHER
from heron_ingest.validation import InputError

# How long a handler waits for the detector to apply its command before answering 202.
APPLY_WAIT = 2.0


def _by(request: web.Request) -> str:
    key = presented_key(request)
    return f"api key {key_hint(key)}" if key else "api"


async def send_command(
    request: web.Request, monitor: asyncpg.Record, action: str, args: dict[str, Any] | None = None
) -> None:
    message = messages.command_message(
        monitor["id"], monitor["project_id"], action, request.app[CLOCK].now(), by=_by(request), args=args
    )
    try:
        await request.app[PUBLISHER].publish_message(monitor["shard"], message)
    except Exception:
        raise InputError(503, "unavailable", "the change could not be queued right now; retry") from None


async def applied(check: Callable[[], Awaitable[Any]]) -> Any:
    """The first truthy result of ``check`` within APPLY_WAIT, else None (polled: the change is
    made by another process, and this is the management path, not the hot one)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + APPLY_WAIT
    while True:
        result = await check()
        if result or loop.time() > give_up:
            return result or None
        await asyncio.sleep(0.02)
