"""What one project may declare is bounded by settings: exceeding one is a clear 422."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from heron_common.settings import Settings
from tests.support.system import System, running_system


async def call(system: System, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with system.http.request(method, f"{system.ingest.url}{path}", json=body, headers=headers) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else None)


async def test_each_quota_is_enforced_per_project(settings: Settings) -> None:
    small = replace(
        settings,
        max_heartbeats_per_project=2,
        max_triggers_per_project=2,
        max_webhooks_per_project=2,
        max_probes_per_project=2,
    )
    async with running_system(small, services=()) as system:
        _, key = await system.create_project()
        _, other = await system.create_project()
        _, service = await call(system, "POST", "/v1/services", key, {"name": "API"})
        cases = [
            (
                "/v1/heartbeats",
                lambda i: {"name": f"job {i}", "interval": 60, "grace": 60},
                "HERON_MAX_HEARTBEATS_PER_PROJECT",
            ),
            (
                "/v1/triggers",
                lambda i: {"name": f"t {i}", "service_id": service["id"]},
                "HERON_MAX_TRIGGERS_PER_PROJECT",
            ),
            ("/v1/webhooks", lambda i: {"url": f"http://127.0.0.1:9/{i}"}, "HERON_MAX_WEBHOOKS_PER_PROJECT"),
            (
                "/v1/probes",
                lambda i: {"url": f"http://127.0.0.1:9/p{i}", "service": "API", "interval": 60, "timeout": 180},
                "HERON_MAX_PROBES_PER_PROJECT",
            ),
        ]
        for path, body, setting in cases:
            made = []
            for i in range(2):
                status, row = await call(system, "POST", path, key, body(i))
                assert status == 201, row
                made.append(row)
            status, error = await call(system, "POST", path, key, body(2))
            assert status == 422 and error["error"]["code"] == "limit_reached", error
            assert setting in error["error"]["message"] and "2" in error["error"]["message"]
            # Another project has its own allowance.
            if path != "/v1/triggers":  # a trigger needs a service of its own project
                assert (await call(system, "POST", path, other, body(0)))[0] == 201
        # Deleting a webhook endpoint (synchronous) frees its place.
        _, hooks = await call(system, "GET", "/v1/webhooks", key)
        hooks = hooks["data"] if isinstance(hooks, dict) else hooks
        assert (await call(system, "DELETE", f"/v1/webhooks/{hooks[0]['id']}", key))[0] == 204
        assert (await call(system, "POST", "/v1/webhooks", key, {"url": "http://127.0.0.1:9/again"}))[0] == 201


async def test_header_lines_and_the_query_string_are_bounded_by_a_setting(settings: Settings) -> None:
    async with running_system(replace(settings, max_header_bytes=2048), services=()) as system:
        _, key = await system.create_project()

        async def get(path: str, **extra: str) -> tuple[int, str, str]:
            headers = {"Authorization": f"Bearer {key}", **extra}
            async with system.http.get(f"{system.ingest.url}{path}", headers=headers) as r:
                return r.status, r.content_type, await r.text()

        assert (await get("/v1/services", **{"X-Note": "n" * 1500}))[0] == 200
        assert (await get("/v1/services?name=" + "q" * 1500))[0] == 200
        # aiohttp's parser refuses these before any middleware runs; they still get the error
        # shape, naming the setting (heron_ingest.protocol_errors), and never echo the line.
        for path, extra in (("/v1/services", {"X-Note": "n" * 3000}), ("/v1/services?name=" + "q" * 3000, {})):
            status, content_type, text = await get(path, **extra)
            assert (status, content_type) == (400, "application/json"), text
            error = orjson.loads(text)["error"]
            assert error["code"] == "header_too_large" and "2048" in error["message"]
            assert "HERON_MAX_HEADER_BYTES" in error["message"] and "nnn" not in text and "qqq" not in text
        assert (await get("/v1/services"))[0] == 200  # the listener still serves


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_json_depth_is_bounded_by_a_setting_for_events_and_every_other_body(settings: Settings) -> None:
    async with running_system(replace(settings, max_json_depth=4), services=()) as system:
        _, key = await system.create_project()
        ok = {"event_name": "x", "metadata": nested(4)}
        assert (await call(system, "POST", "/v1/track", key, ok))[0] == 202
        status, error = await call(system, "POST", "/v1/track", key, {"event_name": "x", "metadata": nested(5)})
        assert status == 422 and "metadata.a.a.a.a is nested more than 4 levels" in error["error"]["message"]
        status, error = await call(system, "POST", "/v1/events", key, [ok, {"event_name": "x", "metadata": nested(5)}])
        assert status == 422 and error["error"]["message"].startswith("events[1].metadata")
        # A management body: the same bound, before any field is looked at.
        body = {"name": "deep", "interval": "1h", "grace": "5m", "extra": nested(4)}
        status, error = await call(system, "POST", "/v1/heartbeats", key, body)
        assert status == 422 and error["error"]["code"] == "invalid_body"
        assert "nested more than 4 levels" in error["error"]["message"]
        # Deeper than Python's own recursion limit, yet valid for the JSON parser (1024 levels).
        body = {"name": "deeper", "extra": nested(900)}
        status, error = await call(system, "POST", "/v1/heartbeats", key, body)
        assert status == 422 and error["error"]["code"] == "invalid_body"
