from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Any

import pytest
from heron_fake_server import API_KEY, HB_TOKEN, FakeHeron, Reply

import heron


def test_delivers_events_with_the_wire_format(server: FakeHeron, make_client: Any) -> None:
    client = make_client(service="billing", environment="prod")
    client.track("payment.completed", {"amount": 42, "currency": "EUR"}, timestamp=1732300000.123)
    client.track("payment.failed", service="checkout", environment="staging")
    assert client.flush(timeout=10)

    [req] = server.event_requests()
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"].startswith("heron-python/")
    assert not req.gzipped
    first, second = req.body["events"]
    assert first == {
        "event_name": "payment.completed",
        "timestamp": 1732300000.123,
        "service": "billing",
        "environment": "prod",
        "metadata": {"amount": 42, "currency": "EUR"},
    }
    assert second["service"] == "checkout" and second["environment"] == "staging"
    assert second["metadata"] == {}
    assert isinstance(second["timestamp"], float)
    stats = client.stats()
    assert (stats.sent, stats.queued, stats.dropped, stats.failed_requests) == (2, 0, 0, 0)


def test_every_event_keeps_its_own_timestamp(server: FakeHeron, make_client: Any) -> None:
    client = make_client(flush_interval=60)
    for i in range(5):
        client.track("tick", timestamp=1000.0 + i * 60)
    client.track("aware", timestamp=dt.datetime(2024, 11, 22, 18, 26, 40, tzinfo=dt.UTC))
    client.track("int", timestamp=1700000000)
    assert client.flush(timeout=10)
    [req] = server.event_requests()  # one batch...
    stamps = [e["timestamp"] for e in req.body["events"]]
    assert stamps == [1000.0, 1060.0, 1120.0, 1180.0, 1240.0, 1732300000.0, 1700000000.0]  # ...exact times


def test_size_trigger_and_batch_limit(server: FakeHeron, make_client: Any) -> None:
    client = make_client(batch_size=10, flush_interval=60)  # the time trigger is out of the picture
    for i in range(25):
        client.track("e", {"i": i})
    assert server.wait_events(20)  # two full batches left without any flush()
    assert client.flush(timeout=10)
    sizes = [len(r.body["events"]) for r in server.event_requests()]
    assert sizes == [10, 10, 5]
    assert [e["metadata"]["i"] for e in server.events] == list(range(25))


def test_time_trigger(server: FakeHeron, make_client: Any) -> None:
    client = make_client(flush_interval=0.05, batch_size=100)
    client.track("lonely")
    assert server.wait_events(1)  # sent by the timer, no flush() call


def test_gzip_above_threshold(server: FakeHeron, make_client: Any) -> None:
    client = make_client(gzip_threshold=4096, flush_interval=60)
    client.track("small", {"x": 1})
    assert client.flush(timeout=10)
    for i in range(20):
        client.track("big", {"i": i, "text": "lorem ipsum " * 40})
    assert client.flush(timeout=10)
    small, big = server.event_requests()
    assert not small.gzipped and "content-encoding" not in small.headers
    assert big.gzipped and big.headers["content-encoding"] == "gzip"
    assert len(big.raw) < len(json.dumps(big.body))  # it was really compressed
    assert [e["metadata"]["i"] for e in big.body["events"]] == list(range(20))


def test_oversize_metadata_is_replaced(server: FakeHeron, make_client: Any, caplog: Any) -> None:
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="heron"):
        client.track("huge", {"blob": "x" * 9000})
        client.track("fine", {"blob": "x" * 8000})
        assert client.flush(timeout=10)
    huge, fine = server.events
    assert huge["metadata"] == {"_heron_dropped": "metadata too large"}
    assert fine["metadata"] == {"blob": "x" * 8000}
    assert client.stats().metadata_dropped == 1
    assert any("metadata of event 'huge'" in r.getMessage() for r in caplog.records)


