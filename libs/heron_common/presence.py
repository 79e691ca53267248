"""Which ingest replicas can publish right now, shared through Redis.

Every ingest replica whose broker connection is open says so every ``INGEST_BEAT`` seconds (a
sorted set, member = replica, score = time). The detector's ticker reads the newest beat: when
there has been none for ``INGEST_STALE`` seconds, no event could be accepted, and Heron records
that it was blind (see ``heron_common.blind``).
"""

from __future__ import annotations

import redis.asyncio as redis_asyncio

INGEST_BEAT = 1.0
INGEST_STALE = 5.0


def ingest_ready_key(redis_prefix: str) -> str:
    return f"{redis_prefix}:ingest:ready"


async def beat_ingest_ready(redis: redis_asyncio.Redis, redis_prefix: str, instance: str, now: float) -> None:
    await redis.zadd(ingest_ready_key(redis_prefix), {instance: now})
