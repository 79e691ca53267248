"""Calibrated silence deadlines for one event stream: a learned, profiled arrival rate.

Pure (no I/O, no clock reads; times are unix seconds passed in), O(1) per event, bounded state
(about 200 numbers). The deadline is the moment the silence since the last event becomes less
probable than the false-alarm budget allows, under what the stream has shown:

* **Clusters.** Events closer together than ``tau`` belong to one cluster (a burst); the rate is
  learned over cluster starts, so 50 events in 30 s once an hour teach "once an hour".
  ``tau`` is the fixed point ``tau = cluster_fraction · span / clusters(tau)`` over a decayed
  histogram of log-gaps: the typical time between clusters is at least 1/cluster_fraction times
  the gaps inside them. For a Poisson stream tau is a few % of the mean gap (it changes nothing).
* **Rate with uncertainty.** Cluster starts are Poisson with rate ``r·f(t)``: ``f`` is the stream's
  own hour-of-day × day-of-week profile (decayed counts over exposure, shrunk towards 1), ``r`` has
  a Gamma(a, b) posterior (a: decayed cluster count, b: decayed profile-weighted exposure). The
  predictive probability of no cluster in a silence worth ``Λ`` weighted seconds is the Lomax tail
  ``(b / (b + Λ))^a``: a young stream (small a) is tolerant and tightens as evidence grows.
* **Budget.** ``false_alarms_per_year`` (× per-monitor ``sensitivity``) over the clusters expected
  in a year gives the per-silence probability ``p``; the deadline solves ``(b/(b+Λ))^a = p``, i.e.
  ``Λ = b·(p^(-1/a) - 1)``, walked forward through the profile.
* **Regular streams.** If the log of the gaps between clusters varies by less than
  ``regular_max_sd`` (cron, hourly batch, daily job), the deadline is the geometric mean gap times
  ``exp(z·s)``, z from ``p`` (Gaussian tail, widened Student-style while few gaps are known), and at
  least ``min_tolerance`` past the mean gap: a skipped daily job is reported minutes after its time.
* **Change.** A silence that overran its deadline shrinks the rate evidence to ``shrink_to``
  clusters (the next deadlines are tolerant while the new rate is learned: one alert, not a stream)
  and puts a regular rhythm on probation: the next gap confirms it or replaces it.

    state = observe_many(state, times, params)   # a batch of event times, any order (observe: one)
    deadline(state, params)                      # None while learning, else unix seconds
    explain(state, now, params)                  # why: expected by when, quiet for, arrivals, p

**Cost.** ``observe_many`` folds a batch in one pass over mutable working copies: the decays are
kept as running scale factors (the gap histogram's per cluster, the profile's per second), so an
event costs O(1) arithmetic instead of rescaling ~130 numbers, and the deadline, which only
matters to judge a gap that might have overrun it, is computed only for gaps longer than a cheap
lower bound of it (``mean gap + min_tolerance``) and once at the end, walking the profile one
hour at a time as far as it needs. The profile is stored relative to a reference time
(``profile_at``) and decayed on reading, so a fold touches only the hours and days its gaps cover.
The snapshot (``to_dict``) packs the arrays as float64: exact, ~1.2 KB, cheap to write and read.
"""

from __future__ import annotations

import binascii
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

