"""Webhook signing and verification. Pure: no I/O.

Every delivery carries two signatures over the exact body bytes:

- ``Heron-Signature``: base64(HMAC-SHA256(key = the secret string's UTF-8 bytes, body)), as
  published. The body is exactly ``json.dumps(payload, separators=(",", ":"))`` so a receiver that
  re-serialises the parsed payload that way (the published Python example) gets the same bytes.
- Standard Webhooks: ``webhook-id`` (the alert id, the same on every retry), ``webhook-timestamp``
  (unix seconds of the attempt) and ``webhook-signature`` (``v1,<base64>`` of HMAC-SHA256 over
  ``"{id}.{timestamp}.{body}"``). Its key is the base64 part of the secret after ``sec_``, so
  Standard Webhooks libraries verify with ``"whsec_" + secret[4:]`` (or ``secret[4:]``).

Every rotated-out secret still in its overlap window keeps signing: ``webhook-signature`` lists a
signature for each live secret, newest first (the standard's way to rotate), ``Heron-Signature`` is
made with the newest secret and ``Heron-Signature-Previous`` with the one before it.

``verify`` requires the timestamped Standard signature; ``Heron-Signature`` carries no time, so a
capture would verify forever, and is accepted only with ``allow_untimestamped=True``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_PREFIX = "sec_"


class WebhookVerificationError(Exception):
    """Not a genuine, fresh Heron webhook."""


def new_secret() -> str:
    # 24 random bytes are 32 base64 characters with no padding: a valid Standard Webhooks key.
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def body_bytes(payload: Any) -> bytes:
    """The exact bytes sent: what ``json.dumps(payload, separators=(",", ":"))`` gives."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _standard_key(secret: str) -> bytes:
    raw = secret
    for prefix in ("whsec_", SECRET_PREFIX):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
            break
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode("utf-8")


def heron_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()).decode("ascii")


def signing_headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers for one attempt; ``secrets_`` is newest first (more than one during rotations)."""
    headers = {
        "Heron-Signature": heron_signature(secrets_[0], body),
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(f"v1,{standard_signature(s, msg_id, timestamp, body)}" for s in secrets_),
    }
    if len(secrets_) > 1:
        headers["Heron-Signature-Previous"] = heron_signature(secrets_[1], body)
    return headers


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
    tolerance: float = 300,
    *,
    allow_untimestamped: bool = False,
) -> Any:
    """Check a delivery's signature in constant time and return the parsed payload.

    The timestamped Standard Webhooks signature is required, with its timestamp within
    ``tolerance`` of ``now`` (replay protection). ``Heron-Signature`` alone carries no time, so a
    capture stripped of its ``webhook-*`` headers would verify forever: it is accepted only with
    ``allow_untimestamped=True``, and never rescues a stale or bad Standard signature.
    """
    h = {k.lower(): v for k, v in headers.items()}
    if "webhook-signature" in h:
        try:
            ts = int(h.get("webhook-timestamp", ""))
        except ValueError:
            raise WebhookVerificationError("webhook-timestamp is missing or not an integer") from None
        if abs(now - ts) > tolerance:
            raise WebhookVerificationError(f"webhook-timestamp is {int(now - ts)} s off: possible replay")
        expected = standard_signature(secret, h.get("webhook-id", ""), ts, body).encode()
        matched = False
        for entry in h["webhook-signature"].split():
            version, _, value = entry.partition(",")
            matched |= version == "v1" and hmac.compare_digest(expected, value.encode())
        if not matched:
            raise WebhookVerificationError("webhook-signature does not match")
    elif "heron-signature" in h and allow_untimestamped:
        if not hmac.compare_digest(heron_signature(secret, body).encode(), h["heron-signature"].strip().encode()):
            raise WebhookVerificationError("Heron-Signature does not match")
    elif "heron-signature" in h:
        raise WebhookVerificationError(
            "webhook-signature is missing: Heron-Signature alone carries no timestamp and can be replayed"
        )
    else:
        raise WebhookVerificationError("no signature headers")
    return json.loads(body)


def topic_matches(patterns: Sequence[str], topic: str) -> bool:
    """``*`` matches everything, ``notice.*`` every notice, anything else exactly."""
    for pattern in patterns:
        if pattern == "*" or pattern == topic:
            return True
        if pattern.endswith(".*") and topic.startswith(pattern[:-1]):
            return True
    return False
