"""The heartbeat kind, pure: explicit times, no waiting."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from heron_common.monitors import OPEN, RESOLVE
from heron_common.monitors import heartbeat as hb
from heron_common.monitors.heartbeat import Config, ConfigError, Heartbeat, Ping

T = 1_800_000_000.0
FIVE_AND_TWO = Config(grace=120.0, interval=300.0)


def up_at(t: float, config: Config = FIVE_AND_TWO) -> Heartbeat:
    step = hb.ping(Heartbeat(), config, Ping(hb.SUCCESS, t))
    assert step.heartbeat.state == hb.UP
    return step.heartbeat


def test_interval_5_min_grace_2_min_opens_the_incident_at_t_plus_7_min_and_not_before() -> None:
    beat = up_at(T)
    assert hb.deadline(beat, FIVE_AND_TWO) == T + 300
    for now in (T + 60, T + 299.9):
        assert hb.due(beat, FIVE_AND_TWO, now).flips == ()
    late = hb.due(beat, FIVE_AND_TWO, T + 300)
    assert late.heartbeat.state == hb.LATE and late.topics == (hb.TOPIC_LATE,) and late.deadline == T + 420
    assert late.flips[0].incident is None  # late is no incident
    assert hb.due(late.heartbeat, FIVE_AND_TWO, T + 419.99).flips == ()
    down = hb.due(late.heartbeat, FIVE_AND_TWO, T + 420)
    assert down.heartbeat.state == hb.DOWN and down.deadline is None
    assert down.topics == (hb.TOPIC_DOWN,)
    (flip,) = down.flips
    assert flip.incident == OPEN and flip.at == T + 420 and flip.silent_since == T
    assert flip.details is not None and flip.details["last_ping_kind"] == "success"


def test_new_up_late_down_up() -> None:
    new = Heartbeat()
    assert hb.deadline(new, FIVE_AND_TWO) is None  # nothing is expected before the first ping
    assert hb.due(new, FIVE_AND_TWO, T + 10**6).flips == ()
    first = hb.ping(new, FIVE_AND_TWO, Ping(hb.SUCCESS, T))
    assert [(f.from_state, f.to_state) for f in first.flips] == [("new", "up")] and first.topics == ()
    late = hb.due(first.heartbeat, FIVE_AND_TWO, T + 301)
    down = hb.due(late.heartbeat, FIVE_AND_TWO, T + 421)
    back = hb.ping(down.heartbeat, FIVE_AND_TWO, Ping(hb.SUCCESS, T + 500))
    assert back.heartbeat.state == hb.UP and back.topics == (hb.TOPIC_UP,)
    (flip,) = back.flips
    assert flip.incident == RESOLVE and flip.silent_since == T and flip.resumed_at == T + 500
    assert back.deadline == T + 800
    # A ping while late is simply up again: no incident was opened.
    again = hb.ping(late.heartbeat, FIVE_AND_TWO, Ping(hb.SUCCESS, T + 310))
    assert again.heartbeat.state == hb.UP and again.topics == () and again.flips[0].incident is None


def test_a_scan_long_after_both_marks_goes_straight_down() -> None:
    step = hb.due(up_at(T), FIVE_AND_TWO, T + 3600)
    assert step.heartbeat.state == hb.DOWN and step.topics == (hb.TOPIC_DOWN,)


def test_a_start_with_no_finish_within_grace_is_down_and_the_finish_has_a_duration() -> None:
    beat = up_at(T)
    started = hb.ping(beat, FIVE_AND_TWO, Ping(hb.START, T + 290, rid="r1"))
    assert started.heartbeat.state == hb.UP and started.deadline == T + 290 + 120
    assert hb.due(started.heartbeat, FIVE_AND_TWO, T + 400).flips == ()  # running: not late
    finished = hb.ping(started.heartbeat, FIVE_AND_TWO, Ping(hb.SUCCESS, T + 350, rid="r1"))
    assert finished.duration == 60 and finished.heartbeat.started is None and finished.deadline == T + 650
    hung = hb.due(started.heartbeat, FIVE_AND_TWO, T + 410)
    assert hung.heartbeat.state == hb.DOWN and "did not finish" in hung.flips[0].reason
    # A finish with another run's id does not end this run.
    other = hb.ping(started.heartbeat, FIVE_AND_TWO, Ping(hb.SUCCESS, T + 350, rid="r2"))
    assert other.duration is None and other.heartbeat.started == T + 290


def test_fail_or_a_non_zero_exit_code_is_down_at_once_and_success_after_it_resolves() -> None:
    beat = up_at(T)
    for p in (Ping(hb.FAIL, T + 10), Ping(hb.EXIT, T + 10, exit_code=3)):
        failed = hb.ping(beat, FIVE_AND_TWO, p)
        assert failed.heartbeat.state == hb.DOWN and failed.topics == (hb.TOPIC_DOWN,)
        assert failed.flips[0].incident == OPEN and failed.deadline is None
        assert failed.heartbeat.last_kind == p.kind
        again = hb.ping(failed.heartbeat, FIVE_AND_TWO, p)
        assert again.flips == () and again.topics == ()  # one incident, not one per failure
        ok = hb.ping(failed.heartbeat, FIVE_AND_TWO, Ping(hb.EXIT, T + 20, exit_code=0))
        assert ok.heartbeat.state == hb.UP and ok.flips[0].incident == RESOLVE


def test_paused_records_pings_but_never_judges_and_resume_waits_for_a_ping() -> None:
    paused = Heartbeat(state="paused", last_ping=T)
    assert hb.deadline(paused, FIVE_AND_TWO) is None
    step = hb.ping(paused, FIVE_AND_TWO, Ping(hb.FAIL, T + 5))
    assert step.flips == () and step.heartbeat.state == "paused" and step.heartbeat.last_ping == T + 5
    resumed = hb.resume(step.heartbeat, T + 10, incident_open=False)
    assert resumed.heartbeat.state == hb.NEW and resumed.deadline is None
    assert hb.deadline(resumed.heartbeat, FIVE_AND_TWO) is None
    assert hb.resume(paused, T + 10, incident_open=True).heartbeat.state == hb.DOWN


def test_blind_windows_move_both_marks() -> None:
    beat = up_at(T)
    window = [(T + 250.0, T + 330.0)]  # Heron could not see pings while the next one was due
    step = hb.due(beat, FIVE_AND_TWO, T + 420, window)
    assert step.flips == () and step.deadline is not None and step.deadline > T + 420
    # The ping expected after the window is judged instead: late, then down, each moved on.
    late = hb.due(beat, FIVE_AND_TWO, step.deadline, window)
    assert late.heartbeat.state == hb.LATE and late.deadline == step.deadline + 120
    down = hb.due(late.heartbeat, FIVE_AND_TWO, late.deadline, window)
    assert down.heartbeat.state == hb.DOWN
    # A window long before the expected ping changes nothing.
    assert hb.due(beat, FIVE_AND_TWO, T + 420, [(T + 10.0, T + 20.0)]).heartbeat.state == hb.DOWN


def test_reconfigure_moves_the_deadline_and_a_covered_late_is_up() -> None:
    late = hb.due(up_at(T), FIVE_AND_TWO, T + 301).heartbeat
    wider = Config(grace=120.0, interval=3600.0)
    step = hb.reconfigure(late, wider, T + 302)
    assert step.heartbeat.state == hb.UP and step.deadline == T + 3600


def ts(year: int, month: int, day: int, hour: int, minute: int, tz: str) -> float:
    """A local wall-clock time (``day`` may run past the month's end: days are added)."""
    local = datetime(year, month, 1, hour, minute) + timedelta(days=day - 1)
    return local.replace(tzinfo=ZoneInfo(tz)).timestamp()


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
def test_a_daily_schedule_is_due_at_local_time_across_both_dst_changes(tz: str) -> None:
    daily = Config(grace=600.0, schedule="0 2 * * *", tz=tz)
    spring = {"Europe/Berlin": (3, 29), "America/New_York": (3, 8)}[tz]
    autumn = {"Europe/Berlin": (10, 25), "America/New_York": (11, 1)}[tz]
    # The night before spring forward: the job pinged at 02:05; the next run is at 02:00 local,
    # which does not exist that night, so cron runs it at 03:00: 23 h 55 min later, not 24 h 55 min.
    last = ts(2026, spring[0], spring[1] - 1, 2, 5, tz)
    due_at = daily.next_due(last)
    assert due_at == ts(2026, spring[0], spring[1], 3, 0, tz)
    assert due_at - last == 23 * 3600 + 55 * 60
    beat = up_at(last, daily)
    assert hb.deadline(beat, daily) == due_at
    assert hb.due(beat, daily, due_at - 1).flips == ()
    assert hb.due(beat, daily, due_at + 599).heartbeat.state == hb.LATE
    assert hb.due(beat, daily, due_at + 600).heartbeat.state == hb.DOWN
    # Fall back: the job still runs once a night at 02:00 local time, and the two runs around the
    # change are 49 h apart over two nights, not 48 (the 25-hour day).
    before = ts(2026, autumn[0], autumn[1] - 1, 2, 0, tz)
    due_at = daily.next_due(before + 300)
    assert due_at == ts(2026, autumn[0], autumn[1], 2, 0, tz)
    assert datetime.fromtimestamp(due_at, ZoneInfo(tz)).hour == 2
    after = daily.next_due(due_at + 300)
    assert after == ts(2026, autumn[0], autumn[1] + 1, 2, 0, tz)
    assert after - before == 49 * 3600


def test_the_next_scheduled_time_is_strictly_after_the_ping() -> None:
    hourly = Config(grace=60.0, schedule="0 * * * *", tz="UTC")
    on_the_hour = datetime(2026, 5, 1, 10, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert hourly.next_due(on_the_hour) == on_the_hour + 3600


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("24h", 86400), ("10m", 600), ("90s", 90), ("1d", 86400), (300, 300), ("300", 300), ("1h30m", 5400), (2.5, 2.5)],
)
def test_durations(raw: object, seconds: float) -> None:
    assert hb.parse_duration(raw, "interval") == seconds


