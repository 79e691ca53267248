"""The notifier records the alerts it holds in one transaction; an alert that cannot be recorded
for a reason other than an outage is split off, and the others of its batch are recorded."""

from __future__ import annotations

import aio_pika

from heron_common import bus, messages, webhooks
from heron_common.settings import Settings
from tests.support.fakes import FakeReceiver
from tests.support.system import running_system
from tests.support.waiting import eventually


def _alert(project_id: int, incident_id: int) -> dict:
    data = {"incident": {"id": incident_id, "event_name": "batch"}, "project": {"id": project_id, "name": "x"}}
    return messages.alert_message("incident.opened", messages.new_id(), 1_800_000_000.0, data)


async def test_a_bad_alert_never_takes_its_batch_with_it(settings: Settings, pg, project) -> None:
    project_id, _ = project
    receiver = await FakeReceiver().start()
    try:
        await pg.execute(
            "INSERT INTO webhook_endpoints (project_id, url, secret) VALUES ($1, $2, $3)",
            project_id,
            receiver.url,
            webhooks.new_secret(),
        )
        names = bus.Names(settings.amqp_prefix)
        # Published before the notifier starts, so its first batch holds all of them.
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await bus.declare_notifier_queue(channel, names)
            exchange = await bus.declare_alerts(channel, names)
            good = [_alert(project_id, i) for i in range(6)]
            # Well-formed, but its project id overflows Postgres' bigint: the database refuses it.
            bad = _alert(project_id, 99)
            bad["data"]["project"]["id"] = str(10**20)
            for message in [*good[:3], bad, *good[3:]]:
                await bus.publish(exchange, "incident.opened.event", message)
        finally:
            await connection.close()

        async with running_system(settings, services=("notifier",)):
            delivered = await receiver.wait_for(len(good))
            assert {d.headers["webhook-id"] for d in delivered} == {m["id"] for m in good}
            recorded = await eventually(
                lambda: pg.fetchval("SELECT count(DISTINCT alert_id) FROM deliveries"), lambda n: n == len(good)
            )
            assert recorded == len(good)
    finally:
        await receiver.stop()
