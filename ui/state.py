"""Every ``st.session_state`` key the console uses, with typed accessors.

Pages and components read and write session state only through this module, so a key is defined once
and its type is known. Widget keys live here too: tests find widgets by them.
"""

from __future__ import annotations

import time
from typing import Final

import streamlit as st

from core import Principal

# Values the console keeps between reruns.
PRINCIPAL: Final = "opsc.principal"
SESSION_TOKEN: Final = "opsc.session_token"  # the console session's token (server side only; the browser's is a cookie)
HANDOFF: Final = "opsc.handoff"  # the one-time code the browser trades for its cookie, until sent there
LEAVING: Final = "opsc.leaving"  # signed out: send the browser to drop its cookie
LAST_SEEN: Final = "opsc.last_seen"  # monotonic-free wall time (epoch s) of the last page view: idle expiry
NOTICES: Final = "opsc.notices"
EXECUTIONS_PAGE: Final = "opsc.executions.page"

# Widget keys.
SIGN_IN_USERNAME: Final = "opsc.sign_in.username"
SIGN_IN_TENANT: Final = "opsc.sign_in.tenant"
SIGN_IN_PASSWORD: Final = "opsc.sign_in.password"
SSO_BUTTON: Final = "opsc.sign_in.sso"
REAUTH_PASSWORD: Final = "opsc.approvals.password"  # suffixed with the execution id
SIGN_OUT: Final = "opsc.sign_out"
DEMO_BUTTON: Final = "opsc.sign_in.demo"  # suffixed with tenant and username
FILTER_STATUS: Final = "opsc.executions.status"
FILTER_REQUESTER: Final = "opsc.executions.requester"
FILTER_SEARCH: Final = "opsc.executions.search"
FILTER_ASSET: Final = "opsc.executions.asset"
FILTER_DATES: Final = "opsc.executions.dates"
RERUN_BUTTON: Final = "opsc.executions.rerun"  # suffixed with the execution id
EDIT_RERUN_BUTTON: Final = "opsc.executions.edit_rerun"  # suffixed with the execution id
REFUSED_TOKEN: Final = "opsc.session.refused"  # a cookie's token core refused (ui/components/session.py)
RERUN_OF: Final = "opsc.submit.rerun_of"  # the execution the Submit page's plan was loaded from (Edit and rerun)
DLQ_EDIT_PLAN: Final = "opsc.dlq.edit_plan"  # suffixed with the execution id
DLQ_EDIT_SUBMIT: Final = "opsc.dlq.edit_submit"  # suffixed with the execution id
EXECUTION_PICK: Final = "opsc.executions.pick"
STEP_OPEN: Final = "opsc.executions.step_open"  # suffixed with the execution id and step index: expanded?
LIVE_TAIL: Final = "opsc.executions.live_tail"  # suffixed with the execution id: the live output held
CANCEL_REASON: Final = "opsc.executions.cancel_reason"  # suffixed with the execution id
CANCEL_BUTTON: Final = "opsc.executions.cancel"  # suffixed with the execution id
PLAN_TEXT: Final = "opsc.submit.plan_text"
PLAN_FILE: Final = "opsc.submit.plan_file"
PLAN_BACKGROUND: Final = "opsc.submit.background"
NOTIFY_ON_FINISH: Final = "opsc.submit.notify_on_finish"  # "Notify me when it finishes"
NOTIFY_ADDRESS: Final = "opsc.submit.notify_address"  # the address to subscribe, for one with none yet
PLAN_INPUT: Final = "opsc.submit.input."  # suffixed with the input's name
RUNBOOK_PICK: Final = "opsc.submit.runbook"
RUNBOOK_NAME: Final = "opsc.submit.runbook_name"
RUNBOOK_DESCRIPTION: Final = "opsc.submit.runbook_description"
FOCUS_EXECUTION: Final = "opsc.executions.focus"  # an execution to open on the Executions page
LINKED_EXECUTION: Final = "opsc.executions.linked"  # the execution the address named when last looked
CANCEL_CONFIRM: Final = "opsc.executions.cancel_confirm"  # suffixed with the execution id: asked to confirm
CANCEL_YES: Final = "opsc.executions.cancel_yes"  # suffixed with the execution id
CANCEL_NO: Final = "opsc.executions.cancel_no"  # suffixed with the execution id
APPROVAL_PICK: Final = "opsc.approvals.pick"
APPROVAL_LINKED: Final = "opsc.approvals.linked"  # the execution the address named when last looked
DLQ_LINKED: Final = "opsc.dlq.linked"  # the execution the address named when last looked
APPROVAL_COMMENT: Final = "opsc.approvals.comment"  # suffixed with the execution id
APPROVAL_FORM: Final = "opsc.approvals.form"  # suffixed with the execution id
APPROVE_BUTTON: Final = "opsc.approvals.approve"  # suffixed with the execution id
REJECT_BUTTON: Final = "opsc.approvals.reject"  # suffixed with the execution id
ADMIN_CHECK: Final = "opsc.admin.check"
ADMIN_POLICY_PICK: Final = "opsc.admin.policy"
ADMIN_POLICY_FIELD: Final = "opsc.admin.policy_field"  # suffixed with the field name
ADMIN_MODE: Final = "opsc.admin.mode"
ADMIN_MAX_LEVEL: Final = "opsc.admin.max_live_level"
ADMIN_OVER_LEVEL: Final = "opsc.admin.over_level"
ADMIN_PRIORITY_CAP: Final = "opsc.admin.max_priority"
ADMIN_MEMBER_NAME: Final = "opsc.admin.member_name"
ADMIN_MEMBER_ROLE: Final = "opsc.admin.member_role"
ADMIN_MEMBER_LIMIT: Final = "opsc.admin.member_limit"
ADMIN_MEMBER_PASSWORD: Final = "opsc.admin.member_password"
ADMIN_SECRET_NAME: Final = "opsc.admin.secret_name"
ADMIN_SECRET_VALUE: Final = "opsc.admin.secret_value"
ADMIN_ASSET_FIELD: Final = "opsc.admin.asset"  # suffixed with the field name
ADMIN_READ_ONLY_ARGV: Final = "opsc.admin.read_only_argv"
ADMIN_READ_ONLY_PICK: Final = "opsc.admin.read_only_pick"
ADMIN_RUNBOOK_PICK: Final = "opsc.admin.runbook_pick"
ADMIN_NOTIFY_FIELD: Final = "opsc.admin.notify"  # suffixed with the field name
ADMIN_WINDOWS_FIELD: Final = "opsc.admin.windows"  # suffixed with the field name
DASHBOARD_WINDOW: Final = "opsc.dashboard.window"
DLQ_SHOW_RESOLVED: Final = "opsc.dlq.show_resolved"
DLQ_PICK: Final = "opsc.dlq.pick"
DLQ_COMMENT: Final = "opsc.dlq.comment"
DLQ_CONFIRM: Final = "opsc.dlq.confirm"
DLQ_PAGE: Final = "opsc.dlq.page"


