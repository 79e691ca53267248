"""Detection quality of the silence models on synthetic streams: false alarms vs outages caught.

Pure simulation, no servers. Each scenario generates event times for a stream over ``--days`` days
(default 28, the first ``--warmup`` days, default 7, without outages), removes the events of a few
injected outages of realistic lengths after the warm-up, and drives every model through the
interface the detector uses: events are observed in order, and after each event the model gives a
deadline; the detector scans every ``SCAN`` seconds and raises an alert at the first scan past the
deadline, once per silence (the next event clears it). An alert is

* **a detection** if it is raised at or after an outage's start, in the silence that outage is in
  (the silence ends with the first event after the outage; delay = alert time - outage start),
* **a false alarm** otherwise (including an alert before an outage started: the outage is then
  missed, since one silence raises one alert).

The models: ``original`` (the original project's rule, ``max(5 × mean gap, 60 s)`` after 10
events), ``cadence`` (Heron's previous model, ``heron_common.monitors.cadence``) and ``rate`` (the
model the detector runs, ``heron_common.monitors.rate`` with the production settings).

Printed per scenario and overall, per model: false alarms per 1,000 stream-days, outages detected
(of injected), median detection delay. Deterministic per seed. Tuning seeds are 1-3; the default
evaluation seeds (101-105) were never used for tuning.

    .venv/bin/python bench/detection.py [--seeds 101,102,103,104,105] [--streams 2] [--days 28]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from heron_common.monitors import cadence, event, rate
from heron_common.settings import Settings

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday: day-of-week profiles line up
SCAN = 10.0  # seconds between detector scans
TUNING_SEEDS = (1, 2, 3)
EVAL_SEEDS = (101, 102, 103, 104, 105)


# --- the models, behind the detector's interface ------------------------------------------------


class Model(Protocol):
    def observe(self, t: float) -> None: ...
    def deadline(self) -> float | None: ...


class Cadence:
    """The previous model (the detector ran it until issue 9): heron_common.monitors.cadence,
    mean + 4σ or the longest normal gap plus slack, production parameters."""

    def __init__(self) -> None:
        self.params = cadence.CadenceParams()
        self.state = cadence.Cadence()

    def observe(self, t: float) -> None:
        self.state = cadence.observe(self.state, t, self.params)

    def deadline(self) -> float | None:
        return cadence.deadline(self.state, self.params)


class Original:
    """The original project's rule: after 10 events, silent past max(5 x mean gap, 60 s)."""

    def __init__(self) -> None:
        self.n = 0
        self.first = 0.0
        self.last = 0.0

    def observe(self, t: float) -> None:
        if self.n == 0:
            self.first = t
        self.n += 1
        self.last = max(self.last, t)

    def deadline(self) -> float | None:
        if self.n < 10:
            return None
        mean = (self.last - self.first) / (self.n - 1)
        return self.last + max(5.0 * mean, 60.0)


class RateModel:
    """The model the detector runs (heron_common.monitors.rate through the event kind's
    parameters, from the production settings), one event at a time as the detector may see them."""

    def __init__(self) -> None:
        self.params = event.params_from(Settings())
        self.state = rate.Rate()

    def observe(self, t: float) -> None:
        self.state = rate.observe(self.state, t, self.params)

    def deadline(self) -> float | None:
        return rate.deadline(self.state, self.params)


MODELS: dict[str, Callable[[], Model]] = {"original": Original, "cadence": Cadence, "rate": RateModel}


# --- the scenarios ------------------------------------------------------------------------------


