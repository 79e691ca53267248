"""Silence scan with 1,000,000 healthy monitors and nothing due: time per scan tick.

1. ``--monitors`` monitor rows are COPYed into a fresh database (state 'up', a learned rate state,
   the deadline that state gives: 1 to 7 days ahead; shard = ``messages.stream_shard`` of the
   stream, so they spread over the ``--shards`` shards as in production).
2. The Redis deadline index is built per shard with ``DeadlineIndex.rebuild`` from
   ``store.due_from_postgres`` (what the detector itself does after a Redis flush).
3. ``Detector.scan(shard, now)`` (``heron_detector.core.Detector`` with a pool, a Redis client,
   ``alerts=None`` and the settings) is timed for ``--ticks`` ticks cycling over the shards, in this
   process (a latency measurement, no load generator), after a warm-up. The full tick path
   ``Detector.handle(shard, <tick message>, now)`` (decode + scan loop + watermark) is timed too.

Target: median and p99 < 2 ms per tick.

    .venv/bin/python bench/silence_scan.py [--monitors 1000000] [--ticks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from _common import REDIS_URL, BenchEnv, banner, describe_background, log, median, percentile

TARGET_MS = 2.0
TEMPLATES = 1024


def monitor_rows(n: int, project_ids: list[int], shards: int, now: float, params, start: int):
    """Rows for COPY: (project_id, event_name, service, environment, shard, state, event_count,
    last_seen, cadence, deadline), with learned states whose deadline lies 1..7 days ahead."""
    from heron_common import messages
    from heron_common.db import to_dt
    from heron_common.monitors import rate

    rng = random.Random(42)
    templates = []
    for _ in range(TEMPLATES):
        # A regular job every 1-7 days (its deadline ≈ the next run + a few minutes), 12 runs learned.
        mean = rng.uniform(86_400, 7 * 86_400)
        last_seen = now - rng.uniform(0, 60)
        runs = [last_seen - k * mean + rng.uniform(-60, 60) * (k > 0) for k in range(11, -1, -1)]
        state = rate.observe_many(rate.Rate(), runs, params)
        deadline = rate.deadline(state, params)
        assert deadline is not None and deadline > now + 3600
        templates.append((to_dt(last_seen), rate.to_dict(state), to_dt(deadline)))
    for i in range(start, start + n):
        p = project_ids[i % len(project_ids)]
        name = f"job.{i}"
        last_seen, cad, deadline = templates[i % TEMPLATES]
        yield (
            p,
            name,
            "worker",
            "prod",
            messages.stream_shard(p, name, "worker", "prod", shards),
            "up",
            50,
            last_seen,
            cad,
            deadline,
        )


async def load_monitors(pool, n: int, project_ids: list[int], shards: int, now: float, params, chunk: int) -> None:
    columns = [
        "project_id",
        "event_name",
        "service",
        "environment",
        "shard",
        "state",
        "event_count",
        "last_seen",
        "cadence",
        "deadline",
    ]

    async def copy_range(start: int, count: int) -> None:
        rows = list(monitor_rows(count, project_ids, shards, now, params, start))
        async with pool.acquire() as conn:
            await conn.copy_records_to_table("monitors", records=rows, columns=columns)

    # Two COPYs at a time: one per core (this process encodes the next while Postgres writes one).
    sem = asyncio.Semaphore(2)

    async def guarded(start: int, count: int) -> None:
        async with sem:
            await copy_range(start, count)

    await asyncio.gather(*(guarded(s, min(chunk, n - s)) for s in range(0, n, chunk)))


async def main(args: argparse.Namespace) -> None:
    import redis.asyncio as redis_asyncio

    from heron_common import db, messages
    from heron_detector import store
    from heron_detector.core import Detector, rate_params
    from heron_detector.index import DeadlineIndex

    async with BenchEnv(shards=args.shards) as env:
        settings = env.settings
        params = rate_params(settings)
        pool = await db.create_pool(env.database_url, min_size=1, max_size=4)
        r = redis_asyncio.Redis.from_url(REDIS_URL)
        try:
            project_ids = [
                await pool.fetchval("INSERT INTO projects (name) VALUES ($1) RETURNING id", f"bench-{i}")
                for i in range(args.projects)
            ]
            now = time.time()
            t = time.perf_counter()
            await load_monitors(pool, args.monitors, project_ids, args.shards, now, params, args.copy_chunk)
            copy_s = time.perf_counter() - t
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE monitors")
                count, up, due_pg = await conn.fetchrow(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'up'),"
                    " count(*) FILTER (WHERE state = 'up' AND deadline <= $1) FROM monitors",
                    db.to_dt(now),
                )
                per_shard = dict(await conn.fetch("SELECT shard, count(*) FROM monitors GROUP BY shard"))
            log(f"COPYed {count:,} monitors in {copy_s:.1f} s ({count / copy_s:,.0f} rows/s)")

            index = DeadlineIndex(r, settings.redis_prefix)
            t = time.perf_counter()
            for shard in range(args.shards):
                await index.rebuild(shard, await store.due_from_postgres(pool, shard))
            rebuild_s = time.perf_counter() - t
            indexed = 0
            for shard in range(args.shards):
                indexed += await r.zcard(index._key(shard))
            log(f"Redis deadline index built for {args.shards} shards ({indexed:,} entries) in {rebuild_s:.1f} s")

            detector = Detector(pool, r, None, settings)
            shards = list(range(args.shards))
            found_any = 0

            async def timed_scan(shard: int, at: float) -> float:
                nonlocal found_any
                t0 = time.perf_counter()
                found, opened = await detector.scan(shard, at)
                dt = time.perf_counter() - t0
                found_any += found or opened
                return dt

            for i in range(args.warmup):
                await timed_scan(shards[i % len(shards)], time.time())
            scan_ms = []
            t = time.perf_counter()
            for i in range(args.ticks):
                scan_ms.append(1000 * await timed_scan(shards[i % len(shards)], time.time()))
            scan_wall = time.perf_counter() - t

            handle_ms = []
            for i in range(args.ticks):
                shard = shards[i % len(shards)]
                at = time.time()
                body = messages.encode(messages.tick_message(shard, at))
                t0 = time.perf_counter()
                handled = await detector.handle(shard, body, at)
                handle_ms.append(1000 * (time.perf_counter() - t0))
                found_any += handled.opened

            # Informational: the first tick of a shard after Redis lost its index (rebuild from Postgres).
            cold_shard = 0
            await r.delete(index._built_key(cold_shard))
            t0 = time.perf_counter()
            found, _ = await detector.scan(cold_shard, time.time())
            cold_ms = 1000 * (time.perf_counter() - t0)
            found_any += found

            incidents = await pool.fetchval("SELECT count(*) FROM incidents")
            still_up = await pool.fetchval("SELECT count(*) FROM monitors WHERE state = 'up'")
        finally:
            await r.aclose()
            await pool.close()

    banner(f"silence_scan: Detector.scan with {count:,} healthy monitors, nothing due")
    print(
        f"monitors: {count:,} ({up:,} up, {due_pg} due) over {len(per_shard)} shards"
        f" ({min(per_shard.values()):,}..{max(per_shard.values()):,} per shard);"
        f" COPY {copy_s:.1f} s, index rebuild {rebuild_s:.1f} s ({indexed:,} entries in Redis);"
        f" {describe_background(env.background)}"
    )
    print(
        f"Detector.scan: {args.ticks:,} ticks over {args.shards} shards in {scan_wall:.2f} s:"
        f" median {median(scan_ms):.3f} ms, p90 {percentile(scan_ms, 90):.3f} ms,"
        f" p99 {percentile(scan_ms, 99):.3f} ms, p99.9 {percentile(scan_ms, 99.9):.3f} ms, max {max(scan_ms):.2f} ms"
    )
    print(
        f"Detector.handle(tick message): median {median(handle_ms):.3f} ms, p99 {percentile(handle_ms, 99):.3f} ms,"
        f" max {max(handle_ms):.2f} ms; all {args.shards} shards' ticks per scan interval cost"
        f" ~{args.shards * median(handle_ms):.1f} ms of one detector's event loop"
    )
    print(
        f"cold tick (index flushed: rebuild of shard {cold_shard}'s {per_shard.get(cold_shard, 0):,} entries"
        f" from Postgres): {cold_ms:.0f} ms (informational)"
    )
    print(f"nothing opened: scans that found work {found_any}, incidents {incidents}, monitors still up {still_up:,}")
    if found_any or incidents or still_up != count:
        print("silence_scan: FAILED -- something was found due; the set-up is wrong")
        raise SystemExit(1)
    med, p99 = median(scan_ms), percentile(scan_ms, 99)
    ok = med < TARGET_MS and p99 < TARGET_MS
    print(
        f"silence_scan: median {med:.3f} ms, p99 {p99:.3f} ms per scan tick with {count:,} monitors"
        f" (target < {TARGET_MS:g} ms) -> {'PASS' if ok else 'MISS'}"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--monitors", type=int, default=1_000_000)
    p.add_argument("--projects", type=int, default=10)
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--ticks", type=int, default=20_000, help="timed scan ticks (and as many timed handle() ticks)")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--copy-chunk", type=int, default=100_000, help="rows per COPY")
    asyncio.run(main(p.parse_args()))
