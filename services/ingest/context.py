"""Typed keys for what the ingest app holds."""

from aiohttp import web

from heron_ingest.auth import KeyAuthenticator
from heron_ingest.publisher import GroupPublisher
from heron_ingest.revocations import RevocationListener

AUTH = web.AppKey("auth", KeyAuthenticator)
PUBLISHER = web.AppKey("publisher", GroupPublisher)
REVOCATIONS = web.AppKey("revocations", RevocationListener)
