"""Notifier: webhook deliveries per second from ONE notifier process.

    .venv/bin/python bench/notifier_throughput.py [--runs fast,slow] [--endpoints 40]
        [--fast-deliveries 20000] [--fast-concurrency 256]
        [--slow-deliveries 2000] [--slow-concurrency 200] [--slow-delay 1.0]
        [--profile none|py-spy] [--instrument] [--delivery-timeout S]
        [--connector-limit N] [--pipelined-flush]      (bench-local prototypes, see the end)

For each run (``fast``: the receiver answers 200 at once; ``slow``: it answers 200 after
``--slow-delay`` seconds, an ``asyncio`` timer in the receiver, i.e. the receiver being slow):

1. a fresh database ``heron_bench_<tag>`` (``db.ensure_database`` + ``db.migrate``), private Redis and
   RabbitMQ prefixes (bench/_common.py ``BenchEnv``; all removed at the end);
2. a webhook receiver in its own process (this file with ``--serve-receiver``: a minimal HTTP/1.1
   keep-alive server on ``asyncio.Protocol``, so that as little CPU as possible goes to it on a
   2-core machine; it counts the requests it answered);
3. one project with ``--endpoints`` webhook endpoints (topics ``*``, format json, each its own
   signing secret) pointing at the receiver (``/hooks/<i>``), and ceil(M / endpoints) alerts recorded
   with the notifier's own ``ledger.record_alert`` (one transaction per alert, as the alerts consumer
   does): M delivery rows, due in an hour so nothing is sent yet;
4. ONE notifier process, the real service: ``python -m heron_notifier`` with ``HERON_*`` variables
   (``HERON_OUTBOUND_ALLOW_CIDRS=127.0.0.0/8``, ``HERON_DELIVERY_CONCURRENCY``,
   ``HERON_ENDPOINT_CONCURRENCY`` default 8), started and ready (``/readyz``) before anything is due;
5. one ``UPDATE deliveries SET next_attempt_at = now() - (max(id) - id) µs`` makes all M due at once
   (in the order recorded, as alerts recorded one after another would be). The clock starts
   at the first attempt (``min(delivery_attempts.attempted_at)``; the idle worker polls every
   ``HERON_DELIVERY_POLL_INTERVAL``, 1 s, which is not the notifier's throughput) and stops when a
   poll of the database (every 0.2 s) sees an attempt recorded for all M (normally: all
   ``succeeded``; a failed attempt would only be retried seconds later, and is reported).

Checked afterwards: every delivery succeeded in exactly one attempt, one ``delivery_attempts`` row
each, and the receiver answered exactly M requests.

Targets: >= 2,000 deliveries/s to the fast receiver; to the slow one, throughput bounded only by the
configured concurrency (≈ concurrency / delay).

Diagnostics: ``--profile py-spy`` samples the notifier during the run (py-spy from PATH, the venv,
or /tmp/pyspy; ``.venv/bin/pip install py-spy``). ``--instrument`` times ``ledger.claim`` and
``ledger.finish`` as the worker calls them (a wrapper installed before the service starts).
``--delivery-timeout S`` sets ``HERON_DELIVERY_TIMEOUT``.

Bench-local prototypes of suggested fixes (NOT the committed code; the notifier is then started
through a small wrapper that patches it before ``heron_notifier.__main__.main()``):
``--connector-limit N`` gives the notifier's ``GuardedSession`` an aiohttp connection pool of N
instead of its default 100; ``--pipelined-flush`` records finished attempts (``ledger.finish``) in a
background task instead of awaiting it inside the claim loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    PYTHON,
    BenchEnv,
    CpuWindow,
    Profiler,
    Server,
    banner,
    find_py_spy,
    log,
    process_cpu_seconds,
    start_module,
)

FAST_TARGET = 2_000
SELF = Path(__file__).resolve()

# --------------------------------------------------------------------------- the receiver process

_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class _ReceiverProtocol(asyncio.Protocol):
    """Reads one request at a time (Content-Length bodies: what aiohttp sends for bytes) and answers
    200, at once or after ``delay`` seconds. A client never pipelines, so responses stay in order."""

    served = 0
    delay = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buf) < total:
                return
            del self.buf[:total]
            type(self).served += 1
            if self.delay > 0:
                asyncio.get_running_loop().call_later(self.delay, self._respond)
            else:
                self._respond()

    def _respond(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_RESPONSE)


async def _serve_receiver(delay: float) -> None:
    _ReceiverProtocol.delay = delay
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(_ReceiverProtocol, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await stop.wait()
    server.close()
    print(f"SERVED {_ReceiverProtocol.served}", flush=True)


@dataclass
class Receiver:
    proc: asyncio.subprocess.Process
    port: int

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    async def stop(self) -> int:
        """Stop it; how many requests it answered."""
        assert self.proc.stdout is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        served = -1
        try:
            async with asyncio.timeout(10):
                while line := await self.proc.stdout.readline():
                    if line.startswith(b"SERVED "):
                        served = int(line.split()[1])
                await self.proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        return served


async def start_receiver(delay: float) -> Receiver:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        str(SELF),
        "--serve-receiver",
        str(delay),
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line.startswith(b"READY "):
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return Receiver(proc, int(line.split()[1]))


# --------------------------------------------------------------------------- the notifier process

# Bench-local instrumentation and prototype (NOT the committed code), only with --instrument or
# --connector-limit: times ledger.claim/ledger.finish as the worker calls them (printed at exit), and
# gives the notifier's GuardedSession a connection pool of N instead of its default 100.
_WRAPPED_MAIN = r"""
import atexit, json, os, sys, time
limit = os.environ.get("HERON_BENCH_CONNECTOR_LIMIT")
if limit:
    from heron_common import outbound
    _init = outbound.GuardedSession.__init__
    def _patched(self, allow, *, timeout, limit=100):
        _init(self, allow, timeout=timeout, limit=int(os.environ["HERON_BENCH_CONNECTOR_LIMIT"]))
    outbound.GuardedSession.__init__ = _patched