def test_oversize_metadata_is_counted_once_across_retries(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(500), Reply(500))
    client = make_client()
    client.track("huge", {"blob": "x" * 9000})
    assert client.flush(timeout=10)
    assert [r.status for r in server.event_requests()] == [500, 500, 200]
    assert server.events[0]["metadata"] == {"_heron_dropped": "metadata too large"}
    assert client.stats().metadata_dropped == 1


def test_metadata_is_copied_and_non_json_values_are_stringified(server: FakeHeron, make_client: Any) -> None:
    client = make_client(flush_interval=60)
    meta: dict[str, Any] = {"when": dt.date(2024, 1, 2), "tags": {"a"}}
    client.track("e", meta)
    meta["late"] = "mutation"  # after track(): must not leak into the event
    assert client.flush(timeout=10)
    assert server.events[0]["metadata"] == {"when": "2024-01-02", "tags": ["a"]}


def test_track_never_raises_on_bad_input(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    circular: dict[str, Any] = {}
    circular["self"] = circular
    client.track(None)
    client.track("")
    client.track("e", metadata=42)
    client.track("e", timestamp="yesterday")
    client.track("e", service=3)
    client.track("e", {"x": circular})  # detected in the sender
    client.track("e", timestamp=float("nan"))  # detected in the sender
    client.track("n" * 201)  # the server's limits: detected in the sender...
    client.track("   ")
    client.track("e", environment="e" * 201)
    assert client.ping("") is False  # pings are sent synchronously: invalid ones are refused here
    assert client.ping(HB_TOKEN, status="maybe") is False
    client.track("good")
    client.track("n" * 200, service="s" * 200)
    assert client.flush(timeout=10)
    assert server.names() == ["good", "n" * 200]  # ...so the valid events of the batch still go
    assert len(server.event_requests()) == 1
    stats = client.stats()
    assert stats.dropped_invalid == 10
    assert stats.pings_dropped == 2
    assert server.hb_pings == []


def test_debug_mode_raises_on_bad_input(make_client: Any) -> None:
    client = make_client(debug=True)
    with pytest.raises(TypeError):
        client.track(None)
    with pytest.raises(ValueError):
        client.track("")
    with pytest.raises(TypeError):
        client.track("e", metadata=[1, 2])
    with pytest.raises(ValueError):
        client.ping("hb", status="maybe")
    with pytest.raises(ValueError, match="longer than 200"):
        client.track("n" * 201)
    with pytest.raises(ValueError, match="blank"):
        client.track("  ")


def test_invalid_options_raise_at_construction() -> None:
    with pytest.raises(ValueError):
        heron.Client("k", endpoint="ftp://example.com")
    with pytest.raises(ValueError):
        heron.Client("k", batch_size=1001)
    with pytest.raises(TypeError):
        heron.Client("k", flush_interval="1")
    with pytest.raises(TypeError):
        heron.Client("k", unknown_option=True)


def test_track_does_not_block_while_the_server_is_stuck(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(hang=True))
    client = make_client(request_timeout=120, batch_size=1)
    client.track("first")
    assert server.wait_hanging(1)  # the sender is now inside a request the server won't answer
    for i in range(1000):
        client.track("meanwhile", {"i": i})
    # We got here while the server still holds the request (it only lets go when we say so)
    # and the client has neither failed nor finished it: track() did not wait for the network.
    assert server.hanging == 1
    stats = client.stats()
    assert stats.sent == 0 and stats.failed_requests == 0
    assert stats.queued == 1001


def test_slow_server_times_out_and_is_retried(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(hang=True))  # longer than the client's timeout: it never answers
    client = make_client(request_timeout=0.2)
    client.track("patient")
    assert client.flush(timeout=15)
    assert server.names() == ["patient"]
    stats = client.stats()
    assert stats.failed_requests >= 1 and "timed out" in (stats.last_error or "")


def test_down_server_then_back_loses_nothing(server: FakeHeron, make_client: Any, wait: Any) -> None:
    server.down()
    client = make_client(max_queue_size=1000)
    for i in range(300):
        client.track("e", {"i": i})
    assert wait(lambda: client.stats().failed_requests >= 3)  # refused, and retried
    assert "Connection refused" in (client.stats().last_error or "")
    assert client.stats().queued == 300
    server.up()
    assert client.flush(timeout=15)
    assert sorted(e["metadata"]["i"] for e in server.events) == list(range(300))  # exactly once
    stats = client.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (300, 0, 0)


def test_503_honours_retry_after(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(503, {"Retry-After": "0"}, ("unavailable", "retry")))
    client = make_client(backoff_base=60, backoff_max=60)  # only Retry-After can make this quick
    client.track("e")
    assert client.flush(timeout=10)
    assert [r.status for r in server.event_requests()] == [503, 200]


def test_server_side_metadata_413_drops_only_the_offending_event(server: FakeHeron, make_client: Any) -> None:
    server.metadata_limit = 50  # stricter than the client's 8 KiB check: the server has the last word
    client = make_client(flush_interval=60)
    client.track("e", {"i": 0})
    client.track("e", {"i": 1, "pad": "p" * 100})
    client.track("e", {"i": 2})
    assert client.flush(timeout=10) is False  # one event was rejected
    # The 413 batch is split until the offending event is alone; the others are delivered.
    assert [e["metadata"]["i"] for e in server.events] == [0, 2]
    assert [r.status for r in server.event_requests()][:1] == [413]
    assert client.stats().dropped_rejected == 1


def test_retries_on_500(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(500), Reply(503))
    client = make_client()
    client.track("e")
    assert client.flush(timeout=15)
    assert [r.status for r in server.event_requests()] == [500, 503, 200]
    assert server.names() == ["e"]
    assert client.stats().failed_requests == 2


def test_a_retry_sends_the_first_tries_idempotency_key(server: FakeHeron, make_client: Any) -> None:
    # If the first try was stored but its answer lost, the server counts the retry's events once.
    server.then(Reply(503, {"Retry-After": "0"}), Reply(drop=True))
    client = make_client(flush_interval=60)
    client.track("a")
    client.track("b")
    assert client.flush(timeout=15)
    client.track("c")
    assert client.flush(timeout=15)
    requests = server.event_requests()
    keys = [r.headers.get("idempotency-key") for r in requests]
    assert [r.status for r in requests] == [503, 0, 200, 200]
    assert keys[0] and keys[0] == keys[1] == keys[2]  # the same batch, retried
    assert keys[3] and keys[3] != keys[0]  # a new batch, a new key


def test_a_split_batch_gets_new_keys(server: FakeHeron, make_client: Any) -> None:
    # A 413 stored nothing: the halves are new requests, and must not reuse the positions' keys.
    server.then(Reply(413, error=("too_large", "body too large")))
    client = make_client(flush_interval=60)
    for i in range(4):
        client.track("e", {"i": i})
    assert client.flush(timeout=10)
    keys = [r.headers.get("idempotency-key") for r in server.event_requests()]
    assert len(keys) == 3 and len(set(keys)) == 3


def test_429_honours_retry_after(server: FakeHeron, make_client: Any, caplog: Any) -> None:
    server.then(Reply(429, {"Retry-After": "1"}, ("rate_limited", "slow down")))
    client = make_client(backoff_base=0.001, backoff_max=0.001)
    with caplog.at_level(logging.WARNING, logger="heron"):
        client.track("e")
        assert client.flush(timeout=15)  # flush() does not cut a server-requested wait short
    limited, ok = server.event_requests()
    assert (limited.status, ok.status) == (429, 200)
    assert ok.at - limited.at >= 0.9  # waited for Retry-After, not for the 1 ms backoff
    assert server.names() == ["e"]
    assert any("rate limited" in r.getMessage() for r in caplog.records)


def test_401_is_not_retried_and_is_logged_once(server: FakeHeron, make_client: Any, caplog: Any) -> None:
    server.api_key = "something-else"
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="heron"):
        client.track("a")
        client.track("b")
        assert client.flush(timeout=10) is False  # the events were dropped
        client.track("c")
        assert client.flush(timeout=10) is False
    assert [r.status for r in server.requests] == [401, 401]  # one request per batch, no retry
    stats = client.stats()
    assert stats.dropped_rejected == 3 and stats.dropped == 3 and stats.sent == 0
    assert "401" in (stats.last_error or "")
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in messages if "rejected the API key (401" in m]) == 1


