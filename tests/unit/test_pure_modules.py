"""The pure pieces outside the silence models: validation, state machine, Slack text, retry policy,
outbound guard, settings."""

from __future__ import annotations

import ipaddress

import pytest

from heron_common import webhooks
from heron_common.monitors import event as machine
from heron_common.monitors.rate import Rate, RateParams
from heron_common.outbound import check_url, forbidden_reason
from heron_common.settings import Settings, SettingsError
from heron_ingest.validation import InputError, event_time, parse_event  # event_time re-exported
from heron_notifier import policy, slack

PARAMS = RateParams(min_tolerance=1.0)


# --- event time and validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "expected"),
    [(None, 1000.0), (990.0, 990.0), (2000.0, 1000.0), (-5000.0, 1000.0 - 3600), (1000.0 - 3600, 1000.0 - 3600)],
)
def test_event_time_is_clamped_to_the_last_hour(client, expected) -> None:
    assert event_time(client, 1000.0, 3600.0) == expected


def test_parse_event_accepts_both_name_fields_and_empty_labels_as_absent() -> None:
    e = parse_event(
        {"event": "a.b", "service": "", "environment": "prod", "timestamp": 999},
        project_id=1,
        received_at=1000.0,
        max_metadata_bytes=10,
        max_skew=3600,
    )
    assert (e.event_name, e.service, e.environment, e.event_time) == ("a.b", None, "prod", 999.0)


@pytest.mark.parametrize("ts", [True, "1", float("nan"), float("inf"), [1]])
def test_parse_event_refuses_non_numeric_timestamps(ts) -> None:
    with pytest.raises(InputError) as err:
        parse_event(
            {"event_name": "a", "timestamp": ts}, project_id=1, received_at=1.0, max_metadata_bytes=10, max_skew=1
        )
    assert err.value.status == 422 and "timestamp" in err.value.message


# --- the monitor state machine ---------------------------------------------------------------


def test_monitor_goes_up_once_learned_and_down_only_past_its_deadline() -> None:
    m = machine.Monitor(machine.NEW, Rate())
    m, flips = machine.apply_events(m, [0.0, 10.0], PARAMS)
    assert m.state == machine.NEW and flips == [] and m.deadline(PARAMS) is None
    m, flips = machine.apply_events(m, [20.0], PARAMS)
    assert m.state == machine.UP and [(f.from_state, f.to_state) for f in flips] == [("new", "up")]
    deadline = m.deadline(PARAMS)
    assert deadline is not None and deadline > 30.0
    assert machine.check_silence(m, deadline - 0.001, PARAMS) is None
    flip = machine.check_silence(m, deadline, PARAMS)
    assert flip is not None and flip.to_state == machine.DOWN and flip.silent_since == 20.0


def test_resuming_event_resolves_with_the_silence_it_ended() -> None:
    m = machine.Monitor(machine.NEW, Rate())
    m, _ = machine.apply_events(m, [0.0, 10.0, 20.0], PARAMS)
    down = machine.Monitor(machine.DOWN, m.learned, m.event_count)
    up, [flip] = machine.apply_events(down, [95.0, 90.0], PARAMS)
    assert up.state == machine.UP
    assert (flip.silent_since, flip.resumed_at) == (20.0, 90.0)


def test_a_late_event_older_than_the_silence_does_not_resolve() -> None:
    m, _ = machine.apply_events(machine.Monitor(machine.NEW, Rate()), [0.0, 10.0, 20.0], PARAMS)
    down = machine.Monitor(machine.DOWN, m.learned, m.event_count)
    still, flips = machine.apply_events(down, [15.0], PARAMS)
    assert still.state == machine.DOWN and flips == []
    assert still.event_count == 4


# --- Slack text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "0.2 seconds"),
        (1, "1 second"),
        (45, "45 seconds"),
        (180, "3 minutes"),
        (1080, "18 minutes"),
        (7500, "2 hours 5 minutes"),
        (3600, "1 hour"),
        (97200, "1 day 3 hours"),
    ],
)
def test_humanize(seconds, text) -> None:
    assert slack.humanize(seconds) == text


def test_recovery_message_reports_downtime() -> None:
    data = {"incident": {"event_name": "email.sent", "service": None, "environment": "prod", "duration": 1080}}
    msg = slack.incident_message("incident.resolved", data)
    assert msg["blocks"][0]["text"]["text"] == "✅ Heron recovery"
    assert [f["text"] for f in msg["blocks"][1]["fields"]] == [
        "*Event*\nemail.sent",
        "*Downtime*\n18 minutes",
        "*Service*\n—",
        "*Environment*\nprod",
    ]
    assert msg["text"] == "✅ Heron recovery: Event: email.sent, Downtime: 18 minutes, Service: —, Environment: prod"


# --- retry policy ----------------------------------------------------------------------------

