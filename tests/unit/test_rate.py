"""The rate silence model (monitors/rate.py): explicit event times, no clock, no sleeps."""

from __future__ import annotations

import base64
import json
import math
import random
import statistics
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron_common.monitors import rate
from heron_common.monitors.rate import Rate, RateParams, deadline, explain, from_dict, observe, observe_many, to_dict
from tests.unit import rate_reference

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


def same_state(a: Rate, b: Rate, rel: float = 1e-9) -> None:
    """Equal up to float rounding: the same counts, times and rhythm flags; numbers within ``rel``
    (the profile compared as of the last event: it is stored relative to its own reference time)."""
    assert (a.count, a.gaps, a.last_seen, a.first_seen, a.probation) == (
        b.count,
        b.gaps,
        b.last_seen,
        b.first_seen,
        b.probation,
    )
    za, zb = rate._profile_scale(a, P), rate._profile_scale(b, P)
    for name, xs, ys in [
        ("hist", a.hist, b.hist),
        (
            "scalars",
            (a.span, a.b, a.reg_m, a.reg_v, a.cand_m, a.reg_n),
            (b.span, b.b, b.reg_m, b.reg_v, b.cand_m, b.reg_n),
        ),
        (
            "profile",
            tuple(v * za for v in a.hour_c + a.hour_e + a.dow_c + a.dow_e),
            tuple(v * zb for v in b.hour_c + b.hour_e + b.dow_c + b.dow_e),
        ),
    ]:
        top = max((abs(v) for v in xs + ys), default=0.0)
        assert all(abs(x - y) <= rel * max(top, 1.0) for x, y in zip(xs, ys, strict=True)), name
    assert (a.due is None) == (b.due is None)
    if a.due is not None and b.due is not None and a.last_seen is not None:
        assert abs(a.due - b.due) <= rel * 1e3 * max(a.due - a.last_seen, 1.0)


def test_snapshot_is_compact_exact_and_old_versions_read() -> None:
    times = poisson(random.Random(10), 1 / MIN, T0, T0 + DAY)
    state = observe_many(Rate(), times, P)
    snapshot = to_dict(state)
    text = json.dumps(snapshot)
    assert len(text) < 1500  # the unpacked state was ~2.4 KB: arrays packed, empty bins dropped
    assert 0 < len(base64.b64decode(snapshot["hist"])) // 8 < rate.BINS
    back = from_dict(json.loads(text))
    assert back == state  # exact: float64, nothing rounded
    assert to_dict(back) == snapshot
    # The layout before (v2, JSON lists, the profile as of the last event) still reads.
    z = rate._profile_scale(state, P)
    v2 = {k: v for k, v in snapshot.items() if k not in ("hist_at", "profile")}
    v2 |= {"v": 2, "hist": list(state.hist), "profile_at": None}
    v2 |= {k: [v * z for v in getattr(state, k)] for k in ("hour_c", "hour_e", "dow_c", "dow_e")}
    same_state(from_dict(v2), state)
    with pytest.raises(ValueError):
        from_dict({"v": 99})
    for bad in ({"profile": "AAAA"}, {"hist": "not base64!"}, {"hist": 3}, {"hist_at": 60}):
        with pytest.raises(ValueError):
            from_dict({**snapshot, **bad})
    nan = base64.b64encode(struct.pack("<d", math.nan)).decode()
    with pytest.raises(ValueError):
        from_dict({**snapshot, "hist": nan})


def test_a_v1_cadence_snapshot_becomes_a_young_state_and_a_regular_one_keeps_its_rhythm() -> None:
    # A Poisson-like stream (σ ≈ mean): tolerant until events re-teach it, never an early alert.
    v1 = {"v": 1, "count": 40, "last_seen": T0, "intervals": 39, "mean": 300.0, "var": 90000.0, "peak": 900.0}
    migrated = from_dict(v1)
    assert migrated.last_seen == T0 and migrated.count == 40
    due = deadline(migrated, P)
    assert due is not None and due > T0 + 12 * HOUR
    times = poisson(random.Random(13), 1 / (5 * MIN), T0, T0 + DAY)
    state, late = replay_from(migrated, times)
    assert late == [] and allowed(state) < 3 * HOUR  # re-taught within a day of traffic
    # A daily job (σ = 2 min): still held to minutes after its usual time.
    daily = {"v": 1, "count": 30, "last_seen": T0, "intervals": 29, "mean": DAY, "var": 120.0**2, "peak": DAY}
    job = from_dict(daily)
    assert explain(job, T0, P)["model"] == "regular"
    assert DAY < allowed(job) < DAY + HOUR


