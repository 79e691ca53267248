"""Signing in and out, and the admin's project picker.

Sign in with the admin token or a project API key; the answer is a session cookie (HttpOnly,
SameSite=Lax, Secure over HTTPS). The sign-in form carries its own CSRF token, bound to a nonce
cookie, since no session exists yet. A link ``/dashboard/signin#token=…`` (what ``make run``
prints) fills the form in the browser and submits it: the token is in the fragment, which
browsers never send to a server, so it is in no request line or log.
"""

from __future__ import annotations

from aiohttp import web

from heron_common import sessions
from heron_common.keys import hash_key, key_hint
from heron_common.service import CLOCK, PG, SETTINGS
from heron_ingest.context import AUTH
from heron_ingest.dashboard import queries
from heron_ingest.dashboard.core import (
    CSRF_FIELD,
    DASHBOARD,
    SIGNIN_COOKIE,
    SignIn,
    clear_session,
    form_of,
    home_of,
    page,
    read_form,
    redirect,
    render,
    safe_next,
    secure,
    set_session,
    viewer,
)
from heron_ingest.validation import InputError

NONCE_SECONDS = 3600


def _signin_page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    nonce = request.cookies.get(SIGNIN_COOKIE)
    if not nonce or len(nonce) > 64 or not nonce.isascii():
        nonce = sessions.new_nonce()
    response = render(
        request,
        "signin.html",
        {
            "signin_csrf": sessions.csrf_token(request.app[DASHBOARD].secret, "signin:" + nonce),
            "next": safe_next(request.query.get("next"), ""),
            "error": error,
            "admin_enabled": bool(request.app[SETTINGS].admin_token),
        },
        status=status,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        path="/dashboard/signin",
        max_age=NONCE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=secure(request),
    )
    return response


@page
async def signin_form(request: web.Request) -> web.StreamResponse:
    try:
        session = await viewer(request)
    except SignIn:
        return _signin_page(request)
    return redirect(safe_next(request.query.get("next"), home_of(session)))


@page
async def signin(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    config = request.app[DASHBOARD]
    nonce = request.cookies.get(SIGNIN_COOKIE)
    presented = form.get(CSRF_FIELD)
    # As the form's page does: a cookie we did not set (non-ASCII, huge) is no nonce at all.
    if nonce is not None and (len(nonce) > 64 or not nonce.isascii()):
        nonce = None
    if not nonce or not isinstance(presented, str) or not sessions.csrf_ok(config.secret, "signin:" + nonce, presented):
        return _signin_page(
            request, error="The sign-in form expired (or cookies are blocked). Please try again.", status=403
        )
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    now = request.app[CLOCK].now()
    admin_token = request.app[SETTINGS].admin_token
    session = None
    if token and admin_token and sessions.same(token, admin_token):
        session = sessions.new_admin(config.secret, admin_token, now)
    elif token and token.isascii():
        found = await request.app[AUTH].lookup(token)
        if found is not None:
            project_id, test = found
            session = sessions.new_key(project_id, hash_key(token), key_hint(token), test, now)
    if session is None:
        return _signin_page(request, error="That is neither the admin token nor a valid project API key.", status=401)
    target = safe_next(form.get("next"), home_of(session))
    if not session.admin and not target.startswith(f"/dashboard/p/{session.project_id}/"):
        target = home_of(session)
    response = redirect(target)
    set_session(response, request, session)
    response.del_cookie(SIGNIN_COOKIE, path="/dashboard/signin")
    return response


@page
async def signout(request: web.Request) -> web.StreamResponse:
    await form_of(request)  # a cross-site page cannot sign anyone out either
    response = redirect("/dashboard/signin")
    clear_session(response)
    return response


@page
async def home(request: web.Request) -> web.StreamResponse:
    return redirect(home_of(await viewer(request)))


@page
async def projects(request: web.Request) -> web.StreamResponse:
    session = await viewer(request)
    if not session.admin:
        return redirect(home_of(session))
    rows = await queries.projects(request.app[PG])
    return render(request, "projects.html", {"projects": rows}, active="projects")


async def root(request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "/dashboard/"})


@page
async def not_found(request: web.Request) -> web.StreamResponse:
    raise InputError(404, "not_found", "There is no page here. Try the overview.")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/dashboard", home)
    app.router.add_get("/dashboard/", home)
    app.router.add_get("/dashboard/signin", signin_form, name="dashboard.signin")
    app.router.add_post("/dashboard/signin", signin)
    app.router.add_post("/dashboard/signout", signout)
    app.router.add_get("/dashboard/projects", projects, name="dashboard.projects")
