"""Heroku app monitoring against the running system, a local fake of the Heroku Platform API
(tests/support/fake_heroku.py) and a local Slack Web API capturing chat.postMessage: each change of
the app is exactly one message in the app's channel, in the PRD's words; a bad key or an unknown
app shows an error instead of alerting; 429 backs off; two probers never check an app twice; the
API, /update-config and seeding from the environment."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from heron_common.service import PG
from heron_common.settings import Settings
from tests.support.fake_heroku import API_KEY, BOT_TOKEN, SECRET_VALUE, SIGNING_SECRET, FakeHeroku, standard_app
from tests.support.fakes import FakeSlack, FakeSlackAPI
from tests.support.system import System, running_system, start
from tests.support.waiting import eventually

APP = "my-app"
CRASH = "🚨 *ALERT: Dyno Crash Detected* 🚨\nApp: my-app\nCrashed dynos:\n• web.1 (web)"
DOWN = "⚠️ *WARNING: Dynos Down* ⚠️\nApp: my-app\nDown dynos:\n• worker.1 (worker)"
CONFIG = "⚙️ *Config Vars Changed* ⚙️\nApp: my-app\nReview changes in Heroku dashboard."


def recovered(dyno: str, kind: str) -> str:
    return f"✅ *RECOVERED: Dynos Back Up* ✅\nApp: my-app\nRecovered dynos:\n• {dyno} ({kind})"


def deployed(version: int, user: str) -> str:
    return f"🚀 *New Deploy Detected* 🚀\nApp: my-app\nVersion: v{version}\nDeployed by: {user}"


@asynccontextmanager
async def heroku_system(settings: Settings, **overrides: Any) -> AsyncIterator[tuple[System, FakeHeroku, FakeSlackAPI]]:
    heroku = await FakeHeroku(API_KEY).start()
    slack_api = await FakeSlackAPI(BOT_TOKEN).start()
    try:
        wiring: dict[str, Any] = {
            "heroku_api_key": API_KEY,
            "heroku_api_url": heroku.url,
            "slack_bot_token": BOT_TOKEN,
            "slack_api_url": slack_api.url,
            "slack_signing_secret": SIGNING_SECRET,
            "heroku_minute": 0.1,  # check_interval 1 = a check every 0.1 s
            "heroku_poll_interval": 0.02,
        }
        wired = replace(settings, **{**wiring, **overrides})
        async with running_system(wired) as system:
            yield system, heroku, slack_api
    finally:
        await slack_api.stop()
        await heroku.stop()


async def call(system: System, method: str, path: str, key: str | None, body: Any = None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with system.http.request(method, f"{system.ingest.url}{path}", json=body, headers=headers, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def watch(system: System, key: str, app: str = APP, channel: str = "#ops", interval: int = 1) -> dict[str, Any]:
    status, created = await call(
        system, "POST", "/v1/heroku-apps", key, {"app_name": app, "slack_channel": channel, "check_interval": interval}
    )
    assert status == 201, created
    assert created["state"] == "new" and created["status"] == "INACTIVE"
    return created


async def app_view(system: System, key: str, monitor: dict[str, Any], accept: Any) -> dict[str, Any]:
    _, got = await eventually(
        lambda: call(system, "GET", f"/v1/heroku-apps/{monitor['id']}", key), lambda r: accept(r[1])
    )
    return got


async def checks_applied(system: System, key: str, monitor: dict[str, Any], n: int = 2) -> None:
    """Until ``n`` more checks have been folded in by the detector (each moves last_check_at)."""
    for _ in range(n):
        _, now = await call(system, "GET", f"/v1/heroku-apps/{monitor['id']}", key)
        await app_view(system, key, monitor, lambda v, before=now["last_check_at"]: v["last_check_at"] != before)


async def test_each_change_of_the_app_is_exactly_one_slack_message_in_its_channel(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, slack_api):
        app = heroku.add(standard_app(APP, SECRET_VALUE))
        _, key = await system.create_project("heroku")
        monitor = await watch(system, key)
        up = await app_view(system, key, monitor, lambda v: v["state"] == "up")
        # The first check runs at once and is a baseline: nothing to tell.
        assert up["status"] == "ACTIVE" and up["error"] is None
        assert [(d["name"], d["state"]) for d in up["dynos"]] == [("web.1", "up"), ("worker.1", "up")]
        assert up["release"]["version"] == 2 and up["release"]["user"] == "user@example.com"
        assert up["addons"][0]["state"] == "provisioned"

        expected: list[str] = []

        async def told(text: str) -> None:
            expected.append(text)
            await slack_api.wait_for(len(expected))
            assert slack_api.texts() == expected

        app.set_dyno("web.1", "crashed")
        await told(CRASH)
        _, [incident] = await eventually(
            lambda: call(system, "GET", "/v1/incidents/active", key), lambda r: len(r[1]) == 1
        )
        assert incident["kind"] == "heroku" and incident["monitor_id"] == monitor["id"]
        assert incident["details"]["dynos"] == [{"name": "web.1", "type": "web", "state": "crashed"}]
        await checks_applied(system, key, monitor)  # still crashed: not told again
        app.set_dyno("web.1", "up")
        await told(recovered("web.1", "web"))
        await eventually(lambda: call(system, "GET", "/v1/incidents/active", key), lambda r: r[1] == [])

        app.set_dyno("worker.1", "down")  # a dyno stopped
        await told(DOWN)
        app.set_dyno("worker.1", "up")
        await told(recovered("worker.1", "worker"))

        release = app.deploy("dev@example.com", "9f8e7d6")
        await told(deployed(release["version"], "dev@example.com"))

        app.set_config("FEATURE_FLAG", SECRET_VALUE + "-2")  # a release on the same slug: no deploy message
        await told(CONFIG)

        app.set_addon("postgresql-rigid-12345", "deprovisioning")
        await told(
            "🧩 *ALERT: Add-on Not Provisioned* 🧩\nApp: my-app\nAdd-ons:\n"
            "• postgresql-rigid-12345 (heroku-postgresql): deprovisioning"
        )
        app.set_addon("postgresql-rigid-12345", "provisioned")
        await told(
            "✅ *RECOVERED* ✅\nApp: my-app\nAdd-ons:\n• postgresql-rigid-12345 (heroku-postgresql): provisioned"
        )

        # Nothing more: a few more checks tell nothing, and every message went once to #ops.
        await checks_applied(system, key, monitor, 3)
        pool = system.ingest.app[PG]
        await eventually(
            lambda: pool.fetch("SELECT status FROM deliveries"),
            lambda rows: {r["status"] for r in rows} <= {"succeeded"},
        )
        assert slack_api.texts() == expected and {m["channel"] for m in slack_api.posted} == {"#ops"}
        assert slack_api.refused == []

        # The requests were the Platform API's: the version header, the key, releases newest first.
        _, _, headers = heroku.requests[0]
        assert headers["Accept"] == "application/vnd.heroku+json; version=3"
        assert headers["Authorization"] == f"Bearer {API_KEY}"
        releases = [h for _, p, h in heroku.requests if p.endswith("/releases")]
        assert releases[0]["Range"] == "version ..; order=desc, max=10"

        # The config vars' values are nowhere Heron writes.
        for table in ("monitors", "outbox", "deliveries", "heroku_checks", "incidents", "delivery_attempts"):
            found = await pool.fetchval(f"SELECT count(*) FROM {table} t WHERE t::text LIKE $1", f"%{SECRET_VALUE}%")
            assert found == 0, table


async def test_dynos_and_addons_are_read_across_pages(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, slack_api):
        app = heroku.add(standard_app(APP, SECRET_VALUE))
        for n in range(2, 451):  # web.1-450 and worker.1: three pages of the default 200
            app.add_dyno("web", n)
        _, key = await system.create_project("pages")
        monitor = await watch(system, key)
        up = await app_view(system, key, monitor, lambda v: v["state"] == "up")
        assert len(up["dynos"]) == 451
        assert heroku.requested(APP, "dynos") >= 3
        app.set_dyno("web.450", "crashed")  # on the last page
        posted = await slack_api.wait_for(1)
        assert posted[0]["text"] == CRASH.replace("web.1", "web.450")


async def test_without_a_bot_token_the_projects_incoming_webhook_gets_the_messages(
    settings: Settings, slack: FakeSlack
) -> None:
    async with heroku_system(settings, slack_bot_token=None) as (system, heroku, slack_api):
        app = heroku.add(standard_app(APP, SECRET_VALUE))
        project_id, key = await system.create_project("webhook")
        status, _ = await call(
            system, "PATCH", f"/v1/projects/{project_id}/slack", key, {"slack_webhook_url": slack.url}
        )
        assert status == 200
        monitor = await watch(system, key)
        await app_view(system, key, monitor, lambda v: v["state"] == "up")
        app.set_dyno("web.1", "crashed")
        [received] = await slack.wait_for(1)
        assert received.json == {"text": CRASH}
        assert slack_api.posted == []


async def test_a_refused_key_shows_the_error_instead_of_alerting(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, slack_api):
        heroku.api_key = "another-key"  # the one Heron sends is refused: 401
        app = heroku.add(standard_app(APP, SECRET_VALUE))
        app.set_dyno("web.1", "crashed")  # never told: the app cannot be read
        _, key = await system.create_project("bad key")
        monitor = await watch(system, key)
        got = await app_view(system, key, monitor, lambda v: v["state"] == "error")
        assert got["status"] == "INACTIVE" and got["error"]["code"] == "unauthorized"
        assert "Heroku refused the API key (401: Invalid credentials provided.)" in got["error"]["message"]
        [posted] = await slack_api.wait_for(1)
        assert posted["text"].startswith("⚠️ *Heroku monitoring cannot check the app* ⚠️\nApp: my-app\nHeroku refused")
        await checks_applied(system, key, monitor, 3)
        assert len(slack_api.posted) == 1  # told once
        _, active = await call(system, "GET", "/v1/incidents/active", key)
        assert active == []
        # The key fixed: the app is read again (and its crash told).
        heroku.api_key = API_KEY
        await slack_api.wait_for(2)
        assert slack_api.texts()[1] == CRASH


async def test_an_unknown_app_shows_not_found(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, _slack_api):
        _, key = await system.create_project("unknown")
        monitor = await watch(system, key, app="no-such-app")
        got = await app_view(system, key, monitor, lambda v: v["state"] == "error")
        assert got["error"]["code"] == "not_found"
        assert got["error"]["message"] == "Heroku has no app named no-such-app (404), or the API key cannot see it"
        assert heroku.requested("no-such-app") >= 1 and heroku.requested("no-such-app", "dynos") == 0


async def test_429_backs_off_past_retry_after_for_every_prober(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, slack_api):
        heroku.add(standard_app(APP, SECRET_VALUE))
        heroku.throttle, heroku.retry_after = 1, "3600"
        _, key = await system.create_project("throttled")
        monitor = await watch(system, key)
        await heroku.wait_for_requests(APP, 1)
        pool: asyncpg.Pool = system.ingest.app[PG]
        row = await eventually(
            lambda: pool.fetchrow("SELECT * FROM heroku_checks WHERE monitor_id = $1", monitor["id"]),
            lambda r: r is not None and r["locked_until"] is None and r["failures"] == 1,
        )
        assert row["not_before"].timestamp() >= time.time() + 3000
        from heron_prober.heroku import HEROKU

        prober = system.others["prober"].app[HEROKU]
        ttl = await prober.redis.pttl(prober.pause_key)
        assert ttl > 3_000_000  # every prober pauses, not only for this app
        got = await app_view(system, key, monitor, lambda v: True)
        assert got["state"] == "new" and got["error"] is None and slack_api.posted == []  # not the app's fault

        # The wait over (as if an hour had passed), the app is checked again, the failures forgotten.
        await prober.redis.delete(prober.pause_key)
        await pool.execute("UPDATE heroku_checks SET not_before = now() WHERE monitor_id = $1", monitor["id"])
        await app_view(system, key, monitor, lambda v: v["state"] == "up")
        row = await pool.fetchrow("SELECT failures FROM heroku_checks WHERE monitor_id = $1", monitor["id"])
        assert row["failures"] == 0


async def test_a_low_ratelimit_remaining_pauses_checks(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, _slack_api):
        heroku.add(standard_app(APP, SECRET_VALUE))
        heroku.rate_remaining = 30  # below HERON_HEROKU_RATE_RESERVE (50)
        _, key = await system.create_project("budget")
        monitor = await watch(system, key)
        await app_view(system, key, monitor, lambda v: v["state"] == "up")
        from heron_prober.heroku import HEROKU

        prober = system.others["prober"].app[HEROKU]
        assert await prober.redis.pttl(prober.pause_key) > 30_000
        assert (await prober.redis.get(prober.pause_key)).decode().startswith("RateLimit-Remaining 2")


async def test_two_probers_never_check_an_app_twice(settings: Settings) -> None:
    from heron_prober.app import create_app as prober_app

    # A check_interval minute of an hour: each app is due exactly once during the test.
    async with heroku_system(settings, heroku_minute=3600.0, heroku_concurrency=1) as (system, heroku, _slack_api):
        second = await start(prober_app(system.settings))
        try:
            apps = [f"app-{n}" for n in range(6)]
            for name in apps:
                heroku.add(standard_app(name, SECRET_VALUE))
            _, key = await system.create_project("two probers")
            monitors = [await watch(system, key, app=name) for name in apps]
            for monitor in monitors:
                await app_view(system, key, monitor, lambda v: v["state"] == "up")
            pool: asyncpg.Pool = system.ingest.app[PG]
            await eventually(
                lambda: pool.fetchval("SELECT count(*) FROM heroku_checks WHERE locked_until IS NOT NULL"),
                lambda n: n == 0,
            )
            assert {name: heroku.requested(name) for name in apps} == dict.fromkeys(apps, 1)
        finally:
            await second.runner.cleanup()


def signed(body: bytes, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    from heron_common import slack

    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack.sign(secret, timestamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command(text: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0001",
            "channel_id": "C2147483705",
            "user_id": "U2147483697",
            "command": "/heroku-status",
            "text": text,
            "response_url": "https://hooks.slack.com/commands/1234/5678",
        }
    ).encode()


async def slash(system: System, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with system.http.post(f"{system.ingest.url}/slack/commands", data=body, headers=headers) as r:
        return r.status, await r.json()


async def test_heroku_status_answers_signed_commands_from_the_latest_snapshot(settings: Settings) -> None:
    async with heroku_system(settings) as (system, heroku, _slack_api):
        app = heroku.add(standard_app(APP, SECRET_VALUE))
        app.set_dyno("worker.1", "crashed")
        _, key = await system.create_project("status")
        monitor = await watch(system, key)
        await app_view(system, key, monitor, lambda v: v["state"] == "down")

        body = command(APP)
        status, answer = await slash(system, body, signed(body))
        assert status == 200 and answer["response_type"] == "in_channel"
        text = answer["text"]
        assert text.startswith("🤠 *Heroku status: my-app* — *ACTIVE*")
        assert "• web.1 (web): up" in text and "• worker.1 (worker): crashed" in text
        assert "*Release:* v2 by user@example.com" in text
        assert "• postgresql-rigid-12345 (heroku-postgresql): provisioned" in text and "*Last check:* " in text
        # No app named: the project's only app.
        body = command("")
        status, answer = await slash(system, body, signed(body))
        assert status == 200 and answer["text"].startswith("🤠 *Heroku status: my-app*")

        body = command("other-app")
        status, answer = await slash(system, body, signed(body))
        assert status == 200 and answer["response_type"] == "ephemeral"
        assert "I don't monitor a Heroku app named *other-app*" in answer["text"]
        assert "Monitored apps: my-app. Try `/heroku-status my-app`." in answer["text"]

        # Paused: INACTIVE.
        status, _ = await call(system, "POST", f"/v1/monitors/{monitor['id']}/pause", key)
        assert status == 200
        body = command(APP)
        _, answer = await slash(system, body, signed(body))
        assert "*INACTIVE*" in answer["text"] and "Monitoring is paused." in answer["text"]


async def test_unsigned_badly_signed_or_stale_commands_are_401(settings: Settings) -> None:
    async with heroku_system(settings) as (system, _heroku, _slack_api):
        body = command(APP)
        for headers in (
            {"Content-Type": "application/x-www-form-urlencoded"},
            signed(body, secret="not-the-secret"),
            signed(body, at=time.time() - 301),
            signed(body, at=time.time() + 301),
            {**signed(body), "X-Slack-Signature": "v0=" + "0" * 64},
        ):
            status, answer = await slash(system, body, headers)
            assert status == 401 and answer["error"]["code"] == "invalid_signature", (headers, answer)
        tampered = command("another-app")
        status, _ = await slash(system, tampered, signed(body))
        assert status == 401
    async with heroku_system(settings, slack_signing_secret=None) as (system, _heroku, _slack_api):
        status, answer = await slash(system, body, signed(body))
        assert status == 401 and "SLACK_SIGNING_SECRET" in answer["error"]["message"]


async def form(system: System, key: str | None, fields: dict[str, str]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with system.http.post(f"{system.ingest.url}/update-config", data=fields, headers=headers) as r:
        return r.status, await r.json()


async def test_update_config_applies_at_once_and_names_each_bad_field(settings: Settings) -> None:
    # An hour-long minute: only a change of config can make the prober look again during the test.
    async with heroku_system(settings, heroku_minute=3600.0) as (system, heroku, _slack_api):
        heroku.add(standard_app(APP, SECRET_VALUE))
        heroku.add(standard_app("other-app", SECRET_VALUE))
        _, key = await system.create_project("form")

        # The project has no Heroku monitor yet: the form creates it.
        status, created = await form(system, key, {"app_name": APP, "slack_channel": "#ops", "check_interval": "5"})
        assert status == 201, created
        assert (created["app_name"], created["slack_channel"], created["check_interval"]) == (APP, "#ops", 5)
        await app_view(system, key, created, lambda v: v["state"] == "up")

        bad = [
            ({"slack_channel": "#ops", "check_interval": "5"}, 422, "missing_field", "app_name"),
            ({"app_name": "", "slack_channel": "#ops", "check_interval": "5"}, 422, "missing_field", "app_name"),
            (
                {"app_name": "Not An App", "slack_channel": "#ops", "check_interval": "5"},
                422,
                "invalid_field",
                "app_name",
            ),
            ({"app_name": APP, "slack_channel": "#ops"}, 422, "missing_field", "check_interval"),
            ({"app_name": APP, "slack_channel": "", "check_interval": "5"}, 422, "missing_field", "slack_channel"),
            ({"app_name": APP, "slack_channel": "ops", "check_interval": "5"}, 422, "invalid_field", "slack_channel"),
            ({"app_name": APP, "slack_channel": "#ops", "check_interval": "0"}, 422, "invalid_field", "check_interval"),
            (
                {"app_name": APP, "slack_channel": "#ops", "check_interval": "61"},
                422,
                "invalid_field",
                "check_interval",
            ),
            ({"app_name": APP, "slack_channel": "#ops", "check_interval": "x"}, 422, "invalid_field", "check_interval"),
            ({"app_name": APP, "slack_channel": "#ops", "check_interval": ""}, 422, "invalid_field", "check_interval"),
            *(
                ({"monitor_id": odd, "app_name": APP, "slack_channel": "#ops", "check_interval": "5"}, 422,
                 "invalid_field", "monitor_id")
                for odd in ("\u00b2", "99999999999999999999", "0", "-1", "x")
            ),
        ]  # fmt: skip
        for fields, code, error, named in bad:
            status, answer = await form(system, key, fields)
            assert status == code and answer["error"]["code"] == error, (fields, answer)
            assert answer["error"]["message"].startswith(named), answer
        status, answer = await form(system, None, {"app_name": APP, "slack_channel": "#ops"})
        assert status == 401
        # JSON too, with unknown fields named.
        status, answer = await call(system, "POST", "/update-config", key, {"app_name": APP, "channel": "#ops"})
        assert status == 422 and "channel" in answer["error"]["message"]
        status, answer = await call(
            system, "POST", "/update-config", key, {"app_name": APP, "slack_channel": "#ops", "check_interval": 90}
        )
        assert status == 422 and answer["error"]["message"].startswith("check_interval")

        # Another app and interval: applied now (no restart), and the new app is checked at once.
        before = heroku.requested("other-app")
        status, changed = await form(
            system, key, {"app_name": "other-app", "slack_channel": "#alerts", "check_interval": "60"}
        )
        assert status == 200, changed
        assert (changed["app_name"], changed["slack_channel"], changed["check_interval"]) == (
            "other-app",
            "#alerts",
            60,
        )
        await heroku.wait_for_requests("other-app", before + 1)
        up = await app_view(system, key, created, lambda v: v["state"] == "up" and v["last_check_at"])
        assert up["app_name"] == "other-app"
        # The same as JSON.
        status, changed = await call(
            system,
            "POST",
            "/update-config",
            key,
            {"app_name": "other-app", "slack_channel": "#dev", "check_interval": 60},
        )
        assert status == 200 and changed["slack_channel"] == "#dev" and changed["check_interval"] == 60
        assert heroku.requested(APP) == 1  # the old app is no longer checked

        # Several apps: the form must say which.
        status, second = await call(system, "POST", "/v1/heroku-apps", key, {"app_name": APP, "slack_channel": "#ops"})
        assert status == 201
        status, answer = await form(system, key, {"app_name": APP, "slack_channel": "#ops", "check_interval": "5"})
        assert status == 422 and answer["error"]["message"].startswith("monitor_id")
        status, answer = await form(
            system,
            key,
            {"monitor_id": str(second["id"]), "app_name": APP, "slack_channel": "#dev", "check_interval": "2"},
        )
        assert status == 200 and answer["slack_channel"] == "#dev"
        status, answer = await form(
            system,
            key,
            {"monitor_id": str(second["id"]), "app_name": "other-app", "slack_channel": "#dev", "check_interval": "2"},
        )
        assert status == 409 and answer["error"]["code"] == "app_already_monitored"


async def test_the_heroku_apps_api(settings: Settings) -> None:
    async with heroku_system(settings, heroku_minute=3600.0) as (system, heroku, _slack_api):
        heroku.add(standard_app(APP, SECRET_VALUE))
        _, key = await system.create_project("api")
        _, other_key = await system.create_project("someone else")
        monitor = await watch(system, key, interval=10)
        await app_view(system, key, monitor, lambda v: v["state"] == "up")
        status, answer = await call(system, "POST", "/v1/heroku-apps", key, {"app_name": APP, "slack_channel": "#x"})
        assert status == 409
        status, answer = await call(
            system, "POST", "/v1/heroku-apps", key, {"app_name": "b-app", "slack_channel": "#x", "x": 1}
        )
        assert status == 422 and "unknown field x" in answer["error"]["message"]
        status, listed = await call(system, "GET", "/v1/heroku-apps", key)
        assert status == 200 and [m["id"] for m in listed] == [monitor["id"]]
        assert (await call(system, "GET", "/v1/heroku-apps", other_key))[1] == []
        assert (await call(system, "GET", f"/v1/heroku-apps/{monitor['id']}", other_key))[0] == 404
        assert (await call(system, "GET", "/v1/heroku-apps/99999999999999999999", key))[0] == 404
        status, changed = await call(system, "PATCH", f"/v1/heroku-apps/{monitor['id']}", key, {"check_interval": 30})
        assert status == 200 and changed["check_interval"] == 30 and changed["app_name"] == APP
        status, answer = await call(system, "PATCH", f"/v1/heroku-apps/{monitor['id']}", key, {"slack_channel": "x"})
        assert status == 422 and answer["error"]["message"].startswith("slack_channel")
        status, paused = await call(system, "POST", f"/v1/monitors/{monitor['id']}/pause", key)
        assert status == 200 and paused["state"] == "paused"
        got = await app_view(system, key, monitor, lambda v: True)
        assert got["paused"] and got["status"] == "INACTIVE"
        status, resumed = await call(system, "POST", f"/v1/monitors/{monitor['id']}/resume", key)
        assert status == 200 and resumed["state"] == "up"  # what its last check said
        # The kind's topics can be subscribed to like any other.
        status, endpoint = await call(
            system, "POST", "/v1/webhooks", key, {"url": "https://example.com/hook", "topics": ["heroku.*"]}
        )
        assert status == 201, endpoint
        status, topics = await call(system, "GET", "/v1/topics", None)
        assert {"heroku.dyno_crashed", "heroku.deploy", "heroku.config_changed"} <= {t["topic"] for t in topics}
        status, _ = await call(system, "DELETE", f"/v1/heroku-apps/{monitor['id']}", key)
        assert status == 204
        assert (await call(system, "GET", f"/v1/heroku-apps/{monitor['id']}", key))[0] == 404


async def test_the_environment_seeds_the_first_monitor_once(settings: Settings, pg: Any, project: Any) -> None:
    project_id, key = project
    seeded = replace(settings, heroku_seed_app=APP, heroku_seed_channel="#ops", heroku_seed_interval=7)
    async with heroku_system(seeded, heroku_minute=3600.0) as (system, heroku, _slack_api):
        heroku.add(standard_app(APP, SECRET_VALUE))
        _, [monitor] = await eventually(lambda: call(system, "GET", "/v1/heroku-apps", key), lambda r: len(r[1]) == 1)
        assert (monitor["app_name"], monitor["slack_channel"], monitor["check_interval"]) == (APP, "#ops", 7)
        await app_view(system, key, monitor, lambda v: v["state"] == "up")
        assert (await call(system, "DELETE", f"/v1/heroku-apps/{monitor['id']}", key))[0] == 204
    # Started again with the same environment: the deleted monitor stays deleted.
    from heron_ingest.heroku_api import seed_once

    assert await seed_once(pg, seeded) == "seeded before"
    assert await pg.fetchval("SELECT count(*) FROM monitors WHERE kind = 'heroku'") == 0
    row = await pg.fetchrow("SELECT * FROM seeds")
    assert row["project_id"] == project_id and row["monitor_id"] == monitor["id"]


async def test_no_heroku_key_shows_the_error(settings: Settings) -> None:
    async with heroku_system(settings, heroku_api_key=None) as (system, heroku, _slack_api):
        _, key = await system.create_project("no key")
        monitor = await watch(system, key)
        got = await app_view(system, key, monitor, lambda v: v["state"] == "error")
        assert got["error"]["code"] == "no_key" and "HEROKU_API_KEY" in got["error"]["message"]
        assert heroku.requests == []


async def test_malformed_forms_and_commands_answer_json_errors_never_500(settings: Settings) -> None:
    async with heroku_system(settings) as (system, _heroku, _slack_api):
        _, key = await system.create_project("bad input")
        auth = {"Authorization": f"Bearer {key}"}
        cases = [
            (b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=y"}),
            (b"--x\r\nbroken", {"Content-Type": "multipart/form-data"}),
            (b"app_name=\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}),
            (b"[1, 2]", {"Content-Type": "application/json"}),
            (b"{not json", {"Content-Type": "application/json"}),
            (
                b"app_name=my-app&slack_channel=%23ops%00&check_interval=5",
                {"Content-Type": "application/x-www-form-urlencoded"},
            ),
            (
                b"monitor_id=99999999999999999999999&app_name=my-app&slack_channel=%23ops&check_interval=5",
                {"Content-Type": "application/x-www-form-urlencoded"},
            ),
            (b"monitor_id=" + b"9" * 5000, {"Content-Type": "application/x-www-form-urlencoded"}),
        ]
        for body, headers in cases:
            async with system.http.post(
                f"{system.ingest.url}/update-config", data=body, headers={**auth, **headers}
            ) as r:
                answer = await r.json()
                assert 400 <= r.status < 500 and set(answer["error"]) == {"code", "message"}, (body, r.status, answer)
        raw = b"command=%2Fheroku-status&text=\xff"
        status, answer = await slash(system, raw, signed(raw))
        assert status == 400 and answer["error"]["code"] == "invalid_form"
        other = b"command=%2Fdeploy&text=now"
        status, answer = await slash(system, other, signed(other))
        assert status == 200 and answer["response_type"] == "ephemeral"
