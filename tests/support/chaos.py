"""What every chaos test does around its fault: a steady load through ingest, then the checks.

``Load`` posts one event per stream every ``interval`` seconds and, like the SDK, retries a
request that got a 5xx or a connection error, with the same Idempotency-Key, until it is
accepted; it remembers each accepted event's sequence number. ``verify`` then checks, after the
fault, that every accepted event was counted exactly once, that no stream fed all along had an
incident, that the stream stopped after the fault did, and that its alert reached the webhook
receiver once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.support.fakes import FakeReceiver
from tests.support.waiting import eventually

# The chaos tests' timings. A fault lasts FAULT_SECONDS; the streams' cadence is INTERVAL, and
# HERON_MIN_TOLERANCE (MIN_TOLERANCE) is chosen so that the gap a fault plus the recovery leave in
# a stream stays within tolerance: no incident is expected for a stream fed all along.
INTERVAL = 0.25
FAULT_SECONDS = 2.0
MIN_TOLERANCE = 6.0


@dataclass
class Load:
    http: aiohttp.ClientSession
    url: str
    key: str
    streams: list[str]
    interval: float = INTERVAL
    # Streams sent like `curl … || true` from cron: an event refused during an outage is dropped,
    # not retried, and the stream goes on at its own pace (its own interval, if given here).
    drop: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, list[int]] = field(default_factory=dict)
    retries: int = 0
    _run: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: dict[str, asyncio.Event] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self) -> Load:
        for stream in self.streams:
            self.accepted[stream] = []
            self._stop[stream] = asyncio.Event()
            self._tasks[stream] = asyncio.create_task(self._feed(stream))
        return self

    async def _feed(self, stream: str) -> None:
        seq = 0
        while not self._stop[stream].is_set():
            seq += 1
            await self._send(stream, seq)
            # The cadence being generated, not a wait for an outcome.
            try:
                await asyncio.wait_for(self._stop[stream].wait(), self.drop.get(stream, self.interval))
            except TimeoutError:
                pass

    async def _send(self, stream: str, seq: int) -> None:
        body = {"event_name": stream, "metadata": {"seq": seq}}
        # Like the SDK, a retry carries the first try's Idempotency-Key: a try the broker stored
        # but whose answer was lost to the fault is then counted once, not twice.
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"{stream}-{seq}-{self._run}"}
        while True:
            try:
                async with self.http.post(f"{self.url}/v1/track", json=body, headers=headers) as r:
                    if r.status == 202:
                        self.accepted[stream].append(seq)
                        return
                    if r.status < 500 and r.status != 429:
                        raise AssertionError(f"unexpected {r.status}: {await r.text()}")
            except (aiohttp.ClientError, OSError):
                pass
            if self._stop[stream].is_set() or stream in self.drop:
                return  # stopped before it was accepted, or a client that never retries: not counted
            self.retries += 1
            await asyncio.sleep(0.1)  # the SDK's retry pause

    async def stop(self, stream: str) -> None:
        self._stop[stream].set()
        await self._tasks[stream]

    async def stop_all(self) -> None:
        for stream in self.streams:
            await self.stop(stream)

    def total(self) -> int:
        return sum(len(v) for v in self.accepted.values())


async def project_with_receiver(http: aiohttp.ClientSession, url: str, admin_token: str, receiver: FakeReceiver) -> Any:
    async with http.post(
        f"{url}/v1/projects", params={"name": "chaos"}, headers={"Authorization": f"Bearer {admin_token}"}
    ) as r:
        assert r.status == 201, await r.text()
        project = await r.json()
    async with http.post(
        f"{url}/v1/webhooks",
        json={"url": receiver.url},
        headers={"Authorization": f"Bearer {project['api_key']}"},
    ) as r:
        assert r.status == 201, await r.text()
    return project


async def learned(pg: Any, project_id: int, streams: list[str], events: int = 6) -> None:
    """Every stream has a learned cadence (enough events counted)."""
    await eventually(
        lambda: pg.fetch("SELECT event_name, event_count FROM monitors WHERE project_id = $1", project_id),
        lambda rows: {r["event_name"] for r in rows if r["event_count"] >= events} >= set(streams),
        timeout=30.0,
    )


async def detected(pg: Any, project_id: int, stream: str, slack: float = 20.0) -> None:
    """A stream that stopped opens an incident once its deadline passes. The wait is bounded by
    the deadline Heron holds for it at each look (an outage may move it), plus slack."""
    began = time.time()
    while True:
        row = await pg.fetchrow(
            "SELECT (SELECT count(*) FROM incidents i WHERE i.monitor_id = m.id) AS incidents,"
            " extract(epoch FROM m.deadline) AS deadline, m.state, m.last_seen, m.cadence"
            " FROM monitors m WHERE m.project_id = $1 AND m.event_name = $2",
            project_id,
            stream,
        )
        if row is not None and row["incidents"] >= 1:
            return
        deadline = float(row["deadline"]) if row is not None and row["deadline"] is not None else began
        if time.time() > deadline + slack:
            windows = await pg.fetch("SELECT started_at, ended_at, reason FROM blind_windows ORDER BY id DESC LIMIT 3")
            ticked = await pg.fetchval("SELECT last_tick_at FROM ticker_state")
            raise AssertionError(
                f"{stream} not detected {slack} s past its deadline: monitor {dict(row or {})};"
                f" last tick {ticked}; blind windows {[dict(w) for w in windows]}"
            )
        await asyncio.sleep(0.05)


async def counted(pg: Any, project_id: int) -> dict[str, int]:
    rows = await pg.fetch("SELECT event_name, event_count FROM monitors WHERE project_id = $1", project_id)
    return {r["event_name"]: r["event_count"] for r in rows}


async def all_ready(http: aiohttp.ClientSession, urls: list[str]) -> bool:
    for url in urls:
        try:
            async with http.get(f"{url}/readyz") as r:
                if r.status != 200:
                    return False
        except aiohttp.ClientError:
            return False
    return True


async def recovered(http: aiohttp.ClientSession, urls: list[str], pg: Any, project_id: int, load: Load) -> float:
    """Seconds until every service is ready again and the detector has counted everything
    accepted up to the moment of asking (the consumers are back)."""
    began = time.monotonic()
    await eventually(lambda: all_ready(http, urls), bool, timeout=30.0)
    target = {s: len(v) for s, v in load.accepted.items()}
    await eventually(
        lambda: counted(pg, project_id),
        lambda got: all(got.get(s, 0) >= n for s, n in target.items()),
        timeout=30.0,
    )
    return time.monotonic() - began


@dataclass
class Figures:
    name: str
    accepted: int = 0
    counted: int = 0
    duplicates: int = 0
    false_incidents: int = 0
    recover_seconds: float = 0.0
    alert_duplicates: int = 0
    client_retries: int = 0

    def line(self) -> str:
        return (
            f"CHAOS {self.name}: accepted={self.accepted} counted={self.counted} duplicates={self.duplicates}"
            f" false_incidents={self.false_incidents} recover_s={self.recover_seconds:.1f}"
            f" alert_duplicates={self.alert_duplicates} client_retries={self.client_retries}"
        )


LINES: list[str] = []  # every figures line of the run, repeated in the terminal summary


def report(config: pytest.Config, figures: Figures) -> None:
    """One line per test, whatever ``-s`` says: written past pytest's capture, and kept for the
    run's terminal summary (tests/chaos/conftest.py)."""
    line = figures.line()
    LINES.append(line)
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:  # pragma: no cover
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