def test_422_drops_batch_without_retry(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(422, error=("invalid", "nope")))
    client = make_client()
    client.track("bad")
    assert client.flush(timeout=10) is False
    client.track("good")
    assert client.flush(timeout=10)
    assert [r.status for r in server.requests] == [422, 200]
    assert client.stats().last_error == "HTTP 422: invalid: nope"


def test_413_splits_the_batch(server: FakeHeron, make_client: Any) -> None:
    server.then(Reply(413, error=("too_large", "body too large")))
    client = make_client(flush_interval=60)
    for i in range(8):
        client.track("e", {"i": i})
    assert client.flush(timeout=10)
    sizes = [len(r.body["events"]) for r in server.event_requests()]
    assert sizes[0] == 8 and sizes[1] == 4
    assert [e["metadata"]["i"] for e in server.events] == list(range(8))


def test_max_batch_bytes_splits_requests(server: FakeHeron, make_client: Any) -> None:
    client = make_client(max_batch_bytes=4096, flush_interval=60)
    for i in range(10):
        client.track("e", {"i": i, "pad": "p" * 1000})
    assert client.flush(timeout=10)
    requests = server.event_requests()
    assert len(requests) >= 3
    assert all(len(json.dumps(r.body)) <= 4096 + 200 for r in requests)
    assert [e["metadata"]["i"] for e in server.events] == list(range(10))


