"""The dashboard as a person uses it, in headless Chromium: sign in, read every state, watch a
change arrive live, acknowledge an incident, redeliver a failed webhook, create a heartbeat with
invalid then valid values, never see another project's data, have a forged form refused, and the
accessibility basics (labels, keyboard, badge contrast). Each page is photographed to
``.artifacts/screenshots/``."""

from __future__ import annotations

from typing import Any

from heron_common.badges import MIN_CONTRAST, contrast_ratio
from tests.browser.conftest import World, screenshot
from tests.support.fakes import FakeReceiver
from tests.support.waiting import eventually

TIMEOUT = 15_000  # ms: bounds a broken run, not a timing assertion


async def signed_in(
    browser: Any, world: World, key: str, project_id: int, *, init_script: str | None = None, **context: Any
) -> Any:
    """A fresh browser context signed in through the sign-in link ``make run`` prints
    (``init_script`` runs in every page before the page's own scripts)."""
    ctx = await browser.new_context(base_url=world.url, **context)
    if init_script is not None:
        await ctx.add_init_script(init_script)
    page = await ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    await page.goto(f"/dashboard/signin#token={key}")
    await page.wait_for_url(f"**/dashboard/p/{project_id}/")
    assert key not in page.url  # the fragment is gone from the address bar
    return page


async def trigger(world: World, key: str, name: str, **fields: Any) -> dict[str, Any]:
    status, body = await world.api("POST", "/v1/triggers", key, {"name": name, **fields})
    assert status == 201, body
    return body


async def call(world: World, key: str, trigger_id: int, action: str) -> None:
    status, body = await world.api("POST", f"/triggers/{trigger_id}/{action}", key)
    assert status == 200, body


async def monitor_state(world: World, key: str, monitor_id: int, state: str) -> None:
    await eventually(lambda: world.api("GET", f"/v1/monitors/{monitor_id}", key), lambda r: r[1]["state"] == state)


async def six_states(world: World, key: str) -> dict[str, int]:
    """A project with a monitor in each state the dashboard shows; their ids by state."""
    ids: dict[str, int] = {}
    # new: a heartbeat that never pinged
    backup = {"name": "Nightly backup", "interval": 3600, "grace": 600}
    status, body = await world.api("POST", "/v1/heartbeats", key, backup)
    assert status == 201, body
    ids["new"] = body["id"]
    # late: a heartbeat whose short interval passed, inside a long grace period
    worker = {"name": "Queue worker", "interval": 0.3, "grace": 3600}
    status, body = await world.api("POST", "/v1/heartbeats", key, worker)
    assert status == 201, body
    ids["late"] = body["id"]
    async with world.system.http.get(body["ping_url"]) as r:
        assert r.status == 200
    # up: an event stream with a fixed expected interval (so it is up from its first event)
    status, _ = await world.api("POST", "/v1/track", key, {"event_name": "order.placed", "environment": "production"})
    assert status == 202
    monitors = await eventually(lambda: world.api("GET", "/v1/monitors", key), lambda r: len(r[1]) == 3)
    ids["up"] = next(m["id"] for m in monitors[1] if m["kind"] == "event")
    status, body = await world.api("PATCH", f"/v1/monitors/{ids['up']}", key, {"expected_interval": 3600, "grace": 600})
    assert status in (200, 202), body
    # down, acknowledged, paused: triggers
    ids["down"] = (await trigger(world, key, "Database CPU above 90%"))["id"]
    ids["acknowledged"] = (await trigger(world, key, "Disk almost full"))["id"]
    ids["paused"] = (await trigger(world, key, "Legacy cron"))["id"]
    await call(world, key, ids["down"], "alert")
    await call(world, key, ids["acknowledged"], "alert")
    await monitor_state(world, key, ids["acknowledged"], "alerting")
    await call(world, key, ids["acknowledged"], "acknowledge")
    status, body = await world.api("POST", f"/v1/monitors/{ids['paused']}/pause", key)
    assert status in (200, 202), body
    for state, monitor_id in ids.items():
        wanted = {"new": "new", "late": "late", "up": "up", "down": "alerting", "acknowledged": "acknowledged"}
        await monitor_state(world, key, monitor_id, wanted.get(state, "paused"))
    return ids


