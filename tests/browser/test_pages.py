"""The Heroku and Probes pages in headless Chromium, with a prober running against local stand-ins:
the fake Heroku Platform API (tests/support/fake_heroku.py) and a local HTTP endpoint to probe.

- the Heroku form with invalid values (each field's error next to it, nothing changed), then
  valid ones: the change shows at once and the prober checks the new app straight away;
- a probe created with an invalid value, then a valid one: probed at once, its last result and
  timings on the page, its results on the monitor page, paused from the list;
- the service's status badge on the overview; labels on every field and the badges' contrast on
  the new pages. Screenshots in ``.artifacts/screenshots/``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from heron_common import db
from heron_common.badges import MIN_CONTRAST, contrast_ratio
from tests.browser.conftest import World, screenshot
from tests.browser.test_dashboard import BADGE_COLOURS, UNLABELLED, signed_in
from tests.support.fake_heroku import API_KEY, SECRET_VALUE, FakeHeroku, standard_app
from tests.support.servers import ServerURLs
from tests.support.system import running_system
from tests.support.testenv import copy_database, make_settings, remove_namespace
from tests.support.waiting import eventually


@dataclass
class Ranch(World):
    heroku: FakeHeroku
    target: str  # a local endpoint that answers 200


async def _health(_: web.Request) -> web.Response:
    return web.Response(text="all good")


@pytest.fixture(scope="module")
async def ranch(servers: ServerURLs, template_database: str) -> AsyncIterator[Ranch]:
    url = await copy_database(template_database)
    heroku = await FakeHeroku(API_KEY).start()
    endpoint = web.Application()
    endpoint.router.add_route("*", "/{tail:.*}", _health)
    runner = web.AppRunner(endpoint)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = make_settings(
        servers,
        url,
        session_secret=secrets.token_urlsafe(32),
        heroku_api_key=API_KEY,
        heroku_api_url=heroku.url,
        # An hour-long "minute": only a new configuration makes the prober check an app again.
        heroku_minute=3600.0,
        heroku_poll_interval=0.05,
        probe_poll_interval=0.05,
    )
    try:
        async with running_system(settings, services=("detector", "prober")) as system:
            yield Ranch(system, heroku, f"http://127.0.0.1:{port}/health")
    finally:
        await runner.cleanup()
        await heroku.stop()
        await remove_namespace(settings)
        await db.drop_database(url)


async def accessible(page: Any, name: str) -> None:
    """Every field of the page labelled; every badge (state, ACTIVE/INACTIVE) readable."""
    assert await page.evaluate(UNLABELLED) == [], name
    for badge in await page.evaluate(BADGE_COLOURS):
        ratio = contrast_ratio(badge["color"], badge["background"])
        assert ratio >= MIN_CONTRAST, (name, badge, ratio)


async def test_the_heroku_form_with_invalid_then_valid_values(browser: Any, ranch: Ranch) -> None:
    ranch.heroku.add(standard_app("my-app", SECRET_VALUE))
    ranch.heroku.add(standard_app("other-app", SECRET_VALUE))
    project_id, key = await ranch.project("Rodeo Ranch")
    status, created = await ranch.api(
        "POST", "/v1/heroku-apps", key, {"app_name": "my-app", "slack_channel": "#ops", "check_interval": 5}
    )
    assert status == 201, created
    app_url = f"/v1/heroku-apps/{created['id']}"
    await eventually(lambda: ranch.api("GET", app_url, key), lambda r: r[1]["state"] == "up")

    page = await signed_in(browser, ranch, key, project_id)
    await page.click('nav a:text("Heroku")')
    card = page.locator(f"#heroku-{created['id']}")
    assert await card.locator(".status").inner_text() == "ACTIVE"
    assert await card.locator(".slack-channel").inner_text() == "#ops"
    assert await card.locator(".check-interval").inner_text() == "every 5 minutes"
    assert await card.locator('tr[data-dyno="web.1"] .badge').inner_text() == "up"
    assert "v2 by user@example.com" in await card.locator(".release").inner_text()
    assert "🤠" in await page.inner_text("h1") and "🌵" in await page.inner_text("footer")
    await accessible(page, "heroku")
    await screenshot(page, "30-heroku")

    # Invalid: every field's own message beside it, what was typed kept, nothing changed.
    await page.fill("#f-app_name", "Not An App")
    await page.fill("#f-slack_channel", "ops")
    await page.fill("#f-check_interval", "61")
    async with page.expect_navigation() as navigation:
        await page.click(f'#heroku-form-{created["id"]} button[type="submit"]')
    assert (await navigation.value).status == 422
    good = {"app_name": "my-app", "slack_channel": "#ops", "check_interval": "5"}
    bad = {"app_name": "Not An App", "slack_channel": "ops", "check_interval": "61"}
    for field in good:
        _, answer = await ranch.api("POST", "/update-config", key, {**good, field: bad[field]})
        assert (await page.inner_text(f"#e-{field}")).strip() == answer["error"]["message"], field
        assert await page.get_attribute(f"#f-{field}", "aria-invalid") == "true"
        assert f"e-{field}" in (await page.get_attribute(f"#f-{field}", "aria-describedby") or "")
    assert await page.input_value("#f-app_name") == "Not An App"
    await accessible(page, "heroku-invalid")
    await screenshot(page, "31-heroku-invalid")
    _, unchanged = await ranch.api("GET", app_url, key)
    assert (unchanged["app_name"], unchanged["slack_channel"]) == ("my-app", "#ops")

    # Valid: applied at once, shown on the page, and the prober checks the new app straight away.
    before = ranch.heroku.requested("other-app")
    await page.fill("#f-app_name", "other-app")
    await page.fill("#f-slack_channel", "#alerts")
    await page.fill("#f-check_interval", "1")
    await page.click(f'#heroku-form-{created["id"]} button[type="submit"]')
    await page.wait_for_selector("p.notice")
    assert "updated" in await page.inner_text("p.notice")
    assert await card.locator(".app-name").inner_text() == "other-app"
    assert await card.locator(".slack-channel").inner_text() == "#alerts"
    assert await card.locator(".check-interval").inner_text() == "every 1 minute"
    await ranch.heroku.wait_for_requests("other-app", before + 1)
    await eventually(
        lambda: ranch.api("GET", app_url, key),
        lambda r: r[1]["app_name"] == "other-app" and r[1]["state"] == "up" and r[1]["last_check_at"] is not None,
    )
    await page.reload()
    assert await card.locator(".status").inner_text() == "ACTIVE"
    assert await card.locator('tr[data-dyno="worker.1"] .badge').inner_text() == "up"
    await screenshot(page, "32-heroku-updated")
    # Its monitor page shows the latest check too (no history is kept: the latest one).
    await card.locator(f'a[href$="/monitors/{created["id"]}"]').click()
    check = page.locator("#heroku-check")
    assert await check.locator('tr[data-dyno="worker.1"] .badge').inner_text() == "up"
    assert "every 1 minute" in await check.inner_text()
    await accessible(page, "monitor-heroku")
    await screenshot(page, "38-monitor-heroku")
    await page.context.close()

    # An app Heroku does not know: the page says why, INACTIVE, and the state is Error.
    project_id, key = await ranch.project("Ghost Town")
    status, ghost = await ranch.api("POST", "/update-config", key, {"app_name": "no-such-app", **_channel})
    assert status == 201, ghost
    await eventually(
        lambda: ranch.api("GET", f"/v1/heroku-apps/{ghost['id']}", key), lambda r: r[1]["state"] == "error"
    )
    page = await signed_in(browser, ranch, key, project_id)
    await page.goto(f"/dashboard/p/{project_id}/heroku")
    card = page.locator(f"#heroku-{ghost['id']}")
    assert await card.locator(".status").inner_text() == "INACTIVE"
    assert await card.get_attribute("data-state") == "error"
    assert "Heroku has no app named no-such-app" in await card.locator('[role="alert"]').inner_text()
    await accessible(page, "heroku-error")
    await screenshot(page, "37-heroku-error")
    await page.context.close()


_channel = {"slack_channel": "#ops", "check_interval": 5}


async def test_create_a_probe_with_an_invalid_then_a_valid_value(browser: Any, ranch: Ranch) -> None:
    project_id, key = await ranch.project("Stagecoach Line")
    page = await signed_in(browser, ranch, key, project_id)
    await page.click('nav a:text("Probes")')
    await page.fill("#f-url", ranch.target)
    await page.select_option("#f-method", "GET")
    await page.fill("#f-name", "Depot health")
    await page.fill("#f-service", "Depot")
    await page.fill("#f-interval", "5")  # below the minimum (60 s by default)
    await page.click("#probe-form details summary")  # the checks beyond the status code
    await page.fill("#f-body_contains", "all good")
    await page.click('#probe-form button[type="submit"]')
    # The API's own message beside the field; what was typed is kept.
    _, api_error = await ranch.api(
        "POST", "/v1/probes", key, {"url": ranch.target, "method": "GET", "service": "Depot", "interval": 5}
    )
    assert (await page.inner_text("#e-interval")).strip() == api_error["error"]["message"]
    assert await page.get_attribute("#f-interval", "aria-invalid") == "true"
    assert await page.input_value("#f-url") == ranch.target
    assert await page.input_value("#f-body_contains") == "all good"
    assert await page.locator("details[open] #f-body_contains").count() == 1  # the check stays in view
    await accessible(page, "probes-invalid")
    await screenshot(page, "33-probe-invalid")
    assert (await ranch.api("GET", "/v1/probes", key))[1] == []

    await page.fill("#f-interval", "60")
    await page.click('#probe-form button[type="submit"]')
    await page.wait_for_selector("p.notice")
    _, [probe] = await ranch.api("GET", "/v1/probes", key)
    assert (probe["name"], probe["method"], probe["interval"], probe["body_contains"]) == (
        "Depot health",
        "GET",
        60.0,
        "all good",
    )
    # Probed at once by the prober; the list shows the result and how long each phase took.
    await eventually(lambda: ranch.api("GET", f"/v1/probes/{probe['id']}", key), lambda r: r[1]["state"] == "up")
    await page.reload()
    row = page.locator(f'#probe-list tr[data-monitor-id="{probe["id"]}"]')
    assert await row.get_attribute("data-state") == "up"
    assert "HTTP 200" in await row.locator(".last-result").inner_text()
    assert "total" in await row.locator("dl.phases").inner_text()
    await accessible(page, "probes")
    await screenshot(page, "34-probes")

    # Its monitor page lists its results and charts their response times.
    await row.locator(f'a[href$="/monitors/{probe["id"]}"]').click()
    await page.wait_for_selector('#results tr[data-up="true"]')
    assert await page.locator("#latency-chart rect.bar").count() >= 1
    assert "response times" in (await page.text_content("#chart-title") or "").lower()
    await accessible(page, "monitor-probe")
    await screenshot(page, "35-monitor-probe")

    # The service's badge, on the overview.
    await page.click('nav a:text("Overview")')
    service = page.locator('#services tr[data-service="Depot"]')
    assert await service.get_attribute("data-state") == "up"
    img = service.locator("img")
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await img.element_handle())
    src = await img.get_attribute("src")
    async with ranch.system.http.get(ranch.url + (src or "").replace(".svg", ".json")) as r:
        assert r.status == 200 and (await r.json())["status"] == "up"
    await screenshot(page, "36-overview-services")

    # Paused from the list (the API's pause), and the edit form keeps its settings.
    await page.click('nav a:text("Probes")')
    await row.locator('button:text("Pause")').click()
    await page.wait_for_selector("p.notice")
    assert await row.get_attribute("data-state") == "paused"
    await row.locator('a:text("Edit")').click()
    assert await page.input_value("#f-interval") == "60"
    assert await page.input_value("#f-body_contains") == "all good"
    await accessible(page, "probe-edit")
    await screenshot(page, "42-probe-edit")
    await page.context.close()
