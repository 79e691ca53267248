"""The rate silence model (monitors/rate.py): explicit event times, no clock, no sleeps."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron_common.monitors import rate
from heron_common.monitors.rate import Rate, RateParams, deadline, explain, from_dict, observe, observe_many, to_dict

P = RateParams()
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


def replay(times: list[float], params: RateParams = P) -> tuple[Rate, list[float]]:
    """Observe in order; also return the events that arrived past the deadline in force (alerts)."""
    state, late = Rate(), []
    for t in times:
        if rate.is_overdue(state, t, params):
            late.append(t)
        state = observe(state, t, params)
    return state, late


def poisson(rng: random.Random, per_second: float, start: float, end: float) -> list[float]:
    out, t = [], start
    while (t := t + rng.expovariate(per_second)) < end:
        out.append(t)
    return out


def allowed(state: Rate, params: RateParams = P, sensitivity: float = 1.0) -> float:
    due = deadline(state, params, sensitivity)
    assert due is not None and state.last_seen is not None
    return due - state.last_seen


def test_learning_then_a_young_stream_is_tolerant_and_tightens_with_evidence() -> None:
    times = poisson(random.Random(1), 1 / MIN, T0, T0 + 2 * DAY)
    assert deadline(observe_many(Rate(), times[:2], P), P) is None  # learning_threshold = 3
    young = allowed(observe_many(Rate(), times[:10], P))
    old = allowed(observe_many(Rate(), times, P))
    assert young > 3 * old
    # Calibrated: ~1 false alarm a year at ~525,600 gaps a year: P(gap > d) = e^(-d/60) = 1/525,600,
    # d = 13.2 min; the hour-of-day profile learned from two days of a flat stream adds noise (± 35 %).
    assert old == pytest.approx(-math.log(1 / 525_600) * MIN, rel=0.35)


def test_poisson_stream_two_weeks_no_false_alarm_and_an_outage_is_caught() -> None:
    times = poisson(random.Random(2), 1 / (5 * MIN), T0, T0 + 14 * DAY)
    state, late = replay(times)
    assert late == []
    due = deadline(state, P)
    assert due is not None and state.last_seen is not None
    assert due - state.last_seen < 2 * HOUR  # a 5-minute stream is missed after about an hour, not a day


def test_budget_and_sensitivity_move_the_deadline() -> None:
    times = poisson(random.Random(3), 1 / MIN, T0, T0 + DAY)
    state = observe_many(Rate(), times, P)
    assert allowed(state, P, sensitivity=10.0) < allowed(state, P) < allowed(state, P, sensitivity=0.1)
    lax = RateParams(false_alarms_per_year=0.01)
    assert allowed(observe_many(Rate(), times, lax), lax) > allowed(state, P)


def test_cron_every_five_minutes_is_held_to_a_tight_window() -> None:
    rng = random.Random(4)
    times = [T0 + i * 5 * MIN + rng.uniform(0, 5) for i in range(300)]
    state, late = replay(times)
    assert late == []
    assert 5 * MIN < allowed(state) <= 5 * MIN + 90  # the 60-s floor, not an hour
    assert explain(state, times[-1], P)["model"] == "regular"


def test_a_skipped_daily_job_is_reported_within_the_hour_of_its_usual_time() -> None:
    rng = random.Random(5)
    runs = [T0 + d * DAY + 2 * HOUR + rng.uniform(-5 * MIN, 5 * MIN) for d in range(14)]
    state, late = replay(runs)
    assert late == []
    due = deadline(state, P)
    assert due is not None
    assert runs[-1] + DAY < due < T0 + 14 * DAY + 3 * HOUR  # next run due at 02:00 ± 5 min
    # After the skipped run, the next one confirms the rhythm: tight again.
    state = observe(state, runs[-1] + 2 * DAY, P)
    state = observe(state, runs[-1] + 3 * DAY, P)
    assert allowed(state) < DAY + HOUR


def test_hourly_bursts_learn_the_gap_between_bursts() -> None:
    rng = random.Random(6)
    times = [T0 + h * HOUR + rng.uniform(0, 30) for h in range(48) for _ in range(50)]
    state, late = replay(sorted(times))
    assert late == []  # met cold: the first quiet hour does not alert either
    assert HOUR < allowed(state) < 2 * HOUR


def test_time_of_day_a_quiet_night_is_normal_a_quiet_afternoon_is_not() -> None:
    rng = random.Random(7)

    def busy(t: float) -> float:
        return 1.0 if 8 <= ((t - T0) % DAY) / HOUR < 20 else 0.02

    times = [t for t in poisson(rng, 1 / MIN, T0, T0 + 21 * DAY) if rng.random() < busy(t)]
    state, late, at = Rate(), [], {}
    for t in times:
        if rate.is_overdue(state, t, P):
            late.append(t)
        state = observe(state, t, P)
        hour = int(((t - T0) % DAY) // HOUR)
        if t > T0 + 20 * DAY and hour in (15, 23):
            at[hour] = allowed(state)  # the deadline after the day's last event in that hour
    assert [t for t in late if t > T0 + 2 * DAY] == []  # the first night or two teach the profile
    assert at[15] < HOUR  # a quiet afternoon is noticed within the hour
    assert at[23] > 4 * at[15]  # the night is given its own, slower rate


def test_a_lasting_rate_drop_raises_at_most_one_alert() -> None:
    rng = random.Random(8)
    times = poisson(rng, 1 / MIN, T0, T0 + 3 * DAY) + poisson(rng, 1 / (10 * MIN), T0 + 3 * DAY, T0 + 10 * DAY)
    state, late = replay(times)
    assert len([t for t in late if t >= T0 + 3 * DAY]) <= 1
    assert allowed(state) > 40 * MIN  # re-learned: about 10 min per event now


def test_explain_says_what_was_expected_and_how_improbable_the_silence_is() -> None:
    times = poisson(random.Random(9), 1 / MIN, T0, T0 + DAY)
    state = observe_many(Rate(), times, P)
    last = times[-1]
    soon, later = explain(state, last + 5 * MIN, P), explain(state, last + HOUR, P)
    assert soon["deadline"] == deadline(state, P)
    assert soon["quiet_for"] == pytest.approx(5 * MIN)
    assert soon["expected_interval"] == pytest.approx(MIN, rel=0.2)
    assert later["expected_arrivals"] == pytest.approx(60, rel=0.25)
    assert later["silence_probability"] < 1e-15 < soon["silence_probability"] < 0.05
    assert soon["model"] == "rate"


def test_duplicates_and_late_events_are_counted_and_teach_nothing() -> None:
    state = observe_many(Rate(), [T0, T0 + 60, T0 + 120, T0 + 180], P)
    again = observe(observe(state, T0 + 180, P), T0 + 30, P)
    assert again.count == state.count + 2
    assert to_dict(again) | {"count": 0} == to_dict(state) | {"count": 0}


def test_snapshot_round_trips_through_json_and_old_versions_migrate() -> None:
    times = poisson(random.Random(10), 1 / MIN, T0, T0 + DAY)
    state = observe_many(Rate(), times, P)
    assert from_dict(json.loads(json.dumps(to_dict(state)))) == state
    v1 = {"v": 1, "count": 40, "last_seen": T0, "intervals": 39, "mean": 300.0, "var": 10.0, "peak": 310.0}
    migrated = from_dict(v1)
    assert migrated.last_seen == T0 and migrated.count == 40
    assert deadline(migrated, P) is not None and deadline(migrated, P) > T0 + 300  # type: ignore[operator]
    with pytest.raises(ValueError):
        from_dict({"v": 99})


def test_replaying_stored_events_rebuilds_the_same_state() -> None:
    times = poisson(random.Random(11), 1 / (2 * MIN), T0, T0 + 2 * DAY)
    one_by_one = Rate()
    for t in times:
        one_by_one = observe(one_by_one, t, P)
    shuffled = times[:]
    random.Random(12).shuffle(shuffled)
    assert observe_many(Rate(), shuffled, P) == one_by_one


gaps = st.lists(
    st.one_of(
        st.floats(min_value=0.0, max_value=5.0),  # bursts and duplicates (0)
        st.floats(min_value=0.0, max_value=30 * DAY),  # anything up to a month
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(gaps)
def test_property_deadline_never_before_last_event_and_state_stays_bounded(steps: list[float]) -> None:
    state, t = Rate(), T0
    for gap in steps:
        t += gap
        state = observe(state, t, P)
        due = deadline(state, P)
        assert state.last_seen is not None
        assert due is None or due >= state.last_seen
        snapshot = to_dict(state)
        assert len(json.dumps(snapshot)) < 8000  # bounded: fixed-size arrays, no growth with events
        assert all(math.isfinite(v) for v in state.hist + state.hour_e + state.dow_e + (state.span, state.b))
