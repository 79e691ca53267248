"""The envelopes that travel over RabbitMQ, encoded with orjson.

Every message has ``type``, a schema version ``v``, a unique ``id`` and the time it was made.
An alert's ``id`` is carried end to end: it is the incident's alert id and the ``webhook-id`` of
every delivery made for it, so a consumer can deduplicate on it.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA_VERSION = 1

EVENTS = "events"  # ingest -> detector: a batch of tracked events for one shard
TICK = "tick"  # ticker -> detector: "time has reached T"; the shard's watermark and scan trigger
COMMAND = "command"  # ingest -> detector: a person acted on a monitor (acknowledge, pause, configure…)
OBSERVATION = "observation"  # ingest/prober -> detector: something happened to a declared monitor (a ping…)
OBSERVATIONS = "observations"  # prober -> detector: many observations of one shard's monitors in one message


class MessageError(ValueError):
    """A message that cannot be understood; it is dead-lettered, never dropped."""


def new_id() -> str:
    return str(uuid.uuid4())


def stream_shard(project_id: int, event_name: str, service: str | None, environment: str | None, shards: int) -> int:
    """The shard that owns a stream: stable across processes and releases (crc32, not hash())."""
    key = f"{project_id}\x1f{event_name}\x1f{service or ''}\x1f{environment or ''}".encode()
    return zlib.crc32(key) % shards


@dataclass(frozen=True, slots=True)
class TrackedEvent:
    project_id: int
    event_name: str
    service: str | None
    environment: str | None
    event_time: float  # already clamped by ingest (see heron_common.monitors.cadence.event_time)
    received_at: float
    metadata: dict[str, Any] | None
    # The event's idempotency key (str of a UUID, see ``event_key``), when its request had an
    # Idempotency-Key: the detector counts an event with a key it has seen before only once.
    key: str | None = None

    def to_wire(self) -> list[Any]:
        # A list, not a dict: a 100-event message is a third smaller and faster to parse. The key,
        # when there is one, is an eighth element; rows without one stay as they always were.
        row = [
            self.project_id,
            self.event_name,
            self.service,
            self.environment,
            self.event_time,
            self.received_at,
            self.metadata,
        ]
        if self.key is not None:
            row.append(self.key)
        return row

    @classmethod
    def from_wire(cls, row: list[Any]) -> TrackedEvent:
        try:
            if isinstance(row, list) and len(row) == 8:
                p, n, s, e, t, r, m, k = row
                return cls(int(p), str(n), s, e, float(t), float(r), m, str(uuid.UUID(k)))
            p, n, s, e, t, r, m = row
            return cls(int(p), str(n), s, e, float(t), float(r), m)
        except (TypeError, ValueError, AttributeError) as exc:
            raise MessageError(f"malformed event row: {exc}") from exc


# uuid5 namespace of event keys (any fixed UUID; changing it would forget every recorded key).
_EVENT_KEY_NAMESPACE = uuid.UUID("6f1f7d3a-2c55-4b7e-9a51-3f0de8a7c2b4")


def event_key(project_id: int, idempotency_key: str, index: int) -> str:
    """The key of the ``index``-th event of a request sent with ``idempotency_key``: the same on
    every retry of that request, distinct across projects, requests and positions."""
    return str(uuid.uuid5(_EVENT_KEY_NAMESPACE, f"{project_id}\x1f{idempotency_key}\x1f{index}"))


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict) or "type" not in message or "id" not in message:
        raise MessageError("not a Heron envelope (needs type and id)")
    if message.get("v", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise MessageError(f"schema version {message.get('v')} is newer than this service understands")
    return message


def events_message(events: list[TrackedEvent] | list[list[Any]], now: float) -> dict[str, Any]:
    """An events message from TrackedEvents or from wire rows (what ingest builds directly)."""
    rows = [e if isinstance(e, list) else e.to_wire() for e in events]
    return {"type": EVENTS, "v": SCHEMA_VERSION, "id": new_id(), "at": now, "events": rows}


def tick_message(shard: int, now: float) -> dict[str, Any]:
    return {"type": TICK, "v": SCHEMA_VERSION, "id": new_id(), "at": now, "shard": shard}


def command_message(
    monitor_id: int, project_id: int, action: str, now: float, *, by: str | None = None, args: dict | None = None
) -> dict[str, Any]:
    """A change asked for through the API, applied by the detector (the only writer of monitor
    state) in order with the shard's events and ticks."""
    return {
        "type": COMMAND,
        "v": SCHEMA_VERSION,
        "id": new_id(),
        "at": now,
        "monitor_id": monitor_id,
        "project_id": project_id,
        "action": action,
        "by": by,
        "args": args or {},
    }


def observation_message(monitor_id: int, project_id: int, now: float, payload: dict[str, Any]) -> dict[str, Any]:
    """What happened to a declared monitor (a heartbeat ping, a trigger call, a probe result): the
    detector folds ``payload`` into the monitor through its kind, once per message id."""
    return {
        "type": OBSERVATION,
        "v": SCHEMA_VERSION,
        "id": new_id(),
        "at": now,
        "monitor_id": monitor_id,
        "project_id": project_id,
        "payload": payload,
    }


def observations_message(rows: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Many observations for one shard in one message (``rows`` of ``{monitor_id, project_id,
    at, payload}``): the prober's results, gathered while the previous message awaits its confirm."""
    return {"type": OBSERVATIONS, "v": SCHEMA_VERSION, "id": new_id(), "at": now, "observations": rows}


def expand_observations(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The observation messages an ``observations`` message carries, each with its own id derived
    from the message's (uuid5), so each is applied once however often the message is delivered."""
    rows = message.get("observations")
    try:
        batch = uuid.UUID(str(message["id"]))
    except (KeyError, ValueError) as exc:
        raise MessageError(f"malformed observations message: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise MessageError("malformed observations message: observations is not a list of objects")
    return [
        {
            "type": OBSERVATION,
            "v": SCHEMA_VERSION,
            "id": str(uuid.uuid5(batch, str(i))),
            "at": row.get("at"),
            "monitor_id": row.get("monitor_id"),
            "project_id": row.get("project_id"),
            "payload": row.get("payload"),
        }
        for i, row in enumerate(rows)
    ]


def alert_message(alert_type: str, alert_id: str, now: float, data: dict[str, Any]) -> dict[str, Any]:
    """``alert_type`` is a topic such as ``incident.opened``; ``data`` is what receivers see."""
    return {"type": alert_type, "v": SCHEMA_VERSION, "id": alert_id, "at": now, "data": data}


CHANGED = "monitor.changed"  # detector/ingest -> live views (P.changes): these monitors changed


def change_message(project_id: int, monitor_ids: list[int], now: float) -> dict[str, Any]:
    """A ``monitor.changed`` notice: ``monitor_ids`` of ``project_id`` changed at ``now``."""
    return {
        "type": CHANGED,
        "v": SCHEMA_VERSION,
        "id": str(uuid.uuid4()),
        "at": now,
        "data": {"project": {"id": project_id}, "monitor_ids": monitor_ids},
    }
