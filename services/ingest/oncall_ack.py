"""Acknowledging from a page: the signed link every page carries, and Slack's Acknowledge button.

- ``GET /ack/{token}`` shows what would be acknowledged and a button (a link must not act on a
  GET: mail scanners and link previews fetch it); ``POST /ack/{token}`` acknowledges. A form post
  (the page's button) is answered with a page, anything else with JSON.
- ``POST /slack/interactivity``: Slack's request URL for the button. The request must carry
  Slack's v0 signature made with ``SLACK_SIGNING_SECRET`` (``heron_common.slack``); the
  button's value is the page's acknowledge token. Slack ignores what the request is answered
  with, so the outcome goes to the interaction's ``response_url``: the message is replaced by
  one that says who acknowledged it (and has no button left), or the person who clicked is told,
  privately, why nothing happened (a used or expired link).

Both go through the same path as ``POST /v1/incidents/{id}/acknowledge``: a command to the
detector, the only writer of incident state. A token (``heron_common.oncall.ack``) is signed,
expires (``HERON_ACK_LINK_TTL``) and is single-use: its id is recorded in ``ack_links_used`` in
the transaction that queues the command, so a used link is refused (``410``) and a command that
could not be queued leaves it usable.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import orjson
from aiohttp import web

from heron_common import oncall_store, slack
from heron_common import openapi as oa
from heron_common.logging import get_logger
from heron_common.oncall import ack
from heron_common.outbound import GuardedSession
from heron_common.service import CLOCK, PG, SETTINGS, error_response, json_response
from heron_common.views import INCIDENT_SCHEMA, incident_view
from heron_ingest.commands import applied, send_command
from heron_ingest.context import SECRETS
from heron_ingest.validation import InputError

ACTION_ID = "heron_acknowledge"  # the button's action_id in the Slack message (heron_notifier.paging_render)
log = get_logger("oncall-ack")
MAX_INTERACTIVITY_BODY = 64 * 1024
# Slack wants the interaction answered within 3 s; the response_url post comes first, bounded.
RESPONSE_URL_TIMEOUT = 2.0
SLACK_HTTP = web.AppKey("slack_http", GuardedSession)
# The confirmation page: no scripts, nothing loaded from elsewhere, the token never leaks in a Referer.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class AckProblem(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _claims(request: web.Request, token: str) -> ack.AckClaims:
    key = await oncall_store.ack_key(request.app[PG], request.app[SECRETS])
    try:
        return ack.verify(key, token, request.app[CLOCK].now())
    except ack.AckLinkError as exc:
        raise AckProblem(
            410 if exc.expired else 400, "link_expired" if exc.expired else "invalid_link", str(exc)
        ) from None


async def _incident(pool: asyncpg.Pool, claims: ack.AckClaims) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT i.*, m.name AS monitor_name FROM incidents i JOIN monitors m ON m.id = i.monitor_id"
        " WHERE i.id = $1 AND i.project_id = $2",
        claims.incident_id,
        claims.project_id,
    )
    if row is None:
        raise AckProblem(404, "not_found", "the incident no longer exists")
    return row


async def acknowledge(request: web.Request, token: str, via: str) -> tuple[int, dict[str, Any]]:
    """Acknowledge what ``token`` names, as the person it was sent to ``via`` the link or Slack;
    (status, incident view). AckProblem otherwise."""
    claims = await _claims(request, token)
    by = f"{claims.email} via {via}"
    pool = request.app[PG]
    if await pool.fetchval("SELECT 1 FROM ack_links_used WHERE link_id = $1", claims.link_id):
        raise AckProblem(410, "link_used", "this acknowledge link has been used already")
    incident = await _incident(pool, claims)
    if incident["resolved_at"] is not None:
        raise AckProblem(409, "incident_resolved", "the incident is resolved already; nothing to acknowledge")
    if incident["acknowledged_at"] is not None:
        return 200, incident_view(incident)  # someone was quicker: the link has done its job
    monitor = await pool.fetchrow("SELECT * FROM monitors WHERE id = $1", incident["monitor_id"])
    if monitor is None:
        raise AckProblem(404, "not_found", "the incident no longer exists")
    async with pool.acquire() as conn, conn.transaction():
        first = await conn.fetchval(
            "INSERT INTO ack_links_used (link_id, incident_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            claims.link_id,
            claims.incident_id,
        )
        if not first:
            raise AckProblem(410, "link_used", "this acknowledge link has been used already")
        try:
            await send_command(request, monitor, "acknowledge", {"incident_id": incident["id"]}, by=by)
        except InputError as exc:  # not queued: the transaction rolls back, the link stays usable
            raise AckProblem(exc.status, exc.code, exc.message) from None
    row = await applied(
        lambda: pool.fetchrow(
            "SELECT * FROM incidents WHERE id = $1 AND (acknowledged_at IS NOT NULL OR resolved_at IS NOT NULL)",
            incident["id"],
        )
    )
    if row is None:
        return 202, incident_view(incident)
    return 200, incident_view(row)


# -- the link ---------------------------------------------------------------------------------


def _page(status: int, title: str, body: str) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · Heron</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;line-height:1.5}"
        "button{font-size:1.1em;padding:.5em 1.5em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(status=status, text=text, content_type="text/html", headers=PAGE_HEADERS)


def _wants_page(request: web.Request) -> bool:
    return request.content_type == "application/x-www-form-urlencoded" or "text/html" in request.headers.get(
        "Accept", ""
    )


async def confirm_page(request: web.Request) -> web.Response:
    """GET: what the link is for, and the button that acknowledges (a POST to the same URL)."""
    token = request.match_info["token"]
    try:
        claims = await _claims(request, token)
        incident = await _incident(request.app[PG], claims)
    except AckProblem as exc:
        return _page(exc.status, "This link cannot acknowledge", f"<p>{html.escape(exc.message)}.</p>")
    view = incident_view(incident)
    about = (
        f"<p><strong>{html.escape(view['title'])}</strong>"
        + (f" — service {html.escape(view['service'])}" if view["service"] else "")
        + f"</p><p>Opened {html.escape(view['opened_at'] or '')}.</p>"
    )
    if view["resolved_at"]:
        return _page(200, "Already resolved", about + "<p>Nothing to acknowledge.</p>")
    if view["acknowledged_at"]:
        who = html.escape(view["acknowledged_by"] or "someone")
        return _page(200, "Already acknowledged", about + f"<p>Acknowledged by {who}.</p>")
    form = "<form method='post'><button type='submit'>Acknowledge</button></form>"
    return _page(200, "Acknowledge this incident?", about + form)


async def acknowledge_link(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    page = _wants_page(request)
    try:
        status, view = await acknowledge(request, token, "acknowledge link")
    except AckProblem as exc:
        if page:
            return _page(exc.status, "Not acknowledged", f"<p>{html.escape(exc.message)}.</p>")
        return error_response(exc.status, exc.code, exc.message)
    if page:
        if status == 202:
            return _page(
                202, "Acknowledging…", "<p>Heron is busy; the acknowledgement is queued and will apply shortly.</p>"
            )
        who = html.escape(view.get("acknowledged_by") or "you")
        return _page(
            200, "Acknowledged", f"<p><strong>{html.escape(view['title'])}</strong>: acknowledged by {who}.</p>"
        )
    return json_response({"status": "acknowledged" if status == 200 else "accepted", "incident": view}, status=status)


# -- Slack ------------------------------------------------------------------------------------


def _slack_user(payload: dict[str, Any]) -> str:
    found = payload.get("user")
    user: dict[str, Any] = found if isinstance(found, dict) else {}
    name = next((str(user[k]) for k in ("username", "name", "id") if isinstance(user.get(k), str)), "someone")
    # Stored as acknowledged_by: printable characters only (NUL and lone surrogates are not, and
    # Postgres text refuses them), or the acknowledgement would be refused after its link was spent.
    name = "".join(c for c in name[:100] if c.isprintable())
    return f"Slack ({name or 'someone'})"


async def slack_interactivity(request: web.Request) -> web.Response:
    secret = request.app[SETTINGS].slack_signing_secret
    if not secret:
        return error_response(404, "not_configured", "Slack interactivity is not configured (SLACK_SIGNING_SECRET)")
    body = await request.read()
    if len(body) > MAX_INTERACTIVITY_BODY:
        return error_response(413, "body_too_large", "the request body is too large for a Slack interaction")
    try:
        slack.verify_headers(secret, request.headers, body, request.app[CLOCK].now())
    except slack.SlackSignatureError as exc:
        return error_response(401, "invalid_signature", str(exc))
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = orjson.loads(form["payload"][0])
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, orjson.JSONDecodeError):
        return error_response(400, "invalid_payload", "expected a form with a JSON 'payload', as Slack sends")
    actions = payload.get("actions") if payload.get("type") == "block_actions" else None
    action = next(
        (
            a
            for a in (actions if isinstance(actions, list) else [])
            if isinstance(a, dict)
            and a.get("action_id") == ACTION_ID
            and isinstance(a.get("value"), str)
            and a["value"]
        ),
        None,
    )
    if action is None:
        return json_response({"ok": True})  # another interaction: nothing for Heron to do
    try:
        status, view = await acknowledge(request, str(action["value"]), _slack_user(payload))
    except AckProblem as exc:
        await _tell_slack(request, payload, _not_acknowledged(exc))
        return error_response(exc.status, exc.code, exc.message)
    await _tell_slack(request, payload, _acknowledged(payload, view, status))
    return json_response({"ok": True, "status": "acknowledged" if status == 200 else "accepted", "incident": view})


def _acknowledged(payload: dict[str, Any], view: dict[str, Any], status: int) -> dict[str, Any]:
    """The page's message as it should read now: its text, then who acknowledged; no button."""
    message = payload.get("message")
    original = message.get("text") if isinstance(message, dict) else None
    title = original if isinstance(original, str) and original else view["title"]
    if status == 200:
        outcome = f":white_check_mark: Acknowledged by {view.get('acknowledged_by') or 'you'}"
    else:
        outcome = ":hourglass_flowing_sand: Acknowledgement queued: Heron applies it shortly"
    text = f"{title}\n{outcome}"
    # Blocks as well as text: a message that had blocks keeps its old ones when sent text alone.
    return {"replace_original": True, "text": text, "blocks": [_section(title), _section(outcome)]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _not_acknowledged(problem: AckProblem) -> dict[str, Any]:
    """Only the person who clicked sees it; the message (and its button) stay as they are."""
    return {"response_type": "ephemeral", "replace_original": False, "text": f"Not acknowledged: {problem.message}."}


async def _tell_slack(request: web.Request, payload: dict[str, Any], message: dict[str, Any]) -> None:
    url = payload.get("response_url")
    if not isinstance(url, str) or SLACK_HTTP not in request.app:
        return
    try:
        async with asyncio.timeout(RESPONSE_URL_TIMEOUT):
            async with request.app[SLACK_HTTP].request("POST", url, json=message) as answer:
                if answer.status >= 300:
                    log.warning("Slack refused the interaction's update", status=answer.status)
    except Exception as exc:  # the acknowledgement stands; only its echo in Slack is missing
        log.warning("could not update the Slack message", error=type(exc).__name__)


async def _slack_http(app: web.Application) -> AsyncIterator[None]:
    """The guarded client for response_url posts, only where Slack interactivity is configured."""
    if not app[SETTINGS].slack_signing_secret:
        yield
        return
    app[SLACK_HTTP] = GuardedSession(app[SETTINGS].outbound_allow_cidrs, timeout=RESPONSE_URL_TIMEOUT, limit=10)
    yield
    await app[SLACK_HTTP].close()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ack/{token}", confirm_page)
    app.router.add_post("/ack/{token}", acknowledge_link)
    app.router.add_post("/slack/interactivity", slack_interactivity)
    app.cleanup_ctx.append(_slack_http)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

_TOKEN = oa.path_param("token", "the signed, single-use acknowledge token the page carries", oa.STRING)
_HTML = {"text/html": {"schema": oa.STRING}}


def _page_or_json(description: str, schema: oa.Schema | None = None) -> oa.Schema:
    """A response that is a page for a browser's form (or ``Accept: text/html``), else JSON."""
    content: oa.Schema = {"application/json": {"schema": schema or {"$ref": "#/components/schemas/Error"}}, **_HTML}
    return {"description": description, "content": content}


_LINK_ERRORS = {
    400: "The token is not one Heron signed",
    404: "The incident no longer exists",
    409: "The incident is resolved already",
    410: "The link has expired or been used",
    503: "Could not be queued; retry (the link stays usable)",
}
_ACKED = oa.obj({"status": {"enum": ["acknowledged", "accepted"]}, "incident": INCIDENT_SCHEMA})

PATHS: dict[str, dict[str, oa.Schema]] = {
    "/ack/{token}": {
        "get": oa.operation(
            "What an acknowledge link would acknowledge, and its button (a page; a GET changes nothing)",
            tag="oncall",
            auth="none",
            operation_id="ackLinkPage",
            parameters=[_TOKEN],
            responses={
                200: {"description": "The incident, and a button that POSTs to this URL", "content": _HTML},
                **{
                    status: {"description": f"{meaning}: a page that says so", "content": _HTML}
                    for status, meaning in _LINK_ERRORS.items()
                    if status in (400, 404, 410)
                },
            },
        ),
        "post": oa.operation(
            "Acknowledge the incident a page's link names (single use). A form post is answered with a page",
            tag="oncall",
            auth="none",
            operation_id="ackLink",
            parameters=[_TOKEN],
            responses={
                200: _page_or_json("Acknowledged (or someone was quicker)", _ACKED),
                202: _page_or_json("Queued for the detector; applies shortly", _ACKED),
                **{status: _page_or_json(meaning) for status, meaning in _LINK_ERRORS.items()},
            },
        ),
    },
    "/slack/interactivity": {
        "post": oa.operation(
            "Slack's request URL for the Acknowledge button (signed by Slack)",
            tag="slack",
            auth="slack",
            operation_id="slackInteractivity",
            parameters=[
                {
                    "name": "X-Slack-Request-Timestamp",
                    "in": "header",
                    "required": True,
                    "description": "unix seconds; older than five minutes is refused",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                },
                {
                    "name": "X-Slack-Signature",
                    "in": "header",
                    "required": True,
                    "description": "`v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret",
                    "schema": oa.STRING,
                },
            ],
            body={
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": oa.obj({"payload": {"type": "string", "description": "Slack's JSON payload"}})
                    }
                },
            },
            errors={
                400: "Not a form with a JSON payload, as Slack sends",
                401: "Unsigned, wrongly signed or too old",
                404: "SLACK_SIGNING_SECRET is not set: interactivity is off",
                409: "The incident is resolved already",
                410: "The button's link has expired or been used",
                503: "Could not be queued; retry",
            },
            responses={
                200: oa.json_response(
                    oa.obj(
                        {
                            "ok": {"const": True},
                            "status": {"enum": ["acknowledged", "accepted"]},
                            "incident": INCIDENT_SCHEMA,
                        },
                        required=["ok"],
                    ),
                    'Done (another interaction: `{"ok": true}` and nothing else)',
                )
            },
        )
    },
}
