"""Cadence model: learned deadlines for event streams. Pure functions, frozen times, no sleeps."""

from __future__ import annotations

import json
import math
import random

import pytest

from heron_common.monitors.cadence import (
    Cadence,
    CadenceParams,
    deadline,
    event_time,
    expected_interval,
    from_dict,
    is_learning,
    is_overdue,
    observe,
    observe_many,
    to_dict,
    tolerance,
)

PROD = CadenceParams()
T0 = 1_700_000_000.0  # realistic unix seconds, so float precision is exercised as in production
MIN = 60.0
HOUR = 3600.0
DAY = 86400.0


def replay(times: list[float], params: CadenceParams) -> tuple[Cadence, list[float]]:
    """Feed events one by one; return the final state and the times of events that arrived after the
    deadline in force at the time (i.e. the detector would have alerted while waiting for them)."""
    state = Cadence()
    late = []
    for t in times:
        if is_overdue(state, t, params):
            late.append(t)
        state = observe(state, t, params)
    return state, late


def every(period: float, n: int, start: float = T0) -> list[float]:
    return [start + i * period for i in range(n)]


def since_last(state: Cadence, params: CadenceParams) -> float:
    """Deadline expressed as seconds after the newest event."""
    due = deadline(state, params)
    assert due is not None and state.last_seen is not None
    return due - state.last_seen


# --- regular, jittery, Poisson-like and bursty streams -------------------------------------------


def test_five_minute_cron_gets_the_relative_floor_of_tolerance() -> None:
    state, late = replay(every(5 * MIN, 100), PROD)
    assert late == []
    assert expected_interval(state) == pytest.approx(300.0)
    assert tolerance(state, PROD) == pytest.approx(75.0)  # σ = 0: 25 % of the mean, above the 60 s floor
    last = state.last_seen
    assert last is not None
    assert not is_overdue(state, last + 5 * MIN + 30, PROD)
    assert is_overdue(state, last + 7 * MIN, PROD)


def test_demo_scale_stream_every_200ms_with_half_second_floor() -> None:
    demo = CadenceParams(min_tolerance=0.5)
    state, late = replay(every(0.2, 50), demo)
    assert late == []
    assert since_last(state, demo) == pytest.approx(0.7)  # 0.2 s expected + 0.5 s floor
    last = state.last_seen
    assert last is not None
    assert not is_overdue(state, last + 0.6, demo)
    assert is_overdue(state, last + 0.8, demo)


def test_jittery_stream_uses_its_spread_and_never_false_alerts() -> None:
    params = CadenceParams(min_tolerance=1.0)
    rng = random.Random(42)
    times = [T0]
    for _ in range(2000):
        times.append(times[-1] + rng.uniform(50.0, 70.0))
    state, late = replay(times, params)
    assert late == []
    regular, _ = replay(every(60.0, 2000), params)
    # Same mean, but the jitter earns a wider tolerance than a metronome.
    assert expected_interval(state) == pytest.approx(60.0, abs=2.0)
    tol, regular_tol = tolerance(state, params), tolerance(regular, params)
    assert tol is not None and regular_tol is not None
    assert tol > regular_tol + 5.0
    # ...and it is still tight: silence for two minutes is caught.
    assert state.last_seen is not None
    assert is_overdue(state, state.last_seen + 2 * MIN, params)


def test_poisson_stream_gets_mean_plus_four_sigma_not_a_cron_tolerance() -> None:
    rng = random.Random(7)
    times = [T0]
    for _ in range(3000):
        times.append(times[-1] + rng.expovariate(1 / 300.0))
    state, late = replay(times, PROD)
    sigma = math.sqrt(state.var)
    assert sigma == pytest.approx(state.mean, rel=0.35)  # exponential gaps: σ ≈ mean
    assert since_last(state, PROD) >= state.mean + 4 * sigma - 1e-6
    assert since_last(state, PROD) >= 20 * MIN  # vs 6.25 min for a cron with the same mean
    last = state.last_seen
    assert last is not None
    assert not is_overdue(state, last + 15 * MIN, PROD)
    assert is_overdue(state, last + 1 * HOUR, PROD)
    # A memoryless stream has no silence that is impossible; k = 4 keeps false alerts rare.
    assert len(late) < 0.015 * len(times)


def bursts(n: int, size: int = 20, spacing: float = 1.0, period: float = MIN) -> list[float]:
    return [T0 + b * period + i * spacing for b in range(n) for i in range(size)]


