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
from collections.abc import Mapping
from typing import Any

from ._client import Client, Stats


class AsyncClient:
    """Same options as :class:`heron.Client`. ``track()``/``ping()`` are plain (sync,
    non-blocking) calls; ``flush()`` and ``aclose()`` are coroutines. Usable as
    ``async with AsyncClient(...) as heron_client:``."""

    def __init__(
        self,
        api_key: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> None:
        self._client = Client(api_key, service, environment, endpoint, **options)

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

    def ping(self, heartbeat_id: str, status: str = "ok") -> None:
        """Queue a heartbeat ping ("ok", "start" or "fail")."""
        self._client.ping(heartbeat_id, status)

    async def flush(self, timeout: float | None = 5.0) -> bool:
        """Send everything queued; True if all of it was delivered. Does not block the loop."""
        return await asyncio.to_thread(self._client.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush (bounded by ``timeout``, default ``shutdown_timeout``) and stop the sender."""
        return await asyncio.to_thread(self._client.close, timeout)

    def stats(self) -> Stats:
        return self._client.stats()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return "<heron.AsyncClient " + repr(self._client)[len("<heron.Client ") :]
