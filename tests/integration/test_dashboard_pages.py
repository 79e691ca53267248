"""The dashboard's Probes and Heroku pages and the per-service badges over plain HTTP: the Heroku
form posted by a signed-in browser to ``/update-config`` (CSRF, the session's project, every bad
field beside its field, the API's answer unchanged for key holders), the probe forms' CSRF,
another project's probes and Heroku apps never visible nor changeable, and a service's badge
showing the worst state of its monitors. (The browser tests drive the same pages in Chromium.)"""

from __future__ import annotations

import html
import re
from typing import Any

import aiohttp

from heron_common.service import PG
from heron_common.settings import Settings
from tests.integration.test_dashboard import api, browser, csrf_of, sign_in
from tests.support.system import System, running_system
from tests.support.waiting import eventually

TARGET = "http://127.0.0.1:9/health"  # never probed here (no prober runs)


async def new_probe(system: System, key: str, name: str, service: str = "API") -> dict[str, Any]:
    status, body = await api(system, "POST", "/v1/probes", key, {"url": TARGET, "name": name, "service": service})
    assert status == 201, body
    return body


async def new_heroku(system: System, key: str, app: str, channel: str = "#ops") -> dict[str, Any]:
    status, body = await api(system, "POST", "/v1/heroku-apps", key, {"app_name": app, "slack_channel": channel})
    assert status == 201, body
    return body


