"""The access matrix: every operation of the OpenAPI document, called with each credential.

Project "alpha" owns one of everything (a service, a liveness trigger with an open incident, a
heartbeat, a webhook, a probe, a Heroku app monitor); its ids fill the paths. Each operation is
then called with no key, a wrong key, alpha's revoked key, alpha's test key, another project's
("beta") key and the admin token, and must answer as the API defines:

- no key, a wrong key, a revoked key: 401 (operations that take no credential answer as usual);
- the admin token: admin operations and those that take a key or the admin token succeed, every
  project operation is 401 (the admin token is not a project's key);
- alpha's test key: every call answers as alpha's own key would, and writes change nothing
  (``heron_ingest.dryrun``); admin operations 401;
- beta's key: anything of alpha's is 404 (the same as what does not exist), lists and creations
  succeed in beta's own project; admin operations 401.

No answer to anyone but alpha's own test key may contain anything of alpha's (its names carry
the marker ``alpha``). Every refusal is in the error shape. Credentials are taken from the
document's ``x-heron-auth``, so a new operation is in the matrix as soon as it is described.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from heron_common import oncall_store
from heron_common import openapi as oa
from heron_common.oncall import ack
from heron_common.service import PG
from heron_common.settings import Settings
from heron_ingest.context import SECRETS
from heron_ingest.openapi import DOCUMENT
from tests.support.system import System, running_system
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

MARKER = "alpha"
OK = "2xx"
ANSWERED = "the operation's own answer, not an authorisation refusal"
CREDENTIALS = ("no key", "wrong key", "revoked key", "test key", "other project's key", "admin token")

# A body each operation accepts, so a caller that may call it gets past validation.
BODIES: dict[str, Any] = {
    "createProject": {"name": "gamma"},
    "addKey": {"name": "extra"},
    "setSlack": {"slack_webhook_url": None},
    "track": {"event_name": "beta_event"},
    "events": {"events": [{"event_name": "beta_event"}]},
    "createWebhook": {"url": "http://127.0.0.1:9/beta"},
    "updateWebhook": {"description": "changed"},
    "redeliverFailed": {"since": 0},
    "createService": {"name": "beta-service"},
    "createTrigger": {"name": "beta-trigger"},
    "updateTrigger": {"critical": False},
    "createHeartbeat": {"name": "beta-heartbeat", "interval": "1h", "grace": "5m"},
    "updateHeartbeat": {"grace": "10m"},
    "createProbe": {"url": "http://127.0.0.1:9/beta", "service": "beta-service"},
    "updateProbe": {"interval": 120},
    "createHerokuApp": {"app_name": "beta-app", "slack_channel": "#beta"},
    "updateHerokuApp": {"check_interval": 5},
    "updateConfig": {"app_name": "beta-app-two", "slack_channel": "#beta", "check_interval": 5},
    "configureMonitor": {"sensitivity": 2},
    "createUser": {"email": "beta@example.com"},
    "updateUser": {"name": "changed"},
    "createChannel": {"kind": "email", "target": "beta@example.com"},
    "updateChannel": {"delay": 60},
    "createRotation": {"name": "beta-rotation", "spec": "beta@example.com\n"},
    "updateRotation": {"repeat_every": None},
    "reassignShift": {"email": "alpha@example.com"},
    "createEscalation": {"delay": 300, "target": "rotation"},
    "updateEscalation": {"delay": 600},
    "mapServiceRotation": {"rotation_id": None},
}
# An acknowledge link is its own credential (auth "none"): whoever holds it is shown the incident
# it names, as the person paged is. Each call gets a fresh link (a link is single-use).
ACK_PREFIX = "/ack/"
# Path ids that name nothing even in alpha (no delivery, no dead letter exists): 404 for whoever may ask.
MISSING = {"delivery_id", "letter_id"}


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    # Slack's calls configured, so "slack" operations answer an unsigned call 401 (not the 404
    # of Slack interactivity switched off).
    configured = dataclasses.replace(settings, slack_signing_secret="matrix-signing-secret")
    async with running_system(configured, services=("detector",)) as s:
        yield s


async def call(system: System, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = orjson.dumps(body) if body is not None else None
    async with system.http.request(method, system.ingest.url + path, data=data, headers=headers) as r:
        text = await r.text()
        return r.status, text


async def created(system: System, path: str, key: str, body: Any) -> dict[str, Any]:
    status, text = await call(system, "POST", path, key, body)
    assert status == 201, (path, status, text)
    return orjson.loads(text)


async def alpha(system: System) -> dict[str, Any]:
    """Alpha's credentials and one of everything it owns."""
    project_id, key = await system.create_project("alpha project")
    admin = system.settings.admin_token
    test_key = (await created(system, f"/v1/projects/{project_id}/keys", key, {"test": True}))["api_key"]
    revoked = await created(system, f"/v1/projects/{project_id}/keys", key, {"name": "revoked"})
    status, _ = await call(system, "DELETE", f"/v1/projects/{project_id}/keys/{revoked['id']}", key)
    assert status == 204
    spare = await created(system, f"/v1/projects/{project_id}/keys", key, {"name": "spare"})
    service = await created(system, "/v1/services", key, {"name": "alpha-service"})
    trigger = await created(system, "/v1/triggers", key, {"name": "alpha-trigger", "kind": "liveness", "timeout": 3600})
    heartbeat = await created(system, "/v1/heartbeats", key, {"name": "alpha-heartbeat", "interval": 3600, "grace": 60})
    webhook = await created(system, "/v1/webhooks", key, {"url": "http://127.0.0.1:9/alpha", "description": "alpha"})
    probe = await created(system, "/v1/probes", key, {"url": "http://127.0.0.1:9/alpha", "service": "alpha-service"})
    heroku = await created(system, "/v1/heroku-apps", key, {"app_name": "alpha-app", "slack_channel": "#alpha"})
    user = await created(system, "/v1/users", key, {"email": "alpha@example.com", "name": "alpha"})
    channel = await created(
        system, f"/v1/users/{user['id']}/channels", key, {"kind": "email", "target": "alpha@example.com"}
    )
    rotation = await created(system, "/v1/rotations", key, {"name": "alpha-rotation", "spec": "alpha@example.com\n"})
    escalation = await created(
        system,
        f"/v1/rotations/{rotation['id']}/escalations",
        key,
        {"delay": 300, "target": "user", "user_id": user["id"]},
    )
    status, text = await call(system, "GET", f"/v1/rotations/{rotation['id']}/shifts", key)
    assert status == 200, text
    shift = orjson.loads(text)[0]
    status, _ = await call(system, "POST", f"/v1/triggers/{trigger['id']}/alert", key, {"why": "alpha"})
    assert status == 200

    async def incidents() -> list[dict[str, Any]]:
        return orjson.loads((await call(system, "GET", "/v1/incidents", key))[1])

    [incident] = await eventually(incidents, lambda found: len(found) == 1)
    assert admin
    return {
        "project_id": project_id,
        "incident_id": incident["id"],
        "key": key,
        "test key": test_key,
        "revoked key": revoked["api_key"],
        "admin token": admin,
        "ids": {
            "project_id": project_id,
            "key_id": spare["id"],
            "service_id": service["id"],
            "trigger_id": trigger["id"],
            "monitor_id": trigger["id"],
            "incident_id": incident["id"],
            "heartbeat_id": heartbeat["id"],
            "webhook_id": webhook["id"],
            "probe_id": probe["id"],
            "heroku_id": heroku["id"],
            "user_id": user["id"],
            "channel_id": channel["id"],
            "rotation_id": rotation["id"],
            "shift_id": shift["id"],
            "escalation_id": escalation["id"],
            "delivery_id": 1,
            "letter_id": 1,
            "token": heartbeat["ping_url"].rsplit("/", 1)[1],
            "action": "start",
        },
    }


