"""This replica tells the detectors it can publish (``heron_common.presence``).

While no ingest replica can publish, events are being turned away, and the detector's ticker
records Heron as blind so those silences do not page anyone.
"""

from __future__ import annotations

from aiohttp import web

from heron_common.logging import get_logger
from heron_common.presence import INGEST_BEAT, beat_ingest_ready
from heron_common.service import CLOCK, REDIS, SETTINGS, instance_id, rabbitmq_up, sleep_or_stop

log = get_logger("ingest.presence")


async def announce_ready(app: web.Application) -> None:
    instance = instance_id()
    prefix = app[SETTINGS].redis_prefix
    while True:
        try:
            if rabbitmq_up(app):
                await beat_ingest_ready(app[REDIS], prefix, instance, app[CLOCK].now())
        except Exception as exc:
            # Redis down: the detectors cannot read beats either; nothing to do but try again.
            log.warning("could not announce readiness", error=str(exc) or type(exc).__name__)
        if await sleep_or_stop(app, INGEST_BEAT):
            return
