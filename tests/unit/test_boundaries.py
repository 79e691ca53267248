"""Import boundaries the architecture promises (docs/architecture.md), read from the source:

- no service imports another service's code, and the shared library imports no service (the
  event kind's pure rules, the event-time clamp included, live in ``heron_common.monitors`` so
  ingest needs nothing of the detector's);
- ingest's hot intake paths (track/events, heartbeat pings, trigger calls) are their own modules
  and import no management module, so the hot path stays small as the API grows.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "ingest": "heron_ingest",
    "detector": "heron_detector",
    "notifier": "heron_notifier",
    "prober": "heron_prober",
}
# Shared helpers every ingest module may use: one error shape, one pagination, one id/parameter
# parser, authentication, publishing and the command/observation sender.
INGEST_SHARED = {"auth", "commands", "context", "params", "publisher", "requests", "validation"}
HOT_PATHS = ("track", "pings", "trigger_calls")


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` counts as ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def top_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported(path)}


def test_no_service_imports_another_and_the_shared_library_imports_none() -> None:
    for service, package in SERVICES.items():
        others = set(SERVICES.values()) - {package}
        for source in (ROOT / "services" / service).rglob("*.py"):
            assert not top_packages(source) & others, f"{source.relative_to(ROOT)} imports another service"
    for source in (ROOT / "libs" / "heron_common").rglob("*.py"):
        assert not top_packages(source) & set(SERVICES.values()), f"{source.relative_to(ROOT)} imports a service"


def test_ingest_hot_paths_import_no_management_module() -> None:
    ingest = ROOT / "services" / "ingest"
    modules = {p.stem for p in ingest.glob("*.py")} | {"dashboard"}
    for hot in HOT_PATHS:
        own = {
            name.split(".")[1]
            for name in imported(ingest / f"{hot}.py")
            if name.startswith("heron_ingest.") and name.split(".")[1] in modules
        }
        assert own <= INGEST_SHARED, f"{hot}.py imports {sorted(own - INGEST_SHARED)} (management code)"


def _paths(module: object) -> set[str]:
    """The paths ``module.add_routes`` serves, on an app of its own."""
    from aiohttp import web

    from heron_common.service import SETTINGS
    from heron_common.settings import Settings

    app = web.Application()
    app[SETTINGS] = Settings()
    module.add_routes(app)  # type: ignore[attr-defined]
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


def test_the_intake_routes_are_served_by_the_hot_path_modules_alone() -> None:
    from heron_common.monitors import trigger as tr
    from heron_ingest import pings, track, trigger_calls
    from heron_ingest.app import API_MODULES

    intake = {
        track: {"/v1/track", "/v1/events"},
        pings: {"/api/v1/hb/{token}", "/api/v1/hb/{token}/{action}"},
        trigger_calls: {f"{p}/{{trigger_id}}/{a}" for p in ("/triggers", "/v1/triggers") for a in tr.ACTIONS},
    }
    every = set().union(*intake.values())
    for module in API_MODULES:
        served = _paths(module)
        if module in intake:
            assert served == intake[module], module.__name__
        else:
            assert not served & every, f"{module.__name__} serves intake routes {sorted(served & every)}"


def test_the_walk_sees_a_cross_service_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from heron_detector.store import apply\nimport heron_ingest.track as t\n")
    assert {"heron_detector", "heron_ingest"} <= top_packages(source)


# SQL that changes monitor state, incidents, flips or the outbox: the detector's alone.
STATE_WRITES = re.compile(
    r"UPDATE\s+monitors\s+SET\s+(?!ping_token\s*=\s*\$\d+\s+WHERE)|UPDATE\s+incidents\b|"
    r"INSERT\s+INTO\s+(incidents|flips|outbox)\b|DELETE\s+FROM\s+(incidents|flips|outbox)\b",
    re.IGNORECASE,
)


def test_only_the_detector_writes_monitor_state_incidents_and_alerts() -> None:
    """Other services create a declared monitor's row (nothing else can know of it yet), regenerate
    a heartbeat's ping token and may remove a row they just created; every change of state after
    that is a command or observation the detector applies."""
    for service in ("ingest", "notifier", "prober"):
        for source in (ROOT / "services" / service).rglob("*.py"):
            found = STATE_WRITES.search(source.read_text())
            assert found is None, f"{source.relative_to(ROOT)}: {found.group(0)!r}"
    assert STATE_WRITES.search("UPDATE monitors SET state = 'down' WHERE id = $1")
    assert not STATE_WRITES.search("UPDATE monitors SET ping_token = $2 WHERE id = $1")
