"""Heartbeat pings: ``POST /api/v1/hb/{token}`` accepted per second by one ingest, and applied per
second by one detector (ping row written, state moved), end to end.

One ingest and one detector, each in its own process (bench/_serve.py), production settings.
``--heartbeats`` heartbeats are created through the API; this process sends ``--pings`` pings
spread over them with ``--concurrency`` requests in flight (every 200 means RabbitMQ confirmed
the observation), then waits until the detector has written every ping row.

    .venv/bin/python bench/heartbeat_pings.py [--pings 20000] [--heartbeats 100] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

import aiohttp
import asyncpg
from _common import BenchEnv, banner, create_project, log


async def main(args: argparse.Namespace) -> None:
    async with BenchEnv(shards=args.shards) as env:
        ingest = await env.start("ingest")
        await env.start("detector")
        _, key = await create_project(ingest.url, "bench-heartbeats")
        pg = await asyncpg.connect(env.database_url)
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
                urls = []
                for i in range(args.heartbeats):
                    body = {"name": f"job-{i}", "interval": "1h", "grace": "10m"}
                    async with http.post(f"{ingest.url}/v1/heartbeats", json=body) as r:
                        assert r.status == 201, await r.text()
                        urls.append((await r.json())["ping_url"])
                targets = itertools.cycle(urls)
                sent = 0
                failed = 0

                async def worker() -> None:
                    nonlocal sent, failed
                    while sent < args.pings:
                        sent += 1
                        async with http.post(next(targets)) as r:
                            await r.read()
                            failed += r.status != 200

                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                accepted_s = time.perf_counter() - t0
                # Polled: the rows are written by another process (the detector), with nothing to await.
                while (applied := await pg.fetchval("SELECT count(*) FROM pings")) < args.pings - failed:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                applied_s = time.perf_counter() - t0
                states = dict(await pg.fetch("SELECT state, count(*) FROM monitors GROUP BY state"))
        finally:
            await pg.close()
    ok = args.pings - failed
    banner("heartbeat pings, one ingest + one detector")
    print(f"pings sent: {args.pings:,} over {args.heartbeats} heartbeats, {args.concurrency} in flight")
    print(f"failed: {failed}")
    print(f"accepted (200 OK, confirmed by RabbitMQ): {ok / accepted_s:,.0f} pings/s")
    rate = applied / applied_s
    print(f"applied (ping rows written, state moved): {applied:,} in {applied_s:.1f} s = {rate:,.0f} pings/s")
    print(f"heartbeat states: {states}")
    log("done")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=20_000)
    parser.add_argument("--heartbeats", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--shards", type=int, default=16)
    asyncio.run(main(parser.parse_args()))
