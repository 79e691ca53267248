"""Secrets in what a test run logged: the patterns, the scan, and the run's logging set-up.

The root conftest points ``HERON_LOG_COPY`` at a per-run file before any test runs, so every
line of this process and of the service processes the tests start (they inherit the
environment) is appended to it as JSON. At the end of the run the file is scanned here.

The patterns are written independently of ``heron_common.logging``'s redaction rules, so a gap
in those rules shows up here rather than hiding itself.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from heron_common.logging import configure_logging
from tests.support.fake_heroku import SECRETS as HEROKU_SECRETS

# What the fixtures hand out (tests/conftest.py settings, tests/support/fakes.py receivers, the
# Heroku tests' key, bot token, signing secret and config-var value).
KNOWN_SECRETS = ("test-admin-token", "/hooks/heron", "/services/T000/B000/XXXX", *HEROKU_SECRETS)

PATTERNS: dict[str, re.Pattern[str]] = {
    "api key": re.compile(r"heron_[A-Za-z0-9_-]{43}"),
    "admin token": re.compile(r"heronadm_[A-Za-z0-9_-]{8,}"),
    "webhook secret": re.compile(r"(?<![A-Za-z0-9_])(?:wh)?sec_[A-Za-z0-9+/]{16,}"),
    "bearer credential": re.compile(r"(?i)bearer\s+(?!\*\*\*)[A-Za-z0-9_\-.~+/]{8,}"),
    "slack webhook url": re.compile(r"hooks\.slack\.com/services/"),
    "slack token": re.compile(r"xox[abpors]-[A-Za-z0-9-]{8,}"),
    "password in url": re.compile(r"://[^/\s:@\"'\\]*:(?!\*\*\*@)[^@/\s\"'\\]+@"),
    **{f"known secret {s!r}": re.compile(re.escape(s)) for s in KNOWN_SECRETS},
}

TEST_LOG_LEVEL = "DEBUG"  # scan everything the code can log


@dataclass(frozen=True)
class Finding:
    line: int
    pattern: str
    excerpt: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.pattern}: {self.excerpt}"


def _excerpt(text: str, match: re.Match[str]) -> str:
    """The surroundings of a match with the match itself cut down, so the report leaks nothing."""
    found = match.group(0)
    shown = found[:6] + "…" if len(found) > 8 else "…"
    return text[max(0, match.start() - 40) : match.start()] + shown + text[match.end() : match.end() + 20]


def scan_lines(lines: list[str]) -> list[Finding]:
    findings = []
    for number, text in enumerate(lines, start=1):
        for name, pattern in PATTERNS.items():
            match = pattern.search(text)
            if match:
                findings.append(Finding(number, name, _excerpt(text, match)))
    return findings


def scan_file(path: Path) -> tuple[int, list[Finding]]:
    """(number of lines, findings) for a capture file; a missing file logged nothing."""
    if not path.exists():
        return 0, []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return len(lines), scan_lines(lines)


def start_capture() -> Path:
    """Create this run's capture file, export it to child processes, log into it from here."""
    fd, name = tempfile.mkstemp(prefix=f"heron-test-logs-{secrets.token_hex(4)}-", suffix=".jsonl")
    os.close(fd)
    os.environ["HERON_LOG_COPY"] = name
    configure_for_tests()
    return Path(name)


def configure_for_tests() -> None:
    """The logging every test runs under (tests that reconfigure logging put this back)."""
    configure_logging(TEST_LOG_LEVEL, json=True)
