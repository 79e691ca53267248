"""Heron Python SDK: track business events and heartbeats, verify Heron webhooks.

Quick start::

    import heron

    heron.init("hk_live_...", service="billing", environment="production")
    heron.track("payment.completed", {"amount": 42})
    heron.ping("nightly-report")          # heartbeat

Module-level functions delegate to a default :class:`Client` created by :func:`init`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Mapping
from typing import Any

from . import webhooks
from ._async import AsyncClient
from ._client import DEFAULT_ENDPOINT, MAX_EVENTS_PER_REQUEST, MAX_METADATA_BYTES, Client, Stats
from ._version import __version__

__all__ = [
    "DEFAULT_ENDPOINT",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_METADATA_BYTES",
    "AsyncClient",
    "Client",
    "Stats",
    "__version__",
    "close",
    "flush",
    "get_client",
    "init",
    "ping",
    "stats",
    "track",
    "webhooks",
]

_default: Client | None = None
_init_lock = threading.Lock()
_warned_uninitialised = False


def init(
    api_key: str | None = None,
    service: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    **options: Any,
) -> Client:
    """Create the default client used by :func:`track`, :func:`ping`, :func:`flush`...

    ``api_key``, ``service``, ``environment`` and ``endpoint`` fall back to ``HERON_API_KEY``,
    ``HERON_SERVICE``, ``HERON_ENVIRONMENT`` and ``HERON_ENDPOINT`` (then
    ``http://localhost:8080``). ``options`` are :class:`Client` keyword options. Calling
    ``init()`` again closes (and flushes) the previous default client.
    """
    global _default
    client = Client(api_key, service, environment, endpoint, **options)
    with _init_lock:
        previous, _default = _default, client
    if previous is not None:
        previous.close()
    return client


def get_client() -> Client | None:
    """The default client created by :func:`init`, or None."""
    return _default


def track(
    event_name: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    service: str | None = None,
    environment: str | None = None,
    timestamp: float | _dt.datetime | None = None,
) -> None:
    """Queue an event on the default client. Never blocks on the network, never raises
    (unless the client was created with ``debug=True`` and the arguments are invalid)."""
    client = _default
    if client is None:
        _uninitialised()
        return
    client.track(event_name, metadata, service=service, environment=environment, timestamp=timestamp)


def ping(heartbeat_id: str, status: str = "ok") -> None:
    """Queue a heartbeat ping ("ok", "start" or "fail") on the default client."""
    client = _default
    if client is None:
        _uninitialised()
        return
    client.ping(heartbeat_id, status)


def flush(timeout: float | None = 5.0) -> bool:
    """Send everything queued on the default client; True if all of it was delivered."""
    client = _default
    return True if client is None else client.flush(timeout)


def close(timeout: float | None = None) -> bool:
    """Flush and stop the default client (also done automatically at interpreter exit)."""
    global _default
    with _init_lock:
        client, _default = _default, None
    return True if client is None else client.close(timeout)


def stats() -> Stats:
    """Counters of the default client (all zero before :func:`init`)."""
    client = _default
    return Stats() if client is None else client.stats()


def _uninitialised() -> None:
    global _warned_uninitialised
    if not _warned_uninitialised:
        _warned_uninitialised = True
        logging.getLogger("heron").warning(
            "Heron: track()/ping() called before heron.init() (or after heron.close()); dropped"
        )
