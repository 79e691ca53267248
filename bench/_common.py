"""Shared set-up and tear-down for the benchmarks in bench/.

Every run is isolated on the shared local servers:

- its own database ``heron_bench_<tag>`` (created with ``db.ensure_database`` + ``db.migrate``,
  dropped with ``db.drop_database`` at the end);
- its own ``redis_prefix`` and ``amqp_prefix`` (``heron-bench-<tag>``); the RabbitMQ queues and
  exchanges are deleted with ``bus.delete_topology`` and the Redis keys with a SCAN + DEL at the end,
  whether the run succeeded or not.

Servers under test run in their own process (bench/_serve.py) so that the load generator (wrk or
this process) never shares an interpreter or an event loop with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as redis_asyncio

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PYTHON = sys.executable

# Seals the benchmark's webhook secrets (a throwaway key: benchmark data only).
BENCH_SECRETS_KEY = "YmVuY2gtc2VjcmV0cy1rZXktbm90LWEtc2VjcmV0LTA="

# The local servers (overridable like the tests': HERON_BENCH_*_URL).
PG_URL = os.environ.get("HERON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HERON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HERON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

ADMIN_TOKEN = "bench-admin-" + secrets.token_hex(8)


def code_version() -> str:
    """The commit under test, and whether services/ or libs/ differ from it (read-only git)."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "--no-optional-locks", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "services",
                "libs",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{head}{' + uncommitted changes in services/ or libs/' if dirty else ''}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@dataclass