SNAPSHOT_VERSION = 3
YEAR = 365.25 * 86400.0
HOUR, DAY = 3600.0, 86400.0
BINS = 64  # log-gap histogram: bin i holds gaps in [GAP0·√2^i, GAP0·√2^(i+1))
GAP0 = 0.01
_EDGES = tuple(GAP0 * 2 ** (i / 2) if i else 0.0 for i in range(BINS))
_TAU_MAX = GAP0 * 2 ** (BINS / 2)
_LOG_EDGES = tuple(math.log(e) if e else -math.inf for e in _EDGES)
_LOG_TAU_MAX = math.log(_TAU_MAX)
_STEP_LIMIT = 24 * 120  # profile walk bound (hours); beyond, the profile is taken as flat
_REBASE_HALF_LIVES = 40.0  # the stored profile is rebased once its scale reaches 2^40


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
    young_clusters_per_hour: float = 10.0  # evidence is capped at 1 + this × hours watched (inf: no cap)

    def __post_init__(self) -> None:
        if self.learning_threshold < 1:
            raise ValueError("learning_threshold must be >= 1")
        if not (self.min_tolerance >= 0 and 0 < self.false_alarms_per_year < math.inf):
            raise ValueError("min_tolerance must be >= 0 and false_alarms_per_year finite and > 0")
        if not 0 < self.cluster_fraction < 1 or self.memory < 2 or not self.shrink_to > 0:
            raise ValueError("cluster_fraction in (0, 1), memory >= 2, shrink_to > 0")
        if not (self.young_clusters_per_hour > 0 and self.profile_half_life > 0 and self.profile_prior > 0):
            raise ValueError("young_clusters_per_hour, profile_half_life and profile_prior must be > 0")
        if not (0 < self.regular_alpha <= 1 and self.regular_max_sd >= 0 and self.regular_min_gaps >= 2):
            raise ValueError("regular_alpha in (0, 1], regular_max_sd >= 0, regular_min_gaps >= 2")


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
    # The profile, stored relative to ``profile_at``: the value as of ``last_seen`` is the stored one
    # times 0.5^((last_seen - profile_at) / profile_half_life) (see _profile_scale).
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
    profile_at: float | None = None  # reference time of the stored profile (None: last_seen)


# --- observing ----------------------------------------------------------------------------------


def observe(state: Rate, t: float, params: RateParams) -> Rate:
    """Fold one event time in. Late events and duplicates are counted and teach nothing."""
    return observe_many(state, (t,), params)


