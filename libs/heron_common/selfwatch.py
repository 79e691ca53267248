"""Heron watching itself (issue #14): is its own pipeline moving? Pure: no I/O, ``now`` passed in.

The notifier samples, every ``HERON_SELF_WATCH_INTERVAL``, what it can see of the pipeline: when
the ticker last ticked (``ticker_state``: the ticks drive every silence scan, so a watermark that
stops moving means no silence is judged), and each detector shard queue's depth and consumers (a
shard without a consumer, or with a backlog past the bound, is a shard whose events wait).

``problems`` turns a sample into the reasons the pipeline is stalled (none when healthy); ``step``
turns them into what to do, once: one ``stalled`` alert when a stall begins (or its reasons
change), one ``recovered`` when it ends, and a ``heartbeat`` to the operator's dead-man's switch
every interval, only while healthy — so an outside monitor hears nothing both when Heron is down
and when it is up but stalled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class QueueSample:
    name: str
    messages: int
    consumers: int


@dataclass(frozen=True)
class Sample:
    now: float
    last_tick_at: float | None  # None: no tick was ever recorded
    queues: tuple[QueueSample, ...] = ()
    unreachable: tuple[str, ...] = ()  # what could not be asked (Postgres, RabbitMQ)
    watching_since: float | None = None  # a fresh install has no tick yet: count from here


@dataclass(frozen=True)
class Limits:
    watermark_max_age: float = 120.0
    queue_max_depth: int = 100_000


def problems(sample: Sample, limits: Limits) -> tuple[str, ...]:
    """Why the pipeline is stalled, sorted and stable (so an unchanged stall is recognised)."""
    out = [f"{what} unreachable" for what in sample.unreachable]
    last = sample.last_tick_at if sample.last_tick_at is not None else sample.watching_since
    known = sample.last_tick_at is not None or "postgres" not in sample.unreachable
    # Stable texts (no live figures): an unchanged stall must read the same on every sample.
    if known and (last is None or sample.now - last > limits.watermark_max_age):
        out.append(f"no tick for over {limits.watermark_max_age:g} s (the watermark stopped)")
    for q in sample.queues:
        if q.consumers == 0:
            out.append(f"{q.name}: no consumer")
        if q.messages > limits.queue_max_depth:
            out.append(f"{q.name}: over {limits.queue_max_depth} messages waiting")
    return tuple(sorted(out))


@dataclass(frozen=True)
class WatchState:
    seen_since: float | None = None  # problems seen, not yet confirmed (a deploy, a restart)
    stalled_since: float | None = None
    reasons: tuple[str, ...] = ()
    last_heartbeat: float | None = None


@dataclass(frozen=True)
class Action:
    kind: str  # "stalled", "recovered" or "heartbeat"
    reasons: tuple[str, ...] = ()
    stalled_for: float = 0.0


@dataclass(frozen=True)
class Step:
    state: WatchState
    actions: tuple[Action, ...] = field(default_factory=tuple)


def step(
    state: WatchState,
    now: float,
    reasons: tuple[str, ...],
    heartbeat_interval: float | None,
    confirm_after: float = 0.0,
) -> Step:
    """``confirm_after``: how long problems must last before they are a stall (a detector
    restarting leaves its shards without a consumer for a moment); no heartbeat meanwhile."""
    actions: list[Action] = []
    if reasons:
        seen = state.seen_since if state.seen_since is not None else now
        state = replace(state, seen_since=seen)
        if state.stalled_since is None and now - seen < confirm_after:
            return Step(state, ())
        if state.stalled_since is None:
            state = replace(state, stalled_since=now, reasons=reasons)
            actions.append(Action("stalled", reasons))
        elif reasons != state.reasons:  # a different stall: say what it is now, once
            actions.append(Action("stalled", reasons, now - state.stalled_since))
            state = replace(state, reasons=reasons)
    else:
        state = replace(state, seen_since=None)
        if state.stalled_since is not None:
            actions.append(Action("recovered", state.reasons, now - state.stalled_since))
            state = replace(state, stalled_since=None, reasons=())
        due = heartbeat_interval is not None and (
            state.last_heartbeat is None or now - state.last_heartbeat >= heartbeat_interval
        )
        if due:
            actions.append(Action("heartbeat"))
            state = replace(state, last_heartbeat=now)
    return Step(state, tuple(actions))


def message(action: Action) -> str:
    """The alert's text, for stderr, Slack and a JSON receiver alike."""
    if action.kind == "stalled":
        head = "Heron's own pipeline is stalled"
        if action.stalled_for:
            head += f" (for {action.stalled_for:.0f} s)"
        return f"{head}: {'; '.join(action.reasons)}. Silences are not being judged until it moves again."
    if action.kind == "recovered":
        was = "; ".join(action.reasons)
        return f"Heron's own pipeline is moving again after {action.stalled_for:.0f} s (was: {was})."
    return "Heron is healthy"
