"""PROTOTYPE (bench-local monkeypatch, not the service code): no reset query on pool release.

``asyncpg.Pool.release`` runs ``Connection.reset()`` by default: one extra round trip per
``pool.acquire()`` (``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``).
Heron's pool connections keep no session state (no LISTEN, SET, advisory locks or cursors on
pooled connections; the migration lock uses its own connection), so ``create_pool(reset=noop)``
is safe: asyncpg still rolls back a transaction left open before calling it.
"""

from __future__ import annotations


async def _no_reset(conn) -> None:  # asyncpg still ROLLBACKs an open transaction before this
    return None


def apply() -> None:
    import asyncpg

    from heron_common import db

    async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=db._init_connection, reset=_no_reset
        )
        assert pool is not None
        return pool

    db.create_pool = create_pool
