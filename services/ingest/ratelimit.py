"""Rate limits per API key and per source address: token buckets in Redis, spent from local leases.

Every ingest replica shares one bucket per key (and per address) in Redis, so the limit holds
however many replicas there are. Asking Redis on every request would put a round trip on the
hottest path there is, so a replica *leases* tokens: it takes a few from the shared bucket at once
and spends them locally, and comes back when they run out. The lease grows (doubling, up to a
twentieth of a second's worth) while a client keeps coming back within its lifetime, and starts
again at one for a client that comes back rarely, so a quiet key hoards nothing. A lease lives at
most ``LEASE_SECONDS``; what a replica leased and did not spend is the most the limit can be
exceeded by, a twentieth of a second's worth per replica.

The bucket's arithmetic runs in Redis (one Lua script, on Redis's own clock, so replicas' clocks
never matter). If Redis cannot be reached the limiter lets requests through: a monitoring system
that refuses events because its rate limiter is down would be worse than one that is briefly
unlimited.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis_asyncio
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

log = structlog.get_logger("ingest")

LIMITED = Counter("heron_ingest_rate_limited_total", "Requests refused with 429, by limit", ["limit"])
UNAVAILABLE = Counter("heron_ingest_rate_limit_unavailable_total", "Lease requests that could not reach Redis")

LEASE_SECONDS = 1.0
_MAX_LOCAL = 100_000
# A lease request waits at most this long for Redis; after a failure the limiter lets requests
# through without asking for ``_PAUSE_AFTER_FAILURE`` seconds, so a Redis outage costs ingest
# one short wait per replica, not one per request.
_REDIS_TIMEOUT = 0.25
_PAUSE_AFTER_FAILURE = 1.0

# KEYS[1] the bucket; ARGV rate (tokens/s), burst, wanted. Returns {granted, seconds until one token}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if granted == 0 then wait = (1 - tokens) / rate end
return {granted, tostring(wait)}
"""


@dataclass
class _Lease:
    tokens: int
    expires: float
    size: int


class Limiter:
    """One kind of limit (``name``: "key" or "address") at ``rate`` requests/s with ``burst``."""

    def __init__(self, redis: redis_asyncio.Redis | None, prefix: str, name: str, rate: float, burst: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:ratelimit:{name}:"
        self.name = name
        self.rate = rate
        self.burst = max(1, burst)
        self._max_lease = max(1, min(self.burst, math.ceil(rate / 20)))
        self._leases: dict[str, _Lease] = {}
        self._script = redis.register_script(_TAKE) if redis is not None else None
        self._refused = LIMITED.labels(name)
        self._unreachable_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self._script is not None

    async def check(self, ident: str) -> float | None:
        """None if the request may go on; else the seconds to wait before retrying (``Retry-After``)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if now < self._unreachable_until:
            return None
        lease = self._leases.get(ident)
        if lease is not None and lease.expires > now:
            if lease.tokens > 0:
                lease.tokens -= 1
                return None
            size = min(self._max_lease, lease.size * 2)  # used up within its life: a busy client
        else:
            size = 1
        granted, wait = await self._take(ident, size)
        if granted is None:  # Redis unreachable: let it through (see the module's docstring)
            self._unreachable_until = time.monotonic() + _PAUSE_AFTER_FAILURE
            return None
        if granted == 0:
            self._refused.inc()
            self._leases.pop(ident, None)
            return max(wait, 0.001)
        if len(self._leases) >= _MAX_LOCAL:
            self._leases.clear()
        self._leases[ident] = _Lease(granted - 1, now + LEASE_SECONDS, size)
        return None

    async def _take(self, ident: str, want: int) -> tuple[int | None, float]:
        # The identity is hashed: an API key must never appear in Redis, even as a key name.
        digest = hashlib.blake2b(ident.encode(errors="surrogateescape"), digest_size=12).hexdigest()
        assert self._script is not None
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                granted, wait = await self._script(keys=[self._prefix + digest], args=[self.rate, self.burst, want])
        except (RedisError, OSError, TimeoutError) as exc:
            UNAVAILABLE.inc()
            log.warning("rate limit unavailable; request let through", limit=self.name, error=type(exc).__name__)
            return None, 0.0
        return int(granted), float(wait)


def client_address(remote: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client's address: the peer, or with ``trusted_hops`` proxies in front of ingest (each
    appending to ``X-Forwarded-For``), the entry that many hops from the right."""
    if trusted_hops > 0 and forwarded_for:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if len(hops) >= trusted_hops:
            return hops[-trusted_hops]
    return remote or "unknown"


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