class Server:
    """A server under test running bench/_serve.py in a child process."""

    service: str
    proc: asyncio.subprocess.Process
    log_path: Path
    port: int = 0
    setup_at: float = 0.0
    ready_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (from /proc)."""
        return process_cpu_seconds(self.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                log(f"{self.service} (pid {self.pid}) did not stop in {timeout} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


@dataclass
class BenchEnv:
    """Fresh database, prefixes and settings for one run; tears everything down on exit."""

    shards: int = 16
    overrides: dict[str, Any] = field(default_factory=dict)
    keep_logs: bool = False

    def __post_init__(self) -> None:
        self.tag = secrets.token_hex(5)
        self.db_name = f"heron_bench_{self.tag}"
        self.database_url = _with_db(PG_URL, self.db_name)
        self.prefix = f"heron-bench-{self.tag}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"heron-bench-{self.tag}-"))
        # Production defaults (Settings()) except what isolates the run and keeps logs quiet.
        self.settings_overrides: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": REDIS_URL,
            "amqp_url": AMQP_URL,
            "redis_prefix": self.prefix,
            "amqp_prefix": self.prefix,
            "shards": self.shards,
            "admin_token": ADMIN_TOKEN,
            "secrets_keys": (BENCH_SECRETS_KEY,),
            "http_host": "127.0.0.1",
            "log_level": "WARNING",
            # One client address and one key drive the whole load: the rate limits (a protection
            # against clients, not a capacity) would measure themselves instead of ingest.
            "rate_limit_per_key": 0.0,
            "rate_limit_per_address": 0.0,
            **self.overrides,
        }
        self.servers: list[Server] = []
        self._db_created = False

    @property
    def settings(self):
        from heron_common.settings import Settings

        return Settings(**self.settings_overrides)

    async def __aenter__(self) -> BenchEnv:
        from heron_common import db

        self.background = await background_load()
        self.code = _CODE[0] = code_version()
        log(describe_background(self.background))
        log(f"run {self.tag}: database {self.db_name}, prefix {self.prefix}")
        await db.ensure_database(self.database_url)
        self._db_created = True
        await db.migrate(self.database_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.teardown()

    async def teardown(self) -> None:
        from heron_common import bus, db

        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                await server.stop()
        self.servers.clear()
        try:
            await bus.delete_topology(AMQP_URL, bus.Names(self.prefix), self.shards)
        except Exception as exc:  # keep tearing down the rest
            log(f"teardown: RabbitMQ topology not deleted: {exc!r}")
        try:
            r = redis_asyncio.Redis.from_url(REDIS_URL)
            try:
                batch: list[bytes] = []
                async for key in r.scan_iter(match=f"{self.prefix}:*", count=10_000):
                    batch.append(key)
                    if len(batch) >= 1000:
                        await r.unlink(*batch)
                        batch.clear()
                if batch:
                    await r.unlink(*batch)
            finally:
                await r.aclose()
        except Exception as exc:
            log(f"teardown: Redis keys not deleted: {exc!r}")
        if self._db_created:
            try:
                await db.drop_database(self.database_url)
            except Exception as exc:
                log(f"teardown: database {self.db_name} not dropped: {exc!r}")
        if not self.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
        log(f"run {self.tag}: cleaned up")

    async def start(
        self,
        service: str,
        *,
        cprofile: Path | None = None,
        patch: str | None = None,
        stdlib_loop: bool = False,
        timeout: float = 60.0,
    ) -> Server:
        """Start bench/_serve.py SERVICE in a child process and wait until it serves.

        ``patch``: a bench-local prototype module (bench/prototypes/NAME.py) imported in the child
        before the app is built, to measure a suggested fix without touching the services."""
        log_path = self.workdir / f"{service}-{len(self.servers)}.log"
        args = [PYTHON, str(BENCH / "_serve.py"), service, orjson.dumps(self.settings_overrides).decode()]
        if cprofile is not None:
            args += ["--cprofile", str(cprofile)]
        if stdlib_loop:
            args += ["--stdlib-loop"]
            log(f"{service}: on asyncio's own loop (NOT how the services run: they use uvloop)")
        if patch:
            args += ["--patch", patch]
            log(f"{service}: applying bench-local prototype {patch!r} (NOT the code as committed)")
        logf = open(log_path, "wb")  # noqa: ASYNC230 - tiny, and the child owns it
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=logf, cwd=str(REPO), start_new_session=True
        )
        logf.close()
        server = Server(service, proc, log_path)
        self.servers.append(server)
        assert proc.stdout is not None
        give_up = time.monotonic() + timeout
        while True:
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{service} did not start in {timeout} s:\n{server.tail()}")
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                await proc.wait()
                raise RuntimeError(f"{service} exited with {proc.returncode} while starting:\n{server.tail()}")
            parts = line.decode().split()
            if parts and parts[0] == "SETUP":
                server.setup_at = float(parts[1])
            elif parts and parts[0] == "READY":
                server.port, server.ready_at = int(parts[1]), float(parts[2])
                break
        # Keep draining stdout so the child never blocks on a full pipe.
        asyncio.get_running_loop().create_task(_drain(proc.stdout))
        log(f"{service} serving on port {server.port} (pid {server.pid})")
        return server


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_module(
    env: BenchEnv,
    service: str,
    extra: dict[str, str],
    *,
    argv: list[str] | None = None,
    timeout: float = 60.0,
) -> Server:
    """``python -m heron_<service>`` (or ``argv``) with the run's settings as HERON_* variables
    plus ``extra``, on a free port; waits for its /readyz. BenchEnv's teardown stops it."""
    import aiohttp

    s = env.settings
    port = _free_port()
    environ = dict(os.environ)
    environ.update(
        {
            "HERON_DATABASE_URL": s.database_url,
            "HERON_REDIS_URL": s.redis_url,
            "HERON_AMQP_URL": s.amqp_url,
            "HERON_REDIS_PREFIX": s.redis_prefix,
            "HERON_AMQP_PREFIX": s.amqp_prefix,
            "HERON_SHARDS": str(s.shards),
            "HERON_ADMIN_TOKEN": s.admin_token or "",
            "HERON_SECRETS_KEY": ",".join(s.secrets_keys),
            "HERON_HTTP_HOST": "127.0.0.1",
            f"HERON_{service.upper()}_PORT": str(port),
            "HERON_LOG_LEVEL": s.log_level,
            "HERON_LOG_JSON": "true",
            "HERON_RATE_LIMIT_PER_KEY": str(s.rate_limit_per_key),
            "HERON_RATE_LIMIT_PER_ADDRESS": str(s.rate_limit_per_address),
            **extra,
        }
    )
    log_path = env.workdir / f"{service}-{len(env.servers)}.log"
    logf = open(log_path, "wb")  # noqa: ASYNC230 - tiny, and the child owns its copy
    try:
        proc = await asyncio.create_subprocess_exec(
            *(argv or [PYTHON, "-m", f"heron_{service}"]),
            env=environ,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=logf,
            cwd=str(REPO),
            start_new_session=True,
        )
    finally:
        logf.close()
    server = Server(service, proc, log_path, port=port)
    env.servers.append(server)
    give_up = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"{service} exited with {proc.returncode}:\n{server.tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{server.url}/readyz") as r:
                    if r.status == 200:
                        break
            if time.monotonic() > give_up:
                raise RuntimeError(f"{service} was not ready within {timeout} s:\n{server.tail()}")
            await asyncio.sleep(0.1)  # polled: another process, nothing to await
    server.ready_at = time.time()
    log(f"{service} ready on port {port} (pid {server.pid})")
    return server


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.readline():
            pass


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def cpu_by_process(own: dict[int, str] | None = None) -> dict[int, tuple[str, float]]:
    """pid -> (group, CPU seconds used so far) for every process on the machine. Groups: the given
    pids by their label, then postgres, rabbitmq (beam.smp), redis, wrk, everything else ("other")."""
    own = own or {}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        pid = int(entry)
        if pid in own:
            group = own[pid]
        elif comm.startswith("postgres"):
            group = "postgres"
        elif comm.startswith(("beam", "erl", "epmd", "inet_gethost")):
            group = "rabbitmq"
        elif comm.startswith("redis"):
            group = "redis"
        elif comm == "wrk":
            group = "wrk"
        else:
            group = "other"
        out[pid] = (group, cpu)
    return out