def replay_from(state: Rate, times: list[float], params: RateParams = P) -> tuple[Rate, list[float]]:
    late = []
    for t in times:
        if rate.is_overdue(state, t, params):
            late.append(t)
        state = observe(state, t, params)
    return state, late


def test_replaying_stored_events_rebuilds_the_same_state() -> None:
    times = poisson(random.Random(11), 1 / (2 * MIN), T0, T0 + 2 * DAY)
    one_by_one = Rate()
    for t in times:
        one_by_one = observe(one_by_one, t, P)
    shuffled = times[:]
    random.Random(12).shuffle(shuffled)
    same_state(observe_many(Rate(), shuffled, P), one_by_one)
    # As the detector keeps it: folded in runs of any size, saved (rounded) and loaded between runs.
    rng, saved, i = random.Random(14), Rate(), 0
    while i < len(times):
        n = rng.choice([1, 1, 2, 7, 50, 300])
        saved = from_dict(json.loads(json.dumps(to_dict(observe_many(saved, times[i : i + n], P)))))
        i += n
    same_state(saved, one_by_one)  # snapshots are exact: only the batch boundaries differ


SCENARIOS = {
    "poisson": lambda rng: poisson(rng, 1 / MIN, T0, T0 + 7 * DAY),
    "cron": lambda rng: [T0 + i * 5 * MIN + rng.uniform(0, 5) for i in range(2000)],
    "bursts": lambda rng: sorted(T0 + h * HOUR + rng.uniform(0, 30) for h in range(100) for _ in range(50)),
    "drop": lambda rng: (
        poisson(rng, 1 / MIN, T0, T0 + 2 * DAY) + poisson(rng, 1 / (10 * MIN), T0 + 2 * DAY, T0 + 5 * DAY)
    ),
    "outages": lambda rng: [
        t
        for t in poisson(rng, 1 / MIN, T0, T0 + 6 * DAY)
        if not any(s <= t < s + 3 * HOUR for s in (T0 + 2 * DAY, T0 + 4 * DAY))
    ],
    "diurnal": lambda rng: [
        t
        for t in poisson(rng, 1 / MIN, T0, T0 + 10 * DAY)
        if rng.random() < (1.0 if 8 <= ((t - T0) % DAY) / HOUR < 20 else 0.02)
    ],
    "rare": lambda rng: poisson(rng, 4 / DAY, T0, T0 + 120 * DAY),
    "daily": lambda rng: [T0 + d * DAY + 2 * HOUR + rng.uniform(-5 * MIN, 5 * MIN) for d in range(40) if d != 30],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_fast_fold_learns_what_the_first_event_by_event_model_learned(scenario: str) -> None:
    """observe_many keeps the decays as running factors and skips the deadline of gaps too short to
    overrun it; the result is the reference model's (tests/unit/rate_reference.py), to rounding."""
    times = SCENARIOS[scenario](random.Random(f"fold/{scenario}"))
    old = rate_reference.Rate()
    for t in times:
        old = rate_reference.observe(old, t, rate_reference.RateParams())
    new = observe_many(Rate(), times, P)
    z = rate._profile_scale(new, P)
    expected = Rate(
        count=old.count,
        last_seen=old.last_seen,
        gaps=old.gaps,
        hist=old.hist,
        span=old.span,
        b=old.b,
        first_seen=old.first_seen,
        hour_c=tuple(v / z for v in old.hour_c),
        hour_e=tuple(v / z for v in old.hour_e),
        dow_c=tuple(v / z for v in old.dow_c),
        dow_e=tuple(v / z for v in old.dow_e),
        reg_n=old.reg_n,
        reg_m=old.reg_m,
        reg_v=old.reg_v,
        probation=old.probation,
        cand_m=old.cand_m,
        due=old.due,
        profile_at=new.profile_at,
    )
    same_state(new, expected, rel=1e-7)


@pytest.mark.parametrize(("period", "jitter"), [(5 * MIN, 5.0), (HOUR, 30.0)])
def test_regular_streams_every_five_minutes_or_hourly_are_held_to_minutes(period: float, jitter: float) -> None:
    rng = random.Random(15)
    times = [T0 + i * period + rng.uniform(0, jitter) for i in range(int(10 * DAY / period))]
    state, late = replay(times)
    assert late == []
    assert period < allowed(state) <= period + 2 * MIN
    why = explain(state, deadline(state, P) or 0.0, P)
    assert why["model"] == "regular" and why["silence_probability"] <= why["threshold"]
    # Without the min_tolerance floor the deadline sits at z = √(2 ln 1/p) (widened Student-style
    # for few gaps): explain undoes the widening and gives the Gaussian tail there, a little under
    # the threshold p (that z is the Chernoff bound's: e^(-z²/2) = p ≥ the tail).
    bare = RateParams(min_tolerance=0.0)
    state = observe_many(Rate(), times, bare)
    why = explain(state, deadline(state, bare) or 0.0, bare)
    tail = 0.5 * math.erfc(math.sqrt(math.log(1 / why["threshold"])))
    assert why["model"] == "regular" and why["silence_probability"] == pytest.approx(tail, rel=1e-6)
    assert why["threshold"] / 20 < why["silence_probability"] < why["threshold"]


def test_day_of_week_a_quiet_weekend_is_normal_a_quiet_weekday_is_not() -> None:
    rng = random.Random(16)

    def weekday(t: float) -> float:
        return 0.1 if int((t - T0) // DAY) % 7 >= 5 else 1.0  # T0 is a Monday

    times = [t for t in poisson(rng, 1 / (2 * MIN), T0, T0 + 35 * DAY) if rng.random() < weekday(t)]
    state, late = Rate(), []
    at: dict[int, list[float]] = {}
    for t in times:
        if rate.is_overdue(state, t, P):
            late.append(t)
        state = observe(state, t, P)
        if t > T0 + 28 * DAY and 10 <= ((t - T0) % DAY) / HOUR < 16:
            at.setdefault(int((t - T0) // DAY) % 7, []).append(allowed(state))  # the deadline after a daytime event
    assert [t for t in late if t > T0 + 14 * DAY] == []  # two weekends teach the weekly profile
    assert statistics.median(at[5]) > 4 * statistics.median(at[2])  # a Saturday is slower; a Wednesday is not
    factors = rate.profile(state, P)["day_of_week"]
    assert min(factors[:5]) > 3 * max(factors[5:])


def test_explain_at_the_deadline_matches_the_alarm_threshold() -> None:
    times = poisson(random.Random(17), 1 / MIN, T0, T0 + 3 * DAY)
    state = observe_many(Rate(), times, P)
    due = deadline(state, P)
    assert due is not None
    why = explain(state, due, P)
    assert why["model"] == "rate" and why["threshold"] == pytest.approx(1 / 525_960, rel=0.2)
    assert why["silence_probability"] == pytest.approx(why["threshold"], rel=1e-6)
    assert why["expected_events"] == pytest.approx(why["expected_arrivals"] * why["events_per_cluster"])
    # Sensitivity moves the threshold, not the probability of the same silence.
    sharp = explain(state, due, P, sensitivity=10.0)
    assert sharp["silence_probability"] == why["silence_probability"] and sharp["threshold"] > why["threshold"]


def test_resuming_after_a_pause_judges_from_then() -> None:
    times = poisson(random.Random(18), 1 / MIN, T0, T0 + DAY)
    state = observe_many(Rate(), times, P)
    resumed = rate.restart(state, T0 + 3 * DAY, P)
    assert resumed.last_seen == T0 + 3 * DAY and resumed.count == state.count
    assert allowed(resumed) == pytest.approx(allowed(state), rel=0.2)
    assert rate.restart(state, T0, P) == state  # never backwards


gaps = st.lists(
    st.one_of(
        st.floats(min_value=0.0, max_value=5.0),  # bursts and duplicates (0)
        st.floats(min_value=0.0, max_value=30 * DAY),  # anything up to a month
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(
    gaps, st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20), st.randoms(use_true_random=False)
)
def test_property_deadline_never_before_last_event_and_state_stays_bounded(
    steps: list[float], runs: list[int], rng: random.Random
) -> None:
    """Whatever the gaps (bursts, duplicates, months), however the events are batched and shuffled
    inside a batch, saved and loaded: no deadline before the last event, and a bounded snapshot."""
    times, t = [], T0
    for gap in steps:
        t += gap
        times.append(t)
    state, i, k = Rate(), 0, 0
    while i < len(times):
        batch = times[i : i + runs[k % len(runs)]]
        rng.shuffle(batch)
        i, k = i + len(batch), k + 1
        before = state.last_seen
        state = observe_many(state, batch, P)
        assert state.last_seen is not None and state.last_seen == max([*batch, before or batch[0]])
        for sensitivity in (0.1, 1.0, 10.0):
            due = deadline(state, P, sensitivity)
            assert due is None or due >= state.last_seen + P.min_tolerance
        snapshot = to_dict(state)
        assert len(json.dumps(snapshot)) < 2500  # bounded: fixed-size arrays, no growth with events
        state = from_dict(json.loads(json.dumps(snapshot)))
        numbers = state.hist + state.hour_c + state.hour_e + state.dow_c + state.dow_e + (state.span, state.b)
        assert all(math.isfinite(v) and v >= 0 for v in numbers)
