"""A supervised AMQP connection, and a publisher that survives it being replaced.

Why not aio-pika's robust connection: it restores channels, exchanges, queues and consumers it
made itself, but not a queue taken with ``get_queue(..., ensure=False)``, and a consumer the
broker cancelled is recovered only through a second path; its ``is_closed`` stays False while it
reconnects, so readiness could not see an outage. Here the rules are few and ours: one plain
connection; when it closes, a supervisor reconnects with capped backoff; every consumer and
publisher notices its channel closed and builds its channel, declarations and subscription
again on the new connection (see ``consumer.py``). Nothing is restored behind our back, so
nothing is restored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from heron_common.backoff import delay
from heron_common.logging import get_logger

log = get_logger("amqp")


class Link:
    """One AMQP connection kept open for the process's lifetime."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self._connection: AbstractConnection | None = None
        self._lost: asyncio.Future[BaseException | None] | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.generation = 0  # bumped on every new connection
        self.down_reason = "not connected yet"
        self.up_since: float | None = None  # monotonic time of the current connection, None while down

    async def open(self) -> None:
        """Connect once (a broker unreachable at start-up fails the start), then keep connected."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name=f"amqp-link-{self._name}")

    async def _connect(self) -> None:
        connection = await aio_pika.connect(self._url, client_properties={"connection_name": self._name}, timeout=5)
        lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        def on_close(_: Any, exc: BaseException | None = None) -> None:
            if not lost.done():
                lost.set_result(exc)

        connection.close_callbacks.add(on_close)
        self._connection, self._lost = connection, lost
        self.generation += 1
        self.up_since = time.monotonic()
        self._up.set()

    async def _supervise(self) -> None:
        while not self._closing:
            assert self._lost is not None
            exc = await self._lost
            self._up.clear()
            self._connection = None
            self.up_since = None
            self.down_reason = f"connection lost: {exc or 'closed'}"
            log.warning("AMQP connection lost; reconnecting", connection=self._name, error=str(exc))
            attempt = 0
            while not self._closing:
                await asyncio.sleep(delay(attempt))
                attempt += 1
                try:
                    await self._connect()
                except Exception as err:
                    self.down_reason = f"reconnecting: {err or type(err).__name__}"
                    log.warning("AMQP reconnect failed", connection=self._name, attempt=attempt, error=str(err))
                    continue
                log.info("AMQP connection re-established", connection=self._name, attempts=attempt)
                break

    @property
    def up(self) -> bool:
        return self._up.is_set() and self._connection is not None and not self._connection.is_closed

    def current(self) -> AbstractConnection:
        """The open connection, or ConnectionError (a transient failure) while there is none."""
        if not self.up or self._connection is None:
            raise ConnectionError(f"AMQP {self.down_reason}")
        return self._connection

    async def wait(self) -> AbstractConnection:
        """The open connection, waiting for the supervisor to re-establish it if need be."""
        while True:
            await self._up.wait()
            if self.up and self._connection is not None:
                return self._connection
            await asyncio.sleep(0.05)  # the close callback has not run yet

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._up.clear()


class Publisher:
    """An exchange to publish to through a :class:`Link`: a confirming channel opened on first
    use and opened again, with the exchange declared again, whenever the old one has closed.
    While the broker is unreachable ``publish`` raises ConnectionError at once (transient): the
    caller decides whether to retry, and nothing waits on a dead connection.

    It offers the one method Heron calls on an exchange (``publish``), so it stands in for one.
    """

    def __init__(self, link: Link, declare: Callable[[AbstractChannel], Awaitable[AbstractExchange]]) -> None:
        self._link = link
        self._declare = declare
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _current(self) -> AbstractExchange:
        async with self._lock:
            if self._exchange is None or self._channel is None or self._channel.is_closed:
                connection = self._link.current()
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                try:
                    exchange = await self._declare(channel)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await channel.close()
                    raise
                old, self._channel, self._exchange = self._channel, channel, exchange
                if old is not None and not old.is_closed:
                    with contextlib.suppress(Exception):
                        await old.close()
            return self._exchange

    async def publish(self, message: aio_pika.Message, routing_key: str, **kwargs: Any) -> Any:
        exchange = await self._current()
        return await exchange.publish(message, routing_key=routing_key, **kwargs)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()
