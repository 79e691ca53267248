"""Heartbeats: time from a missed deadline to its alert leaving the notifier, with 100,000 heartbeats.

    .venv/bin/python bench/heartbeat_alert_latency.py [--heartbeats 100000] [--sample 1000]
        [--window 10] [--lead 20] [--scan-intervals 1] [--shards 16]

Per scan interval in ``--scan-intervals`` (default ``1``, the production ``HERON_SCAN_INTERVAL``;
``1,0.25`` also measures a faster tick), one isolated run (bench/_common.py ``BenchEnv``: own
database, Redis and RabbitMQ prefixes, all removed at the end):

1. A webhook receiver in this process (aiohttp on 127.0.0.1; this process does nothing else while
   alerts arrive but poll Postgres every 0.2 s). It records when each request reached it
   (``time.time()`` when its handler starts), the ``webhook-id`` and the heartbeat's id.
2. One project with one webhook endpoint subscribed to ``heartbeat.down`` pointing at the receiver.
3. ``--heartbeats`` heartbeat monitors COPYed into ``monitors`` with exactly what
   ``POST /v1/heartbeats`` and one success ping would leave (``heartbeats_api.create`` then
   ``kind_heartbeat.observe``): kind ``heartbeat``, ``name``, service/environment ``''``,
   ``shard = stream_shard(project, "heartbeat:<name>", None, None, shards)``, config
   ``{"interval": 3600, "grace": 60}``, a ``ping_token``, state ``up``, ``data`` =
   ``Heartbeat.data()`` of that ping, ``last_seen`` = the ping, ``deadline`` =
   ``heartbeat.deadline()`` (the next ping's due time). Healthy ones pinged in the last 30 min (due
   30-60 min after the run). ``--sample`` of them (chosen at random, so spread over the shards)
   pinged so that grace runs out at ``down_at``, spread uniformly over ``--window`` seconds starting
   ``--lead`` seconds after the rows are made; their due time (``down_at - grace``) is already past,
   so the detector's first ticks move them to ``late`` (``heartbeat.late``, not subscribed) and the
   measured alert is the ``late -> down`` flip, as in production.
4. The real services, each ``python -m heron_detector`` / ``python -m heron_notifier`` with
   ``HERON_*`` variables (production defaults but for isolation, ``HERON_SCAN_INTERVAL`` and
   ``HERON_OUTBOUND_ALLOW_CIDRS=127.0.0.0/8``). The detector rebuilds each shard's Redis deadline
   index from Postgres itself (no ``built`` marker yet) at its first tick.
5. Wait until the receiver has one ``heartbeat.down`` per sampled heartbeat, then two scan
   intervals + 2 s more, to catch duplicates and false alerts.

Latency of one alert = the receiver's arrival time - the heartbeat's ``down_at`` (grace ran out).
Ticks come every ``HERON_SCAN_INTERVAL``, so up to one interval of it (half on average) is waiting
for the next tick: that bounds the figure from below. The stages are printed too, from the rows'
own times (Postgres ``now()`` is the transaction's start): deadline -> tick (``flips.at`` is the
tick's time) -> scan transaction (``outbox.created_at``) -> publish (``outbox.sent_at``) ->
notifier's ledger (``deliveries.created_at``) -> request sent (``delivery_attempts.attempted_at``)
-> arrival.

Checked: every sampled heartbeat alerted exactly once, one incident each, state ``down``; no
healthy heartbeat alerted or flipped (all still ``up``); every delivery succeeded in one attempt.

Target: p99 < 2 s at 100,000 heartbeats.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field

import orjson
from _common import BenchEnv, Server, banner, describe_background, log, median, percentile, start_module

TARGET_S = 2.0
INTERVAL = 3600.0
GRACE = 60.0  # the smallest grace the API accepts (HERON_MIN_INTERVAL)


# --------------------------------------------------------------------------- the receiver


@dataclass
class Receiver:
    """Webhook receiver: records (arrival, webhook-id, topic, heartbeat id) per request."""

    hits: list[tuple[float, str, str, int | None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    expect: int = 0
    port: int = 0

    async def start(self):
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            at = time.time()
            body = orjson.loads(await request.read())
            hb = (body.get("data") or {}).get("heartbeat") or {}
            self.hits.append((at, request.headers.get("webhook-id", ""), body.get("topic", ""), hb.get("id")))
            if len(self.hits) >= self.expect:
                self.arrived.set()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hooks/{name}", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()


# --------------------------------------------------------------------------- the services


async def start_service(env: BenchEnv, service: str, extra: dict[str, str], timeout: float = 60.0) -> Server:
    return await start_module(env, service, extra, timeout=timeout)


# --------------------------------------------------------------------------- the heartbeats


def heartbeat_rows(project_id: int, n: int, sampled: dict[int, float], shards: int, now: float, seed: int):
    """COPY rows: what ``POST /v1/heartbeats`` inserts plus what one success ping leaves."""
    from heron_common.db import to_dt
    from heron_common.messages import stream_shard
    from heron_common.monitors import heartbeat as hb
    from heron_ingest.heartbeats_api import new_token

    rng = random.Random(seed)
    config = hb.Config(GRACE, INTERVAL)
    for i in range(n):
        name = f"job-{i}"
        down_at = sampled.get(i)
        last_ping = down_at - INTERVAL - GRACE if down_at is not None else now - rng.uniform(0, 1800)
        beat = hb.Heartbeat(hb.UP, last_ping, hb.SUCCESS)
        yield (
            project_id,
            hb.KIND,
            name,
            "",
            "",
            stream_shard(project_id, f"{hb.KIND}:{name}", None, None, shards),
            hb.UP,
            config.to_dict(),
            new_token(),
            beat.data(),
            to_dt(last_ping),
            to_dt(hb.deadline(beat, config)),
        )


COLUMNS = [
    "project_id",
    "kind",
    "name",
    "service",
    "environment",
    "shard",
    "state",
    "config",
    "ping_token",
    "data",
    "last_seen",
    "deadline",
]


# --------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    scan_interval: float
    latencies: list[float]
    stages: dict[str, list[float]]
    problems: list[str]
    ready_before_first: float
    copy_s: float


STAGES = [
    ("deadline -> tick", "tick - down_at"),
    ("tick -> scan txn", "created - tick"),
    ("scan txn -> publish", "sent - created"),
    ("publish -> ledger row", "recorded - sent"),
    ("ledger row -> request", "attempted - recorded"),
    ("request -> arrival", "arrival - attempted"),
]


async def run_one(args: argparse.Namespace, scan_interval: float) -> RunResult:
    from heron_common import db, webhooks

    banner(
        f"HERON_SCAN_INTERVAL={scan_interval:g} s: {args.sample:,} of {args.heartbeats:,} heartbeats miss their"
        f" deadline over {args.window:g} s"
    )
    receiver = await Receiver(expect=args.sample).start()
    problems: list[str] = []
    try:
        async with BenchEnv(shards=args.shards, overrides={"scan_interval": scan_interval}) as env:
            pool = await db.create_pool(env.database_url, max_size=4)
            try:
                project_id = await pool.fetchval("INSERT INTO projects (name) VALUES ('bench-hb') RETURNING id")
                await pool.execute(
                    "INSERT INTO webhook_endpoints (project_id, url, topics, format, secret)"
                    " VALUES ($1, $2, $3, 'json', $4)",
                    project_id,
                    f"http://127.0.0.1:{receiver.port}/hooks/down",
                    ["heartbeat.down"],
                    webhooks.new_secret(),
                )
                rng = random.Random(args.seed)
                now = time.time()
                first = now + args.lead
                chosen = rng.sample(range(args.heartbeats), args.sample)
                sampled = {i: first + rng.uniform(0, args.window) for i in chosen}
                t = time.perf_counter()
                rows = list(heartbeat_rows(project_id, args.heartbeats, sampled, args.shards, now, args.seed))
                async with pool.acquire() as conn:
                    await conn.copy_records_to_table("monitors", records=rows, columns=COLUMNS)
                    await conn.execute("ANALYZE monitors")
                copy_s = time.perf_counter() - t
                made = await pool.fetch("SELECT id, name FROM monitors WHERE kind = 'heartbeat'")
                ids = {r["name"]: r["id"] for r in made}
                down_at = {ids[f"job-{i}"]: at for i, at in sampled.items()}
                log(f"COPYed {len(rows):,} heartbeats in {copy_s:.1f} s; first deadline in {first - time.time():.1f} s")

                extra = {"HERON_SCAN_INTERVAL": str(scan_interval), "HERON_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8"}
                detector, notifier = await asyncio.gather(
                    start_service(env, "detector", extra), start_service(env, "notifier", extra)
                )
                ready_before_first = min(down_at.values()) - max(detector.ready_at, notifier.ready_at)
                # The detector's first ticks move the sampled heartbeats to `late` (their due time
                # is past); they must all be there before the first grace runs out, or the set-up
                # (not Heron) would be measured.
                while await pool.fetchval("SELECT count(*) FROM monitors WHERE state = 'late'") < args.sample:
                    if time.time() > min(down_at.values()):
                        break
                    await asyncio.sleep(0.2)  # polled: the detector writes it, nothing to await
                late_by = min(down_at.values()) - time.time()
                if late_by <= 0 or ready_before_first <= 0:
                    problems.append(
                        f"set-up too slow (services ready {ready_before_first:.1f} s, all late {late_by:.1f} s"
                        " before the first deadline): raise --lead"
                    )
                log(
                    f"services ready {ready_before_first:.1f} s and all {args.sample} sampled heartbeats late"
                    f" {late_by:.1f} s before the first deadline"
                )
                last = max(down_at.values())
                try:
                    await asyncio.wait_for(receiver.arrived.wait(), max(last - time.time(), 0) + 60)
                except TimeoutError:
                    problems.append(f"only {len(receiver.hits)} of {args.sample} alerts arrived within 60 s")
                # Duplicates or false alerts would come within a tick or two.
                await asyncio.sleep(2 * scan_interval + 2.0)

                states = dict(await pool.fetch("SELECT state, count(*) FROM monitors GROUP BY state"))
                incidents = await pool.fetchval("SELECT count(*) FROM incidents")
                wrong_incidents = await pool.fetchval(
                    "SELECT count(*) FROM incidents WHERE NOT (monitor_id = ANY($1::bigint[]))", list(down_at)
                )
                healthy_flips = await pool.fetchval(
                    "SELECT count(*) FROM flips WHERE NOT (monitor_id = ANY($1::bigint[]))", list(down_at)
                )
                deliveries = await pool.fetchrow(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'succeeded' AND attempts = 1) AS once"
                    " FROM deliveries"
                )
                stage_rows = await pool.fetch(
                    "SELECT d.alert_id::text AS alert_id, extract(epoch FROM f.at) AS tick,"
                    " extract(epoch FROM o.created_at) AS created, extract(epoch FROM o.sent_at) AS sent,"
                    " extract(epoch FROM d.created_at) AS recorded, extract(epoch FROM a.attempted_at) AS attempted"
                    " FROM deliveries d JOIN outbox o ON o.alert_id = d.alert_id"
                    " JOIN delivery_attempts a ON a.delivery_id = d.id"
                    " JOIN flips f ON f.monitor_id = (o.message -> 'data' -> 'heartbeat' ->> 'id')::bigint"
                    " AND f.to_state = 'down'"
                )
            finally:
                await pool.close()
    finally:
        await receiver.stop()

    per_monitor: dict[int | None, int] = {}
    for _, _, topic, hb_id in receiver.hits:
        if topic == "heartbeat.down":
            per_monitor[hb_id] = per_monitor.get(hb_id, 0) + 1
    missing = [m for m in down_at if m not in per_monitor]
    repeated = [m for m, c in per_monitor.items() if c > 1]
    false_alerts = [m for m in per_monitor if m not in down_at]
    other_topics = [t for _, _, t, _ in receiver.hits if t != "heartbeat.down"]
    if missing:
        problems.append(f"{len(missing)} sampled heartbeats never alerted")
    if repeated:
        problems.append(f"{len(repeated)} heartbeats alerted more than once")
    if false_alerts:
        problems.append(f"{len(false_alerts)} healthy heartbeats alerted")
    if other_topics:
        problems.append(f"{len(other_topics)} requests with another topic")
    if states.get("down", 0) != args.sample or states.get("up", 0) != args.heartbeats - args.sample:
        problems.append(f"states {states}")
    if incidents != args.sample or wrong_incidents:
        problems.append(f"{incidents} incidents ({wrong_incidents} on healthy heartbeats)")
    if healthy_flips:
        problems.append(f"{healthy_flips} flips of healthy heartbeats")
    if deliveries["n"] != args.sample or deliveries["once"] != args.sample:
        problems.append(f"{deliveries['n']} deliveries, {deliveries['once']} succeeded at the first attempt")

    arrival = {}
    for at, alert_id, topic, hb_id in receiver.hits:
        if topic == "heartbeat.down" and hb_id in down_at and alert_id not in arrival:
            arrival[alert_id] = (at, hb_id)
    latencies = [at - down_at[hb_id] for at, hb_id in arrival.values()]
    stages: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for r in stage_rows:
        if r["alert_id"] not in arrival:
            continue
        at, hb_id = arrival[r["alert_id"]]
        point = {k: float(r[k]) for k in ("tick", "created", "sent", "recorded", "attempted")}
        point.update(down_at=down_at[hb_id], arrival=at)
        for name, expr in STAGES:
            later, earlier = (p.strip() for p in expr.split("-"))
            stages[name].append(point[later] - point[earlier])
    log(f"background: {describe_background(env.background)}")
    return RunResult(scan_interval, latencies, stages, problems, ready_before_first, copy_s)


def _pct(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {median(values):.3f} s, p90 {percentile(values, 90):.3f} s, p99 {percentile(values, 99):.3f} s,"
        f" max {max(values):.3f} s"
    )


def describe(r: RunResult, args: argparse.Namespace) -> str:
    lines = [
        f"HERON_SCAN_INTERVAL={r.scan_interval:g} s: {len(r.latencies):,} alerts, deadline -> arrival at the"
        f" receiver: {_pct(r.latencies)}",
        "  stages (p50 / p99 / max):",
    ]
    for name, _ in STAGES:
        v = r.stages[name]
        if v:
            lines.append(f"    {name:<24} {median(v):7.3f} / {percentile(v, 99):7.3f} / {max(v):7.3f} s")
    lines.append(
        "  checks: "
        + (
            f"all {args.sample:,} sampled heartbeats alerted exactly once (one incident each, state down);"
            f" none of the {args.heartbeats - args.sample:,} healthy ones alerted or flipped;"
            " every delivery succeeded at its first attempt"
            if not r.problems
            else "FAILED: " + "; ".join(r.problems)
        )
    )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    intervals = [float(x) for x in args.scan_intervals.split(",") if x.strip()]
    results = []
    for interval in intervals:
        result = await run_one(args, interval)
        print(describe(result, args), flush=True)
        results.append(result)
    banner(
        f"heartbeat alert latency: {args.heartbeats:,} heartbeats, {args.sample:,} miss their deadline over"
        f" {args.window:g} s; one detector + one notifier (python -m), webhook receiver on loopback"
    )
    for r in results[1:]:
        print(describe(r, args), flush=True)
    head = results[0]
    print(describe(head, args), flush=True)
    ok = not head.problems and bool(head.latencies) and percentile(head.latencies, 99) < TARGET_S
    p99 = percentile(head.latencies, 99) if head.latencies else float("nan")
    print(
        f"heartbeat_alert_latency: p50 {median(head.latencies):.2f} s, p99 {p99:.2f} s, max"
        f" {max(head.latencies, default=float('nan')):.2f} s from missed deadline to the webhook arriving,"
        f" {len(head.latencies):,} alerts at {args.heartbeats:,} heartbeats, HERON_SCAN_INTERVAL="
        f"{head.scan_interval:g} s (target < {TARGET_S:g} s) -> {'PASS' if ok else 'FAIL'}",
        flush=True,
    )
    return 0 if ok and not any(r.problems for r in results) else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heartbeats", type=int, default=100_000)
    p.add_argument("--sample", type=int, default=1_000, help="heartbeats that miss their deadline")
    p.add_argument("--window", type=float, default=10.0, help="seconds over which the sampled deadlines fall")
    p.add_argument("--lead", type=float, default=20.0, help="seconds from creating the rows to the first deadline")
    p.add_argument(
        "--scan-intervals",
        default="1",
        help="HERON_SCAN_INTERVAL per run, comma-separated; the first is the figure (default 1: production)",
    )
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--seed", type=int, default=42)
    raise SystemExit(asyncio.run(main_async(p.parse_args())))