def test_bursty_stream_does_not_alert_between_bursts() -> None:
    # Bursts of 20 events 1 s apart about every minute: 19 gaps of 1 s, then ~41 s of quiet. Demo
    # scale, so the 0.5 s floor cannot hide the quiet gap; learning spans one full cycle (see below).
    demo = CadenceParams(min_tolerance=0.5, learning_threshold=21)
    rng = random.Random(3)
    starts = [T0 + b * MIN + rng.uniform(-3.0, 3.0) for b in range(300)]  # quiet gaps of 35 s to 47 s
    times = [start + i for start in starts for i in range(20)]
    state, late = replay(times, demo)
    assert late == []
    k_sigma_bound = state.mean + demo.sigma_multiplier * math.sqrt(state.var)
    # mean + kσ alone would expire in the quiet gap; the remembered peak (+ slack) keeps it past it.
    assert k_sigma_bound < 35.0
    assert since_last(state, demo) > 47.0


def test_bursty_stream_met_cold_adapts_after_a_bounded_number_of_incidents() -> None:
    # Tiny floor, and learning ends inside the first burst: the first quiet gap looks like an outage.
    demo = CadenceParams(min_tolerance=0.5)
    times = bursts(100)
    state, late = replay(times, demo)
    assert late, "the first quiet gaps are flagged: nothing in the first burst announced them"
    assert len(late) <= 20
    assert max(late) < times[40 * 20]  # all incidents in the first 40 bursts, none afterwards
    assert since_last(state, demo) > 41.0


def test_remembered_peak_fades_when_a_stream_speeds_up() -> None:
    hourly = every(HOUR, 100)
    state = observe_many(Cadence(), hourly, PROD)
    assert since_last(state, PROD) == pytest.approx(1.25 * HOUR)
    assert state.last_seen is not None
    state = observe_many(state, every(MIN, 7 * 24 * 60, start=state.last_seen + MIN), PROD)
    # After a week of one event per minute, the hour-long peak has faded to the minute floor.
    assert since_last(state, PROD) == pytest.approx(MIN + 60.0, abs=1.0)


# --- learning phase ------------------------------------------------------------------------------


def test_no_deadline_before_three_occurrences() -> None:
    state = Cadence()
    for t in (T0, T0 + 300):
        state = observe(state, t, PROD)
        assert deadline(state, PROD) is None
        assert is_learning(state, PROD)
        assert not is_overdue(state, T0 + 10 * DAY, PROD)
    state = observe(state, T0 + 600, PROD)
    assert not is_learning(state, PROD)
    assert deadline(state, PROD) == pytest.approx(T0 + 600 + 375)


def test_custom_learning_threshold() -> None:
    params = CadenceParams(learning_threshold=5)
    state = Cadence()
    for i in range(4):
        state = observe(state, T0 + i * 10.0, params)
        assert deadline(state, params) is None
    state = observe(state, T0 + 40.0, params)
    assert deadline(state, params) is not None


def test_duplicates_do_not_end_learning() -> None:
    # A retried delivery is the same occurrence: three copies of one event are not three occurrences.
    state = observe_many(Cadence(), [T0, T0, T0, T0 + 300, T0 + 300], PROD)
    assert state.count == 5
    assert state.intervals == 1
    assert deadline(state, PROD) is None


def test_empty_state_has_nothing() -> None:
    state = Cadence()
    assert deadline(state, PROD) is None
    assert tolerance(state, PROD) is None
    assert expected_interval(state) is None
    assert not is_overdue(state, T0, PROD)


# --- duplicates, out-of-order, outages -----------------------------------------------------------


def test_duplicates_and_late_events_neither_move_last_seen_nor_teach() -> None:
    state = observe_many(Cadence(), every(300.0, 10), PROD)
    before = deadline(state, PROD)
    last = state.last_seen
    assert last is not None
    for t in (last, last - 1.0, last - 250.0, T0, last):  # duplicate, late, very late, first, dup
        state = observe(state, t, PROD)
    assert state.last_seen == last
    assert state.count == 15
    assert state.intervals == 9
    assert expected_interval(state) == pytest.approx(300.0)
    assert deadline(state, PROD) == before


def test_observe_many_sorts_a_batch_and_equals_in_order_observation() -> None:
    times = every(300.0, 10)
    shuffled = times[:]
    random.Random(1).shuffle(shuffled)
    in_order = Cadence()
    for t in times:
        in_order = observe(in_order, t, PROD)
    assert observe_many(Cadence(), shuffled, PROD) == in_order


