"""``POST /slack/commands``: Slack's slash commands, today ``/heroku-status [app_name]``.

Slack posts the command form-encoded and signed (``X-Slack-Signature``, see
``heron_common.slack``); anything unsigned, wrongly signed or older than five minutes is ``401``.
The answer comes from the latest snapshot the detector stored (one query: nothing waits on Heroku),
well within Slack's 3 seconds: dyno states, the current release and who deployed it, add-on
states, the last check and ACTIVE/INACTIVE. It answers for the apps of the Heroku project
(``HERON_HEROKU_PROJECT``, else the first project): the signing secret belongs to one Slack app,
installed by whoever runs this Heron.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from heron_common import openapi as oa
from heron_common import slack
from heron_common.monitors import heroku as hk
from heron_common.service import CLOCK, PG, SETTINGS, error_response, json_response
from heron_ingest.heroku_api import seed_project

COMMAND = "/heroku-status"
MAX_APPS_SHOWN = 10
ANSWER_WITHIN = 2.5  # seconds: Slack gives up after 3


def _ephemeral(text: str) -> web.Response:
    return json_response({"response_type": "ephemeral", "text": text})


def _usage(apps: list[str]) -> str:
    if not apps:
        return "No Heroku app is monitored yet: add one with `POST /update-config` (app_name, slack_channel)."
    return f"Monitored apps: {', '.join(apps)}. Try `{COMMAND} {apps[0]}`."


async def _answer(request: web.Request, text: str) -> web.Response:
    settings = request.app[SETTINGS]
    pool = request.app[PG]
    project_id = await seed_project(pool, settings)
    if project_id is None:
        return _ephemeral("Heron has no project yet, so no Heroku app is monitored.")
    rows = await pool.fetch(
        "SELECT config, state, data FROM monitors WHERE project_id = $1 AND kind = $2 ORDER BY config ->> 'app_name'",
        project_id,
        hk.KIND,
    )
    apps = [r["config"].get("app_name") for r in rows]
    wanted = text.split()[0].lower() if text.split() else None
    if wanted is not None:
        rows = [r for r in rows if r["config"].get("app_name") == wanted]
        if not rows:
            shown = wanted if len(wanted) <= 40 else wanted[:40] + "…"
            return _ephemeral(f"🤔 I don't monitor a Heroku app named *{shown}*. {_usage(apps)}")
    if not rows:
        return _ephemeral(_usage(apps))
    now = request.app[CLOCK].now()
    parts = [hk.status_text(r["config"], r["state"], r["data"] or {}, now, settings.heroku_minute) for r in rows]
    if len(parts) > MAX_APPS_SHOWN:
        parts = [*parts[:MAX_APPS_SHOWN], f"… and {len(parts) - MAX_APPS_SHOWN} more: {_usage(apps)}"]
    return json_response({"response_type": "in_channel", "text": "\n\n".join(parts)})


async def commands(request: web.Request) -> web.Response:
    raw = await request.read()
    settings = request.app[SETTINGS]
    refused = slack.verify(
        settings.slack_signing_secret,
        request.headers.get("X-Slack-Request-Timestamp"),
        request.headers.get("X-Slack-Signature"),
        raw,
        request.app[CLOCK].now(),
    )
    if refused is not None:
        return error_response(401, "invalid_signature", refused)
    try:
        form: dict[str, Any] = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
    except (UnicodeDecodeError, ValueError):
        return error_response(400, "invalid_form", "the command is not a form Slack sends")
    if form.get("command") != COMMAND:
        return _ephemeral(f"I only know `{COMMAND} [app_name]`.")
    try:
        async with asyncio.timeout(ANSWER_WITHIN):
            return await _answer(request, str(form.get("text") or ""))
    except TimeoutError:
        return _ephemeral("Heron is busy right now; try again in a moment.")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/slack/commands", commands)


# -- the contract (OpenAPI fragment) -------------------------------------------------------------

PATHS = {
    "/slack/commands": {
        "post": oa.operation(
            "Slack's slash command `/heroku-status [app_name]` (signed by Slack)",
            tag="slack",
            auth="slack",
            operation_id="slackCommand",
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
                        "schema": oa.obj({"command": oa.STRING, "text": oa.STRING}, required=["command"])
                    }
                },
            },
            errors={400: "Not a form Slack sends", 401: "Unsigned, wrongly signed or too old"},
            responses={
                200: oa.json_response(
                    oa.obj({"response_type": {"enum": ["ephemeral", "in_channel"]}, "text": oa.STRING}),
                    "Slack's message answer",
                )
            },
        )
    },
}
