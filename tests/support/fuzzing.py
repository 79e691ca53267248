"""Property-based fuzzing of a running Heron from its own OpenAPI document, with schemathesis.

Every operation is called with generated requests — data that fits the document (positive) and
data that does not (negative) — under three credentials: the valid one the operation takes (a
project key, or the admin token for admin calls), a wrong key, and none. Each answer must not be
a 5xx, must be a status and content type the document lists for the operation, must match the
schema the document gives for that status, and every error must be ``{"error": {"code",
"message"}}``.

Schemathesis is synchronous (``requests``), and the system under test runs on the test's event
loop, so :func:`fuzz` is meant to run in a worker thread (``asyncio.to_thread``) while the loop
serves. Generation is derandomized: the same document gives the same requests on every run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from heron_common.openapi import AUTH_FIELD

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
WRONG_KEY = "heron_wrongwrongwrongwrongwrongwrongwrongwrong00"
# Errors that are not API errors: a load balancer's readiness answer has its own documented shape.
NOT_API_ERRORS = frozenset({("GET", "/readyz")})


def examples_per_operation(default: int) -> int:
    """``HERON_FUZZ_EXAMPLES`` (``make fuzz`` raises it), else ``default``."""
    raw = os.environ.get("HERON_FUZZ_EXAMPLES")
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else default


@dataclass
class Report:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self._lock:
            self.calls += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def fail(self, text: str) -> None:
        with self._lock:
            if len(self.failures) < 50:
                self.failures.append(text)


def error_shape_problem(response: requests.Response) -> str | None:
    """Why an error answer is not ``{"error": {"code": str, "message": str}}``, or None."""
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)):
        return f"not the error shape: {response.text[:200]!r}"
    return None


def _content_type(response: Any) -> str:
    """The Content-Type of a response, whichever casing and value shape its headers use."""
    for name, value in (response.headers or {}).items():
        if name.lower() == "content-type":
            return str(value[0] if isinstance(value, list | tuple) and value else value).lower()
    return ""


def _credentials(auth: str, key: str, admin_token: str) -> dict[str, dict[str, str] | None]:
    """The Authorization header of each credential variant (None: send no Authorization)."""
    valid = {"admin": {"Authorization": f"Bearer {admin_token}"}, "none": None, "slack": None}.get(
        auth, {"Authorization": f"Bearer {key}"}
    )
    return {"valid": valid, "wrong key": {"Authorization": f"Bearer {WRONG_KEY}"}, "no key": None}


def fuzz(
    document: Mapping[str, Any],
    base_url: str,
    *,
    key: str,
    admin_token: str,
    examples: int,
    order: Callable[[str, str], Any] | None = None,
    skip: Iterable[tuple[str, str]] = (),
) -> Report:
    """Fuzz every operation of ``document`` against ``base_url``; the report lists what failed.
    ``order`` sorts operations (e.g. deletes and key revocation last, so the key stays valid)."""
    schema = schemathesis.openapi.from_dict(dict(document))
    operations = [result.ok() for result in schema.get_all_operations()]
    if order is not None:
        operations.sort(key=lambda op: order(op.method.upper(), op.path))
    skipped = set(skip)
    report = Report()
    session = requests.Session()
    for op in operations:
        method, path = op.method.upper(), op.path
        if (method, path) in skipped:
            continue
        auth = op.definition.raw.get(AUTH_FIELD, "key")
        for variant, headers in _credentials(auth, key, admin_token).items():
            modes = (
                [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if variant == "valid" else [GenerationMode.POSITIVE]
            )
            for mode in modes:
                # The wrong and missing credentials need few examples: auth is checked first.
                n = examples if variant == "valid" else max(1, examples // 4)
                _run(op, mode, n, variant, headers, base_url, session, report)
    return report


def _run(
    op: Any,
    mode: GenerationMode,
    n: int,
    variant: str,
    headers: dict[str, str] | None,
    base_url: str,
    session: requests.Session,
    report: Report,
) -> None:
    method, path = op.method.upper(), op.path
    label = f"{method} {path} [{mode.value}, {variant}]"

    @hypothesis.settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        if headers is None:
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:
            report.fail(f"{label}: the request failed: {exc}")
            return
        report.count(response.status_code)
        # A page answered to a browser (/ack/{token}) is HTML, not the error shape; that the
        # document allows text/html for this status is content_type_conformance's check.
        page = _content_type(response).startswith("text/html")
        if response.status_code >= 400 and (method, path) not in NOT_API_ERRORS and not page:
            problem = error_shape_problem(response)
            if problem:
                report.fail(f"{label}: {response.status_code} {problem}\n{case.as_curl_command()}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as exc:  # what failed, with a curl line to reproduce
            report.fail(f"{label}: {exc}")

    try:
        one()
    except hypothesis.errors.Unsatisfiable:
        # Negative data for an operation that takes no input (GET /v1/topics): nothing to break.
        if mode is GenerationMode.POSITIVE:
            raise
