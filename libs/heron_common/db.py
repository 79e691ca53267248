"""Postgres: the pool every service opens, and the append-only migrations under an advisory lock."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x4E52_4F4E


# What Postgres can hold, for the checks that refuse the rest before it reaches a transaction.
BIGINT_MAX = 2**63 - 1
# How U+0000 appears in JSON text (orjson never writes a raw NUL): Postgres text and jsonb refuse it.
JSON_NUL = b"\\u0000"


def holds_json_nul(encoded: bytes) -> bool:
    """Exactly whether JSON text holds a NUL: ``JSON_NUL`` not itself escaped. ``JSON_NUL in
    encoded`` is the cheap over-approximation (a string holding a backslash and then ``u0000``,
    such as a Windows path, is written ``\\\\u0000``)."""
    return JSON_NUL in encoded and _ESCAPED_NUL.search(encoded) is not None


# An odd run of backslashes before u0000: the last one starts the escape.
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# Errors that say "the database is not reachable right now", not "this data is wrong". Work that
# failed with one of these is retried in place (it will succeed once Postgres is back); anything
# else is the data's fault and must be isolated, never retried forever.
_TRANSIENT = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, TimeoutError …
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
    asyncpg.InsufficientResourcesError,
    asyncpg.ReadOnlySQLTransactionError,  # a failover in progress: the new primary is coming
)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` is an outage or contention (retry the same work later), False if the work
    itself is bad (isolate it). Redis and broker outages count as transient too."""
    if isinstance(exc, _TRANSIENT):
        return True
    try:
        import redis.exceptions as redis_exc

        if isinstance(exc, redis_exc.ConnectionError | redis_exc.TimeoutError | redis_exc.BusyLoadingError):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        import aiormq.exceptions as amqp_exc

        if isinstance(exc, amqp_exc.AMQPConnectionError | amqp_exc.ChannelInvalidStateError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, ConnectionError)


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def to_ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, as the API has always returned times."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary format (a version byte, then the JSON text) so COPY works too; orjson for speed.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + orjson.dumps(v),
        decoder=lambda b: orjson.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection)
    assert pool is not None
    return pool


def _migration_files() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("heron_common.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(url: str) -> list[str]:
    """Apply every migration not yet applied, in order, each in its own transaction.

    Several services may start at once: the advisory lock makes the others wait, then find
    nothing left to do.
    """
    conn = await asyncpg.connect(url)
    applied_now = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in _migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                applied_now.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    finally:
        await conn.close()
    return applied_now


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@asynccontextmanager
async def _server(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's ``postgres`` database, to create or drop the one in ``url``."""
    conn = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        yield conn
    finally:
        await conn.close()


def _name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist; True if it was created."""
    async with _server(url) as conn:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", _name(url)):
            return False
        await conn.execute(f'CREATE DATABASE "{_name(url)}"')
        return True


async def create_database_from(url: str, template: str) -> None:
    """Create the database named in ``url`` as a copy of ``template`` (used by tests)."""
    async with _server(url) as conn:
        await conn.execute(f'CREATE DATABASE "{_name(url)}" TEMPLATE "{template}"')


async def drop_database(url: str) -> None:
    async with _server(url) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{_name(url)}" WITH (FORCE)')


def migrate_main() -> None:
    """``heron-migrate``: create the database if needed and apply migrations."""
    from heron_common.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"heron-migrate: {exc}")

    async def run() -> None:
        if await ensure_database(settings.database_url):
            print("created database")
        applied = await migrate(settings.database_url)
        print("applied: " + (", ".join(applied) if applied else "nothing (schema is current)"))
        if settings.secrets_keys:
            from heron_common.secretbox import reseal_database

            resealed = await reseal_database(settings.database_url, settings.secrets_keys)
            print(f"secrets sealed with the first HERON_SECRETS_KEY: {resealed} changed")
        else:
            print("HERON_SECRETS_KEY is not set: stored secrets were not (re)sealed")

    asyncio.run(run())
