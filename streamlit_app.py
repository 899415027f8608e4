"""The console's entry point: a router over the pages the signed-in principal's role may open. Nothing else.

Run it with ``streamlit run console_app.py`` (the session cookie's routes; ``opsconductor up`` does it and adds
the embedded worker). Every page has an address (``/dashboard``, ``/executions?execution=<id>``, README
"Console addresses"): signed out, any of them shows the sign-in form in its place, then the page.
"""

from __future__ import annotations

import streamlit as st

from core import Role
from ui import runtime, session_cookie, state
from ui.components import session, sign_in_form
from ui.components.approvals import inbox_badge
from ui.components.layout import console_style

# (file, title, icon, lowest role that sees it). Hiding a page is a courtesy: core checks every call. The URL
# path is the file's stem (/executions, /dlq ...): what deep links and bookmarks use.
PAGES = [
    ("ui/pages/executions.py", "Executions", ":material/list_alt:", Role.VIEWER),
    ("ui/pages/dashboard.py", "Dashboard", ":material/monitoring:", Role.VIEWER),
    ("ui/pages/submit.py", "Submit", ":material/upload_file:", Role.OPERATOR),
    ("ui/pages/approvals.py", "Approvals", ":material/approval:", Role.APPROVER),
    ("ui/pages/dlq.py", "Dead-letter queue", ":material/report:", Role.OPERATOR),
    ("ui/pages/locks.py", "Locks and workers", ":material/lock:", Role.VIEWER),
    ("ui/pages/admin.py", "Admin", ":material/admin_panel_settings:", Role.ADMIN),
]
SIGN_IN = "ui/pages/sign_in.py"
SIGN_IN_PATH = "sign-in"

st.set_page_config(page_title="OpsConductor", page_icon=":material/play_circle:", layout="wide")
console_style()


@st.cache_resource
def _runtime() -> str:
    # Once per server process, shared by every session: the embedded worker (or the Redis dispatcher).
    return runtime.ensure_console_runtime()


def _url_path(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".py")


_runtime()
who = session.current_principal()
if state.take_leaving():
    session_cookie.fetch_in_background(session_cookie.END)  # signed out: the browser drops its cookie
# The sign-in page is the default, signed in or not: Streamlit serves the default page at the root only, so a
# default Executions page would answer its own address (/executions?execution=..., every deep link) with
# "Page not found". Signed in, the root lands on the sign-in page, which switches to the first page below.
sign_in = st.Page(
    SIGN_IN, title="Sign in", icon=":material/login:", url_path=SIGN_IN_PATH, default=True,
    visibility="visible" if who is None else "hidden",
)  # fmt: skip
if who is None:
    # Every page is registered, hidden, so that its address resolves (no "Page not found" on a reload).
    pages = [sign_in] + [st.Page(path, title=title, url_path=_url_path(path), visibility="hidden")
                         for path, title, _icon, _role in PAGES]  # fmt: skip
else:
    badge = {"Approvals": inbox_badge(who)} if who.role.rank >= Role.APPROVER.rank else {}
    pages = [
        st.Page(path, title=title + badge.get(title, ""), icon=icon, url_path=_url_path(path))
        for path, title, icon, role in PAGES
        if who.role.rank >= role.rank
    ] + [sign_in]
current = st.navigation(pages)
if who is None and current is not sign_in:
    # Signed out on a page's address (a bookmark, a reload after expiry, a link from a chat message): the
    # sign-in form in its place, so the address stays and this page opens once signed in.
    sign_in_form.render()
    st.stop()
if who is not None and current is sign_in:
    # Signed in at the root or on the sign-in page's address (a bookmark): the first page, with the address's
    # query (an old link, /?execution=<id>, still opens that execution).
    st.switch_page(pages[0], query_params=st.query_params.to_dict())
if (code := state.take_handoff()) is not None:
    # Signed in in this tab: the browser fetches the session's HttpOnly cookie (no reload), so a reload, a
    # bookmark or a second tab opens signed in.
    session_cookie.fetch_in_background(session_cookie.start_url(code))
current.run()
