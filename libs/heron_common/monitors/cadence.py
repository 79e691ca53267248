"""Learned cadence of one event stream, and the deadline by which its next event is due.

A stream is one (project, event name, service, environment). This module only knows the event
*times* of one stream: it keeps a small running summary of the gaps between them and turns it into a
deadline. It is pure on purpose: no I/O and no clock reads; every time is a float of unix seconds
passed in by the caller, so it can be tested with frozen times and replayed from stored events.

    state = Cadence()
    state = observe(state, t, params)      # once per event, in any order
    deadline(state, params)                # None while learning, else unix seconds
    is_overdue(state, now, params)         # now: the ingest watermark, not the wall clock

The formula and the reasons behind it are in docs/detection.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

# Bump when the meaning of a stored field changes; from_dict refuses snapshots of another version.
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class CadenceParams:
    """Tuning knobs. Defaults suit production; tests and demos shrink them to a scale of seconds."""

    learning_threshold: int = 3  # in-order occurrences (so threshold - 1 learned gaps) before a deadline
    min_tolerance: float = 60.0  # seconds; the slack after the longest normal gap is never below this
    sigma_multiplier: float = 4.0  # k in mean + k·σ
    relative_tolerance: float = 0.25  # slack is at least this fraction of the longest normal gap
    alpha_floor: float = 0.05  # EWMA weight once warmed up (1/n before that: exact mean while young)
    peak_half_life: float = 86400.0  # seconds; how fast the remembered longest normal gap fades

    def __post_init__(self) -> None:
        if self.learning_threshold < 1:
            raise ValueError("learning_threshold must be >= 1")
        if not 0.0 < self.alpha_floor <= 1.0:
            raise ValueError("alpha_floor must be in (0, 1]")
        if self.peak_half_life <= 0.0:
            raise ValueError("peak_half_life must be > 0")
        if min(self.min_tolerance, self.sigma_multiplier, self.relative_tolerance) < 0.0:
            raise ValueError("tolerances and sigma_multiplier must be >= 0")


@dataclass(frozen=True, slots=True)
class Cadence:
    """Running summary of one stream's event times. Immutable: observe() returns a new one."""

    count: int = 0  # occurrences seen, including duplicates and out-of-order ones
    last_seen: float | None = None  # newest event time; never moves backwards
    intervals: int = 0  # gaps learned (only from events newer than last_seen)
    mean: float = 0.0  # exponentially weighted mean of learned gaps
    var: float = 0.0  # exponentially weighted variance of learned gaps
    peak: float = 0.0  # longest normal gap, stored undecayed; see _decayed_peak
    peak_at: float = 0.0  # event time at which peak was set (its decay starts there)


def event_time(client_ts: float | None, received_at: float, max_skew: float = 3600.0) -> float:
    """The time an event counts as having happened at.

    The client's timestamp is trusted within [received_at - max_skew, received_at]: a clock in the
    future cannot push a deadline out, and a replay of very old events cannot drag the cadence back.
    Missing or non-finite client timestamps fall back to the receive time.
    """
    if client_ts is None or not math.isfinite(client_ts):
        return received_at
    return min(max(client_ts, received_at - max_skew), received_at)


def observe(state: Cadence, t: float, params: CadenceParams) -> Cadence:
    """Fold one event time into the state.

    An event at or before last_seen (duplicate, retry, late arrival) is counted but teaches nothing:
    its gap to the newest event is not a gap between consecutive events, and last_seen never moves
    backwards. A gap that overran the deadline was an outage, not the stream's rhythm: it is learned
    as the gap the deadline allowed, so one outage does not widen the tolerance to its own length.
    """
    if not math.isfinite(t):
        raise ValueError(f"event time must be finite, got {t!r}")
    if state.last_seen is None:
        return replace(state, count=1, last_seen=t)
    if t <= state.last_seen:
        return replace(state, count=state.count + 1)

    x = t - state.last_seen
    due = deadline(state, params)
    if due is not None and t > due:
        # An outage: learn the gap the deadline allowed instead. A one-off outage then widens the
        # deadline by one slack step at most (and that fades), yet a stream that slows down for good
        # still catches up: each incident teaches a slightly longer gap, so deadlines grow geometrically.
        x = due - state.last_seen

    n = state.intervals + 1
    alpha = max(1.0 / n, params.alpha_floor)  # 1/n: plain mean and variance while young
    # West's incremental exponentially weighted mean and variance.
    diff = x - state.mean
    incr = alpha * diff
    mean = state.mean + incr
    var = (1.0 - alpha) * (state.var + diff * incr)

    peak, peak_at = state.peak, state.peak_at
    if x >= _decayed_peak(state, t, params):
        peak, peak_at = x, t

    return Cadence(
        count=state.count + 1,
        last_seen=t,
        intervals=n,
        mean=mean,
        var=var,
        peak=peak,
        peak_at=peak_at,
    )


