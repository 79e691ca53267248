"""Heartbeat pings and heron.heartbeat() against the fake server speaking the ping protocol."""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.request
import uuid
from typing import Any

import pytest
from heron_fake_server import API_KEY, HB_TOKEN, FakeHeron, Reply

import heron


@pytest.mark.parametrize(
    ("status", "path", "kind"),
    [
        ("success", "", "success"),
        ("ok", "", "success"),  # the SDK 0.1 spelling
        ("start", "/start", "start"),
        ("fail", "/fail", "fail"),
        (0, "/0", "exit:0"),
        (3, "/3", "exit:3"),
    ],
)
def test_each_status_has_its_path(server: FakeHeron, make_client: Any, status: str | int, path: str, kind: str) -> None:
    assert make_client().ping(HB_TOKEN, status) is True
    [req] = server.requests
    assert (req.method, req.path, req.status) == ("POST", f"/api/v1/hb/{HB_TOKEN}{path}", 200)
    [ping] = server.hb_pings
    assert (ping.token, ping.kind, ping.rid, ping.body) == (HB_TOKEN, kind, None, b"")


def test_a_full_ping_url_is_accepted(server: FakeHeron, make_client: Any) -> None:
    client = make_client(endpoint="http://127.0.0.1:9")  # not used: the URL names the server
    assert client.ping(f"{server.url}/api/v1/hb/{HB_TOKEN}", "start")
    assert [(p.token, p.kind) for p in server.hb_pings] == [(HB_TOKEN, "start")]


def test_pings_never_carry_the_api_key_and_need_none(server: FakeHeron, make_client: Any) -> None:
    assert make_client().ping(HB_TOKEN, body="log line")
    assert make_client(api_key=None).ping(HB_TOKEN)  # a disabled (keyless) client still pings
    assert len(server.hb_pings) == 2
    for ping in server.hb_pings:
        assert "authorization" not in ping.headers
        assert API_KEY not in repr(ping.headers)
        assert ping.headers["user-agent"].startswith("heron-python/")
    assert server.hb_pings[0].headers["content-type"] == "text/plain; charset=utf-8"


def test_rid_pairs_a_start_with_its_finish(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    rid = uuid.uuid4()
    assert client.ping(HB_TOKEN, "start", rid=rid)
    assert client.ping(HB_TOKEN, "fail", body="exit status 3", rid=str(rid))
    assert [p.rid for p in server.hb_pings] == [str(rid), str(rid)]
    [run] = server.hb_runs
    assert (run.token, run.rid, run.outcome) == (HB_TOKEN, str(rid), "fail")
    assert server.hb_pings[1].body == b"exit status 3"


def test_body_is_truncated_client_side(server: FakeHeron, make_client: Any) -> None:
    assert make_client().ping(HB_TOKEN, "fail", body="E" * 50_000)
    [ping] = server.hb_pings
    assert ping.received_bytes == heron.MAX_PING_BODY_BYTES == 10 * 1024
    assert ping.body == b"E" * 10 * 1024


def test_unknown_token_returns_false_without_retrying_or_leaking_the_token(
    server: FakeHeron, make_client: Any, caplog: Any
) -> None:
    client = make_client()
    with caplog.at_level(logging.DEBUG, logger="heron"):
        assert client.ping("not-a-known-token", "start") is False
    assert [(r.status, r.path) for r in server.requests] == [(404, "/api/v1/hb/not-a-known-token/start")]
    assert any("unknown heartbeat token" in r.getMessage() for r in caplog.records)
    assert not any("not-a-known-token" in r.getMessage() for r in caplog.records)
    stats = client.stats()
    assert (stats.pings_sent, stats.pings_dropped, stats.failed_requests) == (0, 1, 1)
    assert stats.last_error is not None and "404" in stats.last_error


def test_retries_5xx_and_dropped_connections_then_succeeds(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(503), Reply(drop=True))
    client = make_client()
    assert client.ping(HB_TOKEN, "start", body="b") is True
    assert [r.status for r in server.requests] == [503, 0, 200]
    assert all(r.raw == b"b" for r in server.requests)  # the same ping, resent
    stats = client.stats()
    assert (stats.pings_sent, stats.failed_requests) == (1, 2)


def test_gives_up_after_three_attempts(server: FakeHeron, make_client: Any, caplog: Any) -> None:
    server.default = Reply(500)
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="heron"):
        assert client.ping(HB_TOKEN) is False
    assert len(server.requests) == 3
    assert any("failed after 3 attempt(s)" in r.getMessage() for r in caplog.records)
    assert client.stats().pings_dropped == 1


