"""What the deployment tests share: the repository's deploy files and the tools that check them.

The tools come from ``make install`` (hadolint and kubernetes-validate from the lock file, the
Compose binary from its pinned source archive; see the Makefile) or, for ``kubectl``, from the
machine image. None needs a Docker engine or a cluster. A missing tool fails the test in CI
(``CI`` set), where its absence means the install is broken; elsewhere it skips, saying what to
install, so a developer without the tool still runs the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = KUBERNETES / "overlays"
SERVICES = ("ingest", "detector", "notifier", "prober")


def tool(name: str, how: str) -> str:
    """The path of ``name``: next to this interpreter (the virtualenv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is missing: {how}"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs everything: a missing tool there is a broken install
    pytest.skip(message)


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The manifests ``kubectl kustomize`` renders from ``directory`` (kustomize v5, built into
    kubectl; no cluster is contacted)."""
    kubectl = tool("kubectl", "kubectl (with kustomize built in) comes with the machine image")
    result = run([kubectl, "kustomize", str(directory)])
    assert result.returncode == 0, f"kubectl kustomize {directory.relative_to(ROOT)} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# -- the settings the services read, and whether a deployment's environment starts them ---------

# Read by the image's health check or the logging set-up, never by Settings.
OTHER_VARIABLES = frozenset({"HERON_HEALTHCHECK_SERVICE", "HERON_LOG_COPY"})


class _Recording(dict[str, str]):
    """An environment that records every name looked up in it."""

    def __init__(self, data: dict[str, str], seen: set[str]) -> None:
        super().__init__(data)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.seen.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        return super().__getitem__(key)


def variables_read() -> set[str]:
    """Every environment variable ``Settings.from_env`` looks up (``_FILE`` variants included)."""
    from heron_common.settings import Settings

    seen: set[str] = set()
    Settings.from_env(_Recording({}, seen))
    return seen


def variables_to_set() -> set[str]:
    """Settings that a deployment must set explicitly: every ``*_url`` setting whose default is
    this machine (Postgres, Redis, RabbitMQ, the public address), and HERON_SHARDS, which must be
    the same in every service. (Settings a service cannot start without are found by starting it:
    ``start_services``.)"""
    from heron_common.settings import Settings

    read = variables_read()
    names = {"HERON_SHARDS"}
    for field, default in vars(Settings()).items():
        if field.endswith("_url") and isinstance(default, str) and ("127.0.0.1" in default or "localhost" in default):
            name = f"HERON_{field.upper()}"
            assert name in read, f"Settings.{field}: expected it to be read from {name}"
            names.add(name)
    return names


def start_service(service: str, env: dict[str, str]) -> Any:
    """Validate ``env`` as the service does at start and build its app (connections are opened
    only when it serves, so nothing is contacted). Raises what the process would die of."""
    import importlib

    from heron_common.settings import Settings

    settings = Settings.from_env(env)
    if service == "migrate":
        return settings
    return importlib.import_module(f"heron_{service}.app").create_app(settings)


def drain_bound(service: str, env: dict[str, str]) -> float:
    """The longest a service can take to stop after SIGTERM (libs/heron_common/service.py): in-flight
    requests get SHUTDOWN_TIMEOUT, then each background loop LOOP_STOP_TIMEOUT, one after another."""
    from heron_common.service import LOOP_STOP_TIMEOUT, SHUTDOWN_TIMEOUT

    app = start_service(service, env)
    loops = sum(1 for ctx in app.cleanup_ctx if getattr(ctx, "__qualname__", "") == "background.<locals>.ctx")
    return SHUTDOWN_TIMEOUT + loops * LOOP_STOP_TIMEOUT


# Closing the pools, the broker link and the consumers after the loops: a margin on top of the bound.
DRAIN_MARGIN = 10.0


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
