"""The ``event`` kind: a learned event stream's state machine, pure, over the rate model.

States: ``new`` while the stream is being learned, ``up``, ``down`` while an incident is open,
``paused``. The detector feeds this module event times and scan times and persists what it returns.
The learned deadline comes from :mod:`heron_common.monitors.rate` (docs/detection.md): the moment
the silence since the last event becomes less probable than the false-alarm budget allows.

The learned deadline can be overridden per monitor (``config``, set with ``PATCH /v1/monitors/{id}``):

- ``expected_interval`` + ``grace`` (seconds): a fixed deadline ``last_seen + interval + grace``,
  in force from the first event (no learning);
- ``sensitivity`` (0.1–10, default 1): multiplies the false-alarm budget, so 10 alerts sooner (up to
  ten times the false alarms) and 0.1 later (a tenth of them). On a memoryless stream a factor of 10
  moves the deadline by ln 10 ≈ 2.3 mean gaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heron_common.monitors import OPEN, PAUSED, RESOLVE, Flip, rate
from heron_common.monitors.cadence import event_time
from heron_common.monitors.rate import Rate, RateParams
from heron_common.settings import Settings

__all__ = [
    "DOWN",
    "NEW",
    "PAUSED",
    "UP",
    "Flip",
    "Monitor",
    "apply_events",
    "check_silence",
    "event_time",
    "explain",
    "params_from",
]

KIND = "event"
NEW, UP, DOWN = "new", "up", "down"
MIN_SENSITIVITY, MAX_SENSITIVITY = 0.1, 10.0


def params_from(settings: Settings) -> RateParams:
    """The rate model's parameters from the settings every service reads (HERON_MIN_TOLERANCE,
    HERON_LEARNING_THRESHOLD, HERON_FALSE_ALARMS_PER_YEAR, HERON_YOUNG_CLUSTERS_PER_HOUR)."""
    return RateParams(
        learning_threshold=settings.learning_threshold,
        min_tolerance=settings.min_tolerance,
        false_alarms_per_year=settings.false_alarms_per_year,
        young_clusters_per_hour=settings.young_clusters_per_hour,
    )


def load(snapshot: Mapping[str, Any] | None, params: RateParams) -> Rate:
    """The learned state from ``monitors.cadence`` (any snapshot version; ``{}`` is a new stream)."""
    return rate.from_dict(snapshot or {}, params)


def sensitivity_of(config: Mapping[str, Any]) -> float:
    value = config.get("sensitivity")
    return 1.0 if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Monitor:
    state: str
    learned: Rate
    event_count: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)

    def deadline(self, params: RateParams) -> float | None:
        """The moment silence becomes abnormal; None while learning, down or paused."""
        if self.state != UP:
            return None
        return learned_or_fixed_deadline(self.learned, self.config, params)

    def expected_interval(self, params: RateParams) -> float | None:
        fixed = self.config.get("expected_interval")
        return float(fixed) if fixed is not None else rate.expected_interval(self.learned, params)


def learned_or_fixed_deadline(state: Rate, config: Mapping[str, Any], params: RateParams) -> float | None:
    if state.last_seen is None:
        return None
    fixed = config.get("expected_interval")
    if fixed is not None:
        return state.last_seen + float(fixed) + float(config.get("grace") or 0.0)
    return rate.deadline(state, params, sensitivity_of(config))


def apply_events(monitor: Monitor, times: list[float], params: RateParams) -> tuple[Monitor, list[Flip]]:
    """Fold a batch of event times (any order, duplicates allowed) into the monitor, in one pass."""
    before = monitor.learned.last_seen
    learned = rate.observe_many(monitor.learned, times, params)
    state = monitor.state
    flips: list[Flip] = []
    if state == DOWN:
        newer = [t for t in times if before is None or t > before]
        if newer:
            resumed_at = min(newer)
            flips.append(
                Flip(
                    DOWN, UP, resumed_at, "event resumed", incident=RESOLVE, silent_since=before, resumed_at=resumed_at
                )
            )
            state = UP
    if state == NEW and learned_or_fixed_deadline(learned, monitor.config, params) is not None:
        flips.append(Flip(NEW, UP, learned.last_seen or 0.0, "learned"))
        state = UP
    return Monitor(state, learned, monitor.event_count + len(times), monitor.config), flips


def explain(monitor: Monitor, now: float, params: RateParams) -> dict[str, Any]:
    """Why the deadline is where it is, at ``now``: JSON-able, rounded for people (alerts and the
    monitor API). ``model`` is ``fixed`` (an override), ``rate`` or ``regular`` (learned), or
    ``learning``; see :func:`heron_common.monitors.rate.explain` for the learned numbers."""
    sensitivity = sensitivity_of(monitor.config)
    why = rate.explain(monitor.learned, now, params, sensitivity)
    out: dict[str, Any] = {"model": why.get("model", "learning") if not why["learning"] else "learning"}
    fixed = monitor.config.get("expected_interval")
    if fixed is not None:
        out["model"] = "fixed"
        out["grace"] = float(monitor.config.get("grace") or 0.0)
    out["deadline"] = _iso(learned_or_fixed_deadline(monitor.learned, monitor.config, params))
    last = monitor.learned.last_seen
    if last is not None:
        out["quiet_for"] = _round(max(now - last, 0.0))
    interval = monitor.expected_interval(params)
    if interval is not None:
        out["expected_interval"] = _round(interval)
    for key in ("expected_arrivals", "expected_events", "events_per_cluster"):
        if key in why:
            out[key] = _round(why[key])
    if "silence_probability" in why:
        out["silence_probability"] = _round(why["silence_probability"])
        out["alarm_probability"] = _round(why["threshold"])
    out["false_alarms_per_year"] = _round(params.false_alarms_per_year * sensitivity)
    return out


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _round(x: float) -> float:
    """Four significant digits: what a person reads, and a stable JSON."""
    return float(f"{x:.4g}")


def check_silence(monitor: Monitor, now: float, params: RateParams) -> Flip | None:
    """The flip to ``down`` if the monitor is overdue at ``now`` (the shard's watermark); its
    details say why (:func:`explain`), for the incident and its alert."""
    deadline = monitor.deadline(params)
    if deadline is None or now < deadline:
        return None
    return Flip(
        UP,
        DOWN,
        now,
        "silent past its deadline",
        incident=OPEN,
        silent_since=monitor.learned.last_seen,
        details={"silence": explain(monitor, now, params)},
    )


def resume(monitor: Monitor, at: float, params: RateParams) -> tuple[Monitor, Flip]:
    """Back from ``paused``: judged from ``at`` on, as if the last event had just been seen (the
    pause is not held against the stream), or ``new`` if nothing was learned yet."""
    learned = rate.restart(monitor.learned, at, params)
    state = UP if learned_or_fixed_deadline(learned, monitor.config, params) is not None else NEW
    return Monitor(state, learned, monitor.event_count, monitor.config), Flip(PAUSED, state, at, "resumed")
