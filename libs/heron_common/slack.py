"""Slack's request signing (slash commands, interactivity), verified. Pure: no I/O.

Slack signs each request it sends with the app's signing secret: ``X-Slack-Signature: v0=`` +
hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. A request is accepted only if
the signature matches (compared in constant time) and the timestamp is within five minutes of
now, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

VERSION = "v0"
TOLERANCE = 300.0  # seconds, as Slack recommends


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: float = TOLERANCE,
) -> str | None:
    """Why the request is refused, or None if it is Slack's."""
    if not secret:
        return "slash commands are not configured (SLACK_SIGNING_SECRET is not set)"
    if not timestamp or not signature:
        return "X-Slack-Request-Timestamp and X-Slack-Signature are required"
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "X-Slack-Request-Timestamp must be unix seconds"
    if abs(now - int(timestamp)) > tolerance:
        return "the request is too old (or from the future): its timestamp is more than five minutes away"
    if not signature.isascii():
        return "the signature does not match"
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "the signature does not match"
    return None


class SlackSignatureError(ValueError):
    """Not a genuine, fresh request from Slack; the message says why (safe to show)."""


def verify_headers(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = TOLERANCE
) -> None:
    """:func:`verify` on a request's headers (any case); raises :class:`SlackSignatureError`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    refused = verify(
        secret,
        lowered.get("x-slack-request-timestamp", "").strip() or None,
        lowered.get("x-slack-signature", "").strip() or None,
        body,
        now,
        tolerance,
    )
    if refused is not None:
        raise SlackSignatureError(refused)