def principal() -> Principal | None:
    """The signed-in principal, or None."""
    value = st.session_state.get(PRINCIPAL)
    return value if isinstance(value, Principal) else None


def sign_in(who: Principal, token: str | None = None) -> None:
    """Remember ``who`` as the signed-in principal of this browser session (``token``: its console session)."""
    st.session_state[PRINCIPAL] = who
    st.session_state[LAST_SEEN] = time.time()
    if token is not None:
        st.session_state[SESSION_TOKEN] = token


def session_token() -> str | None:
    """The token of this tab's console session, if it signed in (or was restored) with one."""
    value = st.session_state.get(SESSION_TOKEN)
    return value if isinstance(value, str) else None


def set_handoff(code: str) -> None:
    """Remember the one-time code to send the browser to the cookie route with (once)."""
    st.session_state[HANDOFF] = code


def take_handoff() -> str | None:
    """The pending one-time code, removed (the browser is sent there once)."""
    value = st.session_state.pop(HANDOFF, None)
    return value if isinstance(value, str) else None


def refuse_token(token: str) -> None:
    """Core refused the session the browser's cookie names: this tab keeps being shown that cookie (a
    Streamlit session sees the cookies it was opened with), so it stops presenting it."""
    st.session_state[REFUSED_TOKEN] = token