async def test_sign_in_and_see_every_monitor_in_its_state(browser: Any, world: World) -> None:
    project_id, key = await world.project("Dusty Gulch")
    ids = await six_states(world, key)
    page = await signed_in(browser, world, key, project_id)
    for state, monitor_id in ids.items():
        row = page.locator(f'#monitors tr[data-monitor-id="{monitor_id}"]')
        assert await row.get_attribute("data-state") == state
        label = (await row.locator(".badge").inner_text()).strip()
        assert label == {"acknowledged": "Acknowledged"}.get(state, state.capitalize())
    # Last seen, the expected interval and a sparkline of the recent event rate, per monitor.
    stream = page.locator(f'#monitors tr[data-monitor-id="{ids["up"]}"] td')
    assert await stream.nth(4).locator("time").count() == 1
    assert (await stream.nth(5).inner_text()).strip() not in ("", "—")
    assert "1 event in the last 24 hours" == await stream.nth(6).locator("svg.spark").get_attribute("aria-label")
    # Open incidents come first, above the monitors.
    assert await page.locator("#open-incidents tr[data-incident-id]").count() == 2
    await screenshot(page, "01-overview")
    # The detail page of the event stream: its cadence, chart and badge.
    await page.click(f'#monitors tr[data-monitor-id="{ids["up"]}"] a')
    await page.wait_for_url(f"**/monitors/{ids['up']}")
    assert "Learned cadence" in await page.inner_text("#cadence")
    badge = await page.get_attribute('img[alt^="Status badge"]', "src")
    async with world.system.http.get(world.url + badge) as r:
        assert r.status == 200 and r.content_type == "image/svg+xml" and ">up<" in await r.text()
    await screenshot(page, "02-monitor-event")
    # On a phone-sized screen the same overview still works.
    phone = await signed_in(browser, world, key, project_id, viewport={"width": 390, "height": 844})
    await screenshot(phone, "03-overview-phone")
    await page.context.close()
    await phone.context.close()


async def test_a_state_change_arrives_live_without_reloading(browser: Any, world: World) -> None:
    project_id, key = await world.project("Live Oak")
    watched = await trigger(world, key, "Payment gateway errors")
    page = await signed_in(browser, world, key, project_id)
    await page.wait_for_selector("body[data-live=connected]")
    row = f'#monitors tr[data-monitor-id="{watched["id"]}"]'
    assert await page.get_attribute(row, "data-state") == "up"
    await page.evaluate("window.__same_page = true")  # gone if the page were reloaded

    await call(world, key, watched["id"], "alert")

    await page.wait_for_selector(f'{row}[data-state="down"]')
    await page.wait_for_selector("#open-incidents tr[data-incident-id]")
    assert await page.evaluate("window.__same_page") is True
    assert "Payment gateway errors is alerting" in await page.inner_text("#toast")
    await screenshot(page, "04-overview-live-change")
    await page.context.close()


# The page's half-minute refresh never runs: whatever changes below can only have come live.
NO_QUIET_REFRESH = "window.setInterval = function () { return 0; };"


