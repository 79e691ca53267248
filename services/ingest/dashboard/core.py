"""What every dashboard page shares: who is signed in, which project they see, CSRF, rendering.

- :func:`viewer` reads and checks the session cookie (signature, expiry, then what may have
  changed since sign-in: a project key's revocation, the admin token). No session: sign in.
- :func:`scope` is the project in the path, which a key session must own (404 otherwise, as the
  API answers) and an admin may pick.
- :func:`page` wraps a GET handler, :func:`action` a POST handler: the latter also refuses a form
  without this session's CSRF token (403 page) and a test key (which changes nothing).
- :func:`render` draws a template with the layout's context (navigation, CSRF field, notices)
  and the security headers every dashboard response carries.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from heron_common import sessions
from heron_common.service import CLOCK, PG, SETTINGS
from heron_common.sessions import Session
from heron_ingest import params
from heron_ingest.commands import ACTOR
from heron_ingest.context import AUTH
from heron_ingest.dashboard import nav
from heron_ingest.requests import posted_form
from heron_ingest.validation import InputError

COOKIE = sessions.COOKIE
SIGNIN_COOKIE = "heron_signin"  # the sign-in form's CSRF nonce (no session exists yet)
CSRF_FIELD = "csrf_token"

# Every dashboard response: no inline script or style (so injected markup cannot run), no framing,
# nothing cached (pages show one project's data).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Config:
    secret: str  # signs sessions and CSRF tokens
    badge_secret: str  # signs badge URLs
    streams: int = 0  # live (SSE) streams open in this process
    queues: set[str] = field(default_factory=set)  # their broker queues (deleted as each ends)


DASHBOARD = web.AppKey("dashboard", Config)
VIEWER = web.RequestKey("viewer", Session)


class SignIn(Exception):
    """No usable session: answered with a redirect to the sign-in page."""


class Refused(Exception):
    """A form without a valid CSRF token, or a change asked with a test key: a 403 page."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


@dataclass(frozen=True)
class Project:
    id: int
    name: str


def secure(request: web.Request) -> bool:
    """Served over HTTPS (directly, or behind a proxy that says so): cookies are then Secure."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_session(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        sessions.sign(session, request.app[DASHBOARD].secret),
        path="/",
        max_age=int(session.expires - session.issued),
        httponly=True,
        samesite="Lax",
        secure=secure(request),
    )


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


async def viewer(request: web.Request) -> Session:
    """The signed-in session, re-checked; :class:`SignIn` when there is none (or no longer)."""
    if VIEWER in request:
        return request[VIEWER]
    config = request.app[DASHBOARD]
    session = sessions.verify(request.cookies.get(COOKIE), config.secret, request.app[CLOCK].now())
    if session is None:
        raise SignIn()
    if session.admin:
        token = request.app[SETTINGS].admin_token
        if (
            not token
            or not session.admin_mark
            or not sessions.same(session.admin_mark, sessions.admin_mark(config.secret, token))
        ):
            raise SignIn()  # the admin token changed (or was removed) since sign-in
    else:
        digest = sessions.digest_bytes(session.key_hash or "")
        found = await request.app[AUTH].lookup_hash(digest) if digest else None
        if found is None or found[0] != session.project_id:
            raise SignIn()  # the key was revoked
    request[VIEWER] = session
    request[ACTOR] = session.who  # recorded with every change this request asks for
    return session


async def scope(request: web.Request, session: Session, raw_id: str | None = None) -> Project:
    """The project in the path (or ``raw_id``, a form's field, for a form posted outside
    ``/dashboard/p/{project_id}``): a key session's own, or any an admin names; 404 otherwise."""
    project_id = params.path_id(
        {"project_id": raw_id or ""} if raw_id is not None else request.match_info, "project_id"
    )
    if not session.admin and project_id != session.project_id:
        raise InputError(404, "not_found", "no such project")
    name = await request.app[PG].fetchval("SELECT name FROM projects WHERE id = $1", project_id)
    if name is None:
        raise InputError(404, "not_found", "no such project")
    return Project(project_id, name)


def home_of(session: Session) -> str:
    return "/dashboard/projects" if session.admin else f"/dashboard/p/{session.project_id}/"


# -- rendering -----------------------------------------------------------------------------------


def csrf_for(request: web.Request) -> str:
    session = request.get(VIEWER)
    return sessions.csrf_token(request.app[DASHBOARD].secret, session.sid) if session else ""


NOTICES = {
    "acknowledged": "Incident acknowledged. 🤠",
    "resolved": "Incident resolved.",
    "paused": "Monitor paused: it will not alert until resumed.",
    "resumed": "Monitor resumed.",
    "queued": "Sent to the detector: it is busy, so the change shows in a moment.",
    "redelivering": "Queued for redelivery: the notifier sends it again right away.",
    "heartbeat_created": "Heartbeat created. Copy its ping URL into your job.",
    "heartbeat_saved": "Heartbeat saved.",
    "trigger_created": "Trigger created.",
    "trigger_saved": "Trigger saved.",
    "service_created": "Service added.",
    "rotation_saved": "Rotation saved: shifts generated from now on follow the new text.",
    "nothing_open": "Nothing to do: it has no open incident.",
    "probe_created": "Probe created: the first check runs right away.",
    "probe_saved": "Probe saved: it is checked again right away with the new settings.",
    "heroku_saved": "Heroku monitoring updated: the app is checked again right away. 🤠",
    "heroku_created": "Heroku monitoring set up: the first check runs right away. 🤠",
}


