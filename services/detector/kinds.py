"""What the detector does for each declared kind (heartbeats, triggers, probes…), registered here.

The event stream's hot path stays in ``store.py`` (batched, COPY, one transaction per run of
messages). Every other kind plugs into the same machinery through a :class:`Kind`: the scan calls
``due`` when its deadline falls due, an ``observation`` message (a ping, a trigger call, a probe
result) calls ``observe``, and the generic commands call ``resume``/``acknowledge``/``resolve``/
``configure`` where the kind has them. Each handler runs inside the transaction that locked the
monitor row (``FOR UPDATE``), saves what changed and records its flips through
``incidents.record_flip``, and returns the monitor's next deadline (for the index) and the outbox
rows to publish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from heron_common import blind
from heron_common.monitors.rate import RateParams


@dataclass
class Outcome:
    deadline: float | None  # the monitor's next deadline (None: nothing to watch for)
    outbox_ids: list[int] = field(default_factory=list)


@dataclass
class Context:
    params: RateParams  # the event streams' model; declared kinds use its min_tolerance
    windows: Callable[[float], Awaitable[list[blind.Window]]]  # blind windows ending after a time
    by: str | None = None  # who asked (commands)


Due = Callable[[asyncpg.Connection, asyncpg.Record, float, Context], Awaitable[Outcome]]
Observe = Callable[[asyncpg.Connection, asyncpg.Record, dict[str, Any], float, Context], Awaitable[Outcome]]
Act = Callable[[asyncpg.Connection, asyncpg.Record, float, Context], Awaitable[Outcome]]
Configure = Callable[[asyncpg.Connection, asyncpg.Record, dict[str, Any], float, Context], Awaitable[Outcome]]


@dataclass(frozen=True)
class Kind:
    due: Due
    observe: Observe | None = None
    resume: Act | None = None  # back from paused (default: the kind's first state, no deadline)
    acknowledge: Act | None = None  # default: the incident is acknowledged, the state unchanged
    resolve: Act | None = None  # resolving by hand; None: the kind does not allow it
    configure: Configure | None = None


KINDS: dict[str, Kind] = {}


def register(name: str, kind: Kind) -> None:
    KINDS[name] = kind


def of(row: asyncpg.Record) -> Kind:
    kind = KINDS.get(row["kind"])
    if kind is None:
        raise LookupError(f"no detector support for monitors of kind {row['kind']!r}")
    return kind


async def lock(conn: asyncpg.Connection, monitor_id: int, project_id: int) -> asyncpg.Record | None:
    """The monitor row (with its project's name), locked for the caller's transaction; None if it
    is gone or not the project's."""
    return await conn.fetchrow(
        "SELECT m.*, p.name AS project_name FROM monitors m JOIN projects p ON p.id = m.project_id"
        " WHERE m.id = $1 AND m.project_id = $2 FOR UPDATE OF m",
        monitor_id,
        project_id,
    )
