"""Sending what the ledger says is due.

The worker keeps up to ``HERON_DELIVERY_CONCURRENCY`` attempts in flight and at most
``HERON_ENDPOINT_CONCURRENCY`` per target, so one slow or dead receiver holds a few slots for at
most the timeout while every other target keeps flowing. Finished attempts are recorded in
batches (one transaction for everything that finished since the last one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import time
from collections import Counter

import aiohttp
import asyncpg
import orjson
import redis.asyncio as redis_asyncio
from prometheus_client import Counter as Metric

from heron_common.clock import Clock
from heron_common.logging import get_logger
from heron_common.outbound import ForbiddenTarget, GuardedSession
from heron_common.secretbox import SecretBox
from heron_common.settings import Settings
from heron_notifier import ledger, policy, render
from heron_notifier.ledger import Claimed, Outcome

ATTEMPTS = Metric("heron_notifier_attempts_total", "Delivery attempts by target kind and outcome", ["kind", "outcome"])
RESPONSE_EXCERPT = 1024
# Slack accepts about one message per second per webhook; pacing is shared by every notifier.
SLACK_PACE_MS = 1000
log = get_logger("notifier")
BOT_ANSWER = 64 * 1024  # chat.postMessage echoes the message: read enough to parse the answer


async def _read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body's first ``limit`` bytes, however many chunks they arrive in (``read(n)`` returns
    only what is buffered)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _slack_answer(raw: bytes) -> tuple[bool | None, str | None]:
    """``ok`` and ``error`` of a Slack Web API answer (None, None if it is not one)."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    error = parsed.get("error")
    return parsed.get("ok") is True, error[:100] if isinstance(error, str) else None