async def verify(
    figures: Figures,
    *,
    pg: Any,
    project_id: int,
    load: Load,
    stopped: str,
    receiver: FakeReceiver,
) -> None:
    """The checks every fault must pass (see the module's docstring). ``load`` must be stopped."""
    accepted = {s: sorted(v) for s, v in load.accepted.items()}
    figures.accepted = sum(len(v) for v in accepted.values())
    figures.client_retries = load.retries
    await eventually(
        lambda: counted(pg, project_id),
        lambda got: all(got.get(s, 0) >= len(v) for s, v in accepted.items()),
        timeout=30.0,
    )
    got = await counted(pg, project_id)
    figures.counted = sum(got.values())
    rows = await pg.fetch(
        "SELECT m.event_name, (e.metadata->>'seq')::bigint AS seq FROM events e"
        " JOIN monitors m ON m.id = e.monitor_id WHERE e.project_id = $1",
        project_id,
    )
    stored: dict[str, Counter[int]] = {s: Counter() for s in accepted}
    for r in rows:
        stored.setdefault(r["event_name"], Counter())[r["seq"]] += 1
    figures.duplicates = sum(n - 1 for c in stored.values() for n in c.values() if n > 1)

    # The stopped stream's incident opens; streams fed all along have none.
    incidents = await eventually(
        lambda: pg.fetch("SELECT id, event_name FROM incidents WHERE project_id = $1", project_id),
        lambda rows: any(r["event_name"] == stopped for r in rows),
        timeout=30.0,
    )
    # Faults shorter than the tolerance hold this by themselves; test_outage_never_pages.py cuts
    # the broker for longer than the tolerance, where only the blind-window rule keeps it true.
    figures.false_incidents = sum(1 for r in incidents if r["event_name"] != stopped)

    # Each incident's alert reaches the receiver once (deduplicated by webhook-id); report raw repeats.
    want = {r["id"] for r in incidents}
    await eventually(
        lambda: asyncio.sleep(0, [d.json for d in receiver.received]),
        lambda got: want <= {d["data"]["incident"]["id"] for d in got if d["topic"] == "incident.opened"},
        timeout=30.0,
    )
    ids = Counter(d.headers.get("webhook-id") for d in receiver.received)
    figures.alert_duplicates = sum(n - 1 for n in ids.values())
    opened = Counter(
        d.json["data"]["incident"]["id"] for d in receiver.received if d.json["topic"] == "incident.opened"
    )

    # The assertions, after the figures are complete.
    for stream, seqs in accepted.items():
        assert set(stored.get(stream, {})) == set(seqs), f"{stream}: stored events differ from accepted ones"
        assert got.get(stream, 0) == len(seqs) + sum(n - 1 for n in stored[stream].values()), stream
    assert figures.duplicates == 0, figures.line()
    assert figures.false_incidents == 0, figures.line()
    assert set(opened) == want, figures.line()
    # No notification sent twice: not the same delivery again (same webhook-id), nor a second
    # "opened" for one incident under a new id.
    assert figures.alert_duplicates == 0, figures.line()
    assert all(n == 1 for n in opened.values()), (opened, figures.line())
