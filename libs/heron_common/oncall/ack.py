"""Acknowledge links, pure: a page carries a token that lets whoever holds it acknowledge one
incident, until it expires, once.

A token is ``<claims>.<mac>``: ``claims`` is base64url (no padding) of compact JSON
``{"l": link id, "i": incident id, "p": project id, "e": email paged, "x": expiry (unix s)}``,
``mac`` base64url of HMAC-SHA256 over ``"heron-ack-v1." + claims`` with the installation's ack
key (``oncall_keys``). The signature makes it unforgeable and the expiry bounds it; single use is
the store's job: the link id is recorded when the link is used (``ack_links_used``), so a second
use is refused. The link id is the page step's id, so every page carries its own link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

_CONTEXT = b"heron-ack-v1."
MAX_TOKEN = 1024


class AckLinkError(ValueError):
    """The token is not a valid acknowledge link; ``expired`` tells an old link from a bad one."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class AckClaims:
    link_id: str  # a UUID
    incident_id: int
    project_id: int
    email: str
    expires_at: int  # unix seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, claims: str) -> str:
    return _b64(hmac.new(key, _CONTEXT + claims.encode("ascii"), hashlib.sha256).digest())


def sign(key: bytes, claims: AckClaims) -> str:
    body = {"l": claims.link_id, "i": claims.incident_id, "p": claims.project_id, "e": claims.email}
    body["x"] = claims.expires_at
    encoded = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{encoded}.{_mac(key, encoded)}"


def verify(key: bytes, token: str, now: float) -> AckClaims:
    """The claims of a genuine, unexpired token; :class:`AckLinkError` otherwise. Never raises
    anything else, whatever the text."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN or token.count(".") != 1:
        raise AckLinkError("this is not an acknowledge link")
    encoded, mac = token.split(".")
    if not hmac.compare_digest(_mac(key, encoded).encode(), mac.encode()):
        raise AckLinkError("this acknowledge link is not valid (altered, or from another installation)")
    try:
        body = json.loads(_unb64(encoded))
        claims = AckClaims(
            link_id=str(uuid.UUID(body["l"])),
            incident_id=int(body["i"]),
            project_id=int(body["p"]),
            email=str(body["e"]),
            expires_at=int(body["x"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise AckLinkError("this is not an acknowledge link") from None
    if now >= claims.expires_at:
        raise AckLinkError("this acknowledge link has expired", expired=True)
    return claims
