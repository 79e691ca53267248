"""One monitor model for every kind: pure state machines, importable by every service.

Every monitor — an event stream, and the declared kinds that build on this (heartbeats, triggers,
probes, Heroku apps) — is one row of ``monitors``: a kind, a state, what the user declared
(``config``), what the kind keeps (``cadence``/data), and a ``deadline``: the moment the detector
must look at it again ("late", "down", "timed out": the kind decides what it means). The
detector is the only writer of monitor state; it finds due monitors through one deadline index
for every kind and applies what the kind's pure functions return:

- a new state and deadline;
- the :class:`Flip`\\s taken, each recorded as a ``flips`` row, and each of which may open,
  acknowledge or resolve the monitor's incident (``Flip.incident``), which in turn writes the
  ``incident.*`` alert (and the kind's own topic) to the outbox in the same transaction.

What every kind shares lives here: the flip, the incident actions, pausing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What a flip does to the monitor's incident.
OPEN, ACKNOWLEDGE, RESOLVE = "open", "acknowledge", "resolve"
# Any kind can be paused: a paused monitor has no deadline and never alerts.
PAUSED = "paused"
# Kinds whose incidents a person may resolve by hand (an event stream's resolves when its events
# return; a heartbeat's with its next ping). Each kind module adds itself.
RESOLVABLE_BY_HAND: set[str] = set()


@dataclass(frozen=True, slots=True)
class Flip:
    from_state: str
    to_state: str
    at: float
    reason: str
    incident: str | None = None  # OPEN, ACKNOWLEDGE, RESOLVE, or None (no incident change)
    # Set when an incident resolves: the silence ran from silent_since (the last observation
    # before the gap) to resumed_at (the first one after it).
    silent_since: float | None = None
    resumed_at: float | None = None
    details: dict[str, Any] | None = None  # what the kind adds to the incident (a trigger's body…)


def pause(state: str, at: float, reason: str = "paused") -> Flip | None:
    """The flip to ``paused`` (None if already paused). An open incident stays open: it can still
    be acknowledged or resolved by hand, and the monitor never alerts while paused."""
    if state == PAUSED:
        return None
    return Flip(state, PAUSED, at, reason)
