"""RabbitMQ: one place that names and declares the topology, and a confirmed publisher.

Topology (``P`` is ``HERON_AMQP_PREFIX``):

- ``P.ingest``  direct exchange; routing key ``shard.<n>`` → quorum queue ``P.detector.shard.<n>``
  with single-active-consumer, so each shard has exactly one active detector and one stream's
  events are processed in order; a standby takes over when the owner's channel closes.
- ``P.alerts``  topic exchange (``incident.opened.event`` …) → quorum queue ``P.notifier.alerts``
  shared by competing notifiers.
- ``P.changes`` topic exchange (``project.<id>``) of ``monitor.changed`` notices: which monitors of a
  project changed (a flip, a ping, a probe result, a command, a new monitor), for live views only.
  Transient and best-effort: no queue of its own; a view that misses one catches up on its next
  refresh, so losing one loses nothing.
- ``P.dlx``     topic exchange for poison messages: after ``x-delivery-limit`` redeliveries a
  message lands in ``P.detector.dead`` or ``P.notifier.dead`` to be inspected, never dropped.

Every declaration is idempotent, so each service declares what it uses at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from heron_common import messages

DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Names:
    prefix: str

    @property
    def ingest_exchange(self) -> str:
        return f"{self.prefix}.ingest"

    @property
    def alerts_exchange(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def changes_exchange(self) -> str:
        return f"{self.prefix}.changes"

    @staticmethod
    def changes_key(project_id: int) -> str:
        return f"project.{project_id}"

    @property
    def dlx(self) -> str:
        return f"{self.prefix}.dlx"

    def shard_queue(self, shard: int) -> str:
        return f"{self.prefix}.detector.shard.{shard}"

    @staticmethod
    def shard_key(shard: int) -> str:
        return f"shard.{shard}"

    @property
    def notifier_queue(self) -> str:
        return f"{self.prefix}.notifier.alerts"

    @property
    def detector_dead(self) -> str:
        return f"{self.prefix}.detector.dead"

    @property
    def notifier_dead(self) -> str:
        return f"{self.prefix}.notifier.dead"


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """A robust connection (ingest's). Consumers use ``link.Link`` instead: see its docstring."""
    # Retry every second rather than aio-pika's default five: ingest answers 503 until it is back.
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name}, reconnect_interval=1.0)


def _quorum_args(names: Names, dead_key: str, **extra: Any) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": names.dlx,
        "x-dead-letter-routing-key": dead_key,
        **extra,
    }


async def declare_dead_letters(channel: AbstractChannel, names: Names) -> None:
    dlx = await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.TOPIC, durable=True)
    for queue_name, key in ((names.detector_dead, "detector.#"), (names.notifier_dead, "notifier.#")):
        queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(dlx, key)


async def declare_ingest(channel: AbstractChannel, names: Names) -> AbstractExchange:
    return await channel.declare_exchange(names.ingest_exchange, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_shard_queue(
    channel: AbstractChannel, names: Names, shard: int, exchange: AbstractExchange | None = None
) -> AbstractQueue:
    """Declare and bind one shard queue (idempotent; a consumer does it again on every subscribe)."""
    exchange = exchange or await declare_ingest(channel, names)
    queue = await channel.declare_queue(
        names.shard_queue(shard),
        durable=True,
        arguments=_quorum_args(names, f"detector.shard.{shard}", **{"x-single-active-consumer": True}),
    )
    await queue.bind(exchange, names.shard_key(shard))
    return queue


async def declare_shard_queues(channel: AbstractChannel, names: Names, shards: int) -> list[AbstractQueue]:
    """Declare and bind every shard queue (ingest does this too, so a publish is never unroutable)."""
    await declare_dead_letters(channel, names)
    exchange = await declare_ingest(channel, names)
    return [await declare_shard_queue(channel, names, shard, exchange) for shard in range(shards)]


async def declare_alerts(channel: AbstractChannel, names: Names) -> AbstractExchange:
    return await channel.declare_exchange(names.alerts_exchange, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_changes(channel: AbstractChannel, names: Names) -> AbstractExchange:
    return await channel.declare_exchange(names.changes_exchange, aio_pika.ExchangeType.TOPIC, durable=True)


async def publish_changes(
    exchange: AbstractExchange, names: Names, changed: Iterable[tuple[int, int]], now: float
) -> None:
    """Tell live views which monitors changed: one ``monitor.changed`` notice per project of the
    ``(project_id, monitor_id)`` pairs, transient and not mandatory (nobody may be watching)."""
    by_project: dict[int, set[int]] = {}
    for project_id, monitor_id in changed:
        by_project.setdefault(project_id, set()).add(monitor_id)
    for project_id, monitor_ids in by_project.items():
        message = messages.change_message(project_id, sorted(monitor_ids), now)
        await exchange.publish(
            _amqp_message(message, aio_pika.DeliveryMode.NOT_PERSISTENT),
            routing_key=names.changes_key(project_id),
            mandatory=False,  # no dashboard open is the usual case, not an error
        )


async def declare_notifier_queue(channel: AbstractChannel, names: Names) -> AbstractQueue:
    await declare_dead_letters(channel, names)
    exchange = await declare_alerts(channel, names)
    queue = await channel.declare_queue(
        names.notifier_queue, durable=True, arguments=_quorum_args(names, "notifier.alerts")
    )
    await queue.bind(exchange, "#")
    return queue


async def publish(exchange: AbstractExchange, routing_key: str, message: dict[str, Any]) -> None:
    """Publish persistently and return only once the broker has confirmed it.

    The channel must have publisher confirms on (aio-pika's default) and ``on_return_raises``
    so that an unroutable ``mandatory`` message raises instead of vanishing.
    """
    await exchange.publish(
        _amqp_message(message, aio_pika.DeliveryMode.PERSISTENT), routing_key=routing_key, mandatory=True
    )


def _amqp_message(message: dict[str, Any], delivery_mode: aio_pika.DeliveryMode) -> aio_pika.Message:
    """One of our JSON envelopes as an AMQP message, its id and type in the properties."""
    return aio_pika.Message(
        messages.encode(message),
        delivery_mode=delivery_mode,
        content_type="application/json",
        message_id=message["id"],
        type=message["type"],
    )


async def delete_topology(url: str, names: Names, shards: int) -> None:
    """Remove every queue and exchange under a prefix (used by tests to clean up after themselves)."""
    connection = await aio_pika.connect(url)
    try:
        queue_names = [names.shard_queue(s) for s in range(shards)]
        queue_names += [names.notifier_queue, names.detector_dead, names.notifier_dead]
        for queue_name in queue_names:
            channel = await connection.channel()
            try:
                await channel.queue_delete(queue_name)
            except aio_pika.exceptions.AMQPError:
                pass
        for exchange_name in (names.ingest_exchange, names.alerts_exchange, names.changes_exchange, names.dlx):
            channel = await connection.channel()
            try:
                await channel.exchange_delete(exchange_name)
            except aio_pika.exceptions.AMQPError:
                pass
    finally:
        await connection.close()