class CpuBreakdown:
    """Share of one core used by each group of processes over a window (see cpu_by_process).

    A process that exits inside the window cannot be read at its end; the children of this
    process that exit (and are reaped) inside it -- the load generator -- are counted from
    ``getrusage(RUSAGE_CHILDREN)`` under ``children_label``; anything else that exits is lost,
    which the "not attributed" remainder shows."""

    def __init__(self, own: dict[int, str] | None = None, children_label: str = "exited children") -> None:
        self.own = own or {}
        self.children_label = children_label

    @staticmethod
    def _children() -> float:
        import resource

        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def __enter__(self) -> CpuBreakdown:
        self._t0 = time.monotonic()
        self._c0 = cpu_by_process(self.own)
        self._k0 = self._children()
        self._m0 = machine_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._t0
        c1 = cpu_by_process(self.own)
        shares: dict[str, float] = {}
        for pid, (group, cpu) in c1.items():
            before = self._c0.get(pid)
            used = cpu - (before[1] if before and before[0] == group else 0.0)
            shares[group] = shares.get(group, 0.0) + max(used, 0.0) / wall
        reaped = (self._children() - self._k0) / wall
        if reaped > 0:
            shares[self.children_label] = shares.get(self.children_label, 0.0) + reaped
        self.shares = shares
        m1 = machine_cpu()
        self.machine_cores = (m1[0] - self._m0[0]) / (m1[1] - self._m0[1]) * (os.cpu_count() or 1)

    def disturbance(self, expected: tuple[str, ...] = ()) -> str:
        """Non-empty when processes outside the benchmark used noticeable CPU in the window
        (other people's tests on the shared machine): the figure of that window is pessimistic."""
        foreign = self.shares.get("other", 0.0)
        for group in ("postgres", "rabbitmq", "redis"):
            if group not in expected:
                foreign += max(self.shares.get(group, 0.0) - 0.15, 0.0)
        unattributed = self.machine_cores - sum(self.shares.values())
        if foreign > 0.15 or unattributed > 0.35:
            return (
                f" [DISTURBED: {foreign:.0%} of a core used by unrelated processes,"
                f" {unattributed:.0%} unattributed; this window's figure is pessimistic]"
            )
        return ""

    def describe(self) -> str:
        parts = [f"{g} {v:.0%}" for g, v in sorted(self.shares.items(), key=lambda kv: -kv[1]) if v >= 0.005]
        unattributed = self.machine_cores - sum(self.shares.values())
        return (
            "CPU by process (share of one core): "
            + ", ".join(parts)
            + f"; machine total {self.machine_cores:.0%} (not attributed: {unattributed:.0%} --"
            " kernel threads/interrupts, or processes that exited in the window)"
        )


_CODE = [""]  # set once per run by BenchEnv, shown by describe_background