if os.environ.get("HERON_BENCH_INSTRUMENT"):
    from heron_notifier import ledger
    calls = {}
    def _timed(name, fn, size):
        async def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            result = await fn(*args, **kwargs)
            c = calls.setdefault(name, [0, 0.0, 0])
            c[0] += 1
            c[1] += time.perf_counter() - t0
            c[2] += size(args, result)
            return result
        return wrapper
    ledger.claim = _timed("claim", ledger.claim, lambda args, result: len(result))
    ledger.finish = _timed("finish", ledger.finish, lambda args, result: len(args[1]))
    atexit.register(lambda: print("BENCH_LEDGER " + json.dumps(calls), file=sys.stderr, flush=True))
if os.environ.get("HERON_BENCH_PIPELINED_FLUSH"):
    # Prototype: record finished attempts in a background task (one at a time) instead of awaiting
    # ledger.finish inside the claim loop, so claiming and sending go on while a batch is recorded.
    import asyncio
    from heron_notifier.worker import DeliveryWorker
    async def _run(self, stopping, wake, poll_interval):
        recorder = None
        while not stopping.is_set():
            if recorder is not None and recorder.done():
                recorder.result()  # a failed flush fails the loop, as before
                recorder = None
            claimed = await self._claim_and_start()
            if self._results and recorder is None:
                recorder = asyncio.create_task(self.flush())
            if claimed and len(self._inflight) < self.settings.delivery_concurrency:
                continue
            self._finished.clear()
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._finished, wake, stopping)]
            recording = [recorder] if recorder is not None else []  # its end may leave results to record
            await asyncio.wait(waiters + recording, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            wake.clear()
        if recorder is not None:
            await recorder
        await self.drain()
    DeliveryWorker.run = _run
from heron_notifier.__main__ import main
main()
"""


async def start_notifier(
    env: BenchEnv,
    concurrency: int,
    endpoint_cap: int,
    *,
    connector_limit: int | None = None,
    instrument: bool = False,
    pipelined_flush: bool = False,
    delivery_timeout: float | None = None,
    timeout: float = 60.0,
) -> Server:
    """The notifier as a process, with the bench's concurrency and, on request, a bench-local wrapper."""
    extra = {
        "HERON_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
        "HERON_DELIVERY_CONCURRENCY": str(concurrency),
        "HERON_ENDPOINT_CONCURRENCY": str(endpoint_cap),
    }
    if delivery_timeout is not None:
        extra["HERON_DELIVERY_TIMEOUT"] = str(delivery_timeout)
    argv = None
    if connector_limit is not None or instrument or pipelined_flush:
        argv = [PYTHON, "-c", _WRAPPED_MAIN]
    if pipelined_flush:
        extra["HERON_BENCH_PIPELINED_FLUSH"] = "1"
        log("notifier: bench-local prototype, ledger.finish off the claim loop (NOT the committed code)")
    if connector_limit is not None:
        extra["HERON_BENCH_CONNECTOR_LIMIT"] = str(connector_limit)
        log(f"notifier: bench-local patch, GuardedSession(limit={connector_limit}) (NOT the committed code)")
    if instrument:
        extra["HERON_BENCH_INSTRUMENT"] = "1"
        log("notifier: timing ledger.claim / ledger.finish (bench-local wrapper)")
    return await start_module(env, "notifier", extra, argv=argv, timeout=timeout)


# --------------------------------------------------------------------------- data


def _alert(project_id: int, i: int) -> dict:
    from heron_common import messages

    data = {
        "incident": {
            "id": i,
            "event_name": "payment.completed",
            "service": "payments",
            "environment": "production",
            "duration": None,
            "started_at": "2027-01-15T08:00:00Z",
            "opened_at": "2027-01-15T08:18:00Z",
            "expected_interval": 180.5,
        },
        "project": {"id": project_id, "name": "bench"},
    }
    return messages.alert_message("incident.opened", messages.new_id(), time.time(), data)


async def seed(pool, receiver_port: int, endpoints: int, deliveries: int) -> int:
    """The project, its endpoints and the alerts' delivery rows (due in an hour); how many rows."""
    from heron_common import webhooks
    from heron_notifier import ledger

    project_id = await pool.fetchval("INSERT INTO projects (name) VALUES ('bench') RETURNING id")
    await pool.executemany(
        "INSERT INTO webhook_endpoints (project_id, url, topics, format, secret) VALUES ($1, $2, $3, 'json', $4)",
        [
            (project_id, f"http://127.0.0.1:{receiver_port}/hooks/{i}", ["*"], webhooks.new_secret())
            for i in range(endpoints)
        ],
    )
    alerts = math.ceil(deliveries / endpoints)
    later = time.time() + 3600
    first_delay = {ledger.SLACK: 0.0, ledger.WEBHOOK: 0.0}
    gate = asyncio.Semaphore(8)

    async def record(i: int) -> int:
        async with gate, pool.acquire() as conn, conn.transaction():
            return await ledger.record_alert(conn, _alert(project_id, i), later, first_delay)

    t0 = time.perf_counter()
    created = sum(await asyncio.gather(*(record(i) for i in range(alerts))))
    log(f"recorded {alerts} alerts x {endpoints} endpoints = {created} deliveries in {time.perf_counter() - t0:.1f} s")
    return created


# --------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    name: str
    deliveries: int
    concurrency: int
    elapsed: float
    rate: float
    steady_rate: float
    p50_ms: float
    p99_ms: float
    inflight: float
    cpu: str
    receiver_cpu: float
    ok: bool
    problems: list[str]


async def run_one(
    name: str,
    *,
    delay: float,
    deliveries: int,
    concurrency: int,
    endpoints: int,
    endpoint_cap: int,
    connector_limit: int | None,
    instrument: bool,
    pipelined_flush: bool,
    delivery_timeout: float | None,
    profile: str,
    py_spy: str | None,
    timeout: float,
) -> RunResult:
    from heron_common import db

    banner(
        f"{name} receiver ({'answers at once' if delay <= 0 else f'answers after {delay:g} s'}): "
        f"{deliveries} deliveries, HERON_DELIVERY_CONCURRENCY={concurrency}, "
        f"{endpoints} endpoints x HERON_ENDPOINT_CONCURRENCY={endpoint_cap}"
        f" = {endpoints * endpoint_cap} per-endpoint slots"
    )
    if endpoints * endpoint_cap < concurrency:
        log(f"WARNING: {endpoints} endpoints x cap {endpoint_cap} < concurrency {concurrency}: the cap binds first")
    receiver = await start_receiver(delay)
    try:
        async with BenchEnv(shards=4) as env:
            pool = await db.create_pool(env.database_url, max_size=8)
            try:
                m = await seed(pool, receiver.port, endpoints, deliveries)
                notifier = await start_notifier(
                    env,
                    concurrency,
                    endpoint_cap,
                    connector_limit=connector_limit,
                    instrument=instrument,
                    pipelined_flush=pipelined_flush,
                    delivery_timeout=delivery_timeout,
                )
                profiler = None
                if profile == "py-spy":
                    if py_spy is None:
                        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
                    profiler = Profiler("py-spy", notifier, env.workdir, py_spy=py_spy)
                    await profiler.start()
                r_cpu0 = receiver.cpu_seconds()
                with CpuWindow(notifier) as cpu:
                    # Due now, in the order recorded (1 us apart), as alerts recorded one after the other
                    # would be: all equal would let the claim drain some endpoints before others.
                    await pool.execute(
                        "UPDATE deliveries SET next_attempt_at = now() - (SELECT max(id) FROM deliveries) * interval"
                        " '1 microsecond' + id * interval '1 microsecond' WHERE status = 'pending'"
                    )
                    released = time.time()
                    give_up = time.monotonic() + timeout
                    next_report = time.monotonic() + 2.0
                    while True:
                        row = await pool.fetchrow(
                            "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok,"
                            " count(*) FILTER (WHERE status = 'failed') AS failed,"
                            " count(*) FILTER (WHERE attempts > 0) AS attempted FROM deliveries"
                        )
                        # Every delivery has had an attempt recorded (all succeeded, unless something
                        # went wrong: a retry would be due only seconds to hours later).
                        if row["attempted"] >= m:
                            break
                        if time.monotonic() > give_up:
                            log(f"gave up after {timeout} s: {row['ok']} of {m} succeeded")
                            break
                        if time.monotonic() >= next_report:
                            log(f"  {row['ok']} / {m} succeeded, {row['failed']} failed")
                            next_report += 2.0
                        await asyncio.sleep(0.2)
                    done = time.time()
                receiver_cpu = receiver.cpu_seconds() - r_cpu0
                profile_text = await profiler.stop() if profiler else ""
                stats = await pool.fetchrow(
                    "SELECT count(*) AS n, count(DISTINCT delivery_id) AS distinct_n,"
                    " extract(epoch FROM min(attempted_at)) AS first,"
                    " extract(epoch FROM max(attempted_at + latency_ms * interval '1 millisecond')) AS last_answer,"
                    " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,"
                    " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99,"
                    " avg(latency_ms) AS mean_ms, count(*) FILTER (WHERE status_code = 200) AS ok200"
                    " FROM delivery_attempts"
                )
                times = [
                    float(r["t"])
                    for r in await pool.fetch(
                        "SELECT extract(epoch FROM attempted_at) AS t FROM delivery_attempts ORDER BY 1"
                    )
                ]
                final = await pool.fetchrow(
                    "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok,"
                    " count(*) FILTER (WHERE status <> 'succeeded') AS not_ok,"
                    " count(*) FILTER (WHERE attempts <> 1) AS retried,"
                    " count(*) FILTER (WHERE status = 'pending') AS retry_due,"
                    " min(last_error) FILTER (WHERE status <> 'succeeded') AS an_error FROM deliveries"
                )
                disabled = await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE NOT enabled")
                await notifier.stop()
                ledger_calls = _ledger_calls(notifier.log_path)
                log(f"notifier log (last lines):\n{notifier.tail(6) or '(empty)'}")
            finally:
                await pool.close()
    finally:
        served = await receiver.stop()

    first = float(stats["first"]) if stats["first"] is not None else released
    elapsed = done - first
    rate = final["ok"] / elapsed if elapsed > 0 else 0.0
    steady = 0.0
    if len(times) >= 10:
        lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
        steady = (len(times) * 8 // 10) / (hi - lo) if hi > lo else 0.0
    mean_s = float(stats["mean_ms"] or 0.0) / 1000
    print(timeline(times, first, done), flush=True)
    for call, (n, seconds, rows) in ledger_calls.items():
        print(
            f"  ledger.{call}: {n} calls, {seconds:.2f} s in all ({seconds / elapsed:.0%} of the run; the worker's"
            f" loop awaits them one after the other), {seconds / n * 1000:.1f} ms and {rows / n:.0f} rows per call",
            flush=True,
        )
    problems = []
    if final["ok"] != m:
        problems.append(
            f"{final['not_ok']} of {m} deliveries not succeeded ({final['retry_due']} waiting for a retry),"
            f" e.g. {final['an_error']!r}"
        )
    if final["retried"]:
        problems.append(f"{final['retried']} deliveries took more than one attempt")
    if stats["n"] != m or stats["distinct_n"] != m or stats["ok200"] != m:
        problems.append(f"delivery_attempts: {stats['n']} rows, {stats['distinct_n']} distinct, {stats['ok200']} 200s")
    if served != m:
        problems.append(f"the receiver answered {served} requests, expected {m}")
    if disabled:
        problems.append(f"{disabled} endpoints disabled")
    if profile_text:
        print(f"\npy-spy profile of the notifier during the {name} run:\n{profile_text}\n", flush=True)
    return RunResult(
        name=name,
        deliveries=m,
        concurrency=concurrency,
        elapsed=elapsed,
        rate=rate,
        steady_rate=steady,
        p50_ms=float(stats["p50"] or 0.0),
        p99_ms=float(stats["p99"] or 0.0),
        inflight=rate * mean_s,
        cpu=cpu.describe(max(m, 1), "delivery"),
        receiver_cpu=receiver_cpu / cpu.wall if cpu.wall else 0.0,
        ok=not problems,
        problems=problems,
    )


def _ledger_calls(log_path: Path) -> dict[str, list]:
    import json

    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return {}
    for line in reversed(text.splitlines()):
        if line.startswith("BENCH_LEDGER "):
            return json.loads(line.removeprefix("BENCH_LEDGER "))
    return {}


def timeline(times: list[float], first: float, done: float, buckets: int = 20) -> str:
    """Attempts started per time slice of the run, and the longest pause between two attempts."""
    if not times:
        return "  (no attempts)"
    width = max((done - first) / buckets, 1e-3)
    counts = [0] * buckets
    for t in times:
        counts[min(buckets - 1, int((t - first) / width))] += 1
    gaps = [(b - a, a) for a, b in itertools.pairwise(times)]
    gap, at = max(gaps) if gaps else (0.0, first)
    return (
        f"  attempts started per {width:.2f} s slice: {' '.join(str(c) for c in counts)}\n"
        f"  longest pause between two attempts: {gap:.3f} s (at +{at - first:.2f} s);"
        f" last attempt at +{times[-1] - first:.2f} s, all recorded at +{done - first:.2f} s"
    )


def describe(r: RunResult, delay: float) -> str:
    lines = [
        f"{r.name}: {r.deliveries} deliveries succeeded in {r.elapsed:.2f} s = {r.rate:,.0f} deliveries/s"
        f" (steady state, 10th-90th percentile of attempts: {r.steady_rate:,.0f}/s)",
        f"  configured HERON_DELIVERY_CONCURRENCY={r.concurrency}; latency per attempt p50 {r.p50_ms:.1f} ms,"
        f" p99 {r.p99_ms:.1f} ms; attempts in flight on average (rate x mean latency) {r.inflight:.0f}",
        f"  {r.cpu}; receiver process {r.receiver_cpu:.0%} of one core",
    ]
    if delay > 0:
        bound = r.concurrency / delay
        lines.append(
            f"  bound by concurrency: {r.concurrency} / {delay:g} s = {bound:,.0f}/s; reached"
            f" {r.steady_rate / bound:.0%} of it in steady state, {r.rate / bound:.0%} end to end"
            f" (which includes the first and last {delay:g} s)"
        )
        if r.p50_ms > 1500 * delay:
            lines.append(
                f"  an attempt takes {r.p50_ms / 1000:.2f} s (p50) against a receiver that answers in {delay:g} s:"
                " the rest is waiting for a connection from the notifier's aiohttp pool"
                " (GuardedSession(limit=100) in heron_notifier.app._worker_ctx); try --connector-limit"
            )
    else:
        verdict = "MET" if r.rate >= FAST_TARGET else "MISSED"
        lines.append(f"  target >= {FAST_TARGET:,} deliveries/s: {verdict}")
    lines.append(
        "  checks: " + ("all deliveries succeeded once, receiver saw each once" if r.ok else "; ".join(r.problems))
    )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    py_spy = find_py_spy(None) if args.profile == "py-spy" else None
    results: list[tuple[RunResult, float]] = []
    for name in [n.strip() for n in args.runs.split(",") if n.strip()]:
        if name == "fast":
            delay, deliveries, concurrency = 0.0, args.fast_deliveries, args.fast_concurrency
        elif name == "slow":
            delay, deliveries, concurrency = args.slow_delay, args.slow_deliveries, args.slow_concurrency
        else:
            raise SystemExit(f"unknown run {name!r} (fast, slow)")
        result = await run_one(
            name,
            delay=delay,
            deliveries=deliveries,
            concurrency=concurrency,
            endpoints=args.endpoints,
            endpoint_cap=args.endpoint_concurrency,
            connector_limit=args.connector_limit,
            instrument=args.instrument,
            pipelined_flush=args.pipelined_flush,
            delivery_timeout=args.delivery_timeout,
            profile=args.profile,
            py_spy=py_spy,
            timeout=args.timeout,
        )
        results.append((result, delay))
        print(describe(result, delay), flush=True)
    banner("summary (one notifier process, python -m heron_notifier)")
    for result, delay in results:
        print(describe(result, delay), flush=True)
    return 0 if all(r.ok for r, _ in results) else 1


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-receiver":
        asyncio.run(_serve_receiver(float(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="fast,slow")
    parser.add_argument("--endpoints", type=int, default=40)
    parser.add_argument("--endpoint-concurrency", type=int, default=8, help="HERON_ENDPOINT_CONCURRENCY")
    parser.add_argument("--fast-deliveries", type=int, default=20_000)
    parser.add_argument("--fast-concurrency", type=int, default=256)
    parser.add_argument("--slow-deliveries", type=int, default=2_000)
    parser.add_argument("--slow-concurrency", type=int, default=200)
    parser.add_argument("--slow-delay", type=float, default=1.0)
    parser.add_argument("--connector-limit", type=int, default=None, help="bench-local patch, see above")
    parser.add_argument("--instrument", action="store_true", help="time ledger.claim/finish in the notifier")
    parser.add_argument(
        "--pipelined-flush", action="store_true", help="bench-local prototype: ledger.finish off the claim loop"
    )
    parser.add_argument("--delivery-timeout", type=float, default=None, help="HERON_DELIVERY_TIMEOUT (default 15)")
    parser.add_argument("--profile", choices=["none", "py-spy"], default="none")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a run after this many seconds")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
