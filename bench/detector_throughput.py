"""Detector, end to end with batched load: events/s committed by ONE detector process, zero loss.

1. ``--events`` events over ``--streams`` streams of ``--projects`` projects are published straight
   to the shard queues (``heron_common.bus.publish`` of ``messages.events_message`` batches of
   ``--batch`` events, grouped by ``messages.stream_shard`` exactly as ingest groups them; every
   publish confirmed). Publishing directly isolates the detector from ingest. Each event carries
   ``metadata {"seq": i}`` so that loss and duplicates can be told apart afterwards.
2. One detector process (``heron_detector.app.create_app``, production settings, 16 shards) is
   started on the pre-filled queues; the clock starts when that process begins ``runner.setup()``
   (connecting, declaring, then consuming) and stops when ``SELECT sum(event_count) FROM monitors``
   and ``SELECT count(*) FROM events`` both equal N (polled every 50 ms).
3. Zero loss / no duplicates is then verified exactly: count(*) = count(DISTINCT seq) = N with seq
   spanning 0..N-1, every stream's event_count as published, one processed_messages row per
   published message, nothing dead-lettered.

Target: ≥ 30,000 events/s.

    .venv/bin/python bench/detector_throughput.py [--events 400000] [--streams 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

import aio_pika
import asyncpg
from _common import (
    AMQP_URL,
    BenchEnv,
    CpuBreakdown,
    CpuWindow,
    Profiler,
    banner,
    describe_background,
    find_py_spy,
    log,
    queue_depths,
)

TARGET = 30_000


def build_messages(
    n: int, streams: int, project_ids: list[int], batch: int, shards: int, interval: float
) -> tuple[list[tuple[int, dict]], dict[tuple, int]]:
    """Messages (shard, envelope) in publish order and the expected event count per stream."""
    from heron_common import messages
    from heron_common.messages import TrackedEvent

    now = time.time()
    per_stream = math.ceil(n / streams)
    base = now - (per_stream - 1) * interval  # the newest event of a stream is ~now
    keys = []
    shard_of = []
    for s in range(streams):
        key = (project_ids[s % len(project_ids)], f"bench.stream.{s}", "svc", "prod")
        keys.append(key)
        shard_of.append(messages.stream_shard(*key, shards))
    expected: dict[tuple, int] = {}
    by_shard: dict[int, list[TrackedEvent]] = {}
    for i in range(n):
        s, k = i % streams, i // streams
        p, name, svc, env = keys[s]
        by_shard.setdefault(shard_of[s], []).append(
            TrackedEvent(p, name, svc, env, base + k * interval, now, {"seq": i})
        )
        expected[keys[s]] = expected.get(keys[s], 0) + 1
    # Interleave the shards' messages, as ingest's group commit would produce them over time.
    chunks = {shard: [evs[j : j + batch] for j in range(0, len(evs), batch)] for shard, evs in by_shard.items()}
    out: list[tuple[int, dict]] = []
    depth = max(len(c) for c in chunks.values())
    for j in range(depth):
        for shard in sorted(chunks):
            if j < len(chunks[shard]):
                out.append((shard, messages.events_message(chunks[shard][j], now)))
    return out, expected


async def publish_all(prefix: str, shards: int, msgs: list[tuple[int, dict]], window: int = 256) -> float:
    from heron_common import bus

    names = bus.Names(prefix)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await bus.declare_shard_queues(channel, names, shards)
        exchange = await bus.declare_ingest(channel, names)
        t0 = time.perf_counter()
        for start in range(0, len(msgs), window):
            await asyncio.gather(
                *(bus.publish(exchange, names.shard_key(shard), m) for shard, m in msgs[start : start + window])
            )
        return time.perf_counter() - t0
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> None:
    py_spy = find_py_spy(args.py_spy) if args.profile == "py-spy" else None
    if args.profile == "py-spy" and not py_spy:
        raise SystemExit("py-spy not found: pip install --target /tmp/pyspy py-spy, or pass --py-spy PATH")
    n = args.events
    profile_report = ""
    async with BenchEnv(shards=args.shards, keep_logs=bool(args.profile)) as env:
        pg = await asyncpg.connect(env.database_url)
        try:
            project_ids = [
                await pg.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id", f"bench-{i}")
                for i in range(args.projects)
            ]
            t = time.perf_counter()
            msgs, expected = build_messages(n, args.streams, project_ids, args.batch, args.shards, args.interval)
            log(f"built {len(msgs):,} messages of <= {args.batch} events in {time.perf_counter() - t:.1f} s")
            pub_s = await publish_all(env.prefix, args.shards, msgs)
            log(f"published {len(msgs):,} messages ({n:,} events) in {pub_s:.1f} s, all confirmed")
            depths = await queue_depths(env.prefix, args.shards)
            queued = sum(v for k, v in depths.items() if ".shard." in k)
            if queued != len(msgs):
                raise SystemExit(f"expected {len(msgs)} messages queued, RabbitMQ has {queued}")
            del msgs

            cprofile_path = env.workdir / "detector.pstats" if args.profile == "cprofile" else None
            detector = await env.start(
                "detector", cprofile=cprofile_path, patch=args.patch, stdlib_loop=args.stdlib_loop
            )
            t0 = detector.setup_at
            profiler = None
            if args.profile:
                profiler = Profiler(args.profile, detector, env.workdir, py_spy, cprofile_path)
                await profiler.start()
            samples: list[tuple[float, int]] = []
            done_at = None
            give_up = time.time() + args.timeout
            with CpuWindow(detector) as cpu, CpuBreakdown({detector.pid: "detector"}) as groups:
                while time.time() < give_up:
                    committed = int(await pg.fetchval("SELECT coalesce(sum(event_count), 0) FROM monitors"))
                    now = time.time()
                    samples.append((now, committed))
                    if committed > n:
                        raise SystemExit(f"DUPLICATES: monitors count {committed:,} events, {n:,} were published")
                    if committed == n:
                        stored = await pg.fetchval("SELECT count(*) FROM events")
                        if stored == n:
                            done_at = now
                            break
                    if detector.proc.returncode is not None:
                        raise SystemExit(f"detector exited with {detector.proc.returncode}:\n{detector.tail()}")
                    await asyncio.sleep(0.05)
            if profiler is not None:
                profile_report = await profiler.stop()
            await detector.stop()

            # ---- exact verification
            stored, distinct, lo, hi = await pg.fetchrow(
                "SELECT count(*), count(DISTINCT (metadata->>'seq')::bigint),"
                " min((metadata->>'seq')::bigint), max((metadata->>'seq')::bigint) FROM events"
            )
            committed = int(await pg.fetchval("SELECT coalesce(sum(event_count), 0) FROM monitors"))
            per_stream = {
                (r["project_id"], r["event_name"], r["service"], r["environment"]): r["event_count"]
                for r in await pg.fetch(
                    "SELECT project_id, event_name, service, environment, event_count FROM monitors"
                )
            }
            per_monitor_rows = await pg.fetchval(
                "SELECT count(*) FROM (SELECT m.id FROM monitors m LEFT JOIN events e ON e.monitor_id = m.id"
                " GROUP BY m.id, m.event_count HAVING count(e.*) <> m.event_count) x"
            )
            processed = await pg.fetchval("SELECT count(*) FROM processed_messages")
            states = dict(await pg.fetch("SELECT state, count(*) FROM monitors GROUP BY state"))
            incidents = await pg.fetchval("SELECT count(*) FROM incidents")
            published_msgs = queued
            depths = await queue_depths(env.prefix, args.shards)
        finally:
            await pg.close()

    dead = sum(v for k, v in depths.items() if k.endswith(".dead"))
    problems = []
    if done_at is None:
        problems.append(f"LOSS or too slow: only {samples[-1][1]:,} of {n:,} committed after {args.timeout:g} s")
    if not (stored == distinct == committed == n and lo == 0 and hi == n - 1):
        problems.append(f"events: count {stored:,}, distinct seq {distinct:,} ({lo}..{hi}), monitors sum {committed:,}")
    if per_stream != expected:
        bad = sum(1 for k in expected.keys() | per_stream.keys() if per_stream.get(k) != expected.get(k))
        problems.append(f"{bad} streams with an event_count other than published")
    if per_monitor_rows:
        problems.append(f"{per_monitor_rows} monitors whose event_count differs from their stored events")
    if processed != published_msgs:
        problems.append(f"processed_messages {processed:,} != published messages {published_msgs:,}")
    if dead:
        problems.append(f"{dead} messages dead-lettered")

    if profile_report:
        banner(f"profile of the detector process ({args.profile}; the run is slowed by it)")
        print(profile_report)
    banner("detector_throughput: one detector process, pre-filled shard queues, batched events")
    print(
        f"{n:,} events, {args.streams:,} streams over {args.projects} projects, {args.shards} shards,"
        f" {published_msgs:,} messages of <= {args.batch} events (published directly, confirmed, in {pub_s:.1f} s);"
        f" {describe_background(env.background)}"
    )
    if done_at is not None:
        elapsed = done_at - t0
        rate = n / elapsed

        def reach(frac: float) -> float:
            for ts, c in samples:
                if c >= frac * n:
                    return ts
            return samples[-1][0]

        t10, t90 = reach(0.1), reach(0.9)
        steady = 0.8 * n / (t90 - t10) if t90 > t10 else float("nan")
        first = next((ts for ts, c in samples if c > 0), done_at)
        print(
            f"timeline: detector setup started t=0, ready (HTTP up) t={detector.ready_at - t0:.2f} s,"
            f" first commit seen t={first - t0:.2f} s, all {n:,} committed and stored t={elapsed:.2f} s"
        )
        print(f"steady state (10% -> 90% committed): {steady:,.0f} events/s; {cpu.describe(n, 'event')}")
        print(groups.describe() + groups.disturbance(("postgres", "rabbitmq", "redis")))
    print(
        f"verification: events stored {stored:,}, distinct seq {distinct:,} (range {lo}..{hi}),"
        f" sum(monitors.event_count) {committed:,}, streams {len(per_stream):,}/{len(expected):,} with exact counts"
        f" {'yes' if per_stream == expected else 'NO'}, processed_messages {processed:,}/{published_msgs:,},"
        f" dead-lettered {dead}, monitor states {states}, incidents {incidents}"
    )
    if problems:
        for p in problems:
            print(f"FAILED: {p}")
        print(f"detector_throughput: FAILED verification -> {'; '.join(problems)}")
        raise SystemExit(1)
    print(
        f"detector_throughput: {rate:,.0f} events/s committed by one detector process"
        f" ({n:,} events in {elapsed:.2f} s), zero loss, no duplicates"
        f" (target >= {TARGET:,}) -> {'PASS' if rate >= TARGET else 'MISS'}"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--projects", type=int, default=5)
    p.add_argument("--batch", type=int, default=100, help="events per published message (ingest makes 1..5000)")
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--interval", type=float, default=15.0, help="seconds between a stream's event times")
    p.add_argument("--timeout", type=float, default=120.0, help="give up (and report loss) after this many s")
    p.add_argument("--profile", choices=["py-spy", "cprofile"], help="profile the detector process")
    p.add_argument("--py-spy", help="path to py-spy (default: PATH, the venv, /tmp/pyspy/bin)")
    p.add_argument("--patch", help="bench-local prototype module(s) to import in the detector first (bench/prototypes)")
    p.add_argument("--stdlib-loop", action="store_true", help="run the server on asyncio's own loop, not uvloop")
    asyncio.run(main(p.parse_args()))
