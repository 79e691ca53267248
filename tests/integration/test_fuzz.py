"""Fuzzing every endpoint of the OpenAPI document against a running system (schemathesis).

Bounded here so ``make test`` stays quick (a few examples per operation and credential);
``make fuzz`` runs the same with many more (``HERON_FUZZ_EXAMPLES``). See tests/support/fuzzing.py
for what is generated and checked. Any 5xx it finds is a bug to fix in the handler, with a
regression test in test_input_regressions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from heron_common.settings import Settings
from heron_ingest.openapi import DOCUMENT
from tests.support.fuzzing import examples_per_operation, fuzz
from tests.support.system import System, running_system

pytestmark = pytest.mark.slow


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    async with running_system(settings, services=("detector",)) as s:
        yield s


async def _seed(system: System, key: str) -> None:
    """A little of everything, so small generated ids name real rows (a fresh database numbers from 1)."""
    url, auth = system.ingest.url, {"Authorization": f"Bearer {key}"}
    calls = [
        ("/v1/services", {"name": "api"}),
        ("/v1/triggers", {"name": "deploy", "service_id": 1}),
        ("/v1/heartbeats", {"name": "backup", "interval": "1h", "grace": "5m"}),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}),
        ("/v1/events", {"events": [{"event_name": "signup"}, {"event_name": "order", "service": "shop"}]}),
    ]
    for path, body in calls:
        async with system.http.post(url + path, data=orjson.dumps(body), headers=auth) as r:
            assert r.status < 300, (path, r.status, await r.text())


def _order(method: str, path: str) -> tuple[int, str, str]:
    """Reads first, then writes, deletes after them and revoking keys last, so the fuzzed key
    stays valid for as long as possible."""
    if method == "DELETE" and "/keys/" in path:
        return (3, path, method)
    return ({"GET": 0, "DELETE": 2}.get(method, 1), path, method)


async def test_fuzz_every_operation(system: System) -> None:
    _, key = await system.create_project("fuzzed")
    await _seed(system, key)
    document = system.ingest.app[DOCUMENT]
    report = await asyncio.to_thread(
        fuzz,
        document,
        system.ingest.url,
        key=key,
        admin_token=system.settings.admin_token or "",
        examples=examples_per_operation(4),
        order=_order,
    )
    print(f"fuzz: {report.calls} calls, statuses {dict(sorted(report.statuses.items()))}")
    assert not report.failures, "\n\n".join(report.failures)
    # It really exercised the API: answers of several kinds, not only refusals.
    assert report.calls > 300 and any(200 <= s < 300 for s in report.statuses), report.statuses
