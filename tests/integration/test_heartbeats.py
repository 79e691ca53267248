"""Heartbeats against the running system: the reference document's examples as written (real
curl, a crontab line through sh, systemd's ExecStartPost command, Python requests, Node fetch),
late → down → an incident and its webhooks → a ping resolves it, runs, and bad input."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from heron_common import messages
from heron_common.monitors import heartbeat as hb
from heron_common.settings import Settings
from heron_detector.core import Detector
from tests.support.fakes import FakeReceiver
from tests.support.system import System, running_system
from tests.support.waiting import eventually


async def call(system: System, method: str, path: str, key: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with system.http.request(method, f"{system.ingest.url}{path}", json=body, headers=headers) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def create(system: System, key: str, **body: Any) -> dict[str, Any]:
    status, beat = await call(system, "POST", "/v1/heartbeats", key, body)
    assert status == 201, beat
    return beat


async def state_after(system: System, key: str, beat: dict[str, Any], pings: int, state: str) -> dict[str, Any]:
    """The heartbeat once the detector has applied ``pings`` pings and it is in ``state``."""
    path = f"/v1/heartbeats/{beat['id']}"
    await eventually(lambda: call(system, "GET", f"{path}/pings", key), lambda r: len(r[1]) == pings)
    _, got = await eventually(lambda: call(system, "GET", path, key), lambda r: r[1]["state"] == state)
    return got


async def run(*argv: str) -> tuple[int, str]:
    """A real process, awaited without blocking the loop the services run on."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install -y curl)")
async def test_the_reference_documents_examples_ping_as_written(settings: Settings, tmp_path: Path) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("reference")
        # The form in the document: name, expected interval 24h, grace period 10m.
        first = await create(system, key, name="Daily DB backup", interval="24h", grace="10m")
        assert first["state"] == "new" and first["interval"] == 86400 and first["grace"] == 600
        assert first["ping_url"].startswith(f"{system.ingest.url}/api/v1/hb/")

        # "Basic curl ping"
        code, out = await run(*shlex.split(f"curl -sS -X POST {first['ping_url']}"))
        assert code == 0 and out == "OK", out
        up = await state_after(system, key, first, 1, "up")
        assert up["last_ping_kind"] == "success" and up["deadline"] is not None

        # Crontab: "/path/to/backup.sh && curl -sS -X POST URL || true", run by sh as cron does.
        backup = tmp_path / "backup.sh"
        backup.write_text("#!/bin/sh\nexit 0\n")
        backup.chmod(0o755)
        cron = await create(system, key, name="cron", interval="1h", grace="5m")
        code, out = await run("sh", "-c", f"{backup} && curl -sS -X POST {cron['ping_url']} || true")
        assert code == 0 and out == "OK", out
        await state_after(system, key, cron, 1, "up")
        # A failing job sends no ping (and cron itself does not fail).
        failing = tmp_path / "failing.sh"
        failing.write_text("#!/bin/sh\nexit 1\n")
        failing.chmod(0o755)
        code, _ = await run("sh", "-c", f"{failing} && curl -sS -X POST {cron['ping_url']} || true")
        assert code == 0

        # systemd: "ExecStartPost=curl -sS -X POST URL" (systemd splits the line, no shell).
        unit = await create(system, key, name="worker", interval="10m", grace="1m")
        exec_start_post = f"curl -sS -X POST {unit['ping_url']}"
        code, out = await run(*shlex.split(exec_start_post))
        assert code == 0 and out == "OK"
        await state_after(system, key, unit, 1, "up")

        # Python: requests.post(URL, timeout=5) inside run_job(), in its own interpreter.
        job = await create(system, key, name="python job", interval="1h", grace="10m")
        script = f"""
import requests

def run_job():
    # ... your job logic ...
    requests.post('{job["ping_url"]}', timeout=5)

if __name__ == '__main__':
    run_job()
"""
        code, out = await run(sys.executable, "-c", script)
        assert code == 0, out
        await state_after(system, key, job, 1, "up")

        if shutil.which("node"):
            node = await create(system, key, name="node job", interval="1h", grace="10m")
            js = f"""(async () => {{
await fetch('{node["ping_url"]}', {{ method: 'POST' }})
  .catch(() => console.warn('Heartbeat ping failed'));
}})();"""
            code, out = await run("node", "-e", js)
            assert code == 0 and "failed" not in out, out
            await state_after(system, key, node, 1, "up")

        # The cron ping was the only one recorded for it: the failing job sent none.
        _, recorded = await call(system, "GET", f"/v1/heartbeats/{cron['id']}/pings", key)
        assert len(recorded) == 1 and recorded[0]["kind"] == "success"
        assert recorded[0]["user_agent"].startswith("curl/") and recorded[0]["remote_addr"] == "127.0.0.1"


