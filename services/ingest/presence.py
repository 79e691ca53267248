"""This replica tells the detectors it can publish (``heron_common.presence``).

While no ingest replica can publish, events are being turned away, and the detector's ticker
records Heron as blind so those silences do not page anyone.
"""

from __future__ import annotations

import os
import secrets
import socket

from aiohttp import web

from heron_common.logging import get_logger
from heron_common.presence import INGEST_BEAT, beat_ingest_ready
from heron_common.service import AMQP, CLOCK, REDIS, SETTINGS, sleep_or_stop

log = get_logger("ingest.presence")


async def announce_ready(app: web.Application) -> None:
    instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    prefix = app[SETTINGS].redis_prefix
    while True:
        try:
            amqp = app[AMQP]
            # A robust connection is never "closed" while it reconnects; `connected` is the truth.
            if not amqp.is_closed and amqp.connected.is_set():
                await beat_ingest_ready(app[REDIS], prefix, instance, app[CLOCK].now())
        except Exception as exc:
            # Redis down: the detectors cannot read beats either; nothing to do but try again.
            log.warning("could not announce readiness", error=str(exc) or type(exc).__name__)
        if await sleep_or_stop(app, INGEST_BEAT):
            return
