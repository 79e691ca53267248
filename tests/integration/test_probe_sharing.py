"""Many probers share the probes with no coordinator: the claim statement on frozen time (racing
claimers take disjoint sets, each probe once per interval, never again before its request timeout,
late probes spread over an interval), and two real prober processes on one set of probes, each
probe hit once per interval and never twice at once."""

from __future__ import annotations

import asyncio
import itertools
import signal
from dataclasses import replace
from typing import Any

import asyncpg

from heron_common.db import to_dt
from heron_common.monitors import probe as pr
from heron_common.service import PG
from heron_common.settings import Settings
from heron_prober.probes import claim
from tests.integration.test_probes import Target, fast, new_probe
from tests.support.processes import free_port, settings_env, start_service, wait_ready
from tests.support.system import running_system
from tests.support.waiting import eventually

T0 = 1_800_000_000.0
INTERVAL = 60.0
REQUEST_TIMEOUT = 10.0
JITTER = 0.05


async def _probes(pg: asyncpg.Pool, project_id: int, n: int) -> list[int]:
    config = pr.Config("https://example.com/", interval=INTERVAL, request_timeout=REQUEST_TIMEOUT).to_dict()
    ids = []
    for i in range(n):
        monitor_id = await pg.fetchval(
            "INSERT INTO monitors (project_id, kind, name, service, shard, state, config)"
            " VALUES ($1, 'probe', $2, 'API', 0, 'new', $3) RETURNING id",
            project_id,
            f"p{i}",
            config,
        )
        await pg.execute("INSERT INTO probe_schedule (monitor_id, next_at) VALUES ($1, $2)", monitor_id, to_dt(T0))
        ids.append(monitor_id)
    return ids


async def _race(pg: asyncpg.Pool, now: float, claimers: int, limit: int) -> list[list[int]]:
    """``claimers`` probers claiming at the same moment, each on its own connection."""
    results = await asyncio.gather(*(claim(pg, now, limit, f"prober-{i}", JITTER) for i in range(claimers)))
    return [[r["monitor_id"] for r in rows] for rows in results]


async def test_racing_claims_take_each_due_probe_once_per_interval(pg: Any, project: tuple[int, str]) -> None:
    ids = await _probes(pg, project[0], 60)
    taken = await _race(pg, T0, claimers=6, limit=15)
    flat = [i for claimed in taken for i in claimed]
    assert sorted(flat) == sorted(ids)  # every due probe once, none twice
    # Nothing is due again before its next (jittered) interval...
    assert await _race(pg, T0 + INTERVAL * (1 - JITTER) - 0.001, claimers=3, limit=100) == [[], [], []]
    schedule = await pg.fetch("SELECT next_at, claimed_by, runs FROM probe_schedule")
    nexts = [r["next_at"].timestamp() - T0 for r in schedule]
    assert all(INTERVAL * (1 - JITTER) <= n <= INTERVAL * (1 + JITTER) for n in nexts), nexts
    assert len({round(n, 3) for n in nexts}) > 50  # jittered: they spread out
    assert len({r["claimed_by"] for r in schedule}) > 1 and {r["runs"] for r in schedule} == {1}
    # ... and all of them once more after it.
    again = [i for claimed in await _race(pg, T0 + INTERVAL * (1 + JITTER), 6, 15) for i in claimed]
    assert sorted(again) == sorted(ids)


async def test_start_to_start_late_probes_spread_and_never_before_the_request_timeout(
    pg: Any, project: tuple[int, str]
) -> None:
    ids = await _probes(pg, project[0], 40)
    # Claimed 3 s late: the next run is still one interval after the *scheduled* time.
    await claim(pg, T0 + 3, 100, "a", 0.0)
    nexts = {r["next_at"].timestamp() for r in await pg.fetch("SELECT next_at FROM probe_schedule")}
    assert nexts == {T0 + INTERVAL}
    # The probers were away for ten intervals: the overdue probes are spread over the next
    # interval (not all at once), and none is due again before its request timeout.
    late = T0 + 10 * INTERVAL
    rows = await claim(pg, late, 100, "a", 0.0)
    assert sorted(r["monitor_id"] for r in rows) == sorted(ids)
    assert all(r["scheduled"].timestamp() == T0 + INTERVAL for r in rows)
    spread = [r["next_at"].timestamp() - late for r in await pg.fetch("SELECT next_at FROM probe_schedule")]
    assert all(REQUEST_TIMEOUT <= s <= INTERVAL for s in spread), spread
    assert len({round(s, 3) for s in spread}) > 35


async def test_two_prober_processes_run_each_probe_once_per_interval(settings: Settings) -> None:
    interval, jitter, probes = 1.0, 0.05, 16
    base = replace(fast(settings), probe_jitter=jitter)
    target = await Target().start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with running_system(base, services=("detector",)) as system:
            _, key = await system.create_project("two-probers")
            for n in range(2):
                port = free_port()
                env = settings_env(
                    base,
                    HERON_PROBER_PORT=str(port),
                    HERON_PROBE_MIN_INTERVAL="0.05",
                    HERON_PROBE_MIN_TIMEOUT="0.1",
                    HERON_PROBE_POLL_INTERVAL="0.02",
                    HERON_PROBE_JITTER=str(jitter),
                    HERON_LOG_LEVEL="INFO",
                )
                procs.append(await start_service("heron_prober", env))
                await wait_ready(f"http://127.0.0.1:{port}", procs[n])
            made = [
                await new_probe(system, key, url=f"{target.url}/n{i}", interval=interval, request_timeout=0.5)
                for i in range(probes)
            ]
            paths = [f"/p/n{i}" for i in range(probes)]

            async def fewest_hits() -> int:
                return min(target.hits[p] for p in paths)

            await eventually(fewest_hits, lambda n: n >= 6, timeout=60)
            probers = await system.ingest.app[PG].fetchval(
                "SELECT count(DISTINCT prober) FROM probe_results WHERE monitor_id = ANY($1::bigint[])",
                [p["id"] for p in made],
            )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 30)
        await target.stop()
    assert probers == 2  # both probers did share the work
    for path in paths:
        starts = target.starts[path]
        # Never twice at once, and never twice in one interval: a second claim of the same run
        # would show as two starts milliseconds apart.
        assert target.most_in_flight[path] == 1, path
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert min(gaps) >= 0.5 * interval, (path, gaps)
        # Once per interval over the whole span (start to start, each step ≥ interval × (1 - jitter)).
        span = starts[-1] - starts[0]
        assert len(starts) - 1 <= span / (interval * (1 - jitter)) + 1, (path, len(starts), span)
