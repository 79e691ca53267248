"""Typed keys for what the ingest app holds."""

from aio_pika.abc import AbstractExchange
from aiohttp import web

from heron_common.secretbox import SecretBox
from heron_ingest.auth import KeyAuthenticator
from heron_ingest.publisher import GroupPublisher
from heron_ingest.ratelimit import Limiter
from heron_ingest.revocations import RevocationListener

AUTH = web.AppKey("auth", KeyAuthenticator)
PUBLISHER = web.AppKey("publisher", GroupPublisher)
# Live views' monitor.changed notices (heron_common.bus.publish_changes): ingest sends one per new monitor.
CHANGES = web.AppKey("changes", AbstractExchange)
REVOCATIONS = web.AppKey("revocations", RevocationListener)
# Rate limits per API key and per client address (see ratelimit.py).
KEY_LIMIT = web.AppKey("key_limit", Limiter)
ADDRESS_LIMIT = web.AppKey("address_limit", Limiter)
# Seals webhook signing secrets before they are stored (secretbox.py).
SECRETS = web.AppKey("secrets", SecretBox)