class DeliveryWorker:
    def __init__(
        self, pool: asyncpg.Pool, redis: redis_asyncio.Redis, http: GuardedSession, settings: Settings, clock: Clock
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.http = http
        self.settings = settings
        self.clock = clock
        self.lease = settings.delivery_timeout + settings.delivery_lease_margin
        self.box = SecretBox(settings.secrets_keys)  # a missing key stops start-up, with how to make one
        self._inflight: set[asyncio.Task[None]] = set()
        self._per_target: Counter[str] = Counter()
        self._results: list[Outcome] = []
        self._finished = asyncio.Event()

    # -- the two ways to drive it -----------------------------------------------------------

    async def step(self) -> bool:
        """Claim what is due, send it, record it; True if there was anything. (Tests drive this.)"""
        claimed = await self._claim_and_start()
        await self.drain()
        return claimed > 0

    async def run(self, stopping: asyncio.Event, wake: asyncio.Event, poll_interval: float) -> None:
        """The service loop: keep the slots full; sleep only when nothing is due or all are busy."""
        recording: asyncio.Task[None] | None = None
        while not stopping.is_set():
            claimed = await self._claim_and_start()
            # Record in the background while the loop keeps claiming; one recording at a time.
            if self._results and (recording is None or recording.done()):
                if recording is not None and recording.exception() is not None:
                    log.error("recording attempts failed", exc_info=recording.exception())
                recording = asyncio.create_task(self.flush())
                recording.add_done_callback(lambda _: self._finished.set())  # look again for results
            if claimed and len(self._inflight) < self.settings.delivery_concurrency:
                continue
            self._finished.clear()
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._finished, wake, stopping)]
            await asyncio.wait(waiters, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            wake.clear()
        if recording is not None:
            await asyncio.gather(recording, return_exceptions=True)
        await self.drain()

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        outcomes, self._results = self._results, []
        if not outcomes:
            return
        recorded, disabled = await ledger.finish(
            self.pool,
            outcomes,
            disable_after=self.settings.endpoint_disable_after,
            now=self.clock.now(),
            open_url=self.box.open,
        )
        for o in outcomes:
            o_log = log.bind(delivery_id=o.claimed.id, alert_id=o.claimed.alert_id, topic=o.claimed.topic)
            if o.claimed.id not in recorded:
                o_log.warning("lease lost before the attempt was recorded")
            elif o.decision.status == "failed":
                o_log.warning("delivery failed for good", reason=o.decision.reason, error=o.error)
            elif o.decision.status == "pending":
                o_log.info("delivery will be retried", reason=o.decision.reason, retry_in=o.decision.retry_in)
        for d in disabled:
            log.warning("webhook endpoint disabled", endpoint_id=d.endpoint_id, reason=d.reason)

    # -- one attempt ------------------------------------------------------------------------

    async def _claim_and_start(self) -> int:
        free = self.settings.delivery_concurrency - len(self._inflight)
        cap = self.settings.endpoint_concurrency
        room = {target: cap - n for target, n in self._per_target.items()}
        claimed = await ledger.claim(self.pool, self.clock.now(), self.lease, free, room, cap)
        for c in claimed:
            self._per_target[c.target] += 1
            task = asyncio.create_task(self._attempt(c))
            self._inflight.add(task)
            task.add_done_callback(functools.partial(self._done, target=c.target))
        return len(claimed)

    def _done(self, task: asyncio.Task[None], *, target: str) -> None:
        self._inflight.discard(task)
        self._per_target[target] -= 1
        if self._per_target[target] <= 0:
            del self._per_target[target]
        self._finished.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery attempt crashed", exc_info=task.exception())

    async def _paced(self, claimed: Claimed) -> bool:
        if claimed.format not in ("slack", ledger.SLACK_BOT) or not claimed.url:
            return True
        # Slack paces a webhook URL, and a bot's posts per channel, at about one a second.
        paced = claimed.url if claimed.format == "slack" else f"bot:{claimed.target}"
        key = f"{self.settings.redis_prefix}:pace:{hashlib.sha256(paced.encode()).hexdigest()[:32]}"
        return bool(await self.redis.set(key, "1", px=SLACK_PACE_MS, nx=True))

    def _schedule(self, claimed: Claimed) -> tuple[tuple[float, ...], frozenset[int]]:
        if claimed.target_kind == ledger.WEBHOOK:
            return self.settings.webhook_retry_schedule, policy.WEBHOOK_PERMANENT
        return self.settings.slack_retry_schedule, policy.SLACK_PERMANENT

    async def _attempt(self, claimed: Claimed) -> None:
        attempted_at = self.clock.now()
        if claimed.target_kind in (ledger.SLACK, ledger.WEBHOOK):
            # The project's Slack URL and endpoints' URLs are stored sealed (secretbox.py); opened
            # only here, to send.
            claimed = dataclasses.replace(claimed, url=self.box.open(claimed.url))
        if not claimed.endpoint_enabled or not claimed.url:
            slack = claimed.target_kind == ledger.SLACK
            reason = "the project's Slack URL was removed" if slack else "endpoint disabled"
            decision = policy.Decision("failed", reason=reason)
            self._results.append(Outcome(claimed, decision, attempted_at, None, 0.0, None, None, sent=False))
            return
        if not await self._paced(claimed):
            await ledger.postpone(self.pool, claimed, attempted_at + SLACK_PACE_MS / 1000)
            return
        bot = claimed.target_kind == ledger.SLACK_BOT
        if bot:
            token = self.settings.slack_bot_token
            if not token:
                decision = policy.never("SLACK_BOT_TOKEN is not set on this notifier")
                self._results.append(Outcome(claimed, decision, attempted_at, None, 0.0, None, None, sent=False))
                return
            url = f"{self.settings.slack_api_url}/chat.postMessage"
            body, headers = render.bot_request(claimed.target, claimed.payload, token)
        else:
            url = claimed.url
            # Stored sealed (secretbox.py); opened only here, for the signature.
            keys = tuple(k for k in (self.box.open(s) for s in claimed.secrets) if k)
            body, headers = render.request(claimed.format, claimed.payload, claimed.alert_id, keys, attempted_at)
        started = time.perf_counter()
        status_code: int | None = None
        response_headers: dict[str, str] = {}
        error: str | None = None
        excerpt: str | None = None
        raw = b""
        final = False
        try:
            async with self.http.request("POST", url, data=body, headers=headers) as response:
                status_code = response.status
                response_headers = dict(response.headers)
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    if bot:  # the whole answer (up to BOT_ANSWER): its "ok" decides
                        raw = await _read_up_to(response, BOT_ANSWER)
                    else:
                        raw = await response.content.read(RESPONSE_EXCERPT)
                    excerpt = raw[:RESPONSE_EXCERPT].decode("utf-8", "replace")
        except TimeoutError:
            error = f"no response within {self.settings.delivery_timeout:g} s"
        except ForbiddenTarget as exc:
            error, final = str(exc), True
        except (aiohttp.InvalidURL, ValueError) as exc:  # yarl and aiohttp refuse a URL with ValueError
            error, final = f"invalid URL: {exc}", True
        except aiohttp.ClientError as exc:
            error = str(exc) or type(exc).__name__
        latency_ms = (time.perf_counter() - started) * 1000
        if final:
            decision = policy.never(error or "refused")
        elif bot:
            ok, slack_error = _slack_answer(raw if status_code == 200 else b"")
            schedule, _ = self._schedule(claimed)
            decision = policy.slack_api(
                status_code, response_headers, ok, slack_error, claimed.attempts + 1, schedule, attempted_at
            )
            if slack_error and decision.status != "succeeded":
                error = error or f"Slack: {slack_error}"
        else:
            schedule, permanent = self._schedule(claimed)
            decision = policy.decide(
                status_code, response_headers, claimed.attempts + 1, schedule, attempted_at, permanent
            )
        ATTEMPTS.labels(claimed.target_kind, decision.status).inc()
        self._results.append(Outcome(claimed, decision, attempted_at, status_code, latency_ms, error, excerpt))