SCHEDULE = (0.0, 5.0, 300.0)


def test_policy() -> None:
    assert policy.decide(200, {}, 1, SCHEDULE, 0).status == "succeeded"
    assert policy.decide(204, {}, 1, SCHEDULE, 0).status == "succeeded"
    for permanent in (404, 410):
        assert policy.decide(permanent, {}, 1, SCHEDULE, 0).status == "failed"
    retry = policy.decide(500, {}, 1, SCHEDULE, 0)
    assert (retry.status, retry.retry_in) == ("pending", 5.0)
    assert policy.decide(None, {}, 2, SCHEDULE, 0).retry_in == 300.0
    assert policy.decide(503, {}, 3, SCHEDULE, 0).status == "failed"
    assert policy.decide(429, {"Retry-After": "60"}, 1, SCHEDULE, 0).retry_in == 60.0
    assert policy.decide(429, {"Retry-After": "1"}, 1, SCHEDULE, 0).retry_in == 5.0  # never sooner than planned
    assert policy.decide(301, {}, 1, SCHEDULE, 0).status == "pending"  # redirects are not followed
    refused = policy.never("refused: h resolves to 127.0.0.1, a loopback address")
    assert refused.status == "failed" and refused.retry_in is None and "127.0.0.1, a loopback" in refused.reason


def test_retry_after_http_date() -> None:
    assert policy.retry_after({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=40.0) == 60.0
    assert policy.retry_after({"Retry-After": "soon"}, now=0) is None


# --- outbound guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_addresses_are_forbidden(ip) -> None:
    assert forbidden_reason(ipaddress.ip_address(ip), ()) is not None


def test_public_and_allow_listed_addresses_pass() -> None:
    assert forbidden_reason(ipaddress.ip_address("93.184.216.34"), ()) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"), (ipaddress.ip_network("127.0.0.0/8"),)) is None
    assert check_url("https://hooks.slack.com/services/T/B/X", ()) is None
    assert check_url("http://[::ffff:169.254.169.254]/", ()) is not None
    assert check_url("file:///etc/passwd", ()) is not None


# --- webhook signing -------------------------------------------------------------------------

BODY = webhooks.body_bytes({"topic": "incident.opened", "data": {"n": 1}})


def test_verify_requires_the_timestamped_signature_by_default() -> None:
    secret = webhooks.new_secret()
    captured = webhooks.signing_headers((secret,), "msg_1", 1000, BODY)
    assert webhooks.verify(secret, BODY, captured, now=1000)["data"] == {"n": 1}
    # Replayed an hour later: refused with the webhook-* headers, and refused without them.
    with pytest.raises(webhooks.WebhookVerificationError, match="replay"):
        webhooks.verify(secret, BODY, captured, now=4600)
    stripped = {k: v for k, v in captured.items() if not k.startswith("webhook-")}
    with pytest.raises(webhooks.WebhookVerificationError, match="can be replayed"):
        webhooks.verify(secret, BODY, stripped, now=4600)
    # The bare Heron-Signature check is there for who asks for it, and still checks the signature.
    assert webhooks.verify(secret, BODY, stripped, now=4600, allow_untimestamped=True)
    with pytest.raises(webhooks.WebhookVerificationError, match="does not match"):
        webhooks.verify(webhooks.new_secret(), BODY, stripped, now=4600, allow_untimestamped=True)
    # It never rescues a stale Standard signature.
    with pytest.raises(webhooks.WebhookVerificationError, match="replay"):
        webhooks.verify(secret, BODY, captured, now=4600, allow_untimestamped=True)


def test_signing_with_every_unexpired_secret_newest_first() -> None:
    newest, second, oldest = (webhooks.new_secret() for _ in range(3))
    headers = webhooks.signing_headers((newest, second, oldest), "msg_1", 1000, BODY)
    entries = headers["webhook-signature"].split()
    assert entries == [f"v1,{webhooks.standard_signature(s, 'msg_1', 1000, BODY)}" for s in (newest, second, oldest)]
    assert headers["Heron-Signature"] == webhooks.heron_signature(newest, BODY)
    assert headers["Heron-Signature-Previous"] == webhooks.heron_signature(second, BODY)
    for secret in (newest, second, oldest):
        assert webhooks.verify(secret, BODY, headers, now=1000)
    alone = webhooks.signing_headers((newest,), "msg_1", 1000, BODY)
    assert "Heron-Signature-Previous" not in alone and len(alone["webhook-signature"].split()) == 1


# --- settings --------------------------------------------------------------------------------


def test_settings_errors_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="HERON_SHARDS"):
        Settings.from_env({"HERON_SHARDS": "lots"})
    # The rate model's knobs: a positive, finite budget; a young-stream cap that may be switched off.
    assert Settings.from_env({}).false_alarms_per_year == 1.0
    assert Settings.from_env({"HERON_FALSE_ALARMS_PER_YEAR": "12"}).false_alarms_per_year == 12.0
    assert Settings.from_env({"HERON_YOUNG_CLUSTERS_PER_HOUR": "inf"}).young_clusters_per_hour == float("inf")
    for bad in ("0", "-1", "nan", "inf", "1e16", "often"):
        with pytest.raises(SettingsError, match="HERON_FALSE_ALARMS_PER_YEAR"):
            Settings.from_env({"HERON_FALSE_ALARMS_PER_YEAR": bad})
    for bad in ("0", "nan", "-inf"):
        with pytest.raises(SettingsError, match="HERON_YOUNG_CLUSTERS_PER_HOUR"):
            Settings.from_env({"HERON_YOUNG_CLUSTERS_PER_HOUR": bad})
    with pytest.raises(SettingsError, match="HERON_MIN_TOLERANCE"):
        Settings.from_env({"HERON_MIN_TOLERANCE": "nan"})  # NaN passed every comparison before
    with pytest.raises(SettingsError, match="HERON_DATABASE_URL"):
        Settings.from_env({"HERON_DATABASE_URL": "mysql://x"})
    with pytest.raises(SettingsError, match="HERON_OUTBOUND_ALLOW_CIDRS"):
        Settings.from_env({"HERON_OUTBOUND_ALLOW_CIDRS": "10.0.0.0/33"})
    with pytest.raises(SettingsError, match="HERON_ADMIN_TOKEN_FILE"):
        Settings.from_env({"HERON_ADMIN_TOKEN_FILE": "/nonexistent/token"})