def test_full_buffer_drops_oldest_and_counts(server: FakeHeron, make_client: Any, caplog: Any) -> None:
    server.then(Reply(hang=True))
    client = make_client(max_queue_size=10, batch_size=5, request_timeout=120)
    with caplog.at_level(logging.WARNING, logger="heron"):
        client.track("e", {"i": 0})
        assert server.wait_hanging(1)  # event 0 is in flight; the sender is stuck
        for i in range(1, 31):
            client.track("e", {"i": i})
        stats = client.stats()
        # 0 in flight + the 10 newest buffered; the 20 oldest of the rest are gone.
        assert (stats.dropped_queue_full, stats.dropped, stats.queued) == (20, 20, 11)
        server.release.set()  # the stuck request fails without an answer...
        # ...and event 0, waiting for a retry, counts against the full buffer: it is the oldest
        # so it goes too. flush() reports the loss.
        assert client.flush(timeout=15) is False
    assert sorted(e["metadata"]["i"] for e in server.events) == list(range(21, 31))
    stats = client.stats()
    assert (stats.sent, stats.dropped_queue_full, stats.dropped, stats.queued) == (10, 21, 21, 0)
    assert any("buffer full" in r.getMessage() for r in caplog.records)


def test_retried_batch_counts_against_the_buffer(server: FakeHeron, make_client: Any, wait: Any) -> None:
    server.down()
    client = make_client(max_queue_size=20, batch_size=10)
    for i in range(10):
        client.track("e", {"i": i})
    assert wait(lambda: client.stats().failed_requests >= 1)  # 0..9 are now a batch being retried
    for i in range(10, 40):
        client.track("e", {"i": i})
    server.up()
    client.flush(timeout=15)  # True or False depending on whether the drop happened before it
    # 40 tracked, room for 20: the 20 oldest (including the retried batch) went.
    assert sorted(e["metadata"]["i"] for e in server.events) == list(range(20, 40))
    assert client.stats().dropped_queue_full == 20


