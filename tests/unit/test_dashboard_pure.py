"""The dashboard's pure parts on frozen time: sessions, CSRF and badge tokens (per monitor and per
service), the palette's contrast (states and ACTIVE/INACTIVE), the SVG badge, chart geometry,
display states and a service's worst state, durations, live summaries, form helpers (heartbeats,
triggers, probes, Heroku)."""

from __future__ import annotations

import dataclasses

import pytest

from heron_common import badges, charts, sessions
from heron_common.settings import Settings, SettingsError
from heron_common.views import DISPLAY_STATES, ago, alert_summary, display_state, human_seconds, worst_state
from heron_ingest.dashboard import core, heartbeats, heroku, nav, probes, triggers
from heron_ingest.validation import InputError

SECRET = "s" * 40
T0 = 1_800_000_000.0
KEY_HASH = bytes(range(32))


def key_session(now: float = T0) -> sessions.Session:
    return sessions.new_key(7, KEY_HASH, "heron_AbCd…wxyz", False, now)


def test_a_signed_session_reads_back_until_it_expires() -> None:
    session = key_session()
    cookie = sessions.sign(session, SECRET)
    assert sessions.verify(cookie, SECRET, T0 + 60) == session
    assert sessions.verify(cookie, SECRET, T0 + sessions.SESSION_SECONDS - 1) == session
    assert sessions.verify(cookie, SECRET, T0 + sessions.SESSION_SECONDS) is None
    assert sessions.verify(cookie, SECRET, T0 - sessions.MAX_SKEW - 1) is None  # issued "in the future"
    assert sessions.digest_bytes(session.key_hash or "") == KEY_HASH
    assert "heron_" not in cookie.split(".")[1]  # the hint is inside, encoded; the key never is


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: c.replace("v1.", "v2.", 1),
        lambda c: c + ".x",
        lambda c: "",
        lambda c: "v1.e30.",
        lambda c: "é" + c,
        lambda c: c * 40,
    ],
)
def test_a_tampered_session_is_refused(tamper) -> None:
    cookie = sessions.sign(key_session(), SECRET)
    assert sessions.verify(tamper(cookie), SECRET, T0) is None
    assert sessions.verify(cookie, "t" * 40, T0) is None  # another secret


def test_a_forged_payload_with_a_valid_shape_is_refused_without_the_secret() -> None:
    admin = dataclasses.replace(key_session(), role=sessions.ADMIN)
    forged = sessions.sign(admin, "attacker" * 5)
    assert sessions.verify(forged, SECRET, T0) is None


def test_admin_sessions_carry_a_fingerprint_of_the_token_not_the_token() -> None:
    session = sessions.new_admin(SECRET, "heronadm_secret-token", T0)
    assert session.admin and session.who == "dashboard (admin)"
    assert session.admin_mark == sessions.admin_mark(SECRET, "heronadm_secret-token")
    assert session.admin_mark != sessions.admin_mark(SECRET, "heronadm_other")
    assert "secret-token" not in sessions.sign(session, SECRET)


def test_csrf_tokens_are_bound_to_their_session() -> None:
    a, b = key_session(), key_session()
    token = sessions.csrf_token(SECRET, a.sid)
    assert sessions.csrf_ok(SECRET, a.sid, token)
    assert not sessions.csrf_ok(SECRET, b.sid, token)
    assert not sessions.csrf_ok(SECRET, a.sid, None)
    assert not sessions.csrf_ok(SECRET, None, token)
    assert not sessions.csrf_ok(SECRET, a.sid, token + "x")
    assert not sessions.csrf_ok("t" * 40, a.sid, token)


def test_badge_tokens_are_per_monitor_and_per_secret() -> None:
    token = sessions.badge_token(SECRET, 12)
    assert len(token) == 22 and sessions.badge_ok(SECRET, 12, token)
    assert not sessions.badge_ok(SECRET, 13, token)
    assert not sessions.badge_ok("t" * 40, 12, token)
    assert token != sessions.csrf_token(SECRET, "monitor:12")  # subkeys: no token doubles as another


