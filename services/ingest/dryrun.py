"""Test keys: a write made with one answers as a real call would, and changes nothing.

A user's CI checks its integration with a test key (issue #8). The calls integrations make
(track, events, trigger calls) know it themselves (``requests.is_test``) and skip their publish.
Every other write runs for real, through the same handler, on one connection inside a transaction
that is rolled back when the answer is ready; and nothing is published to the detector or to open
dashboards (``dry_run()``). So the answer carries what a real call would — the validation, the
ids, the created row — while Postgres, the broker and the monitors are left as they were.

A change the detector applies (pause, resume, acknowledge, configure, delete) is never sent, so
its answer is the one a real call gets when the detector has not applied it yet: ``202``.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from aiohttp import web

from heron_common.service import PG
from heron_ingest.auth import presented_key
from heron_ingest.context import AUTH

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READS = frozenset({"GET", "HEAD", "OPTIONS"})
# The hot intake paths handle a test key themselves, and must not pay for a lookup here.
_SELF_HANDLED = ("/v1/track", "/v1/events")


class DryRunDatabase:
    """What handlers use of a pool, on one connection inside the request's transaction."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self._connection  # its transactions become savepoints of the request's one

    # Each statement in its own savepoint, as each pool call is its own transaction: a handler that
    # catches a unique violation and goes on (a 409, say) must find the connection still usable.
    async def _one(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async with self._connection.transaction():
            return await getattr(self._connection, method)(*args, **kwargs)

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        return await self._one("fetch", *args, **kwargs)

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        return await self._one("fetchrow", *args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        return await self._one("fetchval", *args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._one("execute", *args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return await self._one("executemany", *args, **kwargs)


_DRY_RUN: contextvars.ContextVar[DryRunDatabase | None] = contextvars.ContextVar("heron_dry_run", default=None)


def dry_run() -> bool:
    """Whether this request was made with a test key: write nothing that outlives it."""
    return _DRY_RUN.get() is not None


def db(request: web.Request) -> asyncpg.Pool:
    """The database for this request: the pool, or a test key's rolled-back transaction."""
    dry = _DRY_RUN.get()
    return cast(asyncpg.Pool, dry) if dry is not None else request.app[PG]


@web.middleware
async def test_keys_change_nothing(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in READS or request.path.startswith(_SELF_HANDLED):
        return await handler(request)
    key = presented_key(request)
    found = await request.app[AUTH].lookup(key) if key else None
    if found is None or not found[1]:
        return await handler(request)
    async with request.app[PG].acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        token = _DRY_RUN.set(DryRunDatabase(connection))
        try:
            return await handler(request)
        finally:
            _DRY_RUN.reset(token)
            await transaction.rollback()