@pytest.mark.parametrize("raw", ["", "abc", "10x", "h", "-5", -5, True, None, [], "1e999", "10 m m", "400d"])
def test_bad_durations_name_the_field(raw: object) -> None:
    with pytest.raises(ConfigError) as caught:
        hb.parse_duration(raw, "grace")
    assert caught.value.field == "grace" and str(caught.value).startswith("grace ")


def test_parse_config() -> None:
    cfg = hb.parse_config({"interval": "24h", "grace": "10m"}, min_interval=60, now=T)
    assert cfg == Config(grace=600.0, interval=86400.0) and Config.from_dict(cfg.to_dict()) == cfg
    cron = hb.parse_config({"schedule": "0  2 * * *", "tz": "Europe/Berlin", "grace": 600}, min_interval=60, now=T)
    assert cron.schedule == "0 2 * * *" and Config.from_dict(cron.to_dict()) == cron
    for body, field in (
        ({"grace": "10m"}, "interval"),
        ({"interval": "1h"}, "grace"),
        ({"interval": "30s", "grace": "10m"}, "interval"),
        ({"interval": "1h", "grace": "10s"}, "grace"),
        ({"interval": "1h", "schedule": "* * * * *", "grace": "1m"}, "schedule"),
        ({"schedule": "61 * * * *", "grace": "1m"}, "schedule"),
        ({"schedule": "every day", "grace": "1m"}, "schedule"),
        ({"schedule": "0 2 * * *", "tz": "Mars/Olympus", "grace": "1m"}, "tz"),
        ({"schedule": "0 2 * * *", "tz": "../../etc/passwd", "grace": "1m"}, "tz"),
        ({"schedule": "* * * * * *", "grace": "1m"}, "schedule"),  # every second: below the minimum
        ({"interval": "1h", "tz": "UTC", "grace": "1m"}, "tz"),
    ):
        with pytest.raises(ConfigError) as caught:
            hb.parse_config(body, min_interval=60, now=T)
        assert caught.value.field == field, (body, caught.value)


def test_slack_renders_every_heartbeat_topic() -> None:
    from heron_common.topics import TOPICS
    from heron_notifier import slack

    for topic in (hb.TOPIC_LATE, hb.TOPIC_DOWN, hb.TOPIC_UP):
        msg = slack.message(topic, TOPICS[topic]["data"])
        assert "Daily DB backup" in msg["text"] and "every 1 day + 10 minutes grace" in msg["text"], msg
    late = slack.message(hb.TOPIC_LATE, TOPICS[hb.TOPIC_LATE]["data"])
    assert late["blocks"][0]["text"]["text"].startswith("⏰ Heartbeat late")
    cron = {**TOPICS[hb.TOPIC_DOWN]["data"]["heartbeat"], "schedule": "0 2 * * *", "tz": "Europe/Berlin"}
    cron.update(last_exit_code=2)
    text = slack.message(hb.TOPIC_DOWN, {"heartbeat": cron, "project": {"id": 1, "name": "x"}})["text"]
    assert "0 2 * * * (Europe/Berlin)" in text and "exit code 2" in text
