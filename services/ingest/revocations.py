"""Revoked API keys, announced to every ingest replica over Redis pub/sub.

The replica that revokes a key publishes its hash on ``{redis_prefix}:keys:revoked``; every
replica (itself included) is subscribed and drops the hash from its key cache, so revocation takes
effect everywhere within a round trip. Pub/sub delivers only to who is listening: whenever the
subscription is (re)established, anything may have been missed, so the replica clears its whole
cache. While Redis is unreachable, ``HERON_KEY_CACHE_SECONDS`` bounds how long a revoked key lives,
and ingest keeps accepting events.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import redis.asyncio as redis_asyncio
from aiohttp import web
from redis.exceptions import RedisError

from heron_common.logging import get_logger
from heron_common.service import REDIS, SETTINGS, STOPPING, sleep_or_stop
from heron_ingest.auth import KeyAuthenticator

log = get_logger("ingest.revocations")

RETRY_SECONDS = 1.0
PUBLISH_TIMEOUT = 1.0


def channel(redis_prefix: str) -> str:
    return f"{redis_prefix}:keys:revoked"


async def announce(app: web.Application, key_hash: bytes) -> None:
    """Tell every replica; never fails the revocation itself (the TTL is the backstop)."""
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await app[REDIS].publish(channel(app[SETTINGS].redis_prefix), key_hash)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning(
            "revocation not announced; other replicas drop the key within HERON_KEY_CACHE_SECONDS",
            error=str(exc) or type(exc).__name__,
        )


class RevocationListener:
    """The subscription of one replica. Its Redis connection carries ``client_name`` (unique per
    replica) so an operator, or a test, can tell it apart in ``CLIENT LIST``."""

    def __init__(self, redis_url: str, redis_prefix: str, auth: KeyAuthenticator) -> None:
        self.client_name = f"{redis_prefix}:ingest-revocations:{secrets.token_hex(4)}"
        self._channel = channel(redis_prefix)
        self._auth = auth
        self._client = redis_asyncio.Redis.from_url(redis_url, client_name=self.client_name)
        self.subscriptions = 0  # how many times the subscription was (re)established

    async def run(self, app: web.Application) -> None:
        failing = False
        while not app[STOPPING].is_set():
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        # Also sent when redis-py reconnects and resubscribes by itself.
                        self._auth.clear()
                        self.subscriptions += 1
                        failing = False
                    elif message["type"] == "message":
                        self._auth.forget(bytes(message["data"]))
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning(
                        "revocation subscription lost; revoked keys expire by HERON_KEY_CACHE_SECONDS until it is back",
                        error=str(exc) or type(exc).__name__,
                    )
                failing = True
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            if await sleep_or_stop(app, RETRY_SECONDS):
                break

    async def close(self) -> None:
        await self._client.aclose()
