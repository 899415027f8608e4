"""Who this run acts for, checked on every run: the tab's console session, else the browser's session cookie.

A sign-in starts a console session in core (a signed, expiring, revocable token: core/identity/
console_sessions.py) and sends the browser to set its HttpOnly cookie (ui/session_cookie.py), so a reload, a
bookmark or a second tab opens signed in. Every run has core check the token: forged, altered, another
installation's, signed out (in any tab), idle longer than ``OPSC_SESSION_IDLE_S``, past ``OPSC_SESSION_MAX_S``,
a disabled user or a changed password: refused, and the page is the sign-in page with the reason.

A principal the server put into the session without a token (tests, the canary) keeps the checks it always
had: the idle limit of this tab, and ``core.session_valid``.
"""

from __future__ import annotations

import core
from core import Principal
from ui import session_cookie, state
from ui.components.feedback import attempt

IDLE_NOTICE = "Your session expired after a period of inactivity; please sign in again."


def current_principal(*, activity: bool = True) -> Principal | None:
    """The principal this run acts for (None: signed out, with a notice saying why when it ended).

    ``activity``: False for a live view refreshing itself (it checks the session, but does not keep it alive).
    """
    who = state.principal()
    token = state.session_token()
    if token is None and not state.leaving():
        presented = session_cookie.presented_token()
        token = presented if presented != state.refused_token() else None  # refused once is enough
    if token is None:
        return _tokenless(who)
    try:
        fresh = core.console_session_principal(token, activity=activity)
    except core.PermissionDenied as exc:
        state.sign_out()
        reason = str(exc)
        notice = IDLE_NOTICE if "inactivity" in reason else f"Your sign-in is no longer valid: {reason}."
        state.add_notice(notice)
        # The cookie names an ended session: the browser drops it (this run), and this tab, which keeps being
        # shown the cookie it was opened with, stops presenting it, so a sign-in here starts afresh.
        state.refuse_token(token)
        state.mark_leaving()
        return None
    state.sign_in(fresh, token)
    return fresh


def _tokenless(who: Principal | None) -> Principal | None:
    if who is None:
        return None
    if not state.touch_session(core.get_settings().session_idle_s):
        state.add_notice(IDLE_NOTICE)
        return None
    if not core.session_valid(who):
        # Password changed, account disabled or role removed since this session signed in.
        state.sign_out()
        state.add_notice("Your sign-in is no longer valid (your password or access changed); please sign in again.")
        return None
    return who


def begin(who: Principal) -> bool:
    """Sign this tab in as ``who`` (just authenticated) and start its console session; False if refused."""
    started = attempt(core.start_console_session, who)
    if started is None:
        return False
    token, code = started
    state.sign_in(who, token)
    state.set_handoff(code)
    return True


def sign_out() -> None:
    """End the console session (in every tab that shares it), forget this tab's state, drop the cookie next."""
    token = state.session_token() or session_cookie.presented_token()
    if token is not None:
        core.end_console_session(token)
    state.sign_out()
    state.mark_leaving()
