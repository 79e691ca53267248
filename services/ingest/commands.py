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
import orjson
from aiohttp import web

from heron_common import bus, messages
from heron_common.keys import key_hint
from heron_common.logging import get_logger
from heron_common.service import CLOCK, NAMES, json_response
from heron_ingest.auth import presented_key
from heron_ingest.context import CHANGES, PUBLISHER
from heron_ingest.dryrun import db, dry_run
from heron_ingest.validation import InputError

# How long a handler waits for the detector to apply its command before answering 202.
APPLY_WAIT = 2.0
# How long creating a monitor may wait to tell open dashboards about it (best effort).
ANNOUNCE_WAIT = 1.0
log = get_logger("ingest")
# Who acts, when it is not the key on the request (the dashboard sets it from its session).
ACTOR = web.RequestKey("actor", str)


def who(request: web.Request, key: str | None = None) -> str:
    """Who asked, as recorded with what they did (a key's hint, never the key)."""
    if key is None and ACTOR in request:
        return request[ACTOR]
    key = key or presented_key(request)
    return f"api key {key_hint(key)}" if key else "api"


async def _publish(request: web.Request, shard: int, message: dict[str, Any], what: str) -> None:
    if dry_run():
        return  # a test key's change is never sent (heron_ingest.dryrun)
    try:
        await request.app[PUBLISHER].publish_message(shard, message)
    except (orjson.JSONEncodeError, TypeError) as exc:
        # Not the broker's fault, and a retry would fail the same way: say so, not "retry".
        raise InputError(422, "invalid_body", f"{what} cannot be encoded as a message: {exc}") from None
    except Exception:
        raise InputError(503, "unavailable", f"{what} could not be queued right now; retry") from None


async def send_command(
    request: web.Request,
    monitor: asyncpg.Record,
    action: str,
    args: dict[str, Any] | None = None,
    *,
    by: str | None = None,
) -> None:
    """``by``: who asked, when it is not the request's key (an acknowledge link, a Slack button)."""
    message = messages.command_message(
        monitor["id"], monitor["project_id"], action, request.app[CLOCK].now(), by=by or who(request), args=args
    )
    await _publish(request, monitor["shard"], message, "the change")


async def send_observation(
    request: web.Request, monitor_id: int, project_id: int, shard: int, payload: dict[str, Any], what: str
) -> None:
    """What happened to a declared monitor (a ping, a trigger call), for the detector to apply."""
    message = messages.observation_message(monitor_id, project_id, request.app[CLOCK].now(), payload)
    await _publish(request, shard, message, what)


async def announce_new(request: web.Request, row: asyncpg.Record) -> None:
    """Tell the project's open dashboards a monitor was created (a ``monitor.changed`` notice; the
    detector sends the others). Best effort: a lost notice shows on their next refresh."""
    if CHANGES not in request.app or dry_run():
        return
    try:
        async with asyncio.timeout(ANNOUNCE_WAIT):
            now = request.app[CLOCK].now()
            await bus.publish_changes(request.app[CHANGES], request.app[NAMES], [(row["project_id"], row["id"])], now)
    except Exception as exc:
        log.info("change notice not published", error=str(exc) or type(exc).__name__)


async def applied(check: Callable[[], Awaitable[Any]]) -> Any:
    """The first truthy result of ``check`` within APPLY_WAIT, else None (polled: the change is
    made by another process, and this is the management path, not the hot one)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + APPLY_WAIT
    while True:
        result = await check()
        # A test key's change was never sent: answer at once as the detector not yet done with it.
        if result or loop.time() > give_up or dry_run():
            return result or None
        await asyncio.sleep(0.02)


async def monitor_after(request: web.Request, monitor_id: int, done: Callable[[asyncpg.Record], bool]) -> Any:
    """The monitor row once ``done(row)`` holds (the detector applied the change), else None."""
    pool = db(request)

    async def check() -> asyncpg.Record | None:
        row = await pool.fetchrow("SELECT * FROM monitors WHERE id = $1", monitor_id)
        return row if row is not None and done(row) else None

    return await applied(check)


async def delete_monitor(request: web.Request, monitor: asyncpg.Record) -> web.Response:
    """Delete any monitor: ``204`` once the detector removed it, ``202`` if it is still queued."""
    await send_command(request, monitor, "delete")
    pool = db(request)
    gone = await applied(
        lambda: pool.fetchval("SELECT NOT EXISTS (SELECT 1 FROM monitors WHERE id = $1)", monitor["id"])
    )
    return web.Response(status=204) if gone else json_response({"status": "accepted"}, status=202)
