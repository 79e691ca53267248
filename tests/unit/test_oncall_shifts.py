"""The shift generator and the on-call questions, pure, on fixed instants (no clock at all).

2024 in the US: DST starts Sun Mar 10 (2:00 → 3:00) and ends Sun Nov 3 (2:00 → 1:00); in Europe
it starts Sun Mar 31 and ends Sun Oct 27.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron_common.oncall.rotation import Moment, Rotation, ShiftSpec, parse
from heron_common.oncall.shifts import (
    Shift,
    add_full_rotation,
    extend,
    generate,
    on_call_at,
    previous_on_call,
    who_is_on_call,
)

LA, NY, BERLIN = ZoneInfo("America/Los_Angeles"), ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
DAY, WEEK = timedelta(days=1), timedelta(days=7)

WEEKLY = parse(
    "alice@example.com, until Mon 9:00am PT\n"
    "bob@example.com, until Mon 9:00am PT\n"
    "carol@example.com, until Mon 9:00am PT"
)
DAY_NIGHT = parse("alice@example.com, until 7:30pm ET\nbob@example.com, until 7:30am ET")
WEEKDAYS = parse(
    "\n".join(
        f"{who}@example.com, from {day} 9:00am PT until {day} 5:00pm PT"
        for who, day in (("mo", "Mon"), ("tu", "Tue"), ("we", "Wed"), ("th", "Thu"), ("fr", "Fri"))
    )
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def spans(shifts: list[Shift]) -> list[tuple[str, datetime, datetime]]:
    return [(s.email.split("@")[0], s.starts_at, s.ends_at) for s in shifts]


# --- three people, week-long shifts, handing off Monday 9:00am PT, over a whole year -----------


def test_weekly_rotation_hands_off_monday_9am_pacific_all_year_across_both_dst_changes() -> None:
    shifts = generate(WEEKLY, at(LA, 2024, 1, 1, 9, 0), utc(2025, 1, 1))
    assert len(shifts) == 53  # every Monday of 2024
    assert [s.email.split("@")[0] for s in shifts[:4]] == ["alice", "bob", "carol", "alice"]
    for shift, following in itertools.pairwise(shifts):
        assert shift.ends_at == following.starts_at  # contiguous: nobody is ever off the hook
    for shift in shifts:
        local = shift.ends_at.astimezone(LA)
        assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)
        assert shift.starts_at.tzinfo is UTC and shift.ends_at.tzinfo is UTC
    by_start = {s.starts_at.date().isoformat(): s for s in shifts}
    # Winter: 9am PST is 17:00 UTC; summer: 9am PDT is 16:00 UTC.
    spring, autumn = by_start["2024-03-04"], by_start["2024-10-28"]
    assert (spring.starts_at, spring.ends_at) == (utc(2024, 3, 4, 17), utc(2024, 3, 11, 16))
    assert spring.ends_at - spring.starts_at == WEEK - H  # the spring-forward week
    assert (autumn.starts_at, autumn.ends_at) == (utc(2024, 10, 28, 16), utc(2024, 11, 4, 17))
    assert autumn.ends_at - autumn.starts_at == WEEK + H  # the fall-back week
    assert sum(1 for s in shifts if s.ends_at - s.starts_at == WEEK) == 51


def test_a_rotation_started_midweek_runs_the_first_shift_to_the_next_monday() -> None:
    shifts = generate(WEEKLY, utc(2024, 7, 3, 12, 34), utc(2024, 7, 20))
    assert spans(shifts) == [
        ("alice", utc(2024, 7, 3, 12, 34), utc(2024, 7, 8, 16)),
        ("bob", utc(2024, 7, 8, 16), utc(2024, 7, 15, 16)),
        ("carol", utc(2024, 7, 15, 16), utc(2024, 7, 22, 16)),
    ]


def test_a_shift_starting_exactly_at_the_handover_runs_a_full_week() -> None:
    (first,) = generate(WEEKLY, at(LA, 2024, 7, 8, 9, 0), at(LA, 2024, 7, 8, 9, 1))
    assert first.ends_at - first.starts_at == WEEK  # "until" is strictly after the start


# --- day and night in ET ---------------------------------------------------------------------


def test_day_night_rotation_in_eastern_time_across_both_dst_changes() -> None:
    spring = generate(DAY_NIGHT, at(NY, 2024, 3, 8, 7, 30), at(NY, 2024, 3, 11, 7, 30))
    assert spans(spring) == [
        ("alice", utc(2024, 3, 8, 12, 30), utc(2024, 3, 9, 0, 30)),  # 7:30am–7:30pm EST
        ("bob", utc(2024, 3, 9, 0, 30), utc(2024, 3, 9, 12, 30)),
        ("alice", utc(2024, 3, 9, 12, 30), utc(2024, 3, 10, 0, 30)),
        ("bob", utc(2024, 3, 10, 0, 30), utc(2024, 3, 10, 11, 30)),  # the short night: 11 hours
        ("alice", utc(2024, 3, 10, 11, 30), utc(2024, 3, 10, 23, 30)),  # 7:30am–7:30pm EDT
        ("bob", utc(2024, 3, 10, 23, 30), utc(2024, 3, 11, 11, 30)),
    ]
    autumn = generate(DAY_NIGHT, at(NY, 2024, 11, 2, 7, 30), at(NY, 2024, 11, 3, 19, 30))
    assert spans(autumn) == [
        ("alice", utc(2024, 11, 2, 11, 30), utc(2024, 11, 2, 23, 30)),
        ("bob", utc(2024, 11, 2, 23, 30), utc(2024, 11, 3, 12, 30)),  # the long night: 13 hours
        ("alice", utc(2024, 11, 3, 12, 30), utc(2024, 11, 4, 0, 30)),
    ]
    for shift in spring + autumn:
        assert shift.ends_at.astimezone(NY).strftime("%H:%M") in ("07:30", "19:30")


# --- weekdays only, daytime only: gaps -------------------------------------------------------


def test_weekday_daytime_rotation_leaves_nights_and_weekends_uncovered() -> None:
    shifts = generate(WEEKDAYS, at(LA, 2024, 3, 2, 12, 0), at(LA, 2024, 3, 16, 0, 0))  # from a Saturday
    assert len(shifts) == 10
    assert [s.email.split("@")[0] for s in shifts] == ["mo", "tu", "we", "th", "fr"] * 2
    for shift in shifts:
        start, end = shift.starts_at.astimezone(LA), shift.ends_at.astimezone(LA)
        assert start.date() == end.date() and start.weekday() < 5
        assert (start.hour, end.hour) == (9, 17) and shift.ends_at - shift.starts_at == 8 * H
    # Monday 9am is 17:00 UTC in the first week and 16:00 UTC after the change to PDT.
    assert shifts[0].starts_at == utc(2024, 3, 4, 17) and shifts[5].starts_at == utc(2024, 3, 11, 16)
    # Nobody is on call at night or over the weekend; the next shift is known.
    night = who_is_on_call(shifts, at(LA, 2024, 3, 5, 20, 0))
    assert night.current is None and night.next == shifts[2]
    weekend = who_is_on_call(shifts, at(LA, 2024, 3, 9, 12, 0))
    assert weekend.current is None and weekend.next == shifts[5]
    assert previous_on_call(shifts, at(LA, 2024, 3, 9, 12, 0)) == shifts[4]  # Friday's
    day = who_is_on_call(shifts, at(LA, 2024, 3, 6, 13, 0))
    assert day.current == shifts[2] and day.next == shifts[3]


# --- across midnight -------------------------------------------------------------------------


def test_handovers_at_and_across_midnight() -> None:
    rotation = parse("a@x.io, until 12:00am Europe/Berlin\nb@x.io, until 6:00am Europe/Berlin")
    shifts = generate(rotation, at(BERLIN, 2024, 3, 29, 12, 0), at(BERLIN, 2024, 4, 2, 0, 0))
    assert spans(shifts) == [
        ("a", utc(2024, 3, 29, 11), utc(2024, 3, 29, 23)),  # to midnight CET (23:00 UTC)
        ("b", utc(2024, 3, 29, 23), utc(2024, 3, 30, 5)),
        ("a", utc(2024, 3, 30, 5), utc(2024, 3, 30, 23)),
        ("b", utc(2024, 3, 30, 23), utc(2024, 3, 31, 4)),  # 0:00 CET to 6:00 CEST: 5 hours
        ("a", utc(2024, 3, 31, 4), utc(2024, 3, 31, 22)),  # to midnight CEST (22:00 UTC)
        ("b", utc(2024, 3, 31, 22), utc(2024, 4, 1, 4)),
        ("a", utc(2024, 4, 1, 4), utc(2024, 4, 1, 22)),
    ]


def test_explicit_windows_across_midnight() -> None:
    rotation = parse("owl@x.io, from Fri 10:00pm ET until Sat 2:00am ET\nlark@x.io, from Sat 10pm ET until 2am ET")
    shifts = generate(rotation, utc(2024, 6, 3), utc(2024, 6, 17))
    assert spans(shifts) == [
        ("owl", utc(2024, 6, 8, 2), utc(2024, 6, 8, 6)),  # Fri 22:00 EDT is Sat 02:00 UTC
        ("lark", utc(2024, 6, 9, 2), utc(2024, 6, 9, 6)),  # "until 2am": the first 2am after the start
        ("owl", utc(2024, 6, 15, 2), utc(2024, 6, 15, 6)),
        ("lark", utc(2024, 6, 16, 2), utc(2024, 6, 16, 6)),
    ]


def test_a_weekly_handover_late_sunday_pacific_is_monday_in_utc() -> None:
    rotation = parse("a@x.io, until Sun 11:30pm PT\nb@x.io, until Sun 11:30pm PT")
    shifts = generate(rotation, utc(2024, 1, 10), utc(2024, 1, 29))
    assert [s.ends_at for s in shifts] == [utc(2024, 1, 15, 7, 30), utc(2024, 1, 22, 7, 30), utc(2024, 1, 29, 7, 30)]
    assert all(s.ends_at.weekday() == 0 and s.ends_at.astimezone(LA).weekday() == 6 for s in shifts)


# --- times a DST change skips or repeats -----------------------------------------------------


def test_a_skipped_time_is_read_past_the_jump_and_a_repeated_time_is_its_first_occurrence() -> None:
    skipped = generate(parse("a@x.io, until 2:30am ET"), at(NY, 2024, 3, 9, 12, 0), at(NY, 2024, 3, 11, 12, 0))
    # 2:30am does not exist on Mar 10: the shift ends at 3:30am EDT (07:30 UTC), and the next day
    # at 2:30am EDT.
    assert [s.ends_at for s in skipped] == [utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30), utc(2024, 3, 12, 6, 30)]
    repeated = generate(parse("a@x.io, until 1:30am ET"), at(NY, 2024, 11, 2, 12, 0), at(NY, 2024, 11, 4, 12, 0))
    # 1:30am happens twice on Nov 3: the shift ends at the first (EDT, 05:30 UTC), and the next one
    # runs to 1:30am EST on Nov 4 — never a one-hour shift to the second 1:30.
    assert [s.ends_at for s in repeated] == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30), utc(2024, 11, 5, 6, 30)]


# --- topping up, adding, editing -------------------------------------------------------------


def test_extend_tops_up_after_the_last_shift_and_matches_one_long_generation() -> None:
    now = utc(2024, 3, 1)
    two_weeks = generate(WEEKLY, now, now + 2 * WEEK)
    more = extend(two_weeks, WEEKLY, now + 6 * WEEK, now=now + DAY)
    assert two_weeks + more == generate(WEEKLY, now, now + 6 * WEEK)
    assert extend(two_weeks + more, WEEKLY, now + 6 * WEEK, now=now + DAY) == []  # already covered


def test_extend_never_changes_a_reassigned_shift_and_keeps_the_rotation_order() -> None:
    now = utc(2024, 3, 1)
    shifts = generate(WEEKLY, now, now + 2 * WEEK)  # alice, bob, carol
    traded = [*shifts[:1], Shift("dave@example.com", shifts[1].starts_at, shifts[1].ends_at, 1), shifts[2]]
    more = extend(traded, WEEKLY, now + 4 * WEEK, now=now)
    assert more[0].starts_at == traded[-1].ends_at
    assert [s.email for s in more] == ["alice@example.com", "bob@example.com", "carol@example.com"][: len(more)]
    assert traded[1].email == "dave@example.com"  # what was edited stays edited


def test_deleting_future_shifts_and_re_adding() -> None:
    start = utc(2024, 3, 1)
    shifts = generate(WEEKLY, start, start + 4 * WEEK)
    cut = shifts[2].starts_at  # delete every shift from here on
    kept = [s for s in shifts if s.starts_at < cut]
    readded = extend(kept, WEEKLY, start + 4 * WEEK, now=start + DAY)
    assert kept + readded == shifts
    # Re-added later, after the deleted shifts' time has passed: nothing is made for the past.
    later = shifts[3].starts_at + DAY
    readded_late = extend(kept, WEEKLY, later + 2 * WEEK, now=later)
    assert readded_late[0].starts_at == later and readded_late[0].email == shifts[2].email


def test_a_hand_added_shift_is_followed_by_the_line_after_the_last_generated_one() -> None:
    start = utc(2024, 3, 1)
    shifts = generate(WEEKLY, start, start + WEEK)  # alice, bob
    extra = Shift("eve@example.com", shifts[-1].ends_at, shifts[-1].ends_at + DAY)
    more = extend([*shifts, extra], WEEKLY, extra.ends_at + WEEK, now=start)
    assert more[0].starts_at == extra.ends_at and more[0].email == "carol@example.com"


def test_a_shorter_rotation_starts_again_at_its_first_line() -> None:
    start = utc(2024, 3, 1)
    shifts = generate(WEEKLY, start, start + 2 * WEEK)  # ends with carol (position 2)
    shorter = parse("zed@example.com\nyan@example.com")
    assert extend(shifts, shorter, shifts[-1].ends_at + DAY, now=start)[0].email == "zed@example.com"


def test_extend_with_no_shifts_starts_now_and_full_rotation_adds_one_turn_each() -> None:
    now = utc(2024, 3, 1)
    assert extend([], DAY_NIGHT, now + DAY, now=now) == generate(DAY_NIGHT, now, now + DAY)
    first = add_full_rotation([], WEEKDAYS, now=now)
    assert [s.position for s in first] == [0, 1, 2, 3, 4]
    second = add_full_rotation(first, WEEKDAYS, now=now)
    assert first + second == generate(WEEKDAYS, now, second[-1].starts_at + H)


def test_max_shifts_bounds_one_call_and_the_next_top_up_continues() -> None:
    now = utc(2024, 3, 1)
    part = generate(DAY_NIGHT, now, now + 30 * DAY, max_shifts=7)
    assert len(part) == 7
    assert part + extend(part, DAY_NIGHT, now + 30 * DAY, now=now) == generate(DAY_NIGHT, now, now + 30 * DAY)


def test_instants_must_be_aware_and_in_range() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(WEEKLY, datetime(2024, 1, 1), utc(2024, 2, 1))
    with pytest.raises(ValueError, match="year"):
        generate(WEEKLY, utc(2024, 1, 1), datetime(9999, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="first"):
        generate(WEEKLY, utc(2024, 1, 1), utc(2024, 2, 1), first=3)
    with pytest.raises(ValueError, match="timezone-aware"):
        who_is_on_call([], datetime(2024, 1, 1))


# --- who is on call --------------------------------------------------------------------------


def test_who_is_on_call_at_the_handover_is_the_incoming_person() -> None:
    shifts = generate(WEEKLY, utc(2024, 3, 1), utc(2024, 4, 1))
    handover = shifts[1].starts_at
    assert who_is_on_call(shifts, handover).current == shifts[1]
    assert who_is_on_call(shifts, handover - timedelta(microseconds=1)).current == shifts[0]
    assert who_is_on_call(shifts, handover).next == shifts[2]
    assert previous_on_call(shifts, handover) == shifts[0]
    before = who_is_on_call(shifts, utc(2024, 2, 1))
    assert before.current is None and before.next == shifts[0]
    after = who_is_on_call(shifts, utc(2030, 1, 1))
    assert after.current is None and after.next is None
    assert who_is_on_call(list(reversed(shifts)), handover) == who_is_on_call(shifts, handover)  # order-free


def test_overlapping_edited_shifts_the_later_start_wins() -> None:
    base = Shift("a@x.io", utc(2024, 1, 1), utc(2024, 1, 8), 0)
    cover = Shift("b@x.io", utc(2024, 1, 3), utc(2024, 1, 4))  # someone covers a day
    assert on_call_at([base, cover], utc(2024, 1, 3, 12)) == cover
    assert on_call_at([cover, base], utc(2024, 1, 5)) == base


def test_previous_on_call_skips_the_person_on_call_now() -> None:
    rotation = parse("a@x.io\nb@x.io\nb@x.io")
    shifts = generate(rotation, utc(2024, 1, 1), utc(2024, 2, 1))  # a, b, b, a, b
    assert previous_on_call(shifts, shifts[2].starts_at + DAY) == shifts[0]  # b's second week: a was before
    assert previous_on_call(shifts, shifts[0].starts_at + H) is None


# --- properties ------------------------------------------------------------------------------

ZONES = ["PT", "ET", "UTC", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "America/St_Johns"]
moments = st.builds(
    Moment,
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 1, 15, 30, 59]),
    zone=st.sampled_from(ZONES),
    weekday=st.none() | st.integers(0, 6),
)
specs = st.builds(
    ShiftSpec,
    email=st.sampled_from(["a@x.io", "b@x.io", "c@x.io"]),
    until=moments,
    start=st.none() | moments,
)
rotations = st.lists(specs, min_size=1, max_size=6).map(lambda s: Rotation(tuple(s)))
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2032, 1, 1), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(rotations, instants, st.integers(0, 60 * 24 * 40), st.integers(0, 60 * 24 * 40))
def test_property_shifts_are_ordered_disjoint_contiguous_unless_from_and_end_on_their_moment(
    rotation: Rotation, anchor: datetime, minutes: int, more: int
) -> None:
    horizon = anchor + timedelta(minutes=minutes)
    shifts = generate(rotation, anchor, horizon)
    previous_end = anchor
    for shift in shifts:
        assert shift.position is not None
        spec = rotation.specs[shift.position]
        assert anchor <= shift.starts_at < horizon
        assert shift.starts_at.tzinfo is UTC and shift.ends_at.tzinfo is UTC
        assert shift.ends_at > shift.starts_at
        assert shift.starts_at >= previous_end  # ordered, never overlapping
        if spec.start is None:
            assert shift.starts_at == previous_end  # contiguous unless `from`
        else:
            assert shift.starts_at - previous_end < 8 * DAY
            assert _lands_on(spec.start, shift.starts_at)
        assert _lands_on(spec.until, shift.ends_at)
        longest = 7 * DAY if spec.until.weekday is not None else DAY
        assert shift.ends_at - shift.starts_at <= longest + 2 * H  # the first such moment, not a later one
        previous_end = shift.ends_at
    # The schedule covers the horizon: the next shift would start at or after it.
    if shifts:
        assert shifts[0].position == 0
        later = generate(rotation, anchor, horizon + timedelta(minutes=more))
        assert later[: len(shifts)] == shifts
        assert all(s.starts_at >= horizon for s in later[len(shifts) :])
        assert shifts + extend(shifts, rotation, horizon + timedelta(minutes=more), now=anchor) == later
    # Who is on call agrees with the list.
    probe = anchor + timedelta(minutes=minutes // 2)
    current = who_is_on_call(shifts, probe).current
    assert current is None or current.starts_at <= probe < current.ends_at
    if current is None and shifts and shifts[-1].ends_at > probe >= anchor:
        assert any(rotation.specs[s.position].start is not None for s in shifts if s.position is not None)


def _lands_on(moment: Moment, instant: datetime) -> bool:
    """``instant`` is ``moment`` on some local day (a skipped wall time counts as its reading past
    the jump): checked against the wall clock, independently of the generator's search."""
    local = instant.astimezone(moment.tzinfo)
    for day in (local.date() - DAY, local.date(), local.date() + DAY):
        wall = datetime(day.year, day.month, day.day, moment.hour, moment.minute, tzinfo=moment.tzinfo)
        if wall.astimezone(UTC) == instant and (moment.weekday is None or day.weekday() == moment.weekday):
            return True
    return False
