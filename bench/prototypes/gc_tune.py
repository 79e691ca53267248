"""PROTOTYPE (bench-local, not the service code): measure/tune the cyclic garbage collector.

A 100-event request allocates ~700 container objects (the parsed body) that die young, so the
default threshold (700) runs a generation-0 collection about once per request, and every tenth
of those a generation-1 one. None of these objects is in a cycle: the collector finds nothing.
``gc.freeze()`` after start-up moves everything allocated so far (aiohttp, aio-pika, asyncpg,
prometheus …) out of the collector's view, and a larger generation-0 threshold makes young
collections rarer. The environment variable HERON_BENCH_GC_THRESHOLD (default 50000) sets it.
"""

from __future__ import annotations

import gc
import os


def apply() -> None:
    threshold = int(os.environ.get("HERON_BENCH_GC_THRESHOLD", "50000"))
    from heron_common import service

    orig_base_app = service.base_app

    def base_app(*args, **kwargs):
        app = orig_base_app(*args, **kwargs)

        async def freeze(app) -> None:
            gc.collect()
            gc.freeze()

        app.on_startup.append(freeze)
        return app

    service.base_app = base_app
    import heron_ingest.app as ingest_app

    ingest_app.base_app = base_app
    try:
        import heron_detector.app as detector_app

        detector_app.base_app = base_app
    except ImportError:
        pass
    gc.set_threshold(threshold, 20, 100)