def test_service_badge_tokens_are_per_project_and_service_and_never_a_monitors() -> None:
    token = sessions.service_badge_token(SECRET, 7, "API")
    assert len(token) == 22 and sessions.service_badge_ok(SECRET, 7, "API", token)
    assert not sessions.service_badge_ok(SECRET, 8, "API", token)
    assert not sessions.service_badge_ok(SECRET, 7, "api", token)
    assert not sessions.service_badge_ok("t" * 40, 7, "API", token)
    assert token not in {sessions.badge_token(SECRET, n) for n in range(100)}
    # A name with the separator in it cannot pass for another project's service.
    assert sessions.service_badge_token(SECRET, 1, "2:x") != sessions.service_badge_token(SECRET, 12, "x")


@pytest.mark.parametrize("name", ["API", "payments/eu", "Zahlungen – EU", "a" * 200, "é🤠", "x=y?z#"])
def test_service_names_travel_as_one_url_segment(name: str) -> None:
    slug = badges.service_slug(name)
    assert slug.isascii() and all(c.isalnum() or c in "-_" for c in slug)
    assert badges.service_from_slug(slug) == name


@pytest.mark.parametrize("slug", ["", "!!!", "QVBJ=", "QVBK", "/w", "AA", "é", "Q" * 1000])
def test_only_canonical_service_slugs_name_a_service(slug: str) -> None:
    # "QVBJ=" has padding, "QVBK" decodes to "APJ"'s bytes only when canonical, "AA" is a NUL.
    name = badges.service_from_slug(slug)
    assert name is None or badges.service_slug(name) == slug


def test_the_service_json_badge() -> None:
    body = badges.service_badge_json("API", "late", {"up": 3, "late": 1})
    assert body == {
        "service": "API",
        "status": "late",
        "monitors": {"up": 3, "late": 1},
        "schemaVersion": 1,
        "label": "API",
        "message": "late",
        "color": badges.PALETTE["late"].background.lstrip("#"),
    }


def test_session_secrets_are_settings_with_file_variants_and_a_minimum_length(tmp_path) -> None:
    path = tmp_path / "secret"
    path.write_text("x" * 48 + "\n")
    settings = Settings.from_env({"HERON_SESSION_SECRET_FILE": str(path), "HERON_BADGE_SECRET": "b" * 32})
    assert settings.session_secret == "x" * 48 and settings.badge_secret == "b" * 32
    assert settings.public()["session_secret"] == "***" and settings.public()["badge_secret"] == "***"
    assert "x" * 48 not in repr(settings)
    assert Settings.from_env({"HERON_SESSION_SECRET": ""}).session_secret is None
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({"HERON_SESSION_SECRET": "short"})


@pytest.mark.parametrize("state", list(badges.PALETTE))
def test_every_status_colour_keeps_a_contrast_of_4_5(state: str) -> None:
    colours = badges.PALETTE[state]
    assert badges.contrast_ratio(colours.text, colours.background) >= badges.MIN_CONTRAST
    assert badges.contrast_ratio(badges.LABEL.text, badges.LABEL.background) >= badges.MIN_CONTRAST
    assert f".badge-{state}{{background:{colours.background};color:{colours.text}}}" in badges.theme_css()


@pytest.mark.parametrize("status", list(badges.STATUS))
def test_active_and_inactive_keep_a_contrast_of_4_5(status: str) -> None:
    colours = badges.STATUS[status]
    assert badges.contrast_ratio(colours.text, colours.background) >= badges.MIN_CONTRAST
    assert f".status-{status.lower()}{{background:{colours.background};color:{colours.text}}}" in badges.theme_css()
    # Against the page (wheat) too: the badge stands out from it.
    assert badges.contrast_ratio(colours.background, badges.WHEAT) >= badges.MIN_CONTRAST


def test_contrast_is_the_wcag_formula() -> None:
    assert badges.contrast_ratio("#000", "#fff") == pytest.approx(21.0)
    assert badges.contrast_ratio("rgb(255, 255, 255)", "#ffffff") == pytest.approx(1.0)
    assert badges.contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert badges.parse_colour("rgba(46, 94, 46, 1)") == (46, 94, 46)
    with pytest.raises(ValueError):
        badges.parse_colour("wheat")


