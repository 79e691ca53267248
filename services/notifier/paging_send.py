"""Sending the pages the ledger says are due: email (SMTP), Slack (a member id through the bot
token, or an incoming webhook) and signed webhooks.

Due rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease (``locked_until``) that outlives
the send's timeout; those of an incident acknowledged or resolved meanwhile are cancelled, not
sent; up to
``HERON_PAGING_CONCURRENCY`` sends are in flight; results are recorded in batches, each only while
its lease is still ours. A notifier killed before recording a send leaves the row to be claimed
again when the lease lapses (at-least-once: the email's Message-ID and the webhook's
``webhook-id`` are the step id, so a receiver can tell a repeat); one killed between two steps
loses and repeats nothing, since each step is its own row.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson
from prometheus_client import Counter, Histogram

from heron_common import mail, oncall_store, webhooks
from heron_common.clock import Clock
from heron_common.db import to_dt
from heron_common.logging import get_logger
from heron_common.oncall import ack
from heron_common.outbound import ForbiddenTarget, GuardedSession
from heron_common.secretbox import SecretBox, SecretsKeyError
from heron_common.settings import Settings
from heron_common.views import incident_view
from heron_notifier import paging_render, policy
from heron_notifier.paging_render import Page

SENT = Counter("heron_notifier_pages_total", "Page attempts by channel kind and outcome", ["kind", "outcome"])
DELAY = Histogram(
    "heron_notifier_page_delay_seconds",
    "From a page step's due time to its first attempt",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
# Slack Web API errors that no retry can fix (the rest, and ratelimited, are retried).
SLACK_FINAL = frozenset(
    {
        "channel_not_found",
        "user_not_found",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "no_permission",
        "missing_scope",
        "is_archived",
        "invalid_blocks",
        "msg_too_long",
    }
)
log = get_logger("notifier.paging")


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    step_id: str
    incident_id: int
    attempts: int
    due_at: float
    lease: float
    kind: str  # the channel's kind when planned
    target: str | None  # None: the channel was deleted since
    secret: str | None
    page: Page


@dataclass(frozen=True, slots=True)
class Result:
    claimed: Claimed
    status: str  # sent, pending (retry), failed
    next_at: float
    error: str | None
    attempted_at: float


class PageSender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock) -> None:
        self.pool = pool
        self.settings = settings
        self.box = SecretBox(settings.secrets_keys)
        self.clock = clock
        self.lease = settings.delivery_timeout + settings.delivery_lease_margin
        self.http = GuardedSession(
            settings.outbound_allow_cidrs, timeout=settings.delivery_timeout, limit=settings.paging_concurrency
        )
        self._inflight: set[asyncio.Task[None]] = set()
        self._results: list[Result] = []
        self._finished = asyncio.Event()
        self._key: bytes | None = None

    async def close(self) -> None:
        await self.http.close()

    # -- driving ----------------------------------------------------------------------------

    async def step(self) -> int:
        """Claim what is due, send it, record it; how many were claimed (tests and the bench)."""
        claimed = await self._claim_and_start()
        await self.drain()
        return claimed

    async def run(self, stopping: asyncio.Event, wake: asyncio.Event, poll_interval: float) -> None:
        recording: asyncio.Task[None] | None = None
        while not stopping.is_set():
            claimed = await self._claim_and_start()
            if self._results and (recording is None or recording.done()):
                if recording is not None and recording.exception() is not None:
                    log.error("recording pages failed", exc_info=recording.exception())
                recording = asyncio.create_task(self.flush())
                recording.add_done_callback(lambda _: self._finished.set())
            if claimed and len(self._inflight) < self.settings.paging_concurrency:
                continue
            self._finished.clear()
            # Steps fall due by the clock, not by an event: sleep until the next one is due (the
            # poll interval at most, so a page planned meanwhile by another notifier waits no longer).
            timeout = poll_interval
            if not claimed:
                wait = await self._next_due() - self.clock.now()
                timeout = min(poll_interval, max(0.005, wait))
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._finished, wake, stopping)]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            wake.clear()
        if recording is not None:
            await asyncio.gather(recording, return_exceptions=True)
        await self.drain()

    async def _next_due(self) -> float:
        """When the next pending page falls due (or a lease lapses); infinity if none is pending."""
        at = await self.pool.fetchval(
            "SELECT min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at)))"
            " FROM (SELECT next_attempt_at, locked_until FROM pages WHERE status = 'pending'"
            " ORDER BY next_attempt_at LIMIT 100) soon"
        )
        return at.timestamp() if at is not None else float("inf")

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.flush()

    # -- the ledger -------------------------------------------------------------------------

    async def _claim_and_start(self) -> int:
        free = self.settings.paging_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        claimed = await self.claim(free)
        for c in claimed:
            task = asyncio.create_task(self._attempt(c))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._finished.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("page attempt crashed", exc_info=task.exception())

    async def claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        lease = now + self.lease
        if self._key is None:
            self._key = await oncall_store.ack_key(self.pool, self.box)
        # The claim reads the due-pages index alone: a join here (to skip stopped incidents) let
        # the planner pick a nested loop over every open incident when statistics were stale
        # (freshly filled tables), and a claim took seconds. Stopped incidents are sorted out below.
        rows = await self.pool.fetch(
            "WITH due AS ("
            "  SELECT id FROM pages WHERE status = 'pending' AND next_attempt_at <= $1"
            "  AND (locked_until IS NULL OR locked_until < $1)"
            "  ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED"
            "), claimed AS ("
            "  UPDATE pages p SET locked_until = $2 FROM due WHERE p.id = due.id RETURNING p.*"
            ") SELECT c.*, ch.kind AS ch_kind, ch.target, ch.secret, u.name AS user_name, pr.name AS project_name,"
            "  g.stopped_at"
            " FROM claimed c JOIN projects pr ON pr.id = c.project_id JOIN paging g ON g.incident_id = c.incident_id"
            " LEFT JOIN user_channels ch ON ch.id = c.channel_id LEFT JOIN users u ON u.id = ch.user_id"
            " ORDER BY c.next_attempt_at, c.id",
            to_dt(now),
            to_dt(lease),
            limit,
        )
        if not rows:
            return []
        incidents = {
            i["id"]: i
            for i in await self.pool.fetch(
                "SELECT * FROM incidents WHERE id = ANY($1::bigint[])", list({r["incident_id"] for r in rows})
            )
        }
        # Pages of an incident acknowledged or resolved (the detector's truth, even before the
        # notifier hears of it) or whose paging stopped: cancelled, never sent.
        stopped = [
            r["id"]
            for r in rows
            if r["stopped_at"] is not None
            or r["incident_id"] not in incidents
            or incidents[r["incident_id"]]["acknowledged_at"] is not None
            or incidents[r["incident_id"]]["resolved_at"] is not None
        ]
        if stopped:
            await self.pool.execute(
                "UPDATE pages SET status = 'cancelled', locked_until = NULL WHERE id = ANY($1::bigint[])"
                " AND locked_until = $2",
                stopped,
                to_dt(lease),
            )
            gone = set(stopped)
            rows = [r for r in rows if r["id"] not in gone]
        claimed = []
        for r in rows:
            step_id = str(r["step_id"])
            expires = int(now + self.settings.ack_link_ttl)
            token = ack.sign(self._key, ack.AckClaims(step_id, r["incident_id"], r["project_id"], r["email"], expires))
            view = incident_view(incidents[r["incident_id"]])
            page = Page(
                step_id=step_id,
                reason=r["reason"],
                email=r["email"],
                name=r["user_name"],
                incident=view,
                project={"id": r["project_id"], "name": r["project_name"]},
                ack_url=paging_render.ack_url(self.settings.public_url, token),
                ack_token=token,
                due_at=r["due_at"].timestamp(),
            )
            claimed.append(
                Claimed(
                    id=r["id"],
                    step_id=step_id,
                    incident_id=r["incident_id"],
                    attempts=r["attempts"],
                    due_at=r["due_at"].timestamp(),
                    lease=lease,
                    kind=r["ch_kind"] or r["channel_kind"],
                    target=r["target"],
                    secret=r["secret"],
                    page=page,
                )
            )
        return claimed

    async def flush(self) -> None:
        results, self._results = self._results, []
        if not results:
            return
        recorded = {
            r["id"]
            for r in await self.pool.fetch(
                "UPDATE pages p SET"
                " status = CASE WHEN u.status = 'pending' AND EXISTS (SELECT 1 FROM paging g"
                "  WHERE g.incident_id = p.incident_id AND g.stopped_at IS NOT NULL) THEN 'cancelled'"
                "  ELSE u.status END,"
                " attempts = p.attempts + 1, next_attempt_at = u.next_at, locked_until = NULL, last_error = u.err,"
                " sent_at = CASE WHEN u.status = 'sent' THEN u.at ELSE p.sent_at END"
                " FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[],"
                " $6::timestamptz[]) AS u(id, status, next_at, err, at, lease)"
                " WHERE p.id = u.id AND p.locked_until = u.lease RETURNING p.id",
                [r.claimed.id for r in results],
                [r.status for r in results],
                [to_dt(r.next_at) for r in results],
                [r.error for r in results],
                [to_dt(r.attempted_at) for r in results],
                [to_dt(r.claimed.lease) for r in results],
            )
        }
        for r in results:
            p_log = log.bind(page_id=r.claimed.id, incident_id=r.claimed.incident_id, kind=r.claimed.kind)
            if r.claimed.id not in recorded:
                p_log.warning("page lease lost before the attempt was recorded")
            elif r.status == "sent":
                p_log.info("page sent", reason=r.claimed.page.reason)
            elif r.status == "failed":
                p_log.warning("page failed for good", error=r.error)
            else:
                p_log.info("page will be retried", error=r.error)

    # -- one attempt ------------------------------------------------------------------------

    async def _attempt(self, claimed: Claimed) -> None:
        attempted_at = self.clock.now()
        if claimed.attempts == 0:
            DELAY.observe(max(0.0, attempted_at - claimed.due_at))
        status_code: int | None = None
        headers: dict[str, str] = {}
        error: str | None = None
        final = ok = False
        try:
            if claimed.target is None:
                error, final = "the channel was deleted", True
            elif claimed.kind == "email":
                await self._email(claimed)
                ok = True
            else:
                status_code, headers, error, final = await self._http(claimed, attempted_at)
                ok = error is None and status_code is not None and 200 <= status_code < 300
        except mail.MailError as exc:
            error, final = str(exc), exc.permanent
        except ForbiddenTarget as exc:
            error, final = str(exc), True
        except SecretsKeyError as exc:  # a key missing from HERON_SECRETS_KEY: retried, it may come back
            error = str(exc)
        except (aiohttp.InvalidURL, ValueError) as exc:
            error, final = f"invalid URL: {exc}", True
        except TimeoutError:
            error = f"no response within {self.settings.delivery_timeout:g} s"
        except aiohttp.ClientError as exc:
            error = str(exc) or type(exc).__name__
        if ok:
            status, next_at = "sent", attempted_at
        elif final:
            status, next_at = "failed", attempted_at
        else:
            decision = policy.decide(
                status_code,
                headers,
                claimed.attempts + 1,
                self.settings.page_retry_schedule,
                attempted_at,
                frozenset(),
            )
            status = "pending" if decision.status == "pending" else "failed"
            next_at = attempted_at + (decision.retry_in or 0.0)
            error = error or decision.reason
        SENT.labels(claimed.kind, status).inc()
        self._results.append(Result(claimed, status, next_at, error, attempted_at))

    async def _email(self, claimed: Claimed) -> None:
        address = self.box.open(claimed.target)  # channel targets are stored sealed (secretbox.py)
        assert address is not None
        page = claimed.page
        message = mail.build(
            self.settings.smtp_from,
            address,
            paging_render.subject(page),
            paging_render.email_text(page),
            message_id=page.step_id,
        )
        await mail.send(self.settings, message, timeout=self.settings.delivery_timeout)

    async def _http(self, claimed: Claimed, now: float) -> tuple[int | None, dict[str, str], str | None, bool]:
        """POST the page; (status code, headers, error, final)."""
        target = self.box.open(claimed.target)  # stored sealed (secretbox.py): a URL may be a credential
        assert target is not None
        headers = {"Content-Type": "application/json"}
        bot = False
        if claimed.kind == "slack":
            if target.startswith(("http://", "https://")):
                url, body = target, webhooks.body_bytes(paging_render.slack_message(claimed.page))
            else:
                token = self.settings.slack_bot_token
                if not token:
                    return None, {}, "Slack member ids need SLACK_BOT_TOKEN (a bot token with chat:write)", True
                url = f"{self.settings.slack_api_url}/chat.postMessage"
                body = webhooks.body_bytes(paging_render.slack_message(claimed.page, channel=target))
                headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}
                bot = True
        else:
            url = target
            body = webhooks.body_bytes(paging_render.webhook_payload(claimed.page))
            secret = self.box.open(claimed.secret)  # stored sealed (secretbox.py)
            if secret:
                headers.update(webhooks.signing_headers([secret], claimed.step_id, int(now), body))
        async with self.http.request("POST", url, data=body, headers=headers) as response:
            status = response.status
            answer_headers = dict(response.headers)
            excerpt = b""
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                excerpt = await response.content.read(4096)
        if bot and 200 <= status < 300:
            # The Web API answers 200 with {"ok": false, "error": …} when it refuses a message.
            try:
                answer: Any = orjson.loads(excerpt)
            except orjson.JSONDecodeError:
                return None, answer_headers, "Slack answered something that is not JSON", False
            if not isinstance(answer, dict) or not answer.get("ok"):
                reason = str(answer.get("error") if isinstance(answer, dict) else "unknown")[:100]
                return None, answer_headers, f"Slack refused the message: {reason}", reason in SLACK_FINAL
        if status in (400, 401, 403, 404, 410) and claimed.kind == "slack":
            return status, answer_headers, f"HTTP {status}: permanent, not retried", True
        return status, answer_headers, None if 200 <= status < 300 else f"HTTP {status}", False