async def test_changes_that_alert_nobody_arrive_live_too(browser: Any, world: World) -> None:
    """A heartbeat's first ping, a trigger paused, a monitor created: no alert for any of them,
    each on the open page within moments (the monitor.changed notices)."""
    project_id, key = await world.project("Quiet Creek")
    sync = {"name": "Ranch sync", "interval": 3600, "grace": 600}
    status, beat = await world.api("POST", "/v1/heartbeats", key, sync)
    assert status == 201, beat
    windmill = await trigger(world, key, "Windmill pressure")
    page = await signed_in(browser, world, key, project_id, init_script=NO_QUIET_REFRESH)
    await page.wait_for_selector("body[data-live=connected]")
    beat_row = f'#monitors tr[data-monitor-id="{beat["id"]}"]'
    windmill_row = f'#monitors tr[data-monitor-id="{windmill["id"]}"]'
    assert await page.get_attribute(beat_row, "data-state") == "new"
    assert await page.get_attribute(windmill_row, "data-state") == "up"
    await page.evaluate("window.__same_page = true")  # gone if the page were reloaded

    # Paused through the API (a command the detector applies).
    status, body = await world.api("POST", f"/v1/monitors/{windmill['id']}/pause", key)
    assert status in (200, 202), body
    await page.wait_for_selector(f'{windmill_row}[data-state="paused"]')

    # The heartbeat's first ping (new -> up).
    async with world.system.http.get(beat["ping_url"]) as r:
        assert r.status == 200
    await page.wait_for_selector(f'{beat_row}[data-state="up"]')

    # A new monitor, created by someone else.
    created = await trigger(world, key, "Water tower level")
    await page.wait_for_selector(f'#monitors tr[data-monitor-id="{created["id"]}"][data-state="up"]')

    assert await page.evaluate("window.__same_page") is True
    assert (await page.inner_text("#toast")).strip() == ""  # none of it alerted: no toast, only fresh rows
    await screenshot(page, "04b-overview-live-quiet-changes")
    await page.context.close()


async def test_acknowledge_an_incident(browser: Any, world: World) -> None:
    project_id, key = await world.project("Tumbleweed")
    alarm = await trigger(world, key, "Checkout errors")
    await call(world, key, alarm["id"], "alert")
    await monitor_state(world, key, alarm["id"], "alerting")
    page = await signed_in(browser, world, key, project_id)
    await page.click('#open-incidents button[aria-label="Acknowledge: Checkout errors is alerting"]')
    await page.wait_for_selector("p.notice")
    assert "acknowledged" in (await page.inner_text("p.notice")).lower()
    assert await page.get_attribute(f'#monitors tr[data-monitor-id="{alarm["id"]}"]', "data-state") == "acknowledged"
    _, incidents = await world.api("GET", "/v1/incidents", key)
    assert incidents[0]["acknowledged_by"] == f"dashboard, api key {key[:10]}…{key[-4:]}"
    # The incidents page lists it, filtered to open ones.
    await page.click('nav a:text("Incidents")')
    await page.select_option("#f-status", "open")
    await page.click('form.filters button[type="submit"]')
    await page.wait_for_url("**/incidents?status=open**")
    assert await page.locator("#incident-list tr[data-incident-id]").count() == 1
    await screenshot(page, "05-incidents")
    await page.context.close()


async def test_redeliver_a_failed_webhook(browser: Any, world: World) -> None:
    project_id, key = await world.project("Pony Express")
    receiver = await FakeReceiver(script=[(500, {}, "the saloon is closed")]).start()
    try:
        status, body = await world.api("POST", "/v1/webhooks", key, {"url": receiver.url, "topics": ["incident.*"]})
        assert status == 201, body
        alarm = await trigger(world, key, "Stagecoach late")
        await call(world, key, alarm["id"], "alert")
        _, failed = await eventually(
            lambda: world.api("GET", "/v1/deliveries?status=failed", key), lambda r: len(r[1]) == 1
        )
        page = await signed_in(browser, world, key, project_id)
        await page.click('nav a:text("Webhooks")')
        row = f'tr[data-delivery-id="{failed[0]["id"]}"]'
        assert await page.get_attribute(row, "data-status") == "failed"
        assert "Failing" in await page.inner_text(f'tr[data-endpoint-id="{body["id"]}"]')
        await page.click(f"{row} details summary")
        assert "HTTP 500" in await page.inner_text(f"{row} details")
        await screenshot(page, "06-webhooks-failed")

        await page.click(f'{row} button:text("Redeliver")')
        await page.wait_for_selector("p.notice")
        await receiver.wait_for(1)
        await eventually(
            lambda: world.api("GET", f"/v1/deliveries/{failed[0]['id']}", key), lambda r: r[1]["status"] == "succeeded"
        )
        await page.reload()
        assert await page.get_attribute(row, "data-status") == "succeeded"
        await page.select_option("#f-status", "succeeded")
        await page.click('form.filters button[type="submit"]')
        await page.wait_for_url("**/webhooks?endpoint_id=&status=succeeded")
        assert await page.get_attribute(row, "data-status") == "succeeded"
        await screenshot(page, "07-webhooks-redelivered")
        await page.context.close()
    finally:
        await receiver.stop()


