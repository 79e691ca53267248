"""HTTP probes one prober sustains: probes/s against a local endpoint that answers after 200 ms.

One prober (``python -m heron_prober``, production settings but for the outbound allow list of
127.0.0.0/8 and the minimum interval) and one target (this script with ``--serve-target``, an
aiohttp server on uvloop answering every request after ``--latency`` s), each in its own process.
``--probes`` probes are inserted straight into Postgres (a monitor and a schedule row each, their
first runs spread over one interval), every ``--interval`` s: ``probes / interval`` probes/s are
offered, more than one prober can take by default, so the figure is its capacity. Each run is the
real thing: claimed from Postgres, a fresh TCP connection, HEAD, the verdict, and an observation
published to RabbitMQ with the broker's confirm (no detector: the queues are deleted at the end).

probes/s = the prober's ``heron_prober_probes_total`` over ``--seconds`` after ``--warmup``; the
share that came back down (timed out, refused), the start lateness (from the prober's histogram)
and the CPU of each process are printed too.

    .venv/bin/python bench/probes.py [--probes 6000] [--interval 4] [--latency 0.2] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

import asyncpg
from _common import BenchEnv, CpuBreakdown, Server, banner, log, scrape_metric, start_module

TARGET = 1000.0


def serve_target(latency: float) -> None:
    """The endpoint under probe: answers 200 after ``latency`` s; prints ``READY <port>``."""
    import uvloop
    from aiohttp import web

    async def answer(_: web.Request) -> web.Response:
        await asyncio.sleep(latency)
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        print(f"READY {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    uvloop.run(main())


async def start_target(env: BenchEnv, latency: float) -> Server:
    log_path = env.workdir / "target.log"
    with open(log_path, "wb") as logf:  # noqa: ASYNC230 - tiny, and the child owns its copy
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-target",
            "--latency",
            str(latency),
            stdout=asyncio.subprocess.PIPE,
            stderr=logf,
            start_new_session=True,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    server = Server("target", proc, log_path, port=int(line.split()[1]))
    env.servers.append(server)
    log(f"target answering after {latency * 1000:.0f} ms on port {server.port} (pid {server.pid})")
    return server


async def insert_probes(database_url: str, target_url: str, count: int, interval: float) -> None:
    import orjson

    from heron_common.db import to_dt
    from heron_common.monitors import probe as pr

    config = pr.Config(f"{target_url}/health", interval=interval, request_timeout=min(5.0, interval)).to_dict()
    conn = await asyncpg.connect(database_url)
    try:
        project_id = await conn.fetchval("INSERT INTO projects (name) VALUES ('bench-probes') RETURNING id")
        ids = await conn.fetch(
            "INSERT INTO monitors (project_id, kind, name, service, shard, state, config)"
            " SELECT $1, 'probe', 'probe ' || i, 'bench', i % 16, 'new', $2::jsonb FROM generate_series(1, $3) i"
            " RETURNING id",
            project_id,
            orjson.dumps(config).decode(),
            count,
        )
        start = time.time() + 1.0
        # First runs spread over one interval, as jittered schedules settle anyway.
        rows = [(r["id"], to_dt(start + random.random() * interval)) for r in ids]
        await conn.copy_records_to_table("probe_schedule", records=rows, columns=["monitor_id", "next_at"])
    finally:
        await conn.close()


async def series(base_url: str, name: str) -> float:
    """One series of a metric on /metrics (``name`` with its labels, exactly as exposed)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


async def histogram(base_url: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram on /metrics: upper bound -> count."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as resp:
        text = await resp.text()
    out = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """The bucket bound under which ``q`` of the window's observations fall."""
    counts = sorted((b, after[b] - before.get(b, 0.0)) for b in after)
    total = counts[-1][1] if counts else 0
    if not total:
        return "n/a"
    for bound, count in counts:
        if count >= q * total:
            return f"≤ {bound:g} s" if bound != float("inf") else "> 60 s"
    return "n/a"


async def main(args: argparse.Namespace) -> None:
    async with BenchEnv() as env:
        target = await start_target(env, args.latency)
        target_url = f"http://127.0.0.1:{target.port}"
        await insert_probes(env.database_url, target_url, args.probes, args.interval)
        log(f"{args.probes} probes every {args.interval:g} s: {args.probes / args.interval:,.0f} probes/s offered")
        prober = await start_module(
            env,
            "prober",
            {
                "HERON_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
                "HERON_PROBE_MIN_INTERVAL": "0.1",
                "HERON_PROBE_CONCURRENCY": str(args.concurrency),
            },
        )
        await asyncio.sleep(args.warmup)
        up0 = await series(prober.url, 'heron_prober_probes_total{result="up"}')
        down0 = await series(prober.url, 'heron_prober_probes_total{result="down"}')
        late0 = await histogram(prober.url, "heron_prober_start_lateness_seconds")
        req0 = await histogram(prober.url, "heron_prober_request_seconds")
        rep0 = await histogram(prober.url, "heron_prober_report_seconds")
        lost0 = await scrape_metric(prober.url, "heron_prober_results_unreported_total")
        own = {prober.pid: "prober", target.pid: "target"}
        with CpuBreakdown(own) as cpu:
            t0 = time.monotonic()
            await asyncio.sleep(args.seconds)
            up1 = await series(prober.url, 'heron_prober_probes_total{result="up"}')
            down1 = await series(prober.url, 'heron_prober_probes_total{result="down"}')
            late1 = await histogram(prober.url, "heron_prober_start_lateness_seconds")
            req1 = await histogram(prober.url, "heron_prober_request_seconds")
            rep1 = await histogram(prober.url, "heron_prober_report_seconds")
            lost1 = await scrape_metric(prober.url, "heron_prober_results_unreported_total")
            in_flight = await scrape_metric(prober.url, "heron_prober_in_flight")
            elapsed = time.monotonic() - t0
    up, down = up1 - up0, down1 - down0
    rate = (up + down) / elapsed
    banner(f"HTTP probes, one prober, endpoint answering after {args.latency * 1000:.0f} ms")
    print(f"offered: {args.probes / args.interval:,.0f} probes/s ({args.probes} probes every {args.interval:g} s)")
    print(f"concurrency: {args.concurrency} requests in flight at most; a fresh connection per probe")
    print(f"window: {elapsed:.1f} s after {args.warmup:g} s of warm-up")
    print(
        f"finished: {up + down:,.0f} ({down:,.0f} down: {down / max(up + down, 1):.1%}); unreported: {lost1 - lost0:g}"
    )
    print(f"in flight at the end: {in_flight:g}")
    print(f"request (start to verdict): p50 {quantile(req0, req1, 0.5)}, p99 {quantile(req0, req1, 0.99)}")
    print(f"report (publish to confirm): p50 {quantile(rep0, rep1, 0.5)}, p99 {quantile(rep0, rep1, 0.99)}")
    print(f"start lateness: p50 {quantile(late0, late1, 0.5)}, p99 {quantile(late0, late1, 0.99)}")
    print(cpu.describe() + cpu.disturbance(expected=("postgres", "rabbitmq")))
    verdict = "PASS" if rate >= TARGET and down == 0 else "MISS"
    print(
        f"probes: {rate:,.0f} probes/s by one prober against a {args.latency * 1000:.0f} ms endpoint,"
        f" each result confirmed by RabbitMQ (target >= {TARGET:,.0f}) -> {verdict}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=6000)
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=500, help="HERON_PROBE_CONCURRENCY (default: the default)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--serve-target", action="store_true", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_target:
        serve_target(parsed.latency)
    else:
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        asyncio.run(main(parsed))
