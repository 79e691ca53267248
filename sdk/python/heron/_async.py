"""The asyncio flavour of the client.

Design choice: ``AsyncClient`` shares the thread-based engine of :class:`heron.Client` (bounded
buffer, background sender thread, retries, exit flush, fork handling) and only makes the
*waiting* operations awaitable, by running them in a worker thread with ``asyncio.to_thread``.
Consequences, all deliberate:

* the event loop never performs network I/O for Heron, so a slow or unreachable Heron server
  can never stall the loop, and CPU spent on JSON/gzip happens outside loop callbacks;
* delivery keeps going while the loop is busy, and the exit flush works even after the loop
  has been closed (``asyncio.run`` returned);
* there is exactly one implementation of the tricky parts, tested once.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import uuid
from collections.abc import Awaitable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from . import _ping
from ._client import Client, Stats
from ._heartbeat import Heartbeat

if TYPE_CHECKING:
    from ._hb import Status


class AsyncClient:
    """Same options as :class:`heron.Client`. ``track()`` is a plain (sync, non-blocking)
    call; ``ping()`` starts sending at once and returns an awaitable result; ``flush()`` and
    ``aclose()`` are coroutines. Usable as ``async with AsyncClient(...) as heron_client:``."""

    def __init__(
        self,
        api_key: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> None:
        self._client = Client(api_key, service, environment, endpoint, **options)
        # Pings in flight: a reference keeps each task alive until it is done (the loop only
        # keeps weak ones), and aclose() waits for them.
        self._ping_tasks: set[asyncio.Task[bool]] = set()

    @property
    def client(self) -> Client:
        """The underlying thread-based :class:`heron.Client`."""
        return self._client

    @property
    def endpoint(self) -> str:
        return self._client.endpoint

    def track(
        self,
        event_name: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        service: str | None = None,
        environment: str | None = None,
        timestamp: float | _dt.datetime | None = None,
    ) -> None:
        """Queue an event (no await: it never blocks and never raises unless ``debug=True``)."""
        self._client.track(event_name, metadata, service=service, environment=environment, timestamp=timestamp)

    def ping(
        self,
        token_or_url: str,
        status: Status = "success",
        body: str | bytes | None = None,
        rid: str | uuid.UUID | None = None,
        *,
        timeout: float = _ping.DEFAULT_PING_TIMEOUT,
    ) -> Awaitable[bool]:
        """Send a heartbeat ping (see :meth:`heron.Client.ping`) in a worker thread, never on the
        event loop. It starts at once and returns an ``asyncio.Task``: ``await`` it for the
        result (True if recorded), or don't (it is still sent, and ``aclose()`` waits for it).
        Outside a running loop it sends synchronously and returns an already-done awaitable."""
        args = (token_or_url, status, body, rid)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _Done(self._client.ping(*args, timeout=timeout))
        task = asyncio.ensure_future(asyncio.to_thread(self._client.ping, *args, timeout=timeout))
        self._ping_tasks.add(task)
        task.add_done_callback(self._ping_tasks.discard)
        return task

    def heartbeat(self, token_or_url: str) -> Heartbeat:
        """``async with client.heartbeat(...)`` or ``@client.heartbeat(...)`` on an ``async def``
        (sync use works too): "start", then "success" or "fail" with the exception."""
        return Heartbeat(token_or_url, self._client.ping)

    async def flush(self, timeout: float | None = 5.0) -> bool:
        """Send everything queued; True if all of it was delivered. Does not block the loop."""
        return await asyncio.to_thread(self._client.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        """Wait for pings in flight (each bounded by its own timeout), then flush (bounded by
        ``timeout``, default ``shutdown_timeout``) and stop the sender."""
        if self._ping_tasks:
            await asyncio.gather(*self._ping_tasks, return_exceptions=True)
        return await asyncio.to_thread(self._client.close, timeout)

    def stats(self) -> Stats:
        return self._client.stats()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return "<heron.AsyncClient " + repr(self._client)[len("<heron.Client ") :]


class _Done:
    """An awaitable that is already done (``asyncio.Future`` needs a running loop)."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, bool]:
        return self.value
        yield  # unreachable: makes this a generator, as __await__ must return an iterator
