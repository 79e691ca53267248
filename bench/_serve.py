"""Run one server under test in its own process (started by bench/_common.py, not by hand).

    python bench/_serve.py ingest|detector|bare '<settings overrides as JSON>' [--cprofile OUT] [--patch NAME]

Builds the service from its real app factory (``heron_ingest.app.create_app`` /
``heron_detector.app.create_app``) and serves it with an aiohttp ``AppRunner`` on an ephemeral
loopback port, with the same options ``heron_common.service.run`` gives ``web.run_app``
(no access log). ``bare`` is a plain aiohttp app whose ``POST /v1/track`` only does
``orjson.loads`` of the body and answers 202: the ceiling ingest is compared against.

Protocol on stdout: ``SETUP <unix time>`` just before ``runner.setup()`` (the detector starts
consuming inside it), then ``READY <port> <unix time>``. SIGTERM/SIGINT: graceful shutdown
(``runner.cleanup()``), exit 0. With ``--cprofile OUT``: SIGUSR1 starts cProfile, SIGUSR2 stops it
and writes the stats to OUT.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import signal
import sys
import time
from pathlib import Path

import orjson
from aiohttp import web

PROTOTYPES = str(Path(__file__).resolve().parent / "prototypes")


def _bare_app() -> web.Application:
    body = orjson.dumps({"status": "accepted", "count": 1})

    async def track(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(body=body, status=202, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/track", track)
    return app


def _build(service: str, overrides: dict) -> web.Application:
    if service == "bare":
        return _bare_app()
    from heron_common.logging import configure_logging
    from heron_common.settings import Settings

    settings = Settings(**overrides)
    configure_logging(settings.log_level, True)
    if service == "ingest":
        from heron_ingest.app import create_app

        return create_app(settings)
    if service == "detector":
        from heron_detector.app import create_app as detector_app

        return detector_app(settings)
    raise SystemExit(f"unknown service {service!r}")


async def _main(args: argparse.Namespace) -> None:
    if args.patch:
        import importlib

        sys.path.insert(0, PROTOTYPES)
        for name in args.patch.split(","):
            importlib.import_module(name).apply()
    app = _build(args.service, orjson.loads(args.settings))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    profiler: cProfile.Profile | None = None
    if args.cprofile:
        profiler = cProfile.Profile()

        def _start() -> None:
            profiler.enable()

        def _stop() -> None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
            print(f"PROFILE {args.cprofile}", flush=True)

        loop.add_signal_handler(signal.SIGUSR1, _start)
        loop.add_signal_handler(signal.SIGUSR2, _stop)

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    print(f"SETUP {time.time():.6f}", flush=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port} {time.time():.6f}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("service", choices=["ingest", "detector", "bare"])
    parser.add_argument("settings", help="Settings overrides as a JSON object")
    parser.add_argument("--cprofile", help="enable SIGUSR1/SIGUSR2-controlled cProfile, dump here")
    parser.add_argument(
        "--patch", help="bench/prototypes modules (comma-separated) whose apply() runs before the app is built"
    )
    parser.add_argument(
        "--stdlib-loop", action="store_true", help="run on asyncio's own loop instead of the service's (uvloop)"
    )
    args = parser.parse_args()
    from heron_common.service import new_event_loop, tune_process

    tune_process()  # exactly what heron_common.service.run does for a real service
    if args.stdlib_loop:
        asyncio.run(_main(args))
    else:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_main(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