def with_headers(response: web.StreamResponse) -> web.StreamResponse:
    """The security headers every dashboard response carries."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    project: Project | None = None,
    active: str | None = None,
    status: int = 200,
) -> web.Response:
    session = request.get(VIEWER)
    base = {
        "viewer": session,
        "project": project,
        "nav": nav.entries(project.id) if project else [],
        "active": active,
        "csrf_token": csrf_for(request),
        "csrf_field": CSRF_FIELD,
        "notice": NOTICES.get(request.query.get("notice", "")),
        "live_url": f"/dashboard/p/{project.id}/events" if project and active in nav.LIVE_PAGES else "",
        "here": request.path_qs,
        "now": request.app[CLOCK].now(),
        "tip": nav.tip(active),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    with_headers(response)
    return response


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)


# -- handlers --------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TITLES = {400: "That did not parse", 401: "Sign in first", 403: "Not allowed", 404: "Not found", 409: "Conflict"}


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs ``location`` (post/redirect/get)."""
    return with_headers(web.Response(status=303, headers={"Location": location}))  # type: ignore[return-value]


def _signin_redirect(request: web.Request) -> web.StreamResponse:
    target = "/dashboard/signin"
    if request.method == "GET" and request.path not in ("/dashboard", "/dashboard/"):
        target += "?" + URL.build(query={"next": request.path_qs}).query_string
    response = redirect(target)
    clear_session(response)
    return response


def page(handler: Handler) -> Handler:
    """A dashboard handler: HTML error pages instead of the API's JSON, sign-in when needed."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return with_headers(await handler(request))
        except SignIn:
            return _signin_redirect(request)
        except Refused as exc:
            return error_page(request, 403, exc.title, exc.message)
        except InputError as exc:
            return error_page(request, exc.status, _TITLES.get(exc.status, "Something is off"), exc.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form as it came (no CSRF check: :func:`form_of` is what handlers use); a
    form that cannot be read is a 400 page."""
    return await posted_form(request, "the form could not be read; reload the page and try again")


async def form_of(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form, after checking this session's CSRF token (:class:`Refused` otherwise)."""
    form = await read_form(request)
    session = await viewer(request)
    presented = form.get(CSRF_FIELD)
    if not isinstance(presented, str) or not sessions.csrf_ok(request.app[DASHBOARD].secret, session.sid, presented):
        raise Refused(
            "This form has expired",
            "Whoa there, partner: this form was not sent by a page Heron gave you (or your session changed "
            "since). Reload the page and try again.",
        )
    return form


def writable(session: Session) -> None:
    if session.test:
        raise Refused("A test key changes nothing", "You signed in with a test key: it can look, not change.")


_NEXT = re.compile(r"^/dashboard/[A-Za-z0-9/_\-.?=&%]*$")


def safe_next(value: Any, default: str) -> str:
    """Where to go back to after an action: a dashboard path of this site, never elsewhere."""
    if isinstance(value, str) and _NEXT.fullmatch(value) and "//" not in value and ".." not in value:
        return value
    return default


def back(location: str, notice: str | None = None) -> web.Response:
    """Post/redirect/get: back to ``location`` with a notice (a fixed code, shown from NOTICES)."""
    if notice:
        location = str(URL(location).update_query({"notice": notice}))
    return redirect(location)


def text(form: Any, name: str) -> str | None:
    """A text field of a posted form, trimmed; None when empty or missing."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def number(form: Any, name: str) -> Any:
    """A numeric field of a posted form as a number when it reads as one (the API's checks then
    judge its range); otherwise the text as typed, so the API's message names what is wrong."""
    value = text(form, name)
    if value is None:
        return None
    try:
        as_float = float(value)
    except ValueError:
        return value
    return int(as_float) if as_float.is_integer() and "." not in value and "e" not in value.lower() else as_float


@dataclass
class FormState:
    """A form's values as typed and the error to show beside a field (or above the form)."""

    values: dict[str, Any]
    errors: dict[str, str]
    summary: str | None = None


def form_error(values: dict[str, Any], exc: InputError, fields: tuple[str, ...]) -> FormState:
    """The API's error placed beside its field: the one InputError names, else the field the
    message starts with (the API's messages name their field first), else above the form. When
    the API checked every field at once (``exc.errors``), each error goes beside its own field."""
    if exc.errors and all(name in fields for name in exc.errors):
        named = ", ".join(name.replace("_", " ") for name in exc.errors)
        return FormState(values, dict(exc.errors), f"Please fix {named}.")
    field = exc.field if exc.field in fields else next((f for f in fields if exc.message.startswith(f)), None)
    if field is None:
        return FormState(values, {}, exc.message)
    return FormState(values, {field: exc.message}, f"Please fix {field.replace('_', ' ')}.")