async def test_create_a_heartbeat_with_invalid_then_valid_values(browser: Any, world: World) -> None:
    project_id, key = await world.project("Chuckwagon")
    page = await signed_in(browser, world, key, project_id, permissions=["clipboard-read", "clipboard-write"])
    await page.click('nav a:text("Heartbeats")')
    await page.fill("#f-name", "Nightly invoice run")
    await page.fill("#f-interval", "whenever")
    await page.fill("#f-grace", "5m")
    await page.click('#heartbeat-form button[type="submit"]')
    # The API's own message, next to the field it is about; what was typed is kept.
    error = page.locator("#e-interval")
    _, api_error = await world.api(
        "POST", "/v1/heartbeats", key, {"name": "Nightly invoice run", "interval": "whenever", "grace": "5m"}
    )
    assert (await error.inner_text()).strip() == api_error["error"]["message"]
    assert await page.get_attribute("#f-interval", "aria-invalid") == "true"
    assert "e-interval" in (await page.get_attribute("#f-interval", "aria-describedby") or "")
    assert await page.input_value("#f-name") == "Nightly invoice run"
    await screenshot(page, "08-heartbeat-invalid")

    await page.fill("#f-interval", "1d")
    await page.click('#heartbeat-form button[type="submit"]')
    await page.wait_for_selector("p.notice")
    _, [created] = await world.api("GET", "/v1/heartbeats", key)
    assert (created["name"], created["interval"], created["grace"]) == ("Nightly invoice run", 86400.0, 300.0)
    row = page.locator(f'tr[data-monitor-id="{created["id"]}"]')
    assert created["ping_url"] in await row.inner_text()
    await row.locator("button.copy").click()
    await page.wait_for_selector('button.copy[data-copied="true"]')
    assert await page.evaluate("navigator.clipboard.readText()") == created["ping_url"]
    await screenshot(page, "09-heartbeats")
    # Editing goes through the API's change too.
    await row.locator('a:text("Edit")').click()
    await page.fill("#f-grace", "0.01s")
    await page.click('#heartbeat-form button[type="submit"]')
    assert "grace" in (await page.inner_text("#e-grace"))
    await page.fill("#f-grace", "10m")
    await page.click('#heartbeat-form button[type="submit"]')
    await page.wait_for_selector("p.notice")
    _, [changed] = await world.api("GET", "/v1/heartbeats", key)
    assert changed["grace"] == 600.0
    await page.context.close()


