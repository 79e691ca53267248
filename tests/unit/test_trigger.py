"""The trigger kind (Heii On-Call semantics), pure, with explicit times."""

from __future__ import annotations

import pytest

from heron_common.monitors import ACKNOWLEDGE, OPEN, PAUSED, RESOLVABLE_BY_HAND, RESOLVE
from heron_common.monitors import trigger as tr


def manual() -> tr.Trigger:
    return tr.Trigger(tr.RESOLVED)


def liveness(since: float = 100.0, timeout: float = 60.0) -> tr.Trigger:
    return tr.Trigger(tr.RESOLVED, tr.LIVENESS, timeout, since)


def test_triggers_are_resolvable_by_hand() -> None:
    assert tr.KIND in RESOLVABLE_BY_HAND


def test_alert_opens_one_incident_with_the_body_and_flags_and_is_idempotent() -> None:
    t = tr.Trigger(tr.RESOLVED, critical=False, escalate=True)
    alerting, flip = tr.alert(t, 10.0, {"body": "server 1 is on fire", "content_type": "text/plain"})
    assert alerting.state == tr.ALERTING and flip is not None and flip.incident == OPEN
    assert flip.details is not None
    assert flip.details["body"] == "server 1 is on fire" and flip.details["critical"] is False
    assert flip.details["escalate"] is True and flip.details["trigger_kind"] == tr.MANUAL
    assert tr.alert(alerting, 11.0) == (alerting, None)
    acked, flip = tr.acknowledge(alerting, 12.0)
    assert acked.state == tr.ACKNOWLEDGED and flip is not None and flip.incident == ACKNOWLEDGE
    # Alerting an acknowledged trigger has no effect (Heii).
    assert tr.alert(acked, 13.0) == (acked, None)
    assert tr.acknowledge(acked, 14.0) == (acked, None)


def test_resolve_from_alerting_or_acknowledged_then_it_can_fire_again() -> None:
    alerting, _ = tr.alert(manual(), 10.0)
    for before in (alerting, tr.acknowledge(alerting, 11.0)[0]):
        resolved, flip = tr.resolve(before, 20.0)
        assert resolved.state == tr.RESOLVED and flip is not None and flip.incident == RESOLVE
        assert flip.from_state == before.state
        assert tr.resolve(resolved, 21.0) == (resolved, None)
        again, flip = tr.alert(resolved, 30.0)
        assert again.state == tr.ALERTING and flip is not None and flip.incident == OPEN
    assert tr.acknowledge(manual(), 5.0) == (manual(), None)


def test_a_manual_trigger_has_no_deadline_and_takes_no_checkins() -> None:
    assert manual().deadline() is None
    assert tr.checkin(manual(), 50.0) == (manual(), None)
    assert tr.check_timeout(manual(), 1e9) == (manual(), None)


def test_liveness_times_out_without_checkin_and_a_checkin_resolves_and_restarts_the_timer() -> None:
    t = liveness(since=100.0, timeout=60.0)
    assert t.deadline() == 160.0
    assert tr.check_timeout(t, 159.9) == (t, None)
    # A check-in in time moves the deadline.
    checked, flip = tr.checkin(t, 150.0)
    assert flip is None and checked.deadline() == 210.0 and checked.last_checkin == 150.0
    assert tr.check_timeout(checked, 200.0) == (checked, None)
    alerting, flip = tr.check_timeout(checked, 210.0)
    assert alerting.state == tr.ALERTING and alerting.deadline() is None
    assert flip is not None and flip.incident == OPEN and flip.silent_since == 150.0
    assert flip.details is not None and flip.details["reason"] == "timeout" and flip.details["timeout"] == 60.0
    # An alert while alerting changes nothing; a check-in resolves and restarts the timer.
    assert tr.alert(alerting, 215.0) == (alerting, None)
    resolved, flip = tr.checkin(alerting, 300.0)
    assert resolved.state == tr.RESOLVED and flip is not None and flip.incident == RESOLVE
    assert resolved.deadline() == 360.0
    # An acknowledged liveness trigger is resolved by a check-in too.
    acked, _ = tr.acknowledge(tr.check_timeout(resolved, 400.0)[0], 401.0)
    back, flip = tr.checkin(acked, 402.0)
    assert back.state == tr.RESOLVED and flip is not None and flip.from_state == tr.ACKNOWLEDGED