async def background_load(seconds: float = 1.0) -> float:
    """Share of the machine busy (0..1) over ``seconds`` before the run: other people's work skews it."""
    b0, t0 = machine_cpu()
    await asyncio.sleep(seconds)
    b1, t1 = machine_cpu()
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def describe_background(load: float) -> str:
    text = f"machine {load:.0%} busy in the second before the run"
    if _CODE[0]:
        text = f"code {_CODE[0]}; " + text
    if load > 0.15:
        text += " -- WARNING: something else is running; figures are pessimistic, re-run on a quiet machine"
    return text


class CpuWindow:
    """CPU used by a server process and by the whole machine over a window."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> CpuWindow:
        self._t0 = time.monotonic()
        self._p0 = self.server.cpu_seconds()
        self._m0 = machine_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._t0
        self.process = self.server.cpu_seconds() - self._p0
        m1 = machine_cpu()
        busy, total = m1[0] - self._m0[0], m1[1] - self._m0[1]
        self.machine_busy = busy / total if total else 0.0

    def describe(self, units: int, unit: str) -> str:
        per = self.process / units * 1e6 if units else float("nan")
        return (
            f"{self.server.service} process CPU {self.process / self.wall:.0%} of one core"
            f" ({per:,.0f} us CPU per {unit}); whole machine {self.machine_busy:.0%} busy"
            f" ({os.cpu_count()} cores)"
        )


# --------------------------------------------------------------------------- wrk load generator

WRK_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}
wrk.body = [==[{body}]==]

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  ok = 0
  bad = 0
end
function response(status, headers, body)
  if status == {expected} then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT ok=%d bad=%d requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    o, b, summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class WrkResult:
    ok: int
    bad: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu: CpuWindow | None = None  # set by the caller when it measured CPU over the run
    groups: CpuBreakdown | None = None

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        errs = ", ".join(f"{k} {v}" for k, v in self.errors.items() if v) or "none"
        return (
            f"{self.ok} ok + {self.bad} other status in {self.seconds:.2f} s = {self.ok_per_s:,.0f} ok req/s;"
            f" latency p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, max {self.max_ms:.1f} ms;"
            f" socket errors: {errs}"
        )


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk not found: install it with `apt-get update && apt-get install -y wrk`")
    return found


def write_wrk_script(workdir: Path, name: str, body: bytes, expected_status: int, bearer: str | None) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {bearer}"' if bearer else ""
    text = WRK_LUA.format(auth=auth, body=body.decode(), expected=expected_status)
    path = workdir / f"{name}.lua"
    path.write_text(text)
    return path


async def run_wrk(url: str, script: Path, *, connections: int, seconds: float, threads: int = 1) -> WrkResult:
    args = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    text = out.decode(errors="replace")
    m = re.search(r"^WRKRESULT (.*)$", text, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}\n{err.decode(errors='replace')}")
    kv = dict(part.split("=", 1) for part in m.group(1).split())
    v = {k: int(x) for k, x in kv.items()}
    return WrkResult(
        ok=v["ok"],
        bad=v["bad"],
        requests=v["requests"],
        seconds=v["duration_us"] / 1e6,
        p50_ms=v["p50_us"] / 1e3,
        p99_ms=v["p99_us"] / 1e3,
        max_ms=v["max_us"] / 1e3,
        errors={k.removeprefix("err_"): x for k, x in v.items() if k.startswith("err_")},
    )


# --------------------------------------------------------------------------- helpers


async def create_project(base_url: str, name: str = "bench") -> tuple[int, str]:
    """A real project and API key, made through ingest's admin API."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/v1/projects", params={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as resp,
    ):
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"creating a project failed: {resp.status} {body}")
    return body["project_id"], body["api_key"]


async def probe(url: str, body: bytes, expected_status: int, bearer: str | None) -> None:
    """One request before the load: fail loudly, with the answer, if it is not the expected status."""
    import aiohttp

    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        text = await resp.text()
        if resp.status != expected_status:
            raise SystemExit(f"probe of {url} answered {resp.status}, expected {expected_status}: {text[:500]}")


