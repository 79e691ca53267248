"""Slack's request signature (v0), pure: what Slack sends to an interactivity endpoint is signed
with the app's signing secret, and nothing else may act as Slack.

Slack sends ``X-Slack-Request-Timestamp`` (unix seconds) and ``X-Slack-Signature`` =
``v0=`` + hex(HMAC-SHA256(signing secret, ``"v0:{timestamp}:{raw body}"``)). A request is genuine
if the signature matches (compared in constant time) and the timestamp is within five minutes of
now (a captured request cannot be replayed later).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

VERSION = "v0"
TOLERANCE = 300.0  # Slack's own advice: refuse requests more than five minutes old


class SlackSignatureError(ValueError):
    """Not a genuine, fresh request from Slack; the message says why (safe to show)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = TOLERANCE) -> None:
    """Raise :class:`SlackSignatureError` unless ``body`` with ``headers`` is a fresh request signed
    with ``secret``. ``headers`` may be any case (aiohttp's are case-insensitive; a dict is looked
    up case-insensitively here)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp", "").strip()
    presented = lowered.get("x-slack-signature", "").strip()
    if not timestamp or not presented:
        raise SlackSignatureError("X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SlackSignatureError("X-Slack-Request-Timestamp is not unix seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise SlackSignatureError("X-Slack-Request-Timestamp is more than five minutes away: possible replay")
    if not presented.isascii() or not hmac.compare_digest(
        signature(secret, timestamp, body).encode(), presented.encode()
    ):
        raise SlackSignatureError("X-Slack-Signature does not match")