def test_the_svg_badge_escapes_names_and_is_sized_to_its_text() -> None:
    svg = badges.badge_svg('<script>alert("x")</script> & co', "down")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&amp; co" in svg
    assert badges.PALETTE["down"].background in svg
    short, long = badges.badge_svg("db", "up"), badges.badge_svg("a much longer monitor name", "up")
    width = lambda s: int(s.split('width="', 1)[1].split('"', 1)[0])  # noqa: E731
    assert width(long) > width(short)
    assert "…" in badges.badge_svg("x" * 100, "up")
    assert badges.badge_status("whatever") == "new"


def test_sparkline_geometry() -> None:
    line = charts.sparkline([0, 5, 10], width=100, height=20, pad=2)
    assert line.points == "0,18 50,10 100,2" and line.peak == 10 and line.total == 15
    assert line.area.startswith("0,20 ") and line.area.endswith(" 100,20")
    flat = charts.sparkline([0, 0], width=10, height=10, pad=1)
    assert flat.points == "0,9 10,9"
    assert charts.sparkline([3], width=10, height=10, pad=1).points == "0,1 10,1"
    assert charts.sparkline([]).points == ""


def test_bucket_counts_and_gaps() -> None:
    assert charts.bucket_counts([0, 1, 5, 9.99, 10, -1], 0, 10, 2) == [2, 2]
    assert charts.gaps([5.0, 1.0, 3.0]) == [2.0, 2.0]
    assert charts.gaps([1.0]) == []


def test_interval_chart_marks_gaps_past_the_deadline() -> None:
    chart = charts.interval_chart([10, 10, 30], expected=10, tolerance=5, width=300, height=100)
    assert [b.over for b in chart.bars] == [False, False, True]
    assert chart.top == pytest.approx(33.0)
    assert chart.deadline_y is not None and chart.expected_y is not None
    assert chart.deadline_y < chart.expected_y  # higher on screen: a longer time
    assert chart.bars[2].height > chart.bars[0].height
    assert [b.x for b in chart.bars] == [0, 100, 200]
    learning = charts.interval_chart([1, 2], expected=None, tolerance=None)
    assert learning.deadline_y is None and not any(b.over for b in learning.bars)


@pytest.mark.parametrize(
    ("state", "acknowledged", "shown"),
    [
        ("new", False, "new"),
        ("up", False, "up"),
        ("resolved", False, "up"),
        ("late", False, "late"),
        ("down", False, "down"),
        ("down", True, "acknowledged"),
        ("alerting", False, "down"),
        ("alerting", True, "acknowledged"),
        ("acknowledged", False, "acknowledged"),
        ("paused", True, "paused"),
        ("failing", False, "late"),  # a probe down for less than its timeout: no incident yet
        ("error", False, "error"),  # a Heroku app that cannot be checked
        ("probing", False, "new"),  # a state a later kind adds
    ],
)
def test_display_states(state: str, acknowledged: bool, shown: str) -> None:
    assert display_state(state, acknowledged) == shown
    assert shown in DISPLAY_STATES and shown in badges.PALETTE


@pytest.mark.parametrize(
    ("shown", "worst"),
    [
        ([], None),
        (["up", "up"], "up"),
        (["up", "new", "paused"], "up"),  # new and paused hide nothing
        (["new", "paused"], "new"),
        (["paused"], "paused"),
        (["up", "acknowledged"], "acknowledged"),
        (["acknowledged", "error"], "error"),
        (["error", "late", "up"], "late"),
        (["late", "down", "acknowledged"], "down"),
        (["whatever"], "new"),
    ],
)
def test_a_services_state_is_the_worst_of_its_monitors(shown: list[str], worst: str | None) -> None:
    assert worst_state(shown) == worst


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.4, "0.4 s"),
        (5, "5 s"),
        (42, "42 s"),
        (300, "5 min"),
        (330, "5 min 30 s"),
        (1800, "30 min"),
        (3600, "1 h"),
        (4800, "1 h 20 min"),
        (86400, "1 d"),
        (2 * 86400 + 3 * 3600, "2 d 3 h"),
    ],
)
def test_human_seconds(seconds, text) -> None:
    assert human_seconds(seconds) == text


def test_ago_on_frozen_time() -> None:
    assert ago(None, T0) == "never"
    assert ago(T0 - 0.5, T0) == "just now"
    assert ago(T0 - 120, T0) == "2 min ago"
    assert ago(T0 + 120, T0) == "in 2 min"


