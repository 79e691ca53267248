"""A local stand-in for the Heroku Platform API (v3), speaking its protocol as documented:

- ``Accept: application/vnd.heroku+json; version=3`` required (else ``400 missing_version``);
  ``Authorization: Bearer <key>`` checked (else ``401 unauthorized``);
- errors as ``{"id", "message"}`` (``not_found`` with ``"resource": "app"``, ``rate_limit``…);
- ``RateLimit-Remaining`` on every answer, counting down from ``rate_remaining``; at 0, or when
  scripted, ``429`` with an optional ``Retry-After``;
- lists (dynos, releases, add-ons) paged with ``Range: <field> [start]..[end]; order=…, max=…``:
  ``Accept-Ranges`` names the fields, a truncated page is ``206 Partial Content`` with
  ``Next-Range`` (``<field> ]<last>..; …``), the default page size is 200 and the largest 1000;
- object shapes as the API's (App, Dyno, Release with ``user.email`` and ``slug.id``, Add-on with
  ``addon_service`` and ``plan``), and as on Heroku a config-var change makes a new release on the
  same slug, a deploy a new release on a new slug.

Tests change the apps (crash a dyno, deploy, set a config var…) and count the requests.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

ACCEPT = "application/vnd.heroku+json; version=3"
# The secrets the Heroku tests hand out: the log scan (logscan.py) fails the run if one is logged.
API_KEY = "HRKU-test-0b6f3c9e-heroku-api-key"
BOT_TOKEN = "xoxb-1111-2222-test-bot-token"
SIGNING_SECRET = "test-slack-signing-secret-5a1c"
SECRET_VALUE = "config-value-never-kept-7d1e42"
SECRETS = (API_KEY, BOT_TOKEN, SIGNING_SECRET, SECRET_VALUE)
DEFAULT_MAX, LARGEST_MAX = 200, 1000
RANGES = {"dynos": ("id", "name"), "releases": ("id", "version"), "addons": ("id", "name")}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class FakeApp:
    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    dynos: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    config_vars: dict[str, str] = field(default_factory=dict)
    addons: list[dict[str, Any]] = field(default_factory=list)
    maintenance: bool = False

    def as_app(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "maintenance": self.maintenance,
            "region": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "us")), "name": "us"},
            "stack": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "heroku-24")), "name": "heroku-24"},
            "web_url": f"https://{self.name}-0123456789ab.herokuapp.com/",
            "created_at": "2026-01-01T00:00:00Z",
            "released_at": self.releases[-1]["created_at"] if self.releases else None,
            "updated_at": _now(),
        }

    def _release(self, description: str, user: str, slug: str | None) -> dict[str, Any]:
        version = (self.releases[-1]["version"] + 1) if self.releases else 1
        release = {
            "id": str(uuid.uuid4()),
            "version": version,
            "description": description,
            "status": "succeeded",
            "current": True,
            "created_at": _now(),
            "updated_at": _now(),
            "app": {"id": self.id, "name": self.name},
            "user": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, user)), "email": user},
            "slug": {"id": slug} if slug else None,
            "addon_plan_names": [a["plan"]["name"] for a in self.addons],
        }
        for r in self.releases:
            r["current"] = False
        self.releases.append(release)
        return release

    def _slug(self) -> str | None:
        current = self.releases[-1]["slug"] if self.releases else None
        return current["id"] if current else None

    def deploy(self, user: str = "user@example.com", commit: str = "3e1f9a2") -> dict[str, Any]:
        """A push: new code, so a new slug and a new release."""
        return self._release(f"Deploy {commit}", user, str(uuid.uuid4()))

    def set_config(self, name: str, value: str, user: str = "user@example.com") -> dict[str, Any]:
        """``heroku config:set``: a new release on the same slug."""
        self.config_vars[name] = value
        return self._release(f"Set {name} config vars", user, self._slug())

    def add_dyno(self, kind: str, number: int, state: str = "up") -> None:
        self.dynos.append(
            {
                "id": str(uuid.uuid4()),
                "name": f"{kind}.{number}",
                "type": kind,
                "state": state,
                "size": "Basic",
                "command": "bin/start" if kind == "web" else "bin/worker",
                "attach_url": None,
                "app": {"id": self.id, "name": self.name},
                "release": {"id": self.releases[-1]["id"], "version": self.releases[-1]["version"]}
                if self.releases
                else None,
                "created_at": _now(),
                "updated_at": _now(),
            }
        )

    def set_dyno(self, name: str, state: str) -> None:
        for dyno in self.dynos:
            if dyno["name"] == name:
                dyno["state"], dyno["updated_at"] = state, _now()
                return
        raise KeyError(name)

    def add_addon(self, name: str, service: str, plan: str, state: str = "provisioned") -> None:
        self.addons.append(
            {
                "id": str(uuid.uuid4()),
                "name": name,
                "addon_service": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, service)), "name": service},
                "plan": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, plan)), "name": plan},
                "app": {"id": self.id, "name": self.name},
                "state": state,
                "config_vars": ["DATABASE_URL"] if "postgres" in service else [],
                "web_url": f"https://addons-sso.heroku.com/apps/{self.id}/addons/{name}",
                "created_at": _now(),
                "updated_at": _now(),
            }
        )

    def set_addon(self, name: str, state: str) -> None:
        for addon in self.addons:
            if addon["name"] == name:
                addon["state"], addon["updated_at"] = state, _now()
                return
        raise KeyError(name)


def standard_app(name: str, secret_value: str) -> FakeApp:
    """An app as the tests start from: released, web.1 and worker.1 up, a Postgres add-on, a
    config var holding ``secret_value`` (which must never appear anywhere Heron writes)."""
    app = FakeApp(name)
    app._release("Initial release", "user@example.com", None)
    app.deploy("user@example.com", "0a1b2c3")
    app.config_vars.update({"DATABASE_URL": f"postgres://u:{secret_value}@db.example.com/d", "SECRET": secret_value})
    app.add_dyno("web", 1)
    app.add_dyno("worker", 1)
    app.add_addon("postgresql-rigid-12345", "heroku-postgresql", "heroku-postgresql:essential-0")
    return app


class RangeError(ValueError):
    pass


def parse_range(raw: str | None, fields: tuple[str, ...]) -> tuple[str, str | None, bool, str | None, str, int]:
    """``<field> [start]..[end][; order=asc|desc][, max=N]`` (``]start`` excludes it)."""
    if raw is None or not raw.strip():
        return fields[0], None, False, None, "asc", DEFAULT_MAX
    head, _, options = raw.partition(";")
    name, _, bounds = head.strip().partition(" ")
    if name not in fields or ".." not in bounds:
        raise RangeError(raw)
    start, _, end = bounds.strip().partition("..")
    exclusive = start.startswith("]")
    start = start.removeprefix("]")
    order, size = "asc", DEFAULT_MAX
    for option in options.replace(",", ";").split(";"):
        key, _, value = option.strip().partition("=")
        if key == "order" and value in ("asc", "desc"):
            order = value
        elif key == "max" and value.isdigit():
            size = min(int(value), LARGEST_MAX)
        elif key:
            raise RangeError(raw)
    return name, start or None, exclusive, end or None, order, max(1, size)


def _key(item: dict[str, Any], name: str) -> Any:
    return item[name]


def _typed(value: str, sample: Any) -> Any:
    return int(value) if isinstance(sample, int) else value


@dataclass
class FakeHeroku:
    api_key: str
    apps: dict[str, FakeApp] = field(default_factory=dict)
    rate_remaining: int = 4500
    # The next requests answered 429 (with this Retry-After, if any) whatever the budget.
    throttle: int = 0
    retry_after: str | None = None
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def add(self, app: FakeApp) -> FakeApp:
        self.apps[app.name] = app
        return app

    def requested(self, app: str, resource: str | None = None) -> int:
        """How many requests reached ``/apps/{app}`` (or one of its resources)."""
        path = f"/apps/{app}" + (f"/{resource}" if resource else "")
        return sum(1 for _, p, _ in self.requests if p == path)

    @staticmethod
    def _error(status: int, error_id: str, message: str, headers: dict[str, str], **extra: Any) -> web.Response:
        body = orjson.dumps({"id": error_id, "message": message, **extra})
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    async def _handle(self, request: web.Request) -> web.Response:
        async with self._arrived:
            self.requests.append((request.method, request.path, dict(request.headers)))
            self._arrived.notify_all()
        headers = {"Request-Id": str(uuid.uuid4())}
        if request.headers.get("Accept") != ACCEPT:
            return self._error(
                400,
                "missing_version",
                "Please specify a version along with Heroku's API MIME type."
                " For example, `Accept: application/vnd.heroku+json; version=3`.",
                headers,
            )
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "unauthorized", "Invalid credentials provided.", headers)
        if self.throttle > 0 or self.rate_remaining <= 0:
            self.throttle = max(0, self.throttle - 1)
            headers["RateLimit-Remaining"] = "0"
            if self.retry_after is not None:
                headers["Retry-After"] = self.retry_after
            return self._error(
                429,
                "rate_limit",
                "Your account reached the API rate limit\nPlease wait a few minutes before making new requests",
                headers,
            )
        self.rate_remaining -= 1
        headers["RateLimit-Remaining"] = str(self.rate_remaining)
        app = self.apps.get(request.match_info["app"])
        if app is None:
            return self._error(404, "not_found", "Couldn't find that app.", headers, resource="app")
        resource = request.match_info.get("resource")
        if resource is None:
            return web.json_response(app.as_app(), headers=headers, dumps=lambda v: orjson.dumps(v).decode())
        if resource == "config-vars":
            return web.json_response(app.config_vars, headers=headers, dumps=lambda v: orjson.dumps(v).decode())
        items = {"dynos": app.dynos, "releases": app.releases, "addons": app.addons}.get(resource)
        if items is None:
            return self._error(404, "not_found", "The requested API endpoint was not found.", headers)
        return self._page(items, RANGES[resource], request.headers.get("Range"), headers)

    def _page(
        self, items: list[dict[str, Any]], fields: tuple[str, ...], raw: str | None, headers: dict[str, str]
    ) -> web.Response:
        headers["Accept-Ranges"] = ", ".join(fields)
        try:
            name, start, exclusive, end, order, size = parse_range(raw, fields)
        except RangeError:
            return self._error(
                416, "requested_range_not_satisfiable", f"Invalid Range header; accepted: {', '.join(fields)}", headers
            )
        ordered = sorted(items, key=lambda i: _key(i, name), reverse=order == "desc")
        if start is not None and ordered:
            bound = _typed(start, ordered[0][name])
            if order == "desc":
                ordered = [i for i in ordered if i[name] < bound or (not exclusive and i[name] == bound)]
            else:
                ordered = [i for i in ordered if i[name] > bound or (not exclusive and i[name] == bound)]
        if end is not None and ordered:
            bound = _typed(end, ordered[0][name])
            ordered = [i for i in ordered if (i[name] >= bound if order == "desc" else i[name] <= bound)]
        page, rest = ordered[:size], ordered[size:]
        body = orjson.dumps(page)
        if page:
            headers["Content-Range"] = f"{name} {page[0][name]}..{page[-1][name]}"
        if rest:
            order_part = "order=desc, " if order == "desc" else ""
            headers["Next-Range"] = f"{name} ]{page[-1][name]}..; {order_part}max={size}"
            return web.Response(status=206, body=body, content_type="application/json", headers=headers)
        return web.Response(status=200, body=body, content_type="application/json", headers=headers)

    async def start(self) -> FakeHeroku:
        app = web.Application()
        app.router.add_get("/apps/{app}", self._handle)
        app.router.add_get("/apps/{app}/{resource}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for_requests(self, app: str, count: int, timeout: float = 30.0) -> None:
        """Until ``/apps/{app}`` itself (the first request of each check) was asked ``count`` times."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self.requested(app) >= count), timeout)
