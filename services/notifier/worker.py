"""Sending what the ledger says is due: one step claims a batch, sends it concurrently, records it."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import Counter

from heron_common.clock import Clock
from heron_common.logging import get_logger
from heron_common.outbound import GuardedSession
from heron_common.settings import Settings
from heron_notifier import ledger, policy, slack
from heron_notifier.ledger import Claimed

ATTEMPTS = Counter("heron_notifier_attempts_total", "Delivery attempts by target kind and outcome", ["kind", "outcome"])
RESPONSE_EXCERPT = 1024
# Slack accepts about one message per second per webhook; pacing is shared by every notifier.
SLACK_PACE_MS = 1000
log = get_logger("notifier")


def render(claimed: Claimed) -> dict[str, Any]:
    message = claimed.payload
    if claimed.target_kind == "slack":
        return slack.incident_message(message["type"], message["data"])
    raise ValueError(f"unknown target kind {claimed.target_kind!r}")


class DeliveryWorker:
    def __init__(
        self, pool: asyncpg.Pool, redis: redis_asyncio.Redis, http: GuardedSession, settings: Settings, clock: Clock
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.http = http
        self.settings = settings
        self.clock = clock
        self.schedule = settings.slack_retry_schedule
        self.lease = settings.delivery_timeout * 2 + 10.0

    async def step(self) -> bool:
        """Claim and send one batch of due deliveries; True if there was anything to do."""
        claimed = await ledger.claim(self.pool, self.clock.now(), self.lease, limit=self.settings.delivery_concurrency)
        if not claimed:
            return False
        await asyncio.gather(*(self._deliver(c) for c in claimed))
        return True

    async def _paced(self, claimed: Claimed) -> bool:
        if claimed.target_kind != "slack":
            return True
        key = f"{self.settings.redis_prefix}:pace:{hashlib.sha256(claimed.target.encode()).hexdigest()[:32]}"
        return bool(await self.redis.set(key, "1", px=SLACK_PACE_MS, nx=True))

    async def _deliver(self, claimed: Claimed) -> None:
        d_log = log.bind(delivery_id=claimed.id, alert_id=claimed.alert_id, topic=claimed.topic)
        try:
            if not await self._paced(claimed):
                await ledger.postpone(self.pool, claimed, self.clock.now() + SLACK_PACE_MS / 1000)
                return
            body = render(claimed)
        except Exception:
            d_log.exception("could not prepare delivery")
            return
        attempted_at = self.clock.now()
        started = time.perf_counter()
        status_code: int | None = None
        headers: dict[str, str] = {}
        error: str | None = None
        excerpt: str | None = None
        try:
            async with self.http.request("POST", claimed.target, json=body) as response:
                status_code = response.status
                headers = dict(response.headers)
                excerpt = (await response.content.read(RESPONSE_EXCERPT)).decode("utf-8", "replace")
        except TimeoutError:
            error = f"no response within {self.settings.delivery_timeout:g} s"
        except aiohttp.ClientError as exc:
            error = str(exc) or type(exc).__name__
        latency_ms = (time.perf_counter() - started) * 1000
        decision = policy.decide(status_code, headers, claimed.attempts + 1, self.schedule, attempted_at)
        ATTEMPTS.labels(claimed.target_kind, decision.status).inc()
        recorded = await ledger.finish(
            self.pool,
            claimed,
            decision,
            attempted_at=attempted_at,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error,
            response_body=excerpt,
        )
        if not recorded:
            d_log.warning("lease lost before the attempt was recorded")
        elif decision.status == "failed":
            d_log.warning("delivery failed for good", reason=decision.reason, error=error)
        elif decision.status == "pending":
            d_log.info("delivery will be retried", reason=decision.reason, retry_in=decision.retry_in, error=error)
