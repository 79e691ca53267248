"""Each event monitor's state machine, as pure functions over the cadence model (no I/O).

States: ``new`` while the cadence is being learned, ``up``, ``down`` while an incident is open.
The service loops feed this module event times and scan times and persist what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from heron_detector import cadence
from heron_detector.cadence import Cadence, CadenceParams

NEW, UP, DOWN = "new", "up", "down"


@dataclass(frozen=True, slots=True)
class Monitor:
    state: str
    cadence: Cadence
    event_count: int = 0

    def deadline(self, params: CadenceParams) -> float | None:
        """The moment silence becomes abnormal; None while learning or already down."""
        if self.state != UP:
            return None
        return cadence.deadline(self.cadence, params)


@dataclass(frozen=True, slots=True)
class Flip:
    from_state: str
    to_state: str
    at: float
    reason: str
    # Set when an incident resolves: the silence ran from silent_since (the last event before
    # the gap) to resumed_at (the first event after it).
    silent_since: float | None = None
    resumed_at: float | None = None


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
            flips.append(Flip(DOWN, UP, resumed_at, "event resumed", silent_since=before, resumed_at=resumed_at))
            state = UP
    if state == NEW and cadence.deadline(learned, params) is not None:
        flips.append(Flip(NEW, UP, learned.last_seen or 0.0, "cadence learned"))
        state = UP
    return Monitor(state, learned, monitor.event_count + len(times)), flips


def check_silence(monitor: Monitor, now: float, params: CadenceParams) -> Flip | None:
    """The flip to ``down`` if the monitor is overdue at ``now`` (the shard's watermark)."""
    deadline = monitor.deadline(params)
    if deadline is None or now < deadline:
        return None
    return Flip(UP, DOWN, now, "silent past its deadline", silent_since=monitor.cadence.last_seen)