async def test_late_then_down_opens_an_incident_alerted_once_per_topic_and_a_ping_resolves_it(
    settings: Settings,
) -> None:
    receiver = await FakeReceiver().start()
    try:
        async with running_system(settings) as system:
            _, key = await system.create_project("silence")
            status, _ = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url, "topics": ["*"]})
            assert status == 201
            beat = await create(system, key, name="nightly", interval=0.3, grace=1.0, service="db")
            status, ok = await call(system, "POST", f"/api/v1/hb/{beat['ping_url'].rsplit('/', 1)[1]}", None)
            assert (status, ok) == (200, "OK")
            _, [incident] = await eventually(
                lambda: call(system, "GET", "/v1/incidents/active", key), lambda r: len(r[1]) == 1
            )
            assert incident["kind"] == "heartbeat" and incident["monitor_id"] == beat["id"]
            assert incident["title"] == "nightly is down" and incident["service"] == "db"
            assert incident["details"]["last_ping_kind"] == "success"
            status, all_incidents = await call(system, "GET", "/v1/incidents", key)
            assert [i["id"] for i in all_incidents] == [incident["id"]]
            _, down = await call(system, "GET", f"/v1/heartbeats/{beat['id']}", key)
            assert down["state"] == "down" and down["deadline"] is None
            # A heartbeat's incident resolves with its next ping, not by hand.
            status, error = await call(system, "POST", f"/v1/incidents/{incident['id']}/resolve", key)
            assert status == 409 and error["error"]["code"] == "not_resolvable", error

            # A longer interval first, so the heartbeat stays up once the ping resolves it.
            status, changed = await call(system, "PATCH", f"/v1/heartbeats/{beat['id']}", key, {"interval": "1h"})
            assert status == 200 and changed["interval"] == 3600 and changed["state"] == "down", changed
            async with system.http.get(beat["ping_url"]) as r:  # GET pings too
                assert r.status == 200
            await eventually(
                lambda: call(system, "GET", "/v1/incidents/active", key), lambda r: r[0] == 200 and r[1] == []
            )

            got = await receiver.wait_for(5)
            topics = [d.json["topic"] for d in got]
            assert sorted(topics) == sorted(
                ["heartbeat.late", "incident.opened", "heartbeat.down", "incident.resolved", "heartbeat.up"]
            ), topics
            assert topics.index("heartbeat.late") < topics.index("heartbeat.down") < topics.index("heartbeat.up")
            by_topic = {d.json["topic"]: d.json["data"] for d in got}
            assert by_topic["heartbeat.down"]["heartbeat"]["name"] == "nightly"
            assert by_topic["incident.opened"]["incident"]["kind"] == "heartbeat"
            assert by_topic["incident.resolved"]["incident"]["resolved_at"] is not None
            _, history = await call(system, "GET", f"/v1/heartbeats/{beat['id']}/flips", key)
            assert [(f["from_state"], f["to_state"]) for f in reversed(history)] == [
                ("new", "up"),
                ("up", "late"),
                ("late", "down"),
                ("down", "up"),
            ]
    finally:
        await receiver.stop()


