"""The dashboard's On-call page: who is on call, the rotation text edited with the API's parser."""

from __future__ import annotations

from heron_common.settings import Settings
from tests.integration.test_dashboard import CSRF, api, browser, csrf_of, sign_in
from tests.support.system import running_system


async def test_oncall_page_shows_who_is_on_call_and_edits_the_rotation_text(settings: Settings) -> None:
    async with running_system(settings, services=()) as system, browser() as http:
        base = system.ingest.url
        project_id, key = await system.create_project("ranch")
        _, other_key = await system.create_project("elsewhere")
        for email in ("alice@example.com", "bob@example.com"):
            assert (await api(system, "POST", "/v1/users", key, {"email": email, "name": email[:3]}))[0] == 201
        spec = "alice@example.com, until Mon 9:00am PT\nbob@example.com, until Mon 9:00am PT\n"
        status, rotation = await api(system, "POST", "/v1/rotations", key, {"name": "Platform", "spec": spec})
        assert status == 201, rotation
        _, service = await api(system, "POST", "/v1/services", key, {"name": "API"})
        status, _ = await api(
            system, "PUT", f"/v1/services/{service['id']}/rotation", key, {"rotation_id": rotation["id"]}
        )
        assert status == 200
        _, other_rotation = await api(system, "POST", "/v1/rotations", other_key, {"name": "Theirs", "spec": spec})
        _, oncall = await api(system, "GET", f"/v1/services/{service['id']}/oncall", key, None)

        await sign_in(http, base, key)
        page_url = f"{base}/dashboard/p/{project_id}/oncall"
        async with http.get(page_url) as r:
            html = await r.text()
        assert r.status == 200 and "Platform" in html and "Theirs" not in html
        assert oncall["now"]["email"] in html and oncall["next"]["email"] in html  # now and next, as the API says
        assert "alice@example.com, until Mon 9:00am PT" in html  # the text, in its form

        token = await csrf_of(http, page_url)
        action = f"{page_url}/rotations/{rotation['id']}"
        # A line the parser refuses: 422, the API's message beside the field, the text kept as typed.
        bad = "alice@example.com, until Mon 9:00am PT\ncarol@example.com until Tue\n"
        async with http.post(action, data={"csrf_token": token, "spec": bad}, allow_redirects=False) as r:
            html = await r.text()
        assert r.status == 422
        assert 'id="e-spec-' in html and "line 2" in html and "carol@example.com until Tue" in html
        # A valid text is saved (as the API would) and the page says so.
        good = "bob@example.com, until Mon 9:00am PT\nalice@example.com, until Mon 9:00am PT\n"
        async with http.post(action, data={"csrf_token": token, "spec": good}, allow_redirects=False) as r:
            assert r.status == 303 and "rotation_saved" in r.headers["Location"]
        _, shown = await api(system, "GET", f"/v1/rotations/{rotation['id']}", key, None)
        assert shown["spec"] == good
        # No CSRF token: refused; another project's rotation: not found.
        async with http.post(action, data={"spec": good}, allow_redirects=False) as r:
            assert r.status == 403
        other_action = f"{page_url}/rotations/{other_rotation['id']}"
        async with http.post(other_action, data={"csrf_token": token, "spec": good}, allow_redirects=False) as r:
            assert r.status == 404
        assert CSRF.search(html)
