"""Capped exponential backoff with jitter. Pure: no I/O.

Used wherever Heron waits before trying again after a dependency failed (reconnecting to the
broker, resubscribing a consumer, retrying a batch in place): short at first so a blip costs
little, capped so recovery after a long outage is noticed within a few seconds, jittered so the
consumers of many processes do not all come back in the same instant.
"""

from __future__ import annotations

import random

FIRST = 0.1
CAP = 3.0


def delay(attempt: int, *, first: float = FIRST, cap: float = CAP, jitter: float = 0.2) -> float:
    """Seconds to wait before try ``attempt + 1`` (``attempt`` failures so far, from 0)."""
    base = min(cap, first * (2 ** min(attempt, 30)))
    return base * (1 - jitter * random.random())