async def test_start_fail_and_exit_codes(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("runs")
        beat = await create(system, key, name="etl", interval="1h", grace=0.5)
        url, n = beat["ping_url"], 0

        async def ping(suffix: str = "", method: str = "POST") -> None:
            nonlocal n
            async with system.http.request(method, url + suffix, data=b"log line\n" * 3) as r:
                assert r.status == 200, await r.text()
            n += 1

        await ping("/start?rid=r1")
        await ping("?rid=r1")
        await state_after(system, key, beat, n, "up")
        _, [finish, start] = await call(system, "GET", f"/v1/heartbeats/{beat['id']}/pings", key)
        assert start["kind"] == "start" and finish["kind"] == "success" and finish["rid"] == "r1"
        assert finish["duration"] is not None and finish["duration"] >= 0 and finish["body"] == "log line\n" * 3

        await ping("/fail")
        await state_after(system, key, beat, n, "down")
        _, [incident] = await call(system, "GET", "/v1/incidents/active", key)
        assert incident["details"]["last_ping_kind"] == "fail"
        await ping("/0")
        await state_after(system, key, beat, n, "up")
        await ping("/3")
        failed = await state_after(system, key, beat, n, "down")
        assert failed["last_exit_code"] == 3
        await ping("", method="HEAD")
        await state_after(system, key, beat, n, "up")

        # A run that starts and never finishes is down once its grace period has passed.
        await ping("/start")
        await state_after(system, key, beat, n, "down")
        _, [hung] = await eventually(lambda: call(system, "GET", "/v1/incidents/active", key), lambda r: len(r[1]) == 1)
        assert hung["details"]["run_started_at"] is not None
        _, resolved = await call(system, "GET", "/v1/incidents", key)
        assert len(resolved) == 3  # fail, exit 3, the hung run

        # The first 10 KiB of a body is kept with the ping; the rest is dropped, the ping accepted.
        async with system.http.post(url, data=b"y" * 20_000) as r:
            assert r.status == 200
        n += 1
        await state_after(system, key, beat, n, "up")
        _, [kept, *_] = await call(system, "GET", f"/v1/heartbeats/{beat['id']}/pings", key)
        assert kept["body"] == "y" * 10 * 1024

        # Both histories are paginated: newest first, a Link to the next (older) page.
        auth = {"Authorization": f"Bearer {key}"}
        for history in ("pings", "flips"):
            _, whole = await call(system, "GET", f"/v1/heartbeats/{beat['id']}/{history}", key)
            pages, path = [], f"/v1/heartbeats/{beat['id']}/{history}?limit=2"
            while path:
                async with system.http.get(system.ingest.url + path, headers=auth) as r:
                    assert r.status == 200
                    pages.append(await r.json())
                    link = r.headers.get("Link", "")  # '<path?before=…&limit=2>; rel="next"'
                    path = link[1 : link.index(">")] if link else ""
            assert all(len(p) <= 2 for p in pages) and len(pages) >= 3, (history, pages)
            assert [row["id"] for p in pages for row in p] == [row["id"] for row in whole], history

        for bad in ("/abc", "/256", "/-1"):
            async with system.http.post(url + bad) as r:
                assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_unknown_tokens_are_404_and_management_needs_a_key(settings: Settings) -> None:
    async with running_system(settings) as system:
        _, key = await system.create_project("tokens")
        _, other = await system.create_project("other")
        for path in ("/api/v1/hb/nope", "/api/v1/hb/nope/start", "/api/v1/hb/" + "x" * 300):
            status, error = await call(system, "POST", path, None)
            assert status == 404 and error["error"]["code"] == "not_found", (path, error)
        status, _ = await call(system, "GET", "/v1/heartbeats", None)
        assert status == 401

        beat = await create(system, key, name="rotated", interval="1h", grace="1m")
        status, _ = await call(system, "GET", f"/v1/heartbeats/{beat['id']}", other)
        assert status == 404  # another project's heartbeat does not exist for it
        status, fresh = await call(system, "POST", f"/v1/heartbeats/{beat['id']}/regenerate-token", key)
        assert status == 200 and fresh["ping_url"] != beat["ping_url"]
        async with system.http.post(beat["ping_url"]) as r:
            assert r.status == 404  # the old URL stops working
        async with system.http.post(fresh["ping_url"]) as r:
            assert r.status == 200

        status, paused = await call(system, "POST", f"/v1/heartbeats/{beat['id']}/pause", key)
        assert status == 200 and paused["state"] == "paused"
        status, resumed = await call(system, "POST", f"/v1/heartbeats/{beat['id']}/resume", key)
        assert status == 200 and resumed["state"] == "new" and resumed["deadline"] is None

        # A schedule in a time zone: the deadline is the next 02:00 in Berlin after the ping.
        status, cron = await call(
            system, "PATCH", f"/v1/heartbeats/{beat['id']}", key, {"schedule": "0 2 * * *", "tz": "Europe/Berlin"}
        )
        assert status == 200 and cron["schedule"] == "0 2 * * *" and "interval" not in cron, cron
        async with system.http.post(fresh["ping_url"]) as r:
            assert r.status == 200
        _, up = await eventually(
            lambda: call(system, "GET", f"/v1/heartbeats/{beat['id']}", key), lambda r: r[1]["state"] == "up"
        )
        deadline = datetime.fromisoformat(up["deadline"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin"))
        assert (deadline.hour, deadline.minute) == (2, 0)

        status, listed = await call(system, "GET", "/v1/heartbeats?limit=1", key)
        assert status == 200 and [b["id"] for b in listed] == [beat["id"]]
        status, _ = await call(system, "DELETE", f"/v1/heartbeats/{beat['id']}", key)
        assert status == 204
        status, _ = await call(system, "GET", f"/v1/heartbeats/{beat['id']}", key)
        assert status == 404
        async with system.http.post(fresh["ping_url"]) as r:
            assert r.status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"interval": "1h", "grace": "1m"}, "name"),
        ({"name": "x", "interval": "abc", "grace": "1m"}, "interval"),
        ({"name": "x", "interval": "1h", "grace": "soon"}, "grace"),
        ({"name": "x", "interval": 0.01, "grace": "1m"}, "interval"),  # below HERON_MIN_INTERVAL
        ({"name": "x", "grace": "1m"}, "interval"),
        ({"name": "x", "schedule": "0 25 * * *", "grace": "1m"}, "schedule"),
        ({"name": "x", "schedule": "0 2 * * *", "tz": "Mars/Olympus", "grace": "1m"}, "tz"),
        ({"name": "x", "interval": "1h", "grace": "1m", "colour": "red"}, "colour"),
        ({"name": 5, "interval": "1h", "grace": "1m"}, "name"),
    ],
)
async def test_bad_input_is_422_naming_the_field(settings: Settings, body: dict[str, Any], field: str) -> None:
    async with running_system(settings, services=()) as system:
        _, key = await system.create_project("bad")
        status, error = await call(system, "POST", "/v1/heartbeats", key, body)
        assert status == 422, error
        assert field in error["error"]["message"], error


