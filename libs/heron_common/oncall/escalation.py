"""The escalation plan of an incident, pure: who is paged, on which channel, when.

The notifier keeps pages as durable scheduled rows; this module says which rows there should be.
Given an incident (when it opened, whether and when it was acknowledged or resolved, whether its
monitor escalates), the rotation's :class:`Policy` (escalation strategies, repeat interval), the
rotation's shifts and members and each person's notification channels, :func:`plan` returns every
page :class:`Step` due in a window, ordered by due time. Every step has a deterministic ``id``, so
the ledger can insert a plan computed again (after a restart, by another notifier, with a later
window) idempotently: a step keeps its id as long as what it is (incident, stage, person,
channel) is unchanged.

The model:

- **Primary pages.** At the incident's opening and then every ``repeat_every`` (round ``k`` at
  ``opened_at + k × repeat_every``), the person on call *at that moment* is paged. A round where
  nobody is on call (a gap in the rotation) pages nobody; the ladder below still runs. A person
  who becomes the primary (the first round, or a handover during the incident, or the end of a
  gap) is paged on every channel, each after its own delay (the primary channel at once, a backup
  5–15 minutes later); while they stay on call the following rounds page their primary channel
  only (the one with the smallest delay — normally 0 — after that delay).
- **Escalation strategies**, each ``delay`` after the opening (only if the incident escalates: a
  trigger with ``escalate=false`` pages the primary only):
  ``previous`` pages the person on call before the current one (:func:`shifts.previous_on_call`
  at that moment: in a gap, the last one who was); ``rotation`` pages every member of the
  rotation; ``user`` pages the named user. Each person is paged on every channel, each after its
  delay. Several strategies make a ladder (previous after 15 min, rotation after 30, a manager
  after 45).
- **Stopping.** Nothing is due at or after the moment the incident was acknowledged or resolved:
  acknowledging stops every further page, the repeats and the ladder alike.
- A person without channels is paged nowhere (no step).

Step ids are ``uuid5`` of (incident, stage, email, channel), where the stage is ``page:k`` for
round ``k`` or ``escalation:<strategy key>``; give strategies and channels stable keys (their
row ids), or reordering them changes the ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from heron_common.oncall.shifts import Shift, on_call_at, previous_on_call

PREVIOUS, ROTATION, USER = "previous", "rotation", "user"
TARGETS = (PREVIOUS, ROTATION, USER)
PRIMARY, REPEAT, ESCALATION = "primary", "repeat", "escalation"  # Step.reason
# The shortest repeat interval the API accepts by default (HERON_ONCALL_MIN_REPEAT); the model
# itself only needs a positive one (tests and demos page every few seconds).
MIN_REPEAT = timedelta(minutes=1)
MAX_DELAY = timedelta(days=7)
STEP_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-5e7a-9c3f-2b1d4e6a8c0f")


@dataclass(frozen=True, slots=True)
class Strategy:
    """Page ``target`` (``previous``, ``rotation``, or ``user`` = the email ``user``) ``delay``
    after the incident opened. ``key`` identifies it in step ids (its row id); default: its index."""

    delay: timedelta
    target: str
    user: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {self.target!r}")
        if (self.target == USER) != (self.user is not None):
            raise ValueError("a 'user' strategy names its user, and only a 'user' strategy does")
        if not timedelta(0) <= self.delay <= MAX_DELAY:
            raise ValueError(f"delay must be from 0 to {MAX_DELAY}")


@dataclass(frozen=True, slots=True)
class Channel:
    """One of a person's notification channels: ``key`` identifies it (its row id), ``kind`` is
    opaque here (slack, email, webhook), ``delay`` is how long after a page it is used."""

    key: str
    kind: str
    delay: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not timedelta(0) <= self.delay <= MAX_DELAY:
            raise ValueError(f"delay must be from 0 to {MAX_DELAY}")


@dataclass(frozen=True, slots=True)
class Policy:
    """A rotation's escalation: its strategies, and how often the primary is paged again while
    the incident alerts (None: once)."""

    strategies: tuple[Strategy, ...] = ()
    repeat_every: timedelta | None = None

    def __post_init__(self) -> None:
        if self.repeat_every is not None and self.repeat_every <= timedelta(0):
            raise ValueError("repeat_every must be positive (or None: page once)")


@dataclass(frozen=True, slots=True)
class Incident:
    id: str | int
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    escalate: bool = True  # False: the primary only (a trigger with escalate=false)

    @property
    def stops_at(self) -> datetime | None:
        """From when nothing more is paged: the acknowledgement or the resolution, the earlier."""
        ends = [t for t in (self.acknowledged_at, self.resolved_at) if t is not None]
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    due_at: datetime
    email: str
    channel: str  # Channel.key
    channel_kind: str
    reason: str  # PRIMARY (a new primary), REPEAT (primary channel again), ESCALATION
    round: int | None = None  # primary pages: k, the round at opened_at + k × repeat_every
    strategy: str | None = None  # escalations: the strategy's key


def step_id(incident: str | int, stage: str, email: str, channel: str) -> str:
    return str(uuid.uuid5(STEP_NAMESPACE, json.dumps([str(incident), stage, email, channel])))


def _aware(name: str, t: datetime) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return t.astimezone(UTC)


def plan(
    incident: Incident,
    policy: Policy,
    *,
    shifts: Sequence[Shift],
    members: Sequence[str],
    channels: Mapping[str, Sequence[Channel]],
    until: datetime,
    after: datetime | None = None,
) -> list[Step]:
    """Every page step due in ``(after, until]`` (``after`` None: from the opening), ordered by
    due time (ties: primary pages first, then the strategies in order, people and channels in
    order). The same inputs give the same steps with the same ids."""
    opened = _aware("opened_at", incident.opened_at)
    until = _aware("until", until)
    low = _aware("after", after) if after is not None else None
    stops = incident.stops_at
    stop = _aware("acknowledged_at/resolved_at", stops) if stops is not None else None
    steps: list[Step] = []

    def due(t: datetime) -> bool:
        return t <= until and (low is None or t > low) and (stop is None or t < stop)

    def page(email: str, at: datetime, stage: str, reason: str, round_: int | None, strategy: str | None) -> None:
        person: Sequence[Channel] = channels.get(email, ())
        if reason == REPEAT:
            person = [min(person, key=lambda c: c.delay)] if person else []
        for channel in person:
            t = at + channel.delay
            if due(t):
                steps.append(
                    Step(
                        id=step_id(incident.id, stage, email, channel.key),
                        due_at=t,
                        email=email,
                        channel=channel.key,
                        channel_kind=channel.kind,
                        reason=reason,
                        round=round_,
                        strategy=strategy,
                    )
                )

    # Primary rounds: only those that can have a step in the window are visited; whether the
    # person paged is new is judged against who was on call at the round before.
    longest = max((c.delay for person in channels.values() for c in person), default=timedelta(0))
    for k, at in _rounds(opened, policy.repeat_every, until, low, longest, stop):
        current = _on_call(shifts, at)
        if current is None:
            continue
        before = _on_call(shifts, at - policy.repeat_every) if k > 0 and policy.repeat_every else None
        reason = REPEAT if before is not None and before == current else PRIMARY
        page(current, at, f"page:{k}", reason, k, None)

    if incident.escalate:
        for index, strategy in enumerate(policy.strategies):
            at = opened + strategy.delay
            key = strategy.key if strategy.key is not None else str(index)
            for email in _targets(strategy, shifts, members, at):
                page(email, at, f"escalation:{key}", ESCALATION, None, key)

    return [step for _, step in sorted(enumerate(steps), key=lambda pair: (pair[1].due_at, pair[0]))]


def _rounds(
    opened: datetime,
    every: timedelta | None,
    until: datetime,
    low: datetime | None,
    longest: timedelta,
    stop: datetime | None,
) -> Iterable[tuple[int, datetime]]:
    if every is None:
        if opened <= until:
            yield 0, opened
        return
    k = 0
    if low is not None and low - longest > opened:
        k = (low - longest - opened) // every  # the first round whose pages can fall after `low`
    while True:
        at = opened + k * every
        if at > until or (stop is not None and at >= stop):
            return
        yield k, at
        k += 1


def _on_call(shifts: Sequence[Shift], at: datetime) -> str | None:
    current = on_call_at(shifts, at)
    return current.email if current is not None else None


def _targets(strategy: Strategy, shifts: Sequence[Shift], members: Sequence[str], at: datetime) -> list[str]:
    if strategy.target == PREVIOUS:
        previous = previous_on_call(shifts, at)
        return [previous.email] if previous is not None else []
    if strategy.target == ROTATION:
        return list(dict.fromkeys(members))
    assert strategy.user is not None
    return [strategy.user]
