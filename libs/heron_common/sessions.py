"""Dashboard sessions, CSRF tokens and status-badge tokens, all signed with server secrets. Pure.

A session lives in a cookie: ``v1.<payload>.<signature>``, the payload compact JSON in URL-safe
base64, the signature HMAC-SHA256 over ``v1.<payload>`` with a key derived from
``HERON_SESSION_SECRET``. Nothing is stored server-side, so any ingest replica with the same
secret accepts it; what could change after sign-in is re-checked on every request by the caller:
a project key's revocation (the session carries the key's SHA-256, never the key) and the admin
token (the session carries a keyed fingerprint of the token it was signed in with).

CSRF tokens are bound to the session (an HMAC of its random ``sid``), so a form can only be
posted by a page that session rendered. The sign-in form, before any session exists, binds its
token to a random nonce in a short-lived cookie instead (double submit, signed).

Badge tokens are an HMAC of the monitor id: unguessable, read-only, stable for as long as the
badge secret is, and no column to store.

Every time is passed in (unix seconds), so this is tested on frozen time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass

import orjson

VERSION = "v1"
COOKIE = "heron_session"  # the session cookie's name (Path=/: the dashboard and /update-config)
SESSION_SECONDS = 12 * 3600.0
ADMIN, KEY = "admin", "key"
# A session issued "in the future" by more than this (clock skew between replicas) is refused.
MAX_SKEW = 300.0


def subkey(secret: str, purpose: str) -> bytes:
    """An independent key per use of one configured secret (sessions, CSRF, badges…)."""
    return hmac.new(secret.encode("utf-8"), f"heron-dashboard:{purpose}".encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, message: str, length: int = 32) -> str:
    return _b64(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()[:length])


def same(a: str, b: str) -> bool:
    """Constant-time equality of two tokens (False for anything that is not ASCII)."""
    if not (a.isascii() and b.isascii()):
        return False
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


@dataclass(frozen=True)
class Session:
    sid: str  # random: what CSRF tokens are bound to
    role: str  # ADMIN or KEY
    issued: float
    expires: float
    project_id: int | None = None  # a key session's one project
    key_hash: str | None = None  # URL-safe base64 of the key's SHA-256 (to re-check revocation)
    key_hint: str | None = None  # heron_AbCd…wxyz: shown, and recorded as who acted
    test: bool = False  # a test key: reads, changes nothing
    admin_mark: str | None = None  # fingerprint of the admin token signed in with

    @property
    def admin(self) -> bool:
        return self.role == ADMIN

    @property
    def who(self) -> str:
        """Who acted, as recorded with the change (a key's hint, never the key)."""
        return "dashboard (admin)" if self.admin else f"dashboard, api key {self.key_hint}"


def admin_mark(secret: str, admin_token: str) -> str:
    """A keyed fingerprint of the admin token: a session signed in with an older token dies
    when the token changes, and the cookie reveals nothing of the token."""
    return _mac(subkey(secret, "admin"), admin_token, 16)


def key_digest(key_hash: bytes) -> str:
    return _b64(key_hash)


def digest_bytes(key_digest_text: str) -> bytes | None:
    try:
        raw = _unb64(key_digest_text)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def new_admin(secret: str, admin_token: str, now: float, lifetime: float = SESSION_SECONDS) -> Session:
    return Session(secrets.token_urlsafe(18), ADMIN, now, now + lifetime, admin_mark=admin_mark(secret, admin_token))


def new_key(
    project_id: int, key_hash: bytes, hint: str, test: bool, now: float, lifetime: float = SESSION_SECONDS
) -> Session:
    return Session(
        secrets.token_urlsafe(18),
        KEY,
        now,
        now + lifetime,
        project_id=project_id,
        key_hash=key_digest(key_hash),
        key_hint=hint,
        test=test,
    )


def sign(session: Session, secret: str) -> str:
    payload = _b64(orjson.dumps(asdict(session)))
    signed = f"{VERSION}.{payload}"
    return f"{signed}.{_mac(subkey(secret, 'session'), signed)}"


def verify(cookie: str | None, secret: str, now: float) -> Session | None:
    """The session in ``cookie`` if it is ours (signature), whole and current; None otherwise."""
    if not cookie or len(cookie) > 4096 or not cookie.isascii():
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        return None
    signed = f"{parts[0]}.{parts[1]}"
    if not same(parts[2], _mac(subkey(secret, "session"), signed)):
        return None
    try:
        data = orjson.loads(_unb64(parts[1]))
        session = Session(**data)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if session.role not in (ADMIN, KEY) or not (session.issued - MAX_SKEW <= now < session.expires):
        return None
    if session.role == KEY and (session.project_id is None or session.key_hash is None):
        return None
    return session


def csrf_token(secret: str, bound_to: str) -> str:
    """The CSRF token of a session (``bound_to`` its sid) or of a sign-in nonce."""
    return _mac(subkey(secret, "csrf"), bound_to, 24)


def csrf_ok(secret: str, bound_to: str | None, presented: str | None) -> bool:
    if not bound_to or not presented:
        return False
    return same(presented, csrf_token(secret, bound_to))


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def badge_token(secret: str, monitor_id: int) -> str:
    """The unguessable part of a monitor's badge URL (128 bits)."""
    return _mac(subkey(secret, "badge"), f"monitor:{monitor_id}", 16)


def badge_ok(secret: str, monitor_id: int, presented: str) -> bool:
    return same(presented, badge_token(secret, monitor_id))


def service_badge_token(secret: str, project_id: int, service: str) -> str:
    """The unguessable part of a service's badge URL (128 bits): bound to the project and the
    service's name, and distinct from every monitor's (another message under the same key)."""
    return _mac(subkey(secret, "badge"), f"service:{project_id}:{service}", 16)


def service_badge_ok(secret: str, project_id: int, service: str, presented: str) -> bool:
    return same(presented, service_badge_token(secret, project_id, service))