async def test_interval_5_min_grace_2_min_opens_the_incident_at_t_plus_7_min_and_not_before_frozen_time(
    pg: asyncpg.Pool, redis: redis_asyncio.Redis, settings: Settings, project: tuple[int, str]
) -> None:
    """The reference document's example through the real detector and Postgres, on explicit
    (frozen) times: a ping at T, late at T+5 min, the incident at T+7 min and not a moment before
    (New → Up → Late → Down → Up), with the alerts for each step in the outbox."""
    project_id, _ = project
    config = hb.Config(grace=120.0, interval=300.0)
    monitor_id = await pg.fetchval(
        "INSERT INTO monitors (project_id, kind, name, service, environment, shard, state, config, ping_token)"
        " VALUES ($1, 'heartbeat', 'Daily DB backup', '', '', 0, 'new', $2, 'frozen-token') RETURNING id",
        project_id,
        config.to_dict(),
    )
    detector = Detector(pg, redis, None, settings)
    t = 1_800_000_000.0

    async def at(now: float, message: dict[str, Any]) -> None:
        handled = await detector.handle_many(0, [messages.encode(message)], now)
        assert not handled.poison

    async def ping(now: float) -> None:
        payload = {"kind": hb.SUCCESS, "exit_code": None, "rid": None, "body": "", "user_agent": "curl/8"}
        await at(now, messages.observation_message(monitor_id, project_id, now, payload))

    async def state() -> str:
        return await pg.fetchval("SELECT state FROM monitors WHERE id = $1", monitor_id)

    async def outbox() -> list[str]:
        return [r["routing_key"] for r in await pg.fetch("SELECT routing_key FROM outbox ORDER BY id")]

    await at(t + 3600, messages.tick_message(0, t + 3600))  # new: nothing is expected before a ping
    assert await state() == "new"
    await ping(t)
    assert await state() == "up"
    for now in (t + 60, t + 299.999):
        await at(now, messages.tick_message(0, now))
    assert await state() == "up" and await outbox() == []
    await at(t + 300, messages.tick_message(0, t + 300))
    assert await state() == "late" and await outbox() == ["heartbeat.late"]
    await at(t + 419.999, messages.tick_message(0, t + 419.999))
    assert await state() == "late" and await pg.fetchval("SELECT count(*) FROM incidents") == 0
    await at(t + 420, messages.tick_message(0, t + 420))
    assert await state() == "down"
    incident = await pg.fetchrow("SELECT * FROM incidents WHERE monitor_id = $1", monitor_id)
    assert incident["opened_at"].timestamp() == t + 420 and incident["kind"] == "heartbeat"
    assert await outbox() == ["heartbeat.late", "incident.opened.heartbeat", "heartbeat.down"]

    await ping(t + 500)
    assert await state() == "up"
    assert (await pg.fetchrow("SELECT resolved_at FROM incidents WHERE id = $1", incident["id"]))["resolved_at"]
    assert (await outbox())[3:] == ["incident.resolved.heartbeat", "heartbeat.up"]
    flips = await pg.fetch("SELECT from_state, to_state FROM flips WHERE monitor_id = $1 ORDER BY id", monitor_id)
    assert [(f["from_state"], f["to_state"]) for f in flips] == [
        ("new", "up"),
        ("up", "late"),
        ("late", "down"),
        ("down", "up"),
    ]
