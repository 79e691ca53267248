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
