"""On-call paging: pages scheduled and sent per second by ONE notifier with 10,000 open incidents
escalating, and the delay from each page step's due time to its send.

    .venv/bin/python bench/paging.py [--incidents 10000] [--open-over 40] [--run 60]
        [--repeat 30] [--concurrency 64]

1. a fresh database and prefixes (bench/_common.py ``BenchEnv``; all removed at the end);
2. a webhook receiver in its own process (bench/notifier_throughput.py's, answering 200 at once);
3. one project, 20 users each with one webhook channel (delay 0) to the receiver, a rotation of
   two of them taking weekly turns (one on call, one "previous"), a ladder — previous after 5 s,
   a named user after 10 s — and the primary paged again every ``--repeat`` seconds; one service on
   that rotation, and ``--incidents`` trigger monitors of it with an open incident each, opening
   one after another over ``--open-over`` seconds (``opened_at`` in the future, written ahead);
4. ONE notifier process, the real service (``python -m heron_notifier``, default paging settings
   except ``HERON_PAGING_CONCURRENCY``), ready before the first incident opens;
5. each incident's ``incident.opened`` alert is published to the alerts exchange at its opening
   time, as the detector's outbox would; the notifier records it, plans the incident's steps
   (``HERON_PAGING_HORIZON`` ahead) and sends what falls due.

After ``--run`` seconds (counted from the first opening) the notifier is stopped and the ledger
read: pages scheduled (rows written) per second, pages sent per second (peak over 1 s windows and
mean over the run), and the delay ``sent_at - due_at`` of every page sent at its first attempt
(p50, p99, max). Checked: every page due before the end more than 2 s ago was sent, once; the
receiver answered as many requests as pages were sent.

Target: p99 of the due-to-send delay under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import aio_pika
from _common import BenchEnv, CpuWindow, banner, log, percentile, start_module
from notifier_throughput import start_receiver

from heron_common import bus, db, messages, oncall_store, webhooks
from heron_common.oncall import shifts as sh

USERS = 20
TARGET_P99 = 2.0


async def seed(pool, receiver_port: int, incidents: int, first_open: float, open_over: float, repeat: float) -> int:
    project_id = await pool.fetchval("INSERT INTO projects (name) VALUES ('paging bench') RETURNING id")
    users = []
    for i in range(USERS):
        uid = await pool.fetchval(
            "INSERT INTO users (project_id, email, name) VALUES ($1, $2, $3) RETURNING id",
            project_id,
            f"u{i}@bench.io",
            f"user {i}",
        )
        await pool.execute(
            "INSERT INTO user_channels (user_id, project_id, kind, target, delay, secret)"
            " VALUES ($1, $2, 'webhook', $3, 0, $4)",
            uid,
            project_id,
            f"http://127.0.0.1:{receiver_port}/page/{i}",
            webhooks.new_secret(),
        )
        users.append(uid)
    spec = "u0@bench.io\nu1@bench.io\n"
    now = datetime.now(UTC)
    anchor = now - timedelta(days=10)
    rotation_id = await pool.fetchval(
        "INSERT INTO rotations (project_id, name, spec, anchor, repeat_every) VALUES ($1, 'bench', $2, $3, $4)"
        " RETURNING id",
        project_id,
        spec,
        anchor,
        repeat,
    )
    async with pool.acquire() as conn:
        made = sh.generate(oncall_store.parsed(spec), anchor, now + timedelta(days=15))
        await oncall_store.insert_shifts(conn, rotation_id, project_id, made)
    await pool.execute(
        "INSERT INTO escalation_strategies (rotation_id, project_id, delay, target) VALUES ($1, $2, 5, 'previous')",
        rotation_id,
        project_id,
    )
    await pool.execute(
        "INSERT INTO escalation_strategies (rotation_id, project_id, delay, target, user_id)"
        " VALUES ($1, $2, 10, 'user', $3)",
        rotation_id,
        project_id,
        users[5],
    )
    service_id = await pool.fetchval(
        "INSERT INTO services (project_id, name, rotation_id) VALUES ($1, 'API', $2) RETURNING id",
        project_id,
        rotation_id,
    )
    # The monitors and their incidents, opening one after another from first_open.
    await pool.execute(
        "INSERT INTO monitors (project_id, kind, name, service, shard, state, config)"
        " SELECT $1, 'trigger', 'trigger ' || g, 'API', 0, 'alerting', jsonb_build_object('service_id', $2::bigint)"
        " FROM generate_series(1, $3) g",
        project_id,
        service_id,
        incidents,
    )
    await pool.execute(
        "INSERT INTO incidents (project_id, monitor_id, alert_id, kind, title, service, started_at, opened_at, name)"
        " SELECT $1, m.id, gen_random_uuid(), 'trigger', m.name || ' is alerting', 'API',"
        "  to_timestamp($2::float8 + (row_number() OVER (ORDER BY m.id) - 1) * $3::float8),"
        "  to_timestamp($2::float8 + (row_number() OVER (ORDER BY m.id) - 1) * $3::float8), m.name"
        " FROM monitors m WHERE m.project_id = $1",
        project_id,
        first_open,
        open_over / incidents,
    )
    return project_id


async def publish_openings(settings, pool, project_id: int) -> int:
    """Publish every incident.opened alert at its incident's opening time."""
    rows = await pool.fetch(
        "SELECT id, monitor_id, alert_id, extract(epoch FROM opened_at) AS at FROM incidents"
        " WHERE project_id = $1 ORDER BY opened_at",
        project_id,
    )
    names = bus.Names(settings.amqp_prefix)
    connection = await aio_pika.connect(settings.amqp_url)
    late = 0
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await bus.declare_notifier_queue(channel, names)
        exchange = await bus.declare_alerts(channel, names)
        inflight: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(256)  # confirms are awaited concurrently: one at a time lags

        async def one(r) -> None:
            async with limit:
                data = {"incident": {"id": r["id"], "monitor_id": r["monitor_id"]}, "project": {"id": project_id}}
                message = messages.alert_message("incident.opened", str(r["alert_id"]), float(r["at"]), data)
                await bus.publish(exchange, "incident.opened.trigger", message)

        for r in rows:
            wait = float(r["at"]) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.5:
                late += 1
            task = asyncio.create_task(one(r))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.gather(*inflight)
    finally:
        await connection.close()
    return late