def test_live_summaries_name_their_project_and_skip_repeats() -> None:
    incident = {"id": 3, "monitor_id": 9, "title": "api.called went silent", "name": "api.called"}
    opened = {"type": "incident.opened", "data": {"incident": incident, "project": {"id": 4, "name": "p"}}}
    assert alert_summary(opened) == (
        4,
        {"topic": "incident.opened", "monitor_id": 9, "incident_id": 3, "text": "api.called went silent"},
    )
    resolved = {**opened, "type": "incident.resolved"}
    assert alert_summary(resolved)[1]["text"] == "api.called recovered"  # type: ignore[index]
    late = {
        "type": "heartbeat.late",
        "data": {"heartbeat": {"id": 2, "name": "backup", "state": "late"}, "project": {"id": 4}},
    }
    assert alert_summary(late) == (
        4,
        {"topic": "heartbeat.late", "monitor_id": 2, "incident_id": None, "text": "backup is late"},
    )
    heroku_deploy = {
        "type": "heroku.deploy",
        "data": {"heroku": {"id": 5, "name": "my-app", "app_name": "my-app"}, "project": {"id": 4}},
    }
    assert alert_summary(heroku_deploy) == (
        4,
        {"topic": "heroku.deploy", "monitor_id": 5, "incident_id": None, "text": "Heroku app my-app: new deploy"},
    )
    for repeat in ("trigger.alerting", "heartbeat.down", "heartbeat.up", "probe.down", "probe.up"):
        assert alert_summary({**opened, "type": repeat}) is None
    for odd in (
        None,
        [],
        {"type": "incident.opened"},
        {"type": 1, "data": {}},
        {"type": "x", "data": {"project": {"id": "4"}}},
    ):
        assert alert_summary(odd) is None


def test_navigation_has_the_core_pages_in_order_and_room_for_more() -> None:
    import heron_ingest.dashboard  # noqa: F401  (imports every page, which registers its entry)

    links = nav.entries(5)
    labels = ["Overview", "Incidents", "Heartbeats", "Triggers", "On-call", "Webhooks", "Probes", "Heroku"]
    assert [link.label for link in links] == labels
    assert links[0].href == "/dashboard/p/5/" and links[1].href == "/dashboard/p/5/incidents"
    assert links[6].href == "/dashboard/p/5/probes" and links[7].href == "/dashboard/p/5/heroku"
    nav.register(nav.Entry("extra", "Extra", "extra", 47, "Tip: an extra page"))
    try:
        labels = [link.label for link in nav.entries(5)]
        assert labels.index("Extra") == labels.index("On-call") + 1
        assert nav.tip("extra") == "Tip: an extra page"
    finally:
        del nav.ENTRIES["extra"]
    assert nav.tip(None) == nav.DEFAULT_TIP


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("/dashboard/p/1/incidents?status=open", True),
        ("/dashboard/p/1/", True),
        ("//evil.example/dashboard/", False),
        ("https://evil.example/", False),
        ("/dashboard/../v1/projects", False),
        ("/dashboard//evil", False),
        ("/v1/incidents", False),
        ("/dashboard/p/1/\nSet-Cookie: x", False),
        ("/dashboard/p/1/\n", False),
        (None, False),
    ],
)
def test_only_dashboard_paths_are_gone_back_to(value, safe: bool) -> None:
    assert (core.safe_next(value, "/home") == value) is safe


def test_form_errors_land_next_to_their_field() -> None:
    values = {"interval": "soon"}
    named = core.form_error(values, InputError(422, "invalid_field", "interval must be …", "interval"), ("interval",))
    assert named.errors == {"interval": "interval must be …"} and named.values is values
    by_prefix = core.form_error(values, InputError(422, "invalid_field", "grace needs expected_interval"), ("grace",))
    assert by_prefix.errors == {"grace": "grace needs expected_interval"}
    general = core.form_error(values, InputError(503, "unavailable", "retry"), ("grace",))
    assert general.errors == {} and general.summary == "retry"
    every = {"app_name": "app_name is required", "check_interval": "check_interval must be …"}
    several = core.form_error(
        values, InputError(422, "missing_field", "app_name is required", errors=every), heroku.FIELDS
    )
    assert several.errors == every and several.summary == "Please fix app name, check interval."


