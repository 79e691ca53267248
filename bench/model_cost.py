"""CPU cost of the event kind's silence model on the detector's hot path: pure, no servers.

What ``heron_detector.store.apply_events_messages`` does per monitor and run of messages, on its
own: load the stored snapshot (``orjson.loads`` of the jsonb, ``from_dict``), fold the run's event
times of the stream (``apply_events``), compute the deadline, and write the snapshot back
(``to_dict``, ``orjson.dumps``, the jsonb encoder). Measured for the rate model (what the
detector runs) and for the cadence model it replaced, on the streams of
``bench/detector_throughput.py`` (a regular event every 15 s) and on Poisson streams, with
``--per-run`` events of a stream per run (the throughput benchmark delivers ~80; a quiet stream
1). Prints µs per event (best of ``--repeat``: the least disturbed by other processes) and the
snapshot size.

    .venv/bin/python bench/model_cost.py [--per-run 1,10,80] [--events 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import orjson

from heron_common.monitors import cadence, event, rate
from heron_common.settings import Settings

T0 = 1_800_000_000.0


def streams(n: int) -> dict[str, list[float]]:
    rng = random.Random(7)
    poisson, t = [], T0
    for _ in range(n):
        t += rng.expovariate(1 / 15)
        poisson.append(t)
    return {
        "every 15 s (detector_throughput)": [T0 + 15.0 * i for i in range(n)],
        "Poisson, mean 15 s": poisson,
    }


def rate_path(times: list[float], per_run: int) -> tuple[float, int]:
    params = event.params_from(Settings())
    stored = orjson.dumps(rate.to_dict(rate.Rate()))
    t0 = time.perf_counter()
    for i in range(0, len(times), per_run):
        monitor = event.Monitor(event.UP, event.load(orjson.loads(stored), params), i)
        after, _ = event.apply_events(monitor, times[i : i + per_run], params)
        after.deadline(params)
        stored = orjson.dumps(rate.to_dict(after.learned))
    return time.perf_counter() - t0, len(stored)


def cadence_path(times: list[float], per_run: int) -> tuple[float, int]:
    params = cadence.CadenceParams()
    stored = orjson.dumps(cadence.to_dict(cadence.Cadence()))
    t0 = time.perf_counter()
    for i in range(0, len(times), per_run):
        state = cadence.observe_many(cadence.from_dict(orjson.loads(stored)), times[i : i + per_run], params)
        cadence.deadline(state, params)
        stored = orjson.dumps(cadence.to_dict(state))
    return time.perf_counter() - t0, len(stored)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-run", default="1,10,80", help="events of a stream per run (transaction)")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    paths: dict[str, Callable[[list[float], int], tuple[float, int]]] = {"rate": rate_path, "cadence": cadence_path}
    print(f"{'stream':34} {'per run':>7}  " + "  ".join(f"{m + ' µs/event':>17} {'snapshot':>8}" for m in paths))
    for name, times in streams(args.events).items():
        for per_run in (int(x) for x in args.per_run.split(",")):
            cells = []
            for path in paths.values():
                best, size = min(path(times, per_run) for _ in range(args.repeat))
                cells.append(f"{best / len(times) * 1e6:>17.2f} {size:>7} B")
            print(f"{name:34} {per_run:>7}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
