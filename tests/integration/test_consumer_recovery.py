"""Consumers come back by themselves when the broker cancels them, and /readyz tells the truth
meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import aio_pika
import pytest

from heron_common import bus
from heron_common.settings import Settings
from tests.support.system import running_system
from tests.support.waiting import eventually


@pytest.mark.parametrize(
    ("service", "queue_of", "label"),
    [
        ("detector", lambda names: names.shard_queue(2), "shard 2"),
        ("detector", lambda names: names.detector_dead, "dead letters (detector)"),
        ("detector", lambda names: names.notifier_dead, "dead letters (notifier)"),
        ("notifier", lambda names: names.notifier_queue, "alerts"),
    ],
    ids=["detector shard", "detector dead letters", "notifier dead letters", "notifier alerts"],
)
async def test_a_deleted_queue_is_declared_again_and_consumed(
    settings: Settings, service: str, queue_of: Callable[[bus.Names], str], label: str
) -> None:
    """Deleting a queue makes the broker cancel its consumers (as a quorum queue may on a leader
    change): the service reports it unsubscribed on /readyz, declares the queue again (with its
    bindings) and resubscribes, whichever consumer it is."""
    names = bus.Names(settings.amqp_prefix)
    queue_name = queue_of(names)
    async with running_system(settings, services=(service,)) as system:
        url = system.others[service].url

        async def readyz() -> tuple[int, dict]:
            async with system.http.get(f"{url}/readyz") as r:
                return r.status, await r.json()

        await eventually(readyz, lambda r: r[0] == 200, timeout=10.0)
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            channel = await connection.channel()
            await channel.queue_delete(queue_name)
            _, body = await eventually(readyz, lambda r: r[0] == 503, timeout=10.0)
            assert f"{label} not subscribed" in body["failures"]["consumers"], body
            await eventually(readyz, lambda r: r[0] == 200, timeout=10.0)
            # The queue exists again (passive declare) with one consumer: the service's.
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name, passive=True)
            assert queue.declaration_result.consumer_count == 1
        finally:
            await connection.close()
        async with system.http.get(f"{url}/metrics") as r:
            text = await r.text()
        assert f'heron_consumer_up{{queue="{queue_name}",service="{service}"}} 1.0' in text


async def test_a_consumer_stuck_while_the_broker_is_up_fails_liveness_until_it_subscribes(settings: Settings) -> None:
    """/healthz (liveness) ignores outages but not a consumer that cannot subscribe while the
    broker is reachable: here a queue of the same name with other arguments is in the way (the
    detector's declare is refused), so an orchestrator would restart the detector."""
    settings = replace(settings, consumer_stuck_seconds=0.5)
    names = bus.Names(settings.amqp_prefix)
    async with running_system(settings, services=("detector",)) as system:
        detector = system.others["detector"].url

        async def probe(path: str) -> tuple[int, dict]:
            async with system.http.get(f"{detector}{path}") as r:
                return r.status, await r.json()

        assert (await probe("/healthz"))[0] == 200
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            # Replace shard 2's quorum queue with a classic one before the detector declares it
            # again (retried in case the detector got there first).
            async def in_the_way() -> bool:
                channel = await connection.channel()
                await channel.queue_delete(names.shard_queue(2))
                try:
                    await channel.declare_queue(names.shard_queue(2), durable=True)
                except aio_pika.exceptions.ChannelPreconditionFailed:
                    return False
                return True

            await eventually(in_the_way, lambda placed: placed, timeout=10.0)
            _, body = await eventually(lambda: probe("/healthz"), lambda r: r[0] == 503, timeout=10.0)
            assert body["status"] == "stuck"
            assert "shard 2 not subscribed for" in body["failures"]["consumers"], body
            assert "while the broker is reachable" in body["failures"]["consumers"], body
            assert (await probe("/readyz"))[0] == 503

            # Out of the way: the detector declares its own queue, subscribes, and is live again.
            channel = await connection.channel()
            await channel.queue_delete(names.shard_queue(2))
            await eventually(lambda: probe("/healthz"), lambda r: r[0] == 200, timeout=10.0)
            await eventually(lambda: probe("/readyz"), lambda r: r[0] == 200, timeout=10.0)
        finally:
            await connection.close()
