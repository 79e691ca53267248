"""PROTOTYPE (bench-local monkeypatch, not the service code): a cheaper ingest request path.

Measures what the fixes suggested in bench/README.md would buy, without editing the services:

1. Validation builds the wire row directly. ``parse_event`` builds a frozen slots dataclass
   (``TrackedEvent``: its generated ``__init__`` does one ``object.__setattr__`` per field, ~1 µs
   per event) that ``to_wire`` then turns into a list again; it is called with keyword arguments,
   ``_label`` is a call per label and ``track.py`` formats ``f"events[{i}]."`` for every event even
   when nothing is wrong. Here the common, valid case is checked inline and the row list is built
   once; anything unusual falls back to the original ``parse_event`` so that errors (status, code,
   message) are exactly the same.
2. The shard of a stream is cached per (project, name, service, environment) instead of an
   f-string + encode + crc32 per event.
3. The publisher takes rows grouped by shard and puts them in the message as they are (no
   ``to_wire``). Its batching is unchanged (GroupPublisher as of c46e5a7).
4. Prometheus children are bound once (``REQUESTS.labels(...)`` takes a lock and hashes the label
   tuple on every request) and the constant 202 body is encoded once.

Semantics kept: same validation rules and errors, same envelope, same confirms-before-answer.
"""

from __future__ import annotations

import asyncio
import math

import orjson
from aiohttp import web

from heron_common import messages
from heron_common.service import CLOCK, SETTINGS, error_response, json_response

MAX_NAME = 200
MAX_LABEL = 200
_SHARD_CACHE_MAX = 100_000


def apply() -> None:
    from heron_ingest import publisher as publisher_mod
    from heron_ingest import track
    from heron_ingest.context import PUBLISHER
    from heron_ingest.validation import InputError, batch_items, parse_event

    shard_cache: dict[tuple, int] = {}

    def shard_of(project_id: int, name: str, service: str | None, env: str | None, shards: int) -> int:
        key = (project_id, name, service, env)
        s = shard_cache.get(key)
        if s is None:
            if len(shard_cache) >= _SHARD_CACHE_MAX:
                shard_cache.clear()
            s = shard_cache[key] = messages.stream_shard(project_id, name, service, env, shards)
        return s

    def rows_by_shard(
        items: list, project_id: int, received_at: float, settings, batch: bool
    ) -> tuple[dict[int, list[list]], int]:
        max_md = settings.max_metadata_bytes
        lo = received_at - settings.max_clock_skew
        shards = settings.shards
        out: dict[int, list[list]] = {}
        for i, raw in enumerate(items):
            row = None
            if type(raw) is dict:
                name = raw["event_name"] if "event_name" in raw else raw.get("event")
                service = raw.get("service")
                env = raw.get("environment")
                ts = raw.get("timestamp")
                md = raw.get("metadata")
                if (
                    type(name) is str
                    and 0 < len(name) <= MAX_NAME
                    and (service is None or (type(service) is str and len(service) <= MAX_LABEL))
                    and (env is None or (type(env) is str and len(env) <= MAX_LABEL))
                    and (md is None or (type(md) is dict and len(orjson.dumps(md)) <= max_md))
                    and name.strip()
                ):
                    if ts is None:
                        t = received_at
                    elif (type(ts) is float or type(ts) is int) and math.isfinite(ts):
                        t = float(ts)
                        t = received_at if t > received_at else (lo if t < lo else t)
                    else:
                        t = None
                    if t is not None:
                        row = [project_id, name, service or None, env or None, t, received_at, md]
            if row is None:
                # Anything unusual: the original validator raises the exact same error (or accepts it).
                e = parse_event(
                    raw,
                    project_id=project_id,
                    received_at=received_at,
                    max_metadata_bytes=max_md,
                    max_skew=settings.max_clock_skew,
                    where=f"events[{i}]." if batch else "",
                )
                row = e.to_wire()
            s = shard_of(project_id, row[1], row[2], row[3], shards)
            bucket = out.get(s)
            if bucket is None:
                out[s] = [row]
            else:
                bucket.append(row)
        return out, len(items)

    # ---------------------------------------------------------------- publisher taking rows
    GroupPublisher = publisher_mod.GroupPublisher

    async def publish_rows(self, by_shard: dict[int, list[list]]) -> None:
        """GroupPublisher.publish as of c46e5a7 (no linger: an idle shard sends at the end of the
        loop iteration, a busy one when its confirm arrives), taking rows already grouped by shard."""
        loop = asyncio.get_running_loop()
        waits = []
        for shard, rows in by_shard.items():
            pending = self._pending.get(shard)
            if pending is None:
                pending = self._pending[shard] = publisher_mod._Pending()
            pending.events.extend(rows)
            waiter = loop.create_future()
            pending.waiters.append(waiter)
            waits.append(waiter)
            if len(pending.events) >= publisher_mod.MAX_EVENTS_PER_MESSAGE:
                self._send(shard)
            elif not self._busy[shard] and not self._kick_scheduled:
                self._kick_scheduled = True
                loop.call_soon(self._send_idle)
        if len(waits) == 1:
            await waits[0]
        else:
            await asyncio.gather(*waits)

    if not hasattr(GroupPublisher, "_send_idle"):
        raise RuntimeError("fast_ingest was written against GroupPublisher as of c46e5a7 (_send_idle, _busy)")

    orig_events_message = messages.events_message

    def events_message(events: list, now: float) -> dict:
        if events and type(events[0]) is list:
            return {
                "type": messages.EVENTS,
                "v": messages.SCHEMA_VERSION,
                "id": messages.new_id(),
                "at": now,
                "events": events,
            }
        return orig_events_message(events, now)

    messages.events_message = events_message
    GroupPublisher.publish_rows = publish_rows

    # ---------------------------------------------------------------- handler
    requests_counter = track.REQUESTS
    counters: dict[tuple[str, str], object] = {}

    def count(endpoint: str, status: str) -> None:
        c = counters.get((endpoint, status))
        if c is None:
            c = counters[(endpoint, status)] = requests_counter.labels(endpoint, status)
        c.inc()

    accepted_body = orjson.dumps({"status": "accepted", "count": 1})
    # The ingest code moves: the caller's project comes from requests.caller_project now.
    authenticate = getattr(track, "caller_project", None) or track._authenticate

    async def _ingest(request: web.Request, endpoint: str, batch: bool) -> web.Response:
        app = request.app
        settings = app[SETTINGS]
        try:
            body = await track._read_body(request)
            project_id = await authenticate(request, body)
            received_at = app[CLOCK].now()
            items = batch_items(body, settings.max_batch_events) if batch else [body]
            by_shard, n = rows_by_shard(items, project_id, received_at, settings, batch)
        except InputError as exc:
            count(endpoint, str(exc.status))
            return error_response(exc.status, exc.code, exc.message)
        try:
            await app[PUBLISHER].publish_rows(by_shard)
        except Exception:
            count(endpoint, "503")
            return error_response(
                503, "unavailable", "events could not be stored right now; retry", headers={"Retry-After": "1"}
            )
        if batch:
            count(endpoint, "200")
            return json_response({"status": "stored", "count": n})
        count(endpoint, "202")
        return web.Response(body=accepted_body, status=202, content_type="application/json")

    track._ingest = _ingest
