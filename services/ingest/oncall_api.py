"""On-call management (issue #11, docs/oncall.md): people, their notification channels, rotations,
their shifts and escalation ladders, and which rotation is on call for a service.

- ``POST/GET /v1/users``, ``GET/PATCH/DELETE /v1/users/{id}``; ``POST/GET /v1/users/{id}/channels``,
  ``PATCH/DELETE /v1/users/{id}/channels/{channel_id}``.
- ``POST/GET /v1/rotations``, ``GET/PATCH/DELETE /v1/rotations/{id}``: the rotation text is parsed
  by ``heron_common.oncall.rotation``; a text it refuses is a ``422`` naming the line. Creating a
  rotation generates its shifts ``HERON_SHIFT_HORIZON_DAYS`` (≥ 14) ahead; the notifier keeps them
  topped up.
- ``GET /v1/rotations/{id}/shifts`` (``from``, ``until``, ``limit``), ``POST
  /v1/rotations/{id}/shifts/full_rotation`` (one more turn of every line), ``PATCH
  /v1/rotations/{id}/shifts/{shift_id}`` (reassign to another user), ``DELETE
  /v1/rotations/{id}/shifts?from=T`` (every shift starting at or after T).
- ``POST/GET /v1/rotations/{id}/escalations``, ``PATCH/DELETE
  /v1/rotations/{id}/escalations/{escalation_id}``.
- ``PUT /v1/services/{id}/rotation`` (``{"rotation_id": n}`` or null), ``GET
  /v1/services/{id}/oncall``: who is on call now and next.

Everything is the caller's project's: another project's row is a 404 like a missing one. Shifts
are never changed here except by these explicit calls.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from heron_common import oncall_store, webhooks
from heron_common import openapi as oa
from heron_common.db import iso
from heron_common.oncall import escalation as esc
from heron_common.oncall import rotation as rot
from heron_common.oncall import shifts as sh
from heron_common.outbound import check_url
from heron_common.secretbox import SecretBox
from heron_common.service import CLOCK, SETTINGS, json_response
from heron_ingest import params
from heron_ingest.context import SECRETS
from heron_ingest.dryrun import db
from heron_ingest.requests import caller_project, handles_errors, json_object, owned_row, path_id
from heron_ingest.validation import InputError

MAX_NAME = 200
MAX_TARGET = 2000
MAX_SPEC = rot.MAX_LINES * (rot.MAX_LINE_LENGTH + 1)
MAX_CHANNELS = 20
MAX_ESCALATIONS = 20
DEFAULT_SHIFTS = 500
MAX_SHIFTS = 2000
# An incident left open with repeats pages again and again: the first pages are listed, in order.
DEFAULT_PAGES = 500
MAX_PAGES = 2000
MAX_DELAY = esc.MAX_DELAY.total_seconds()
# How far the anchor of a new rotation may be from now: generating from further back would be
# history nobody needs (and work bounded only by shifts.MAX_SHIFTS).
MAX_ANCHOR_DISTANCE = timedelta(days=366)
KINDS = ("slack", "email", "webhook")
# A Slack member id (U…, or W… on Enterprise Grid): what chat.postMessage takes as a DM channel.
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}\Z")


def _now(request: web.Request) -> datetime:
    return oncall_store.utc(request.app[CLOCK].now())


# -- checks (pure) ----------------------------------------------------------------------------


def email_field(body: dict[str, Any], name: str = "email") -> str:
    value = params.text_field(body, name, max_len=rot.MAX_EMAIL_LENGTH, required=True)
    assert value is not None
    try:
        return rot._email(value.strip(), 0)  # the rotation text's own rule, so the two always agree
    except rot.RotationError as exc:
        raise InputError(422, "invalid_field", f"{name}: {exc.reason}") from None


def zone_field(body: dict[str, Any], name: str) -> str | None:
    value = params.text_field(body, name, max_len=rot.MAX_ZONE_LENGTH)
    if value is None:
        return None
    if rot._zoneinfo(rot.zone_key(value)) is None:
        raise InputError(422, "invalid_field", f"{name} must be an IANA time zone such as Europe/Berlin (or PT, ET…)")
    return value


def delay_field(body: dict[str, Any], name: str = "delay", *, required: bool = False) -> float | None:
    if required and body.get(name) is None:
        raise InputError(422, "missing_field", f"{name} (seconds) is required")
    return params.seconds_field(body, name, minimum=0.0, maximum=MAX_DELAY)


def channel_target(kind: str, target: str, allow: tuple) -> str:
    """A channel's target checked for its kind (``allow``: HERON_OUTBOUND_ALLOW_CIDRS). Pure."""
    target = target.strip()
    if kind == "email":
        try:
            return rot._email(target, 0)
        except rot.RotationError as exc:
            raise InputError(422, "invalid_field", f"target: {exc.reason}") from None
    if kind == "slack" and SLACK_USER_ID.match(target):
        return target
    problem = check_url(target, allow)
    if problem is not None:
        what = "a Slack member id (U…) or an incoming webhook URL" if kind == "slack" else "a URL"
        raise InputError(422, "invalid_field", f"target must be {what}: the URL {problem}")
    return target


def spec_field(body: dict[str, Any]) -> tuple[str, rot.Rotation]:
    value = params.text_field(body, "spec", max_len=MAX_SPEC, required=True)
    assert value is not None
    try:
        return value, rot.parse(value)
    except rot.RotationError as exc:
        raise InputError(422, "invalid_rotation", f"spec {exc}", "spec") from None


def repeat_field(body: dict[str, Any], minimum: float) -> float | None:
    return params.seconds_field(body, "repeat_every", minimum=minimum, maximum=MAX_DELAY)


# -- views ------------------------------------------------------------------------------------


