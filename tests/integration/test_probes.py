"""HTTP probes end to end: the API, a prober probing local endpoints (real aiohttp servers, a raw
TCP listener that never speaks TLS, a self-signed TLS server, a closed port), the detector judging
the results — status rules, redirects not followed, header/body/regex/JSON criteria, latency,
failures named by phase, and "continuously down for ``timeout``" (a flap opens nothing)."""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from heron_common.service import PG
from heron_common.settings import Settings
from tests.integration.test_triggers import call
from tests.support.fakes import FakeReceiver
from tests.support.system import System, running_system
from tests.support.waiting import eventually


def fast(settings: Settings) -> Settings:
    """Probe minimums on a scale of tenths of a second."""
    return replace(settings, probe_min_interval=0.05, probe_min_timeout=0.1, probe_poll_interval=0.02)


@dataclass
class Target:
    """A local HTTP endpoint to probe, counting hits per path and requests in flight per path."""

    status: int = 200  # what /toggle answers
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    most_in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    starts: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    never: asyncio.Event = field(default_factory=asyncio.Event)  # /hang waits for it (never set)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.starts[path].append(asyncio.get_running_loop().time())
        self.in_flight[path] += 1
        self.most_in_flight[path] = max(self.most_in_flight[path], self.in_flight[path])
        try:
            return await self.answer(request)
        finally:
            self.in_flight[path] -= 1

    async def answer(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name in ("ok", "landing"):
            return web.Response(text="all good")
        if name == "status":
            return web.Response(status=int(request.query["code"]), text="as asked")
        if name == "toggle":
            return web.Response(status=self.status, text="toggle")
        if name == "redirect":
            raise web.HTTPFound("/p/landing")  # no probe targets it: any hit there followed a redirect
        if name == "json":
            body = {"status": "ok", "checks": [{"name": "db", "up": True}], "version": "1.2.3"}
            return web.json_response(body, headers={"X-Version": "1.2.3-build7"})
        if name == "slow":
            await asyncio.sleep(float(request.query["s"]))  # the latency under test
            return web.Response(text="late")
        if name == "hang":
            await self.never.wait()
        if name == "echo":
            return web.json_response({"method": request.method, "auth": request.headers.get("Authorization")})
        if name.startswith("n"):  # many distinct probes for the two-prober test
            await asyncio.sleep(0.05)
            return web.Response(text="ok")
        return web.Response(status=404)

    async def start(self) -> Target:
        app = web.Application()
        app.router.add_route("*", "/p/{name}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/p"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self.never.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = await Target().start()
    yield t
    await t.stop()


async def new_probe(system: System, key: str, **fields: Any) -> dict[str, Any]:
    body = {"service": "API", "interval": 0.2, "request_timeout": 0.2, "timeout": 60, **fields}
    status, probe = await call(system, "POST", "/v1/probes", key, body)
    assert status == 201, probe
    return probe


async def settled(system: System, key: str, probe_id: int, accept: Any = None, timeout: float = 20.0) -> dict:
    """The probe once it has a result (and ``accept(probe)`` holds)."""
    _, found = await eventually(
        lambda: call(system, "GET", f"/v1/probes/{probe_id}", key),
        lambda r: r[1]["last_result"] is not None and (accept is None or accept(r[1])),
        timeout=timeout,
    )
    return found


async def test_the_api_checks_every_field_and_keeps_credentials_out_of_sight(settings: Settings) -> None:
    async with running_system(fast(settings), services=("detector",)) as system:
        _, key = await system.create_project("probes-api")
        base = {"url": "https://api.example.com/health?token=abc", "service": "API"}
        cases = [
            ({"service": "API"}, "url"),
            ({**base, "url": "http://10.1.2.3/"}, "url"),
            ({**base, "url": "http://169.254.169.254/latest/meta-data"}, "url"),
            ({**base, "service": None}, "service"),
            ({**base, "method": "TRACE"}, "method"),
            ({**base, "body_regex": "(", "method": "GET"}, "body_regex"),
            ({**base, "json_path": "$.a[", "json_equals": 1, "method": "GET"}, "json_path"),
            ({**base, "timeout": 0.01}, "timeout"),
            ({**base, "interval": 0.01}, "interval"),
            ({**base, "headers": {"X": "a\nb"}}, "headers"),
            ({**base, "colour": "blue"}, "colour"),
        ]
        for body, field_name in cases:
            status, answer = await call(system, "POST", "/v1/probes", key, body)
            assert status == 422, (body, answer)
            assert field_name in answer["error"]["message"], answer

        status, made = await call(
            system, "POST", "/v1/probes", key, {**base, "headers": {"Authorization": "Bearer t0p", "Accept": "*/*"}}
        )
        assert status == 201, made
        assert made["name"] == "https://api.example.com/health"  # no query: tokens live there
        assert made["method"] == "HEAD" and made["interval"] == 60 and made["timeout"] == 300
        assert made["expected_status"] == [200, 204] and made["state"] == "new"
        assert made["headers"] == {"Authorization": "***", "Accept": "*/*"}
        # A read-modify-write keeps the hidden value; another project cannot see the probe.
        status, changed = await call(
            system, "PATCH", f"/v1/probes/{made['id']}", key, {"headers": made["headers"], "interval": 120}
        )
        assert status == 200 and changed["interval"] == 120, changed
        pool_row = await system.ingest.app[PG].fetchrow("SELECT config FROM monitors WHERE id = $1", made["id"])
        assert pool_row["config"]["headers"]["Authorization"] == "Bearer t0p"
        _, other = await system.create_project("other")
        assert (await call(system, "GET", f"/v1/probes/{made['id']}", other))[0] == 404
        status, listed = await call(system, "GET", "/v1/probes", key)
        assert status == 200 and [p["id"] for p in listed] == [made["id"]]
        assert (await call(system, "PATCH", f"/v1/probes/{made['id']}", key, {"expected_location": "/x"}))[0] == 422
        assert (await call(system, "DELETE", f"/v1/probes/{made['id']}", key))[0] == 204
        assert (await call(system, "GET", f"/v1/probes/{made['id']}", key))[0] == 404


async def test_status_rules_redirects_and_body_criteria(settings: Settings, target: Target) -> None:
    async with running_system(fast(settings), services=("detector", "prober")) as system:
        _, key = await system.create_project("probes-rules")
        u = target.url
        get = {"method": "GET"}
        cases: list[tuple[dict[str, Any], bool, str | None]] = [
            ({"url": f"{u}/ok"}, True, None),
            ({"url": f"{u}/status?code=204"}, True, None),
            ({"url": f"{u}/status?code=503"}, False, "status 503 (expected 200 or 204)"),
            ({"url": f"{u}/status?code=201"}, False, "status 201 (expected 200 or 204)"),
            ({"url": f"{u}/status?code=503", "expected_status": 503}, True, None),
            ({"url": f"{u}/redirect"}, False, "status 302 (expected 200 or 204), redirecting to /p/landing"),
            ({"url": f"{u}/redirect", "expected_status": 302, "expected_location": "/p/landing"}, True, None),
            (
                {"url": f"{u}/redirect", "expected_status": 302, "expected_location": "/p/elsewhere"},
                False,
                "redirects to '/p/landing' (expected '/p/elsewhere')",
            ),
            ({"url": f"{u}/json", "header_name": "x-version", "header_contains": "1.2.3"}, True, None),
            (
                {"url": f"{u}/json", "header_name": "X-Version", "header_contains": "2.0"},
                False,
                "X-Version is '1.2.3-build7', without '2.0'",
            ),
            ({"url": f"{u}/json", "body_contains": '"ok"', **get}, True, None),
            ({"url": f"{u}/json", "body_contains": "degraded", **get}, False, "body does not contain 'degraded'"),
            ({"url": f"{u}/json", "body_regex": r"\d+\.\d+\.\d+", **get}, True, None),
            ({"url": f"{u}/json", "json_path": "$.checks[0].up", "json_equals": True, **get}, True, None),
            (
                {"url": f"{u}/json", "json_path": "$.status", "json_equals": "down", **get},
                False,
                '$.status is "ok" (expected "down")',
            ),
            ({"url": f"{u}/ok", "json_path": "$.a", "json_equals": 1, **get}, False, "body is not JSON"),
            (
                {"url": f"{u}/echo", "method": "POST", "body": "{}", "headers": {"Authorization": "Bearer x"}},
                True,
                None,
            ),
        ]
        made = [(await new_probe(system, key, **fields), up, reason) for fields, up, reason in cases]
        for probe, up, reason in made:
            seen = await settled(system, key, probe["id"])
            result = seen["last_result"]
            assert (result["up"], result["reason"]) == (up, reason), (probe["url"], result)
            assert seen["state"] == ("up" if up else "failing"), seen
            assert result["timings"]["total"] is not None and result["timings"]["connect"] is not None
            assert result["timings"]["first_byte"] is not None
        status, results = await call(system, "GET", f"/v1/probes/{made[0][0]['id']}/results", key)
        assert status == 200 and results[0]["up"] is True and results[0]["status"] == 200
    # Redirects are reported, never followed: the page they point to was never requested.
    assert target.hits["/p/redirect"] >= 3 and target.hits["/p/landing"] == 0


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    args = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run([*args, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_latency_timeouts_and_failures_are_named_by_phase(
    settings: Settings, target: Target, tmp_path: Path
) -> None:
    # A listener that accepts and never answers: the TLS handshake never completes.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    # A port nothing listens on.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    # TLS with a certificate no CA signed.
    tls_app = web.Application()

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    tls_app.router.add_get("/", hello)
    tls_runner = web.AppRunner(tls_app, handle_signals=False)
    await tls_runner.setup()
    tls_site = web.TCPSite(tls_runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await tls_site.start()
    tls_port = tls_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with running_system(fast(settings), services=("detector", "prober")) as system:
            _, key = await system.create_project("probes-phases")
            u = target.url
            slow = {"url": f"{u}/slow?s=0.3", "interval": 1, "request_timeout": 1, "max_latency": 0.1}
            cases = [
                (slow, "slow: answered in", None),
                ({"url": f"{u}/hang", "request_timeout": 0.2}, "no response within 200 ms", "first_byte"),
                ({"url": f"https://127.0.0.1:{silent_port}/"}, "TLS handshake timed out after 200 ms", "tls"),
                ({"url": f"http://127.0.0.1:{closed_port}/"}, "connection refused", None),
                ({"url": f"https://localhost:{tls_port}/"}, "TLS certificate not accepted", "tls"),
            ]
            made = [(await new_probe(system, key, **fields), reason, phase) for fields, reason, phase in cases]
            for probe, reason, phase in made:
                seen = await settled(system, key, probe["id"])
                result = seen["last_result"]
                assert result["up"] is False and result["reason"].startswith(reason), (probe["url"], result)
                timings = result["timings"]
                assert timings["total"] is not None
                if phase == "tls":  # TCP connected, then the handshake: timed apart
                    assert timings["connect"] is not None
                if phase == "first_byte":
                    assert timings["connect"] is not None and timings["first_byte"] is None
            tls_probe = made[4][0]
            assert (await settled(system, key, tls_probe["id"]))["last_result"]["timings"]["dns"] is not None
    finally:
        silent.close()
        await tls_runner.cleanup()


async def test_down_continuously_for_the_timeout_opens_one_incident_and_up_resolves(
    settings: Settings, target: Target
) -> None:
    receiver = await FakeReceiver().start()
    try:
        async with running_system(fast(settings)) as system:
            _, key = await system.create_project("probes-incident")
            status, _ = await call(system, "POST", "/v1/webhooks", key, {"url": receiver.url, "topics": ["*"]})
            assert status == 201
            target.status = 503
            probe = await new_probe(system, key, url=f"{target.url}/toggle", name="API health", timeout=0.6)
            # Failing first: results come, no incident yet.
            await settled(system, key, probe["id"], lambda p: p["state"] == "failing")
            down = await settled(system, key, probe["id"], lambda p: p["state"] == "down")
            assert down["failing_since"] is not None
            _, [incident] = await eventually(
                lambda: call(system, "GET", "/v1/incidents", key), lambda r: len(r[1]) == 1
            )
            assert incident["kind"] == "probe" and incident["title"] == "API health is down"
            details = incident["details"]
            assert details["reason"] == "status 503 (expected 200 or 204)" and details["status"] == 503
            assert details["url"] == f"{target.url}/toggle" and details["failures"] >= 2
            assert details["timings"]["total"] is not None
            assert details["summary"].startswith("status 503 (expected 200 or 204); ")
            target.status = 200
            await settled(system, key, probe["id"], lambda p: p["state"] == "up")
            _, [resolved] = await eventually(
                lambda: call(system, "GET", "/v1/incidents", key), lambda r: r[1][0]["resolved_at"] is not None
            )
            assert resolved["id"] == incident["id"]
            got = await receiver.wait_for(4)
            topics = collections.Counter(d.json["topic"] for d in got)
            assert topics == {"incident.opened": 1, "probe.down": 1, "incident.resolved": 1, "probe.up": 1}, topics
            status, flips = await call(system, "GET", f"/v1/probes/{probe['id']}/flips", key)
            assert [(f["from_state"], f["to_state"]) for f in reversed(flips)] == [
                ("new", "failing"),
                ("failing", "down"),
                ("down", "up"),
            ]
    finally:
        await receiver.stop()


async def test_a_flap_shorter_than_the_timeout_opens_nothing(settings: Settings, target: Target) -> None:
    async with running_system(fast(settings)) as system:
        _, key = await system.create_project("probes-flap")
        probe = await new_probe(system, key, url=f"{target.url}/toggle", timeout=30)
        await settled(system, key, probe["id"], lambda p: p["state"] == "up")
        target.status = 500
        await settled(system, key, probe["id"], lambda p: p["state"] == "failing")
        failing = await settled(system, key, probe["id"], lambda p: p["last_result"]["reason"] is not None)
        assert failing["failing_since"] is not None
        target.status = 200
        await settled(system, key, probe["id"], lambda p: p["state"] == "up")
        assert (await call(system, "GET", "/v1/incidents", key))[1] == []
        # Paused: probed no more, judged no more; resumed: back from new.
        status, paused = await call(system, "POST", f"/v1/probes/{probe['id']}/pause", key)
        assert status == 200 and paused["state"] == "paused"
        status, resumed = await call(system, "POST", f"/v1/probes/{probe['id']}/resume", key)
        # new, or up already if a run came back before this answer was read
        assert status == 200 and resumed["state"] in ("new", "up"), resumed
        await settled(system, key, probe["id"], lambda p: p["state"] == "up")


async def test_private_targets_are_refused_unless_allow_listed(settings: Settings, target: Target) -> None:
    """The API takes a host name (judged when it resolves); the prober's guard refuses it there."""
    strict = replace(fast(settings), outbound_allow_cidrs=())
    async with running_system(fast(settings), services=("detector",)) as system:
        from heron_prober.app import create_app as prober_app
        from tests.support.system import start

        prober = await start(prober_app(strict))
        try:
            _, key = await system.create_project("probes-guard")
            port = target.url.split(":")[2].split("/")[0]
            probe = await new_probe(system, key, url=f"http://localhost:{port}/p/ok")
            seen = await settled(system, key, probe["id"])
            reason = seen["last_result"]["reason"]
            assert reason.startswith("refused: localhost resolves to") and "loopback" in reason, reason
            assert target.hits["/p/ok"] == 0
        finally:
            await prober.runner.cleanup()
