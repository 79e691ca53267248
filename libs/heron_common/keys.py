"""API keys and tokens: generated with enough entropy, stored only as hashes, compared in constant time.

A key is ``heron_`` + 32 random bytes in URL-safe base64. Because keys are high-entropy, a plain
SHA-256 is the right hash (no salt or slow KDF needed: there is nothing to brute-force), and it
lets the database index the hash for a direct lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "heron_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_admin_token() -> str:
    return "heronadm_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_hint(key: str) -> str:
    """What may be shown back to a user to recognise a key: its prefix and last four characters."""
    return f"{key[:10]}…{key[-4:]}"


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    a_b = a.encode("utf-8") if isinstance(a, str) else a
    b_b = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)
