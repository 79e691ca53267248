"""The event kind's overrides and pause/resume, and the one incident view (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from heron_common.monitors import OPEN, PAUSED, RESOLVE, pause
from heron_common.monitors import event as ev
from heron_common.monitors.cadence import Cadence, CadenceParams
from heron_common.views import incident_title, incident_view

P = CadenceParams(learning_threshold=3, min_tolerance=1.0)


def learned(last: float = 100.0) -> ev.Monitor:
    state = Cadence()
    monitor = ev.Monitor(ev.NEW, state)
    monitor, _ = ev.apply_events(monitor, [last - 20.0, last - 10.0, last], P)
    return monitor


def test_a_fixed_interval_needs_no_learning_and_sets_the_deadline() -> None:
    m = ev.Monitor(ev.NEW, Cadence(), config={"expected_interval": 60.0, "grace": 30.0})
    after, flips = ev.apply_events(m, [1000.0], P)
    assert after.state == ev.UP and [f.to_state for f in flips] == [ev.UP]
    assert after.deadline(P) == 1090.0
    assert after.expected_interval() == 60.0


def test_sensitivity_scales_the_learned_slack() -> None:
    m = learned()
    plain = m.deadline(P)
    assert plain is not None
    mean = m.cadence.mean
    slack = plain - 100.0 - mean
    sharp = ev.Monitor(m.state, m.cadence, m.event_count, {"sensitivity": 2.0}).deadline(P)
    loose = ev.Monitor(m.state, m.cadence, m.event_count, {"sensitivity": 0.5}).deadline(P)
    assert sharp == 100.0 + mean + max(slack / 2, P.min_tolerance)
    assert loose == 100.0 + mean + slack * 2


def test_flips_say_what_they_do_to_the_incident() -> None:
    m = learned()
    deadline = m.deadline(P)
    assert deadline is not None
    down = ev.check_silence(m, deadline + 1, P)
    assert down is not None and down.incident == OPEN
    after, flips = ev.apply_events(ev.Monitor(ev.DOWN, m.cadence, m.event_count), [deadline + 5], P)
    assert [f.incident for f in flips] == [RESOLVE] and after.state == ev.UP


def test_pause_and_resume_do_not_hold_the_pause_against_the_stream() -> None:
    m = learned()
    flip = pause(m.state, 150.0)
    assert flip is not None and flip.to_state == PAUSED and flip.incident is None
    assert pause(PAUSED, 151.0) is None
    paused = ev.Monitor(PAUSED, m.cadence, m.event_count)
    assert paused.deadline(P) is None
    resumed, back = ev.resume(paused, 5000.0, P)
    assert resumed.state == ev.UP and back.from_state == PAUSED
    deadline = resumed.deadline(P)
    assert deadline is not None and deadline > 5000.0


def test_a_stream_resumed_before_it_was_learned_is_new_again() -> None:
    m = ev.Monitor(PAUSED, Cadence())
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


def test_slack_says_who_acknowledged() -> None:
    from heron_common.topics import TOPICS
    from heron_notifier import slack

    msg = slack.message("incident.acknowledged", TOPICS["incident.acknowledged"]["data"])
    assert msg["blocks"][0]["text"]["text"] == "👀 Heron incident acknowledged"
    assert "Acknowledged by: api key heron_AbCd…wxyz" in msg["text"] and "payment.completed" in msg["text"]