async def ack_token(system: System, project_id: int, incident_id: int) -> str:
    """A fresh acknowledge link's token for alpha's incident, as a page carries."""
    key = await oncall_store.ack_key(system.ingest.app[PG], system.ingest.app[SECRETS])
    claims = ack.AckClaims(str(uuid.uuid4()), incident_id, project_id, "alpha@example.com", int(time.time()) + 3600)
    return ack.sign(key, claims)


def expected(auth: str, method: str, credential: str, path_ids: set[str]) -> str | int:
    """The answer the API defines for ``credential`` on an operation taking ``auth``."""
    if auth == "none":
        return OK  # no credential: the path's token (a ping URL) or nothing at all
    if auth == "slack":
        return 401  # only Slack's signature opens it
    if credential in ("no key", "wrong key", "revoked key"):
        return 401
    missing = 404 if path_ids & MISSING else OK
    if auth == "admin":
        return missing if credential == "admin token" else 401
    if credential == "admin token":
        return missing if auth == "key_or_admin" else 401
    if credential == "test key":
        if auth in ("key", "key_or_admin") and method not in ("GET", "HEAD"):
            # Run as the owner's call would be, in a rolled-back transaction (heron_ingest.dryrun):
            # its answer is the operation's own (a 409 or 422 for this matrix's bodies included).
            return ANSWERED
        return missing
    assert credential == "other project's key"
    return 404 if path_ids else OK


