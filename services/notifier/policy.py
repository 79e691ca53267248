"""What to do after a delivery attempt. Pure: the ledger applies what this decides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 3600.0
# Slack answers these when the webhook is gone or the request can never succeed as sent.
SLACK_PERMANENT = frozenset({400, 401, 403, 404, 410})
# A webhook receiver may be misconfigured for a while (401, 404 during a deploy): only 410 Gone
# is final, and it also disables the endpoint.
WEBHOOK_PERMANENT = frozenset({410})


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # "succeeded", "failed" (final) or "pending" (retry)
    retry_in: float | None = None
    reason: str = ""


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    # ASCII digits only: str.isdigit() is also true of "²", which float() refuses (a receiver
    # answering that must not crash the attempt).
    if raw.isascii() and raw.isdigit():
        return min(float(raw), MAX_RETRY_AFTER)
    try:
        return min(max(0.0, parsedate_to_datetime(raw).timestamp() - now), MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return None


def never(error: str) -> Decision:
    """An attempt that can never succeed as the target is configured — the outbound guard refused
    it, or the URL is invalid — fails at once instead of being retried for a day and a half."""
    return Decision("failed", reason=f"{error} (not retried: retrying cannot help)")


def decide(
    status_code: int | None,
    headers: Mapping[str, str],
    attempts_made: int,
    schedule: Sequence[float],
    now: float,
    permanent: frozenset[int] = SLACK_PERMANENT,
) -> Decision:
    """``attempts_made`` counts the attempt just made; ``schedule[i]`` is the wait before attempt i+1."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision("succeeded", reason=f"HTTP {status_code}")
    if status_code in permanent:
        return Decision("failed", reason=f"HTTP {status_code}: permanent, not retried")
    reason = "no response" if status_code is None else f"HTTP {status_code}"
    if attempts_made >= len(schedule):
        return Decision("failed", reason=f"{reason}: gave up after {attempts_made} attempts")
    wait = schedule[attempts_made]
    if status_code in (429, 503):
        wait = max(wait, retry_after(headers, now) or 0.0)
    return Decision("pending", retry_in=wait, reason=reason)


# Slack Web API errors worth another try; any other ``"ok": false`` is final (a channel that does
# not exist, a bot not in it, a revoked token: the same request will fail the same way).
SLACK_API_TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited", "rate_limited"}
)


def slack_api(
    status_code: int | None,
    headers: Mapping[str, str],
    ok: bool | None,
    error: str | None,
    attempts_made: int,
    schedule: Sequence[float],
    now: float,
) -> Decision:
    """A Slack Web API call (``chat.postMessage``): it answers ``200`` with ``{"ok": false,
    "error"}`` when it refuses, so the body decides as much as the status."""
    if status_code == 200 and ok:
        return Decision("succeeded", reason="HTTP 200 ok")
    if status_code == 200:
        why = error or "no ok in the answer"
        if why not in SLACK_API_TRANSIENT:
            return Decision("failed", reason=f"Slack refused: {why}: permanent, not retried")
        if attempts_made >= len(schedule):
            return Decision("failed", reason=f"Slack: {why}: gave up after {attempts_made} attempts")
        return Decision("pending", retry_in=schedule[attempts_made], reason=f"Slack: {why}")
    return decide(status_code, headers, attempts_made, schedule, now, SLACK_PERMANENT)
