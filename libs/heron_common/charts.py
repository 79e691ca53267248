"""The geometry of the dashboard's small inline-SVG charts. Pure: numbers in, coordinates out; the
templates draw them (no JavaScript, no chart library).

- :func:`sparkline`: a monitor's recent rate (events or pings per bucket) as a polyline;
- :func:`interval_chart`: the gaps between its recent observations as bars, against the expected
  interval and the deadline (expected + tolerance) as horizontal lines.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sparkline:
    points: str  # "x,y x,y …" for <polyline points=…>
    area: str  # the same closed along the bottom, for a filled <polygon>
    peak: int  # the largest count (the top of the chart)
    total: int
    width: int
    height: int


def sparkline(counts: Sequence[int], width: int = 120, height: int = 24, pad: float = 2.0) -> Sparkline:
    """``counts`` oldest first, spread across ``width``; the peak touches the top (less ``pad``),
    zero the bottom. A single bucket is drawn as a flat line."""
    n = len(counts)
    peak = max(counts, default=0)
    inner = height - 2 * pad
    if n == 0:
        return Sparkline("", "", 0, 0, width, height)
    step = width / (n - 1) if n > 1 else 0.0
    coords = []
    for i, c in enumerate(counts):
        x = i * step if n > 1 else 0.0
        y = pad + inner * (1 - (c / peak if peak else 0.0))
        coords.append((round(x, 1), round(y, 1)))
    if n == 1:
        coords.append((float(width), coords[0][1]))
    points = " ".join(f"{x:g},{y:g}" for x, y in coords)
    area = f"{coords[0][0]:g},{height:g} {points} {coords[-1][0]:g},{height:g}"
    return Sparkline(points, area, peak, sum(counts), width, height)


def bucket_counts(times: Sequence[float], start: float, end: float, buckets: int) -> list[int]:
    """How many of ``times`` fall in each of ``buckets`` equal spans of [start, end)."""
    counts = [0] * buckets
    span = (end - start) / buckets if buckets and end > start else 0.0
    if not span:
        return counts
    for t in times:
        if start <= t < end:
            counts[min(int((t - start) / span), buckets - 1)] += 1
    return counts


def gaps(times: Sequence[float]) -> list[float]:
    """The intervals between consecutive observation times (any order in), oldest first."""
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    seconds: float
    over: bool  # longer than the deadline allowed: the gap an incident was (or would be) opened for


@dataclass(frozen=True)
class IntervalChart:
    bars: list[Bar]
    expected_y: float | None  # where the expected interval's line is drawn
    deadline_y: float | None  # where expected + tolerance is
    top: float  # the seconds the chart's top stands for
    width: int
    height: int


def interval_chart(
    intervals: Sequence[float],
    expected: float | None,
    tolerance: float | None,
    width: int = 600,
    height: int = 160,
    gap: float = 2.0,
) -> IntervalChart:
    """Bars for ``intervals`` (oldest first) scaled so the tallest bar and the deadline both fit."""
    limit = expected + tolerance if expected is not None and tolerance is not None else None
    top = max([*intervals, limit or 0.0, expected or 0.0, 1e-9]) * 1.1
    n = len(intervals)
    slot = width / n if n else width
    bar_width = max(slot - gap, 1.0)

    def y_of(seconds: float) -> float:
        return round(height * (1 - seconds / top), 1)

    bars = [
        Bar(
            x=round(i * slot, 1),
            y=y_of(s),
            width=round(bar_width, 1),
            height=round(height - y_of(s), 1),
            seconds=s,
            over=limit is not None and s > limit,
        )
        for i, s in enumerate(intervals)
    ]
    return IntervalChart(
        bars,
        y_of(expected) if expected is not None else None,
        y_of(limit) if limit is not None else None,
        top,
        width,
        height,
    )
