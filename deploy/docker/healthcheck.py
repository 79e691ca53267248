#!/usr/bin/env python3
"""Container health check for the Heron image: ``heron-healthcheck [/healthz|/readyz]``.

One image runs four services, each on its own port (``HERON_INGEST_PORT`` 8080,
``HERON_DETECTOR_PORT`` 8081, ``HERON_NOTIFIER_PORT`` 8082, ``HERON_PROBER_PORT`` 8083), so a
fixed port in the Dockerfile's HEALTHCHECK would be wrong for three of them. This script reads
the container's main command (``/proc/1/cmdline``: ``heron-detector`` or
``python -m heron_detector``…), picks that service's port, and GETs the path on it.

Exit 0 when the service answers 2xx, 1 otherwise (urllib raises on 503 from /readyz).
A container running no long-lived Heron service (``heron-migrate``, a shell) is reported healthy:
there is nothing to check. Only the standard library is used (the slim image has no curl).
"""

from __future__ import annotations

import os
import re
import sys
import urllib.request

DEFAULT_PORTS = {"ingest": 8080, "detector": 8081, "notifier": 8082, "prober": 8083}
_SERVICE = re.compile(r"heron[-_](ingest|detector|notifier|prober)\b")


def service_of(cmdline: str) -> str | None:
    match = _SERVICE.search(cmdline)
    return match.group(1) if match else None


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        cmdline = ""
    service = os.environ.get("HERON_HEALTHCHECK_SERVICE") or service_of(cmdline)
    if service is None:
        print(f"no Heron service in this container ({cmdline.strip()!r}); nothing to check")
        return 0
    port = os.environ.get(f"HERON_{service.upper()}_PORT") or str(DEFAULT_PORTS[service])
    host = os.environ.get("HERON_HTTP_HOST", "0.0.0.0")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            print(f"{service} {path}: {resp.status}")
            return 0
    except Exception as exc:  # HTTPError (503), URLError (refused), timeout
        print(f"{service} {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
