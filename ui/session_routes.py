"""The two HTTP routes of the console's server that set and drop the session cookie (ui/session_cookie.py).

- ``GET /opsc-session/start?code=C&next=/path``: trade the one-time code for the session token, set it as an
  HttpOnly, SameSite=Lax cookie (Secure over HTTPS), and send the browser on to ``next`` (303). A bad or used
  code: no cookie, on to the sign-in page.
- ``GET /opsc-session/end``: revoke the session the cookie names, drop the cookie, on to the root.

SameSite=Lax: the browser sends the cookie when an operator follows a deep link from a chat message (a
top-level navigation), never with a request another site makes (a WebSocket opened from another origin does
not get it). Run by Starlette in its thread pool (sync handlers), so the database calls do not block the loop.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

import core
from ui.session_cookie import COOKIE, END, START, safe_next


def _prefixed(request: Request, path: str) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + path


def start(request: Request) -> RedirectResponse:
    """Trade ``code`` for the session cookie and go on to ``next``."""
    next_address = safe_next(request.query_params.get("next"))
    try:
        token = core.session_token_for(request.query_params.get("code", ""))
    except core.PermissionDenied:
        return RedirectResponse(_prefixed(request, "/"), status_code=303)
    response = RedirectResponse(_prefixed(request, next_address), status_code=303)
    expires = core.console_session_expires(token)
    max_age = int((expires - datetime.now(UTC)).total_seconds()) if expires is not None else 0
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(max_age, 0),
        path=_prefixed(request, "/"),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def end(request: Request) -> RedirectResponse:
    """Sign out the cookie's session (every tab of it) and drop the cookie."""
    token = request.cookies.get(COOKIE)
    if token:
        core.end_console_session(token)
    response = RedirectResponse(_prefixed(request, "/"), status_code=303)
    response.delete_cookie(COOKIE, path=_prefixed(request, "/"), httponly=True, samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    return response


ROUTES = [Route(START, start, methods=["GET"]), Route(END, end, methods=["GET"])]