def test_unreachable_server_returns_false(server: FakeHeron, make_client: Any) -> None:
    server.down()
    assert make_client().ping(HB_TOKEN, timeout=5) is False


def test_invalid_arguments_return_false_or_raise_in_debug(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    assert client.ping(HB_TOKEN, rid="nope") is False
    assert client.ping(HB_TOKEN, body=123) is False  # type: ignore[arg-type]
    assert server.requests == []
    with pytest.raises(ValueError):
        make_client(debug=True).ping(HB_TOKEN, rid="nope")


def test_module_ping_works_without_init(server: FakeHeron, monkeypatch: Any) -> None:
    assert heron.get_client() is None
    assert heron.ping(f"{server.url}/api/v1/hb/{HB_TOKEN}", "start")
    monkeypatch.setenv("HERON_ENDPOINT", server.url)
    assert heron.ping(HB_TOKEN, 0)
    assert [p.kind for p in server.hb_pings] == ["start", "exit:0"]


def test_fake_server_also_answers_get_and_head(server: FakeHeron) -> None:
    # The protocol allows GET/HEAD (for curl/wget users); the SDK always POSTs.
    with urllib.request.urlopen(f"{server.url}/api/v1/hb/{HB_TOKEN}/start") as resp:
        assert (resp.status, resp.read()) == (200, b"OK")
    head = urllib.request.Request(f"{server.url}/api/v1/hb/{HB_TOKEN}", method="HEAD")
    with urllib.request.urlopen(head) as resp:
        assert resp.status == 200
    assert [(p.method, p.kind) for p in server.hb_pings] == [("GET", "start"), ("HEAD", "success")]


# -- heron.heartbeat(): decorator and context manager ----------------------------------------


def _runs(server: FakeHeron) -> list[tuple[str, str | None]]:
    return [(p.kind, p.rid) for p in server.hb_pings]


def test_decorator_success(server: FakeHeron, make_client: Any) -> None:
    client = make_client()

    @client.heartbeat(HB_TOKEN)
    def job(x: int) -> int:
        return x * 2

    assert job(21) == 42 and job.__name__ == "job"
    assert job(1) == 2
    (k1, rid1), (k2, rid2), (k3, rid3), (k4, rid4) = _runs(server)
    assert (k1, k2, k3, k4) == ("start", "success", "start", "success")
    assert rid1 == rid2 and rid3 == rid4 and rid1 != rid3  # a fresh rid per run
    assert [run.outcome for run in server.hb_runs] == ["success", "success"]


def test_decorator_failure_reraises_and_reports_the_exception(server: FakeHeron, make_client: Any) -> None:
    client = make_client()

    @client.heartbeat(HB_TOKEN)
    def job() -> None:
        raise RuntimeError("database unreachable")

    with pytest.raises(RuntimeError, match="database unreachable"):
        job()
    start, fail = server.hb_pings
    assert (start.kind, fail.kind, start.rid) == ("start", "fail", fail.rid)
    text = fail.body.decode()
    assert text.startswith("RuntimeError: database unreachable\n")
    assert "Traceback (most recent call last)" in text and "in job" in text


def test_context_manager_success_and_failure(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    with client.heartbeat(HB_TOKEN) as hb:
        rid = hb.rid
        assert rid is not None and server.hb_pings[-1].kind == "start"
    assert hb.rid is None
    with pytest.raises(KeyError), client.heartbeat(HB_TOKEN):
        raise KeyError("missing")
    assert [p.kind for p in server.hb_pings] == ["start", "success", "start", "fail"]
    assert server.hb_pings[1].rid == rid
    assert server.hb_pings[3].body.startswith(b"KeyError: 'missing'")


def test_sys_exit_code_is_the_outcome(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    with pytest.raises(SystemExit), client.heartbeat(HB_TOKEN):
        sys.exit(0)
    with pytest.raises(SystemExit), client.heartbeat(HB_TOKEN):
        sys.exit(4)
    assert [p.kind for p in server.hb_pings] == ["start", "success", "start", "exit:4"]


def test_heartbeat_never_breaks_the_job_when_heron_is_down(server: FakeHeron, make_client: Any) -> None:
    server.down()
    client = make_client()

    @client.heartbeat(HB_TOKEN)
    def job() -> str:
        return "done"

    assert job() == "done"
    assert client.stats().pings_dropped == 2


def test_module_decorator_applied_before_init_uses_the_later_client(server: FakeHeron) -> None:
    @heron.heartbeat(HB_TOKEN)
    def job() -> None:
        pass

    heron.init(API_KEY, endpoint=server.url)
    try:
        job()
        assert heron.stats().pings_sent == 2
    finally:
        heron.close()
    assert [p.kind for p in server.hb_pings] == ["start", "success"]


# -- asyncio ---------------------------------------------------------------------------------


async def test_async_ping_is_awaitable_and_fire_and_forget_is_delivered(server: FakeHeron) -> None:
    client = heron.AsyncClient(API_KEY, endpoint=server.url, backoff_base=0.01)
    assert await client.ping(HB_TOKEN, "start") is True
    assert await client.ping("unknown-token") is False
    client.ping(HB_TOKEN, 0)  # not awaited: still sent, and aclose() waits for it
    assert await client.aclose()
    assert [p.kind for p in server.hb_pings] == ["start", "exit:0"]


def test_async_client_ping_outside_a_loop(server: FakeHeron) -> None:
    client = heron.AsyncClient(API_KEY, endpoint=server.url)
    done = client.ping(HB_TOKEN)

    async def result() -> bool:
        return await done

    assert asyncio.run(result()) is True
    assert [p.kind for p in server.hb_pings] == ["success"]
    client.client.close()


async def test_async_context_manager_and_decorator(server: FakeHeron) -> None:
    async with heron.AsyncClient(API_KEY, endpoint=server.url, backoff_base=0.01) as client:
        async with client.heartbeat(HB_TOKEN) as hb:
            assert hb.rid is not None
        with pytest.raises(ValueError, match="bad row"):
            async with client.heartbeat(HB_TOKEN):
                raise ValueError("bad row")

        @client.heartbeat(HB_TOKEN)
        async def worker(n: int) -> int:
            return n + 1

        @heron.heartbeat(f"{server.url}/api/v1/hb/{HB_TOKEN}")  # module-level, async def
        async def failing() -> None:
            raise OSError("disk full")

        assert await worker(1) == 2
        with pytest.raises(OSError):
            await failing()
    kinds = [p.kind for p in server.hb_pings]
    assert kinds == ["start", "success", "start", "fail", "start", "success", "start", "fail"]
    assert server.hb_pings[3].body.startswith(b"ValueError: bad row\n")
    assert server.hb_pings[7].body.startswith(b"OSError: disk full\n")
    assert len(server.hb_runs) == 4


async def test_async_pings_do_not_block_the_event_loop(server: FakeHeron) -> None:
    server.then(Reply(hang=True))
    client = heron.AsyncClient(API_KEY, endpoint=server.url, request_timeout=60, backoff_base=0.01)
    try:
        pinging = asyncio.ensure_future(client.ping(HB_TOKEN, "start"))
        await asyncio.to_thread(server.wait_hanging, 1)
        ticked = asyncio.Event()
        asyncio.get_running_loop().call_soon(ticked.set)
        await ticked.wait()  # the loop runs while the ping waits on the stuck server
        assert not pinging.done()
        server.release.set()  # the stuck request is dropped; the retry succeeds
        assert await pinging is True
    finally:
        server.release.set()
        await client.aclose()
    assert [p.kind for p in server.hb_pings] == ["start"]
