"""Secrets at rest: webhook signing secrets and third-party credentials, encrypted in Postgres.

A stored secret is ``enc:v1:`` followed by a Fernet token (AES-128-CBC with HMAC-SHA256, from the
``cryptography`` package: authenticated, so a value altered in the database fails to open rather
than opening to something else). The keys come from ``HERON_SECRETS_KEY`` (or ``_FILE``): one or
more Fernet keys separated by commas, the first sealing new values and every one opening them.

Rotation: put a new key first and keep the old ones after it; every process then seals with the new
key and still opens values sealed with an old one. ``heron-migrate`` re-seals every stored value
with the first key (``reseal_all``), after which the old keys can be removed. A value stored before
encryption existed (no prefix) is read as it is and sealed by that same re-seal.

Pure but for ``reseal_all``; the box is built once per process from the settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "enc:v1:"

GENERATE = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'

# Every stored secret: (table, key column, secret column). Constants of ours, never input.
SEALED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("webhook_endpoints", "id", "secret"),
    ("webhook_endpoints", "id", "previous_secret"),
    ("webhook_secrets", "id", "secret"),
    ("user_channels", "id", "secret"),  # on-call webhook channels
    # A Slack incoming-webhook URL is a credential (whoever has it posts to the channel). A
    # project's is not a delivery's identity: deliveries.target says "project:<id>" instead.
    ("projects", "id", "slack_webhook_url"),
    # On-call channels: a Slack webhook URL, a webhook URL (may carry a token) or an address.
    ("user_channels", "id", "target"),
    # Webhook endpoints: a URL may carry a token, and a Slack-format endpoint's always is one. The
    # endpoint's id is its deliveries' identity, so nothing compares the stored URL.
    ("webhook_endpoints", "id", "url"),
    # The key acknowledge links are signed with: whoever has it can acknowledge any incident (and
    # so stop its pages). Ours, not a third party's, but a credential all the same.
    ("oncall_keys", "id", "sealed_ack_key"),
)


class SecretsKeyError(ValueError):
    """A key that is not a Fernet key, or a sealed value no configured key opens."""


def parse_keys(raw: str | None) -> tuple[str, ...]:
    """The keys of ``HERON_SECRETS_KEY`` (comma-separated, newest first), each checked."""
    keys = tuple(k.strip() for k in (raw or "").split(",") if k.strip())
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SecretsKeyError(
                f"HERON_SECRETS_KEY: key {index} is not a Fernet key (32 url-safe base64 bytes);"
                f" make one with {GENERATE}"
            ) from None
    return keys


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretsKeyError(f"HERON_SECRETS_KEY is required to store secrets; make one with {GENERATE}")
        self._fernets = [Fernet(k) for k in keys]
        self._box = MultiFernet(self._fernets)

    def seal(self, value: str | None) -> str | None:
        if value is None:
            return None
        return PREFIX + self._box.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, stored: str | None) -> str | None:
        """The plaintext of a stored value; a value without the prefix (stored before encryption)
        is returned as it is."""
        if stored is None or not stored.startswith(PREFIX):
            return stored
        try:
            return self._box.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretsKeyError(
                "a stored secret opens with none of the keys in HERON_SECRETS_KEY (was a key removed too early?)"
            ) from exc

    def is_current(self, stored: str | None) -> bool:
        """True if ``stored`` is sealed with the first key (nothing for a re-seal to do)."""
        if stored is None:
            return True
        if not stored.startswith(PREFIX):
            return False
        try:
            self._fernets[0].decrypt(stored[len(PREFIX) :].encode("ascii"))
        except InvalidToken:
            return False
        return True


async def reseal_all(conn: asyncpg.Connection, box: SecretBox) -> int:
    """Seal every stored secret with the first key (plaintext ones included); returns how many
    changed. Each row is updated only if it still holds what was read, so a value written
    meanwhile by a running service is left as that service wrote it."""
    changed = 0
    for table, key, column in SEALED_COLUMNS:
        rows = await conn.fetch(f"SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL")
        for row in rows:
            if box.is_current(row["v"]):
                continue
            sealed = box.seal(box.open(row["v"]))
            status = await conn.execute(
                f"UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3", sealed, row["k"], row["v"]
            )
            changed += status.endswith(" 1")
    return changed


async def reseal_database(database_url: str, keys: Sequence[str]) -> int:
    """``reseal_all`` on its own connection (heron-migrate and heron-dev run it after migrating)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await reseal_all(conn, SecretBox(keys))
    finally:
        await conn.close()