# The tables only the management API writes (monitors, deliveries and shifts also change under the
# detector, the notifier and the shift top-up while this runs): a test key's write must leave each
# as it was, down to the last transaction that touched it (xmin).
INGEST_TABLES = (
    "projects",
    "api_keys",
    "services",
    "webhook_endpoints",
    "webhook_secrets",
    "users",
    "user_channels",
    "rotations",
    "escalation_strategies",
)


async def written_by_ingest(system: System) -> dict[str, int]:
    pool = system.ingest.app[PG]
    return {
        t: await pool.fetchval(f"SELECT count(*) + coalesce(max(xmin::text::bigint), 0) FROM {t}")
        for t in INGEST_TABLES
    }


def _path_ids(path: str) -> set[str]:
    return {part[1:-1] for part in path.split("/") if part.startswith("{")}


async def test_every_operation_answers_every_credential_as_defined(system: System) -> None:
    a = await alpha(system)
    _, beta_key = await system.create_project("beta project")
    keys = {
        "no key": None,
        "wrong key": "heron_notakeynotakeynotakeynotakeynotakeynotake00",
        "revoked key": a["revoked key"],
        "test key": a["test key"],
        "other project's key": beta_key,
        "admin token": a["admin token"],
    }
    document = system.ingest.app[DOCUMENT]
    wrong: list[str] = []
    calls = 0
    for path, methods in document["paths"].items():
        ids = _path_ids(path)
        for method_name, op in methods.items():
            method = method_name.upper()
            body = BODIES.get(op["operationId"])
            if body is None and "requestBody" in op and op["requestBody"].get("required"):
                body = {}
            for credential in CREDENTIALS:
                url = path.format(**a["ids"])
                if path.startswith(ACK_PREFIX):
                    url = ACK_PREFIX + await ack_token(system, a["project_id"], a["incident_id"])
                want = expected(op[oa.AUTH_FIELD], method, credential, ids)
                before = await written_by_ingest(system) if want == ANSWERED else None
                status, text = await call(system, method, url, keys[credential], body)
                if before is not None and await written_by_ingest(system) != before:
                    after = await written_by_ingest(system)
                    changed = [t for t in before if before[t] != after[t]]
                    wrong.append(f"{method} {url} with test key: {status}, and it changed {changed}")
                calls += 1
                where = f"{method} {url} with {credential}: {status} {text[:300]}"
                if want == ANSWERED:
                    if status in (401, 403) or status >= 500:
                        wrong.append(f"{where} (expected the operation's own answer)")
                elif (want == OK and not 200 <= status < 300) or (want != OK and status != want):
                    wrong.append(f"{where} (expected {want})")
                if status >= 400 and path != "/readyz" and not text.startswith("<!doctype html>"):
                    error = orjson.loads(text).get("error", {})
                    if not (isinstance(error.get("code"), str) and isinstance(error.get("message"), str)):
                        wrong.append(f"{where} (not the error shape)")
                if status == 403 and credential == "test key" and orjson.loads(text)["error"]["code"] != "test_key":
                    wrong.append(f"{where} (a test key's refusal is test_key)")
                shown = path in ("/openapi.json", "/docs") or path.startswith(ACK_PREFIX)
                if credential != "test key" and MARKER in text.lower() and not shown:
                    wrong.append(f"{where} (shows alpha's data)")
    assert not wrong, "\n".join(wrong)
    # The marker check can see alpha's data: alpha's own test key is shown it.
    assert MARKER in (await call(system, "GET", "/v1/triggers", a["test key"]))[1]
    assert calls == len(CREDENTIALS) * len(oa.operations(document))


async def test_the_document_and_the_docs_page_are_served(system: System) -> None:
    async with system.http.get(system.ingest.url + "/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        served = await r.json()
    assert served == orjson.loads(orjson.dumps(system.ingest.app[DOCUMENT]))
    async with system.http.get(system.ingest.url + "/docs") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    assert "/openapi.json" in page and "/v1/track" in page and "<script" not in page
