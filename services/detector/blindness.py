"""Recording when Heron itself was blind, and reading it back for the silence scan.

The pure rule lives in ``heron_common.blind``; this module is the I/O around it:

- The ticker (one detector, under a lease) calls :meth:`BlindWatch.before_round` before it
  publishes a round of ticks at ``now``. If the previous round is older than a few scan intervals
  (the broker was down, Postgres was down, or no detector ran), or no ingest replica has said it
  can publish for a while, the span is recorded as a blind window — *before* the ticks go out, so
  the scan those ticks trigger already knows about it.
- :func:`windows_since` gives a scan the windows that can matter to silences that began then.
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import Counter, Gauge

from heron_common.blind import Window
from heron_common.db import to_dt, to_ts
from heron_common.logging import get_logger
from heron_common.presence import INGEST_STALE, ingest_ready_key
from heron_common.settings import Settings

BLIND_WINDOWS = Counter("heron_detector_blind_windows_total", "Blind windows recorded (or extended)", ["reason"])
BLIND = Gauge("heron_detector_blind", "1 while the ticker sees Heron blind (no ticks or no ingest), else 0")

# After this long with no ingest at all, ingest is taken to be gone on purpose (or Redis forgot it):
# silences are judged again rather than suppressed forever.
INGEST_FORGET = 3600.0
log = get_logger("detector.blindness")


def tick_gap_threshold(settings: Settings) -> float:
    """A gap between tick rounds longer than this means time passed that nobody judged."""
    return max(5 * settings.scan_interval, 2.0)


async def windows_since(conn: asyncpg.Connection, since: float) -> list[Window]:
    rows = await conn.fetch(
        "SELECT started_at, ended_at FROM blind_windows WHERE ended_at > $1 ORDER BY started_at", to_dt(since)
    )
    return [(to_ts(r["started_at"]) or 0.0, to_ts(r["ended_at"]) or 0.0) for r in rows]


async def record_window(conn: asyncpg.Connection, start: float, end: float, reason: str) -> int:
    """Record ``[start, end]``, merged into the latest window when they touch (an outage that goes
    on is extended round after round, not recorded as many windows)."""
    async with conn.transaction():
        merged = await conn.fetchval(
            "UPDATE blind_windows SET started_at = least(started_at, $1), ended_at = greatest(ended_at, $2)"
            " WHERE id = (SELECT id FROM blind_windows WHERE ended_at >= $1 ORDER BY ended_at DESC LIMIT 1)"
            " RETURNING id",
            to_dt(start),
            to_dt(end),
        )
        if merged is not None:
            return int(merged)
        return int(
            await conn.fetchval(
                "INSERT INTO blind_windows (started_at, ended_at, reason) VALUES ($1, $2, $3) RETURNING id",
                to_dt(start),
                to_dt(end),
                reason,
            )
        )


class BlindWatch:
    """Run by the ticker around each round of ticks."""

    def __init__(self, pool: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings) -> None:
        self._pool = pool
        self._redis = redis
        self._gap = tick_gap_threshold(settings)
        self._ingest_key = ingest_ready_key(settings.redis_prefix)

    async def _last_ingest_beat(self, now: float) -> float | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self._ingest_key, "-inf", now - INGEST_FORGET)
        pipe.zrevrange(self._ingest_key, 0, 0, withscores=True)
        _, newest = await pipe.execute()
        return float(newest[0][1]) if newest else None

    async def before_round(self, now: float) -> Window | None:
        """Record the blind window that ends at ``now``, if there is one; returns it."""
        start: float | None = None
        reasons = []
        last_tick = to_ts(await self._pool.fetchval("SELECT last_tick_at FROM ticker_state WHERE id = 1"))
        if last_tick is not None and now - last_tick > self._gap:
            start = last_tick
            reasons.append("ticks")
        last_beat = await self._last_ingest_beat(now)
        if last_beat is not None and now - last_beat > INGEST_STALE:
            start = last_beat if start is None else min(start, last_beat)
            reasons.append("ingest")
        BLIND.set(1 if start is not None else 0)
        if start is None:
            return None
        reason = "+".join(reasons)
        async with self._pool.acquire() as conn:
            await record_window(conn, start, now, _describe(reason, now - start))
        BLIND_WINDOWS.labels(reason).inc()
        log.warning("Heron was blind; its silences do not page", reason=reason, seconds=round(now - start, 3))
        return (start, now)

    async def after_round(self, now: float) -> None:
        await self._pool.execute(
            "INSERT INTO ticker_state (id, last_tick_at) VALUES (1, $1)"
            " ON CONFLICT (id) DO UPDATE SET last_tick_at = greatest(ticker_state.last_tick_at, $1)",
            to_dt(now),
        )


def _describe(reason: str, seconds: float) -> str:
    parts = {
        "ticks": "no tick was published (broker, Postgres or every detector unavailable)",
        "ingest": "no ingest replica could publish events",
    }
    return f"{'; '.join(parts[r] for r in reason.split('+'))} for {seconds:.1f} s"
