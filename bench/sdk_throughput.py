"""SDK: events per second ONE process with one ``heron.Client`` pushes into a real local ingest.

    .venv/bin/python bench/sdk_throughput.py [--events 200000] [--batch-sizes 100,1000]

1. A fresh database, private Redis/RabbitMQ prefixes (bench/_common.py ``BenchEnv``, all removed at
   the end) and the real ingest (``heron_ingest.app.create_app``, production settings: 16 shards,
   group commit with publisher confirms) in its own process (bench/_serve.py), against the
   real RabbitMQ; a real project and API key made through ingest's admin API.
2. In this process, for each batch size: one ``heron.Client`` (``max_queue_size`` large enough that
   nothing is dropped; otherwise the defaults: gzip above 4 KiB, one keep-alive connection, one
   sender thread) is warmed up (1,000 events, flush), then ``--events`` ``track()`` calls are made
   back to back in this thread (each timed with ``perf_counter_ns``, the timer's own cost
   subtracted) and ``flush()`` waits until ingest has acknowledged all of them.
3. events/s = events acknowledged (``client.stats().sent``) / (first ``track()`` → ``flush()``
   returned). Also: how long the ``track()`` loop itself took, the median/p99 cost of one call,
   the requests ingest counted (``heron_ingest_requests_total``) and CPU of both processes.

``batch_size=100`` is the SDK's default; 1,000 is its maximum (and ingest's ``max_batch_events``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    BenchEnv,
    CpuWindow,
    banner,
    create_project,
    log,
    process_cpu_seconds,
    scrape_metric,
)

try:
    import heron
except ImportError:  # not pip-installed: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk" / "python"))
    import heron

METADATA = {"order_id": "ord_123", "amount": 4200, "currency": "EUR"}
REQUESTS_METRIC = "heron_ingest_requests_total"


@dataclass
class Pushed:
    batch_size: int
    events: int
    sent: int
    dropped: int
    failed_requests: int
    delivered: bool
    track_seconds: float
    total_seconds: float
    median_us: float
    p99_us: float
    client_cpu: float
    posts: list[float]  # seconds each POST took (send, wait for ingest's answer, read it)

    @property
    def rate(self) -> float:
        return self.sent / self.total_seconds if self.total_seconds else 0.0


def warm_client(endpoint: str, key: str, events: int, batch_size: int, name: str) -> heron.Client:
    """A client whose connection is open and whose key ingest has cached (blocking)."""
    client = heron.Client(
        key,
        service="bench",
        environment="local",
        endpoint=endpoint,
        batch_size=batch_size,
        max_queue_size=events + 10_000,
    )
    for _ in range(1_000):
        client.track(f"{name}.warmup", METADATA)
    if not client.flush(timeout=60):
        client.close(timeout=5)
        raise RuntimeError(f"warm-up not delivered: {client.stats()}")
    return client


def _time_posts(client: heron.Client) -> list[float]:
    """Bench-local instrumentation: time each HTTP POST of the client's sender (a private attribute;
    if the SDK changes, the breakdown is simply left out)."""
    posts: list[float] = []
    transport = getattr(client, "_transport", None)
    post = getattr(transport, "post", None)
    if post is None:
        return posts

    def timed(*args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return post(*args, **kwargs)
        finally:
            posts.append(time.perf_counter() - t0)

    transport.post = timed  # type: ignore[union-attr]
    return posts


def push(client: heron.Client, events: int, name: str) -> Pushed:
    """Blocking: runs in a worker thread while the event loop of this process sits idle."""
    try:
        before = client.stats()
        perf = time.perf_counter_ns
        overhead = [0] * 10_000
        for i in range(len(overhead)):
            t0 = perf()
            overhead[i] = perf() - t0
        timer_ns = statistics.median(overhead)
        posts = _time_posts(client)

        track = client.track
        samples = [0] * events
        cpu0 = process_cpu_seconds(os.getpid())
        start = perf()
        for i in range(events):
            t0 = perf()
            track(name, METADATA)
            samples[i] = perf() - t0
        tracked = perf()
        delivered = client.flush(timeout=600)
        flushed = perf()
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        after = client.stats()
    finally:
        client.close(timeout=10)
    samples.sort()
    cost = [max(0.0, s - timer_ns) / 1000 for s in (samples[len(samples) // 2], samples[(len(samples) * 99) // 100])]
    total = (flushed - start) / 1e9
    return Pushed(
        batch_size=client.batch_size,
        events=events,
        sent=after.sent - before.sent,
        dropped=after.dropped - before.dropped,
        failed_requests=after.failed_requests - before.failed_requests,
        delivered=delivered,
        track_seconds=(tracked - start) / 1e9,
        total_seconds=total,
        median_us=cost[0],
        p99_us=cost[1],
        client_cpu=cpu / total if total else 0.0,
        posts=posts,
    )


async def main_async(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    results: list[tuple[Pushed, int, str]] = []
    overrides: dict = {}
    async with BenchEnv(overrides=overrides) as env:
        ingest = await env.start("ingest")
        _, key = await create_project(ingest.url, "sdk-bench")
        for size in sizes:
            banner(f"heron.Client(batch_size={size}) -> ingest {ingest.url}: {args.events:,} events")
            name = f"bench.batch{size}"
            client = await asyncio.to_thread(warm_client, ingest.url, key, args.events, size, name)
            requests0 = await scrape_metric(ingest.url, REQUESTS_METRIC)
            with CpuWindow(ingest) as cpu:
                result = await asyncio.to_thread(push, client, args.events, name)
            requests = int(await scrape_metric(ingest.url, REQUESTS_METRIC) - requests0)
            results.append((result, requests, cpu.describe(max(result.sent, 1), "event")))
            print(describe(*results[-1]), flush=True)
        log(f"ingest log (last lines):\n{ingest.tail(10) or '(empty)'}")
    banner(f"summary: one SDK process (heron {heron.__version__}, Python {sys.version.split()[0]}) -> one ingest")
    for r in results:
        print(describe(*r), flush=True)
    return 0 if all(r.delivered and r.sent == r.events and not r.dropped for r, _, _ in results) else 1


def describe(r: Pushed, requests: int, ingest_cpu: str) -> str:
    per_request = r.sent / requests if requests else float("nan")
    checks = "all acknowledged, none dropped" if r.delivered and r.sent == r.events and not r.dropped else "PROBLEM"
    return "\n".join(
        [
            f"batch_size={r.batch_size}: {r.sent:,} of {r.events:,} events acknowledged in {r.total_seconds:.2f} s"
            f" = {r.rate:,.0f} events/s (first track() -> flush() returned)",
            f"  track() loop: {r.track_seconds:.3f} s ({r.events / r.track_seconds:,.0f} calls/s);"
            f" one track() call: median {r.median_us:.2f} us, p99 {r.p99_us:.2f} us (timer cost subtracted)",
            f"  {requests:,} POST /v1/events ({per_request:,.0f} events each); failed requests {r.failed_requests},"
            f" dropped {r.dropped}: {checks}",
            f"  SDK process CPU {r.client_cpu:.0%} of one core; {ingest_cpu}",
        ]
        + ([_post_breakdown(r)] if r.posts else [])
    )


def _post_breakdown(r: Pushed) -> str:
    posts = sorted(r.posts)
    waiting = sum(posts)
    p50, p99 = posts[len(posts) // 2] * 1000, posts[(len(posts) * 99) // 100] * 1000
    return (
        f"  the sender spent {waiting:.2f} s ({waiting / r.total_seconds:.0%} of the run) inside {len(posts):,} POSTs,"
        f" one at a time: median {p50:.2f} ms, p99 {p99:.2f} ms"
        " each (send, ingest validates + publishes with confirm, answer)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-sizes", default="100,1000", help="comma-separated; 100 is the SDK's default")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
