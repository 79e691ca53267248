"""The dashboard over plain HTTP: the live stream (project-scoped, its queue removed when the
browser leaves), CSRF on every form, the session cookie and what ends a session, test keys,
status badges, and bad input answered with a page, never a 500. (The browser tests drive the
same pages in Chromium: tests/browser.)"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aio_pika
import aiohttp
import pytest
from yarl import URL

from heron_common.settings import Settings
from heron_ingest.dashboard.core import DASHBOARD
from tests.support.system import System, running_system, start
from tests.support.waiting import eventually

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser() -> aiohttp.ClientSession:
    # unsafe: keep cookies for an IP host (127.0.0.1), as a browser does.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, base: str, token: str, **headers: str) -> aiohttp.ClientResponse:
    async with http.get(f"{base}/dashboard/signin") as r:
        match = CSRF.search(await r.text())
    assert match is not None
    async with http.post(
        f"{base}/dashboard/signin",
        data={"csrf_token": match[1], "token": token},
        allow_redirects=False,
        headers=headers,
    ) as r:
        assert r.status == 303, await r.text()
        return r


async def csrf_of(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        assert r.status == 200, await r.text()
        match = CSRF.search(await r.text())
    assert match is not None
    return match[1]


async def api(system: System, method: str, path: str, key: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with system.http.request(method, f"{system.ingest.url}{path}", json=body, headers=headers) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else None)


async def new_trigger(system: System, key: str, name: str) -> int:
    status, body = await api(system, "POST", "/v1/triggers", key, {"name": name})
    assert status == 201, body
    return body["id"]


@asynccontextmanager
async def events(http: aiohttp.ClientSession, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
        yield r


async def next_alert(stream: aiohttp.ClientResponse, wanted: str = "alert") -> dict[str, Any]:
    """The next ``event: alert`` (or ``wanted``) of a server-sent event stream, decoded."""
    import orjson

    kind = None
    while True:
        line = (await stream.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == wanted:
            return orjson.loads(line[6:])


async def test_the_live_stream_carries_only_its_projects_alerts_and_its_queue_goes_with_it(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        mine, my_key = await system.create_project("mine")
        _, their_key = await system.create_project("theirs")
        my_trigger = await new_trigger(system, my_key, "Mine is on fire")
        their_trigger = await new_trigger(system, their_key, "Theirs is on fire")
        await sign_in(http, system.ingest.url, my_key)
        config = system.ingest.app[DASHBOARD]
        async with events(http, f"{system.ingest.url}/dashboard/p/{mine}/events") as stream:
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            assert await stream.content.readline() == b"retry: 3000\n"
            [queue] = config.queues
            # Theirs first: were the stream not filtered, theirs would be the first to arrive.
            assert (await api(system, "POST", f"/triggers/{their_trigger}/alert", their_key))[0] == 200
            assert (await api(system, "POST", f"/triggers/{my_trigger}/alert", my_key))[0] == 200
            alert = await asyncio.wait_for(next_alert(stream), 20)
            assert alert["monitor_id"] == my_trigger and alert["topic"] == "incident.opened"
            assert alert["text"] == "Mine is on fire is alerting"
        # The browser left: the queue is deleted (the stream notices within a second).
        await eventually(lambda: _async(config.queues), lambda q: not q)
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(queue, passive=True)
        finally:
            await connection.close()
        # Signed out (or another project's stream): no stream.
        async with browser() as stranger, stranger.get(f"{system.ingest.url}/dashboard/p/{mine}/events") as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "signed_out"


async def test_the_live_stream_carries_its_projects_quiet_changes(settings: Settings) -> None:
    """A pause alerts nobody; the detector's monitor.changed notice still reaches the project's
    stream as a ``change`` event (and another project's pause does not)."""
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        mine, my_key = await system.create_project("mine")
        _, their_key = await system.create_project("theirs")
        my_trigger = await new_trigger(system, my_key, "Mine, paused")
        their_trigger = await new_trigger(system, their_key, "Theirs, paused")
        await sign_in(http, system.ingest.url, my_key)
        async with events(http, f"{system.ingest.url}/dashboard/p/{mine}/events") as stream:
            assert stream.status == 200
            assert await stream.content.readline() == b"retry: 3000\n"
            # Theirs first: were the stream not filtered, theirs would be the first to arrive.
            assert (await api(system, "POST", f"/v1/monitors/{their_trigger}/pause", their_key))[0] in (200, 202)
            assert (await api(system, "POST", f"/v1/monitors/{my_trigger}/pause", my_key))[0] in (200, 202)
            change = await asyncio.wait_for(next_alert(stream, "change"), 20)
            assert change == {"topic": "monitor.changed", "monitor_ids": [my_trigger]}
            # A monitor created through the API is announced by ingest itself.
            created = await new_trigger(system, my_key, "Mine, new")
            change = await asyncio.wait_for(next_alert(stream, "change"), 20)
            assert change == {"topic": "monitor.changed", "monitor_ids": [created]}


async def _async(value: Any) -> Any:
    return set(value)


async def test_every_form_refuses_a_missing_or_forged_csrf_token(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        project_id, key = await system.create_project("forms")
        trigger_id = await new_trigger(system, key, "Untouched")
        await sign_in(http, system.ingest.url, key)
        other = browser()
        async with other:
            await sign_in(other, system.ingest.url, key)
            foreign = await csrf_of(other, f"{system.ingest.url}/dashboard/p/{project_id}/")
        posts = sorted(
            {
                route.resource.canonical
                for route in system.ingest.app.router.routes()
                if route.method == "POST"
                and route.resource is not None
                and route.resource.canonical.startswith("/dashboard/p/")
            }
        )
        assert len(posts) >= 12, posts
        for template in posts:
            path = re.sub(r"\{project_id\}", str(project_id), template)
            path = re.sub(r"\{\w+\}", str(trigger_id), path)
            for form in ({}, {"csrf_token": "forged"}, {"csrf_token": foreign}):
                async with http.post(f"{system.ingest.url}{path}", data=form, allow_redirects=False) as r:
                    assert r.status == 403, (path, form, r.status)
                    assert "This form has expired" in await r.text()
        # Signing out is a form too.
        async with http.post(f"{system.ingest.url}/dashboard/signout", data={}, allow_redirects=False) as r:
            assert r.status == 403
        _, trigger = await api(system, "GET", f"/v1/triggers/{trigger_id}", key)
        assert trigger["state"] == "resolved" and trigger["name"] == "Untouched"
        _, heartbeats = await api(system, "GET", "/v1/heartbeats", key)
        assert heartbeats == []
        # The sign-in form has its own token.
        async with (
            browser() as fresh,
            fresh.post(f"{system.ingest.url}/dashboard/signin", data={"token": key}, allow_redirects=False) as r,
        ):
            assert r.status == 403


async def test_the_session_cookie_and_what_ends_a_session(settings: Settings) -> None:
    async with running_system(settings, services=()) as system, browser() as http:
        project_id, key = await system.create_project("cookies")
        signed = await sign_in(http, system.ingest.url, key)
        cookie = signed.cookies["heron_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/" and not cookie["secure"]
        assert key not in cookie.value
        assert signed.headers["Location"] == f"/dashboard/p/{project_id}/"
        async with browser() as https:
            behind_tls = await sign_in(https, system.ingest.url, key, **{"X-Forwarded-Proto": "https"})
            assert behind_tls.cookies["heron_session"]["secure"]

        overview = f"{system.ingest.url}/dashboard/p/{project_id}/"
        async with http.get(overview, allow_redirects=False) as r:
            assert r.status == 200
            assert (
                r.headers["Cache-Control"] == "no-store"
                and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            )
        # Revoking the key ends the session at once (the same cache revocation clears).
        admin = settings.admin_token
        _, [listed] = await api(system, "GET", f"/v1/projects/{project_id}/keys", admin)
        assert (await api(system, "DELETE", f"/v1/projects/{project_id}/keys/{listed['id']}", admin))[0] == 204
        async with http.get(overview, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"].startswith("/dashboard/signin?next=")
        # Signing out clears the cookie.
        async with browser() as admin_http:
            await sign_in(admin_http, system.ingest.url, admin or "")
            token = await csrf_of(admin_http, f"{system.ingest.url}/dashboard/projects")
            async with admin_http.post(
                f"{system.ingest.url}/dashboard/signout", data={"csrf_token": token}, allow_redirects=False
            ) as r:
                assert r.status == 303 and r.cookies["heron_session"].value == ""
            async with admin_http.get(f"{system.ingest.url}/dashboard/projects", allow_redirects=False) as r:
                assert r.status == 303


async def test_an_admin_session_ends_when_the_admin_token_changes(settings: Settings) -> None:
    async with running_system(settings, services=()) as system, browser() as http:
        await sign_in(http, system.ingest.url, settings.admin_token or "")
        from heron_ingest.app import create_app

        rotated = await start(create_app(replace(settings, admin_token="a-new-admin-token")))
        try:
            config = rotated.app[DASHBOARD]
            config.secret = system.ingest.app[DASHBOARD].secret  # the same session secret
            jar = http.cookie_jar.filter_cookies(URL(system.ingest.url))
            cookies = {"heron_session": jar["heron_session"].value}
            async with aiohttp.ClientSession(cookies=cookies) as same_cookie:
                async with same_cookie.get(f"{system.ingest.url}/dashboard/projects", allow_redirects=False) as r:
                    assert r.status == 200
                async with same_cookie.get(f"{rotated.url}/dashboard/projects", allow_redirects=False) as r:
                    assert r.status == 303
        finally:
            await rotated.runner.cleanup()


async def test_a_test_key_can_look_but_not_change(settings: Settings) -> None:
    async with running_system(settings, services=()) as system, browser() as http:
        project_id, _ = await system.create_project("lookers")
        status, test_key = await api(
            system, "POST", f"/v1/projects/{project_id}/keys", settings.admin_token, {"test": True}
        )
        assert status == 201
        await sign_in(http, system.ingest.url, test_key["api_key"])
        base = f"{system.ingest.url}/dashboard/p/{project_id}"
        token = await csrf_of(http, f"{base}/heartbeats")
        async with http.post(
            f"{base}/heartbeats", data={"csrf_token": token, "name": "x", "interval": "1h", "grace": "5m"}
        ) as r:
            assert r.status == 403 and "test key" in await r.text()


async def test_status_badges_need_their_token_and_nothing_else(settings: Settings) -> None:
    async with running_system(settings, services=("detector",)) as system, browser() as http:
        project_id, key = await system.create_project("badges")
        first, second = await new_trigger(system, key, "API <up>"), await new_trigger(system, key, "Other")
        await sign_in(http, system.ingest.url, key)
        async with http.get(f"{system.ingest.url}/dashboard/p/{project_id}/monitors/{first}") as r:
            page = await r.text()
        svg_path = re.search(r'<img src="(/badge/[^"]+\.svg)"', page)
        assert svg_path is not None
        async with aiohttp.ClientSession() as anyone:  # no session needed
            async with anyone.get(system.ingest.url + svg_path[1]) as r:
                assert r.status == 200 and r.content_type == "image/svg+xml"
                svg = await r.text()
                assert "API &lt;up&gt;" in svg and "<up>" not in svg and ">up<" in svg
            async with anyone.get(system.ingest.url + svg_path[1].replace(".svg", ".json")) as r:
                assert r.status == 200
                assert await r.json() == {
                    "name": "API <up>",
                    "status": "up",
                    "state": "resolved",
                    "last_seen": None,
                    "schemaVersion": 1,
                    "label": "API <up>",
                    "message": "up",
                    "color": "2e5e2e",
                }
            token = svg_path[1].split("/")[3].removesuffix(".svg")
            for wrong in (
                f"/badge/{second}/{token}.svg",  # another monitor's token
                f"/badge/{first}/{'B' if token[0] != 'B' else 'C'}{token[1:]}.svg",
                f"/badge/{first}/x.json",
                f"/badge/99999999999999999999/{token}.svg",
                f"/badge/abc/{token}.json",
            ):
                async with anyone.get(system.ingest.url + wrong) as r:
                    assert r.status == 404, wrong
                    assert (await r.json())["error"]["code"] == "not_found"
            assert (await api(system, "POST", f"/triggers/{first}/alert", key))[0] == 200
            await eventually(
                lambda: _fetch_json(anyone, system.ingest.url + svg_path[1].replace(".svg", ".json")),
                lambda body: body["status"] == "down",
            )


async def _fetch_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as r:
        return await r.json()


async def test_bad_input_gets_a_page_never_a_500(settings: Settings) -> None:
    async with running_system(settings, services=()) as system, browser() as http:
        project_id, key = await system.create_project("odd")
        await sign_in(http, system.ingest.url, key)
        base = f"{system.ingest.url}/dashboard/p/{project_id}"
        cases = {
            f"{system.ingest.url}/dashboard/p/abc/": 404,
            f"{system.ingest.url}/dashboard/p/99999999999999999999999/": 404,
            f"{system.ingest.url}/dashboard/p/{project_id + 1}/": 404,
            f"{base}/monitors/x": 404,
            f"{base}/monitors/123456": 404,
            f"{base}/heartbeats/5/edit": 404,
            f"{base}/triggers/%C2%B2/edit": 404,
            f"{base}/incidents?status=weird": 422,
            f"{base}/incidents?before=abc": 422,
            f"{base}/incidents?environment=%00": 422,
            f"{base}/incidents?limit=0": 422,
            f"{base}/webhooks?status=zzz": 422,
            f"{base}/webhooks?endpoint_id=-1": 422,
            f"{base}/?before=x": 422,
            f"{system.ingest.url}/dashboard/nowhere": 404,
            # What the filter forms send for "any": fine.
            f"{base}/webhooks?endpoint_id=&status=": 200,
            f"{base}/incidents?status=&environment=&service=&kind=": 200,
        }
        for url, status in cases.items():
            async with http.get(url, allow_redirects=False) as r:
                assert r.status == status, (url, r.status)
                assert r.content_type == "text/html"
        token = await csrf_of(http, f"{base}/triggers")
        for form in ({"name": "\x00"}, {"name": "x" * 500}, {"name": "ok", "kind": "sometimes"}, {"timeout": "1e999"}):
            async with http.post(f"{base}/triggers", data={"csrf_token": token, **form}) as r:
                assert r.status == 422, (form, r.status)
        # The root is the dashboard's front door; signed out, it asks to sign in and comes back.
        async with browser() as fresh:
            async with fresh.get(f"{system.ingest.url}/", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/dashboard/"
            async with fresh.get(f"{base}/incidents", allow_redirects=False) as r:
                assert r.headers["Location"] == f"/dashboard/signin?next=/dashboard/p/{project_id}/incidents"
            for target, landed in (
                (f"/dashboard/p/{project_id}/incidents", f"/dashboard/p/{project_id}/incidents"),
                ("//evil.example/", f"/dashboard/p/{project_id}/"),
                ("/dashboard/p/999/", f"/dashboard/p/{project_id}/"),  # not this key's project
            ):
                async with browser() as visitor:
                    async with visitor.get(f"{system.ingest.url}/dashboard/signin") as r:
                        match = CSRF.search(await r.text())
                    assert match is not None
                    async with visitor.post(
                        f"{system.ingest.url}/dashboard/signin",
                        data={"csrf_token": match[1], "token": key, "next": target},
                        allow_redirects=False,
                    ) as r:
                        assert r.headers["Location"] == landed, target
            async with fresh.get(f"{system.ingest.url}/dashboard/signin") as r:
                match = CSRF.search(await r.text())
            assert match is not None
            async with fresh.post(
                f"{system.ingest.url}/dashboard/signin", data={"csrf_token": match[1], "token": "heron_nope"}
            ) as r:
                assert r.status == 401 and "neither the admin token nor a valid project API key" in await r.text()