def observe_many(state: Rate, times: Iterable[float], params: RateParams) -> Rate:
    """Fold a batch of event times in (any order: sorting recovers the true order inside a batch).

    The same as observing them one by one (up to float rounding): each gap is judged against the
    deadline of the state before it, but that deadline is only computed when the gap is longer
    than its lower bound.
    """
    ts = sorted(times)
    if not math.isfinite(sum(ts)):  # one C loop; only then look for the culprit
        for t in ts:
            if not math.isfinite(t):
                raise ValueError(f"event time must be finite, got {t!r}")
    if not ts:
        return state
    count, last, first = state.count, state.last_seen, state.first_seen
    start = 0
    if last is None:
        count, last, first, start = 1, ts[0], ts[0], 1
    if start >= len(ts) or ts[-1] <= last:
        # Nothing newer than the last event (or only the first one): counted, nothing learned.
        if state.last_seen is None:
            return replace(state, count=count + len(ts) - 1, last_seen=last, first_seen=first, profile_at=last)
        return replace(state, count=count + len(ts))

    # Working copies. The histogram's decay is a running factor g (true value = stored · g; inv_g =
    # 1/g), the profile is stored relative to the reference time pt (true value at u = stored ·
    # 2^-((u-pt)/hl)); z turns the stored profile into its value as of the last event.
    hist = list(state.hist)
    span, b, g, inv_g = state.span, state.b, 1.0, 1.0
    total = sum(hist)
    hc, he, dc, de = list(state.hour_c), list(state.hour_e), list(state.dow_c), list(state.dow_e)
    pt = state.profile_at if state.profile_at is not None else last
    s_hc, s_he, s_dc, s_de = sum(hc), sum(he), sum(dc), sum(de)
    reg_n, reg_m, reg_v, probation, cand_m = state.reg_n, state.reg_m, state.reg_v, state.probation, state.cand_m
    gaps = state.gaps
    due, due_known = state.due, True  # the deadline of the state before the next event

    hl = params.profile_half_life
    z = 2.0 ** ((pt - last) / hl)
    last_hour = math.floor(last / HOUR)
    keep0 = 1.0 - 1.0 / params.memory
    shrink_to, cf, min_tol = params.shrink_to, params.cluster_fraction, params.min_tolerance
    learn_gaps = max(1, params.learning_threshold - 1)
    reg_min, reg_var, reg_alpha = params.regular_min_gaps, params.regular_max_sd**2, params.regular_alpha
    prior = params.profile_prior
    log_gap0, top_bin = math.log2(GAP0), BINS - 1

    for t in ts[start:]:
        if t <= last:
            count += 1
            continue
        x = t - last

        # tau and the clusters of the state before this event (one pass up the histogram).
        if span > 0:
            above, target = total, cf * span
            tau, log_tau = _TAU_MAX, _LOG_TAU_MAX
            for edge, log_edge, hv in zip(_EDGES, _LOG_EDGES, hist, strict=True):
                if above <= 0 or edge * above >= target:
                    tau, log_tau = edge, log_edge
                    break
                above -= hv
            else:
                above = 0.0
            if above < 0:
                above = 0.0
        else:
            tau, log_tau, above = 0.0, -math.inf, 0.0
        clusters = above * g

        # Did this gap overrun the deadline in force? Computed only past a cheap lower bound.
        overdue = False
        if due_known:
            overdue = due is not None and t > due
        elif gaps >= learn_gaps and b > 0 and above > 0:
            if reg_n >= reg_min and reg_v <= reg_var and not probation:
                if t > last + math.exp(reg_m) + min_tol:
                    due = last + _regular_gap(reg_n, reg_m, reg_v, params, 1.0)
                    overdue = t > due
            else:
                floor = last + span / above + min_tol
                if t > floor:
                    prof = (hc, he, dc, de, s_hc, s_he, s_dc, s_de, z)
                    due = _rate_due(last, first, b * g, clusters, span * g, prof, params, 1.0)
                    overdue = t > due
        learned_end = due if overdue and due is not None and due < t else t

        cluster = x >= tau
        forget_days = False
        if cluster:
            keep = keep0
            if overdue and clusters > shrink_to:
                # Outage or change: keep little evidence, so the next deadlines are tolerant while the
                # new rhythm (if any) is learned; an outage costs a few tolerant hours, a change one alert.
                keep *= shrink_to / clusters
                # The day-of-week profile compares days seen at different times: across a change of level
                # the days before it would look busy, so it starts again (the hour profile keeps its shape).
                forget_days = True
            g *= keep
            if g < 1e-100:
                hist = [v * g for v in hist]
                span, b, g = span * g, b * g, 1.0
                total = sum(hist)
            inv_g = 1.0 / g

        # The profile: the gap's exposure per hour and day, weighted by the factors before it. It sees
        # the whole silence (that those hours were quiet is its lesson); the level only up to the deadline.
        t_hour = math.floor(t / HOUR)
        one_hour = t <= (last_hour + 1) * HOUR and not forget_days
        if one_hour:
            # The common case: the gap lies within one hour. One factor, O(1).
            h, d = last_hour % 24, (last_hour // 24 + 3) % 7
            f = 1.0
            if s_he > 0:
                f = (hc[h] * z + prior) / (he[h] * z * (s_hc / s_he) + prior)
                f *= (dc[d] * z + prior) / ((de[d] * z * (s_dc / s_de) if s_de > 0 else 0.0) + prior)
            weighted = (learned_end - last) * f
        else:
            fh, fd = _factor_lists(hc, he, dc, de, s_hc, s_he, s_dc, s_de, z, params)
            weighted = _weighted(last, learned_end, fh, fd)
            if forget_days:
                dc, de, s_dc, s_de = [0.0] * 7, [0.0] * 7, 0.0, 0.0
        if t - pt > _REBASE_HALF_LIVES * hl:
            # Rebase the stored profile at t (values far older than 2^-40 underflow to 0, as they should).
            r = 2.0 ** ((pt - t) / hl)
            hc, he, dc, de = [v * r for v in hc], [v * r for v in he], [v * r for v in dc], [v * r for v in de]
            s_hc, s_he, s_dc, s_de, pt = s_hc * r, s_he * r, s_dc * r, s_de * r, t
        grow = 2.0 ** ((t - pt) / hl)  # a value added at t -> stored (at most 2^40)
        if one_hour:
            add = x * grow
            he[h] += add
            de[d] += add
            s_he += add
            s_de += add
        else:
            added = _expose(last, t, he, de, grow)
            s_he += added
            s_de += added
        learned = learned_end - last
        b += weighted * inv_g
        span += learned * inv_g
        hist[0 if learned <= GAP0 else min(top_bin, int(2.0 * (math.log2(learned) - log_gap0)))] += inv_g
        total += inv_g

        if cluster:
            lx = math.log(x)
            ew = True
            if reg_n and reg_m < log_tau:
                # What was learned as arrivals is now inside one burst (a bursty stream met cold): the
                # rhythm and the profile's arrival counts are re-learned in the new unit.
                reg_n, reg_m, reg_v, probation, ew = 1, lx, 0.0, False, False
                hc, he, dc, de = [0.0] * 24, [0.0] * 24, [0.0] * 7, [0.0] * 7
                s_hc = s_he = s_dc = s_de = 0.0
            elif overdue and reg_n >= reg_min and reg_v <= reg_var:
                probation, cand_m, ew = True, lx, False
            elif overdue:
                reg_n, reg_m, reg_v, ew = 1, lx, 0.0, False
            elif probation:
                probation = False
                if x > _regular_gap(reg_n, reg_m, reg_v, params, 1.0):
                    reg_n, reg_m, reg_v = 1, cand_m, 0.0  # a new rhythm, from the gap that broke the old one
                # else the old rhythm holds: the silence was an outage
            if ew:  # West's exponentially weighted mean and variance of the log-gaps
                reg_n += 1
                alpha = 1.0 / reg_n if reg_n * reg_alpha < 1.0 else reg_alpha
                diff = lx - reg_m
                incr = alpha * diff
                reg_m += incr
                reg_v = (1.0 - alpha) * (reg_v + diff * incr)
            th, td = t_hour % 24, (t_hour // 24 + 3) % 7
            hc[th] += grow
            dc[td] += grow
            s_hc += grow
            s_dc += grow

        count += 1
        gaps += 1
        last, last_hour, z = t, t_hour, 1.0 / grow
        due_known = False

    if g != 1.0:
        hist = [v * g for v in hist]
        span, b = span * g, b * g
    # The deadline of the new state, from the working copies (the same as _deadline(new)).
    due = None
    if gaps >= learn_gaps and b > 0:
        clusters = _clusters(hist, span, cf)[1]
        if clusters > 0:
            if reg_n >= reg_min and reg_v <= reg_var and not probation:
                due = last + _regular_gap(reg_n, reg_m, reg_v, params, 1.0)
            else:
                prof = (hc, he, dc, de, s_hc, s_he, s_dc, s_de, z)
                due = _rate_due(last, first, b, clusters, span, prof, params, 1.0)
    return Rate(
        count=count,
        last_seen=last,
        gaps=gaps,
        hist=tuple(hist),
        span=span,
        b=b,
        first_seen=first,
        hour_c=tuple(hc),
        hour_e=tuple(he),
        dow_c=tuple(dc),
        dow_e=tuple(de),
        reg_n=reg_n,
        reg_m=reg_m,
        reg_v=reg_v,
        probation=probation,
        cand_m=cand_m,
        due=due,
        profile_at=pt,
    )


def restart(state: Rate, at: float, params: RateParams) -> Rate:
    """The state judged from ``at`` on as if an event had just been seen (resuming after a pause:
    the pause is not held against the stream; the profile ages by it)."""
    if state.last_seen is None or at <= state.last_seen:
        return state
    moved = replace(state, last_seen=at)
    return replace(moved, due=_deadline(moved, params, 1.0))


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
    if _is_regular(state.reg_n, state.reg_v, params) and not state.probation:
        return state.last_seen + _regular_gap(state.reg_n, state.reg_m, state.reg_v, params, sensitivity)
    hc, he, dc, de = state.hour_c, state.hour_e, state.dow_c, state.dow_e
    prof = (hc, he, dc, de, sum(hc), sum(he), sum(dc), sum(de), _profile_scale(state, params))
    return _rate_due(state.last_seen, state.first_seen, state.b, clusters, state.span, prof, params, sensitivity)


def _evidence(
    last: float, first: float | None, b: float, clusters: float, params: RateParams, sensitivity: float
) -> tuple[float, float, float]:
    """(a, b, p): the Gamma evidence the deadline rests on, and the per-silence alarm probability.

    A young stream's evidence is capped by how long it has been watched: 49 events in a first 30-s
    burst are not 49 independent arrivals."""
    budget = params.false_alarms_per_year * sensitivity
    p = min(0.5, budget * b / (clusters * YEAR))
    a = clusters
    if params.young_clusters_per_hour < math.inf:
        age_hours = (last - (first if first is not None else last)) / HOUR
        a = min(clusters, 1.0 + params.young_clusters_per_hour * age_hours)
    return a, b * a / clusters, p


# The profile as the deadline needs it: the four stored arrays, their sums, and the scale to their
# value as of the last event.
_Profile = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float], float, float, float, float, float]


