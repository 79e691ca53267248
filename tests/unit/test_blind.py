"""The blind-window rule: Heron's own outages never page, real silences are still caught."""

from __future__ import annotations

import pytest

from heron_common.blind import deadline_past_windows


def test_no_windows_leaves_the_deadline_alone() -> None:
    assert deadline_past_windows(0.0, 300.0, 360.0, []) == 360.0


def test_a_window_far_from_the_expected_arrival_changes_nothing() -> None:
    # A daily job due at 02:00 (tolerance 10 min), broker blip at 01:00: still late at 02:10.
    day, two_am = 86400.0, 7200.0
    last = two_am - day
    deadline = two_am + 600.0
    blip = (3600.0, 3605.0)
    assert deadline_past_windows(last, day, deadline, [blip]) == deadline


def test_a_window_over_the_expected_arrival_judges_the_next_one() -> None:
    # Every 5 min with 1 min tolerance; the ping at 300 fell into a broker restart (299..301).
    assert deadline_past_windows(0.0, 300.0, 360.0, [(299.0, 301.0)]) == 660.0


def test_a_daily_ping_lost_in_an_outage_is_judged_tomorrow() -> None:
    day, two_am = 86400.0, 7200.0
    deadline = two_am + 600.0
    got = deadline_past_windows(two_am - day, day, deadline, [(two_am - 5.0, two_am + 5.0)])
    assert got == deadline + day


def test_a_long_outage_gives_an_irregular_stream_its_tolerance_after_recovery() -> None:
    # Mean gap 180 s, allowed silence 900 s, Heron blind for 20 minutes from 60 s after the last event.
    last, window = 1000.0, (1060.0, 2260.0)
    got = deadline_past_windows(last, 180.0, last + 900.0, [window])
    assert got >= window[1] + (900.0 - 180.0)


def test_windows_before_the_last_event_do_not_matter() -> None:
    assert deadline_past_windows(1000.0, 60.0, 1080.0, [(900.0, 999.0)]) == 1080.0


def test_consecutive_windows_are_all_stepped_over() -> None:
    got = deadline_past_windows(0.0, 100.0, 120.0, [(90.0, 110.0), (195.0, 205.0), (290.0, 310.0)])
    assert got == 420.0  # arrivals at 100, 200 and 300 were each hidden; 400 (+20) is judged


def test_unknown_interval_treats_the_whole_allowed_silence_as_one() -> None:
    assert deadline_past_windows(0.0, None, 100.0, [(50.0, 60.0)]) >= 60.0 + 100.0


def test_min_tolerance_keeps_some_slack_after_a_window() -> None:
    got = deadline_past_windows(0.0, 100.0, 100.0, [(99.0, 101.0)], min_tolerance=5.0)
    assert got == 205.0


@pytest.mark.parametrize("start", [float(s) for s in range(0, 400, 7)])
def test_a_stream_that_keeps_its_rhythm_after_any_window_is_never_late(start: float) -> None:
    """Whatever window turned events away, the first on-rhythm event after it is on time."""
    interval, tolerance = 60.0, 10.0
    window = (start, start + 45.0)
    last = 0.0
    got = deadline_past_windows(last, interval, last + interval + tolerance, [window])
    # The stream's events come every 60 s; those inside the window are lost.
    first_seen_after = next(t for t in (interval * k for k in range(1, 100)) if not window[0] <= t <= window[1])
    assert first_seen_after <= got
