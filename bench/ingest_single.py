"""Ingest, one event per request: ``POST /v1/track`` requests/s vs a bare aiohttp handler.

Two servers, each in its own process, are loaded in turn by the same load generator (wrk, one
thread, 64 connections, a Lua script that POSTs a fixed JSON body and counts the expected
status):

- ingest: ``heron_ingest.app.create_app`` with production settings (16 shards), a real project
  and API key created through ``POST /v1/projects``; every 202 means RabbitMQ confirmed the
  event into a durable quorum queue;
- bare:   a plain aiohttp app whose handler does ``orjson.loads(await request.read())`` and
  answers 202 — the cost of HTTP + JSON parse in aiohttp, the ceiling ingest is held against.

Nothing consumes the shard queues during the run; they are purged and deleted at the end.
Target: ingest / bare ≥ 0.5.

    .venv/bin/python bench/ingest_single.py [--seconds 8] [--connections 64] [--rounds 2] [--profile py-spy]
"""

from __future__ import annotations

import argparse
import asyncio

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

BODY = {"event_name": "bench.event", "service": "s", "environment": "e"}


async def main(args: argparse.Namespace) -> None:
    overrides: dict = {}
    py_spy = find_py_spy(args.py_spy) if args.profile == "py-spy" else None
    if args.profile == "py-spy" and not py_spy:
        raise SystemExit("py-spy not found: pip install --target /tmp/pyspy py-spy, or pass --py-spy PATH")
    profile_report = ""
    async with BenchEnv(shards=args.shards, overrides=overrides, keep_logs=bool(args.profile)) as env:
        cprofile_path = env.workdir / "ingest.pstats" if args.profile == "cprofile" else None
        ingest = await env.start("ingest", cprofile=cprofile_path, patch=args.patch, stdlib_loop=args.stdlib_loop)
        bare = await env.start("bare")
        _, api_key = await create_project(ingest.url, "bench-single")
        body = orjson.dumps(BODY)
        ingest_lua = write_wrk_script(env.workdir, "ingest", body, 202, api_key)
        bare_lua = write_wrk_script(env.workdir, "bare", body, 202, api_key)

        await probe(f"{ingest.url}/v1/track", body, 202, api_key)
        await probe(f"{bare.url}/v1/track", body, 202, api_key)
        ingest_runs, bare_runs = [], []
        for rnd in range(args.rounds):
            for name, server, script, runs in (
                ("bare", bare, bare_lua, bare_runs),
                ("ingest", ingest, ingest_lua, ingest_runs),
            ):
                if args.warmup > 0:
                    await run_wrk(f"{server.url}/v1/track", script, connections=args.connections, seconds=args.warmup)
                profiler = None
                if args.profile and name == "ingest" and rnd == 0:
                    profiler = Profiler(args.profile, server, env.workdir, py_spy, cprofile_path)
                    await profiler.start()
                with CpuWindow(server) as cpu, CpuBreakdown({server.pid: name}, "wrk") as groups:
                    res = await run_wrk(
                        f"{server.url}/v1/track", script, connections=args.connections, seconds=args.seconds
                    )
                res.cpu = cpu
                res.groups = groups
                if profiler is not None:
                    profile_report = await profiler.stop()
                log(f"round {rnd + 1} {name}: {res.describe()}")
                runs.append(res)

        await asyncio.sleep(0.5)  # let the requests wrk left in flight finish
        published = await scrape_metric(ingest.url, "heron_ingest_published_events_total")
        messages = await scrape_metric(ingest.url, "heron_ingest_published_messages_total")
        accepted = sum(r.ok for r in ingest_runs)
        for server in list(env.servers):
            await server.stop()
        purged = await purge_shard_queues(env.prefix, args.shards)

    ingest_rps = median([r.ok_per_s for r in ingest_runs])
    bare_rps = median([r.ok_per_s for r in bare_runs])
    ratio = ingest_rps / bare_rps if bare_rps else 0.0
    ratios = [g.ok_per_s / b.ok_per_s for b, g in zip(bare_runs, ingest_runs, strict=True) if b.ok_per_s]
    failed = sum(r.bad for r in ingest_runs) + sum(sum(r.errors.values()) for r in ingest_runs)

    if profile_report:
        banner(f"profile of the ingest process during round 1 ({args.profile}; figures below are slowed by it)")
        print(profile_report)
    banner("ingest_single: POST /v1/track, one event per request")
    print(
        f"load: wrk, 1 thread, {args.connections} connections, {args.seconds:g} s per measurement"
        f" (+{args.warmup:g} s warm-up), {args.rounds} round(s), servers in their own processes;"
        f" {describe_background(env.background)}"
    )
    for i, (b, g) in enumerate(zip(bare_runs, ingest_runs, strict=True)):
        print(f"round {i + 1}: bare   {b.describe()}")
        print(f"          {b.cpu.describe(b.ok, 'request')}")
        print(f"          {b.groups.describe()}{b.groups.disturbance()}")
        print(f"round {i + 1}: ingest {g.describe()}")
        print(f"          {g.cpu.describe(g.ok, 'request')}")
        print(f"          {g.groups.describe()}{g.groups.disturbance(('rabbitmq',))}")
    print(
        f"ingest confirmed by RabbitMQ (server counter, incl. warm-up): {published:,.0f} events"
        f" in {messages:,.0f} messages ({published / messages if messages else 0:.1f} events/message);"
        f" 202s counted by wrk in measured windows: {accepted:,}; non-202 or socket errors: {failed};"
        f" purged from shard queues: {purged:,}"
    )
    print(
        f"ingest_single: {ingest_rps:,.0f} req/s; bare aiohttp: {bare_rps:,.0f} req/s;"
        f" ratio {ratio:.3f} (medians; per round {', '.join(f'{r:.3f}' for r in ratios)})"
        f" (target >= 0.5) -> {'PASS' if ratio >= 0.5 else 'MISS'}"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="measured duration per server per round")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured warm-up per server per round (0: none)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2, help="alternate bare/ingest this many times; medians reported")
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
