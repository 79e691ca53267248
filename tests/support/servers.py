"""Where the real Postgres, Redis and RabbitMQ are for a test run.

Local servers first (URLs from ``HERON_TEST_*`` / ``HERON_*`` variables, defaulting to the
standard local ports); only if one is not answering and a Docker engine exists does the run fall
back to testcontainers for it.
"""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class ServerURLs:
    postgres: str
    redis: str
    amqp: str


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def locate(stack: ExitStack) -> ServerURLs:
    env = os.environ
    pg = env.get(
        "HERON_TEST_DATABASE_URL", env.get("HERON_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    rd = env.get("HERON_TEST_REDIS_URL", env.get("HERON_REDIS_URL", "redis://127.0.0.1:6379/0"))
    mq = env.get("HERON_TEST_AMQP_URL", env.get("HERON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    missing = [
        n
        for n, url, port in (("postgres", pg, 5432), ("redis", rd, 6379), ("rabbitmq", mq, 5672))
        if not _answers(url, port)
    ]
    if missing and not _docker_available():
        raise RuntimeError(f"not answering: {', '.join(missing)}; start them (see .ci/run) or set HERON_TEST_*_URL")
    if "postgres" in missing:
        from testcontainers.postgres import PostgresContainer

        c = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
        pg = c.get_connection_url()
    if "redis" in missing:
        from testcontainers.redis import RedisContainer

        c = stack.enter_context(RedisContainer("redis:7-alpine"))
        rd = f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"
    if "rabbitmq" in missing:
        from testcontainers.rabbitmq import RabbitMqContainer

        c = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-alpine"))
        mq = f"amqp://guest:guest@{c.get_container_host_ip()}:{c.get_exposed_port(5672)}/"
    return ServerURLs(pg, rd, mq)
