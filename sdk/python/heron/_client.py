"""The Heron client: a bounded in-memory buffer drained by one background sender thread.

Design notes (the "why" behind the code):

* ``track()`` is the hot path. It validates cheaply, appends one tuple to a
  ``collections.deque(maxlen=...)`` (atomic under the GIL, drops the oldest item when full) and
  bumps an ``itertools.count`` (also atomic). No lock, no formatting, no I/O. Serialisation,
  size checks and service/environment defaults happen in the sender thread.
* Drops caused by the full deque are not observed directly (the deque discards silently), so
  they are derived exactly: ``accepted - taken_by_sender - still_in_deque``. ``accepted`` is
  read from the ``itertools.count`` by calling ``next()`` on it under a lock and subtracting the
  number of such reads ("probes") made so far.
* Only the sender thread removes items from the buffer. Items it has taken but not yet
  delivered (a failed batch waiting for a retry) live in ``_carry`` and count against the
  buffer capacity; when the buffer is full they, being the oldest, are dropped first.
* ``flush()`` waits for the sender to observe "buffer and carry both empty" (a *drain epoch*)
  after the flush began.
* Heartbeat pings do not use this machinery: ``ping()`` sends synchronously (see ``_ping.py``).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import decimal
import gzip
import itertools
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _ping
from ._heartbeat import Heartbeat
from ._transport import Response, Transport, describe_error, parse_endpoint, parse_retry_after
from ._version import __version__

logger = logging.getLogger("heron")

DEFAULT_ENDPOINT = "http://localhost:8080"
#: Server limits (the wire contract).
MAX_EVENTS_PER_REQUEST = 1000
MAX_METADATA_BYTES = 8 * 1024
MAX_NAME_LENGTH = 200  # event_name, in characters
MAX_LABEL_LENGTH = 200  # service and environment, in characters
#: What an event's metadata is replaced with when it is larger than MAX_METADATA_BYTES.
DROPPED_METADATA = {"_heron_dropped": "metadata too large"}
_DROPPED_METADATA_JSON = json.dumps(DROPPED_METADATA, separators=(",", ":")).encode()

_time = time.time
_monotonic = time.monotonic

if TYPE_CHECKING:  # only used in (string) annotations, so Python 3.9 never evaluates them
    from typing import TypeAlias

    from ._hb import Status

    # (event_name, timestamp, service, environment, metadata)
    _Event: TypeAlias = tuple[str, float, str | None, str | None, dict[str, Any] | None]


@dataclass(frozen=True)
class Stats:
    """A snapshot of a client's counters (since it was created, or since ``fork()`` in a child).

    ``dropped`` is the total number of events that will never be delivered; the ``dropped_*``
    fields break it down by cause.
    """

    #: Events in memory waiting to be sent (including a batch waiting for a retry).
    queued: int = 0
    #: Events the server acknowledged (HTTP 2xx).
    sent: int = 0
    #: Total events lost: the sum of the ``dropped_*`` fields below.
    dropped: int = 0
    #: Oldest events discarded because the buffer (``max_queue_size``) was full.
    dropped_queue_full: int = 0
    #: Events in batches the server rejected with a non-retryable 4xx (400, 401, 403, 413, 422...).
    dropped_rejected: int = 0
    #: ``track()`` calls with invalid arguments or unserialisable values (only when ``debug=False``).
    dropped_invalid: int = 0
    #: ``track()`` calls on a disabled (no API key) or closed client.
    dropped_disabled: int = 0
    #: Events still undelivered when ``close()`` (or the exit flush) ran out of time.
    dropped_at_shutdown: int = 0
    #: Events sent with their metadata replaced by ``{"_heron_dropped": "metadata too large"}``.
    metadata_dropped: int = 0
    #: HTTP requests that failed (network error, timeout, 429, 5xx or rejected 4xx).
    failed_requests: int = 0
    #: Always 0 since pings are sent synchronously by ``ping()`` (kept for compatibility).
    pings_queued: int = 0
    #: Heartbeat pings the server acknowledged.
    pings_sent: int = 0
    #: Heartbeat pings not delivered (invalid, rejected, or still failing after the retries).
    pings_dropped: int = 0
    #: Description of the most recent failure, or None.
    last_error: str | None = None
    #: Unix time of the most recent failure, or None.
    last_error_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Outcome(NamedTuple):
    ok: bool
    retry: bool = False  # True: keep the items and try again after ``delay``
    delay: float = 0.0
    strict: bool = False  # True: the delay is the server's Retry-After; flush() does not cut it


_OK = _Outcome(True)
_DROPPED = _Outcome(False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, (decimal.Decimal, uuid.UUID)):
        return str(obj)
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


# Every live client, for the exit flush and the fork handler. A plain set (no lock): a lock held
# by another thread at fork() time would stay locked forever in the child.
_live_clients: set[Client] = set()


class Client:
    """A Heron client. Thread-safe; create one per process (or use :func:`heron.init`).

    See the README for every option. Invalid *options* raise ``ValueError``/``TypeError`` here;
    ``track()`` and ``ping()`` never raise unless ``debug=True``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        endpoint: str | None = None,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 100,
        max_queue_size: int = 10_000,
        request_timeout: float = 5.0,
        shutdown_timeout: float = 2.0,
        gzip_threshold: int | None = 4096,
        max_batch_bytes: int = 512 * 1024,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        debug: bool = False,
    ) -> None:
        self.debug = bool(debug)
        api_key = api_key if api_key is not None else _env("HERON_API_KEY")
        service = service if service is not None else _env("HERON_SERVICE")
        environment = environment if environment is not None else _env("HERON_ENVIRONMENT")
        endpoint = endpoint if endpoint is not None else (_env("HERON_ENDPOINT") or DEFAULT_ENDPOINT)

        for name, value in (("service", service), ("environment", environment)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, got {type(value).__name__}")
            if value is not None and len(value) > MAX_LABEL_LENGTH:
                raise ValueError(f"{name} is longer than {MAX_LABEL_LENGTH} characters")
        if api_key is not None:
            if not isinstance(api_key, str):
                raise TypeError(f"api_key must be a string, got {type(api_key).__name__}")
            api_key = api_key.strip()
            if not api_key.isprintable() or " " in api_key:
                raise ValueError("api_key contains whitespace or control characters")
        _check_number("flush_interval", flush_interval, minimum=0.001)
        _check_number("request_timeout", request_timeout, minimum=0.001)
        _check_number("shutdown_timeout", shutdown_timeout, minimum=0.0)
        _check_number("backoff_base", backoff_base, minimum=0.0)
        _check_number("backoff_max", backoff_max, minimum=0.0)
        _check_int("batch_size", batch_size, 1, MAX_EVENTS_PER_REQUEST)
        _check_int("max_queue_size", max_queue_size, 1, None)
        _check_int("max_batch_bytes", max_batch_bytes, 1024, None)
        if gzip_threshold is not None:
            _check_int("gzip_threshold", gzip_threshold, 0, None)

        self.endpoint = parse_endpoint(endpoint).url
        self.api_key = api_key
        self.service = service
        self.environment = environment
        self.flush_interval = float(flush_interval)
        self.batch_size = batch_size
        self.max_queue_size = max_queue_size
        self.request_timeout = float(request_timeout)
        self.shutdown_timeout = float(shutdown_timeout)
        self.gzip_threshold = gzip_threshold
        self.max_batch_bytes = max_batch_bytes
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._ping_settings = _ping.PingSettings(
            self.endpoint, self.request_timeout, self.backoff_base, self.backoff_max, self.debug
        )

        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"heron-python/{__version__} python/{sys.version_info[0]}.{sys.version_info[1]}",
        }
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        self._enabled = bool(api_key)
        if not self._enabled:
            if self.debug:
                raise ValueError("Heron: no API key (pass api_key= or set HERON_API_KEY)")
            logger.warning(
                "Heron: no API key given (pass api_key= or set HERON_API_KEY); "
                "the client is disabled and events will be dropped (heartbeat pings still work)"
            )
        self._init_state()
        if self._enabled:
            _live_clients.add(self)
            _register_multiprocessing_exit()

    # ------------------------------------------------------------------ state

    def _init_state(self) -> None:
        """(Re)create every piece of runtime state. Called at construction and in a fork child."""
        self._q: deque[_Event] = deque(maxlen=self.max_queue_size)
        self._accepted = itertools.count()
        self._probes = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._wake = threading.Event()  # "there is work": size trigger, flush, close
        self._urgent = threading.Event()  # flush()/close(): cut a backoff short
        self._closing = False
        self._closed = False
        # track()'s only state check: True until the sender thread is started (lazily, by the
        # first track(), so a pre-forking parent that never tracks has no thread), and
        # again once the client is closed; always True for a disabled client.
        self._inactive = True
        self._deadline: float | None = None
        self._close_timeout = self.shutdown_timeout
        self._thread: threading.Thread | None = None
        self._transport = Transport(parse_endpoint(self.endpoint))
        self._events_path = "/v1/events"
        # Sender-owned state (counters are written by the sender under _lock, read by stats()).
        self._carry: list[_Event] = []
        # The Idempotency-Key of the last batch that failed retryably, and its events: a retry
        # that starts with exactly those events sends the same key, so that if the first try was
        # stored after all (its answer lost), the server counts each event once.
        self._retry_key: tuple[str, list[_Event]] | None = None
        self._taken = 0
        self._inflight = 0
        self._drained_epoch = 0
        self._sent = 0
        self._dropped_carry = 0
        self._dropped_rejected = 0
        self._dropped_invalid = 0
        self._dropped_disabled = 0
        self._dropped_at_shutdown = 0
        self._metadata_dropped = 0
        self._failed_requests = 0
        self._pings_sent = 0
        self._pings_dropped = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._fail_streak = 0
        self._max_events = self.batch_size
        self._logged: set[Any] = set()
        self._overflow_logged = 0
        self._overflow_logged_at = 0.0

    def _activate(self) -> bool:
        """Slow path of track(): start the sender on first use. False if the client is
        disabled or closed."""
        with self._lock:
            if not self._enabled or self._closing:
                return False
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="heron-sender", daemon=True)
                thread.start()
                self._thread = thread
            self._inactive = False
            return True

    def _after_fork_in_child(self) -> None:
        # The sender thread does not exist in the child and the locks may have been held by it
        # at fork time: start from scratch (the sender restarts on the child's first track()).
        # The parent's buffered events stay the parent's.
        closed = self._closed or self._closing
        self._transport.forget()
        self._init_state()
        if closed:
            self._closed = self._closing = True
            _live_clients.discard(self)

    # ------------------------------------------------------------------ public API

    def track(
        self,
        event_name: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        service: str | None = None,
        environment: str | None = None,
        timestamp: float | _dt.datetime | None = None,
    ) -> None:
        """Queue one event. Never blocks on the network; never raises unless ``debug=True``."""
        try:
            if self._inactive and not self._activate():
                self._count_disabled()
                return
            if event_name.__class__ is not str or not event_name:
                return self._invalid(
                    f"event_name must be a non-empty string, got {event_name!r}",
                    TypeError if event_name.__class__ is not str else ValueError,
                )
            if metadata is not None:
                if metadata.__class__ is dict:
                    metadata = metadata.copy()
                elif isinstance(metadata, Mapping):
                    metadata = dict(metadata)
                else:
                    return self._invalid(f"metadata must be a mapping, got {type(metadata).__name__}")
            if timestamp is None:
                timestamp = _time()
            elif timestamp.__class__ is not float:
                timestamp = _coerce_timestamp(timestamp)
                if timestamp is None:
                    return self._invalid("timestamp must be unix seconds (int/float) or a datetime")
            if service is not None and service.__class__ is not str:
                return self._invalid("service must be a string or None")
            if environment is not None and environment.__class__ is not str:
                return self._invalid("environment must be a string or None")
            if self.debug:  # the full check, otherwise done by the sender (off the hot path)
                problem = _field_problem(event_name, service, environment)
                if problem is not None:
                    raise ValueError(problem)
            q = self._q
            q.append((event_name, timestamp, service, environment, metadata))
            next(self._accepted)
            if len(q) >= self.batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception:
            if self.debug:
                raise
            try:
                logger.debug("Heron: track() failed", exc_info=True)
            except Exception:  # pragma: no cover
                pass

    def ping(
        self,
        token_or_url: str,
        status: Status = "success",
        body: str | bytes | None = None,
        rid: str | uuid.UUID | None = None,
        *,
        timeout: float = _ping.DEFAULT_PING_TIMEOUT,
    ) -> bool:
        """Send a heartbeat ping now; True if Heron recorded it.

        ``token_or_url``: the heartbeat's token (sent to ``{endpoint}/api/v1/hb/{token}``) or its
        full ping URL. ``status``: "success" (or "ok"), "start", "fail" or a process exit code
        (0 is success). ``body``: a log excerpt or failure reason (first 10 KiB sent). ``rid``:
        a UUID pairing a "start" with its finish. Blocks at most ``timeout`` seconds, retries
        included; never raises (except invalid arguments with ``debug=True``). Works without an
        API key, and never sends it.
        """
        return _ping.ping(self._ping_settings, token_or_url, status, body, rid, timeout, self._record_ping)

    def heartbeat(self, token_or_url: str) -> Heartbeat:
        """A context manager and decorator sending "start", then "success" or "fail" (with the
        exception) around a block or function; see :class:`heron.Heartbeat`."""
        return Heartbeat(token_or_url, self.ping)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Send everything queued so far; wait at most ``timeout`` seconds (None: no limit).

        Returns True if the buffer was drained and nothing was lost (rejected/dropped) meanwhile.
        Cuts an ongoing retry backoff short, except a server-requested ``Retry-After``.
        """
        if not self._enabled:
            return True
        if threading.current_thread() is self._thread:
            return False  # called from the sender itself (e.g. by a logging handler): can't wait
        with self._cond:
            if self._closed or self._thread is None:  # closed, or never used
                return self._pending_locked() == 0
            epoch = self._drained_epoch
            lost = self._lost_locked()
        self._urgent.set()
        self._wake.set()
        with self._cond:
            done = self._cond.wait_for(lambda: self._drained_epoch > epoch or self._closed, timeout)
            if not done:
                return False
            if self._drained_epoch == epoch and self._pending_locked():
                return False  # closed with events left
            return self._lost_locked() == lost

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout`` seconds, default ``shutdown_timeout``) and stop the sender.

        Idempotent. Events that could not be sent in time are dropped (counted, logged).
        Returns True if everything was delivered.
        """
        timeout = self.shutdown_timeout if timeout is None else max(0.0, float(timeout))
        _live_clients.discard(self)
        with self._cond:
            if not self._closing:
                self._closing = True
                self._inactive = True
                self._deadline = _monotonic() + timeout
                self._close_timeout = timeout
            thread = self._thread
            if thread is None:  # never used (or disabled): nothing to send
                self._closed = True
                return True
        self._urgent.set()
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(timeout + 0.5)
        with self._cond:
            return self._closed and self._pending_locked() == 0 and self._lost_at_close_locked() == 0

    def stats(self) -> Stats:
        """A consistent snapshot of the counters (see :class:`Stats`)."""
        with self._lock:
            queue_full = self._queue_full_locked()
            queued = len(self._q) + len(self._carry) + self._inflight
            dropped = (
                queue_full
                + self._dropped_rejected
                + self._dropped_invalid
                + self._dropped_disabled
                + self._dropped_at_shutdown
            )
            return Stats(
                queued=queued,
                sent=self._sent,
                dropped=dropped,
                dropped_queue_full=queue_full,
                dropped_rejected=self._dropped_rejected,
                dropped_invalid=self._dropped_invalid,
                dropped_disabled=self._dropped_disabled,
                dropped_at_shutdown=self._dropped_at_shutdown,
                metadata_dropped=self._metadata_dropped,
                failed_requests=self._failed_requests,
                pings_sent=self._pings_sent,
                pings_dropped=self._pings_dropped,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("disabled" if not self._enabled else "running")
        return f"<heron.Client endpoint={self.endpoint!r} service={self.service!r} {state}>"

    # ------------------------------------------------------------------ accounting helpers

    def _queue_full_locked(self) -> int:
        # accepted = next() minus the probes made before this one (see module docstring).
        accepted = next(self._accepted) - self._probes
        self._probes += 1
        # Clamped: an event appended but not yet counted by its track() call reads as -1.
        return max(0, accepted - self._taken - len(self._q)) + self._dropped_carry

    def _lost_locked(self) -> int:
        return self._queue_full_locked() + self._dropped_rejected + self._dropped_at_shutdown

    def _lost_at_close_locked(self) -> int:
        return self._dropped_at_shutdown

    def _pending_locked(self) -> int:
        return len(self._q) + len(self._carry)

    def _count_disabled(self) -> None:
        with self._lock:
            self._dropped_disabled += 1

    def _record_ping(self, delivered: bool, failures: int, problem: str | None) -> None:
        with self._lock:
            if delivered:
                self._pings_sent += 1
            else:
                self._pings_dropped += 1
            self._failed_requests += failures
            if problem is not None:
                self._last_error = f"heartbeat ping: {problem}"
                self._last_error_at = _time()

    def _invalid(self, message: str, exc_type: type[Exception] = TypeError) -> None:
        if self.debug:
            raise exc_type(message)
        with self._lock:
            self._dropped_invalid += 1
        self._log_once(("invalid", message[:60]), logging.WARNING, "Heron: dropped an event: %s", message)

    def _log_once(self, key: Any, level: int, msg: str, *args: Any) -> None:
        """Log ``msg`` at ``level`` the first time ``key`` is seen, at DEBUG afterwards."""
        if key in self._logged:
            logger.debug(msg, *args)
            return
        if len(self._logged) < 1000:
            self._logged.add(key)
        logger.log(level, msg + " (logged once; repeats at DEBUG level)", *args)

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        try:
            while True:
                if not self._closing:
                    self._wake.wait(self.flush_interval)
                    self._wake.clear()
                self._drain()
                if self._closing:
                    break
        except BaseException:  # pragma: no cover - a bug; never let it pass silently
            logger.exception("Heron: the sender thread crashed; events will no longer be sent")
        finally:
            self._shutdown()

    def _drain(self) -> None:
        """Send until the buffer is empty, a failure needs a backoff we cannot wait for, or the
        shutdown deadline passes."""
        while True:
            if self._closing and self._deadline is not None and _monotonic() >= self._deadline:
                return
            self._check_overflow()
            batch = self._take_batch()
            if batch is None:
                return  # drained
            outcome = self._send_events(batch)
            if outcome.retry and not self._pause(outcome.delay, outcome.strict):
                return

    def _pause(self, delay: float, strict: bool) -> bool:
        """Wait ``delay`` seconds before retrying. True: retry now; False: stop draining."""
        end = _monotonic() + delay
        while True:
            now = _monotonic()
            if self._closing:
                deadline = self._deadline if self._deadline is not None else now
                if strict and end > deadline:
                    return False  # the server asked us to wait longer than we have left
                wait = min(end, deadline) - now
                if wait > 0:
                    time.sleep(wait)
                return True
            if now >= end:
                return True
            if self._urgent.wait(end - now):
                if self._closing:
                    continue
                self._urgent.clear()
                if not strict:
                    return True

    def _take_batch(self) -> list[_Event] | None:
        """Up to ``_max_events`` of the oldest events, or None if there is nothing left to send
        (then the drain epoch advances and flush() waiters are woken)."""
        with self._cond:
            if self._carry:
                self._trim_carry_locked()
            limit = self._max_events
            batch, self._carry = self._carry[:limit], self._carry[limit:]
            q = self._q
            n = min(limit - len(batch), len(q))
            popleft = q.popleft
            try:
                for _ in range(n):
                    batch.append(popleft())
                    self._taken += 1
            except IndexError:  # pragma: no cover - only the sender pops
                pass
            if batch:
                return batch
            self._drained_epoch += 1
            self._urgent.clear()
            self._cond.notify_all()
            return None

    def _encode(self, batch: list[_Event]) -> tuple[bytes, list[_Event], list[_Event]]:
        """JSON body for as many events of ``batch`` as fit in ``max_batch_bytes``.

        Returns (body, sent_items, leftover_items). Invalid events are dropped and counted.
        """
        parts: list[bytes] = []
        included: list[_Event] = []
        size = 12  # {"events":[]}
        for index, item in enumerate(batch):
            encoded = self._encode_event(item)
            if encoded is None:
                continue
            part, item = encoded
            if parts and size + len(part) + 1 > self.max_batch_bytes:
                return self._body(parts), included, batch[index:]
            parts.append(part)
            included.append(item)
            size += len(part) + 1
        return self._body(parts), included, []

    @staticmethod
    def _body(parts: list[bytes]) -> bytes:
        return b'{"events":[' + b",".join(parts) + b"]}"

    def _encode_event(self, item: _Event) -> tuple[bytes, _Event] | None:
        """(JSON bytes, item) or None if the event cannot be encoded (dropped and counted). The
        returned item has oversize metadata already replaced, so a retry does not count it twice."""
        name, ts, service, environment, metadata = item
        problem = _field_problem(name, service, environment)
        if problem is not None:
            # One invalid event would make the server reject (422) its whole batch.
            self._drop_invalid_in_sender(problem)
            return None
        event: dict[str, Any] = {"event_name": name, "timestamp": ts}
        svc = service if service is not None else self.service
        if svc is not None:
            event["service"] = svc
        env = environment if environment is not None else self.environment
        if env is not None:
            event["environment"] = env
        try:
            head = _dumps(event)
        except (TypeError, ValueError) as exc:  # e.g. a NaN/inf timestamp
            self._drop_invalid_in_sender(f"cannot encode event {name!r}: {exc}")
            return None
        if metadata:
            try:
                meta = _dumps(metadata)
            except (TypeError, ValueError, RecursionError) as exc:
                self._drop_invalid_in_sender(f"metadata of event {name!r} is not JSON-serialisable: {exc}")
                return None
            encoded = meta.encode("utf-8")
            if len(encoded) > MAX_METADATA_BYTES:
                with self._lock:
                    self._metadata_dropped += 1
                self._log_once(
                    ("metadata", name),
                    logging.WARNING,
                    "Heron: metadata of event %r is %d bytes as JSON (limit %d); sending the event "
                    "with metadata %s instead",
                    name,
                    len(encoded),
                    MAX_METADATA_BYTES,
                    _DROPPED_METADATA_JSON.decode(),
                )
                encoded = _DROPPED_METADATA_JSON
                item = (name, ts, service, environment, dict(DROPPED_METADATA))
        else:
            encoded = b"{}"
        return head[:-1].encode("utf-8") + b',"metadata":' + encoded + b"}", item

    def _drop_invalid_in_sender(self, message: str) -> None:
        with self._lock:
            self._dropped_invalid += 1
        self._log_once(("invalid", message[:60]), logging.WARNING, "Heron: dropped an event: %s", message)

    def _request(self, path: str, body: bytes, timeout: float, idempotency_key: str | None = None) -> Response:
        headers = self._headers
        if idempotency_key is not None:
            headers = {**headers, "Idempotency-Key": idempotency_key}
        threshold = self.gzip_threshold
        if threshold is not None and len(body) > threshold:
            body = gzip.compress(body, compresslevel=6)
            headers = {**headers, "Content-Encoding": "gzip"}
        return self._transport.post(path, body, headers, timeout)

    def _timeout(self) -> float:
        if self._closing and self._deadline is not None:
            return max(0.05, min(self.request_timeout, self._deadline - _monotonic()))
        return self.request_timeout

    def _send_events(self, batch: list[_Event]) -> _Outcome:
        if not batch:
            return _OK
        body, items, leftover = self._encode(batch)
        with self._lock:
            self._inflight = len(items)
            if leftover:
                self._carry = leftover + self._carry
        if not items:
            return _OK
        n = len(items)
        key = self._idempotency_key(items)
        try:
            resp = self._request(self._events_path, body, self._timeout(), key)
        except Exception as exc:  # OSError, http.client.HTTPException, ...
            return self._retry_events(items, self._network_error(exc), key)
        self._retry_key = None
        if 200 <= resp.status < 300:
            with self._lock:
                self._sent += n
                self._inflight = 0
            self._succeeded()
            if self._max_events < self.batch_size:
                self._max_events = min(self.batch_size, self._max_events * 2)
            return _OK
        reason = describe_error(resp)
        if resp.status == 429 or resp.status == 408 or resp.status >= 500:
            return self._retry_events(items, self._retryable_status(resp, reason), key)
        self._record_failure(f"HTTP {resp.status}: {reason}", retryable=False)
        if resp.status == 413 and n > 1:
            # Too large for this server: split the batch and try again at once.
            self._max_events = max(1, n // 2)
            with self._lock:
                self._carry = items + self._carry
                self._inflight = 0
            self._log_once(
                ("events", 413),
                logging.WARNING,
                "Heron: the server rejected a batch of %d events as too large (413: %s); "
                "retrying with at most %d events per request",
                n,
                reason,
                self._max_events,
            )
            return _Outcome(False, retry=True, delay=0.0)
        with self._lock:
            self._dropped_rejected += n
            self._inflight = 0
        self._log_rejection("events", resp.status, reason, f"dropping a batch of {n} events")
        return _DROPPED

    def _idempotency_key(self, items: list[_Event]) -> str:
        """The key of a request for ``items``: the failed batch's key when ``items`` begins with
        its events in the same order (the server keys each event by its position), else a new one."""
        if self._retry_key is not None:
            key, previous = self._retry_key
            if len(items) >= len(previous) and items[: len(previous)] == previous:
                return key
        return uuid.uuid4().hex

    def _retry_events(self, items: list[_Event], outcome: _Outcome, key: str | None = None) -> _Outcome:
        self._retry_key = (key, items) if key is not None else None
        with self._lock:
            self._carry = items + self._carry
            self._trim_carry_locked()
            self._inflight = 0
        return outcome

    def _trim_carry_locked(self) -> None:
        # Events waiting for a retry count against the buffer capacity; being the oldest, they
        # are the first to go when the buffer is full.
        excess = len(self._carry) + len(self._q) - self.max_queue_size
        if excess > 0:
            del self._carry[:excess]
            self._dropped_carry += excess

    def _network_error(self, exc: BaseException) -> _Outcome:
        if self._closing and self._deadline is not None and _monotonic() >= self._deadline:
            description = f"{type(exc).__name__}: {exc} (at shutdown)"
        else:
            description = f"{type(exc).__name__}: {exc}"
        self._record_failure(f"cannot reach {self.endpoint}: {description}")
        self._log_streak(f"Heron: cannot reach {self.endpoint} ({description}); will retry")
        return _Outcome(False, retry=True, delay=self._backoff())

    def _retryable_status(self, resp: Response, reason: str) -> _Outcome:
        self._record_failure(f"HTTP {resp.status}: {reason}")
        if resp.status == 429:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
            delay = retry_after if retry_after is not None else self._backoff()
            self._log_streak(f"Heron: rate limited by the server (429: {reason}); retrying in {delay:.1f}s")
            return _Outcome(False, retry=True, delay=delay, strict=True)
        retry_after = parse_retry_after(resp.headers.get("retry-after"))
        delay = retry_after if retry_after is not None else self._backoff()
        self._log_streak(f"Heron: server error ({resp.status}: {reason}); will retry")
        return _Outcome(False, retry=True, delay=delay)

    def _backoff(self) -> float:
        """Exponential backoff with jitter: base * 2**(failures-1), capped, times U(0.5, 1)."""
        exponent = min(self._fail_streak - 1, 30)
        return min(self.backoff_max, self.backoff_base * (2**exponent)) * random.uniform(0.5, 1.0)

    def _record_failure(self, description: str, retryable: bool = True) -> None:
        with self._lock:
            self._failed_requests += 1
            self._last_error = description
            self._last_error_at = _time()
        if retryable:
            self._fail_streak += 1

    def _log_streak(self, message: str) -> None:
        # The first failure of a streak is a warning; the following ones are debug noise.
        if self._fail_streak == 1:
            logger.warning(message)
        else:
            logger.debug(message)

    def _succeeded(self) -> None:
        if self._fail_streak:
            logger.info("Heron: delivery resumed after %d failed attempt(s)", self._fail_streak)
            self._fail_streak = 0

    def _log_rejection(self, kind: str, status: int, reason: str, consequence: str) -> None:
        if status == 401:
            text = "Heron rejected the API key (401: %s); %s. Check api_key / HERON_API_KEY"
        elif status == 403:
            text = "Heron refused access (403: %s); %s. Check the API key's permissions"
        elif 300 <= status < 400:
            text = f"Heron answered with a redirect ({status}: %s); %s. Check the endpoint URL"
        else:
            text = f"Heron rejected the request ({status}: %s); %s"
        self._log_once((kind, status), logging.ERROR, text, reason, consequence)

    def _check_overflow(self) -> None:
        """Log buffer-full drops: at most every 10 seconds, with the running total."""
        with self._lock:
            dropped = self._queue_full_locked()
        if dropped > self._overflow_logged:
            now = _monotonic()
            if self._overflow_logged == 0 or now - self._overflow_logged_at >= 10.0 or self._closing:
                logger.warning(
                    "Heron: buffer full (max_queue_size=%d); %d oldest events dropped so far",
                    self.max_queue_size,
                    dropped,
                )
                self._overflow_logged = dropped
                self._overflow_logged_at = now

    def _shutdown(self) -> None:
        self._check_overflow()
        with self._cond:
            left = len(self._q) + len(self._carry)
            self._taken += len(self._q)
            self._q.clear()
            self._carry = []
            self._dropped_at_shutdown += left
            self._closed = True
            self._inactive = True
            self._cond.notify_all()
        if left:
            logger.warning(
                "Heron: %d events could not be delivered before shutdown (close timeout %.1fs; last error: %s)",
                left,
                self._close_timeout,
                self._last_error,
            )
        self._transport.close()


def _field_problem(name: str, service: str | None, environment: str | None) -> str | None:
    """Why the server would reject these fields (422), or None. Types are already checked."""
    if not name.strip():
        return f"event_name must not be blank, got {name!r}"
    if len(name) > MAX_NAME_LENGTH:
        return f"event_name is longer than {MAX_NAME_LENGTH} characters: {name[:40]!r}..."
    for label, value in (("service", service), ("environment", environment)):
        if value is not None and len(value) > MAX_LABEL_LENGTH:
            return f"{label} is longer than {MAX_LABEL_LENGTH} characters: {value[:40]!r}..."
    return None


def _coerce_timestamp(value: Any) -> float | None:
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _check_number(name: str, value: Any, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def _check_int(name: str, value: Any, minimum: int, maximum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


# ---------------------------------------------------------------------- process hooks


def _close_all_at_exit() -> None:
    for client in list(_live_clients):
        try:
            client.close()
        except Exception:  # pragma: no cover
            pass


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        try:
            client._after_fork_in_child()
        except Exception:  # pragma: no cover
            pass
    # A multiprocessing child (fork/forkserver start methods) ends with os._exit(), which skips
    # atexit; multiprocessing's own exit hooks still run. Its after-fork callbacks run once the
    # child's bookkeeping is reset, so register from there.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        try:
            mp_util.register_after_fork(_MP_TOKEN, _register_multiprocessing_exit)
        except Exception:  # pragma: no cover
            pass


class _Token:
    """A weak-referenceable key for multiprocessing.util.register_after_fork."""


_MP_TOKEN = _Token()
_mp_exit_registered_pid: int | None = None


def _register_multiprocessing_exit(_token: object = None) -> None:
    """In a multiprocessing child process, close (flush) the clients when the child exits."""
    global _mp_exit_registered_pid
    mp_process = sys.modules.get("multiprocessing.process")
    if mp_process is None or mp_process.parent_process() is None:
        return  # not a multiprocessing child: atexit does the job
    if _mp_exit_registered_pid == os.getpid():
        return
    import multiprocessing.util as mp_util

    mp_util.Finalize(None, _close_all_at_exit, exitpriority=100)
    _mp_exit_registered_pid = os.getpid()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
