"""The heroku kind, pure: configuration, snapshots, the diff that decides every message (each told
once), errors, pause/resume and reconfiguring, the /heroku-status text, the Slack templates and
routing, the Slack Web API policy, the prober's backoff, the settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from heron_common.monitors import OPEN, PAUSED, RESOLVE
from heron_common.monitors import heroku as hk
from heron_common.settings import Settings, SettingsError

T0 = 1_800_000_000.0
SALT = "salt-for-tests"


def dyno(name: str, state: str = "up") -> dict[str, Any]:
    return {"name": name, "type": name.split(".")[0], "state": state}


def addon(name: str = "postgresql-rigid-12345", state: str = "provisioned") -> dict[str, Any]:
    return {"name": name, "service": "heroku-postgresql", "plan": "heroku-postgresql:essential-0", "state": state}


def snap(
    dynos: list[dict[str, Any]] | None = None,
    version: int = 10,
    slug: str = "slug-a",
    config: str = "h1",
    addons: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "app": {"name": "my-app", "maintenance": False},
        "dynos": dynos if dynos is not None else [dyno("web.1"), dyno("worker.1")],
        "release": {"version": version, "user": "user@example.com", "slug": slug, "status": "succeeded"},
        "config_hash": config,
        "addons": addons if addons is not None else [addon()],
    }


def seen(h: hk.Heroku, snapshot: dict[str, Any], at: float) -> hk.Step:
    return hk.observe(h, hk.Observation(at, snapshot=snapshot))


def baseline() -> hk.Heroku:
    step = seen(hk.Heroku(), snap(), T0)
    assert step.heroku.state == hk.UP and step.notices == []
    return step.heroku


# -- configuration ----------------------------------------------------------------------------


def test_a_valid_config_and_its_defaults() -> None:
    config = hk.parse_config({"app_name": "my-app", "slack_channel": "#ops"})
    assert config == hk.Config("my-app", "#ops", hk.DEFAULT_INTERVAL)
    assert (
        hk.parse_config({"app_name": " my-app ", "slack_channel": "#ops", "check_interval": "15"}).check_interval == 15
    )
    assert hk.parse_config({"check_interval": 60.0}, config.to_dict()).check_interval == 60
    assert hk.parse_config({"slack_channel": "#alerts"}, config.to_dict()) == hk.Config("my-app", "#alerts", 5)


@pytest.mark.parametrize(
    ("body", "field", "missing"),
    [
        ({"slack_channel": "#ops"}, "app_name", True),
        ({"app_name": "", "slack_channel": "#ops"}, "app_name", True),
        ({"app_name": "My_App", "slack_channel": "#ops"}, "app_name", False),
        ({"app_name": "../etc", "slack_channel": "#ops"}, "app_name", False),
        ({"app_name": "a", "slack_channel": "#ops"}, "app_name", False),
        ({"app_name": 42, "slack_channel": "#ops"}, "app_name", False),
        ({"app_name": "my-app"}, "slack_channel", True),
        ({"app_name": "my-app", "slack_channel": "ops"}, "slack_channel", False),
        ({"app_name": "my-app", "slack_channel": "#Ops Team"}, "slack_channel", False),
        ({"app_name": "my-app", "slack_channel": "#ops\x00"}, "slack_channel", False),
        ({"app_name": "my-app", "slack_channel": "#ops", "check_interval": 0}, "check_interval", False),
        ({"app_name": "my-app", "slack_channel": "#ops", "check_interval": 61}, "check_interval", False),
        ({"app_name": "my-app", "slack_channel": "#ops", "check_interval": "5m"}, "check_interval", False),
        ({"app_name": "my-app", "slack_channel": "#ops", "check_interval": ""}, "check_interval", False),
        ({"app_name": "my-app", "slack_channel": "#ops", "check_interval": 2.5}, "check_interval", False),
        ({"app_name": "my-app", "slack_channel": "#ops", "check_interval": True}, "check_interval", False),
    ],
)
def test_each_bad_field_is_named(body: dict[str, Any], field: str, missing: bool) -> None:
    with pytest.raises(hk.ConfigError) as caught:
        hk.parse_config(body)
    assert caught.value.field == field and caught.value.missing is missing
    assert caught.value.message.startswith(field)


def test_a_form_learns_every_bad_field_at_once() -> None:
    # The dashboard shows each error beside its field: the same checks, every field judged.
    body = {"app_name": "My App", "slack_channel": "ops", "check_interval": "90"}
    with pytest.raises(hk.ConfigError) as caught:
        hk.parse_config(body, required=hk.CONFIG_FIELDS)
    assert caught.value.field == "app_name"  # the first, as the API answers
    assert list(caught.value.errors) == ["app_name", "slack_channel", "check_interval"]
    assert all(message.startswith(name) for name, message in caught.value.errors.items())
    assert hk.config_errors({"app_name": "my-app"}, required=hk.CONFIG_FIELDS).keys() == {
        "slack_channel",
        "check_interval",
    }
    assert hk.config_errors({"app_name": "my-app"}, required=hk.CONFIG_FIELDS)["check_interval"].missing
    # Without required fields, a missing interval is the default (the API's create).
    assert hk.config_errors({"app_name": "my-app", "slack_channel": "#ops"}) == {}
    assert hk.parse_config({"app_name": "my-app", "slack_channel": "#ops"}, required=("app_name",)).check_interval == 5


def test_the_config_hash_shows_a_change_and_never_the_values() -> None:
    first = hk.config_hash({"SECRET": "hunter2", "A": "1"}, SALT)
    assert first == hk.config_hash({"A": "1", "SECRET": "hunter2"}, SALT)  # order does not matter
    assert first != hk.config_hash({"SECRET": "hunter3", "A": "1"}, SALT)
    assert first != hk.config_hash({"SECRET": "hunter2", "A": "1"}, "another salt")
    assert "hunter2" not in first and len(first) == 64


def test_a_snapshot_from_the_platform_apis_objects() -> None:
    releases = [
        {"version": 41, "user": {"email": "a@example.com"}, "slug": {"id": "s1"}, "status": "succeeded"},
        {"version": 42, "user": {"email": "b@example.com"}, "slug": None, "status": "succeeded"},
    ]
    dynos = [
        {"name": "worker.1", "type": "worker", "state": "up"},
        {"name": "web.1", "type": "web", "state": "crashed"},
    ]
    addons = [{"name": "pg-1", "addon_service": {"name": "heroku-postgresql"}, "plan": None, "state": "provisioned"}]
    got = hk.snapshot({"name": "my-app", "maintenance": True}, dynos, releases, "h", addons)
    assert (
        got["release"]["version"] == 42 and got["release"]["user"] == "b@example.com" and got["release"]["slug"] is None
    )
    assert [d["name"] for d in got["dynos"]] == ["web.1", "worker.1"]
    assert got["addons"] == [{"name": "pg-1", "service": "heroku-postgresql", "plan": None, "state": "provisioned"}]
    assert got["app"] == {"name": "my-app", "maintenance": True}
    assert hk.parse_observation({"checked_at": T0, "snapshot": got}).snapshot == got


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"checked_at": "now", "snapshot": snap()},
        {"checked_at": T0},
        {"checked_at": T0, "snapshot": {**snap(), "dynos": [{"name": 1}]}},
        {"checked_at": T0, "snapshot": {**snap(), "release": {"version": "v1"}}},
        {"checked_at": T0, "snapshot": {**snap(), "config_hash": None}},
        {"checked_at": T0, "error": {"code": "teapot", "message": "?"}},
        {"checked_at": T0, "error": {"code": "not_found"}},
    ],
)
def test_malformed_observations_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        hk.parse_observation(payload)


# -- the diff: what is told, once each ------------------------------------------------------------


def test_a_crash_opens_the_incident_and_is_told_once_then_recovery_resolves() -> None:
    h = baseline()
    crashed = seen(h, snap([dyno("web.1", "crashed"), dyno("worker.1")]), T0 + 60)
    assert [n.topic for n in crashed.notices] == [hk.CRASHED]
    assert crashed.notices[0].data == {"dynos": [{"name": "web.1", "type": "web", "state": "crashed"}]}
    [flip] = crashed.flips
    assert flip.incident == OPEN and flip.to_state == hk.DOWN and flip.details is not None
    assert flip.details["dynos"] == [{"name": "web.1", "type": "web", "state": "crashed"}]

    still = seen(crashed.heroku, snap([dyno("web.1", "crashed"), dyno("worker.1")]), T0 + 120)
    assert still.notices == [] and still.flips == []  # told once

    restarting = seen(still.heroku, snap([dyno("web.1", "starting"), dyno("worker.1")]), T0 + 180)
    assert restarting.notices == [] and restarting.heroku.state == hk.DOWN  # not back until up
    crashed_again = seen(restarting.heroku, snap([dyno("web.1", "crashed"), dyno("worker.1")]), T0 + 240)
    assert crashed_again.notices == []  # the same crash, still not back

    back = seen(crashed_again.heroku, snap(), T0 + 300)
    assert [n.topic for n in back.notices] == [hk.RECOVERED]
    assert back.notices[0].data == {
        "dynos": [{"name": "web.1", "type": "web", "state": "up"}],
        "addons": [],
        "all_clear": True,
    }
    [flip] = back.flips
    assert flip.incident == RESOLVE and back.heroku.state == hk.UP


def test_down_dynos_warn_and_a_second_problem_while_open_is_told_without_a_second_incident() -> None:
    h = baseline()
    down = seen(h, snap([dyno("web.1"), dyno("worker.1", "down")]), T0 + 60)
    assert [n.topic for n in down.notices] == [hk.DYNOS_DOWN] and [f.incident for f in down.flips] == [OPEN]
    both = seen(down.heroku, snap([dyno("web.1", "crashed"), dyno("worker.1", "down")]), T0 + 120)
    assert [n.topic for n in both.notices] == [hk.CRASHED] and both.flips == []
    half = seen(both.heroku, snap([dyno("web.1"), dyno("worker.1", "down")]), T0 + 180)
    assert [n.topic for n in half.notices] == [hk.RECOVERED] and half.notices[0].data["all_clear"] is False
    assert half.flips == [] and half.heroku.state == hk.DOWN
    # worker.1 scaled away: no longer a problem, the incident resolves.
    gone = seen(half.heroku, snap([dyno("web.1")]), T0 + 240)
    assert gone.notices[0].data["dynos"] == [{"name": "worker.1", "type": "worker", "state": "gone"}]
    assert [f.incident for f in gone.flips] == [RESOLVE]


def test_problems_found_by_the_first_check_are_told() -> None:
    first = seen(hk.Heroku(), snap([dyno("web.1", "crashed")]), T0)
    assert [n.topic for n in first.notices] == [hk.CRASHED] and first.flips[0].incident == OPEN
    assert first.flips[0].from_state == hk.NEW


def test_a_deploy_is_a_newer_release_with_another_slug() -> None:
    h = baseline()
    deploy = seen(h, snap(version=11, slug="slug-b"), T0 + 60)
    assert [n.topic for n in deploy.notices] == [hk.DEPLOY]
    assert deploy.notices[0].data["release"]["version"] == 11 and deploy.flips == []
    assert seen(deploy.heroku, snap(version=11, slug="slug-b"), T0 + 120).notices == []
    # A config-only release keeps the slug: a config change, not a deploy.
    config = seen(deploy.heroku, snap(version=12, slug="slug-b", config="h2"), T0 + 180)
    assert [n.topic for n in config.notices] == [hk.CONFIG]
    # A rollback is a new release on an older slug: a deploy.
    rollback = seen(config.heroku, snap(version=13, slug="slug-a", config="h2"), T0 + 240)
    assert [n.topic for n in rollback.notices] == [hk.DEPLOY]


def test_an_addon_leaving_provisioned_opens_the_incident() -> None:
    h = baseline()
    left = seen(h, snap(addons=[addon(state="deprovisioning")]), T0 + 60)
    assert [n.topic for n in left.notices] == [hk.ADDON] and [f.incident for f in left.flips] == [OPEN]
    assert left.notices[0].data["addons"][0]["state"] == "deprovisioning"
    fine = seen(left.heroku, snap(), T0 + 120)
    assert [n.topic for n in fine.notices] == [hk.RECOVERED] and [f.incident for f in fine.flips] == [RESOLVE]
    # A new add-on being provisioned is no problem.
    assert seen(fine.heroku, snap(addons=[addon(), addon("redis-1", "provisioning")]), T0 + 180).notices == []


def test_an_error_is_shown_told_once_and_never_alerts_about_the_app() -> None:
    h = baseline()
    error = {"code": hk.NOT_FOUND, "message": "Heroku has no app named my-app (404)"}
    first = hk.observe(h, hk.Observation(T0 + 60, error=error))
    assert first.heroku.state == hk.ERROR and [n.topic for n in first.notices] == [hk.ERRORED]
    assert [f.incident for f in first.flips] == [None] and first.heroku.snapshot == h.snapshot
    again = hk.observe(first.heroku, hk.Observation(T0 + 120, error=error))
    assert again.notices == [] and again.flips == [] and again.heroku.error == {**error, "since": T0 + 60}
    other = hk.observe(again.heroku, hk.Observation(T0 + 180, error={"code": hk.UNAUTHORIZED, "message": "401"}))
    assert [n.topic for n in other.notices] == [hk.ERRORED] and other.flips == []
    fixed = seen(other.heroku, snap(), T0 + 240)
    assert fixed.heroku.state == hk.UP and fixed.heroku.error is None and fixed.notices == []
    assert [(f.from_state, f.to_state) for f in fixed.flips] == [(hk.ERROR, hk.UP)]


def test_an_overtaken_check_and_a_paused_monitor_change_nothing() -> None:
    h = baseline()
    later = seen(h, snap(version=11, slug="b"), T0 + 120)
    older = seen(later.heroku, snap([dyno("web.1", "crashed")]), T0 + 60)
    assert older.heroku == later.heroku and older.notices == [] and older.flips == []
    paused = hk.Heroku(PAUSED, h.snapshot, checked_at=T0)
    assert seen(paused, snap([dyno("web.1", "crashed")]), T0 + 60).heroku == paused


def test_resume_returns_to_what_the_last_check_said() -> None:
    down = seen(baseline(), snap([dyno("web.1", "crashed")]), T0 + 60).heroku
    resumed, flip = hk.resume(hk.Heroku(PAUSED, down.snapshot, down.dynos, checked_at=down.checked_at), T0 + 99)
    assert resumed.state == hk.DOWN and flip.from_state == PAUSED and flip.incident is None
    assert hk.resume(hk.Heroku(PAUSED), T0)[0].state == hk.NEW


def test_watching_another_app_starts_afresh_and_resolves_the_old_apps_incident() -> None:
    old, new = hk.Config("my-app", "#ops"), hk.Config("other-app", "#ops")
    down = seen(baseline(), snap([dyno("web.1", "crashed")]), T0 + 60).heroku
    step = hk.reconfigure(down, old, new, T0 + 99)
    assert step.heroku == hk.Heroku() and [f.incident for f in step.flips] == [RESOLVE]
    assert hk.reconfigure(down, old, hk.Config("my-app", "#elsewhere", 10), T0).heroku == down


# -- what people read ---------------------------------------------------------------------------


def test_status_text_says_dynos_release_addons_last_check_and_active() -> None:
    h = seen(baseline(), snap([dyno("web.1", "crashed"), dyno("worker.1")]), T0 + 60).heroku
    config = {"app_name": "my-app", "slack_channel": "#ops", "check_interval": 5}
    text = hk.status_text(config, h.state, hk.to_data(h), T0 + 120, 60.0)
    assert text.startswith("🤠 *Heroku status: my-app* — *ACTIVE*")
    assert "• web.1 (web): crashed" in text and "• worker.1 (worker): up" in text
    assert "*Release:* v10 by user@example.com" in text
    assert "• postgresql-rigid-12345 (heroku-postgresql): provisioned" in text
    assert "*Last check:* 2027-01-15T08:01:00Z (60 seconds ago)" in text
    stale = hk.status_text(config, h.state, hk.to_data(h), T0 + 60 + 11 * 60 + 61, 60.0)
    assert "*INACTIVE*" in stale
    assert "*INACTIVE*" in hk.status_text(config, PAUSED, hk.to_data(h), T0 + 61, 60.0)
    never = hk.status_text(config, hk.NEW, {}, T0, 60.0)
    assert "*INACTIVE*" in never and "No check has completed yet." in never
    error = {"code": hk.UNAUTHORIZED, "message": "Heroku refused the API key (401)", "since": T0}
    broken = hk.status_text(config, hk.ERROR, {**hk.to_data(h), "error": error}, T0 + 61, 60.0)
    assert "*INACTIVE*" in broken and "Heroku refused the API key (401)" in broken


def _app(**extra: Any) -> dict[str, Any]:
    return {"heroku": {"app_name": "my-app", "slack_channel": "#ops"}, "project": {"id": 1, "name": "p"}, **extra}


def test_the_slack_messages_are_the_prds_templates() -> None:
    from heron_notifier.slack import message

    crash = message("heroku.dyno_crashed", _app(dynos=[{"name": "web.1", "type": "web", "state": "crashed"}]))
    assert crash == {"text": "🚨 *ALERT: Dyno Crash Detected* 🚨\nApp: my-app\nCrashed dynos:\n• web.1 (web)"}
    down = message("heroku.dynos_down", _app(dynos=[{"name": "worker.1", "type": "worker", "state": "down"}]))
    assert down["text"] == "⚠️ *WARNING: Dynos Down* ⚠️\nApp: my-app\nDown dynos:\n• worker.1 (worker)"
    deploy = message("heroku.deploy", _app(release={"version": 42, "user": "user@example.com"}))
    assert deploy["text"] == "🚀 *New Deploy Detected* 🚀\nApp: my-app\nVersion: v42\nDeployed by: user@example.com"
    config = message("heroku.config_changed", _app())
    assert config["text"] == "⚙️ *Config Vars Changed* ⚙️\nApp: my-app\nReview changes in Heroku dashboard."
    back = message(
        "heroku.recovered", _app(dynos=[{"name": "web.1", "type": "web", "state": "up"}], addons=[], all_clear=True)
    )
    assert back["text"] == "✅ *RECOVERED: Dynos Back Up* ✅\nApp: my-app\nRecovered dynos:\n• web.1 (web)"
    gone = message(
        "heroku.addon_changed", _app(addons=[{"name": "pg-1", "service": "heroku-postgresql", "state": "x"}])
    )
    assert gone["text"].startswith("🧩 *ALERT: Add-on Not Provisioned* 🧩\nApp: my-app\n")
    assert "• pg-1 (heroku-postgresql): x" in gone["text"]


def test_slack_routing_bot_channel_else_project_webhook_and_no_duplicate_incident() -> None:
    from heron_notifier.ledger import SLACK, SLACK_BOT, slack_targets

    heroku = _app()
    assert slack_targets("heroku.deploy", heroku, "https://hooks/x", True) == [(SLACK_BOT, "#ops", None)]
    assert slack_targets("heroku.deploy", heroku, "https://hooks/x", False) == [(SLACK, "https://hooks/x", None)]
    assert slack_targets("heroku.deploy", heroku, None, False) == []
    incident = {"incident": {"kind": "heroku"}, "project": {"id": 1}}
    assert slack_targets("incident.opened", incident, "https://hooks/x", True) == []
    other = {"incident": {"kind": "trigger"}, "project": {"id": 1}}
    assert slack_targets("incident.opened", other, "https://hooks/x", True) == [(SLACK, "https://hooks/x", None)]
    assert slack_targets("trigger.alerting", other, "https://hooks/x", True) == []


def test_the_slack_web_api_policy_reads_ok_and_error() -> None:
    from heron_notifier.policy import slack_api

    schedule = (0.0, 5.0, 30.0)
    assert slack_api(200, {}, True, None, 1, schedule, T0).status == "succeeded"
    refused = slack_api(200, {}, False, "channel_not_found", 1, schedule, T0)
    assert refused.status == "failed" and "channel_not_found" in refused.reason
    busy = slack_api(200, {}, False, "internal_error", 1, schedule, T0)
    assert busy.status == "pending" and busy.retry_in == 5.0
    limited = slack_api(429, {"Retry-After": "20"}, None, None, 1, schedule, T0)
    assert limited.status == "pending" and limited.retry_in == 20.0
    assert slack_api(401, {}, None, None, 1, schedule, T0).status == "failed"


def test_the_prober_backs_off_doubling_and_never_before_retry_after() -> None:
    from heron_prober.heroku import MAX_BACKOFF, backoff
    from heron_prober.heroku_client import retry_after

    assert [backoff(n, 60.0, None) for n in (1, 2, 3)] == [60.0, 120.0, 240.0]
    assert backoff(30, 60.0, None) == MAX_BACKOFF
    assert backoff(1, 60.0, 300.0) == 300.0
    assert retry_after("120", T0) == 120.0 and retry_after(None, T0) is None and retry_after("soon", T0) is None
    assert retry_after("Fri, 15 Jan 2027 08:02:00 GMT", T0) == 120.0


# -- settings -------------------------------------------------------------------------------------


def test_the_prds_variables_seed_and_secrets_are_masked(tmp_path: Any) -> None:
    key_file = tmp_path / "heroku"
    key_file.write_text("heroku-key-from-a-file\n")
    env = {
        "HEROKU_API_KEY_FILE": str(key_file),
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": "signing",
        "MONITORED_APP_NAME": "my-app",
        "SLACK_CHANNEL": "#ops",
        "CHECK_INTERVAL_MINUTES": "10",
        "HERON_HEROKU_API_URL": "http://127.0.0.1:9/",
    }
    s = Settings.from_env(env)
    assert s.heroku_api_key == "heroku-key-from-a-file" and s.slack_bot_token == "xoxb-test-token"
    assert (s.heroku_seed_app, s.heroku_seed_channel, s.heroku_seed_interval) == ("my-app", "#ops", 10)
    assert s.heroku_api_url == "http://127.0.0.1:9" and s.slack_api_url == "https://slack.com/api"
    public = s.public()
    assert public["heroku_api_key"] == public["slack_bot_token"] == public["slack_signing_secret"] == "***"
    assert "heroku-key-from-a-file" not in repr(s)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MONITORED_APP_NAME": "my-app"}, "SLACK_CHANNEL"),
        ({"MONITORED_APP_NAME": "my-app", "SLACK_CHANNEL": "ops"}, "SLACK_CHANNEL"),
        ({"MONITORED_APP_NAME": "My App", "SLACK_CHANNEL": "#ops"}, "MONITORED_APP_NAME"),
        ({"CHECK_INTERVAL_MINUTES": "61"}, "CHECK_INTERVAL_MINUTES"),
        ({"HERON_HEROKU_API_URL": "ftp://x"}, "HERON_HEROKU_API_URL"),
    ],
)
def test_bad_heroku_settings_stop_the_start(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


async def test_a_slack_answer_arriving_in_pieces_is_read_whole() -> None:
    from types import SimpleNamespace
    from unittest import mock

    import aiohttp

    from heron_notifier.worker import _read_up_to, _slack_answer

    content = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16)
    response = SimpleNamespace(content=content)
    content.feed_data(b'{"ok": false, "err')
    reading = asyncio.ensure_future(_read_up_to(response, 1024))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # one turn of the loop: the first piece is read, the rest not here yet
    assert not reading.done()
    content.feed_data(b'or": "channel_not_found"}')
    content.feed_eof()
    assert _slack_answer(await reading) == (False, "channel_not_found")