def test_one_setting_bounds_interval_grace_and_timeout() -> None:
    """HERON_MIN_INTERVAL (default 60 s) is the smallest heartbeat interval and grace and liveness
    timeout accepted; tests and demos set it to seconds."""
    from heron_common.monitors import heartbeat as hb

    assert Settings.from_env({}).min_interval == 60.0
    assert Settings.from_env({"HERON_MIN_INTERVAL": "2"}).min_interval == 2.0
    with pytest.raises(SettingsError, match="HERON_MIN_INTERVAL"):
        Settings.from_env({"HERON_MIN_INTERVAL": "0"})
    for body, field in (({"interval": 59, "grace": 60}, "interval"), ({"interval": 60, "grace": 59}, "grace")):
        with pytest.raises(hb.ConfigError) as caught:
            hb.parse_config(body, min_interval=Settings.from_env({}).min_interval, now=0.0)
        assert caught.value.field == field
    assert hb.parse_config({"interval": 2, "grace": 2}, min_interval=2.0, now=0.0).interval == 2.0


def test_secret_files_and_masking(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    s = Settings.from_env({"HERON_ADMIN_TOKEN_FILE": str(token), "HERON_AMQP_URL": "amqp://u:pw@mq:5672/"})
    assert s.admin_token == "s3cret"
    public = s.public()
    assert public["admin_token"] == "***" and "pw" not in public["amqp_url"]
    assert "s3cret" not in repr(s)


@pytest.mark.parametrize(
    "raw",
    [
        {"event_name": "a"},
        {"event": "a", "service": "", "environment": "prod", "metadata": {"k": [1, 2]}},
        {"event_name": "a", "timestamp": 999},
        {"event_name": "a", "timestamp": 5000.5},
        {"event_name": "a", "timestamp": -1e12},
        {"event_name": "a", "timestamp": True},
        {"event_name": "   "},
        {"event_name": None, "event": "b"},
        {"event_name": "a", "metadata": {"x": "y" * 100}},
        {"event_name": "a", "service": 7},
        {"event_name": "x" * 201},
        "not an object",
    ],
)
def test_the_fast_path_agrees_with_the_full_validator(raw) -> None:
    from heron_ingest.validation import parse_rows

    kwargs = {"project_id": 1, "received_at": 1000.0, "max_metadata_bytes": 64, "max_skew": 3600.0}
    try:
        expected = parse_event(raw, where="events[0].", **kwargs).to_wire()
    except InputError as exc:
        with pytest.raises(InputError) as got:
            parse_rows([raw], batch=True, **kwargs)
        assert (got.value.status, got.value.code, got.value.message) == (exc.status, exc.code, exc.message)
    else:
        assert parse_rows([raw], batch=True, **kwargs) == [expected]


def test_the_demo_settings_let_a_minute_old_stream_alert() -> None:
    # heron-dev --demo squeezes days into a minute; its settings must parse and switch the rate
    # model's young-stream tolerance off, or the demo's incident would never open.
    import math

    from heron_common.demo import DEMO_ENV

    s = Settings.from_env(DEMO_ENV)
    assert math.isinf(s.young_clusters_per_hour) and s.false_alarms_per_year >= 1e9 and s.min_tolerance == 5
