"""The dashboard in a real headless browser: Playwright for Python driving Debian's Chromium
(``/usr/bin/chromium``, installed by ``make browser``; never a browser download).

One Heron (ingest, detector, notifier, in-process on the real local servers) and one Chromium
serve the whole module; each test makes its own project and browser context, so tests do not
depend on each other's data or order. Screenshots go to ``.artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heron_common import db
from tests.support.servers import ServerURLs
from tests.support.system import System, running_system
from tests.support.testenv import copy_database, make_settings, remove_namespace

CHROMIUM = os.environ.get("HERON_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"


def _need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs it (.ci/run): a missing browser there is a failure
    pytest.skip(message)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    _need_chromium()
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    # --no-sandbox: CI and these machines run as root, where Chromium's sandbox refuses to start;
    # --disable-dev-shm-usage: a container's small /dev/shm would crash its renderers.
    chromium = await playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield chromium
    await chromium.close()
    await playwright.stop()


@dataclass
class World:
    system: System

    @property
    def url(self) -> str:
        return self.system.ingest.url

    async def project(self, name: str) -> tuple[int, str]:
        return await self.system.create_project(name)

    async def api(self, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with self.system.http.request(method, f"{self.url}{path}", json=body, headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


@pytest.fixture(scope="module")
async def world(servers: ServerURLs, template_database: str) -> AsyncIterator[World]:
    url = await copy_database(template_database)
    settings = make_settings(
        servers,
        url,
        session_secret=secrets.token_urlsafe(32),
        # One attempt: a delivery the receiver refuses fails at once (the redeliver test).
        webhook_retry_schedule=(0.0,),
    )
    try:
        async with running_system(settings, services=("detector", "notifier")) as system:
            yield World(system)
    finally:
        await remove_namespace(settings)
        await db.drop_database(url)


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
