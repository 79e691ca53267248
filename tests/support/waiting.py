"""Waiting for a condition in another process's hands (a database row, a counter).

Where no event can be subscribed to, poll briefly with a deadline; the deadline only bounds a
broken run, it is not a timing assertion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 20.0) -> T:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > give_up:
            raise AssertionError(f"condition not reached within {timeout} s; last value: {value!r}")
        await asyncio.sleep(0.02)