def refused_token() -> str | None:
    """The cookie's token core refused in this tab, if any."""
    value = st.session_state.get(REFUSED_TOKEN)
    return value if isinstance(value, str) else None


def mark_leaving() -> None:
    """Signed out: the next run sends the browser to drop its session cookie."""
    st.session_state[LEAVING] = True


def leaving() -> bool:
    """True between ``mark_leaving`` and the run that sends the browser away."""
    return bool(st.session_state.get(LEAVING, False))


def take_leaving() -> bool:
    """True once after ``mark_leaving``."""
    return bool(st.session_state.pop(LEAVING, False))


def touch_session(idle_limit_s: float) -> bool:
    """Record activity; False (and signed out) if the session sat idle longer than ``idle_limit_s``."""
    now = time.time()
    last = float(st.session_state.get(LAST_SEEN, now))
    if now - last > idle_limit_s:
        sign_out()
        return False
    st.session_state[LAST_SEEN] = now
    return True


def sign_out() -> None:
    """Forget the principal and everything else of the session (filters, picks, notices)."""
    st.session_state.clear()


NOTICE_S = 10.0  # how long an action's confirmation stays on the page after the rerun that follows it


def add_notice(message: str, *, keep_s: float = 0.0) -> None:
    """Queue a success message for the next run; with ``keep_s``, for every run in that many seconds too.

    An action's confirmation is kept (``NOTICE_S``): the page often runs again at once (a live refresh), and a
    confirmation gone before the operator could read it tells nothing. A note about the session (why you were
    signed out) is shown once.
    """
    st.session_state.setdefault(NOTICES, []).append((time.monotonic() + keep_s, message))


def take_notices() -> list[str]:
    """The queued success messages: each once, and again while it is to be kept."""
    now = time.monotonic()
    queued: list[tuple[float, str]] = st.session_state.get(NOTICES, [])
    st.session_state[NOTICES] = [(until, message) for until, message in queued if until > now]
    return [message for _until, message in queued]


def edit_rerun(execution_id: str, plan_text: str) -> None:
    """Load an ended execution's plan into the Submit page's editor, to be submitted as a rerun of it."""
    st.session_state[PLAN_TEXT] = plan_text
    st.session_state[RERUN_OF] = execution_id
    st.session_state.pop(RUNBOOK_PICK, None)


def rerun_of() -> str | None:
    """The execution the Submit page's plan was loaded from by Edit and rerun, if it still is."""
    value = st.session_state.get(RERUN_OF)
    return value if isinstance(value, str) else None


def stop_rerun() -> None:
    """The Submit page's plan is a fresh one again (not a rerun of anything)."""
    st.session_state.pop(RERUN_OF, None)


def focus_execution(execution_id: str) -> None:
    """Ask the Executions page to open ``execution_id`` (a link from another page)."""
    st.session_state[FOCUS_EXECUTION] = execution_id


def focused_execution() -> str | None:
    """The execution another page asked to open, if any."""
    value = st.session_state.get(FOCUS_EXECUTION)
    return value if isinstance(value, str) else None


def executions_cursors() -> list[str | None]:
    """The cursors of the pages visited so far: page N of the list is read with ``before=cursors[N]``."""
    cursors: list[str | None] = st.session_state.setdefault(EXECUTIONS_PAGE, [None])
    return cursors


def next_executions_page(cursor: str) -> None:
    """Go one page further (``cursor``: the current page's ``next_cursor``)."""
    executions_cursors().append(cursor)


def previous_executions_page() -> None:
    """Go one page back (never before the first)."""
    cursors = executions_cursors()
    if len(cursors) > 1:
        cursors.pop()


def dlq_page() -> int:
    """The zero-based page of the dead-letter queue."""
    return int(st.session_state.get(DLQ_PAGE, 0))


def set_dlq_page(page: int) -> None:
    """Go to a page of the dead-letter queue (never below the first)."""
    st.session_state[DLQ_PAGE] = max(page, 0)


def reset_executions_page() -> None:
    """Back to the first page (a filter changed)."""
    st.session_state[EXECUTIONS_PAGE] = [None]