async def test_another_projects_data_is_never_visible(browser: Any, world: World) -> None:
    mine, my_key = await world.project("Mine")
    theirs, their_key = await world.project("Theirs")
    hidden = await trigger(world, their_key, "Their secret alarm")
    await call(world, their_key, hidden["id"], "alert")
    await monitor_state(world, their_key, hidden["id"], "alerting")
    _, [their_incident] = await world.api("GET", "/v1/incidents", their_key)

    page = await signed_in(browser, world, my_key, mine)
    for path in ("/", "/incidents", "/triggers", "/heartbeats", "/webhooks"):
        await page.goto(f"/dashboard/p/{mine}{path}")
        assert "Their secret alarm" not in await page.content()
    forbidden = (
        f"/dashboard/p/{theirs}/",
        f"/dashboard/p/{mine}/monitors/{hidden['id']}",
        f"/dashboard/p/{theirs}/incidents",
    )
    for path in forbidden:
        response = await page.goto(path)
        assert response.status == 404
        assert "Their secret alarm" not in await page.content()
    # Even a form with a valid CSRF token cannot reach another project's incident.
    await page.goto(f"/dashboard/p/{mine}/")
    csrf = await page.get_attribute('input[name="csrf_token"]', "value")
    response = await page.request.post(
        f"/dashboard/p/{mine}/incidents/{their_incident['id']}/acknowledge", form={"csrf_token": csrf}
    )
    assert response.status == 404
    _, [still] = await world.api("GET", "/v1/incidents", their_key)
    assert still["acknowledged_at"] is None
    await page.context.close()

    # The admin picks a project.
    admin = await browser.new_context(base_url=world.url)
    page = await admin.new_page()
    await page.goto(f"/dashboard/signin#token={world.system.settings.admin_token}")
    await page.wait_for_url("**/dashboard/projects")
    await page.click(f'tr[data-project-id="{theirs}"] a')
    await page.wait_for_url(f"**/dashboard/p/{theirs}/")
    assert "Their secret alarm" in await page.content()
    await page.goto("/dashboard/projects")
    await screenshot(page, "10-projects-admin")
    await admin.close()


