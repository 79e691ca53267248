"""Heron's own outages never page: deadlines that step over the windows in which Heron was blind.

A *blind window* ``(start, end)`` is a span of time in which Heron could not see events: the
broker was down (ingest answered 503, no ticks went out), no ingest replica could publish, or no
detector ran the ticker. An event a client sent then may have been turned away, so a silence that
overlaps a blind window is not evidence that the stream stopped.

The rule, per monitor (pure; the detector applies it when a deadline falls due):

- The next event was expected at ``expected = last_seen + interval`` and is late at
  ``deadline = expected + tolerance``. If a blind window overlaps the span in which that event
  could have arrived, ``(expected - tolerance, deadline]``, it may have been turned away: the
  arrival is not judged, and the next arrival expected after the window ends is judged instead
  (``expected`` steps on by whole intervals past the window's end; its deadline keeps the
  monitor's tolerance).
- A window that does not overlap that span changes nothing: a daily job due at 02:00 is still
  late at 02:10 after a broker blip at 01:00.

So a stream that resumes within its normal rhythm once Heron is healthy again opens no incident,
and a stream that really stopped is still detected, one rhythm later than it would have been.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Window = tuple[float, float]


def deadline_past_windows(
    last_seen: float,
    interval: float | None,
    deadline: float,
    windows: Iterable[Window],
    *,
    min_tolerance: float = 0.0,
) -> float:
    """``deadline``, moved past every blind window that could have hidden the expected event.

    ``interval`` is the monitor's expected gap between events (None or ≤ 0 when unknown: then the
    whole allowed silence is one "interval"); ``windows`` are ``(start, end)`` unix seconds in any
    order; ``min_tolerance`` bounds the slack below, so a stream with no learned slack still gets
    some after a window.
    """
    allowed = deadline - last_seen
    if allowed <= 0.0:
        return deadline
    if interval is None or interval <= 0.0 or interval > allowed:
        # No rhythm known: the event could have come at any moment of the allowed silence.
        interval, tolerance = allowed, max(allowed, min_tolerance)
    else:
        tolerance = max(allowed - interval, min_tolerance)
    spans = sorted((a, b) for a, b in windows if b > last_seen and b > a)
    expected = last_seen + interval
    current = deadline
    while True:
        low = max(expected - tolerance, last_seen)
        hidden_until = max((b for a, b in spans if a <= current and b > low), default=None)
        if hidden_until is None:
            return current
        # Judge the first arrival expected after Heron could see again (this one is skipped even
        # if it was due just after the window: it may have come early, into the window).
        steps = max(1, math.floor((hidden_until - expected) / interval) + 1)
        expected += steps * interval
        current = expected + tolerance
