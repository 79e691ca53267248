"""Verify that a webhook request really comes from Heron.

By default only the timestamped scheme is accepted:

* **Standard Webhooks** (https://www.standardwebhooks.com): headers ``webhook-id``,
  ``webhook-timestamp`` (unix seconds) and ``webhook-signature`` (space-separated
  ``v1,<base64>`` entries). The signed content is ``f"{id}.{timestamp}.{body}"``; the key is the
  base64-decoded remainder of the secret after ``sec_`` (Heron's secrets) or ``whsec_`` (the
  standard's), otherwise the secret's UTF-8 bytes. The timestamp must be within ``tolerance``
  seconds of now, so a captured request cannot be replayed later.

Opt-in, for receivers that cannot read the Standard Webhooks headers:

* **Heron-Signature** (``verify(..., allow_untimestamped=True)``): header ``Heron-Signature`` =
  base64(HMAC-SHA256(secret UTF-8 bytes, body)). It carries no time, so **a captured request
  verifies forever**: anyone who saw one delivery can replay it, stripped of its ``webhook-*``
  headers, at any later time. Deduplicate on the payload if you must use it.

When the Standard Webhooks headers are present they are the ones checked (a stale or bad
Standard signature is *not* rescued by a Heron-Signature header, whatever the option says).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _secrets
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["WebhookVerificationError", "sign", "verify"]


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh Heron webhook; respond with HTTP 400/401."""


def _check_secret(secret: str) -> None:
    if not isinstance(secret, str) or not secret:
        raise TypeError("the webhook secret must be a non-empty string")
    _standard_key(secret)  # a malformed whsec_ secret is a configuration error, found at once


def _heron_key(secret: str) -> bytes:
    """Heron-Signature is keyed with the secret string itself, exactly as published."""
    return secret.encode("utf-8")


def _standard_key(secret: str) -> bytes:
    """Standard Webhooks keys are the base64 part of the secret: after Heron's ``sec_`` prefix or
    the standard's ``whsec_``. A secret that is not base64 there is used as UTF-8 bytes."""
    raw = secret
    for prefix in ("whsec_", "sec_"):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
            break
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        if secret.startswith("whsec_"):
            raise ValueError("the webhook secret starts with 'whsec_' but the rest is not valid base64") from exc
        return secret.encode("utf-8")


def _lower_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        lowered.setdefault(str(name).lower(), str(value))  # first occurrence wins
    return lowered


def _hmac_b64(key: bytes, message: bytes) -> bytes:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest())


def verify(
    secret: str,
    body: bytes | str,
    headers: Mapping[str, Any],
    tolerance: float = 300,
    *,
    allow_untimestamped: bool = False,
) -> Any:
    """Check the signature of a webhook request and return its parsed JSON payload.

    ``body`` must be the exact raw request body (bytes; a str is UTF-8 encoded). ``headers`` is
    any mapping of the request headers; names are matched case-insensitively. ``tolerance`` is
    the accepted clock difference, in seconds, for the Standard Webhooks timestamp.

    The timestamped Standard Webhooks signature is required. ``allow_untimestamped=True`` also
    accepts a request that has only ``Heron-Signature``, which carries no time: such a request
    can be replayed at any later time. Leave it off unless you cannot read the other headers.

    Raises :class:`WebhookVerificationError` if the request is not authentic or is stale;
    ``ValueError``/``TypeError`` if the secret itself is malformed (a configuration error).
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise TypeError("body must be the raw request body as bytes (or str)")
    _check_secret(secret)
    h = _lower_headers(headers)

    if "webhook-signature" in h:
        _verify_standard(_standard_key(secret), body, h, tolerance)
    elif "heron-signature" in h and allow_untimestamped:
        _verify_heron(_heron_key(secret), body, h["heron-signature"])
    elif "heron-signature" in h:
        raise WebhookVerificationError(
            "webhook-signature is missing: Heron-Signature alone carries no timestamp and can be replayed;"
            " verify with the webhook-id/webhook-timestamp/webhook-signature headers"
            " (or pass allow_untimestamped=True to accept replayable requests)"
        )
    else:
        raise WebhookVerificationError(
            "missing signature headers: expected webhook-id/webhook-timestamp/webhook-signature or Heron-Signature"
        )
    try:
        return json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError(f"signature is valid but the body is not JSON: {exc}") from exc


def _verify_heron(key: bytes, body: bytes, signature: str) -> None:
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("Heron-Signature is not valid base64") from None
    expected = hmac.new(key, body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise WebhookVerificationError("Heron-Signature does not match (wrong secret or modified body)")


def _verify_standard(key: bytes, body: bytes, h: dict[str, str], tolerance: float) -> None:
    msg_id = h.get("webhook-id", "").strip()
    timestamp = h.get("webhook-timestamp", "").strip()
    if not msg_id or not timestamp:
        raise WebhookVerificationError("webhook-signature is present but webhook-id or webhook-timestamp is missing")
    try:
        ts = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not an integer: {timestamp!r}") from None
    now = time.time()
    if ts < now - tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is too old ({int(now - ts)}s ago, tolerance {tolerance}s): possible replay"
        )
    if ts > now + tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is {int(ts - now)}s in the future (tolerance {tolerance}s)")

    expected = _hmac_b64(key, f"{msg_id}.{timestamp}.".encode() + body)
    candidates = []
    for entry in h["webhook-signature"].split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            candidates.append(value.encode("ascii", "replace"))
    if not candidates:
        raise WebhookVerificationError("webhook-signature has no 'v1,<base64>' entry")
    matched = False
    for candidate in candidates:  # compare against every entry: no early exit on a match
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError("webhook-signature does not match (wrong secret or modified body)")


def sign(secret: str, body: bytes | str, *, msg_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    """The headers Heron attaches to ``body``: Standard Webhooks (``msg_id`` defaults to a random
    id, ``timestamp`` to now) and ``Heron-Signature``. Handy in tests."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    _check_secret(secret)
    msg_id = f"msg_{_secrets.token_hex(12)}" if msg_id is None else msg_id
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    signature = _hmac_b64(_standard_key(secret), f"{msg_id}.{ts}.".encode() + body).decode("ascii")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": f"v1,{signature}",
        "Heron-Signature": _hmac_b64(_heron_key(secret), body).decode("ascii"),
    }