async def test_forms_without_a_valid_csrf_token_are_refused(browser: Any, world: World) -> None:
    project_id, key = await world.project("Forgery")
    page = await signed_in(browser, world, key, project_id)
    await page.goto(f"/dashboard/p/{project_id}/heartbeats")
    await page.fill("#f-name", "Forged")
    await page.fill("#f-interval", "1h")
    await page.fill("#f-grace", "5m")
    await page.evaluate("document.querySelector('#heartbeat-form input[name=csrf_token]').remove()")
    async with page.expect_navigation() as navigation:
        await page.click('#heartbeat-form button[type="submit"]')
    assert (await navigation.value).status == 403
    assert "This form has expired" in await page.inner_text("h1")
    await screenshot(page, "11-csrf-refused")
    await page.go_back()
    await page.evaluate("document.querySelector('#heartbeat-form input[name=csrf_token]').value = 'forged'")
    async with page.expect_navigation() as navigation:
        await page.click('#heartbeat-form button[type="submit"]')
    assert (await navigation.value).status == 403
    _, heartbeats = await world.api("GET", "/v1/heartbeats", key)
    assert heartbeats == []
    await page.context.close()


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length))
  .filter(el => !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML)"""

BADGE_COLOURS = """() => [...document.querySelectorAll('.badge')].map(el => {
  const s = getComputedStyle(el);
  return {text: el.textContent.trim(), color: s.color, background: s.backgroundColor};
})"""


async def test_accessibility_basics(browser: Any, world: World) -> None:
    project_id, key = await world.project("Accessible Acres")
    ids = await six_states(world, key)
    page = await signed_in(browser, world, key, project_id)
    base = f"/dashboard/p/{project_id}"
    pages = {
        "overview": f"{base}/",
        "incidents": f"{base}/incidents",
        "heartbeats": f"{base}/heartbeats",
        "heartbeat-edit": f"{base}/heartbeats/{ids['new']}/edit",
        "triggers": f"{base}/triggers",
        "trigger-edit": f"{base}/triggers/{ids['down']}/edit",
        "webhooks": f"{base}/webhooks",
        "monitor-heartbeat": f"{base}/monitors/{ids['late']}",
        "monitor-trigger": f"{base}/monitors/{ids['down']}",
    }
    for n, (name, path) in enumerate(pages.items(), start=12):
        await page.goto(path)
        # Every form field has a label.
        assert await page.evaluate(UNLABELLED) == [], name
        # Every status badge keeps a contrast of 4.5:1 or more, from the colours the CSS gives it.
        for badge in await page.evaluate(BADGE_COLOURS):
            ratio = contrast_ratio(badge["color"], badge["background"])
            assert ratio >= MIN_CONTRAST, (name, badge, ratio)
        await screenshot(page, f"{n}-{name}")
    await page.goto(f"{base}/")
    shown = {b["text"] for b in await page.evaluate(BADGE_COLOURS)}
    assert {"New", "Up", "Late", "Down", "Acknowledged", "Paused"} <= shown

    # Keyboard only: the skip link comes first, then the menu, and Tab reaches the main action.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    for _ in range(40):
        await page.keyboard.press("Tab")
        label = await page.evaluate("document.activeElement.getAttribute('aria-label') || ''")
        if label.startswith("Acknowledge: Database CPU"):
            break
    else:
        raise AssertionError("Tab never reached the Acknowledge button")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("p.notice")
    assert await page.get_attribute(f'#monitors tr[data-monitor-id="{ids["down"]}"]', "data-state") == "acknowledged"

    # The sign-in page too.
    signin = await (await browser.new_context(base_url=world.url)).new_page()
    await signin.goto("/dashboard/signin")
    assert await signin.evaluate(UNLABELLED) == []
    await screenshot(signin, "21-signin")
    await signin.context.close()
    await page.context.close()


async def test_the_oncall_page(browser: Any, world: World) -> None:
    """Who is on call now and next for each service, the rotation text refused with the parser's
    own message beside the field (what was typed kept), then saved; the upcoming shifts."""
    project_id, key = await world.project("Night Watch")
    for email in ("alice@example.com", "bob@example.com"):
        status, body = await world.api("POST", "/v1/users", key, {"email": email, "name": email[:5]})
        assert status == 201, body
    spec = "alice@example.com, until Mon 9:00am PT\nbob@example.com, until Mon 9:00am PT\n"
    status, rotation = await world.api("POST", "/v1/rotations", key, {"name": "Platform", "spec": spec})
    assert status == 201, rotation
    status, service = await world.api("POST", "/v1/services", key, {"name": "Checkout"})
    assert status == 201, service
    status, body = await world.api(
        "PUT", f"/v1/services/{service['id']}/rotation", key, {"rotation_id": rotation["id"]}
    )
    assert status == 200, body
    _, oncall = await world.api("GET", f"/v1/services/{service['id']}/oncall", key)
    _, shifts = await world.api("GET", f"/v1/rotations/{rotation['id']}/shifts", key)

    page = await signed_in(browser, world, key, project_id)
    await page.click('nav a:text("On-call")')
    await page.wait_for_url(f"**/dashboard/p/{project_id}/oncall")
    row = page.locator('tr[data-service="Checkout"]')
    assert (await row.locator("td").nth(1).inner_text()).strip() == "Platform"
    assert oncall["now"]["email"] in await row.locator(".oncall-now").inner_text()
    assert oncall["next"]["email"] in await row.locator("td").nth(3).inner_text()
    section = page.locator(f'section[data-rotation-id="{rotation["id"]}"]')
    upcoming = await section.locator("tbody tr").all_inner_texts()
    assert upcoming and upcoming[0].startswith(oncall["now"]["email"])
    # The API's upcoming shifts, in the same order.
    assert [s["email"] for s in shifts[: len(upcoming)]] == [u.split("\t")[0] for u in upcoming]
    assert await page.input_value(f"#spec-{rotation['id']}") == spec
    assert await page.evaluate(UNLABELLED) == []
    await screenshot(page, "39-oncall")

    # A line the parser refuses: 422, its message next to the field, the text kept as typed.
    bad = "alice@example.com, until Mon 9:00am PT\ncarol@example.com until Tue\n"
    await page.fill(f"#spec-{rotation['id']}", bad)
    async with page.expect_navigation() as navigation:
        await section.locator('button[type="submit"]').click()
    assert (await navigation.value).status == 422
    _, api_error = await world.api("PATCH", f"/v1/rotations/{rotation['id']}", key, {"spec": bad})
    error = page.locator(f"#e-spec-{rotation['id']}")
    assert (await error.inner_text()).strip() == api_error["error"]["message"]
    assert "line 2" in api_error["error"]["message"]
    assert await page.get_attribute(f"#spec-{rotation['id']}", "aria-invalid") == "true"
    assert await page.input_value(f"#spec-{rotation['id']}") == bad
    await screenshot(page, "40-oncall-invalid")
    assert (await world.api("GET", f"/v1/rotations/{rotation['id']}", key))[1]["spec"] == spec

    # A valid text is saved, as the API would save it.
    good = "bob@example.com, until Mon 9:00am PT\nalice@example.com, until Mon 9:00am PT\n"
    await page.fill(f"#spec-{rotation['id']}", good)
    await page.locator(f'section[data-rotation-id="{rotation["id"]}"] button[type="submit"]').click()
    await page.wait_for_selector("p.notice")
    assert "Rotation saved" in await page.inner_text("p.notice")
    assert (await world.api("GET", f"/v1/rotations/{rotation['id']}", key))[1]["spec"] == good
    await page.context.close()


async def test_triggers_created_then_incidents_filtered_and_resolved(browser: Any, world: World) -> None:
    """A service and a trigger made from the Triggers page (a bad timeout refused beside its
    field), its incident found with the kind and service filters and resolved with its button."""
    project_id, key = await world.project("Cattle Drive")
    page = await signed_in(browser, world, key, project_id)
    await page.click('nav a:text("Triggers")')
    await page.fill("#s-name", "Billing")
    await page.click('#service-form button[type="submit"]')
    await page.wait_for_selector("p.notice")

    await page.fill("#f-name", "Invoice export stalled")
    await page.select_option("#f-service_id", label="Billing")
    await page.select_option("#f-kind", "liveness")
    await page.fill("#f-timeout", "soon")
    await page.click('#trigger-form button[type="submit"]')
    assert (await page.inner_text("#e-timeout")).strip()
    assert await page.get_attribute("#f-timeout", "aria-invalid") == "true"
    assert await page.input_value("#f-name") == "Invoice export stalled"
    assert (await world.api("GET", "/v1/triggers", key))[1] == []
    assert await page.evaluate(UNLABELLED) == []
    await screenshot(page, "43-trigger-invalid")

    await page.select_option("#f-kind", "manual")
    await page.fill("#f-timeout", "")
    await page.click('#trigger-form button[type="submit"]')
    await page.wait_for_selector("p.notice")
    _, [made] = await world.api("GET", "/v1/triggers", key)
    assert (made["name"], made["service"]) == ("Invoice export stalled", "Billing")
    # Another trigger's incident, in no service: the filters leave it out.
    other = await trigger(world, key, "Branding iron cold")
    await call(world, key, other["id"], "alert")
    await call(world, key, made["id"], "alert")
    await monitor_state(world, key, made["id"], "alerting")
    await monitor_state(world, key, other["id"], "alerting")

    await page.click('nav a:text("Incidents")')
    await page.select_option("#f-kind", "trigger")
    await page.select_option("#f-service", "Billing")
    await page.click('form.filters button[type="submit"]')
    await page.wait_for_url("**/incidents?**service=Billing**")
    rows = page.locator("#incident-list tr[data-incident-id]")
    assert await rows.count() == 1
    assert "Invoice export stalled" in await rows.first.inner_text()
    await page.click('#incident-list button[aria-label="Resolve: Invoice export stalled is alerting"]')
    await page.wait_for_selector("p.notice")
    incidents = (await world.api("GET", "/v1/incidents", key))[1]
    resolved = next(i for i in incidents if i["monitor_id"] == made["id"])
    assert resolved["resolved_at"] is not None and resolved["resolved_by"].startswith("dashboard")
    assert next(i for i in incidents if i["monitor_id"] == other["id"])["resolved_at"] is None
    await page.select_option("#f-status", "resolved")
    await page.click('form.filters button[type="submit"]')
    await page.wait_for_url("**/incidents?status=resolved**")
    row = page.locator(f'#incident-list tr[data-incident-id="{resolved["id"]}"]')
    assert "resolved by dashboard" in await row.inner_text()
    await screenshot(page, "41-incidents-filtered-resolved")
    await page.context.close()
