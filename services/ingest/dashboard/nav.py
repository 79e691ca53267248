"""The dashboard's navigation: one list of entries, so pages that land later (On-call, Probes,
Heroku) add themselves in one line. Pure.

A page module registers its entry with :func:`register` when it is imported (the dashboard
imports every module named in ``heron_ingest.dashboard.PAGES``); the entries are shown in
``order``. ``path`` is relative to the project's root (``/dashboard/p/{project_id}/``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    key: str  # what a page passes as ``active`` to render(): the entry is then marked current
    label: str
    path: str  # under /dashboard/p/{project_id}/ ("" for the overview)
    order: int
    tip: str = ""  # the 🌵 tip in the footer of that page
    live: bool = False  # the page refreshes itself when an alert of its project arrives
    in_nav: bool = True  # False: a page reached from others (a monitor's detail), not the menu


ENTRIES: dict[str, Entry] = {}
# Pages that listen to the live stream (overview, incidents…), by key.
LIVE_PAGES: set[str] = set()


def register(entry: Entry) -> None:
    ENTRIES[entry.key] = entry
    if entry.live:
        LIVE_PAGES.add(entry.key)


@dataclass(frozen=True)
class Link:
    key: str
    label: str
    href: str


def entries(project_id: int) -> list[Link]:
    return [
        Link(e.key, e.label, f"/dashboard/p/{project_id}/{e.path}")
        for e in sorted(ENTRIES.values(), key=lambda e: (e.order, e.label))
        if e.in_nav
    ]


DEFAULT_TIP = "Tip: every page here has an API twin under /v1; the dashboard is a friendlier view of it."


def tip(active: str | None) -> str:
    entry = ENTRIES.get(active or "")
    return entry.tip if entry and entry.tip else DEFAULT_TIP


# The core pages. Order leaves room between them: On-call slots in at 45, Probes at 55,
# Heroku at 65 (see docs/architecture.md, "Dashboard").
register(
    Entry(
        "overview",
        "Overview",
        "",
        10,
        "Tip: this page updates by itself when a monitor goes down or recovers: no need to reload.",
        live=True,
    )
)
register(
    Entry(
        "incidents",
        "Incidents",
        "incidents",
        20,
        "Tip: acknowledging tells your team (and webhooks) someone is on it; it does not silence the monitor.",
        live=True,
    )
)
register(
    Entry(
        "heartbeats",
        "Heartbeats",
        "heartbeats",
        30,
        "Tip: add `&& curl -fsS <ping URL>` to the end of a cron line and Heron knows when the job stops running.",
        live=True,
    )
)
register(
    Entry(
        "triggers",
        "Triggers",
        "triggers",
        40,
        "Tip: a liveness trigger alerts by itself when its check-ins stop; a manual one only when called.",
        live=True,
    )
)
register(
    Entry(
        "webhooks",
        "Webhooks",
        "webhooks",
        50,
        "Tip: a failed delivery can be sent again once the receiver is fixed: its attempts start over.",
    )
)
register(
    Entry(
        "monitor",
        "Monitor",
        "monitors",
        1000,
        "Tip: the status badge URL is read-only and unguessable: paste it in a README or a status page.",
        live=True,
        in_nav=False,
    )
)
