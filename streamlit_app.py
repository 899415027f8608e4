"""The console's entry point: a router over the pages the signed-in principal's role may open. Nothing else.

Run it with ``streamlit run streamlit_app.py`` (``opsconductor up`` adds the embedded worker).
"""

from __future__ import annotations

import streamlit as st

import core
from core import Role
from ui import runtime, state
from ui.components.approvals import inbox_badge

# (file, title, icon, lowest role that sees it). Hiding a page is a courtesy: core checks every call.
PAGES = [
    ("ui/pages/executions.py", "Executions", ":material/list_alt:", Role.VIEWER),
    ("ui/pages/dashboard.py", "Dashboard", ":material/monitoring:", Role.VIEWER),
    ("ui/pages/submit.py", "Submit", ":material/upload_file:", Role.OPERATOR),
    ("ui/pages/approvals.py", "Approvals", ":material/approval:", Role.APPROVER),
    ("ui/pages/dlq.py", "Dead-letter queue", ":material/report:", Role.OPERATOR),
    ("ui/pages/locks.py", "Locks and workers", ":material/lock:", Role.VIEWER),
    ("ui/pages/admin.py", "Admin", ":material/admin_panel_settings:", Role.ADMIN),
]

st.set_page_config(page_title="OpsConductor", page_icon=":material/play_circle:", layout="wide")


@st.cache_resource
def _runtime() -> str:
    # Once per server process, shared by every session: the embedded worker (or the Redis dispatcher).
    return runtime.ensure_console_runtime()


_runtime()
who = state.principal()
if who is not None and not state.touch_session(core.get_settings().session_idle_s):
    state.add_notice("Your session expired after a period of inactivity; please sign in again.")
    who = None
if who is not None and not core.session_valid(who):
    # Password changed, account disabled or role removed since this session signed in.
    state.sign_out()
    state.add_notice("Your sign-in is no longer valid (your password or access changed); please sign in again.")
    who = None
if who is None:
    pages = [st.Page("ui/pages/sign_in.py", title="Sign in", icon=":material/login:")]
else:
    badge = {"Approvals": inbox_badge(who)} if who.role.rank >= Role.APPROVER.rank else {}
    pages = [
        st.Page(path, title=title + badge.get(title, ""), icon=icon)
        for path, title, icon, role in PAGES
        if who.role.rank >= role.rank
    ]
st.navigation(pages).run()
