"""Running a service as a real process (``python -m heron_…``) with a test's settings."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import aiohttp

from heron_common.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(s: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HERON_DATABASE_URL": s.database_url,
            "HERON_REDIS_URL": s.redis_url,
            "HERON_AMQP_URL": s.amqp_url,
            "HERON_REDIS_PREFIX": s.redis_prefix,
            "HERON_AMQP_PREFIX": s.amqp_prefix,
            "HERON_SHARDS": str(s.shards),
            "HERON_ADMIN_TOKEN": s.admin_token or "",
            "HERON_SECRETS_KEY": ",".join(s.secrets_keys),
            "HERON_HTTP_HOST": "127.0.0.1",
            "HERON_MIN_TOLERANCE": str(s.min_tolerance),
            "HERON_LEARNING_THRESHOLD": str(s.learning_threshold),
            "HERON_FALSE_ALARMS_PER_YEAR": repr(s.false_alarms_per_year),
            "HERON_YOUNG_CLUSTERS_PER_HOUR": repr(s.young_clusters_per_hour),
            "HERON_MIN_INTERVAL": str(s.min_interval),
            "HERON_SCAN_INTERVAL": str(s.scan_interval),
            "HERON_LOG_JSON": "true",
            # Everything a service can log is in the run's secret scan (tests/support/logscan.py).
            "HERON_LOG_LEVEL": "DEBUG",
            "HERON_OUTBOUND_ALLOW_CIDRS": ",".join(str(n) for n in s.outbound_allow_cidrs),
        }
    )
    env.update(extra)
    return env


async def start_service(module: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )


async def wait_ready(url: str, proc: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    """Poll /readyz until 200 (a process across a pipe offers no event to await)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while loop.time() < give_up:
            if proc.returncode is not None:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"service exited with {proc.returncode}: {err.decode()[-2000:]}")
            try:
                async with http.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} not ready within {timeout} s")