def observe_many(state: Cadence, times: Iterable[float], params: CadenceParams) -> Cadence:
    """Fold a batch of event times. Sorting first recovers the true order within the batch."""
    for t in sorted(times):
        state = observe(state, t, params)
    return state


def is_learning(state: Cadence, params: CadenceParams) -> bool:
    """True until learning_threshold in-order occurrences (threshold - 1 gaps) have been seen.

    Counted in learned gaps, not in state.count: duplicates and late events say nothing about the
    cadence, so a retried event must not end the learning phase early.
    """
    return state.last_seen is None or state.intervals < max(1, params.learning_threshold - 1)


def expected_interval(state: Cadence) -> float | None:
    """Mean gap between events, or None before any gap was learned."""
    return state.mean if state.intervals > 0 else None


def deadline(state: Cadence, params: CadenceParams) -> float | None:
    """Unix time by which the next event is due, or None while learning.

        reach    = max(mean, decayed peak)
        deadline = last_seen + max(mean + k·σ, reach + max(relative_tolerance·reach, min_tolerance))

    mean + k·σ covers irregular streams, the second term covers regular ones (σ≈0) and bursty
    ones (long quiet gaps between bursts the mean and σ forget): the longest normal gap plus slack.
    """
    if is_learning(state, params) or state.last_seen is None:
        return None
    sigma = math.sqrt(max(state.var, 0.0))
    reach = max(state.mean, _decayed_peak(state, state.last_seen, params))
    slack = max(params.relative_tolerance * reach, params.min_tolerance)
    return state.last_seen + max(state.mean + params.sigma_multiplier * sigma, reach + slack)


def tolerance(state: Cadence, params: CadenceParams) -> float | None:
    """How long past the expected interval the stream may stay silent, or None while learning."""
    due = deadline(state, params)
    if due is None or state.last_seen is None:
        return None
    return due - state.last_seen - state.mean


def is_overdue(state: Cadence, now: float, params: CadenceParams) -> bool:
    """True when `now` is past the deadline. Never True while learning."""
    due = deadline(state, params)
    return due is not None and now > due


def to_dict(state: Cadence) -> dict[str, int | float | None]:
    """JSON-able snapshot (plain ints and floats) for storage, e.g. a Postgres jsonb column."""
    return {
        "v": SNAPSHOT_VERSION,
        "count": state.count,
        "last_seen": state.last_seen,
        "intervals": state.intervals,
        "mean": state.mean,
        "var": state.var,
        "peak": state.peak,
        "peak_at": state.peak_at,
    }


def from_dict(d: Mapping[str, Any]) -> Cadence:
    """Inverse of to_dict. Missing fields take their defaults, so adding a field stays compatible."""
    version = d.get("v", SNAPSHOT_VERSION)
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"unsupported cadence snapshot version {version!r}")
    last_seen = d.get("last_seen")
    return Cadence(
        count=int(d.get("count", 0)),
        last_seen=None if last_seen is None else float(last_seen),
        intervals=int(d.get("intervals", 0)),
        mean=float(d.get("mean", 0.0)),
        var=float(d.get("var", 0.0)),
        peak=float(d.get("peak", 0.0)),
        peak_at=float(d.get("peak_at", 0.0)),
    )


def _decayed_peak(state: Cadence, at: float, params: CadenceParams) -> float:
    """The stored peak halved every peak_half_life seconds since it was set.

    Evaluated at event times only (last_seen for the deadline), never at "now": the deadline must
    not creep closer while the stream is silent.
    """
    elapsed = max(at - state.peak_at, 0.0)
    return state.peak * 0.5 ** (elapsed / params.peak_half_life)
