"""Reading one app from the Heroku Platform API (v3), through the guarded outbound client.

Every request carries ``Accept: application/vnd.heroku+json; version=3`` and ``Authorization:
Bearer <HEROKU_API_KEY>``. Lists are paged the API's way: a ``206 Partial Content`` answer carries
``Next-Range``, sent back as the next request's ``Range``. Releases are asked newest first
(``Range: version ..; order=desc, max=10``) and only that page is read. The config vars are hashed
the moment they arrive (``heroku.config_hash``): their values are never kept, logged or sent.

Errors come as ``{"id", "message"}``: 401/403/404 are the monitor's configuration (bad key, no such
app) and are reported to the detector as such; 429 is a rate limit to back off from; anything else
(5xx, a timeout, a refused connection) is Heroku being unavailable. Every answer's
``RateLimit-Remaining`` is read, so the caller can slow down before Heroku has to refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from heron_common.monitors import heroku as hk
from heron_common.outbound import ForbiddenTarget, GuardedSession

ACCEPT = "application/vnd.heroku+json; version=3"
RELEASES_RANGE = "version ..; order=desc, max=10"
MAX_PAGES = 10  # of a list (dynos, add-ons): 10 pages of up to 1,000 is more than any app has
MAX_BODY = 8 * 1024 * 1024


class RateLimited(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("rate limited (429)")
        self.retry_after = retry_after


class CheckFailed(Exception):
    """The app could not be read: ``code`` is one of ``heroku.ERROR_CODES``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Reading:
    snapshot: dict[str, Any]
    rate_remaining: int | None = None
    requests: int = 0


@dataclass
class _Budget:
    remaining: int | None = None  # the lowest RateLimit-Remaining seen
    requests: int = 0

    def note(self, headers: Any) -> None:
        self.requests += 1
        raw = headers.get("RateLimit-Remaining")
        if raw is not None and raw.strip().isdigit():
            value = int(raw.strip())
            self.remaining = value if self.remaining is None else min(self.remaining, value)


def retry_after(raw: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
    except (TypeError, ValueError):
        return None


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, refusing one larger than MAX_BODY (no app's lists come near it)."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise CheckFailed(hk.UNAVAILABLE, f"Heroku answered more than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _api_message(body: bytes) -> str:
    """Heroku's own explanation of an error (``{"id", "message"}``), short; never anything else."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"][:200]
    return ""


class PlatformAPI:
    def __init__(self, http: GuardedSession, base_url: str, api_key: str, now: Any) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Accept": ACCEPT, "Authorization": f"Bearer {api_key}"}
        self._now = now

    async def _get(
        self, app: str, path: str, budget: _Budget, range_: str | None = None
    ) -> tuple[int, Any, str | None]:
        headers = dict(self._headers)
        if range_ is not None:
            headers["Range"] = range_
        url = f"{self._base}{path}"
        try:
            async with self._http.request("GET", url, headers=headers) as response:
                budget.note(response.headers)
                body = await _read(response)
                status = response.status
                if status == 429:
                    raise RateLimited(retry_after(response.headers.get("Retry-After"), self._now()))
                next_range = response.headers.get("Next-Range")
        except ForbiddenTarget as exc:
            raise CheckFailed(hk.UNAVAILABLE, f"the Heroku API URL is refused by the outbound guard: {exc}") from None
        except TimeoutError:
            raise CheckFailed(hk.UNAVAILABLE, "Heroku did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise CheckFailed(hk.UNAVAILABLE, f"Heroku could not be reached: {type(exc).__name__}") from None
        if status == 401:
            said = _api_message(body)
            raise CheckFailed(
                hk.UNAUTHORIZED, f"Heroku refused the API key (401{': ' + said if said else ''}); check HEROKU_API_KEY"
            )
        if status == 403:
            raise CheckFailed(hk.FORBIDDEN, f"the API key may not read app {app} (403); check its access")
        if status == 404:
            raise CheckFailed(hk.NOT_FOUND, f"Heroku has no app named {app} (404), or the API key cannot see it")
        if status not in (200, 206):
            raise CheckFailed(hk.UNAVAILABLE, f"Heroku answered {status} for {path.rsplit('/', 1)[-1]}")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CheckFailed(hk.UNAVAILABLE, f"Heroku answered something that is not JSON for {path}") from None
        return status, parsed, next_range

    async def _object(self, app: str, path: str, budget: _Budget) -> dict[str, Any]:
        _, parsed, _ = await self._get(app, path, budget)
        if not isinstance(parsed, dict):
            raise CheckFailed(hk.UNAVAILABLE, f"Heroku answered an unexpected shape for {path}")
        return parsed

    async def _list(self, app: str, path: str, budget: _Budget, range_: str | None = None, *, all_pages: bool) -> list:
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            status, parsed, next_range = await self._get(app, path, budget, range_)
            if not isinstance(parsed, list):
                raise CheckFailed(hk.UNAVAILABLE, f"Heroku answered an unexpected shape for {path}")
            items += [item for item in parsed if isinstance(item, dict)]
            if status != 206 or not next_range or not all_pages:
                break
            range_ = next_range
        return items

    async def read(self, app: str, salt: str) -> Reading:
        """The app's snapshot; CheckFailed or RateLimited when it cannot be had."""
        budget = _Budget()
        base = f"/apps/{quote(app, safe='')}"
        info = await self._object(app, base, budget)
        dynos = await self._list(app, f"{base}/dynos", budget, all_pages=True)
        releases = await self._list(app, f"{base}/releases", budget, RELEASES_RANGE, all_pages=False)
        config_vars = await self._object(app, f"{base}/config-vars", budget)
        digest = hk.config_hash(config_vars, salt)
        del config_vars  # the values go no further than the hash
        addons = await self._list(app, f"{base}/addons", budget, all_pages=True)
        snap = hk.snapshot(info, dynos, releases, digest, addons)
        return Reading(snap, budget.remaining, budget.requests)
