"""Sending one heartbeat ping: a synchronous request, bounded in time, retried a few times.

Why synchronous (unlike events, which are queued): a heartbeat is about *when* something
happened, and the typical caller is a cron job that pings and exits a moment later. Sending in
the caller's thread means the ping has been delivered (or has definitely failed) when ``ping()``
returns, with a result the caller can look at, and it needs no API key and no background sender.
The cost is bounded by ``timeout`` (10 s by default, in total, retries included).
"""

from __future__ import annotations

import logging
import random
import sys
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from ._hb import Target, build_target, encode_body, redact
from ._transport import describe_error, parse_retry_after, request_once
from ._version import __version__

logger = logging.getLogger("heron")

#: Attempts per ping: the first one and two retries (connection errors, timeouts, 408, 429, 5xx).
PING_ATTEMPTS = 3
#: Default upper bound, in seconds, of one ping() call, retries and backoff included.
DEFAULT_PING_TIMEOUT = 10.0

_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "User-Agent": f"heron-python/{__version__} python/{sys.version_info[0]}.{sys.version_info[1]}",
    # Deliberately no Authorization header: the token in the URL is the credential, and the
    # project API key must not travel to whatever host a pasted ping URL names.
}

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._hb import Status

    # (delivered, failed attempts, last failure) -> None: how a Client keeps its stats.
    Recorder: TypeAlias = Callable[[bool, int, str | None], None]


class PingSettings(NamedTuple):
    base_url: str  # where a bare token is sent: {base_url}/api/v1/hb/{token}
    request_timeout: float = 5.0  # per attempt
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    debug: bool = False  # True: invalid arguments raise instead of being logged


def ping(
    settings: PingSettings,
    token_or_url: str,
    status: Status = "success",
    body: str | bytes | None = None,
    rid: str | uuid.UUID | None = None,
    timeout: float = DEFAULT_PING_TIMEOUT,
    record: Recorder | None = None,
) -> bool:
    """Send one ping; True if the server recorded it. Never raises, except invalid arguments
    with ``debug=True``."""
    try:
        target = build_target(token_or_url, settings.base_url, status, rid)
        data = encode_body(body)
    except (TypeError, ValueError) as exc:
        if settings.debug:
            raise
        logger.warning("Heron: heartbeat ping not sent: %s", exc)
        if record is not None:
            record(False, 0, f"invalid ping: {exc}")
        return False
    try:
        delivered, failures, problem = _deliver(settings, target, data, timeout)
    except Exception as exc:  # pragma: no cover - a bug; the caller must not pay for it
        logger.debug("Heron: ping() failed", exc_info=True)
        delivered, failures, problem = False, 1, f"{type(exc).__name__}: {exc}"
    if record is not None:
        record(delivered, failures, problem)
    return delivered


def _deliver(settings: PingSettings, target: Target, data: bytes, timeout: float) -> tuple[bool, int, str | None]:
    deadline = time.monotonic() + max(0.0, float(timeout))
    problem = ""
    attempt = 0
    while attempt < PING_ATTEMPTS:
        attempt += 1
        # Never less than a moment: a timeout of 0 would make the socket non-blocking.
        budget = max(0.05, min(settings.request_timeout, deadline - time.monotonic()))
        try:
            resp = request_once(target.endpoint, "POST", target.path, data, _HEADERS, budget)
        except Exception as exc:  # OSError (refused, reset, timeout), http.client.HTTPException
            problem = f"{type(exc).__name__}: {exc}"
            delay = _backoff(settings, attempt)
        else:
            if 200 <= resp.status < 300:
                if attempt > 1:
                    logger.info("Heron: heartbeat ping to %s delivered at attempt %d", redact(target), attempt)
                return True, attempt - 1, None
            problem = f"HTTP {resp.status}: {describe_error(resp)}"
            if not (resp.status in (408, 429) or resp.status >= 500):
                if resp.status == 404:
                    logger.error("Heron: unknown heartbeat token (%s): %s; check the ping URL", problem, redact(target))
                else:
                    logger.error("Heron: heartbeat ping to %s rejected (%s)", redact(target), problem)
                return False, attempt, problem
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
            delay = retry_after if retry_after is not None else _backoff(settings, attempt)
        if attempt >= PING_ATTEMPTS or time.monotonic() + delay >= deadline:
            break
        logger.debug("Heron: heartbeat ping to %s failed (%s); retrying in %.2fs", redact(target), problem, delay)
        time.sleep(delay)  # the caller asked for a delivered ping; this is its bounded cost
    logger.warning("Heron: heartbeat ping to %s failed after %d attempt(s): %s", redact(target), attempt, problem)
    return False, attempt, problem


def _backoff(settings: PingSettings, attempt: int) -> float:
    """Exponential backoff with jitter: base * 2**(attempt-1), capped, times U(0.5, 1)."""
    return min(settings.backoff_max, settings.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
