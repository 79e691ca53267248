"""Kill -9 the notifier between two escalation steps: after a restart the step that fell due while
it was dead is sent (late), the one before it is not sent again, and the ladder goes on — every
step exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime, timedelta

from heron_common.settings import Settings
from tests.support.oncall_fakes import FakeSMTP
from tests.support.processes import free_port, settings_env, start_service, wait_ready
from tests.support.system import running_system
from tests.support.waiting import eventually


async def wall_clock() -> float:
    return time.time()


async def test_a_notifier_killed_between_two_steps_neither_skips_nor_repeats_one(settings: Settings, pg) -> None:
    smtp = await FakeSMTP().start()
    port = free_port()
    env = settings_env(
        settings,
        HERON_NOTIFIER_PORT=str(port),
        HERON_SMTP_HOST="127.0.0.1",
        HERON_SMTP_PORT=str(smtp.port),
        HERON_SMTP_STARTTLS="false",
        HERON_SMTP_FROM="heron@example.com",
        HERON_PUBLIC_URL="http://heron.test",
        HERON_PAGING_INTERVAL="0.05",
        HERON_PAGING_HORIZON="1",  # the steps after the kill are not even planned yet
        HERON_DELIVERY_TIMEOUT="2",
        HERON_DELIVERY_LEASE_MARGIN="0.3",
    )
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with running_system(settings, services=("detector",)) as system:
            _, key = await system.create_project("crash")
            headers = {"Authorization": f"Bearer {key}"}

            async def post(path: str, body: object = None, status: int = 201) -> dict:
                async with system.http.post(f"{system.ingest.url}{path}", json=body, headers=headers) as r:
                    answer = await r.json()
                    assert r.status == status, answer
                    return answer

            for name in ("alice", "bob", "carol"):
                user = await post("/v1/users", {"email": f"{name}@example.com", "name": name})
                await post(f"/v1/users/{user['id']}/channels", {"kind": "email", "target": f"{name}@example.com"})
            rotation = await post("/v1/rotations", {"name": "Platform", "spec": "alice@example.com\n"})
            await post(
                f"/v1/rotations/{rotation['id']}/escalations",
                {"delay": 3, "target": "user", "email": "bob@example.com"},
            )
            await post(
                f"/v1/rotations/{rotation['id']}/escalations",
                {"delay": 6, "target": "user", "email": "carol@example.com"},
            )
            service = await post("/v1/services", {"name": "API"})
            async with system.http.put(
                f"{system.ingest.url}/v1/services/{service['id']}/rotation",
                json={"rotation_id": rotation["id"]},
                headers=headers,
            ) as r:
                assert r.status == 200
            trigger = await post("/v1/triggers", {"name": "Database CPU", "service_id": service["id"]})

            first = await start_service("heron_notifier", env)
            procs.append(first)
            await wait_ready(f"http://127.0.0.1:{port}", first)
            await post(f"/triggers/{trigger['id']}/alert", status=200)
            await smtp.wait_for(1, to="alice@example.com")
            incident_id = await pg.fetchval("SELECT id FROM incidents WHERE monitor_id = $1", trigger["id"])
            await eventually(
                lambda: pg.fetchval(
                    "SELECT count(*) FROM pages WHERE incident_id = $1 AND status = 'sent'", incident_id
                ),
                lambda n: n == 1,
            )
            first.send_signal(signal.SIGKILL)  # between the first step (sent, recorded) and the second (in 3 s)
            await first.wait()
            opened: datetime = await pg.fetchval("SELECT opened_at FROM incidents WHERE id = $1", incident_id)
            # Dead while bob's step falls due.
            missed = (opened + timedelta(seconds=3.5)).timestamp()
            await eventually(wall_clock, lambda now: now > missed)
            assert smtp.to("bob@example.com") == []

            second = await start_service("heron_notifier", env)
            procs.append(second)
            await wait_ready(f"http://127.0.0.1:{port}", second)
            await smtp.wait_for(1, to="carol@example.com")
            rows = await eventually(
                lambda: pg.fetch("SELECT * FROM pages WHERE incident_id = $1 ORDER BY due_at", incident_id),
                lambda rows: len(rows) == 3 and all(r["status"] == "sent" for r in rows),
            )
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await smtp.stop()

    assert [(r["email"], r["attempts"]) for r in rows] == [
        ("alice@example.com", 1),
        ("bob@example.com", 1),
        ("carol@example.com", 1),
    ]
    assert [r["due_at"] - opened for r in rows] == [timedelta(0), timedelta(seconds=3), timedelta(seconds=6)]
    assert rows[1]["sent_at"] > rows[1]["due_at"] + timedelta(seconds=0.5)  # sent late, after the restart
    # Each step reached the mail server exactly once (the Message-ID is the step id).
    assert sorted(m.message_id for m in smtp.received) == sorted(f"<{r['step_id']}@example.com>" for r in rows)
