"""Heron watching itself: the pure decisions (heron_common.selfwatch), on explicit times."""

from __future__ import annotations

from heron_common.selfwatch import Action, Limits, QueueSample, Sample, WatchState, message, problems, step

LIMITS = Limits(watermark_max_age=120.0, queue_max_depth=1000)
Q = "heron.detector.shard.0"


def healthy(now: float) -> Sample:
    return Sample(now, now - 1.0, (QueueSample(Q, 3, 1),))


def test_a_moving_pipeline_has_no_problem() -> None:
    assert problems(healthy(1000.0), LIMITS) == ()


def test_each_kind_of_stall_is_named_and_stable_while_it_lasts() -> None:
    old_tick = Sample(1000.0, 800.0, (QueueSample(Q, 3, 1),))
    assert problems(old_tick, LIMITS) == ("no tick for over 120 s (the watermark stopped)",)
    assert problems(Sample(1100.0, 800.0, (QueueSample(Q, 3, 1),)), LIMITS) == problems(old_tick, LIMITS)
    orphan = Sample(1000.0, 999.0, (QueueSample(Q, 0, 0),))
    assert problems(orphan, LIMITS) == (f"{Q}: no consumer",)
    backlog = Sample(1000.0, 999.0, (QueueSample(Q, 5000, 2),))
    assert problems(backlog, LIMITS) == (f"{Q}: over 1000 messages waiting",)
    assert problems(Sample(1000.0, None, (), ("rabbitmq",)), LIMITS) == (
        "no tick for over 120 s (the watermark stopped)",
        "rabbitmq unreachable",
    )
    assert problems(Sample(1000.0, None, (), ("postgres",)), LIMITS) == ("postgres unreachable",)


def test_one_alert_per_stall_one_recovery_and_heartbeats_only_while_healthy() -> None:
    state = WatchState()
    done = step(state, 0.0, (), heartbeat_interval=60.0)
    assert done.actions == (Action("heartbeat"),)
    assert step(done.state, 30.0, (), 60.0).actions == ()  # not due yet
    done = step(done.state, 60.0, (), 60.0)
    assert done.actions == (Action("heartbeat"),)

    stalled = ("heron.detector.shard.3: no consumer",)
    done = step(done.state, 70.0, stalled, 60.0)
    assert done.actions == (Action("stalled", stalled),)
    for now in (80.0, 130.0, 500.0):  # the same stall: no repeat, and no heartbeat while stalled
        done = step(done.state, now, stalled, 60.0)
        assert done.actions == ()
    worse = (*stalled, "no tick for over 120 s (the watermark stopped)")
    done = step(done.state, 510.0, worse, 60.0)
    assert done.actions == (Action("stalled", worse, 440.0),)  # a different stall is said once
    done = step(done.state, 600.0, (), 60.0)
    assert done.actions == (Action("recovered", worse, 530.0), Action("heartbeat"))
    assert done.state.stalled_since is None


def test_without_a_heartbeat_url_only_stalls_and_recoveries_are_acted_on() -> None:
    done = step(WatchState(), 0.0, (), heartbeat_interval=None)
    assert done.actions == ()
    done = step(done.state, 1.0, ("x",), None)
    assert [a.kind for a in done.actions] == ["stalled"]


def test_the_messages_say_what_is_wrong_and_for_how_long() -> None:
    assert "no consumer" in message(Action("stalled", ("q: no consumer",)))
    assert "after 42 s" in message(Action("recovered", ("q: no consumer",), 42.0))


def test_a_fresh_install_has_until_the_limit_for_its_first_tick() -> None:
    queues = (QueueSample(Q, 0, 1),)
    assert problems(Sample(1100.0, None, queues, (), watching_since=1000.0), LIMITS) == ()
    assert problems(Sample(1121.0, None, queues, (), watching_since=1000.0), LIMITS) == (
        "no tick for over 120 s (the watermark stopped)",
    )


def test_problems_must_last_before_they_are_a_stall() -> None:
    blip = ("q: no consumer",)
    done = step(WatchState(), 0.0, blip, 60.0, confirm_after=30.0)
    assert done.actions == ()  # a detector restarting: not yet
    done = step(done.state, 10.0, (), 60.0, confirm_after=30.0)
    assert done.actions == (Action("heartbeat"),)  # it came back: nothing to say
    done = step(done.state, 20.0, blip, 60.0, confirm_after=30.0)
    done = step(done.state, 49.0, blip, 60.0, confirm_after=30.0)
    assert done.actions == ()
    done = step(done.state, 50.0, blip, 60.0, confirm_after=30.0)
    assert done.actions == (Action("stalled", blip),)
