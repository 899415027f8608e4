"""The console session's browser side: the HttpOnly cookie's name and routes, what a page reads, where it sends.

The token lives in an HttpOnly cookie (``opsc_session``): no script of the page can read it, and it never
appears in a URL or in what the page renders. It is set and dropped by two HTTP routes of the console's server
(ui/session_routes.py, mounted by console_app.py): Streamlit's scripts cannot set cookies, so after sign-in the
page has the browser fetch ``START`` with a one-time code (60 s, used once), in the background (no reload);
``END`` revokes the session and drops the cookie. The script reads the cookie from the request that opened its
WebSocket (``st.context.cookies``) and has core check it on every run.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import streamlit as st

COOKIE = "opsc_session"
START = "/opsc-session/start"
END = "/opsc-session/end"
# Sent by the page's own fetch, required by both routes: a page on another site can make the browser navigate
# to a route or load it as an image, but not add a header (a cross-origin fetch with one needs a CORS
# preflight, which the console never grants). It holds where Sec-Fetch-Site is missing (browsers before 2023).
REQUEST_HEADER = "X-OPSC-Session"
REQUEST_HEADER_VALUE = "1"


def presented_token() -> str | None:
    """The session token the browser sent with this session's WebSocket, if any."""
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) and value else None


def base_path() -> str:
    """The console's base URL path (``server.baseUrlPath``), without a trailing slash ("" at the root)."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def fetch_in_background(url: str) -> None:
    """Have the browser request ``url`` (a path on this console) now, without leaving the page: the response's
    Set-Cookie is stored, as for any same-origin request.

    ``st.html`` with JavaScript: the one public way a script can reach the browser. ``url`` is ours (a route
    and a one-time code of ours) and goes in as a JSON string, never as markup.
    """
    target = json.dumps(base_path() + url)
    options = json.dumps(
        {"credentials": "same-origin", "cache": "no-store", "headers": {REQUEST_HEADER: REQUEST_HEADER_VALUE}}
    )
    script = f"<script>fetch({target}, {options});</script>"
    st.html(script, unsafe_allow_javascript=True)


def start_url(code: str) -> str:
    """The cookie route's address for one-time ``code``."""
    return f"{START}?{urlencode({'code': code})}"
