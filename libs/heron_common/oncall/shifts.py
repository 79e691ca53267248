"""Shifts: who is on call when, generated from a rotation, and the questions asked of them.

Pure: every instant is an explicit aware datetime; what is returned is in UTC.

**Generating.** The lines of a rotation are taken in turn, cycling, from an anchor (the moment the
schedule starts) and a line to start with (``first``, 0 for a new schedule):

- a line without ``from`` starts when the previous shift ends (the first shift at the anchor);
- a line with ``from A`` starts at the first moment A at or after the previous shift's end (or the
  anchor): the time in between is a gap, when nobody is on call;
- every shift ends at the first moment of its ``until`` strictly after it starts.

So shifts are ordered, never overlap, each ends after it starts, and follow each other without a
gap unless ``from`` made one. Every shift that starts before the horizon is generated (the last
one may end after it), so a schedule generated to a horizon covers every moment up to it that the
rotation covers.

**Topping up** (:func:`extend`, :func:`add_full_rotation`): new shifts follow the last existing one
— from the end of the latest shift (or ``now``, if that is later), with the line after the one the
latest generated shift came from — and existing shifts are never changed: a shift reassigned to
someone else, or a gap left by deleting shifts, stays as the people made it. A shift added by hand
has no ``position``; the next line is then taken after the latest shift that has one.

**Asking** (:func:`who_is_on_call`, :func:`previous_on_call`) works on any list of shifts,
including ones people edited, so it tolerates overlaps: the shift that started last wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from heron_common.oncall.rotation import Rotation

# A bound on one call's work: a rotation of 500 one-minute shifts topped up two weeks ahead stays
# under it; a call that reaches it returns what it made, and the next top-up continues from there.
MAX_SHIFTS = 10_000
# Generation looks up to ~15 days past the horizon; datetime ends in year 9999.
MAX_YEAR = 9990


@dataclass(frozen=True, slots=True)
class Shift:
    email: str
    starts_at: datetime
    ends_at: datetime
    # The index (0-based) in the rotation's specs of the line it came from; None: added by hand.
    position: int | None = None


@dataclass(frozen=True, slots=True)
class OnCall:
    current: Shift | None  # None: nobody is on call (a gap)
    next: Shift | None  # the first shift that starts later


def _utc(name: str, t: datetime) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    t = t.astimezone(UTC)
    if t.year > MAX_YEAR:
        raise ValueError(f"{name} must be before the year {MAX_YEAR}")
    return t


def _iterate(rotation: Rotation, cursor: datetime, position: int) -> Iterator[Shift]:
    specs = rotation.specs
    while True:
        spec = specs[position]
        starts = spec.start.at_or_after(cursor) if spec.start is not None else cursor
        ends = spec.until.next_after(starts)
        yield Shift(spec.email, starts, ends, position)
        cursor, position = ends, (position + 1) % len(specs)


def generate(
    rotation: Rotation,
    anchor: datetime,
    until: datetime,
    *,
    first: int = 0,
    max_shifts: int = MAX_SHIFTS,
) -> list[Shift]:
    """The shifts that start from ``anchor`` on and before ``until``, beginning with line ``first``."""
    anchor, until = _utc("anchor", anchor), _utc("until", until)
    if not 0 <= first < len(rotation.specs):
        raise ValueError(f"first must be a line index from 0 to {len(rotation.specs) - 1}")
    made: list[Shift] = []
    for shift in _iterate(rotation, anchor, first):
        if shift.starts_at >= until or len(made) >= max_shifts:
            break
        made.append(shift)
    return made


def _follow_on(existing: Sequence[Shift], rotation: Rotation, now: datetime) -> tuple[datetime, int]:
    """Where new shifts start: after the latest existing shift (or now), with the line after the
    latest generated one."""
    now = _utc("now", now)
    if not existing:
        return now, 0
    cursor = max(max(s.ends_at for s in existing), now)
    generated = [s for s in existing if s.position is not None]
    if not generated:
        return cursor, 0
    latest = max(generated, key=lambda s: (s.ends_at, s.starts_at))
    assert latest.position is not None
    position = latest.position + 1
    return cursor, position if position < len(rotation.specs) else 0


def extend(
    existing: Sequence[Shift],
    rotation: Rotation,
    horizon: datetime,
    *,
    now: datetime,
    max_shifts: int = MAX_SHIFTS,
) -> list[Shift]:
    """The new shifts that top the schedule up to ``horizon`` (none if it already reaches it).

    ``existing`` is left as it is; the new shifts start after the latest one ends, or at ``now``
    when that is later (no shift is made for the past).
    """
    cursor, position = _follow_on(existing, rotation, now)
    return generate(rotation, cursor, horizon, first=position, max_shifts=max_shifts)


def add_full_rotation(existing: Sequence[Shift], rotation: Rotation, *, now: datetime) -> list[Shift]:
    """One more turn of every line of the rotation, after the existing shifts ("Add Full Rotation")."""
    cursor, position = _follow_on(existing, rotation, now)
    _utc("the last shift's end", cursor)
    shifts = _iterate(rotation, cursor, position)
    return [next(shifts) for _ in rotation.specs]


def on_call_at(shifts: Iterable[Shift], at: datetime) -> Shift | None:
    """The shift on call at ``at`` (the one that started last, if edits made several overlap)."""
    at = _utc("at", at)
    on = [s for s in shifts if s.starts_at <= at < s.ends_at]
    return max(on, key=lambda s: s.starts_at) if on else None


def who_is_on_call(shifts: Iterable[Shift], at: datetime) -> OnCall:
    """Who is on call at ``at`` (the shift that started last, if edits made several overlap) and
    the next shift to start after ``at``."""
    at = _utc("at", at)
    shifts = list(shifts)
    later = [s for s in shifts if s.starts_at > at]
    return OnCall(current=on_call_at(shifts, at), next=min(later, key=lambda s: s.starts_at) if later else None)


def previous_on_call(shifts: Iterable[Shift], at: datetime) -> Shift | None:
    """The shift of the person on call before the current one: the latest shift that ended at or
    before ``at`` whose person is not the one on call at ``at``. In a gap (nobody on call), the last
    one who was."""
    at = _utc("at", at)
    shifts = list(shifts)
    current = on_call_at(shifts, at)
    ended = [s for s in shifts if s.ends_at <= at and (current is None or s.email != current.email)]
    return max(ended, key=lambda s: (s.ends_at, s.starts_at)) if ended else None
