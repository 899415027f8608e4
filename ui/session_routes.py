"""The two HTTP routes of the console's server that set and drop the session cookie (ui/session_cookie.py).

- ``GET /opsc-session/start?code=C``: trade the one-time code for the session token and set it as an HttpOnly,
  SameSite=Lax cookie (Secure over HTTPS): 204. A bad, used or expired code: 403, no cookie.
- ``GET /opsc-session/end``: revoke the session the cookie names and drop the cookie: 204.

Neither redirects anywhere, so neither can be made to send a browser off the console.

Both refuse (403, nothing changed) a request another site made the browser send: otherwise a page elsewhere
could sign a visitor in as the attacker with the attacker's own one-time code (login CSRF), or sign them out.
Two checks: ``Sec-Fetch-Site`` other than ``same-origin`` or ``none``, and a missing ``REQUEST_HEADER``, which
the console's own fetch sends and no navigation, image or form from another site can (it holds for browsers
that send no ``Sec-Fetch-Site``, which the first check alone let through).

SameSite=Lax: the browser sends the cookie when an operator follows a deep link from a chat message (a
top-level navigation), never with a request another site makes (a WebSocket opened from another origin does
not get it). Run by Starlette in its thread pool (sync handlers), so the database calls do not block the loop.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import core
from ui.session_cookie import COOKIE, END, REQUEST_HEADER, REQUEST_HEADER_VALUE, START


def _prefixed(request: Request, path: str) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + path


def _answer(status_code: int = 204) -> Response:
    response = Response(status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _cross_site(request: Request) -> bool:
    # Sec-Fetch-Site is missing in older browsers (Safari before 16.4): the header only a script of this
    # origin can add decides then.
    if request.headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}:
        return True
    return request.headers.get(REQUEST_HEADER) != REQUEST_HEADER_VALUE


def start(request: Request) -> Response:
    """Trade ``code`` for the session cookie."""
    if _cross_site(request):
        return Response(status_code=403)
    try:
        token = core.session_token_for(request.query_params.get("code", ""))
    except core.PermissionDenied:
        return _answer(403)
    response = _answer()
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
    return response


def end(request: Request) -> Response:
    """Sign out the cookie's session (every tab of it) and drop the cookie."""
    if _cross_site(request):
        return Response(status_code=403)
    token = request.cookies.get(COOKIE)
    if token:
        core.end_console_session(token)
    response = _answer()
    response.delete_cookie(COOKIE, path=_prefixed(request, "/"), httponly=True, samesite="lax")
    return response


ROUTES = [Route(START, start, methods=["GET"]), Route(END, end, methods=["GET"])]