def channel_view(row: Any, box: SecretBox, *, secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "user_id": row["user_id"],
        "kind": row["kind"],
        "target": box.open(row["target"]),  # stored sealed: a Slack or webhook URL is a credential
        "delay": row["delay"],
        "created_at": iso(row["created_at"]),
    }
    if secret:
        out["secret"] = secret  # shown once, at creation (stored sealed)
    return out


def user_view(row: Any, channels: list[Any], box: SecretBox) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "time_zone": row["time_zone"],
        "channels": [channel_view(c, box) for c in channels],
        "created_at": iso(row["created_at"]),
    }


def shift_view(row: Any, users: dict[str, Any] | None = None) -> dict[str, Any]:
    user = (users or {}).get(row["email"].lower())
    return {
        "id": row["id"],
        "rotation_id": row["rotation_id"],
        "email": row["email"],
        "user_id": user["id"] if user else None,
        "name": user["name"] if user else None,
        "starts_at": iso(row["starts_at"]),
        "ends_at": iso(row["ends_at"]),
        "position": row["position"],
    }


def escalation_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "rotation_id": row["rotation_id"],
        "delay": row["delay"],
        "target": row["target"],
        "user_id": row["user_id"],
        "email": row["email"],
    }


async def _users_by_email(conn: asyncpg.Connection | asyncpg.Pool, project_id: int) -> dict[str, Any]:
    rows = await conn.fetch("SELECT id, email, name FROM users WHERE project_id = $1", project_id)
    return {r["email"].lower(): r for r in rows}


async def _escalations(conn: asyncpg.Connection | asyncpg.Pool, rotation_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT e.*, u.email FROM escalation_strategies e LEFT JOIN users u ON u.id = e.user_id"
        " WHERE e.rotation_id = $1 ORDER BY e.delay, e.id",
        rotation_id,
    )


