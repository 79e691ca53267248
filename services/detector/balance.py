"""Which detector should own which shard. Pure: no I/O.

RabbitMQ's single-active-consumer hands a shard to whichever detector subscribed first, so left
alone the first detector to start owns every shard and the others only wait. Each detector
therefore also computes, by rendezvous hashing over the live detectors, the shards it *should*
own; a detector that is active on a shard meant for another live detector steps back (cancels
and re-subscribes, going to the end of the line). Rendezvous hashing moves only the shards that
must move when a detector joins or leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping


def _weight(member: str, shard: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{member}/{shard}".encode(), digest_size=8).digest(), "big")


def owner(shard: int, members: Iterable[str]) -> str | None:
    """The live detector that should own ``shard`` (None if there is none)."""
    return max(members, key=lambda m: _weight(m, shard), default=None)


def shards_to_yield(
    me: str,
    members: Iterable[str],
    active: Iterable[int],
    last_yield: Mapping[int, float],
    now: float,
    cooldown: float,
) -> list[int]:
    """The shards ``me`` is active on but should hand over, sparing those it yielded recently
    (a shard may come straight back when the preferred detector is not subscribed yet)."""
    live = sorted(set(members) | {me})
    out = []
    for shard in sorted(active):
        preferred = owner(shard, live)
        if preferred != me and now - last_yield.get(shard, float("-inf")) >= cooldown:
            out.append(shard)
    return out