def test_outage_gap_is_not_learned() -> None:
    state = observe_many(Cadence(), every(300.0, 300), PROD)
    assert state.last_seen is not None
    before = since_last(state, PROD)
    back = state.last_seen + 2 * HOUR
    assert is_overdue(state, back, PROD)

    after = observe(state, back, PROD)
    # What learning the raw gap would do: with a huge floor the 2 h gap is within the deadline.
    naive_params = CadenceParams(min_tolerance=1e9)
    naive = observe(state, back, naive_params)

    assert expected_interval(after) == pytest.approx(303.75)  # the allowed 375 s, not 7200 s, was folded
    naive_mean = expected_interval(naive)
    assert naive_mean is not None and naive_mean > 600.0
    # One slack step wider at most (the peak remembers the allowed gap), nowhere near two hours.
    assert before < since_last(after, PROD) <= 1.25 * before + 1e-6
    assert naive.mean + 4 * math.sqrt(naive.var) > 1.5 * HOUR
    assert after.last_seen == back

    # ...and that one step fades: after a day of normal traffic the cron is back to 6.25 min.
    recovered = observe_many(after, every(300.0, 288, start=back + 300), PROD)
    assert since_last(recovered, PROD) == pytest.approx(before, abs=0.1)


def test_permanent_slowdown_adapts_over_successive_incidents() -> None:
    fast = every(300.0, 300)
    slow = every(600.0, 200, start=fast[-1] + 600)
    state, late = replay(fast + slow, PROD)
    assert 1 <= len(late) <= 5
    assert all(t < slow[10] for t in late)  # adapted within the first few slow gaps
    assert since_last(state, PROD) == pytest.approx(750.0, rel=0.01)  # the new cron's 10 min + 25 %


# --- overdue, serialisation, event time, params --------------------------------------------------


def test_is_overdue_is_strictly_after_the_deadline() -> None:
    state = observe_many(Cadence(), every(300.0, 5), PROD)
    due = deadline(state, PROD)
    assert due is not None
    assert not is_overdue(state, due, PROD)
    assert is_overdue(state, due + 0.001, PROD)


def test_snapshot_round_trips_through_json() -> None:
    state = observe_many(Cadence(), [*bursts(5), T0 - 5.0], PROD)
    snap = to_dict(state)
    assert all(v is None or type(v) in (int, float) for v in snap.values())
    assert from_dict(json.loads(json.dumps(snap))) == state
    assert from_dict(json.loads(json.dumps(to_dict(Cadence())))) == Cadence()


def test_snapshot_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError):
        from_dict({**to_dict(Cadence()), "v": 999})


@pytest.mark.parametrize(
    ("client_ts", "expected"),
    [
        (None, 10_000.0),  # no client time: receive time
        (9_000.0, 9_000.0),  # plausible: trusted
        (10_000.0, 10_000.0),
        (10_500.0, 10_000.0),  # from the future: clamped to receive time
        (1_000.0, 6_400.0),  # older than an hour: clamped to receive time - 1 h
        (float("nan"), 10_000.0),
        (float("inf"), 10_000.0),
        (float("-inf"), 10_000.0),
    ],
)
def test_event_time_clamps_client_timestamp(client_ts: float | None, expected: float) -> None:
    assert event_time(client_ts, 10_000.0) == expected


def test_event_time_custom_skew() -> None:
    assert event_time(1_000.0, 10_000.0, max_skew=60.0) == 9_940.0


def test_observe_rejects_non_finite_times() -> None:
    with pytest.raises(ValueError):
        observe(Cadence(), float("nan"), PROD)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_threshold": 0},
        {"alpha_floor": 0.0},
        {"alpha_floor": 1.5},
        {"peak_half_life": 0.0},
        {"min_tolerance": -1.0},
        {"sigma_multiplier": -1.0},
    ],
)
def test_nonsense_params_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CadenceParams(**kwargs)


# --- properties over random messy streams --------------------------------------------------------


@pytest.mark.parametrize("seed", range(50))
def test_invariants_on_random_streams_with_duplicates_and_reordering(seed: int) -> None:
    rng = random.Random(seed)
    params = CadenceParams(min_tolerance=rng.choice([0.0, 0.5, 60.0]), learning_threshold=rng.randint(1, 5))
    t = T0
    state = Cadence()
    newest = -math.inf
    learned = 0
    for i in range(300):
        roll = rng.random()
        if roll < 0.1 and i:
            x = newest  # duplicate
        elif roll < 0.2 and i:
            x = newest - rng.uniform(0, 1000)  # late
        else:
            t += rng.choice([rng.expovariate(1 / 30), 0.001, 5000.0])
            x = t
        learned += x > newest and newest != -math.inf
        newest = max(newest, x)
        previous = state.last_seen
        state = observe(state, x, params)
        assert state.last_seen == newest
        assert previous is None or state.last_seen >= previous
        assert state.count == i + 1
        assert state.intervals == learned
        assert state.var >= 0.0
        due = deadline(state, params)
        if due is not None:
            assert due > state.last_seen
            assert due >= state.last_seen + state.mean
