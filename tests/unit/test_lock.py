"""The lock files pin every dependency pyproject.toml names (make lock keeps them in step)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, _, version = line.partition("==")
            assert version, f"{lock}: {line!r} is not pinned with =="
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_every_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    dev = {_name(r) for r in project["optional-dependencies"]["dev"]}
    runtime_pins, dev_pins = _pins("runtime.lock"), _pins("dev.lock")
    assert runtime <= set(runtime_pins), f"run `make lock`: {sorted(runtime - set(runtime_pins))} not in runtime.lock"
    assert runtime | dev <= set(dev_pins), f"run `make lock`: {sorted((runtime | dev) - set(dev_pins))} not in dev.lock"
    # The image and the tests run the same versions of what they share.
    assert {n: v for n, v in dev_pins.items() if n in runtime_pins} == runtime_pins
