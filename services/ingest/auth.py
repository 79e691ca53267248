"""API-key authentication with a short in-process cache.

Keys are looked up by their SHA-256 hash (an indexed equality: the database never compares
plaintext) and the matched hash is compared again in constant time. Results — misses included,
so a flood of bad keys cannot hammer Postgres — are cached for ``HERON_KEY_CACHE_SECONDS``.
Revocation reaches every replica within a second through Redis (see ``revocations.py``), which
calls :meth:`KeyAuthenticator.forget`; the TTL is only the backstop for when Redis is unreachable.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from heron_common.clock import Clock
from heron_common.keys import constant_time_equal, hash_key

_MAX_CACHE = 100_000


class KeyAuthenticator:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, ttl: float) -> None:
        self._pool = pool
        self._clock = clock
        self._ttl = ttl
        # hash -> ((project id, test key) or None, expiry)
        self._cache: dict[bytes, tuple[tuple[int, bool] | None, float]] = {}
        # Bumped by every forget/clear: a lookup that read the database before a revocation
        # arrived must not cache what it read after the revocation was applied.
        self._generation = 0

    async def project_for(self, key: str) -> int | None:
        found = await self.lookup(key)
        return found[0] if found else None

    async def lookup(self, key: str) -> tuple[int, bool] | None:
        """The key's project and whether it is a test key (which changes nothing), or None."""
        if not key.isascii():
            # Keys are ASCII; a header byte like 0xFF arrives as a surrogate that would not encode.
            return None
        return await self.lookup_hash(hash_key(key))

    async def lookup_hash(self, digest: bytes) -> tuple[int, bool] | None:
        """:meth:`lookup` by the key's SHA-256 (a dashboard session keeps the hash, never the key),
        through the same cache, so a revocation ends the session as it ends API calls."""
        now = self._clock.now()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        generation = self._generation
        row = await self._pool.fetchrow(
            "SELECT project_id, key_hash, test FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
        )
        found = (
            (row["project_id"], row["test"]) if row and constant_time_equal(bytes(row["key_hash"]), digest) else None
        )
        if generation == self._generation:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[digest] = (found, now + self._ttl)
        return found

    def forget(self, key_hash: bytes) -> None:
        self._generation += 1
        self._cache.pop(key_hash, None)

    def clear(self) -> None:
        """Forget everything (after missing revocations, e.g. while Redis was unreachable)."""
        self._generation += 1
        self._cache.clear()

    def cached(self, key_hash: bytes) -> bool:
        return key_hash in self._cache


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def presented_key(request: web.Request, body: object = None) -> str | None:
    """The key as a bearer token, else ``?api_key=``, else a body field (older SDKs send these)."""
    token = bearer_token(request)
    if token is not None:
        return token
    if "api_key" in request.query:
        return request.query["api_key"] or None
    if isinstance(body, dict):
        key = body.get("api_key")
        if isinstance(key, str) and key:
            return key
    return None
