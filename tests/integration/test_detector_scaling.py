"""Several detectors share the shards: each ends up active on the shards meant for it, and the
survivors take over when one stops."""

from __future__ import annotations

import time

from heron_common.settings import Settings
from heron_detector.app import INSTANCE, SHARDS
from heron_detector.app import create_app as detector_app
from heron_detector.balance import owner
from tests.support.system import Running, start
from tests.support.waiting import eventually


def active(running: Running, within: float) -> set[int]:
    now = time.monotonic()
    return {s for s, st in enumerate(running.app[SHARDS]) if now - st.last_message < within}


async def test_detectors_spread_the_shards_and_take_over(settings: Settings) -> None:
    within = 0.5  # ticks arrive every 0.05 s on a shard a detector is active on
    first = await start(detector_app(settings))
    second = None
    try:
        await eventually(lambda: _async(active(first, within)), lambda a: a == set(range(settings.shards)))
        second = await start(detector_app(settings))
        members = [first.app[INSTANCE], second.app[INSTANCE]]
        want = {
            r.app[INSTANCE]: {s for s in range(settings.shards) if owner(s, members) == r.app[INSTANCE]}
            for r in (first, second)
        }
        assert want[members[0]] | want[members[1]] == set(range(settings.shards))

        await eventually(
            lambda: _async((active(first, within), active(second, within))),
            lambda pair: pair == (want[members[0]], want[members[1]]),
        )
        await second.runner.cleanup()
        second = None
        await eventually(lambda: _async(active(first, within)), lambda a: a == set(range(settings.shards)))
    finally:
        if second is not None:
            await second.runner.cleanup()
        await first.runner.cleanup()


async def _async(value):  # eventually() polls awaitables
    return value
