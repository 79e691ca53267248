"""The probe kind, pure: its settings, the verdict on a response, and the state machine on frozen
times (continuously down for the timeout opens; a shorter flap opens nothing; any up resolves)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from heron_common.monitors import OPEN, PAUSED, RESOLVE
from heron_common.monitors import probe as pr

LIMITS = pr.Limits(min_interval=30.0, min_timeout=180.0)
LOCAL = pr.Limits(min_interval=0.1, min_timeout=0.1, allow=(ipaddress.ip_network("127.0.0.0/8"),))


def config(**fields: Any) -> pr.Config:
    return pr.parse_config({"url": "https://api.example.com/health?token=s3cret", **fields}, LIMITS)


# --- settings --------------------------------------------------------------------------------


def test_defaults_are_a_head_once_a_minute_expecting_200_or_204_down_for_5_minutes() -> None:
    c = config()
    assert (c.method, c.interval, c.request_timeout, c.timeout) == ("HEAD", 60.0, 10.0, 300.0)
    assert c.expected_status == (200, 204) and not c.reads_body
    assert pr.Config.from_dict(c.to_dict()) == c


def test_every_option_round_trips_through_storage() -> None:
    c = config(
        method="post",
        headers={"Authorization": "Bearer x", "Accept": "application/json"},
        body='{"ping": true}',
        interval=120,
        request_timeout=5,
        timeout=600,
        expected_status=[201, 200],
        header_name="Content-Type",
        header_contains="json",
        body_contains="ok",
        body_regex=r"version \d+",
        json_path="$.checks[0].status",
        json_equals="pass",
        max_latency=2,
    )
    assert c.method == "POST" and c.expected_status == (200, 201)
    assert pr.Config.from_dict(c.to_dict()) == c
    assert pr.masked_headers(dict(c.headers)) == {"Authorization": "***", "Accept": "application/json"}
    # null is a value to expect at a JSON path
    assert config(method="GET", json_path="ok", json_equals=None).to_dict()["json_equals"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": None}, "url"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "http://10.0.0.1/"}, "url"),
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"url": "https://user:pw@example.com/"}, "url"),
        ({"method": "TRACE"}, "method"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"Content-Length": "3"}}, "headers"),
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
        ({"headers": ["Accept: */*"]}, "headers"),
        ({"body": "x"}, "body"),  # with HEAD
        ({"interval": 10}, "interval"),  # below the minimum
        ({"interval": "60"}, "interval"),
        ({"interval": True}, "interval"),
        ({"request_timeout": 90}, "request_timeout"),  # longer than the interval
        ({"request_timeout": 0}, "request_timeout"),
        ({"timeout": 60}, "timeout"),  # below the 3 min minimum
        ({"expected_status": 99}, "expected_status"),
        ({"expected_status": [200, "204"]}, "expected_status"),
        ({"expected_status": []}, "expected_status"),
        ({"expected_location": "/login"}, "expected_location"),  # needs a 3xx
        ({"header_name": "X-Version"}, "header_contains"),
        ({"header_contains": "1.2"}, "header_name"),
        ({"body_contains": "ok"}, "body_contains"),  # HEAD has no body
        ({"method": "GET", "body_regex": "(unclosed"}, "body_regex"),
        ({"method": "GET", "json_path": "$.a[", "json_equals": 1}, "json_path"),
        ({"method": "GET", "json_path": "$.a"}, "json_equals"),
        ({"method": "GET", "json_equals": 1}, "json_path"),
        ({"max_latency": 20}, "max_latency"),  # longer than the request timeout
        ({"body_contains": "a\x00b", "method": "GET"}, "body_contains"),
    ],
)
def test_bad_settings_name_their_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(pr.ConfigError) as err:
        config(**fields)
    assert err.value.field == field, str(err.value)


def test_loopback_only_when_allow_listed() -> None:
    with pytest.raises(pr.ConfigError):
        pr.parse_config({"url": "http://127.0.0.1:8000/"}, LIMITS)
    assert pr.parse_config({"url": "http://127.0.0.1:8000/"}, LOCAL).url == "http://127.0.0.1:8000/"


def test_redirect_expectations() -> None:
    c = config(expected_status=301, expected_location="https://example.com/new")
    assert c.expected_status == (301,) and c.expected_location == "https://example.com/new"


def test_urls_are_shown_without_query_or_credentials() -> None:
    assert pr.shown_url("https://api.example.com/health?token=s3cret#x") == "https://api.example.com/health"


# --- JSON paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("$.status", ("status",)),
        ("status", ("status",)),
        ("$.checks[0].status", ("checks", 0, "status")),
        ("[1]", (1,)),
        ("$['a b'][\"c.d\"][-1]", ("a b", "c.d", -1)),
    ],
)
def test_json_paths(path: str, steps: tuple) -> None:
    assert pr.parse_json_path(path) == steps


def test_json_equality_is_json_not_python() -> None:
    assert pr.json_equal(1, 1.0) and pr.json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not pr.json_equal(True, 1) and not pr.json_equal("1", 1) and not pr.json_equal(None, False)


# --- the verdict -----------------------------------------------------------------------------


def response(status: int = 200, body: bytes | None = None, total: float = 0.05, **headers: str) -> pr.Response:
    return pr.Response(status, list(headers.items()), body, total)


def test_status_rules() -> None:
    c = config()
    assert pr.evaluate(c, response(200)) is None and pr.evaluate(c, response(204)) is None
    assert pr.evaluate(c, response(503)) == "status 503 (expected 200 or 204)"
    assert pr.evaluate(config(expected_status=503), response(503)) is None


def test_redirects_are_judged_not_followed() -> None:
    moved = response(302, Location="https://example.com/login?next=secret")
    assert pr.evaluate(config(), moved) == (
        "status 302 (expected 200 or 204), redirecting to https://example.com/login"
    )
    exact = config(expected_status=302, expected_location="https://example.com/login?next=secret")
    assert pr.evaluate(exact, moved) is None
    other = config(expected_status=302, expected_location="/elsewhere")
    assert pr.evaluate(other, moved) == "redirects to 'https://example.com/login?next=secret' (expected '/elsewhere')"
    assert pr.evaluate(other, response(302)) == "status 302 without a Location header (expected '/elsewhere')"


def test_header_body_regex_and_json_rules() -> None:
    body = b'{"status": "ok", "checks": [{"name": "db", "up": true}], "version": "1.2.3"}'
    ok = response(200, body, **{"Content-Type": "application/json; charset=utf-8"})
    get = {"method": "GET"}
    assert pr.evaluate(config(header_name="content-type", header_contains="json"), ok) is None
    assert pr.evaluate(config(header_name="X-Missing", header_contains=""), ok) == "no X-Missing header"
    assert pr.evaluate(config(header_name="Content-Type", header_contains="xml"), ok) == (
        "Content-Type is 'application/json; charset=utf-8', without 'xml'"
    )
    assert pr.evaluate(config(body_contains='"ok"', **get), ok) is None
    assert pr.evaluate(config(body_contains="degraded", **get), ok) == "body does not contain 'degraded'"
    assert pr.evaluate(config(body_regex=r"\d+\.\d+\.\d+", **get), ok) is None
    assert pr.evaluate(config(body_regex=r"^down", **get), ok) == "body does not match /^down/"
    assert pr.evaluate(config(json_path="$.checks[0].up", json_equals=True, **get), ok) is None
    assert pr.evaluate(config(json_path="$.status", json_equals="down", **get), ok) == (
        '$.status is "ok" (expected "down")'
    )
    assert pr.evaluate(config(json_path="$.checks[3]", json_equals=1, **get), ok) == (
        "$.checks[3] is not in the body (expected 1)"
    )
    assert pr.evaluate(config(json_path="$.a", json_equals=1, **get), response(200, b"<html>")) == "body is not JSON"


def test_a_catastrophic_regex_is_cut_short_and_down() -> None:
    c = config(method="GET", body_regex=r"(x+x+)+y")
    reason = pr.evaluate(c, response(200, b"x" * 5000))
    assert reason is not None and "ran longer than 50 ms" in reason


def test_latency_rule_and_reason_texts() -> None:
    c = config(max_latency=1)
    assert pr.evaluate(c, response(200, total=0.9)) is None
    assert pr.evaluate(c, response(200, total=1.25)) == "slow: answered in 1.25 s (max 1 s)"
    assert pr.timed_out("tls", 10.0) == "TLS handshake timed out after 10 s"
    assert pr.timed_out("connect", 0.25) == "TCP connect timed out after 250 ms"
    assert pr.timed_out("wait", 10.0) == "no response within 10 s"
    timings = {"dns": 0.003, "connect": 0.001, "tls": None, "first_byte": 1.1, "total": 1.2}
    assert pr.timings_text(timings) == "total 1.2 s (DNS 3 ms, connect 1 ms, first byte 1.1 s)"


# --- the state machine -----------------------------------------------------------------------

MACHINE = pr.parse_config(
    {"url": "https://example.com/", "interval": 60, "request_timeout": 10, "timeout": 300}, LIMITS
)


def run(probe: pr.Probe, *results: tuple[float, bool]) -> tuple[pr.Probe, list]:
    flips = []
    for at, up in results:
        reason = None if up else "status 503 (expected 200 or 204)"
        probe, step = pr.observe(probe, MACHINE, pr.Result(at, up, 200 if up else 503, reason, {"total": 0.1}))
        flips.extend(step)
    return probe, flips


def test_continuously_down_for_the_timeout_opens_one_incident() -> None:
    probe, flips = run(pr.Probe(), (0, True), *((60.0 * i, False) for i in range(1, 6)))
    assert probe.state == pr.FAILING and [f.to_state for f in flips] == [pr.UP, pr.FAILING]
    assert all(f.incident is None for f in flips)
    probe, flips = run(probe, (360, False))  # 300 s after the first failure
    [flip] = flips
    assert (probe.state, flip.incident, flip.silent_since, flip.at) == (pr.DOWN, OPEN, 60.0, 360.0)
    assert flip.details is not None and flip.details["reason"] == "status 503 (expected 200 or 204)"
    assert flip.details["failures"] == 6 and flip.details["down_since"] == "1970-01-01T00:01:00Z"
    assert flip.details["summary"] == "status 503 (expected 200 or 204); 6 failed checks over 5 min; total 100 ms"
    probe, flips = run(probe, (420, False), (480, False))
    assert probe.state == pr.DOWN and flips == []  # one incident
    probe, [flip] = run(probe, (540, True))
    assert (probe.state, flip.incident, flip.resumed_at) == (pr.UP, RESOLVE, 540.0)
    assert probe.down_since is None and probe.failures == 0


def test_a_flap_shorter_than_the_timeout_opens_nothing() -> None:
    probe, flips = run(pr.Probe(pr.UP, last_at=0), (60, False), (120, False), (180, True), (240, False), (300, True))
    assert probe.state == pr.UP
    assert [(f.from_state, f.to_state) for f in flips] == [("up", "failing"), ("failing", "up")] * 2
    assert all(f.incident is None for f in flips)


def test_an_unobserved_gap_restarts_the_failing_run() -> None:
    # Down at 60, then no result for 10 minutes (prober or broker outage), then down again: not
    # "down for 11 minutes" but a new run from 660.
    probe, _ = run(pr.Probe(pr.UP, last_at=0), (60, False), (660, False))
    assert probe.state == pr.FAILING and probe.down_since == 660 and probe.failures == 1
    # One missing result is still continuous.
    probe, _ = run(pr.Probe(pr.UP, last_at=0), (60, False), (180, False), (300, False), (360, False))
    assert probe.state == pr.DOWN


def test_results_overtaken_change_nothing_and_paused_judges_nothing() -> None:
    probe, _ = run(pr.Probe(pr.UP, last_at=100), (90, False), (100, False))
    assert probe == pr.Probe(pr.UP, last_at=100)
    paused, flips = run(pr.Probe(PAUSED, last_at=0), *((60.0 * i, False) for i in range(1, 10)))
    assert paused.state == PAUSED and flips == [] and paused.last_up is False and paused.down_since is None


def test_resume_is_new_or_down_with_its_incident() -> None:
    fresh, flip = pr.resume(pr.Probe(PAUSED, down_since=5.0, failures=3), 100.0, incident_open=False)
    assert (fresh.state, fresh.down_since, fresh.failures, flip.to_state) == (pr.NEW, None, 0, pr.NEW)
    still, _ = pr.resume(pr.Probe(PAUSED), 100.0, incident_open=True)
    assert still.state == pr.DOWN
    up, [resolved] = run(still, (160, True))
    assert up.state == pr.UP and resolved.incident == RESOLVE
    first, [flip] = run(fresh, (160, False))
    assert (first.state, flip.from_state) == (pr.FAILING, pr.NEW)


def test_state_round_trips_through_data() -> None:
    probe, _ = run(pr.Probe(), (0, False))
    assert pr.Probe.load(probe.state, probe.data()) == probe


# --- the prober's words for failures, and the batched results' envelope -----------------------


def test_failures_are_named_without_the_url() -> None:
    import aiohttp

    from heron_prober.probes_http import Marks, failure

    waiting = Marks(start=0.0, phase="wait")
    secret = "https://example.com/x?token=s3cret"
    assert failure(aiohttp.InvalidURL(secret), waiting) == "invalid URL"
    assert failure(aiohttp.ServerDisconnectedError(), waiting) == "connection closed before a response"
    assert failure(ValueError(secret), waiting) == "request could not be made: ValueError"
    marks = Marks(start=0.0, dns_start=1.0, dns_end=1.5, connect_start=1.5, tcp_end=2.0, connect_end=3.0)
    marks.headers_at, marks.end = 4.0, 4.5
    assert marks.timings(9.0) == {"dns": 0.5, "connect": 0.5, "tls": 1.0, "first_byte": 1.0, "total": 4.5}


def test_batched_observations_expand_with_stable_ids() -> None:
    from heron_common import messages

    rows = [{"monitor_id": 1, "project_id": 2, "at": 10.0, "payload": {"up": True}}] * 2
    batch = messages.observations_message(rows, 11.0)
    first, again = messages.expand_observations(batch), messages.expand_observations(batch)
    assert [m["id"] for m in first] == [m["id"] for m in again] and first[0]["id"] != first[1]["id"]
    assert first[0]["type"] == messages.OBSERVATION and first[0]["at"] == 10.0
    with pytest.raises(messages.MessageError):
        messages.expand_observations({**batch, "observations": "nope"})
