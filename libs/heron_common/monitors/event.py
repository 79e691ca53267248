"""The ``event`` kind: a learned event stream's state machine, pure, over the cadence model.

States: ``new`` while the cadence is being learned, ``up``, ``down`` while an incident is open,
``paused``. The detector feeds this module event times and scan times and persists what it returns.

The learned deadline can be overridden per monitor (``config``, set with ``PATCH /v1/monitors/{id}``):

- ``expected_interval`` + ``grace`` (seconds): a fixed deadline ``last_seen + interval + grace``,
  in force from the first event (no learning);
- ``sensitivity`` (0.1–10, default 1): the learned slack beyond the mean gap is divided by it, so
  2 alerts twice as soon past the usual gap and 0.5 waits twice as long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from heron_common.monitors import OPEN, PAUSED, RESOLVE, Flip, cadence
from heron_common.monitors.cadence import Cadence, CadenceParams, event_time

__all__ = ["DOWN", "NEW", "PAUSED", "UP", "Flip", "Monitor", "apply_events", "check_silence", "event_time"]

KIND = "event"
NEW, UP, DOWN = "new", "up", "down"
MIN_SENSITIVITY, MAX_SENSITIVITY = 0.1, 10.0


@dataclass(frozen=True, slots=True)
class Monitor:
    state: str
    cadence: Cadence
    event_count: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)

    def deadline(self, params: CadenceParams) -> float | None:
        """The moment silence becomes abnormal; None while learning, down or paused."""
        if self.state != UP:
            return None
        return learned_or_fixed_deadline(self.cadence, self.config, params)

    def expected_interval(self) -> float | None:
        fixed = self.config.get("expected_interval")
        return float(fixed) if fixed is not None else cadence.expected_interval(self.cadence)


def learned_or_fixed_deadline(state: Cadence, config: Mapping[str, Any], params: CadenceParams) -> float | None:
    if state.last_seen is None:
        return None
    fixed = config.get("expected_interval")
    if fixed is not None:
        return state.last_seen + float(fixed) + float(config.get("grace") or 0.0)
    learned = cadence.deadline(state, params)
    sensitivity = config.get("sensitivity")
    if learned is None or sensitivity is None or float(sensitivity) == 1.0:
        return learned
    slack = learned - state.last_seen - state.mean
    return state.last_seen + state.mean + max(slack / float(sensitivity), params.min_tolerance)


def apply_events(monitor: Monitor, times: list[float], params: CadenceParams) -> tuple[Monitor, list[Flip]]:
    """Fold a batch of event times (any order, duplicates allowed) into the monitor."""
    before = monitor.cadence.last_seen
    learned = cadence.observe_many(monitor.cadence, times, params)
    state = monitor.state
    flips: list[Flip] = []
    if state == DOWN:
        newer = [t for t in times if before is None or t > before]
        if newer:
            resumed_at = min(newer)
            flips.append(
                Flip(
                    DOWN, UP, resumed_at, "event resumed", incident=RESOLVE, silent_since=before, resumed_at=resumed_at
                )
            )
            state = UP
    if state == NEW and learned_or_fixed_deadline(learned, monitor.config, params) is not None:
        flips.append(Flip(NEW, UP, learned.last_seen or 0.0, "cadence learned"))
        state = UP
    return Monitor(state, learned, monitor.event_count + len(times), monitor.config), flips


def check_silence(monitor: Monitor, now: float, params: CadenceParams) -> Flip | None:
    """The flip to ``down`` if the monitor is overdue at ``now`` (the shard's watermark)."""
    deadline = monitor.deadline(params)
    if deadline is None or now < deadline:
        return None
    return Flip(UP, DOWN, now, "silent past its deadline", incident=OPEN, silent_since=monitor.cadence.last_seen)


def resume(monitor: Monitor, at: float, params: CadenceParams) -> tuple[Monitor, Flip]:
    """Back from ``paused``: judged from ``at`` on, as if the last event had just been seen (the
    pause is not held against the stream), or ``new`` if nothing was learned yet."""
    learned = monitor.cadence
    if learned.last_seen is not None:
        learned = replace(learned, last_seen=max(learned.last_seen, at))
    state = UP if learned_or_fixed_deadline(learned, monitor.config, params) is not None else NEW
    return Monitor(state, learned, monitor.event_count, monitor.config), Flip(PAUSED, state, at, "resumed")