async def post(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> tuple[int, str, str | None]:
    async with http.post(url, data=form, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location")


def error_beside(page: str, field: str) -> str | None:
    """The error shown beside ``field`` of the page's main form (``e-<field>``), unescaped."""
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return html.unescape(match[1]) if match else None


async def test_the_heroku_form_posts_to_update_config_with_the_session(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        project_id, key = await system.create_project("saloon")
        await sign_in(http, system.ingest.url, key)
        page_url = f"{system.ingest.url}/dashboard/p/{project_id}/heroku"
        token = await csrf_of(http, page_url)
        update = f"{system.ingest.url}/update-config"

        # Every field wrong at once: each message beside its own field, what was typed kept.
        bad = {"app_name": "My App", "slack_channel": "ops", "check_interval": "90"}
        status, page, _ = await post(http, update, {"csrf_token": token, "project_id": str(project_id), **bad})
        assert status == 422
        for field in ("app_name", "slack_channel", "check_interval"):
            _, answer = await api(system, "POST", "/update-config", key, {**bad, **_fixed_but(field)})
            assert error_beside(page, field) == answer["error"]["message"], field
        assert 'value="My App"' in page and 'aria-invalid="true"' in page
        status, page, _ = await post(http, update, {"csrf_token": token, "project_id": str(project_id)})
        assert status == 422 and error_beside(page, "slack_channel") == "slack_channel is required"
        assert (await api(system, "GET", "/v1/heroku-apps", key))[1] == []

        # Valid: created, then changed; back to the page with a notice, the change shown.
        good = {"app_name": "my-app", "slack_channel": "#ops", "check_interval": "5"}
        status, _, location = await post(http, update, {"csrf_token": token, "project_id": str(project_id), **good})
        assert status == 303 and location == f"/dashboard/p/{project_id}/heroku?notice=heroku_created"
        _, [created] = await api(system, "GET", "/v1/heroku-apps", key)
        assert (created["app_name"], created["slack_channel"], created["check_interval"]) == ("my-app", "#ops", 5)
        changed = {"app_name": "other-app", "slack_channel": "#alerts", "check_interval": "1"}
        form = {"csrf_token": token, "project_id": str(project_id), "monitor_id": str(created["id"]), **changed}
        status, _, location = await post(http, update, form)
        assert status == 303 and location == f"/dashboard/p/{project_id}/heroku?notice=heroku_saved"
        async with http.get(page_url + "?notice=heroku_saved") as r:
            shown = await r.text()
        assert "Heroku monitoring updated" in shown and "other-app" in shown and "#alerts" in shown
        assert 'data-status="INACTIVE"' in shown  # never checked (no prober here)
        _, now = await api(system, "GET", f"/v1/heroku-apps/{created['id']}", key)
        assert (now["app_name"], now["slack_channel"], now["check_interval"]) == ("other-app", "#alerts", 1)

        # The API's answers are unchanged for key holders, cookie or not.
        async with http.post(update, data=good, headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 200 and (await r.json())["app_name"] == "my-app"
        async with http.post(update, data={**good, "api_key": key, "check_interval": "0"}) as r:
            assert r.status == 422 and (await r.json())["error"]["message"].startswith("check_interval")

        # In a browser, GET /update-config leads to the page.
        async with http.get(update, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/dashboard/p/{project_id}/heroku"


def _fixed_but(field: str) -> dict[str, str]:
    """Valid values for every field but ``field`` (so the API names that one)."""
    good = {"app_name": "my-app", "slack_channel": "#ops", "check_interval": "5"}
    return {k: v for k, v in good.items() if k != field}


async def test_the_new_forms_refuse_a_missing_or_forged_csrf_token(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        project_id, key = await system.create_project("forgery")
        probe = await new_probe(system, key, "Untouched probe")
        heroku = await new_heroku(system, key, "my-app")
        await sign_in(http, system.ingest.url, key)
        async with browser() as other:
            await sign_in(other, system.ingest.url, key)
            foreign = await csrf_of(other, f"{system.ingest.url}/dashboard/p/{project_id}/heroku")
        base = f"{system.ingest.url}/dashboard/p/{project_id}/probes"
        fields = {"app_name": "evil-app", "slack_channel": "#evil", "check_interval": "1", "url": "http://x.example/"}
        targets = [
            f"{system.ingest.url}/update-config",
            base,
            f"{base}/{probe['id']}/edit",
            f"{base}/{probe['id']}/pause",
            f"{base}/{probe['id']}/resume",
        ]
        for url in targets:
            for token in ({}, {"csrf_token": "forged"}, {"csrf_token": foreign}):
                form = {**fields, **token, "project_id": str(project_id), "monitor_id": str(heroku["id"])}
                status, page, _ = await post(http, url, form)
                assert status == 403 and "This form has expired" in page, (url, token, status)
        _, app = await api(system, "GET", f"/v1/heroku-apps/{heroku['id']}", key)
        assert app["app_name"] == "my-app" and app["slack_channel"] == "#ops"
        _, probes = await api(system, "GET", "/v1/probes", key)
        assert [(p["name"], p["state"]) for p in probes] == [("Untouched probe", "new")]

        # A test key may look at the pages, never change through them.
        _, test_key = await api(system, "POST", f"/v1/projects/{project_id}/keys", settings.admin_token, {"test": True})
        async with browser() as looker:
            await sign_in(looker, system.ingest.url, test_key["api_key"])
            token = await csrf_of(looker, f"{system.ingest.url}/dashboard/p/{project_id}/heroku")
            status, page, _ = await post(
                looker,
                f"{system.ingest.url}/update-config",
                {**fields, "csrf_token": token, "project_id": str(project_id)},
            )
            assert status == 403 and "test key" in page
        # A form the server cannot read is a page too, never a 500.
        async with http.post(
            f"{system.ingest.url}/update-config",
            data=b"--x\r\nbroken",
            headers={"Content-Type": "multipart/form-data; boundary=y"},
        ) as r:
            assert r.status in (400, 403) and r.content_type == "text/html"


async def test_another_projects_probes_and_heroku_apps_are_never_visible(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        mine, my_key = await system.create_project("mine")
        theirs, their_key = await system.create_project("theirs")
        my_probe = await new_probe(system, my_key, "My probe")
        their_probe = await new_probe(system, their_key, "Their secret probe")
        their_app = await new_heroku(system, their_key, "their-secret-app", "#their-channel")
        await sign_in(http, system.ingest.url, my_key)
        base = f"{system.ingest.url}/dashboard/p"
        for path in ("/", "/probes", "/heroku", f"/monitors/{my_probe['id']}"):
            async with http.get(f"{base}/{mine}{path}") as r:
                text = await r.text()
                assert r.status == 200, path
                assert "Their secret probe" not in text and "their-secret-app" not in text, path
        for url in (
            f"{base}/{theirs}/probes",
            f"{base}/{theirs}/heroku",
            f"{base}/{mine}/probes/{their_probe['id']}/edit",
            f"{base}/{mine}/monitors/{their_app['id']}",
        ):
            async with http.get(url, allow_redirects=False) as r:
                assert r.status == 404, url
                assert "Their secret probe" not in await r.text()
        # Even with this session's valid token, their probe and their Heroku app stay theirs.
        token = await csrf_of(http, f"{base}/{mine}/probes")
        for action in ("pause", "edit"):
            status, _, _ = await post(
                http, f"{base}/{mine}/probes/{their_probe['id']}/{action}", {"csrf_token": token, "url": TARGET}
            )
            assert status == 404, action
        hijack = {"csrf_token": token, "app_name": "hijacked", "slack_channel": "#mine", "check_interval": "1"}
        for form in (
            {**hijack, "project_id": str(theirs)},  # their project
            {**hijack, "project_id": str(mine), "monitor_id": str(their_app["id"])},  # their monitor
        ):
            status, page, _ = await post(http, f"{system.ingest.url}/update-config", form)
            assert status == 404 and "their-secret-app" not in page, form
        _, app = await api(system, "GET", f"/v1/heroku-apps/{their_app['id']}", their_key)
        assert (app["app_name"], app["slack_channel"]) == ("their-secret-app", "#their-channel")
        _, probe = await api(system, "GET", f"/v1/probes/{their_probe['id']}", their_key)
        assert probe["state"] == "new" and probe["name"] == "Their secret probe"
        assert (await api(system, "GET", "/v1/heroku-apps", my_key))[1] == []


SERVICE_BADGE = re.compile(
    r'<tr data-service="([^"]+)" data-state="(\w+)">.*?<img src="(/badge/service/[^"]+\.svg)"', re.S
)


async def service_badges(http: aiohttp.ClientSession, system: System, project_id: int) -> dict[str, tuple[str, str]]:
    """Each service on the overview: its state there and its badge path."""
    async with http.get(f"{system.ingest.url}/dashboard/p/{project_id}/") as r:
        page = await r.text()
    return {html.unescape(name): (state, path) for name, state, path in SERVICE_BADGE.findall(page)}


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def test_a_service_badge_shows_the_worst_state_of_its_monitors(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        project_id, key = await system.create_project("badges")
        other_project, other_key = await system.create_project("others")
        status, service = await api(system, "POST", "/v1/services", key, {"name": "API/v2 <public>"})
        assert status == 201
        name = service["name"]
        _, trigger = await api(system, "POST", "/v1/triggers", key, {"name": "5xx rate", "service_id": service["id"]})
        await new_probe(system, key, "Health", service=name)  # new: never probed here
        hb = {"name": "Nightly", "interval": 3600, "grace": 60, "service": "Batch"}
        assert (await api(system, "POST", "/v1/heartbeats", key, hb))[0] == 201
        await new_probe(system, other_key, "Theirs", service=name)  # the same name, another project

        await sign_in(http, system.ingest.url, key)
        shown = await service_badges(http, system, project_id)
        assert set(shown) == {name, "Batch"}
        assert shown[name][0] == "up" and shown["Batch"][0] == "new"  # a new probe hides no up trigger
        path = shown[name][1]
        async with aiohttp.ClientSession() as anyone:  # no session: the URL is the credential
            async with anyone.get(system.ingest.url + path) as r:
                assert r.status == 200 and r.content_type == "image/svg+xml"
                svg = await r.text()
                assert "API/v2 &lt;public&gt;" in svg and ">up<" in svg and "<public>" not in svg
            status, body = await fetch(anyone, system.ingest.url + path.replace(".svg", ".json"))
            assert status == 200 and body["service"] == name and body["status"] == "up"
            assert body["monitors"] == {"up": 1, "new": 1} and body["message"] == "up"

            # The trigger alerts: the service is down; acknowledged, it says so.
            assert (await api(system, "POST", f"/triggers/{trigger['id']}/alert", key))[0] == 200
            json_url = system.ingest.url + path.replace(".svg", ".json")
            await eventually(lambda: fetch(anyone, json_url), lambda r: r[1]["status"] == "down")
            assert (await api(system, "POST", f"/triggers/{trigger['id']}/acknowledge", key))[0] == 200
            await eventually(lambda: fetch(anyone, json_url), lambda r: r[1]["status"] == "acknowledged")
            assert (await service_badges(http, system, project_id))[name][0] == "acknowledged"

            # Only the exact URL: another service's slug, another project, a changed token.
            _, _, project_part, slug, token_ext = path.strip("/").split("/")
            batch_slug = shown["Batch"][1].split("/")[4]
            wrong = [
                f"/badge/service/{project_part}/{batch_slug}/{token_ext}",
                f"/badge/service/{other_project}/{slug}/{token_ext}",
                f"/badge/service/{project_part}/{slug}/{'B' if token_ext[0] != 'B' else 'C'}{token_ext[1:]}",
                f"/badge/service/{project_part}/{slug}=/{token_ext}",
                f"/badge/service/abc/{slug}/{token_ext}",
                f"/badge/service/{project_part}/%00/{token_ext}",
                f"/badge/service/{project_part}/{slug}/x.json",
            ]
            for url in wrong:
                status, body = await fetch(anyone, system.ingest.url + url)
                assert status == 404 and body["error"]["code"] == "not_found", url
            # A service whose monitors are all gone has no badge.
            for monitor in (await api(system, "GET", "/v1/monitors", key))[1]:
                if monitor.get("service") == name:
                    assert (await api(system, "DELETE", f"/v1/monitors/{monitor['id']}", key))[0] in (202, 204)
            await eventually(lambda: fetch(anyone, json_url), lambda r: r[0] == 404)


async def test_editing_a_probe_keeps_its_masked_credentials(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        project_id, key = await system.create_project("edits")
        fields = {
            "url": TARGET,
            "service": "API",
            "method": "GET",
            "headers": {"Authorization": "Bearer s3cret-value", "Accept": "application/json"},
            "json_path": "$.status",
            "json_equals": "ok",
        }
        status, probe = await api(system, "POST", "/v1/probes", key, fields)
        assert status == 201, probe
        await sign_in(http, system.ingest.url, key)
        edit = f"{system.ingest.url}/dashboard/p/{project_id}/probes/{probe['id']}/edit"
        async with http.get(edit) as r:
            page = await r.text()
        assert "s3cret-value" not in page and "Authorization: ***" in page
        assert 'name="json_equals" type="text" value="&#34;ok&#34;"' in page  # JSON, as the form reads it
        token = await csrf_of(http, edit)
        form = {
            "csrf_token": token,
            "url": TARGET,
            "service": "API",
            "method": "GET",
            "headers": "Authorization: ***\nAccept: application/json",
            "interval": "120",
            "timeout": "300",
            "expected_status": "200",
            "json_path": "$.status",
            "json_equals": '"ok"',
        }
        status, _, location = await post(http, edit, form)
        assert status == 303 and location == f"/dashboard/p/{project_id}/probes?notice=probe_saved"
        config = await system.ingest.app[PG].fetchval("SELECT config FROM monitors WHERE id = $1", probe["id"])
        assert config["headers"] == {"Authorization": "Bearer s3cret-value", "Accept": "application/json"}
        assert (config["interval"], config["expected_status"], config["json_equals"]) == (120.0, [200], "ok")
        # An emptied service is the API's error, beside the field; nothing changes.
        status, page, _ = await post(http, edit, {**form, "service": "", "interval": "60"})
        assert status == 422 and error_beside(page, "service") == "service cannot be removed"
        _, shown = await api(system, "GET", f"/v1/probes/{probe['id']}", key)
        assert shown["interval"] == 120.0 and shown["service"] == "API"
