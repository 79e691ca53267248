"""Ingest, 100 events per request: ``POST /v1/events`` events/s confirmed by RabbitMQ.

One ingest process (``heron_ingest.app.create_app``, production settings: 16 shards) is loaded by
wrk (one thread, 64 connections) with a fixed body of ``--batch`` events shaped like the SDK's
(event_name, timestamp, service, environment; the names spread over ``--streams`` streams so the
events fan out over the shards). Ingest answers 200 only once every
event of the request is confirmed by RabbitMQ, so

    events/s = (200 responses counted by wrk) x batch / elapsed

The server's own ``heron_ingest_published_events_total`` is printed as a cross-check. Nothing
consumes the shard queues; they are purged and deleted at the end. Target: ≥ 200,000 events/s per
ingest process. ``--profile py-spy`` (or ``cprofile``) profiles the ingest process during the
measurement and prints where its time goes.

    .venv/bin/python bench/ingest_batch.py [--seconds 10] [--connections 64] [--batch 100] [--profile py-spy]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
from _common import (
    BenchEnv,
    CpuBreakdown,
    CpuWindow,
    Profiler,
    banner,
    create_project,
    describe_background,
    find_py_spy,
    log,
    median,
    probe,
    purge_shard_queues,
    run_wrk,
    scrape_metric,
    write_wrk_script,
)

TARGET = 200_000


def make_body(batch: int, streams: int, metadata: bool) -> bytes:
    now = round(time.time(), 3)
    events = []
    for i in range(batch):
        e: dict = {
            "event_name": f"bench.event.{i % streams}",
            "timestamp": now,
            "service": "checkout",
            "environment": "prod",
        }
        if metadata:
            e["metadata"] = {"order_id": 100_000 + i, "amount": 12.5}
        events.append(e)
    return orjson.dumps({"events": events})


async def main(args: argparse.Namespace) -> None:
    py_spy = find_py_spy(args.py_spy) if args.profile == "py-spy" else None
    if args.profile == "py-spy" and not py_spy:
        raise SystemExit("py-spy not found: pip install --target /tmp/pyspy py-spy, or pass --py-spy PATH")
    overrides: dict = {}
    profile_report = ""
    async with BenchEnv(shards=args.shards, overrides=overrides, keep_logs=bool(args.profile)) as env:
        cprofile_path = env.workdir / "ingest.pstats" if args.profile == "cprofile" else None
        ingest = await env.start("ingest", cprofile=cprofile_path, patch=args.patch, stdlib_loop=args.stdlib_loop)
        _, api_key = await create_project(ingest.url, "bench-batch")
        body = make_body(args.batch, args.streams, args.metadata)
        script = write_wrk_script(env.workdir, "batch", body, 200, api_key)
        url = f"{ingest.url}/v1/events"
        await probe(url, body, 200, api_key)
        if args.warmup > 0:
            await run_wrk(url, script, connections=args.connections, seconds=args.warmup)
        before = await scrape_metric(ingest.url, "heron_ingest_published_events_total")
        runs = []
        cpus: list[CpuWindow] = []
        breakdowns: list[CpuBreakdown] = []
        for rnd in range(args.rounds):
            profiler = None
            if args.profile and rnd == 0:
                profiler = Profiler(args.profile, ingest, env.workdir, py_spy, cprofile_path)
                await profiler.start()
            with CpuWindow(ingest) as cpu, CpuBreakdown({ingest.pid: "ingest"}, "wrk") as groups:
                res = await run_wrk(url, script, connections=args.connections, seconds=args.seconds)
            if profiler is not None:
                profile_report = await profiler.stop()
            log(f"round {rnd + 1}: {res.describe()}")
            runs.append(res)
            cpus.append(cpu)
            breakdowns.append(groups)
        await asyncio.sleep(0.5)  # let the requests wrk left in flight finish
        after = await scrape_metric(ingest.url, "heron_ingest_published_events_total")
        messages = await scrape_metric(ingest.url, "heron_ingest_published_messages_total")
        published = await scrape_metric(ingest.url, "heron_ingest_published_events_total")
        for server in list(env.servers):
            await server.stop()
        purged = await purge_shard_queues(env.prefix, args.shards)

    rates = [r.ok * args.batch / r.seconds for r in runs]
    rate = median(rates)
    best = max(rates)
    confirmed = sum(r.ok for r in runs) * args.batch
    failed = sum(r.bad for r in runs) + sum(sum(r.errors.values()) for r in runs)
    if profile_report:
        banner(f"profile of the ingest process during round 1 ({args.profile}; that round is slowed by it)")
        print(profile_report)
    banner(f"ingest_batch: POST /v1/events, {args.batch} events per request")
    print(
        f"load: wrk, 1 thread, {args.connections} connections, {args.seconds:g} s x {args.rounds} round(s)"
        f" (+{args.warmup:g} s warm-up); body {len(body):,} bytes, {args.streams} streams"
        f"{', with metadata' if args.metadata else ''}; ingest in its own process;"
        f" {describe_background(env.background)}"
    )
    for i, r in enumerate(runs):
        print(f"round {i + 1}: {r.describe()} -> {rates[i]:,.0f} events/s")
        print(f"         {cpus[i].describe(r.ok, 'request')}")
        print(f"         {breakdowns[i].describe()}{breakdowns[i].disturbance(('rabbitmq',))}")
    print(
        f"events confirmed (200s x {args.batch}, measured windows): {confirmed:,};"
        f" server counter over the same windows: {after - before:,.0f}"
        f" (also counts requests still in flight when each wrk run stopped); non-200 or socket errors: {failed};"
        f" messages published in all (incl. warm-up): {messages:,.0f}"
        f" ({published / messages if messages else 0:.0f} events/message); purged: {purged:,} messages"
    )
    print(
        f"ingest_batch: {rate:,.0f} events/s confirmed by RabbitMQ (median of {len(rates)} rounds, best {best:,.0f};"
        f" {rate / args.batch:,.0f} req/s)"
        f" per ingest process (target >= {TARGET:,}) -> {'PASS' if rate >= TARGET else 'MISS'}"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measured duration per round")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up (0: none)")
    p.add_argument("--rounds", type=int, default=2, help="measured rounds; the median is reported")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--batch", type=int, default=100, help="events per request")
    p.add_argument("--streams", type=int, default=20, help="distinct event names in a body")
    p.add_argument("--metadata", action="store_true", help="give every event a small metadata object")
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--profile", choices=["py-spy", "cprofile"], help="profile the ingest process in round 1")
    p.add_argument("--stdlib-loop", action="store_true", help="run the server on asyncio's own loop, not uvloop")
    p.add_argument("--py-spy", help="path to py-spy (default: PATH, the venv, /tmp/pyspy/bin)")
    p.add_argument(
        "--patch",
        help="bench-local prototype module(s) to import in the ingest server first"
        " (bench/prototypes; comma-separated) — measures a suggested fix, not the committed code",
    )
    asyncio.run(main(p.parse_args()))