def test_forms_become_the_apis_bodies() -> None:
    assert heartbeats.body_of({"name": " Backup ", "interval": "1d", "grace": "", "tz": "UTC", "csrf_token": "x"}) == {
        "name": "Backup",
        "interval": "1d",
    }
    assert heartbeats.body_of({"name": "b", "schedule": "0 2 * * *", "tz": "Europe/Berlin"}) == {
        "name": "b",
        "schedule": "0 2 * * *",
        "tz": "Europe/Berlin",
    }
    body = triggers.body_of({"name": "CPU", "service_id": "3", "kind": "liveness", "timeout": "90", "critical": "on"})
    assert body == {
        "name": "CPU",
        "service_id": 3,
        "kind": "liveness",
        "timeout": 90,
        "critical": True,
        "escalate": False,
    }
    assert triggers.body_of({"timeout": "soon"})["timeout"] == "soon"  # the API names what is wrong
    assert triggers.body_of({"timeout": "1.5"})["timeout"] == 1.5
    assert triggers.body_of({"service_id": ""})["service_id"] is None


def test_probe_forms_become_the_apis_bodies() -> None:
    form = {
        "url": " https://example.com/health ",
        "method": "GET",
        "service": "API",
        "name": "",
        "headers": "Accept: application/json\n\nX-Token: abc: def\n",
        "interval": "30",
        "timeout": "1.5",
        "expected_status": "200, 2xx; 204",
        "json_path": "$.status",
        "json_equals": "ok",
        "csrf_token": "x",
    }
    assert probes.body_of(form) == {
        "url": "https://example.com/health",
        "method": "GET",
        "service": "API",
        "headers": {"Accept": "application/json", "X-Token": "abc: def"},
        "interval": 30,
        "timeout": 1.5,
        "expected_status": [200, "2xx", 204],  # the API names the part that is wrong
        "json_path": "$.status",
        "json_equals": "ok",  # not JSON: the text itself
    }
    assert probes.body_of({"json_path": "$.n", "json_equals": "200"})["json_equals"] == 200
    assert probes.body_of({"json_path": "$.n", "json_equals": "null"})["json_equals"] is None
    assert probes.body_of({"interval": "soon"})["interval"] == "soon"
    with pytest.raises(InputError) as caught:
        probes.body_of({"headers": "Accept application/json"})
    assert caught.value.field == "headers" and "line 1" in caught.value.message
    # Editing sends every setting (an emptied one is cleared) and keeps the name when left empty.
    edited = probes.body_of({"url": "https://example.com/", "service": "API", "name": ""}, editing=True)
    assert "name" not in edited and edited["environment"] == "" and edited["headers"] is None
    assert edited["max_latency"] is None and "json_equals" not in edited


def test_probe_timings_are_shown_by_phase() -> None:
    shown = probes.phase_times({"dns": 0.0021, "connect": 0.001, "tls": None, "first_byte": 0.03, "total": 1.5})
    assert shown == [("DNS", "2 ms"), ("connect", "1 ms"), ("first byte", "30 ms"), ("total", "1.5 s")]
    assert probes.phase_times(None) == []


def test_heroku_forms_become_the_update_config_body() -> None:
    form = {"app_name": " my-app ", "slack_channel": "#ops", "check_interval": "", "monitor_id": "9", "csrf_token": "x"}
    assert heroku.body_of(form) == {"app_name": "my-app", "slack_channel": "#ops", "monitor_id": "9"}


def test_a_live_stream_forwards_only_its_projects_change_notices() -> None:
    from heron_common import messages
    from heron_ingest.dashboard.live import _change

    notice = messages.decode(messages.encode(messages.change_message(7, [3, 5], 1.0)))
    assert _change(notice, 7) == {"topic": "monitor.changed", "monitor_ids": [3, 5]}
    assert _change(notice, 8) is None  # another project's
    assert _change({"type": "incident.opened", "data": {"project": {"id": 7}}}, 7) is None  # an alert
    malformed = {"type": "monitor.changed", "data": {"project": {"id": 7}, "monitor_ids": ["x", 4, True]}}
    assert _change(malformed, 7) == {"topic": "monitor.changed", "monitor_ids": [4]}
    assert _change({"type": "monitor.changed", "data": []}, 7) is None
