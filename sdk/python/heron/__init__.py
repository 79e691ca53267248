"""Heron Python SDK: track business events and heartbeats, verify Heron webhooks.

Quick start::

    import heron

    heron.init("hk_live_...", service="billing", environment="production")
    heron.track("payment.completed", {"amount": 42})
    heron.ping("https://heron.example.com/api/v1/hb/abc123")   # heartbeat

    @heron.heartbeat("abc123")            # start, then success or fail (with the exception)
    def nightly_report(): ...

Module-level functions delegate to a default :class:`Client` created by :func:`init`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _ping, webhooks
from ._async import AsyncClient
from ._client import DEFAULT_ENDPOINT, MAX_EVENTS_PER_REQUEST, MAX_METADATA_BYTES, Client, Stats
from ._hb import MAX_BODY_BYTES as MAX_PING_BODY_BYTES
from ._heartbeat import Heartbeat
from ._version import __version__

if TYPE_CHECKING:
    from ._hb import Status

__all__ = [
    "DEFAULT_ENDPOINT",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_METADATA_BYTES",
    "MAX_PING_BODY_BYTES",
    "AsyncClient",
    "Client",
    "Heartbeat",
    "Stats",
    "__version__",
    "close",
    "flush",
    "get_client",
    "heartbeat",
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


def ping(
    token_or_url: str,
    status: Status = "success",
    body: str | bytes | None = None,
    rid: str | uuid.UUID | None = None,
    *,
    timeout: float = _ping.DEFAULT_PING_TIMEOUT,
) -> bool:
    """Send a heartbeat ping now ("success", "start", "fail" or an int exit code); True if
    Heron recorded it. Never raises; see :meth:`Client.ping`.

    Needs no :func:`init`: a full ping URL works as is, and a bare token is sent to the default
    client's endpoint, else ``$HERON_ENDPOINT``, else ``http://localhost:8080``.
    """
    client = _default
    if client is not None:
        return client.ping(token_or_url, status, body, rid, timeout=timeout)
    settings = _ping.PingSettings(os.environ.get("HERON_ENDPOINT") or DEFAULT_ENDPOINT)
    return _ping.ping(settings, token_or_url, status, body, rid, timeout)


def heartbeat(token_or_url: str) -> Heartbeat:
    """Monitor a block or a function, sync or async::

        @heron.heartbeat("abc123")
        def nightly_report(): ...

        with heron.heartbeat("https://heron.example.com/api/v1/hb/abc123"):
            ...

    Sends "start" with a fresh run id, then "success", or "fail" with the exception's type,
    message and traceback excerpt (the exception is re-raised). Pings use the default client
    at the time they are sent (so decorating before :func:`init` is fine), like :func:`ping`.
    """
    return Heartbeat(token_or_url, ping)


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
            "Heron: track() called before heron.init() (or after heron.close()); dropped"
        )
