"""The escalation plan, pure: who is paged on which channel when, and nothing after acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron_common.oncall.escalation import (
    ESCALATION,
    PREVIOUS,
    PRIMARY,
    REPEAT,
    ROTATION,
    USER,
    Channel,
    Incident,
    Policy,
    Step,
    Strategy,
    plan,
    step_id,
)
from heron_common.oncall.rotation import parse
from heron_common.oncall.shifts import Shift, generate

LA = ZoneInfo("America/Los_Angeles")
M = timedelta(minutes=1)

WEEKLY = parse("alice@x.io, until Mon 9:00am PT\nbob@x.io, until Mon 9:00am PT\ncarol@x.io, until Mon 9:00am PT")
# alice Feb 19–26, bob Feb 26–Mar 4, carol Mar 4–11, alice Mar 11–18 (Mondays 9am PT)
SHIFTS = generate(WEEKLY, datetime(2024, 2, 19, 9, tzinfo=LA), datetime(2024, 5, 1, tzinfo=UTC))
T = datetime(2024, 3, 6, 18, 0, tzinfo=UTC)  # a Wednesday: carol is on call, bob was before her


def two_channels(name: str) -> list[Channel]:
    return [Channel(f"{name}-slack", "slack"), Channel(f"{name}-email", "email", 10 * M)]


CHANNELS = {
    "alice@x.io": two_channels("alice"),
    "bob@x.io": two_channels("bob"),
    "carol@x.io": two_channels("carol"),
    "dave@x.io": two_channels("dave"),
    "boss@x.io": [Channel("boss-email", "email")],
}
LADDER = Policy(
    strategies=(
        Strategy(15 * M, PREVIOUS, key="s1"),
        Strategy(30 * M, ROTATION, key="s2"),
        Strategy(45 * M, USER, user="boss@x.io", key="s3"),
    ),
    repeat_every=5 * M,
)


def run(
    incident: Incident,
    policy: Policy = LADDER,
    *,
    shifts: list[Shift] = SHIFTS,
    until: datetime = T + 50 * M,
    after: datetime | None = None,
) -> list[Step]:
    return plan(incident, policy, shifts=shifts, members=WEEKLY.members, channels=CHANNELS, until=until, after=after)


def table(steps: list[Step], opened: datetime = T) -> list[tuple[int, str, str, str]]:
    return [(int((s.due_at - opened) / M), s.channel, s.reason, s.strategy or f"r{s.round}") for s in steps]


def test_the_ladder_pages_primary_repeats_and_escalates_in_order() -> None:
    assert table(run(Incident("inc-1", T))) == [
        (0, "carol-slack", PRIMARY, "r0"),
        (5, "carol-slack", REPEAT, "r1"),
        (10, "carol-email", PRIMARY, "r0"),  # the backup channel, 10 minutes after the first page
        (10, "carol-slack", REPEAT, "r2"),
        (15, "carol-slack", REPEAT, "r3"),
        (15, "bob-slack", ESCALATION, "s1"),  # the previous on-call after 15 minutes
        (20, "carol-slack", REPEAT, "r4"),
        (25, "carol-slack", REPEAT, "r5"),
        (25, "bob-email", ESCALATION, "s1"),
        (30, "carol-slack", REPEAT, "r6"),
        (30, "alice-slack", ESCALATION, "s2"),  # the entire rotation after 30
        (30, "bob-slack", ESCALATION, "s2"),
        (30, "carol-slack", ESCALATION, "s2"),
        (35, "carol-slack", REPEAT, "r7"),
        (40, "carol-slack", REPEAT, "r8"),
        (40, "alice-email", ESCALATION, "s2"),
        (40, "bob-email", ESCALATION, "s2"),
        (40, "carol-email", ESCALATION, "s2"),
        (45, "carol-slack", REPEAT, "r9"),
        (45, "boss-email", ESCALATION, "s3"),  # the named user after 45
        (50, "carol-slack", REPEAT, "r10"),
    ]


def test_acknowledging_stops_every_further_page() -> None:
    acked = run(Incident("inc-1", T, acknowledged_at=T + 22 * M))
    assert table(acked) == [
        (0, "carol-slack", PRIMARY, "r0"),
        (5, "carol-slack", REPEAT, "r1"),
        (10, "carol-email", PRIMARY, "r0"),
        (10, "carol-slack", REPEAT, "r2"),
        (15, "carol-slack", REPEAT, "r3"),
        (15, "bob-slack", ESCALATION, "s1"),
        (20, "carol-slack", REPEAT, "r4"),
    ]
    assert all(
        s.due_at < T + 22 * M for s in run(Incident("inc-1", T, acknowledged_at=T + 22 * M), until=T + 30 * 24 * 60 * M)
    )
    # The steps before the acknowledgement are the very steps (same ids) of the unacknowledged plan.
    assert acked == [s for s in run(Incident("inc-1", T)) if s.due_at < T + 22 * M]
    # Acknowledged at the opening: nothing at all; a step due exactly at the acknowledgement is not sent.
    assert run(Incident("inc-1", T, acknowledged_at=T)) == []
    assert [s.due_at for s in run(Incident("inc-1", T, acknowledged_at=T + 5 * M))] == [T]


def test_resolving_stops_too_and_the_earlier_of_the_two_counts() -> None:
    resolved = run(Incident("inc-1", T, resolved_at=T + 12 * M))
    assert max(s.due_at for s in resolved) == T + 10 * M
    both = run(Incident("inc-1", T, acknowledged_at=T + 40 * M, resolved_at=T + 12 * M))
    assert both == resolved


def test_a_trigger_that_does_not_escalate_pages_the_primary_only() -> None:
    steps = run(Incident("inc-1", T, escalate=False))
    assert {s.email for s in steps} == {"carol@x.io"} and {s.reason for s in steps} == {PRIMARY, REPEAT}
    assert [s for s in run(Incident("inc-1", T)) if s.reason != ESCALATION] == steps


def test_without_a_repeat_interval_the_primary_is_paged_once_on_every_channel() -> None:
    once = run(Incident("inc-1", T), Policy(strategies=LADDER.strategies))
    assert [row for row in table(once) if row[3] == "r0"] == [
        (0, "carol-slack", PRIMARY, "r0"),
        (10, "carol-email", PRIMARY, "r0"),
    ]
    assert not [s for s in once if s.reason == REPEAT]


def test_a_handover_during_the_incident_pages_the_new_primary_on_every_channel() -> None:
    handover = datetime(2024, 3, 11, 16, 0, tzinfo=UTC)  # Mon 9am PDT: carol → alice
    opened = handover - 10 * M
    steps = run(Incident("inc-2", opened), Policy(repeat_every=5 * M), until=opened + 25 * M)
    assert table(steps, opened) == [
        (0, "carol-slack", PRIMARY, "r0"),
        (5, "carol-slack", REPEAT, "r1"),
        (10, "carol-email", PRIMARY, "r0"),
        (10, "alice-slack", PRIMARY, "r2"),  # alice takes over: a new primary, paged in full
        (15, "alice-slack", REPEAT, "r3"),
        (20, "alice-email", PRIMARY, "r2"),
        (20, "alice-slack", REPEAT, "r4"),
        (25, "alice-slack", REPEAT, "r5"),
    ]


def test_reassigning_a_shift_changes_who_is_paged() -> None:
    traded = [Shift("dave@x.io", s.starts_at, s.ends_at, s.position) if s.email == "carol@x.io" else s for s in SHIFTS]
    steps = run(Incident("inc-1", T), Policy(repeat_every=5 * M), shifts=traded, until=T + 5 * M)
    assert [(s.email, s.channel) for s in steps] == [("dave@x.io", "dave-slack"), ("dave@x.io", "dave-slack")]


def test_in_a_gap_nobody_is_paged_as_primary_but_the_ladder_runs() -> None:
    weekdays = parse(
        "\n".join(
            f"{who}@x.io, from {day} 9:00am PT until {day} 5:00pm PT"
            for who, day in (("mo", "Mon"), ("tu", "Tue"), ("we", "Wed"), ("th", "Thu"), ("fr", "Fri"))
        )
    )
    shifts = generate(weekdays, datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 20, tzinfo=UTC))
    channels = {f"{who}@x.io": [Channel(f"{who}-slack", "slack")] for who in ("mo", "tu", "we", "th", "fr")}
    channels["boss@x.io"] = [Channel("boss-email", "email")]
    saturday = datetime(2024, 3, 9, 12, 0, tzinfo=LA)

    def steps(until: datetime, after: datetime | None = None) -> list[Step]:
        incident = Incident("inc-3", saturday)
        people = weekdays.members
        return plan(incident, LADDER, shifts=shifts, members=people, channels=channels, until=until, after=after)

    weekend = steps(until=saturday + 50 * M)
    assert [s for s in weekend if s.reason != ESCALATION] == []  # nobody on call: no primary page
    assert [(int((s.due_at - saturday) / M), s.channel) for s in weekend] == [
        (15, "fr-slack"),  # "previous": the last one who was on call (Friday's)
        (30, "mo-slack"),
        (30, "tu-slack"),
        (30, "we-slack"),
        (30, "th-slack"),
        (30, "fr-slack"),
        (45, "boss-email"),
    ]
    # Monday 9am PDT the gap ends: the round due then pages Monday's person, in full.
    monday = datetime(2024, 3, 11, 9, 0, tzinfo=LA)
    assert [(s.due_at, s.channel, s.reason) for s in steps(after=monday - M, until=monday + 5 * M)] == [
        (monday, "mo-slack", PRIMARY),
        (monday + 5 * M, "mo-slack", REPEAT),
    ]


def test_a_person_without_channels_gets_no_step_and_the_primary_channel_is_the_quickest() -> None:
    channels = {"carol@x.io": [Channel("carol-email", "email", 10 * M), Channel("carol-sms", "webhook", 2 * M)]}
    steps = plan(
        Incident("inc-1", T), LADDER, shifts=SHIFTS, members=WEEKLY.members, channels=channels, until=T + 15 * M
    )
    assert table(steps) == [
        (2, "carol-sms", PRIMARY, "r0"),
        (7, "carol-sms", REPEAT, "r1"),  # repeats go to the channel with the smallest delay, after it
        (10, "carol-email", PRIMARY, "r0"),
        (12, "carol-sms", REPEAT, "r2"),
    ]  # bob (previous, at 15) has no channels: no step


# --- ids and windows -------------------------------------------------------------------------


def test_step_ids_are_deterministic_unique_and_stable_across_windows() -> None:
    incident = Incident(42, T)
    full = run(incident)
    assert run(incident) == full
    assert len({s.id for s in full}) == len(full)
    assert run(incident, until=T + 20 * M) == [s for s in full if s.due_at <= T + 20 * M]
    assert run(incident, after=T + 20 * M) == [s for s in full if s.due_at > T + 20 * M]
    assert (
        full[0].id
        == step_id(42, "page:0", "carol@x.io", "carol-slack")
        == step_id("42", "page:0", "carol@x.io", "carol-slack")
    )
    assert {s.id for s in run(Incident(43, T))}.isdisjoint(s.id for s in full)
    # A strategy without a key is known by its position.
    unkeyed = Policy(strategies=(Strategy(15 * M, PREVIOUS),))
    (step,) = [s for s in run(incident, unkeyed) if s.reason == ESCALATION and s.channel == "bob-slack"]
    assert step.strategy == "0" and step.id == step_id(42, "escalation:0", "bob@x.io", "bob-slack")


def test_a_window_long_after_the_opening_gives_the_same_steps_as_the_whole_plan() -> None:
    month = 30 * 24 * 60 * M  # Apr 5: alice's week again
    incident = Incident("old", T)
    window = run(incident, after=T + month, until=T + month + 10 * M)
    assert [(s.due_at - T - month, s.channel, s.reason, s.round) for s in window] == [
        (5 * M, "alice-slack", REPEAT, 8641),
        (10 * M, "alice-slack", REPEAT, 8642),
    ]
    assert window == [s for s in run(incident, until=T + month + 10 * M) if s.due_at > T + month]


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="target"):
        Strategy(M, "everyone")
    with pytest.raises(ValueError, match="names its user"):
        Strategy(M, USER)
    with pytest.raises(ValueError, match="names its user"):
        Strategy(M, ROTATION, user="x@y")
    with pytest.raises(ValueError, match="delay"):
        Strategy(-M, PREVIOUS)
    with pytest.raises(ValueError, match="delay"):
        Channel("c", "email", -M)
    with pytest.raises(ValueError, match="repeat_every"):
        Policy(repeat_every=timedelta(0))
    with pytest.raises(ValueError, match="repeat_every"):
        Policy(repeat_every=timedelta(seconds=-5))
    assert Policy(repeat_every=timedelta(seconds=5)).repeat_every == timedelta(seconds=5)  # the API sets the floor
    with pytest.raises(ValueError, match="timezone-aware"):
        run(Incident("x", datetime(2024, 1, 1)))


# --- properties ------------------------------------------------------------------------------

minutes = st.integers(0, 180).map(lambda n: n * M)
policies = st.builds(
    Policy,
    strategies=st.lists(
        st.one_of(
            st.builds(Strategy, minutes, st.just(PREVIOUS)),
            st.builds(Strategy, minutes, st.just(ROTATION)),
            st.builds(Strategy, minutes, st.just(USER), st.just("boss@x.io")),
        ),
        max_size=4,
    ).map(tuple),
    repeat_every=st.none() | st.integers(1, 60).map(lambda n: n * M),
)
opened_at = st.integers(0, 40 * 24 * 60).map(lambda n: datetime(2024, 2, 19, tzinfo=UTC) + n * M)


@settings(max_examples=150, deadline=None)
@given(policies, opened_at, st.none() | minutes, st.none() | minutes, minutes, minutes, st.booleans())
def test_property_windows_compose_nothing_after_the_stop_ids_unique_and_ordered(
    policy: Policy,
    opened: datetime,
    ack: timedelta | None,
    resolve: timedelta | None,
    first: timedelta,
    second: timedelta,
    escalate: bool,
) -> None:
    incident = Incident(
        "p",
        opened,
        acknowledged_at=opened + ack if ack is not None else None,
        resolved_at=opened + resolve if resolve is not None else None,
        escalate=escalate,
    )
    middle, end = opened + first, opened + first + second

    def steps(until: datetime, after: datetime | None = None) -> list[Step]:
        people = WEEKLY.members
        return plan(incident, policy, shifts=SHIFTS, members=people, channels=CHANNELS, until=until, after=after)

    whole = steps(until=end)
    assert steps(until=middle) + steps(after=middle, until=end) == whole
    assert len({s.id for s in whole}) == len(whole)
    assert [s.due_at for s in whole] == sorted(s.due_at for s in whole)
    assert all(opened <= s.due_at <= end for s in whole)
    if incident.stops_at is not None:
        assert all(s.due_at < incident.stops_at for s in whole)
    if not escalate:
        assert all(s.reason != ESCALATION for s in whole)
