"""Fixtures for the Heron SDK tests; the fake server lives in heron_fake_server.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from heron_fake_server import API_KEY, FakeHeron, wait_for

import heron


@pytest.fixture
def server() -> Iterator[FakeHeron]:
    fake = FakeHeron()
    yield fake
    fake.close()


@pytest.fixture
def make_client(server: FakeHeron) -> Iterator[Callable[..., heron.Client]]:
    """Clients pointed at the fake server, with fast retries; closed after the test."""
    clients: list[heron.Client] = []

    def make(**options: Any) -> heron.Client:
        options.setdefault("api_key", API_KEY)
        options.setdefault("endpoint", server.url)
        options.setdefault("backoff_base", 0.01)
        options.setdefault("backoff_max", 0.05)
        client = heron.Client(**options)
        clients.append(client)
        return client

    yield make
    server.release.set()
    for client in clients:
        client.close(timeout=2)


@pytest.fixture
def wait() -> Callable[..., bool]:
    return wait_for
