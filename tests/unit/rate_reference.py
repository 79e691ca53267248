"""The rate model as first written (commit 4b6a992): one event at a time, every decay applied in
full, the deadline recomputed after every event. Kept as the reference the optimised fold in
``heron_common.monitors.rate`` is checked against (tests/unit/test_rate.py); not used elsewhere."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

YEAR = 365.25 * 86400.0
HOUR, DAY = 3600.0, 86400.0
BINS = 64  # log-gap histogram: bin i holds gaps in [GAP0·√2^i, GAP0·√2^(i+1))
GAP0 = 0.01
_EDGES = tuple(GAP0 * 2 ** (i / 2) if i else 0.0 for i in range(BINS))
_STEP_LIMIT = 24 * 120  # profile walk bound (hours); beyond, the profile is taken as flat


@dataclass(frozen=True, slots=True)
class RateParams:
    learning_threshold: int = 3  # in-order occurrences before a deadline exists
    min_tolerance: float = 60.0  # seconds; a deadline is never closer than mean gap + this
    false_alarms_per_year: float = 1.0  # the budget per stream; sensitivity multiplies it
    cluster_fraction: float = 0.05
    memory: float = 300.0  # clusters; the rate evidence is a decayed window of about this many
    shrink_to: float = 5.0  # clusters of evidence kept after a silence overran its deadline
    profile_half_life: float = 14 * DAY
    profile_prior: float = 3.0  # pseudo-clusters pulling each profile factor towards 1
    regular_min_gaps: int = 5
    regular_max_sd: float = 0.1  # sd of log-gaps below which a stream is regular (~10 % jitter)
    regular_alpha: float = 0.1  # EWMA weight of a gap in the regular rhythm once warmed up
    young_clusters_per_hour: float = 10.0  # evidence is capped at 1 + this × hours watched

    def __post_init__(self) -> None:
        if self.learning_threshold < 1:
            raise ValueError("learning_threshold must be >= 1")
        if self.min_tolerance < 0 or self.false_alarms_per_year <= 0:
            raise ValueError("min_tolerance must be >= 0 and false_alarms_per_year > 0")
        if not 0 < self.cluster_fraction < 1 or self.memory < 2 or self.shrink_to <= 0:
            raise ValueError("cluster_fraction in (0, 1), memory >= 2, shrink_to > 0")


_ZEROS24, _ZEROS7, _ZEROSB = (0.0,) * 24, (0.0,) * 7, (0.0,) * BINS


@dataclass(frozen=True, slots=True)
class Rate:
    count: int = 0  # occurrences, duplicates and late ones included
    last_seen: float | None = None
    gaps: int = 0  # in-order gaps learned
    hist: tuple[float, ...] = _ZEROSB  # decayed count of gaps per log bin (for tau)
    span: float = 0.0  # decayed seconds covered by those gaps
    b: float = 0.0  # Gamma rate: decayed profile-weighted exposure (seconds); the shape is clusters()
    first_seen: float | None = None
    hour_c: tuple[float, ...] = _ZEROS24  # cluster starts per hour of day (decayed)
    hour_e: tuple[float, ...] = _ZEROS24  # exposure seconds per hour of day (decayed)
    dow_c: tuple[float, ...] = _ZEROS7
    dow_e: tuple[float, ...] = _ZEROS7
    reg_n: int = 0  # regular rhythm: gaps, EW mean and variance of log(gap between clusters)
    reg_m: float = 0.0
    reg_v: float = 0.0
    probation: bool = False  # the rhythm was broken once; the next gap confirms or replaces it
    cand_m: float = 0.0  # the gap that broke it (log), the candidate new rhythm
    due: float | None = None  # deadline at sensitivity 1, kept so the next event is judged in O(1)


# --- observing ----------------------------------------------------------------------------------


def observe(state: Rate, t: float, params: RateParams) -> Rate:
    """Fold one event time in. Late events and duplicates are counted and teach nothing."""
    if not math.isfinite(t):
        raise ValueError(f"event time must be finite, got {t!r}")
    if state.last_seen is None:
        return replace(state, count=1, last_seen=t, first_seen=t)
    if t <= state.last_seen:
        return replace(state, count=state.count + 1)
    last = state.last_seen
    x = t - last
    overdue = state.due is not None and t > state.due
    # An overrun silence is learned only up to the deadline: an outage must not teach its length.
    learned_end = min(t, state.due) if overdue and state.due is not None else t
    tau, clusters = cluster_gap(state, params)
    cluster = x >= tau

    hist, span, b = list(state.hist), state.span, state.b
    forget_days = False
    if cluster:
        keep = 1.0 - 1.0 / params.memory
        if overdue and clusters > params.shrink_to:
            # Outage or change: keep little evidence, so the next deadlines are tolerant while the new
            # rhythm (if any) is learned; an outage costs a few tolerant hours, a change one alert.
            keep *= params.shrink_to / clusters
            # The day-of-week profile compares days seen at different times: across a change of level
            # the days before it would look busy, so it starts again (the hour profile keeps its shape).
            forget_days = True
        hist = [v * keep for v in hist]
        span *= keep
        b *= keep

    # The profile: decay, then the gap's exposure per hour and day, then the arrival, if a cluster.
    k = 0.5 ** (x / params.profile_half_life)
    hour_e, dow_e = [v * k for v in state.hour_e], [v * k for v in state.dow_e]
    hour_c, dow_c = [v * k for v in state.hour_c], [v * k for v in state.dow_c]
    fh, fd = _factors(state, params)
    if forget_days:
        dow_c, dow_e = [0.0] * 7, [0.0] * 7
    # The profile sees the whole silence (that those hours were quiet is its lesson, and without it a
    # quiet night that alerted early on would never be learned); the level only up to the deadline.
    weighted = _expose(last, t, fh, fd, hour_e, dow_e)
    if learned_end < t:
        weighted = _expose(last, learned_end, fh, fd, [0.0] * 24, [0.0] * 7)
    b += weighted
    hist[_bin(learned_end - last)] += 1.0
    span += learned_end - last

    reg_n, reg_m, reg_v, probation, cand_m = state.reg_n, state.reg_m, state.reg_v, state.probation, state.cand_m
    if cluster:
        lx = math.log(x)
        if reg_n and math.exp(reg_m) < tau:
            # What was learned as arrivals is now inside one burst (a bursty stream met cold): the
            # rhythm and the profile's arrival counts are re-learned in the new unit.
            reg_n, reg_m, reg_v, probation = 1, lx, 0.0, False
            hour_c, dow_c = [0.0] * 24, [0.0] * 7
            hour_e, dow_e = [0.0] * 24, [0.0] * 7
        elif overdue and _is_regular(reg_n, reg_v, params):
            probation, cand_m = True, lx
        elif overdue:
            reg_n, reg_m, reg_v = 1, lx, 0.0
        elif probation:
            probation = False
            if x <= _regular_gap(reg_n, reg_m, reg_v, params, 1.0):  # the old rhythm holds: it was an outage
                reg_n, reg_m, reg_v = _ew(reg_n, reg_m, reg_v, lx, params)
            else:  # a new rhythm: start it from the gap that broke the old one
                reg_n, reg_m, reg_v = _ew(1, cand_m, 0.0, lx, params)
        else:
            reg_n, reg_m, reg_v = _ew(reg_n, reg_m, reg_v, lx, params)
        h, d = _hour_dow(t)
        hour_c[h] += 1.0
        dow_c[d] += 1.0

    new = Rate(
        count=state.count + 1,
        last_seen=t,
        gaps=state.gaps + 1,
        hist=tuple(hist),
        span=span,
        b=b,
        first_seen=state.first_seen,
        hour_c=tuple(hour_c),
        hour_e=tuple(hour_e),
        dow_c=tuple(dow_c),
        dow_e=tuple(dow_e),
        reg_n=reg_n,
        reg_m=reg_m,
        reg_v=reg_v,
        probation=probation,
        cand_m=cand_m,
    )
    return replace(new, due=_deadline(new, params, 1.0))


def observe_many(state: Rate, times: list[float] | tuple[float, ...], params: RateParams) -> Rate:
    for t in sorted(times):
        state = observe(state, t, params)
    return state


def _ew(n: int, m: float, v: float, x: float, params: RateParams) -> tuple[int, float, float]:
    n += 1
    alpha = max(1.0 / n, params.regular_alpha)
    diff = x - m
    incr = alpha * diff
    return n, m + incr, (1.0 - alpha) * (v + diff * incr)


# --- the deadline -------------------------------------------------------------------------------


def is_learning(state: Rate, params: RateParams) -> bool:
    return state.last_seen is None or state.gaps < max(1, params.learning_threshold - 1)


def deadline(state: Rate, params: RateParams, sensitivity: float = 1.0) -> float | None:
    """Unix time by which the next event is due; None while learning."""
    if sensitivity == 1.0:
        return state.due if not is_learning(state, params) else None
    return _deadline(state, params, sensitivity)


def is_overdue(state: Rate, now: float, params: RateParams, sensitivity: float = 1.0) -> bool:
    due = deadline(state, params, sensitivity)
    return due is not None and now > due


def _deadline(state: Rate, params: RateParams, sensitivity: float) -> float | None:
    if is_learning(state, params) or state.last_seen is None or state.b <= 0:
        return None
    _, clusters = cluster_gap(state, params)
    if clusters <= 0:
        return None
    last = state.last_seen
    budget = params.false_alarms_per_year * sensitivity
    p = min(0.5, budget * state.b / (clusters * YEAR))
    # A young stream's evidence is capped by how long it has been watched: 49 events in a first
    # 30-s burst are not 49 independent arrivals.
    age_hours = (last - (state.first_seen if state.first_seen is not None else last)) / HOUR
    a = min(clusters, 1.0 + params.young_clusters_per_hour * age_hours)
    b = state.b * a / clusters
    need = b * math.expm1(-math.log(p) / a)  # weighted seconds of silence allowed
    if _is_regular(state.reg_n, state.reg_v, params) and not state.probation:
        return last + _regular_gap(state.reg_n, state.reg_m, state.reg_v, params, sensitivity)
    due = _walk(last, need, *_factors(state, params))
    return max(due, last + state.span / clusters + params.min_tolerance)


def _is_regular(n: int, v: float, params: RateParams) -> bool:
    return n >= params.regular_min_gaps and math.sqrt(max(v, 0.0)) <= params.regular_max_sd


def _regular_gap(n: int, m: float, v: float, params: RateParams, sensitivity: float) -> float:
    """Longest normal gap of a regular rhythm: exp(m + z·s), s widened while few gaps are known."""
    mu = math.exp(m)
    p = min(0.5, params.false_alarms_per_year * sensitivity * mu / YEAR)
    z = math.sqrt(2.0 * math.log(1.0 / p))
    nu = max(n - 1, 1)
    z *= 1.0 + (z * z + 1.0) / (4.0 * nu)  # Student-t quantile, first-order (Cornish-Fisher)
    s = max(math.sqrt(max(v, 0.0)), 0.002) * math.sqrt(1.0 + 1.0 / max(n, 1))
    return max(mu * math.exp(z * s), mu + params.min_tolerance)


def cluster_gap(state: Rate, params: RateParams) -> tuple[float, float]:
    """(tau, clusters): gaps shorter than tau are inside a cluster (burst); tau is the smallest
    histogram edge e with e · (gaps >= e) >= cluster_fraction · span; clusters = gaps >= tau."""
    if state.span <= 0:
        return 0.0, 0.0
    above = sum(state.hist)  # gaps >= the current edge; one pass upwards, stopping early
    target = params.cluster_fraction * state.span
    for i, edge in enumerate(_EDGES):
        if above <= 0 or edge * above >= target:
            return edge, max(above, 0.0)
        above -= state.hist[i]
    return GAP0 * 2 ** (BINS / 2), 0.0


def _bin(x: float) -> int:
    if x <= GAP0:
        return 0
    return min(BINS - 1, int(2.0 * math.log2(x / GAP0)))


# --- the profile --------------------------------------------------------------------------------


def _hour_dow(t: float) -> tuple[int, int]:
    days = math.floor(t / DAY)
    return int((t - days * DAY) // HOUR), int((days + 3) % 7)  # 1970-01-01 was a Thursday; Monday = 0


def _factors(state: Rate, params: RateParams) -> tuple[list[float], list[float]]:
    """Relative rate per hour of day and per day of week, shrunk towards 1 by profile_prior."""
    total_e = sum(state.hour_e)
    if total_e <= 0:
        return [1.0] * 24, [1.0] * 7
    rbar = sum(state.hour_c) / total_e  # arrivals per second over the profile's own window
    k = params.profile_prior
    fh = [(c + k) / (e * rbar + k) for c, e in zip(state.hour_c, state.hour_e, strict=True)]
    total_d = sum(state.dow_e)
    rbar_d = sum(state.dow_c) / total_d if total_d > 0 else 0.0  # its own: the days may start again
    fd = [(c + k) / (e * rbar_d + k) for c, e in zip(state.dow_c, state.dow_e, strict=True)]
    return fh, fd


def _expose(
    start: float, end: float, fh: list[float], fd: list[float], hour_e: list[float], dow_e: list[float]
) -> float:
    """Add [start, end) to the per-hour and per-day exposure; return its profile-weighted length."""
    u, weighted, steps = start, 0.0, 0
    while u < end:
        if steps >= _STEP_LIMIT:
            return weighted + (end - u)
        h, d = _hour_dow(u)
        seg = min(end, (math.floor(u / HOUR) + 1) * HOUR) - u
        hour_e[h] += seg
        dow_e[d] += seg
        weighted += seg * fh[h] * fd[d]
        u += seg
        steps += 1
    return weighted


def _walk(start: float, need: float, fh: list[float], fd: list[float]) -> float:
    """The time at which `need` profile-weighted seconds have passed since `start`."""
    u, steps = start, 0
    while steps < _STEP_LIMIT:
        h, d = _hour_dow(u)
        f = fh[h] * fd[d]
        seg = (math.floor(u / HOUR) + 1) * HOUR - u
        if f * seg >= need:
            return u + need / f
        need -= f * seg
        u += seg
        steps += 1
    return u + need


def weighted_between(state: Rate, start: float, end: float, params: RateParams) -> float:
    fh, fd = _factors(state, params)
    return _expose(start, end, fh, fd, [0.0] * 24, [0.0] * 7)
