"""Backoff and retry-in-place: the pure parts of how consumers ride out an outage."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from heron_common import backoff
from heron_common.consumer import Abandoned, ConsumerStatus, retry_in_place, stuck_consumers


def test_backoff_grows_then_caps_and_jitters_downwards() -> None:
    assert backoff.delay(0, jitter=0) == backoff.FIRST
    assert backoff.delay(3, jitter=0) == backoff.FIRST * 8
    assert backoff.delay(50, jitter=0) == backoff.CAP
    for attempt in range(20):
        d = backoff.delay(attempt)
        assert 0.8 * min(backoff.CAP, backoff.FIRST * 2**attempt) <= d <= backoff.CAP


async def test_transient_failures_are_retried_in_place_until_success() -> None:
    calls = 0
    retried: list[int] = []

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return "done"

    result = await retry_in_place(
        work, stopping=asyncio.Event(), alive=lambda: True, on_retry=lambda _e, n: retried.append(n)
    )
    assert (result, calls, retried) == ("done", 3, [0, 1])


async def test_a_data_error_is_raised_at_once_for_the_poison_path() -> None:
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad row")

    with pytest.raises(ValueError):
        await retry_in_place(work, stopping=asyncio.Event(), alive=lambda: True, on_retry=lambda _e, _n: None)
    assert calls == 1


async def test_stopping_or_a_closed_channel_abandons_the_batch() -> None:
    async def outage() -> None:
        raise ConnectionRefusedError()

    stopping = asyncio.Event()
    stopping.set()
    with pytest.raises(Abandoned):
        await retry_in_place(outage, stopping=stopping, alive=lambda: True, on_retry=lambda _e, _n: None)
    with pytest.raises(Abandoned):
        await retry_in_place(outage, stopping=asyncio.Event(), alive=lambda: False, on_retry=lambda _e, _n: None)


def test_a_consumer_is_stuck_only_once_unsubscribed_for_the_bound_while_the_link_is_up() -> None:
    shard = ConsumerStatus("detector", "q.shard.1", "shard 1", since=100.0)
    alerts = ConsumerStatus("detector", "q.alerts", "alerts", subscribed=True, since=100.0)
    # The broker is unreachable: nothing is stuck, however long (a restart would not help).
    assert stuck_consumers([shard, alerts], None, 10_000.0, 120.0) == []
    # The link is back: the gap counts from then, not from when the consumer went down.
    assert stuck_consumers([shard, alerts], 9_950.0, 10_000.0, 120.0) == []
    assert stuck_consumers([shard, alerts], 9_880.0, 10_000.0, 120.0) == [
        "shard 1 not subscribed for 120 s while the broker is reachable"
    ]
    # Subscribed again: not stuck; the next gap counts from its own start.
    shard.set(True, now=10_001.0)
    assert stuck_consumers([shard], 9_880.0, 10_002.0, 120.0) == []
    shard.set(False, now=10_010.0)
    assert stuck_consumers([shard], 9_880.0, 10_100.0, 120.0) == []
    assert stuck_consumers([shard], 9_880.0, 10_130.0, 120.0) == [
        "shard 1 not subscribed for 120 s while the broker is reachable"
    ]
