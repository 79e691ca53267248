"""Errors aiohttp answers itself, before any middleware runs, in Heron's error shape.

A request the HTTP parser refuses (a header line or the request line longer than
``HERON_MAX_HEADER_BYTES``, a malformed request line, a bad header) never reaches the app: aiohttp's
``RequestHandler.handle_error`` answers it with a plain-text page. Every other refusal of ingest
is ``{"error": {"code", "message"}}``, and clients parse that; so this wraps ``handle_error`` to
answer the same way. It is a process-wide patch of a third-party method (there is no hook for
it); ``tests/integration/test_quotas.py`` fails if an aiohttp upgrade bypasses it.

Messages are ours, never the parser's: its text can quote the offending line back, and a request
line may carry an ``api_key``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import http_exceptions, web, web_protocol

_original = web_protocol.RequestHandler.handle_error


def _error(status: int, exc: BaseException | None) -> tuple[str, str]:
    if isinstance(exc, http_exceptions.LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "the limit of"
        return "header_too_large", (
            f"a header line or the request line (with its query string) is longer than {limit} bytes"
            " (HERON_MAX_HEADER_BYTES)"
        )
    if status == 400:
        return "bad_request", "the request is not valid HTTP/1.1 (its request line or a header is malformed)"
    if status == 504:
        return "timeout", "the request took too long to handle"
    return "internal_error", "something went wrong on our side; it has been logged"


def handle_error(
    self: web_protocol.RequestHandler,
    request: Any,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    # aiohttp's own: it logs the error and refuses if a response is already being sent; its
    # plain-text answer is replaced.
    _original(self, request, status, exc, message)
    code, text = _error(status, exc)
    response = web.Response(
        status=status, body=orjson.dumps({"error": {"code": code, "message": text}}), content_type="application/json"
    )
    response.force_close()
    return response


def install() -> None:
    """Idempotent; every aiohttp server of the process answers protocol errors as JSON."""
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
