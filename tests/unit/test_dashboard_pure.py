"""The dashboard's pure parts on frozen time: sessions, CSRF and badge tokens, the palette's
contrast, the SVG badge, chart geometry, display states, durations, live summaries, form helpers."""

from __future__ import annotations

import dataclasses

import pytest

from heron_common import badges, charts, sessions
from heron_common.settings import Settings, SettingsError
from heron_common.views import DISPLAY_STATES, ago, alert_summary, display_state, human_seconds
from heron_ingest.dashboard import core, heartbeats, nav, triggers
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
        ("probing", False, "new"),  # a state a later kind adds
    ],
)
def test_display_states(state: str, acknowledged: bool, shown: str) -> None:
    assert display_state(state, acknowledged) == shown
    assert shown in DISPLAY_STATES and shown in badges.PALETTE


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
    for repeat in ("trigger.alerting", "heartbeat.down", "heartbeat.up"):
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
    labels = [link.label for link in links]
    assert labels[:5] == ["Overview", "Incidents", "Heartbeats", "Triggers", "On-call"] and "Webhooks" in labels
    assert links[0].href == "/dashboard/p/5/" and links[1].href == "/dashboard/p/5/incidents"
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
