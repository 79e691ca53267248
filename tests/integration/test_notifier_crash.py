"""Kill -9 the notifier in the middle of a burst: after a restart every alert reaches the endpoint,
and no delivery records two successful attempts."""

from __future__ import annotations

import asyncio
import signal

import aio_pika

from heron_common import bus, messages, webhooks
from heron_common.settings import Settings
from tests.support.fakes import FakeReceiver
from tests.support.processes import free_port, settings_env, start_service, wait_ready
from tests.support.waiting import eventually

BURST = 60


async def test_notifier_killed_mid_burst_loses_nothing(settings: Settings, pg, project) -> None:
    project_id, _ = project
    receiver = await FakeReceiver(gate=asyncio.Event()).start()
    await pg.execute(
        "INSERT INTO webhook_endpoints (project_id, url, secret) VALUES ($1, $2, $3)",
        project_id,
        receiver.url,
        webhooks.new_secret(),
    )
    names = bus.Names(settings.amqp_prefix)
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    await bus.declare_notifier_queue(channel, names)
    alerts = await bus.declare_alerts(channel, names)
    sent = []
    for i in range(BURST):
        message = messages.alert_message(
            "incident.opened",
            messages.new_id(),
            1_800_000_000.0 + i,
            {"incident": {"id": i, "event_name": "burst"}, "project": {"id": project_id, "name": "x"}},
        )
        await bus.publish(alerts, "incident.opened.event", message)
        sent.append(message["id"])
    await connection.close()

    port = free_port()
    env = settings_env(
        settings,
        HERON_NOTIFIER_PORT=str(port),
        HERON_DELIVERY_TIMEOUT="2",
        HERON_DELIVERY_LEASE_MARGIN="0.3",
        HERON_DELIVERY_POLL_INTERVAL="0.05",
        HERON_DELIVERY_CONCURRENCY="16",
        HERON_ENDPOINT_CONCURRENCY="8",
        HERON_WEBHOOK_RETRY_SCHEDULE="0,0.1,0.2,0.5,1,1,1,1,1,1",
        HERON_OUTBOUND_ALLOW_CIDRS="127.0.0.0/8",
    )
    try:
        first = await start_service("heron_notifier", env)
        await wait_ready(f"http://127.0.0.1:{port}", first)
        await receiver.wait_for_attempts(8)  # requests are in flight, held by the receiver
        first.send_signal(signal.SIGKILL)
        await first.wait()
        receiver.gate.set()  # type: ignore[union-attr]

        second = await start_service("heron_notifier", env)
        try:
            await wait_ready(f"http://127.0.0.1:{port}", second)
            await eventually(
                lambda: pg.fetchval(
                    "SELECT count(*) FROM deliveries WHERE project_id = $1 AND status = 'succeeded'", project_id
                ),
                lambda n: n == BURST,
                timeout=60,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        await receiver.stop()

    assert {r.headers["webhook-id"] for r in receiver.received} == set(sent)
    per_delivery = await pg.fetch(
        "SELECT d.id, count(a.id) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS ok"
        " FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id"
        " WHERE d.project_id = $1 GROUP BY d.id",
        project_id,
    )
    assert len(per_delivery) == BURST
    assert all(r["ok"] == 1 for r in per_delivery)