async def main_async(args: argparse.Namespace) -> int:
    banner(f"paging: {args.incidents:,} incidents opening over {args.open_over:g} s, one notifier")
    async with BenchEnv(shards=4, overrides={"log_level": "WARNING"}, keep_logs=args.keep_logs) as env:
        if args.keep_logs:
            log(f"logs kept in {env.workdir}")
        receiver = await start_receiver(0.0)
        pool = await db.create_pool(env.database_url, max_size=4)
        try:
            first_open = time.time() + 15.0  # after the notifier is up
            project_id = await seed(pool, receiver.port, args.incidents, first_open, args.open_over, args.repeat)
            log(f"seeded {args.incidents:,} incidents; starting the notifier")
            notifier = await start_module(
                env,
                "notifier",
                {
                    "HERON_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
                    "HERON_PAGING_CONCURRENCY": str(args.concurrency),
                },
            )
            if time.time() > first_open - 1:
                raise SystemExit("the notifier took too long to start; nothing measured")
            end = first_open + args.run
            with CpuWindow(notifier) as cpu:
                late = await publish_openings(env.settings, pool, project_id)
                await asyncio.sleep(max(0.0, end - time.time()))
            await notifier.stop()
            served = await receiver.stop()
        finally:
            await pool.close()
            pool = await db.create_pool(env.database_url, max_size=2)

        try:
            stats = await pool.fetchrow(
                "SELECT count(*) AS planned,"
                " count(*) FILTER (WHERE status = 'sent') AS sent,"
                " count(*) FILTER (WHERE status = 'sent' AND attempts = 1) AS sent_first,"
                " count(*) FILTER (WHERE attempts > 1) AS retried,"
                " count(*) FILTER (WHERE status <> 'sent' AND due_at < to_timestamp($1)) AS missing,"
                " extract(epoch FROM max(created_at) - min(created_at)) AS plan_span,"
                " extract(epoch FROM max(sent_at) - min(sent_at)) AS send_span"
                " FROM pages",
                end - 2.0,
            )
            delays = [
                float(r["d"])
                for r in await pool.fetch(
                    "SELECT extract(epoch FROM sent_at - due_at) AS d FROM pages WHERE status = 'sent' AND attempts = 1"
                )
            ]
            spans = await pool.fetchrow(
                "SELECT extract(epoch FROM min(opened_at)) AS o0, extract(epoch FROM max(opened_at)) AS o1,"
                " (SELECT extract(epoch FROM min(created_at)) FROM pages) AS c0,"
                " (SELECT extract(epoch FROM max(created_at)) FROM pages) AS c1,"
                " (SELECT extract(epoch FROM min(sent_at)) FROM pages) AS s0,"
                " (SELECT extract(epoch FROM max(sent_at)) FROM pages) AS s1 FROM incidents"
            )
            log(
                "timeline from the first opening: "
                + ", ".join(f"{k} +{float(v) - float(spans['o0']):.2f} s" for k, v in spans.items() if v is not None)
            )
            # Where the worst delays happened: a stall shows as a run of late pages in one stretch.
            worst_at = await pool.fetch(
                "SELECT extract(epoch FROM due_at) - $1 AS at, extract(epoch FROM sent_at - due_at) AS d, reason"
                " FROM pages WHERE status = 'sent' ORDER BY sent_at - due_at DESC LIMIT 5",
                float(spans["o0"]),
            )
            log(
                "worst delays (due at +s: delay s): "
                + ", ".join(f"+{r['at']:.1f}: {r['d']:.2f} ({r['reason']})" for r in worst_at)
            )
            per_second = await pool.fetch(
                "SELECT date_trunc('second', sent_at) AS s, count(*) AS n FROM pages WHERE status = 'sent'"
                " GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            )
            planned_per_second = await pool.fetch(
                "SELECT date_trunc('second', created_at) AS s, count(*) AS n FROM pages"
                " GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            )
        finally:
            await pool.close()

    planned, sent = stats["planned"], stats["sent"]
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    worst = max(delays) if delays else 0.0
    problems = []
    if stats["missing"]:
        problems.append(f"{stats['missing']} pages due before the end were not sent")
    if stats["retried"]:
        problems.append(f"{stats['retried']} pages needed a retry")
    if served != sent:
        problems.append(f"the receiver answered {served} requests for {sent} pages sent")
    if late:
        problems.append(f"{late} openings were published more than 0.5 s late (the load generator lagged)")
    print(
        f"{args.incidents:,} incidents opened over {args.open_over:g} s, escalating (primary every {args.repeat:g} s,"
        f" previous after 5 s, a named user after 10 s), {args.run:g} s measured\n"
        f"  pages scheduled: {planned:,} rows, {planned / max(float(stats['plan_span'] or 1), 1e-9):,.0f}/s over"
        f" the run, peak {planned_per_second[0]['n'] if planned_per_second else 0:,} in one second\n"
        f"  pages sent: {sent:,}, {sent / max(float(stats['send_span'] or 1), 1e-9):,.0f}/s over the run,"
        f" peak {per_second[0]['n'] if per_second else 0:,} in one second\n"
        f"  due -> sent delay: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        f" ({len(delays):,} pages sent at the first attempt)\n"
        f"  {cpu.describe(max(sent, 1), 'page')}\n"
        f"  target p99 < {TARGET_P99:g} s: {'MET' if p99 < TARGET_P99 else 'MISSED'}\n"
        f"  checks: {'; '.join(problems) if problems else 'every page due was sent once; the receiver saw each'}",
        flush=True,
    )
    return 0 if not problems and p99 < TARGET_P99 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--open-over", type=float, default=40.0, help="seconds over which the incidents open")
    parser.add_argument("--run", type=float, default=60.0, help="seconds measured from the first opening")
    parser.add_argument("--repeat", type=float, default=30.0, help="the rotation's repeat interval (s)")
    parser.add_argument("--concurrency", type=int, default=64, help="HERON_PAGING_CONCURRENCY")
    parser.add_argument("--keep-logs", action="store_true", help="keep the notifier's log (its path is printed)")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