async def rotation_view(conn: asyncpg.Connection | asyncpg.Pool, row: Any) -> dict[str, Any]:
    members = oncall_store.parsed(row["spec"]).members
    users = await _users_by_email(conn, row["project_id"])
    until = await conn.fetchval("SELECT max(ends_at) FROM shifts WHERE rotation_id = $1", row["id"])
    return {
        "id": row["id"],
        "name": row["name"],
        "spec": row["spec"],
        "anchor": iso(row["anchor"]),
        "repeat_every": row["repeat_every"],
        "members": list(members),
        # People named in the text who are no user of the project: on call, but paged nowhere.
        "unknown_members": [m for m in members if m.lower() not in users],
        "escalations": [escalation_view(e) for e in await _escalations(conn, row["id"])],
        "shifts_until": iso(until),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


# -- users and channels -----------------------------------------------------------------------


async def _channels(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM user_channels WHERE user_id = $1 ORDER BY delay, id", user_id)


@handles_errors
async def create_user(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    params.known_fields(body, {"email", "name", "time_zone"})
    email = email_field(body)
    name = (params.text_field(body, "name", max_len=MAX_NAME) or "").strip()
    zone = zone_field(body, "time_zone") or "UTC"
    try:
        row = await db(request).fetchrow(
            "INSERT INTO users (project_id, email, name, time_zone) VALUES ($1, $2, $3, $4) RETURNING *",
            project_id,
            email,
            name,
            zone,
        )
    except asyncpg.UniqueViolationError:
        raise InputError(409, "email_taken", f"a user with the email {email!r} exists already") from None
    return json_response(user_view(row, [], request.app[SECRETS]), status=201)


@handles_errors
async def list_users(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    pool = db(request)
    rows = await pool.fetch("SELECT * FROM users WHERE project_id = $1 ORDER BY id", project_id)
    channels = await pool.fetch("SELECT * FROM user_channels WHERE project_id = $1 ORDER BY delay, id", project_id)
    by_user: dict[int, list[Any]] = {}
    for c in channels:
        by_user.setdefault(c["user_id"], []).append(c)
    return json_response([user_view(r, by_user.get(r["id"], []), request.app[SECRETS]) for r in rows])


async def _own_user(request: web.Request, project_id: int) -> asyncpg.Record:
    return await owned_row(db(request), "users", path_id(request, "user_id"), project_id, "user")


@handles_errors
async def show_user(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await _own_user(request, project_id)
    return json_response(user_view(row, await _channels(db(request), row["id"]), request.app[SECRETS]))


@handles_errors
async def update_user(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    row = await _own_user(request, project_id)
    params.known_fields(body, {"name", "time_zone", "email"})
    if "email" in body and email_field(body).lower() != row["email"].lower():
        # Shifts name people by email: changing it would silently take them off their shifts.
        raise InputError(422, "invalid_field", "email cannot be changed (shifts name people by it); create a new user")
    name = params.text_field(body, "name", max_len=MAX_NAME)
    zone = zone_field(body, "time_zone")
    pool = db(request)
    row = await pool.fetchrow(
        "UPDATE users SET name = coalesce($2, name), time_zone = coalesce($3, time_zone), email = coalesce($4, email),"
        " updated_at = now() WHERE id = $1 RETURNING *",
        row["id"],
        name.strip() if name is not None else None,
        zone,
        email_field(body) if "email" in body else None,  # only its case can change
    )
    return json_response(user_view(row, await _channels(pool, row["id"]), request.app[SECRETS]))


@handles_errors
async def delete_user(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await _own_user(request, project_id)
    try:
        await db(request).execute("DELETE FROM users WHERE id = $1", row["id"])
    except asyncpg.ForeignKeyViolationError:
        raise InputError(
            409, "user_in_use", "an escalation strategy pages this user; change or delete it first"
        ) from None
    return web.Response(status=204)


@handles_errors
async def create_channel(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    user = await _own_user(request, project_id)
    params.known_fields(body, {"kind", "target", "delay"})
    kind = body.get("kind")
    if kind is None:
        raise InputError(422, "missing_field", "kind is required: slack, email or webhook")
    if kind not in KINDS:
        raise InputError(422, "invalid_field", "kind must be slack, email or webhook")
    raw = params.text_field(body, "target", max_len=MAX_TARGET, required=True)
    assert raw is not None
    target = channel_target(kind, raw, request.app[SETTINGS].outbound_allow_cidrs)
    delay = delay_field(body) or 0.0
    pool = db(request)
    secret = webhooks.new_secret() if kind == "webhook" else None
    async with pool.acquire() as conn, conn.transaction():
        # Locked: two creations racing cannot both pass the count.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user["id"])
        if await conn.fetchval("SELECT count(*) FROM user_channels WHERE user_id = $1", user["id"]) >= MAX_CHANNELS:
            raise InputError(409, "too_many_channels", f"a user has at most {MAX_CHANNELS} channels")
        row = await conn.fetchrow(
            "INSERT INTO user_channels (user_id, project_id, kind, target, delay, secret)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            user["id"],
            project_id,
            kind,
            request.app[SECRETS].seal(target),
            delay,
            request.app[SECRETS].seal(secret),
        )
    return json_response(channel_view(row, request.app[SECRETS], secret=secret), status=201)


@handles_errors
async def list_channels(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    user = await _own_user(request, project_id)
    return json_response([channel_view(c, request.app[SECRETS]) for c in await _channels(db(request), user["id"])])


async def _own_channel(request: web.Request, project_id: int) -> asyncpg.Record:
    user = await _own_user(request, project_id)
    row = await db(request).fetchrow(
        "SELECT * FROM user_channels WHERE id = $1 AND user_id = $2", path_id(request, "channel_id"), user["id"]
    )
    if row is None:
        raise InputError(404, "not_found", "no such channel")
    return row


@handles_errors
async def update_channel(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    row = await _own_channel(request, project_id)
    params.known_fields(body, {"target", "delay"})
    target = None
    if "target" in body:
        raw = params.text_field(body, "target", max_len=MAX_TARGET, required=True)
        assert raw is not None
        target = channel_target(row["kind"], raw, request.app[SETTINGS].outbound_allow_cidrs)
    delay = delay_field(body)
    row = await db(request).fetchrow(
        "UPDATE user_channels SET target = coalesce($2, target), delay = coalesce($3, delay) WHERE id = $1 RETURNING *",
        row["id"],
        request.app[SECRETS].seal(target),
        delay,
    )
    return json_response(channel_view(row, request.app[SECRETS]))


@handles_errors
async def delete_channel(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await _own_channel(request, project_id)
    await db(request).execute("DELETE FROM user_channels WHERE id = $1", row["id"])
    return web.Response(status=204)


# -- rotations --------------------------------------------------------------------------------


def _anchor(body: dict[str, Any], now: datetime) -> datetime:
    if body.get("anchor") is None:
        return now
    anchor = params.time_value(body["anchor"], "anchor")
    if abs(anchor - now) > MAX_ANCHOR_DISTANCE:
        raise InputError(422, "invalid_field", "anchor must be within a year of now")
    return anchor


@handles_errors
async def create_rotation(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    settings = request.app[SETTINGS]
    params.known_fields(body, {"name", "spec", "anchor", "repeat_every"})
    name = (params.text_field(body, "name", max_len=MAX_NAME, required=True) or "").strip()
    spec, rotation = spec_field(body)
    repeat = repeat_field(body, settings.oncall_min_repeat)
    now = _now(request)
    anchor = _anchor(body, now)
    pool = db(request)
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO rotations (project_id, name, spec, anchor, repeat_every) VALUES ($1, $2, $3, $4, $5)"
                " RETURNING *",
                project_id,
                name,
                spec,
                anchor,
                repeat,
            )
        except asyncpg.UniqueViolationError:
            raise InputError(409, "name_taken", f"a rotation named {name!r} exists already") from None
        shifts = sh.generate(rotation, anchor, oncall_store.horizon(now, settings.shift_horizon_days))
        await oncall_store.insert_shifts(conn, row["id"], project_id, shifts)
        view = await rotation_view(conn, row)
    return json_response(view, status=201)


@handles_errors
async def list_rotations(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    pool = db(request)
    rows = await pool.fetch("SELECT * FROM rotations WHERE project_id = $1 ORDER BY id", project_id)
    return json_response([await rotation_view(pool, r) for r in rows])


async def _own_rotation(request: web.Request, project_id: int) -> asyncpg.Record:
    return await owned_row(db(request), "rotations", path_id(request, "rotation_id"), project_id, "rotation")


@handles_errors
async def show_rotation(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    return json_response(await rotation_view(db(request), await _own_rotation(request, project_id)))


@handles_errors
async def update_rotation(request: web.Request) -> web.Response:
    """Name, text and repeat interval. A new text applies to the shifts generated from now on:
    the existing ones stay as they are (delete them from a time on to regenerate)."""
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    row = await _own_rotation(request, project_id)
    row = await change_rotation(request, row, body)
    return json_response(await rotation_view(db(request), row))


async def change_rotation(request: web.Request, row: asyncpg.Record, body: dict[str, Any]) -> asyncpg.Record:
    """The checks and the update behind PATCH /v1/rotations/{id} (the dashboard's form too)."""
    params.known_fields(body, {"name", "spec", "repeat_every"})
    if not body.keys() - {"api_key"}:
        raise InputError(422, "invalid_body", "nothing to change: send name, spec or repeat_every")
    name = row["name"]
    if "name" in body:
        name = (params.text_field(body, "name", max_len=MAX_NAME, required=True) or "").strip()
    spec = spec_field(body)[0] if "spec" in body else row["spec"]
    repeat = row["repeat_every"]
    if "repeat_every" in body:
        repeat = repeat_field(body, request.app[SETTINGS].oncall_min_repeat)
    try:
        changed: asyncpg.Record = await db(request).fetchrow(
            "UPDATE rotations SET name = $2, spec = $3, repeat_every = $4, updated_at = now()"
            " WHERE id = $1 RETURNING *",
            row["id"],
            name,
            spec,
            repeat,
        )
    except asyncpg.UniqueViolationError:
        raise InputError(409, "name_taken", f"a rotation named {name!r} exists already", "name") from None
    return changed


@handles_errors
async def delete_rotation(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await _own_rotation(request, project_id)
    # Its shifts and strategies go with it; services it was on call for have none any more.
    await db(request).execute("DELETE FROM rotations WHERE id = $1", row["id"])
    return web.Response(status=204)


# -- shifts -----------------------------------------------------------------------------------


@handles_errors
async def list_shifts(request: web.Request) -> web.Response:
    """Shifts that end after ``from`` (default now: the current one and those to come) and start
    before ``until`` (default: no bound), in order."""
    project_id = await caller_project(request)
    row = await _own_rotation(request, project_id)
    q = request.query
    start = params.time_value(q["from"], "from") if "from" in q else _now(request)
    until = params.time_value(q["until"], "until") if "until" in q else None
    limit = params.query_int(q, "limit", default=DEFAULT_SHIFTS, minimum=1, maximum=MAX_SHIFTS)
    pool = db(request)
    rows = await pool.fetch(
        "SELECT * FROM shifts WHERE rotation_id = $1 AND ends_at > $2 AND ($3::timestamptz IS NULL OR starts_at < $3)"
        " ORDER BY starts_at, id LIMIT $4",
        row["id"],
        start,
        until,
        limit,
    )
    users = await _users_by_email(pool, project_id)
    return json_response([shift_view(r, users) for r in rows])


@handles_errors
async def add_full_rotation(request: web.Request) -> web.Response:
    """One more turn of every line of the rotation, after the last shift ("Add Full Rotation")."""
    project_id = await caller_project(request)
    row = await _own_rotation(request, project_id)
    pool = db(request)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT * FROM rotations WHERE id = $1 FOR UPDATE", row["id"])
        if row is None:
            raise InputError(404, "not_found", "no such rotation")
        existing = await oncall_store.latest_shifts(conn, row["id"])
        try:
            new = sh.add_full_rotation(existing, oncall_store.parsed(row["spec"]), now=_now(request))
        except ValueError as exc:  # the schedule already reaches the year 9990
            raise InputError(409, "schedule_full", str(exc)) from None
        rows = await oncall_store.insert_shifts(conn, row["id"], project_id, new)
        users = await _users_by_email(conn, project_id)
    return json_response([shift_view(r, users) for r in rows], status=201)


@handles_errors
async def reassign_shift(request: web.Request) -> web.Response:
    """Give a shift to another user (``email`` or ``user_id``): a trade."""
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    rotation = await _own_rotation(request, project_id)
    params.known_fields(body, {"email", "user_id"})
    pool = db(request)
    user = await _named_user(pool, body, project_id)
    if user is None:
        raise InputError(422, "missing_field", "send the user to reassign the shift to: email or user_id")
    row = await pool.fetchrow(
        "UPDATE shifts SET email = $3 WHERE id = $1 AND rotation_id = $2 RETURNING *",
        path_id(request, "shift_id"),
        rotation["id"],
        user["email"],
    )
    if row is None:
        raise InputError(404, "not_found", "no such shift")
    return json_response(shift_view(row, {user["email"].lower(): user}))


@handles_errors
async def delete_shifts(request: web.Request) -> web.Response:
    """Delete every shift that starts at or after ``from`` (a shift in progress then stays). The
    schedule is topped up again after the last remaining shift, or re-add with ``full_rotation``."""
    project_id = await caller_project(request)
    row = await _own_rotation(request, project_id)
    if "from" not in request.query:
        raise InputError(422, "missing_parameter", "from is required: the time from which shifts are deleted")
    start = params.time_value(request.query["from"], "from")
    pool = db(request)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM rotations WHERE id = $1 FOR UPDATE", row["id"])  # not while topping up
        status = await conn.execute("DELETE FROM shifts WHERE rotation_id = $1 AND starts_at >= $2", row["id"], start)
    return json_response({"deleted": int(status.split()[-1])})


# -- escalation strategies --------------------------------------------------------------------


async def _named_user(pool: asyncpg.Pool, body: dict[str, Any], project_id: int) -> asyncpg.Record | None:
    """The user a body names by ``user_id`` or ``email`` (422 if it names none of the project's)."""
    user_id = params.id_field(body, "user_id", "a user id")
    if user_id is not None:
        user = await pool.fetchrow("SELECT * FROM users WHERE id = $1 AND project_id = $2", user_id, project_id)
        if user is None:
            raise InputError(422, "invalid_field", "user_id names no user of this project")
        return user
    if body.get("email") is not None:
        email = email_field(body)
        user = await pool.fetchrow(
            "SELECT * FROM users WHERE project_id = $1 AND lower(email) = lower($2)", project_id, email
        )
        if user is None:
            raise InputError(422, "invalid_field", f"email: no user of this project has the email {email!r}")
        return user
    return None


def _target(body: dict[str, Any], *, required: bool) -> str | None:
    target = body.get("target")
    if target is None:
        if required:
            raise InputError(422, "missing_field", "target is required: previous, rotation or user")
        return None
    if target not in esc.TARGETS:
        raise InputError(422, "invalid_field", "target must be previous, rotation or user")
    return str(target)


async def _escalation_row(pool: asyncpg.Pool, escalation_id: int) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT e.*, u.email FROM escalation_strategies e LEFT JOIN users u ON u.id = e.user_id WHERE e.id = $1",
        escalation_id,
    )


@handles_errors
async def create_escalation(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    rotation = await _own_rotation(request, project_id)
    params.known_fields(body, {"delay", "target", "user_id", "email"})
    delay = delay_field(body, required=True)
    target = _target(body, required=True)
    pool = db(request)
    user = await _named_user(pool, body, project_id)
    if (target == esc.USER) != (user is not None):
        raise InputError(
            422, "invalid_field", "a 'user' strategy names its user (user_id or email), and only a 'user' strategy does"
        )
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM rotations WHERE id = $1 FOR UPDATE", rotation["id"])
        count = await conn.fetchval("SELECT count(*) FROM escalation_strategies WHERE rotation_id = $1", rotation["id"])
        if count >= MAX_ESCALATIONS:
            raise InputError(409, "too_many_escalations", f"a rotation has at most {MAX_ESCALATIONS} strategies")
        row = await conn.fetchrow(
            "INSERT INTO escalation_strategies (rotation_id, project_id, delay, target, user_id)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            rotation["id"],
            project_id,
            delay,
            target,
            user["id"] if user is not None else None,
        )
    return json_response(escalation_view(await _escalation_row(pool, row["id"])), status=201)


@handles_errors
async def list_escalations(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    rotation = await _own_rotation(request, project_id)
    return json_response([escalation_view(r) for r in await _escalations(db(request), rotation["id"])])


async def _own_escalation(request: web.Request, project_id: int) -> asyncpg.Record:
    rotation = await _own_rotation(request, project_id)
    row = await _escalation_row(db(request), path_id(request, "escalation_id"))
    if row is None or row["rotation_id"] != rotation["id"]:
        raise InputError(404, "not_found", "no such escalation strategy")
    return row


@handles_errors
async def update_escalation(request: web.Request) -> web.Response:
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    row = await _own_escalation(request, project_id)
    params.known_fields(body, {"delay", "target", "user_id", "email"})
    delay = delay_field(body)
    target = _target(body, required=False) or row["target"]
    pool = db(request)
    user = await _named_user(pool, body, project_id)
    user_id = user["id"] if user is not None else (row["user_id"] if target == esc.USER else None)
    if (target == esc.USER) != (user_id is not None):
        raise InputError(
            422, "invalid_field", "a 'user' strategy names its user (user_id or email), and only a 'user' strategy does"
        )
    await pool.execute(
        "UPDATE escalation_strategies SET delay = coalesce($2, delay), target = $3, user_id = $4 WHERE id = $1",
        row["id"],
        delay,
        target,
        user_id,
    )
    return json_response(escalation_view(await _escalation_row(pool, row["id"])))


@handles_errors
async def delete_escalation(request: web.Request) -> web.Response:
    project_id = await caller_project(request)
    row = await _own_escalation(request, project_id)
    await db(request).execute("DELETE FROM escalation_strategies WHERE id = $1", row["id"])
    return web.Response(status=204)


# -- services ---------------------------------------------------------------------------------


@handles_errors
async def map_service(request: web.Request) -> web.Response:
    """``{"rotation_id": n}`` puts a rotation on call for the service; ``null`` takes it off."""
    body = await json_object(request)
    assert body is not None
    project_id = await caller_project(request, body)
    params.known_fields(body, {"rotation_id"})
    if "rotation_id" not in body:
        raise InputError(422, "missing_field", "rotation_id is required (null takes the rotation off)")
    pool = db(request)
    service = await owned_row(pool, "services", path_id(request, "service_id"), project_id, "service")
    rotation_id = params.id_field(body, "rotation_id", "a rotation id (or null)")
    if rotation_id is not None and not await pool.fetchval(
        "SELECT 1 FROM rotations WHERE id = $1 AND project_id = $2", rotation_id, project_id
    ):
        raise InputError(422, "invalid_field", "rotation_id names no rotation of this project")
    row = await pool.fetchrow(
        "UPDATE services SET rotation_id = $2 WHERE id = $1 RETURNING *", service["id"], rotation_id
    )
    return json_response({"id": row["id"], "name": row["name"], "rotation_id": row["rotation_id"]})


@handles_errors
async def service_oncall(request: web.Request) -> web.Response:
    """Who is on call for the service now (null in a gap) and who is next."""
    project_id = await caller_project(request)
    pool = db(request)
    service = await owned_row(pool, "services", path_id(request, "service_id"), project_id, "service")
    return json_response(await oncall_of(pool, service, _now(request)))


def page_view(row: Any, users: dict[str, Any]) -> dict[str, Any]:
    user = users.get(row["email"].lower())
    return {
        "id": row["id"],
        "incident_id": row["incident_id"],
        "email": row["email"],
        "user_id": user["id"] if user is not None else None,
        "channel_kind": row["channel_kind"],
        "reason": row["reason"],
        "round": row["round"],
        "strategy": row["strategy"],
        "status": row["status"],
        "attempts": row["attempts"],
        "due_at": iso(row["due_at"]),
        "sent_at": iso(row["sent_at"]),
        "last_error": row["last_error"],
    }


@handles_errors
async def incident_pages(request: web.Request) -> web.Response:
    """Who was paged for an incident, how and when: every page step planned, in due order, with
    its state (pending, sent, failed, or cancelled by the acknowledgement)."""
    project_id = await caller_project(request)
    pool = db(request)
    incident = await owned_row(pool, "incidents", path_id(request, "incident_id"), project_id, "incident")
    rows = await pool.fetch(
        "SELECT * FROM pages WHERE incident_id = $1 AND project_id = $2 ORDER BY due_at, id LIMIT $3",
        incident["id"],
        project_id,
        params.query_int(request.query, "limit", default=DEFAULT_PAGES, minimum=1, maximum=MAX_PAGES),
    )
    users = await _users_by_email(pool, project_id)
    return json_response([page_view(r, users) for r in rows])


async def oncall_of(pool: asyncpg.Pool, service: Any, now: datetime) -> dict[str, Any]:
    """``{service_id, rotation, now, next}`` for a service row of the caller's project."""
    answer: dict[str, Any] = {"service_id": service["id"], "rotation": None, "now": None, "next": None}
    if service["rotation_id"] is None:
        return answer
    rotation = await pool.fetchrow("SELECT id, name FROM rotations WHERE id = $1", service["rotation_id"])
    # The current shift and the next: every shift still running, and the first ones to come.
    rows = await pool.fetch(
        "(SELECT * FROM shifts WHERE rotation_id = $1 AND starts_at <= $2 AND ends_at > $2)"
        " UNION ALL (SELECT * FROM shifts WHERE rotation_id = $1 AND starts_at > $2 ORDER BY starts_at, id LIMIT 1)",
        service["rotation_id"],
        now,
    )
    by_id = {r["id"]: r for r in rows}
    found = sh.who_is_on_call([oncall_store.shift_of(r) for r in rows], now)

    def row_of(shift: sh.Shift | None) -> Any:
        if shift is None:
            return None
        return next(r for r in by_id.values() if oncall_store.shift_of(r) == shift)

    users = await _users_by_email(pool, service["project_id"])
    current, upcoming = row_of(found.current), row_of(found.next)
    answer["rotation"] = {"id": rotation["id"], "name": rotation["name"]}
    answer["now"] = shift_view(current, users) if current is not None else None
    answer["next"] = shift_view(upcoming, users) if upcoming is not None else None
    return answer


async def upcoming_shifts(pool: asyncpg.Pool, project_id: int, rotation_id: int, now: datetime, limit: int) -> list:
    """The current shift and those to come, as the API shows them."""
    rows = await pool.fetch(
        "SELECT * FROM shifts WHERE rotation_id = $1 AND ends_at > $2 ORDER BY starts_at, id LIMIT $3",
        rotation_id,
        now,
        limit,
    )
    users = await _users_by_email(pool, project_id)
    return [shift_view(r, users) for r in rows]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/users", create_user)
    r.add_get("/v1/users", list_users)
    r.add_get("/v1/users/{user_id}", show_user)
    r.add_patch("/v1/users/{user_id}", update_user)
    r.add_delete("/v1/users/{user_id}", delete_user)
    r.add_post("/v1/users/{user_id}/channels", create_channel)
    r.add_get("/v1/users/{user_id}/channels", list_channels)
    r.add_patch("/v1/users/{user_id}/channels/{channel_id}", update_channel)
    r.add_delete("/v1/users/{user_id}/channels/{channel_id}", delete_channel)
    r.add_post("/v1/rotations", create_rotation)
    r.add_get("/v1/rotations", list_rotations)
    r.add_get("/v1/rotations/{rotation_id}", show_rotation)
    r.add_patch("/v1/rotations/{rotation_id}", update_rotation)
    r.add_delete("/v1/rotations/{rotation_id}", delete_rotation)
    r.add_get("/v1/rotations/{rotation_id}/shifts", list_shifts)
    r.add_delete("/v1/rotations/{rotation_id}/shifts", delete_shifts)
    r.add_post("/v1/rotations/{rotation_id}/shifts/full_rotation", add_full_rotation)
    r.add_patch("/v1/rotations/{rotation_id}/shifts/{shift_id}", reassign_shift)
    r.add_post("/v1/rotations/{rotation_id}/escalations", create_escalation)
    r.add_get("/v1/rotations/{rotation_id}/escalations", list_escalations)
    r.add_patch("/v1/rotations/{rotation_id}/escalations/{escalation_id}", update_escalation)
    r.add_delete("/v1/rotations/{rotation_id}/escalations/{escalation_id}", delete_escalation)
    r.add_put("/v1/services/{service_id}/rotation", map_service)
    r.add_get("/v1/services/{service_id}/oncall", service_oncall)
    r.add_get("/v1/incidents/{incident_id}/pages", incident_pages)


# -- the OpenAPI description (heron_common.openapi) ----------------------------------------------

_TAG = "oncall"
_SECONDS = {"type": "number", "minimum": 0, "maximum": MAX_DELAY, "description": "seconds"}
_WHEN = {"type": ["string", "number"], "description": "an ISO-8601 time or unix seconds"}
_USER_ID = oa.path_param("user_id")
_CHANNEL_ID = oa.path_param("channel_id")
_ROTATION_ID = oa.path_param("rotation_id")
_SHIFT_ID = oa.path_param("shift_id")
_ESCALATION_ID = oa.path_param("escalation_id")
_SERVICE_ID = oa.path_param("service_id")
_INCIDENT_ID = oa.path_param("incident_id")
_CHANNEL = oa.obj(
    {
        "id": oa.ID,
        "user_id": oa.ID,
        "kind": {"enum": list(KINDS)},
        "target": oa.STRING,
        "delay": oa.NUMBER,
        "created_at": oa.TIME,
        "secret": {"type": "string", "description": "a webhook channel's signing secret, shown once at creation"},
    },
    required=["id", "user_id", "kind", "target", "delay", "created_at"],
)
_USER = oa.obj(
    {
        "id": oa.ID,
        "email": oa.STRING,
        "name": oa.STRING,
        "time_zone": oa.STRING,
        "channels": oa.array(_CHANNEL),
        "created_at": oa.TIME,
    }
)
_USER_FIELDS = {
    "email": {"type": "string", "maxLength": rot.MAX_EMAIL_LENGTH},
    "name": {"type": "string", "maxLength": MAX_NAME},
    "time_zone": {"type": "string", "maxLength": rot.MAX_ZONE_LENGTH, "description": "IANA (Europe/Berlin) or PT, ET…"},
}
_CHANNEL_FIELDS = {
    "kind": {"enum": list(KINDS)},
    "target": {
        "type": "string",
        "maxLength": MAX_TARGET,
        "description": "an email address, a Slack member id (U…) or incoming webhook URL, or a webhook URL",
    },
    "delay": oa.nullable(_SECONDS),
}
_SHIFT = oa.obj(
    {
        "id": oa.ID,
        "rotation_id": oa.ID,
        "email": oa.STRING,
        "user_id": oa.nullable(oa.ID),
        "name": oa.OPTIONAL_STRING,
        "starts_at": oa.TIME,
        "ends_at": oa.TIME,
        "position": oa.INTEGER,
    }
)
_ESCALATION = oa.obj(
    {
        "id": oa.ID,
        "rotation_id": oa.ID,
        "delay": oa.NUMBER,
        "target": {"enum": list(esc.TARGETS)},
        "user_id": oa.nullable(oa.ID),
        "email": oa.OPTIONAL_STRING,
    }
)
_ESCALATION_FIELDS = {
    "delay": oa.nullable(_SECONDS),
    "target": {"enum": list(esc.TARGETS)},
    "user_id": oa.nullable(oa.ID),
    "email": oa.nullable({"type": "string", "maxLength": rot.MAX_EMAIL_LENGTH}),
}
_ROTATION = oa.obj(
    {
        "id": oa.ID,
        "name": oa.STRING,
        "spec": oa.STRING,
        "anchor": oa.TIME,
        "repeat_every": oa.OPTIONAL_NUMBER,
        "members": oa.array(oa.STRING),
        "unknown_members": oa.array(oa.STRING, description="named in the text, but no user of the project"),
        "escalations": oa.array(_ESCALATION),
        "shifts_until": oa.OPTIONAL_TIME,
        "created_at": oa.TIME,
        "updated_at": oa.TIME,
    }
)
_ROTATION_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
    "spec": {"type": "string", "maxLength": MAX_SPEC, "description": "the rotation text (docs/oncall.md)"},
    "anchor": oa.nullable({**_WHEN, "description": "when the rotation starts (default now; within a year)"}),
    "repeat_every": oa.nullable({"type": "number", "description": "seconds"}),
}
_ONCALL = oa.obj(
    {
        "service_id": oa.ID,
        "rotation": oa.nullable(oa.obj({"id": oa.ID, "name": oa.STRING})),
        "now": oa.nullable(_SHIFT),
        "next": oa.nullable(_SHIFT),
    }
)
_PAGE = oa.obj(
    {
        "id": oa.ID,
        "incident_id": oa.ID,
        "email": oa.STRING,
        "user_id": oa.nullable(oa.ID),
        "channel_kind": {"enum": list(KINDS)},
        "reason": {"enum": ["primary", "repeat", "escalation"]},
        "round": oa.nullable(oa.INTEGER),
        "strategy": oa.OPTIONAL_STRING,
        "status": {"enum": ["pending", "sent", "failed", "cancelled"]},
        "attempts": oa.INTEGER,
        "due_at": oa.TIME,
        "sent_at": oa.OPTIONAL_TIME,
        "last_error": oa.OPTIONAL_STRING,
    },
    required=["id", "incident_id", "email", "channel_kind", "reason", "status", "attempts", "due_at"],
)
_NAMED_USER = "user_id or email names no user of this project"


def _op(summary: str, operation_id: str, **kw: Any) -> dict[str, Any]:
    return oa.operation(summary, tag=_TAG, operation_id=operation_id, **kw)


PATHS: dict[str, dict[str, Any]] = {
    "/v1/users": {
        "post": _op(
            "Add a person who can be on call",
            "createUser",
            body=oa.json_body(oa.obj(_USER_FIELDS, required=["email"])),
            errors={409: "A user with that email exists already"},
            responses={201: oa.json_response(_USER, "Created")},
        ),
        "get": _op(
            "The project's users, with their channels",
            "listUsers",
            responses={200: oa.json_response(oa.array(_USER), "Every user, oldest first")},
        ),
    },
    "/v1/users/{user_id}": {
        "get": _op("One user", "getUser", parameters=[_USER_ID], responses={200: oa.json_response(_USER, "The user")}),
        "patch": _op(
            "Change a user's name or time zone (the email only in its case)",
            "updateUser",
            parameters=[_USER_ID],
            body=oa.json_body(oa.obj(_USER_FIELDS, required=[])),
            responses={200: oa.json_response(_USER, "Changed")},
        ),
        "delete": _op(
            "Delete a user",
            "deleteUser",
            parameters=[_USER_ID],
            errors={409: "An escalation strategy pages this user"},
            responses={204: oa.NO_CONTENT},
        ),
    },
    "/v1/users/{user_id}/channels": {
        "post": _op(
            "Add a way to page a user (slack, email, webhook), after a delay",
            "createChannel",
            parameters=[_USER_ID],
            body=oa.json_body(oa.obj(_CHANNEL_FIELDS, required=["kind", "target"])),
            errors={409: f"The user has {MAX_CHANNELS} channels already"},
            responses={201: oa.json_response(_CHANNEL, "Created (a webhook's secret is shown this once)")},
        ),
        "get": _op(
            "A user's channels",
            "listChannels",
            parameters=[_USER_ID],
            responses={200: oa.json_response(oa.array(_CHANNEL), "By delay")},
        ),
    },
    "/v1/users/{user_id}/channels/{channel_id}": {
        "patch": _op(
            "Change a channel's target or delay",
            "updateChannel",
            parameters=[_USER_ID, _CHANNEL_ID],
            body=oa.json_body(oa.obj({k: _CHANNEL_FIELDS[k] for k in ("target", "delay")}, required=[])),
            responses={200: oa.json_response(_CHANNEL, "Changed")},
        ),
        "delete": _op(
            "Delete a channel",
            "deleteChannel",
            parameters=[_USER_ID, _CHANNEL_ID],
            responses={204: oa.NO_CONTENT},
        ),
    },
    "/v1/rotations": {
        "post": _op(
            "Add a rotation from its text; its shifts are generated ahead",
            "createRotation",
            body=oa.json_body(oa.obj(_ROTATION_FIELDS, required=["name", "spec"])),
            errors={409: "A rotation of that name exists already", 422: "A field is wrong; a bad text names its line"},
            responses={201: oa.json_response(_ROTATION, "Created")},
        ),
        "get": _op(
            "The project's rotations",
            "listRotations",
            responses={200: oa.json_response(oa.array(_ROTATION), "Every rotation, oldest first")},
        ),
    },
    "/v1/rotations/{rotation_id}": {
        "get": _op(
            "One rotation",
            "getRotation",
            parameters=[_ROTATION_ID],
            responses={200: oa.json_response(_ROTATION, "The rotation")},
        ),
        "patch": _op(
            "Change a rotation's name, text or repeat interval (applies to shifts generated from now on)",
            "updateRotation",
            parameters=[_ROTATION_ID],
            body=oa.json_body(oa.obj({k: v for k, v in _ROTATION_FIELDS.items() if k != "anchor"}, required=[])),
            errors={409: "A rotation of that name exists already"},
            responses={200: oa.json_response(_ROTATION, "Changed")},
        ),
        "delete": _op(
            "Delete a rotation, its shifts and escalations",
            "deleteRotation",
            parameters=[_ROTATION_ID],
            responses={204: oa.NO_CONTENT},
        ),
    },
    "/v1/rotations/{rotation_id}/shifts": {
        "get": _op(
            "A rotation's shifts: those ending after `from` and starting before `until`",
            "listShifts",
            parameters=[
                _ROTATION_ID,
                oa.query_param("from", oa.STRING, "an ISO-8601 time (default now)"),
                oa.query_param("until", oa.STRING, "an ISO-8601 time (default: no bound)"),
                oa.query_param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_SHIFTS, "default": DEFAULT_SHIFTS},
                    "how many at most",
                ),
            ],
            responses={200: oa.json_response(oa.array(_SHIFT), "In order of their start")},
        ),
        "delete": _op(
            "Delete every shift starting at or after `from`",
            "deleteShifts",
            parameters=[_ROTATION_ID, oa.query_param("from", oa.STRING, "an ISO-8601 time", required=True)],
            responses={200: oa.json_response(oa.obj({"deleted": oa.INTEGER}), "How many were deleted")},
        ),
    },
    "/v1/rotations/{rotation_id}/shifts/full_rotation": {
        "post": _op(
            "Add one more turn of every line of the rotation, after the last shift",
            "addFullRotation",
            parameters=[_ROTATION_ID],
            errors={409: "The schedule already reaches its end (the year 9990)"},
            responses={201: oa.json_response(oa.array(_SHIFT), "The shifts added")},
        ),
    },
    "/v1/rotations/{rotation_id}/shifts/{shift_id}": {
        "patch": _op(
            "Give a shift to another user (a trade)",
            "reassignShift",
            parameters=[_ROTATION_ID, _SHIFT_ID],
            body=oa.json_body(
                oa.obj({"user_id": _ESCALATION_FIELDS["user_id"], "email": _ESCALATION_FIELDS["email"]}, required=[])
            ),
            errors={422: f"Neither user_id nor email, or {_NAMED_USER}"},
            responses={200: oa.json_response(_SHIFT, "Reassigned")},
        ),
    },
    "/v1/rotations/{rotation_id}/escalations": {
        "post": _op(
            "Add an escalation strategy: after a delay, page the previous person, the rotation or a user",
            "createEscalation",
            parameters=[_ROTATION_ID],
            body=oa.json_body(oa.obj(_ESCALATION_FIELDS, required=["delay", "target"])),
            errors={409: f"The rotation has {MAX_ESCALATIONS} strategies already", 422: None},
            responses={201: oa.json_response(_ESCALATION, "Created")},
        ),
        "get": _op(
            "A rotation's escalation strategies",
            "listEscalations",
            parameters=[_ROTATION_ID],
            responses={200: oa.json_response(oa.array(_ESCALATION), "By delay")},
        ),
    },
    "/v1/rotations/{rotation_id}/escalations/{escalation_id}": {
        "patch": _op(
            "Change an escalation strategy",
            "updateEscalation",
            parameters=[_ROTATION_ID, _ESCALATION_ID],
            body=oa.json_body(oa.obj(_ESCALATION_FIELDS, required=[])),
            responses={200: oa.json_response(_ESCALATION, "Changed")},
        ),
        "delete": _op(
            "Delete an escalation strategy",
            "deleteEscalation",
            parameters=[_ROTATION_ID, _ESCALATION_ID],
            responses={204: oa.NO_CONTENT},
        ),
    },
    "/v1/services/{service_id}/rotation": {
        "put": _op(
            "Put a rotation on call for a service (null takes it off)",
            "mapServiceRotation",
            parameters=[_SERVICE_ID],
            body=oa.json_body(oa.obj({"rotation_id": oa.nullable(oa.ID)})),
            errors={422: "rotation_id is missing or names no rotation of this project"},
            responses={
                200: oa.json_response(
                    oa.obj({"id": oa.ID, "name": oa.STRING, "rotation_id": oa.nullable(oa.ID)}), "Mapped"
                )
            },
        ),
    },
    "/v1/services/{service_id}/oncall": {
        "get": _op(
            "Who is on call for a service now (null in a gap) and next",
            "serviceOncall",
            parameters=[_SERVICE_ID],
            responses={200: oa.json_response(_ONCALL, "Now and next")},
        ),
    },
    "/v1/incidents/{incident_id}/pages": {
        "get": _op(
            "Who was paged for an incident, how and when (every planned step, in due order)",
            "listIncidentPages",
            parameters=[
                _INCIDENT_ID,
                oa.query_param(
                    "limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGES}, f"default {DEFAULT_PAGES}"
                ),
            ],
            responses={
                200: oa.json_response(
                    oa.array(_PAGE),
                    "Pages: sent, failed (last_error says why), pending, or cancelled by the acknowledgement",
                )
            },
        ),
    },
}
