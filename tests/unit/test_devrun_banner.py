"""What ``make run`` prints once Heron is up: the dashboard's address and a sign-in link (the
link the browser tests sign in through: ``/dashboard/signin#token=…``)."""

from __future__ import annotations

from heron_common.devrun import _banner


def test_the_run_banner_prints_the_dashboard_and_a_sign_in_link() -> None:
    said = _banner("http://127.0.0.1:8080", "heron_admin_example")
    assert "Dashboard:    http://127.0.0.1:8080/dashboard/\n" in said
    assert "Sign in:      http://127.0.0.1:8080/dashboard/signin#token=heron_admin_example\n" in said
