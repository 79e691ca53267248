"""Stopping and starting the real RabbitMQ (``rabbitmqctl stop_app`` / ``start_app``), with a
guard that always starts it again: the test's ``finally``, ``pytest_sessionfinish`` and atexit."""

from __future__ import annotations

import atexit
import subprocess

_stopped = False


def _ctl(*args: str, timeout: float = 120.0) -> str:
    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=timeout).stdout


def queue_count() -> int:
    out = _ctl("list_queues", "name", "--quiet", "--no-table-headers", timeout=60.0)
    return len([line for line in out.splitlines() if line.strip()])


def stop_app() -> None:
    global _stopped
    _stopped = True
    _ctl("stop_app")


def start_app() -> None:
    """Start the broker again (if this process stopped it) and wait until it serves."""
    global _stopped
    if not _stopped:
        return
    _ctl("start_app")
    _ctl("await_startup")
    _stopped = False


def ensure_started() -> None:
    try:
        start_app()
    except Exception as exc:  # pragma: no cover - last resort; say so loudly
        print(f"!!! could not start RabbitMQ again: {exc}; run `rabbitmqctl start_app`")


atexit.register(ensure_started)
