from __future__ import annotations

import asyncio

from heron_fake_server import API_KEY, HB_TOKEN, FakeHeron, Reply

import heron


async def test_async_client_delivers(server: FakeHeron) -> None:
    async with heron.AsyncClient(API_KEY, service="svc", endpoint=server.url, flush_interval=60) as client:
        client.track("async.event", {"n": 1})  # plain call, no await
        assert await client.ping(HB_TOKEN, "start")
        assert await client.flush(timeout=10)
        assert client.stats().sent == 1
    assert server.names() == ["async.event"]
    assert server.events[0]["service"] == "svc"
    assert [(p.token, p.kind) for p in server.hb_pings] == [(HB_TOKEN, "start")]
    assert client.stats().pings_sent == 1


async def test_flush_does_not_block_the_event_loop(server: FakeHeron) -> None:
    server.then(Reply(hang=True))
    client = heron.AsyncClient(API_KEY, endpoint=server.url, request_timeout=60, backoff_base=0.01)
    try:
        client.track("stuck")
        flushing = asyncio.create_task(client.flush(timeout=30))
        # While flush() waits on the stuck server, the loop keeps running other work:
        await asyncio.to_thread(server.wait_hanging, 1)
        ticked = asyncio.Event()
        asyncio.get_running_loop().call_soon(ticked.set)
        await ticked.wait()
        assert not flushing.done()
        server.release.set()  # the stuck request fails, the retry succeeds
        assert await flushing is True
        assert server.names() == ["stuck"]
    finally:
        server.release.set()
        assert await client.aclose(timeout=5)


async def test_aclose_is_idempotent_and_reports(server: FakeHeron) -> None:
    client = heron.AsyncClient(API_KEY, endpoint=server.url, flush_interval=60)
    client.track("e")
    assert await client.aclose()
    assert await client.aclose()
    client.track("ignored")
    assert client.stats().dropped_disabled == 1
    assert server.names() == ["e"]
