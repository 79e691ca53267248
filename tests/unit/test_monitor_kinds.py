"""The event kind's overrides and pause/resume, and the one incident view (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from heron_common.monitors import OPEN, PAUSED, RESOLVE, pause, rate
from heron_common.monitors import event as ev
from heron_common.monitors.rate import Rate, RateParams
from heron_common.views import alert_data, incident_title, incident_view

P = RateParams(learning_threshold=3, min_tolerance=1.0)


def learned(last: float = 100.0) -> ev.Monitor:
    state = Rate()
    monitor = ev.Monitor(ev.NEW, state)
    monitor, _ = ev.apply_events(monitor, [last - 20.0, last - 10.0, last], P)
    return monitor


def test_a_fixed_interval_needs_no_learning_and_sets_the_deadline() -> None:
    m = ev.Monitor(ev.NEW, Rate(), config={"expected_interval": 60.0, "grace": 30.0})
    after, flips = ev.apply_events(m, [1000.0], P)
    assert after.state == ev.UP and [f.to_state for f in flips] == [ev.UP]
    assert after.deadline(P) == 1090.0
    assert after.expected_interval(P) == 60.0


def test_sensitivity_multiplies_the_false_alarm_budget() -> None:
    m = learned()
    plain = m.deadline(P)
    assert plain is not None
    sharp = ev.Monitor(m.state, m.learned, m.event_count, {"sensitivity": 2.0}).deadline(P)
    loose = ev.Monitor(m.state, m.learned, m.event_count, {"sensitivity": 0.5}).deadline(P)
    assert sharp is not None and loose is not None
    assert 100.0 < sharp < plain < loose
    assert sharp == rate.deadline(m.learned, P, 2.0) and loose == rate.deadline(m.learned, P, 0.5)
    # The same as a budget twice as large for every stream.
    doubled = RateParams(learning_threshold=3, min_tolerance=1.0, false_alarms_per_year=2.0)
    assert sharp == pytest.approx(rate.deadline(rate.observe_many(Rate(), [80.0, 90.0, 100.0], doubled), doubled))


def test_flips_say_what_they_do_to_the_incident() -> None:
    m = learned()
    deadline = m.deadline(P)
    assert deadline is not None
    down = ev.check_silence(m, deadline + 1, P)
    assert down is not None and down.incident == OPEN
    after, flips = ev.apply_events(ev.Monitor(ev.DOWN, m.learned, m.event_count), [deadline + 5], P)
    assert [f.incident for f in flips] == [RESOLVE] and after.state == ev.UP


def test_pause_and_resume_do_not_hold_the_pause_against_the_stream() -> None:
    m = learned()
    flip = pause(m.state, 150.0)
    assert flip is not None and flip.to_state == PAUSED and flip.incident is None
    assert pause(PAUSED, 151.0) is None
    paused = ev.Monitor(PAUSED, m.learned, m.event_count)
    assert paused.deadline(P) is None
    resumed, back = ev.resume(paused, 5000.0, P)
    assert resumed.state == ev.UP and back.from_state == PAUSED
    deadline = resumed.deadline(P)
    assert deadline is not None and deadline > 5000.0


def test_a_stream_resumed_before_it_was_learned_is_new_again() -> None:
    m = ev.Monitor(PAUSED, Rate())
    resumed, flip = ev.resume(m, 10.0, P)
    assert resumed.state == ev.NEW and flip.to_state == ev.NEW


def test_incident_view_keeps_the_event_fields_and_adds_the_kind() -> None:
    at = datetime(2026, 11, 1, 14, 22, tzinfo=UTC)
    row = {
        "id": 1,
        "monitor_id": 2,
        "kind": "event",
        "title": None,
        "event_name": "payment.completed",
        "service": "",
        "environment": "production",
        "started_at": at,
        "opened_at": at,
        "resolved_at": None,
        "duration": None,
        "expected_interval": 180.0,
    }
    view = incident_view(row)
    assert view["title"] == incident_title("event", None, "payment.completed") == "payment.completed went silent"
    assert view["service"] is None and view["environment"] == "production"
    assert view["started_at"] == "2026-11-01T14:22:00Z" and view["kind"] == "event"
    assert view["acknowledged_at"] is None and view["details"] == {}
    # The seed's response shape is kept (every field it had), and the alerts carry this very view.
    seed = {"id", "monitor_id", "event_name", "service", "environment", "started_at", "opened_at", "resolved_at"}
    assert seed | {"duration", "expected_interval"} <= view.keys()
    assert alert_data(row, 3, "MyApp") == {"incident": view, "project": {"id": 3, "name": "MyApp"}}


def test_slack_says_who_acknowledged() -> None:
    from heron_common.topics import TOPICS
    from heron_notifier import slack

    msg = slack.message("incident.acknowledged", TOPICS["incident.acknowledged"]["data"])
    assert msg["blocks"][0]["text"]["text"] == "👀 Heron incident acknowledged"
    assert "Acknowledged by: api key heron_AbCd…wxyz" in msg["text"] and "payment.completed" in msg["text"]


def test_explain_says_which_rule_set_the_deadline() -> None:
    m = learned()
    why = ev.explain(m, 130.0, P)
    assert why["model"] in ("rate", "regular") and why["quiet_for"] == 30.0
    assert why["deadline"] is not None and why["deadline"].endswith("Z")
    assert why["silence_probability"] <= 1 and why["false_alarms_per_year"] == 1.0
    fixed = ev.Monitor(m.state, m.learned, m.event_count, {"expected_interval": 60.0, "grace": 30.0})
    why = ev.explain(fixed, 130.0, P)
    assert (why["model"], why["expected_interval"], why["grace"]) == ("fixed", 60.0, 30.0)
    assert why["deadline"] == "1970-01-01T00:03:10.000Z"
    assert ev.explain(ev.Monitor(ev.NEW, Rate()), 5.0, P)["model"] == "learning"
    sharp = ev.Monitor(m.state, m.learned, m.event_count, {"sensitivity": 10.0})
    assert ev.explain(sharp, 130.0, P)["false_alarms_per_year"] == 10.0


def test_the_silence_check_carries_its_explanation_into_the_alert_text() -> None:
    from heron_notifier import slack

    m = learned()
    deadline = m.deadline(P)
    assert deadline is not None
    flip = ev.check_silence(m, deadline + 1, P)
    assert flip is not None and flip.details is not None
    silence = flip.details["silence"]
    incident = {"event_name": "job.done", "started_at": "1970-01-01T00:01:40Z", "opened_at": None}
    fields = dict(slack.silence_fields(silence, 100.0))
    assert fields["Expected by"].endswith("after the last event")
    assert fields["Normally by now"].startswith("~") and fields["Normally by now"].endswith(("event", "events"))
    assert fields["Chance of this silence"].startswith(("1 in ", "less than 1 in a billion"))
    text = slack.message("incident.opened", {"incident": {**incident, "details": flip.details}})["text"]
    assert "Chance of this silence" in text
    # An alert without the explanation (older ones, other kinds) reads as before.
    assert slack.silence_fields(None, 100.0) == [] and slack.silence_fields({"model": "fixed"}, None) == [
        ("Rule", "fixed interval + grace")
    ]