def test_many_threads_exactly_once(server: FakeHeron, make_client: Any) -> None:
    client = make_client(max_queue_size=50_000)
    n_threads, per_thread = 16, 1000
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            client.track("e", {"t": t, "i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=30)
    got = sorted((e["metadata"]["t"], e["metadata"]["i"]) for e in server.events)
    assert got == [(t, i) for t in range(n_threads) for i in range(per_thread)]
    stats = client.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (n_threads * per_thread, 0, 0)


def test_close_flushes_and_stops(server: FakeHeron, make_client: Any) -> None:
    client = make_client(flush_interval=60)
    client.track("last")
    assert client.close(timeout=10)
    assert server.names() == ["last"]
    client.track("after close")  # ignored, counted, no error
    assert client.stats().dropped_disabled == 1
    assert client.close() is True  # idempotent


def test_close_gives_up_on_a_dead_server(server: FakeHeron, make_client: Any, caplog: Any) -> None:
    server.down()
    client = make_client(flush_interval=60)
    client.track("doomed")
    with caplog.at_level(logging.WARNING, logger="heron"):
        assert client.close(timeout=0.3) is False
    stats = client.stats()
    assert stats.dropped_at_shutdown == 1 and stats.queued == 0
    assert any("could not be delivered before shutdown" in r.getMessage() for r in caplog.records)


def test_keep_alive_connection_survives_server_restart(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    client.track("one")
    assert client.flush(timeout=10)
    server.down()  # closes the idle keep-alive connection
    server.up()
    client.track("two")
    assert client.flush(timeout=10)
    assert server.names() == ["one", "two"]


def test_endpoint_with_path_prefix(server: FakeHeron, make_client: Any) -> None:
    client = make_client(endpoint=server.url + "/")
    assert client.endpoint == server.url
    client.track("e")
    assert client.flush(timeout=10)
    assert server.requests[0].path == "/v1/events"


def test_no_api_key_disables_the_client(monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.delenv("HERON_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="heron"):
        client = heron.Client()
    assert any("no API key" in r.getMessage() for r in caplog.records)
    client.track("e")
    assert client.stats().dropped_disabled == 1
    assert client.flush() is True and client.close() is True
    with pytest.raises(ValueError):
        heron.Client(debug=True)


def test_module_api_reads_environment(server: FakeHeron, monkeypatch: Any) -> None:
    monkeypatch.setenv("HERON_API_KEY", API_KEY)
    monkeypatch.setenv("HERON_ENDPOINT", server.url)
    monkeypatch.setenv("HERON_SERVICE", "env-service")
    monkeypatch.setenv("HERON_ENVIRONMENT", "env-environment")
    try:
        client = heron.init(flush_interval=60)
        assert heron.get_client() is client and client.endpoint == server.url
        heron.track("module.event", {"k": "v"})
        heron.track("override", service="other", environment="dev")
        assert heron.ping(HB_TOKEN, "start")
        assert heron.flush(timeout=10)
        assert heron.stats().sent == 2 and heron.stats().pings_sent == 1
    finally:
        assert heron.close()
    first, second = server.events
    assert (first["service"], first["environment"]) == ("env-service", "env-environment")
    assert (second["service"], second["environment"]) == ("other", "dev")
    assert heron.get_client() is None
    heron.track("after close")  # no default client: dropped with a warning, no error
    assert heron.stats() == heron.Stats()


def test_init_twice_replaces_and_flushes_the_previous_client(server: FakeHeron) -> None:
    try:
        first = heron.init(API_KEY, endpoint=server.url, flush_interval=60)
        heron.track("from first")
        second = heron.init(API_KEY, endpoint=server.url, flush_interval=60)
        assert first is not second and heron.get_client() is second
        assert server.names() == ["from first"]  # delivered by the implicit close()
    finally:
        heron.close()


def test_stats_as_dict(make_client: Any) -> None:
    stats = make_client().stats().as_dict()
    assert set(stats) >= {"queued", "sent", "dropped", "failed_requests", "last_error"}


def test_sender_thread_starts_on_first_use(server: FakeHeron, make_client: Any) -> None:
    client = make_client()
    assert client._thread is None  # a pre-forking parent that only calls init() forks no thread
    assert client.flush(timeout=1) is True  # nothing to do
    client.track("first")
    assert client._thread is not None and client._thread.is_alive()
    assert client.flush(timeout=10)
    assert server.names() == ["first"]