def _rate_due(
    last: float,
    first: float | None,
    b: float,
    clusters: float,
    span: float,
    prof: _Profile,
    params: RateParams,
    sensitivity: float,
) -> float:
    a, bb, p = _evidence(last, first, b, clusters, params, sensitivity)
    need = bb * math.expm1(-math.log(p) / a)  # weighted seconds of silence allowed
    return max(_walk_profile(last, need, prof, params), last + span / clusters + params.min_tolerance)


def _walk_profile(start: float, need: float, prof: _Profile, params: RateParams) -> float:
    """_walk, with each hour's factor computed as the walk reaches it: a deadline is usually within
    a few hours, so the 31 factors are only all computed for a walk longer than a day."""
    hc, he, dc, de, s_hc, s_he, s_dc, s_de, z = prof
    if s_he <= 0:
        return _walk(start, need, [1.0] * 24, [1.0] * 7)
    k = params.profile_prior
    rz, rzd = z * s_hc / s_he, (z * s_dc / s_de if s_de > 0 else 0.0)
    u, hour = start, math.floor(start / HOUR)
    for _ in range(24):
        h, d = hour % 24, (hour // 24 + 3) % 7
        f = (hc[h] * z + k) / (he[h] * rz + k) * (dc[d] * z + k) / (de[d] * rzd + k)
        seg = (hour + 1) * HOUR - u
        if f * seg >= need:
            return u + need / f
        need -= f * seg
        u += seg
        hour += 1
    fh, fd = _factor_lists(hc, he, dc, de, s_hc, s_he, s_dc, s_de, z, params)
    return _walk(u, need, fh, fd, 24)


def _is_regular(n: int, v: float, params: RateParams) -> bool:
    return n >= params.regular_min_gaps and math.sqrt(max(v, 0.0)) <= params.regular_max_sd


def _regular_spread(n: int, v: float) -> float:
    return max(math.sqrt(max(v, 0.0)), 0.002) * math.sqrt(1.0 + 1.0 / max(n, 1))


def _widen(z: float, n: int) -> float:
    """Student-t quantile from the Gaussian one, first order (Cornish-Fisher), ν = n - 1."""
    return z * (1.0 + (z * z + 1.0) / (4.0 * max(n - 1, 1)))


def _regular_gap(n: int, m: float, v: float, params: RateParams, sensitivity: float) -> float:
    """Longest normal gap of a regular rhythm: exp(m + z·s), s widened while few gaps are known."""
    mu = math.exp(m)
    p = min(0.5, params.false_alarms_per_year * sensitivity * mu / YEAR)
    z = _widen(math.sqrt(2.0 * math.log(1.0 / p)), n)
    return max(mu * math.exp(z * _regular_spread(n, v)), mu + params.min_tolerance)


def cluster_gap(state: Rate, params: RateParams) -> tuple[float, float]:
    """(tau, clusters): gaps shorter than tau are inside a cluster (burst); tau is the smallest
    histogram edge e with e · (gaps >= e) >= cluster_fraction · span; clusters = gaps >= tau."""
    return _clusters(state.hist, state.span, params.cluster_fraction)


def _clusters(hist: Sequence[float], span: float, fraction: float) -> tuple[float, float]:
    if span <= 0:
        return 0.0, 0.0
    above = sum(hist)  # gaps >= the current edge; one pass upwards, stopping early
    target = fraction * span
    for edge, hv in zip(_EDGES, hist, strict=True):
        if above <= 0 or edge * above >= target:
            return edge, max(above, 0.0)
        above -= hv
    return _TAU_MAX, 0.0


def _bin(x: float) -> int:
    if x <= GAP0:
        return 0
    return min(BINS - 1, int(2.0 * math.log2(x / GAP0)))


# --- the profile --------------------------------------------------------------------------------


def _hour_dow(t: float) -> tuple[int, int]:
    days = math.floor(t / DAY)
    return int((t - days * DAY) // HOUR), int((days + 3) % 7)  # 1970-01-01 was a Thursday; Monday = 0


def _profile_scale(state: Rate, params: RateParams) -> float:
    """Stored profile -> its value as of the last event."""
    if state.profile_at is None or state.last_seen is None:
        return 1.0
    return 2.0 ** ((state.profile_at - state.last_seen) / params.profile_half_life)


def _factor_lists(
    hc: Sequence[float],
    he: Sequence[float],
    dc: Sequence[float],
    de: Sequence[float],
    s_hc: float,
    s_he: float,
    s_dc: float,
    s_de: float,
    z: float,
    params: RateParams,
) -> tuple[list[float], list[float]]:
    if s_he <= 0:
        return [1.0] * 24, [1.0] * 7
    k = params.profile_prior
    rz = z * s_hc / s_he
    fh = [(c * z + k) / (e * rz + k) for c, e in zip(hc, he, strict=True)]
    rzd = z * s_dc / s_de if s_de > 0 else 0.0  # its own mean: the days may start again
    fd = [(c * z + k) / (e * rzd + k) for c, e in zip(dc, de, strict=True)]
    return fh, fd


def _factors(state: Rate, params: RateParams) -> tuple[list[float], list[float]]:
    """Relative rate per hour of day and per day of week, shrunk towards 1 by profile_prior."""
    z = _profile_scale(state, params)
    hc, he, dc, de = state.hour_c, state.hour_e, state.dow_c, state.dow_e
    return _factor_lists(hc, he, dc, de, sum(hc), sum(he), sum(dc), sum(de), z, params)


def _expose(start: float, end: float, hour_e: list[float], dow_e: list[float], scale: float) -> float:
    """Add [start, end) × scale to the per-hour and per-day exposure; return what was added (all
    of it, unless the span is longer than _STEP_LIMIT hours: then its start only)."""
    u, added, steps = start, 0.0, 0
    while u < end and steps < _STEP_LIMIT:
        h, d = _hour_dow(u)
        seg = min(end, (math.floor(u / HOUR) + 1) * HOUR) - u
        hour_e[h] += seg * scale
        dow_e[d] += seg * scale
        added += seg * scale
        u += seg
        steps += 1
    return added


def _weighted(start: float, end: float, fh: list[float], fd: list[float]) -> float:
    """The profile-weighted length of [start, end): hour by hour, whole days at once."""
    u, weighted, steps = start, 0.0, 0
    day = HOUR * sum(fh)
    while u < end:
        if steps >= _STEP_LIMIT:
            return weighted + (end - u)
        if u % DAY == 0.0 and end - u >= DAY and steps + 24 <= _STEP_LIMIT:
            weighted += day * fd[_hour_dow(u)[1]]
            u += DAY
            steps += 24
            continue
        h, d = _hour_dow(u)
        seg = min(end, (math.floor(u / HOUR) + 1) * HOUR) - u
        weighted += seg * fh[h] * fd[d]
        u += seg
        steps += 1
    return weighted


def _walk(start: float, need: float, fh: list[float], fd: list[float], steps: int = 0) -> float:
    """The time at which `need` profile-weighted seconds have passed since `start`."""
    u = start
    day = HOUR * sum(fh)
    while steps < _STEP_LIMIT:
        if u % DAY == 0.0 and steps + 24 <= _STEP_LIMIT:
            w = day * fd[_hour_dow(u)[1]]
            if w < need:
                need -= w
                u += DAY
                steps += 24
                continue
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
    return _weighted(start, end, fh, fd)


def profile(state: Rate, params: RateParams) -> dict[str, list[float]]:
    """The learned relative rate per hour of day (UTC, 0-23) and day of week (Monday first)."""
    fh, fd = _factors(state, params)
    return {"hour_of_day": fh, "day_of_week": fd}


# --- explanation and snapshots ------------------------------------------------------------------


def explain(state: Rate, now: float, params: RateParams, sensitivity: float = 1.0) -> dict[str, Any]:
    """What the deadline rests on, for alerts and the monitor API: the model (``rate`` or
    ``regular``), the expected interval, how long it has been quiet at ``now``, how many arrivals
    (clusters) and events would normally have come in that time, the probability of a silence that
    long under the model, and the probability at which the deadline is set (the alarm threshold)."""
    due = deadline(state, params, sensitivity)
    out: dict[str, Any] = {"learning": is_learning(state, params), "deadline": due}
    tau, clusters = cluster_gap(state, params)
    last = state.last_seen
    if last is None or clusters <= 0 or state.b <= 0:
        return out
    quiet = max(now - last, 0.0)
    per_cluster = max(sum(state.hist) / clusters, 1.0)
    if _is_regular(state.reg_n, state.reg_v, params) and not state.probation:
        mu = math.exp(state.reg_m)
        s = _regular_spread(state.reg_n, state.reg_v)
        zq = (math.log(quiet) - state.reg_m) / s if quiet > 0 else -math.inf
        probability = _student_tail(zq, state.reg_n)
        threshold = min(0.5, params.false_alarms_per_year * sensitivity * mu / YEAR)
        arrivals = quiet / mu
        model = "regular"
    else:
        a, bb, threshold = _evidence(last, state.first_seen, state.b, clusters, params, sensitivity)
        lam = weighted_between(state, last, last + quiet, params)
        probability = (bb / (bb + lam)) ** a
        arrivals = clusters / state.b * lam
        mu = state.b / clusters
        model = "rate"
    out.update(
        model=model,
        quiet_for=quiet,
        expected_interval=mu,
        expected_arrivals=arrivals,
        expected_events=arrivals * per_cluster,
        silence_probability=probability,
        threshold=threshold,
        cluster_gap=tau,
        events_per_cluster=per_cluster,
    )
    return out


def _student_tail(zq: float, n: int) -> float:
    """P(gap at least this long) for a regular rhythm: the Gaussian tail of the z that _widen
    turns into ``zq`` (so at the deadline it is about the alarm threshold)."""
    if zq == -math.inf:
        return 1.0
    z = zq
    for _ in range(50):  # Newton on _widen(z, n) = zq: odd, increasing, convex for z > 0
        step = (_widen(z, n) - zq) / (1.0 + (3.0 * z * z + 1.0) / (4.0 * max(n - 1, 1)))
        z -= step
        if abs(step) <= 1e-12 * max(1.0, abs(z)):
            break
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def expected_interval(state: Rate, params: RateParams) -> float | None:
    _, clusters = cluster_gap(state, params)
    if clusters <= 0 or state.b <= 0:
        return None
    if _is_regular(state.reg_n, state.reg_v, params) and not state.probation:
        return math.exp(state.reg_m)
    return state.b / clusters


def to_dict(state: Rate) -> dict[str, Any]:
    """Compact JSON-able snapshot with a version. The arrays are packed: little-endian float64,
    base64 (exact, and ~10× cheaper to write and read than JSON numbers), the histogram trimmed to
    the bins above 10⁻¹² of its largest (the others are, in effect, empty); ~1.2 KB for a stream
    with a full profile. ``from_dict(to_dict(s)) == s``."""
    raw = state.hist
    cut = max(raw) * _EMPTY
    lo, hi = 0, BINS
    while lo < hi and raw[lo] <= cut:
        lo += 1
    while hi > lo and raw[hi - 1] <= cut:
        hi -= 1
    return {
        "v": SNAPSHOT_VERSION,
        "count": state.count,
        "last_seen": state.last_seen,
        "first_seen": state.first_seen,
        "due": state.due,
        "gaps": state.gaps,
        "span": state.span,
        "b": state.b,
        "hist_at": lo,
        "hist": _pack(raw[lo:hi]),
        "profile_at": state.profile_at,
        "profile": _pack(state.hour_c + state.hour_e + state.dow_c + state.dow_e),
        "reg_n": state.reg_n,
        "reg_m": state.reg_m,
        "reg_v": state.reg_v,
        "probation": state.probation,
        "cand_m": state.cand_m,
    }


_EMPTY = 1e-12  # a histogram bin below this fraction of the largest is not stored
_PROFILE = 24 + 24 + 7 + 7


def _pack(values: tuple[float, ...]) -> str:
    return binascii.b2a_base64(struct.pack(f"<{len(values)}d", *values), newline=False).decode("ascii")


def _unpack(text: Any, n: int | None = None) -> tuple[float, ...]:
    if not isinstance(text, str):
        raise ValueError("a packed array must be a base64 string")
    data = binascii.a2b_base64(text)  # the detector wrote it; the length and the sum check the rest
    if len(data) % 8 or (n is not None and len(data) != 8 * n):
        raise ValueError(f"a packed array of {len(data)} bytes where {n} float64 were expected")
    values = struct.unpack(f"<{len(data) // 8}d", data)
    if not math.isfinite(sum(values)):  # one C loop (a stored array is far from overflowing)
        raise ValueError("a packed array holds a non-finite number")
    return values


def from_dict(d: Mapping[str, Any], params: RateParams | None = None) -> Rate:
    """Inverse of to_dict (also reads version 2, the unpacked layout of JSON lists). A version-1
    snapshot (the mean/σ cadence model) cannot be converted exactly; it becomes a young state at its
    last event with its mean gap as light evidence (two clusters' worth), so it keeps a tolerant
    deadline until events re-teach it; a regular one (σ ≤ regular_max_sd × mean over enough gaps)
    keeps its rhythm."""
    version = d.get("v", SNAPSHOT_VERSION)
    if version == 1:
        return _from_cadence(d, params or RateParams())
    if version not in (2, SNAPSHOT_VERSION):
        raise ValueError(f"unsupported rate snapshot version {version!r}")
    last_seen, due, first = d.get("last_seen"), d.get("due"), d.get("first_seen")
    if version == 2:
        hist = _floats(d.get("hist"), BINS)
        hour_c, hour_e = _floats(d.get("hour_c"), 24), _floats(d.get("hour_e"), 24)
        dow_c, dow_e = _floats(d.get("dow_c"), 7), _floats(d.get("dow_e"), 7)
        profile_at = last_seen  # v2 kept the profile as of the last event
    else:
        packed = d.get("hist")
        if packed:
            at = int(d.get("hist_at", 0))
            bins = _unpack(packed)
            if at < 0 or at + len(bins) > BINS:
                raise ValueError(f"histogram of {len(bins)} bins at {at} does not fit {BINS}")
            hist = (0.0,) * at + bins + (0.0,) * (BINS - at - len(bins))
        else:
            hist = _ZEROSB
        prof = _unpack(d["profile"], _PROFILE) if d.get("profile") else (0.0,) * _PROFILE
        hour_c, hour_e, dow_c, dow_e = prof[:24], prof[24:48], prof[48:55], prof[55:]
        profile_at = d.get("profile_at")
    return Rate(
        count=int(d.get("count", 0)),
        last_seen=None if last_seen is None else float(last_seen),
        gaps=int(d.get("gaps", 0)),
        hist=hist,
        span=float(d.get("span", 0.0)),
        b=float(d.get("b", 0.0)),
        first_seen=None if first is None else float(first),
        hour_c=hour_c,
        hour_e=hour_e,
        dow_c=dow_c,
        dow_e=dow_e,
        reg_n=int(d.get("reg_n", 0)),
        reg_m=float(d.get("reg_m", 0.0)),
        reg_v=float(d.get("reg_v", 0.0)),
        probation=bool(d.get("probation", False)),
        cand_m=float(d.get("cand_m", 0.0)),
        due=None if due is None else float(due),
        profile_at=None if profile_at is None else float(profile_at),
    )


def _from_cadence(d: Mapping[str, Any], params: RateParams) -> Rate:
    last = d.get("last_seen")
    mean, intervals = float(d.get("mean", 0.0)), int(d.get("intervals", 0))
    state = Rate(count=int(d.get("count", 0)), last_seen=None if last is None else float(last))
    state = replace(state, profile_at=state.last_seen)
    if mean > 0 and intervals > 0 and state.last_seen is not None:
        w = min(2.0, float(intervals))
        hist = [0.0] * BINS
        hist[_bin(mean)] = w
        first = state.last_seen - intervals * mean
        state = replace(state, gaps=intervals, hist=tuple(hist), span=w * mean, b=w * mean, first_seen=first)
        sd = math.sqrt(max(float(d.get("var", 0.0)), 0.0))
        if intervals >= params.regular_min_gaps and sd <= params.regular_max_sd * mean:
            # A cron or a daily job: keep its rhythm (log-normal moments from the mean and σ of the gaps).
            cv2 = (sd / mean) ** 2
            v = math.log1p(cv2)
            state = replace(state, reg_n=min(intervals, 20), reg_m=math.log(mean) - v / 2, reg_v=v)
    return replace(state, due=_deadline(state, params, 1.0))


def _floats(values: Any, n: int) -> tuple[float, ...]:
    if not values:
        return (0.0,) * n
    out = tuple(map(float, values))
    if len(out) != n:
        raise ValueError(f"expected {n} values, got {len(out)}")
    return out