def poisson(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    out, t = [], start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return out
        out.append(t)


def thinned(rng: random.Random, peak: float, factor: Callable[[float], float], start: float, end: float) -> list[float]:
    """Inhomogeneous Poisson by thinning: rate(t) = peak * factor(t), factor <= 1."""
    return [t for t in poisson(rng, peak, start, end) if rng.random() < factor(t)]


def diurnal_factor(t: float) -> float:
    """Busy 9-18 h, a quiet night (3 % of the day's rate 0-6 h), weekends at 30 %."""
    hour = ((t - T0) % DAY) / HOUR
    dow = int((t - T0) // DAY) % 7
    if hour < 6:
        f = 0.03
    elif hour < 9:
        f = 0.03 + 0.97 * (hour - 6) / 3
    elif hour < 18:
        f = 1.0
    else:
        f = max(0.03, 1.0 - 0.97 * (hour - 18) / 6)
    return f * (0.3 if dow >= 5 else 1.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    generate: Callable[[random.Random, float, float], list[float]]
    outages: int  # injected after the warm-up
    min_len: float
    max_len: float
    after: float = 0.0  # outages start no earlier than this (seconds after T0), beyond the warm-up
    description: str = ""


def cron(period: float, jitter: float) -> Callable[[random.Random, float, float], list[float]]:
    def gen(rng: random.Random, start: float, end: float) -> list[float]:
        n = int((end - start) // period)
        return [start + i * period + rng.uniform(0, jitter) for i in range(1, n)]

    return gen


def bursts(rng: random.Random, start: float, end: float) -> list[float]:
    out: list[float] = []
    h = start
    while h + HOUR < end:
        h += HOUR
        b = h + rng.uniform(0, 60)
        out.extend(sorted(b + rng.uniform(0, 30) for _ in range(50)))
    return out


def daily(rng: random.Random, start: float, end: float) -> list[float]:
    return [start + d * DAY + 2 * HOUR + rng.uniform(-5 * MIN, 5 * MIN) for d in range(int((end - start) // DAY))]


def rate_drop(rng: random.Random, start: float, end: float) -> list[float]:
    cut = start + 12 * DAY
    return poisson(rng, 1 / MIN, start, cut) + poisson(rng, 1 / (10 * MIN), cut, end)


SCENARIOS = [
    Scenario("poisson_1m", lambda r, a, b: poisson(r, 1 / MIN, a, b), 3, 20 * MIN, 4 * HOUR),
    Scenario("poisson_5m", lambda r, a, b: poisson(r, 1 / (5 * MIN), a, b), 3, HOUR, 8 * HOUR),
    Scenario("poisson_15m", lambda r, a, b: poisson(r, 1 / (15 * MIN), a, b), 3, 3 * HOUR, 12 * HOUR),
    Scenario("poisson_1h", lambda r, a, b: poisson(r, 1 / HOUR, a, b), 3, 12 * HOUR, 36 * HOUR),
    Scenario("diurnal", lambda r, a, b: thinned(r, 2 / MIN, diurnal_factor, a, b), 3, HOUR, 6 * HOUR),
    Scenario("cron_5m", cron(5 * MIN, 10.0), 3, 15 * MIN, 6 * HOUR),
    Scenario("hourly_burst", bursts, 3, 2 * HOUR, 12 * HOUR),
    Scenario("rate_drop", rate_drop, 2, 2 * HOUR, 8 * HOUR, after=16 * DAY),
    Scenario("rare_user", lambda r, a, b: poisson(r, 4 / DAY, a, b), 2, 2 * DAY, 5 * DAY),
    Scenario("daily_job", daily, 3, 22 * HOUR, 23 * HOUR),
]


def make_stream(
    sc: Scenario, rng: random.Random, days: float, warmup: float
) -> tuple[list[float], list[tuple[float, float]]]:
    end = T0 + days * DAY
    times = sc.generate(rng, T0, end)
    first = T0 + max(warmup * DAY, sc.after)
    last = end - sc.max_len - DAY  # leave a day after the last outage for events to resume
    slot = (last - first) / sc.outages
    outages = []
    for i in range(sc.outages):
        length = math.exp(rng.uniform(math.log(sc.min_len), math.log(sc.max_len)))
        if sc.name == "daily_job":  # a skipped run: from up to 10 min before one 02:00 run, for 22-23 h
            day = math.floor((first + i * slot - T0) / DAY) + 1
            s = T0 + day * DAY + 2 * HOUR - 5 * MIN - rng.uniform(0, 10 * MIN)
        else:
            s = first + i * slot + rng.uniform(0, slot - length) if slot > length else first + i * slot
        outages.append((s, s + length))
    kept = [t for t in times if not any(s <= t < e for s, e in outages)]
    return kept, outages


# --- the detector loop --------------------------------------------------------------------------


@dataclass
class Tally:
    stream_days: float = 0.0
    false_alarms: int = 0
    outages: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)
    per_stream_fa: list[int] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.stream_days += other.stream_days
        self.false_alarms += other.false_alarms
        self.outages += other.outages
        self.detected += other.detected
        self.delays.extend(other.delays)
        self.per_stream_fa.extend(other.per_stream_fa)

    @property
    def fa_per_1000(self) -> float:
        return 1000.0 * self.false_alarms / self.stream_days if self.stream_days else 0.0


def run_stream(model: Model, times: list[float], outages: list[tuple[float, float]], end: float) -> Tally:
    tally = Tally(outages=len(outages))
    fa = 0
    for i, t in enumerate(times):
        model.observe(t)
        nxt = times[i + 1] if i + 1 < len(times) else end
        due = model.deadline()
        if due is None:
            continue
        alert = (math.floor(due / SCAN) + 1) * SCAN  # first scan strictly past the deadline
        if alert >= nxt:
            continue
        hit = [(s, e) for s, e in outages if t <= s < nxt and alert >= s]
        if hit:
            tally.detected += 1
            tally.delays.append(alert - hit[0][0])
        else:
            fa += 1
    tally.false_alarms = fa
    tally.per_stream_fa.append(fa)
    return tally


def fmt_delay(delays: list[float]) -> str:
    if not delays:
        return "-"
    d = statistics.median(delays)
    return f"{d / 60:.0f} min" if d < 2 * HOUR else f"{d / 3600:.1f} h"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=",".join(map(str, EVAL_SEEDS)), help="comma-separated seeds")
    ap.add_argument("--streams", type=int, default=2, help="streams per scenario per seed")
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--warmup", type=float, default=7.0)
    ap.add_argument("--models", default="", help="comma-separated subset of the models")
    ap.add_argument("--scenarios", default="", help="comma-separated subset of the scenarios")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    models = [m for m in MODELS if not args.models or m in args.models.split(",")]
    scenarios = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios.split(",")]
    tuned = sorted(set(seeds) & set(TUNING_SEEDS))
    print(
        f"seeds {seeds}{' (includes tuning seeds ' + str(tuned) + ')' if tuned else ' (none used for tuning)'}, "
        f"{args.streams} streams per scenario per seed, {args.days:g} days each, warm-up {args.warmup:g} days, "
        f"scan every {SCAN:g} s"
    )
    started = time.perf_counter()
    totals = {m: Tally() for m in models}
    rows = []
    for sc in scenarios:
        per = {m: Tally() for m in models}
        for seed in seeds:
            for k in range(args.streams):
                rng = random.Random(f"{sc.name}/{seed}/{k}")
                times, outages = make_stream(sc, rng, args.days, args.warmup)
                for m in models:
                    t = run_stream(MODELS[m](), times, outages, T0 + args.days * DAY)
                    t.stream_days = args.days
                    per[m].add(t)
        for m in models:
            totals[m].add(per[m])
            p = per[m]
            rows.append(
                (
                    sc.name,
                    m,
                    f"{p.fa_per_1000:.1f}",
                    f"{p.detected}/{p.outages}",
                    fmt_delay(p.delays),
                    str(max(p.per_stream_fa)),
                )
            )
    head = ("scenario", "model", "FA/1000 stream-days", "outages detected", "median delay", "worst stream FA")
    for m in models:
        p = totals[m]
        rows.append(
            (
                "ALL",
                m,
                f"{p.fa_per_1000:.1f}",
                f"{p.detected}/{p.outages} ({100 * p.detected / max(p.outages, 1):.0f} %)",
                fmt_delay(p.delays),
                str(max(p.per_stream_fa)),
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