def test_resolving_a_liveness_trigger_by_hand_restarts_its_timer() -> None:
    alerting, _ = tr.check_timeout(liveness(since=100.0, timeout=60.0), 170.0)
    resolved, _ = tr.resolve(alerting, 500.0)
    assert resolved.deadline() == 560.0


def test_an_older_checkin_does_not_pull_the_deadline_back() -> None:
    t = liveness(since=200.0)
    after, flip = tr.checkin(t, 150.0)
    assert flip is None and after.deadline() == 260.0


def test_paused_never_alerts_but_its_incident_can_be_acknowledged_and_resolved() -> None:
    t = tr.Trigger(PAUSED, tr.LIVENESS, 60.0, 100.0)
    assert t.deadline() is None
    assert tr.alert(t, 10.0) == (t, None)
    assert tr.check_timeout(t, 1e9) == (t, None)
    same, flip = tr.acknowledge(t, 11.0)
    assert same == t and flip is not None and flip.incident == ACKNOWLEDGE and flip.from_state == flip.to_state
    same, flip = tr.resolve(t, 12.0)
    assert same == t and flip is not None and flip.incident == RESOLVE
    checked, flip = tr.checkin(t, 13.0)
    assert flip is None and checked.state == PAUSED and checked.last_checkin == 13.0


def test_resume_goes_back_to_the_open_incident_or_restarts_the_timer() -> None:
    t = tr.Trigger(PAUSED, tr.LIVENESS, 60.0, 100.0)
    resumed, flip = tr.resume(t, 1000.0, None)
    assert resumed.state == tr.RESOLVED and resumed.deadline() == 1060.0 and flip.to_state == tr.RESOLVED
    resumed, flip = tr.resume(t, 1000.0, tr.ACKNOWLEDGED)
    assert resumed.state == tr.ACKNOWLEDGED and resumed.deadline() is None


def test_reconfigure_restarts_a_resolved_liveness_timer() -> None:
    t = tr.reconfigure(manual(), {"trigger_kind": tr.LIVENESS, "timeout": 30.0, "critical": False}, 500.0)
    assert t.liveness and t.deadline() == 530.0 and t.critical is False


def test_row_round_trip() -> None:
    t = tr.Trigger(tr.RESOLVED, tr.LIVENESS, 60.0, 100.0, 90.0, False, False)
    config = {"trigger_kind": tr.LIVENESS, "timeout": 60.0, "critical": False, "escalate": False}
    assert tr.from_row(tr.RESOLVED, config, tr.to_data(t)) == t


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("short", False),
        ("x" * tr.MAX_BODY_BYTES, False),
        ("x" * (tr.MAX_BODY_BYTES + 1), True),
        ("é" * tr.MAX_BODY_BYTES, True),  # two bytes each: cut on a character boundary
    ],
)
def test_bodies_are_kept_up_to_the_limit_and_marked_when_cut(text: str, cut: bool) -> None:
    kept = tr.cut_body(text)
    assert len(kept.encode("utf-8")) <= tr.MAX_BODY_BYTES
    assert kept.endswith(tr.TRUNCATED) is cut
    assert text.startswith(kept.removesuffix(tr.TRUNCATED))


def test_apply_dispatches_and_refuses_unknown_actions() -> None:
    assert tr.apply(manual(), "alert", 1.0)[0].state == tr.ALERTING
    with pytest.raises(ValueError):
        tr.apply(manual(), "explode", 1.0)


def test_slack_shows_a_trigger_with_its_body_cut_for_slack() -> None:
    from heron_common.topics import TOPICS
    from heron_notifier import slack

    data = TOPICS["trigger.alerting"]["data"]
    for topic in ("trigger.alerting", "incident.opened"):
        msg = slack.message(topic, data)
        assert msg["text"].startswith("🚨 Heron trigger alerting") and "Service: API" in msg["text"]
        assert msg["blocks"][-1]["text"]["text"] == data["incident"]["details"]["body"]
    long = {**data, "incident": {**data["incident"], "details": {"body": "x" * 10_000}}}
    assert len(slack.message("trigger.alerting", long)["blocks"][-1]["text"]["text"]) <= 3000
    acked = slack.message("incident.acknowledged", TOPICS["trigger.acknowledged"]["data"])
    assert "Acknowledged by: api key" in acked["text"]
    assert slack.message("trigger.resolved", TOPICS["trigger.resolved"]["data"])["text"].startswith("✅")