async def scrape_metric(base_url: str, name: str) -> float:
    """Sum of every sample of one metric on a service's /metrics."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def queue_depths(prefix: str, shards: int) -> dict[str, int]:
    """Ready messages in every shard queue and the detector dead-letter queue (passive declare)."""
    import aio_pika

    from heron_common import bus

    names = bus.Names(prefix)
    out: dict[str, int] = {}
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for name in [names.shard_queue(s) for s in range(shards)] + [names.detector_dead]:
            channel = await connection.channel()
            try:
                q = await channel.declare_queue(name, passive=True)
                out[name] = q.declaration_result.message_count or 0
            except aio_pika.exceptions.AMQPError:
                out[name] = -1
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()
    finally:
        await connection.close()
    return out


async def purge_shard_queues(prefix: str, shards: int) -> int:
    import aio_pika

    from heron_common import bus

    names = bus.Names(prefix)
    purged = 0
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for s in range(shards):
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                q = await channel.declare_queue(names.shard_queue(s), passive=True)
                r = await q.purge()
                purged += r.message_count or 0
    finally:
        await connection.close()
    return purged


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- profiling


def find_py_spy(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else []
    candidates += [shutil.which("py-spy"), str(Path(PYTHON).parent / "py-spy"), "/tmp/pyspy/bin/py-spy"]
    for c in candidates:
        if c and os.path.exists(c) and os.access(c, os.X_OK):
            return c
    return None


def summarize_collapsed(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's ``--format raw`` output."""
    self_samples: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total += count
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        # Drop the thread/process header frames py-spy may add.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        leaf = _frame(frames[-1])
        self_samples[leaf] = self_samples.get(leaf, 0) + count
        for name in {_frame(f) for f in frames}:
            incl[name] = incl.get(name, 0) + count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self time (where the CPU actually is):"]
    for name, n in sorted(self_samples.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    lines += ["", "inclusive time (function and what it calls):"]
    for name, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(lines)


def _frame(f: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function + file basename.
    m = re.match(r"(.*) \((.*?):?(\d+)?\)$", f)
    if not m:
        return f
    func, path = m.group(1), m.group(2)
    marker = "site-packages/"
    if marker in path:
        path = path.split(marker, 1)[1]
    elif "/work/main/" in path:
        path = path.split("/work/main/", 1)[1]
    return f"{func} ({path})"


def summarize_cprofile(path: Path, top: int = 30) -> str:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def banner(title: str) -> None:
    print("", flush=True)
    print("=" * 78, flush=True)
    print(title, flush=True)
    print("=" * 78, flush=True)


class Profiler:
    """Profile a server process for a window: py-spy (sampling, from outside) or cProfile (inside,
    via SIGUSR1/SIGUSR2; the server must have been started with ``cprofile=``)."""

    def __init__(
        self, mode: str, server: Server, workdir: Path, py_spy: str | None = None, cprofile_path: Path | None = None
    ) -> None:
        self.mode = mode
        self.server = server
        self.workdir = workdir
        self.py_spy = py_spy
        self.cprofile_path = cprofile_path
        self._proc: asyncio.subprocess.Process | None = None
        self.raw_path = workdir / f"py-spy-{server.service}.txt"

    async def start(self) -> None:
        if self.mode == "py-spy":
            assert self.py_spy
            self._proc = await asyncio.create_subprocess_exec(
                self.py_spy,
                "record",
                "--pid",
                str(self.server.pid),
                "--format",
                "raw",
                "--rate",
                "100",
                "--output",
                str(self.raw_path),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(0.5)
            if self._proc.returncode is not None:
                err = (await self._proc.stderr.read()).decode() if self._proc.stderr else ""
                raise RuntimeError(f"py-spy failed to attach: {err}")
        elif self.mode == "cprofile":
            os.kill(self.server.pid, signal.SIGUSR1)

    async def stop(self) -> str:
        if self.mode == "py-spy" and self._proc is not None:
            self._proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self._proc.wait(), 30)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
            if not self.raw_path.exists():
                err = (await self._proc.stderr.read()).decode() if self._proc.stderr else ""
                return f"py-spy wrote no profile: {err}"
            return summarize_collapsed(self.raw_path)
        if self.mode == "cprofile":
            assert self.cprofile_path
            os.kill(self.server.pid, signal.SIGUSR2)
            for _ in range(100):
                await asyncio.sleep(0.1)
                if self.cprofile_path.exists() and self.cprofile_path.stat().st_size > 0:
                    await asyncio.sleep(0.3)
                    break
            return summarize_cprofile(self.cprofile_path)
        return ""
