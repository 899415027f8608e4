"""Executions: the tenant's executions, filtered and paged, and the live detail of the one picked."""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import executions as ex
from ui.components.feedback import attempt, show_notices, succeed
from ui.components.identity import signed_in
from ui.components.plan_review import what_runs
from ui.components.tables import pager, views_table

PAGE_SIZE = 50
REFRESH_S = 2
DLQ_PAGE = "ui/pages/dlq.py"

who = signed_in()
st.title("Executions")
show_notices()
filters = ex.execution_filters(on_change=state.reset_executions_page)
cursors = state.executions_cursors()
listing = attempt(
    core.list_executions_page,
    who,
    status=filters.statuses or None,
    requested_by=filters.requester,
    asset=filters.asset,
    search=filters.search,
    created_after=filters.created_after,
    created_before=filters.created_before,
    before=cursors[-1],
    limit=PAGE_SIZE,
)
rows = listing.items if listing is not None else []
ex.execution_table(rows)
next_cursor = listing.next_cursor if listing is not None else None
# Keyset pages (no count of the whole table: fast at millions of rows); the cursors visited are kept in state.
pager(
    len(cursors) - 1,
    next_cursor is not None,
    previous=state.previous_executions_page,
    following=lambda: state.next_executions_page(next_cursor or ""),
)


def detail(execution_id: str, live: bool) -> None:
    """Summary, actions, approvals, steps, locks and events; reruns alone every REFRESH_S while live."""
    view = attempt(core.get_execution, who, execution_id)
    if view is None:
        return
    if live and not ex.is_active(view.status):
        st.rerun()  # it ended: refresh the list and stop polling
    ex.execution_summary(view)
    reason = ex.cancel_request(view.execution_id) if ex.may_cancel(who, view) else None
    if reason is not None and (done := attempt(core.cancel, who, view.execution_id, reason=reason or None)):
        asked = done.status == core.ExecutionStatus.RUNNING
        succeed(f"{done.name}: {'cancel requested' if asked else done.status}", after_rerun=True)
        st.rerun()
    if not ex.is_active(view.status):
        ended_actions(view)
    ex.approvals_table(view)
    what_runs(view, title="What runs")
    ex.step_timeline(view.steps)
    st.markdown("**Locks held**")
    held = [lock for lock in attempt(core.list_locks, who) or [] if lock.execution_id == execution_id]
    views_table(held, ["asset", "fencing_token", "acquired_at", "expires_at", "waiters"], empty="No asset locks held.")
    ex.event_log(attempt(core.list_events, who, execution_id) or [])


def ended_actions(view: core.ExecutionView) -> None:
    """Rerun (a new execution of the same plan, with its own approvals) and, for failures, the DLQ."""
    rerun_col, dlq_col = st.columns(2)
    if who.role.rank >= core.Role.OPERATOR.rank and rerun_col.button(
        "Rerun", key=f"{state.RERUN_BUTTON}.{view.execution_id}", icon=":material/replay:"
    ):
        result = attempt(core.rerun, who, view.execution_id)
        if result is not None:
            state.focus_execution(result.execution.execution_id)
            state.reset_executions_page()
            succeed(f"Rerun submitted as {result.execution.execution_id}: {result.execution.status}.", after_rerun=True)
            st.rerun()
    if view.status in {core.ExecutionStatus.FAILED, core.ExecutionStatus.TIMEOUT}:
        dlq_col.page_link(DLQ_PAGE, label="Open the dead-letter queue", icon=":material/report:")


focus = state.focused_execution()
if focus is not None and focus in {r.execution_id for r in rows}:
    st.session_state[state.EXECUTION_PICK] = focus  # opened from a link (Submit, Rerun)
    st.session_state.pop(state.FOCUS_EXECUTION, None)
picked = ex.execution_picker(rows, key=state.EXECUTION_PICK)
if picked is not None:
    status = next((r.status for r in rows if r.execution_id == picked), None)
    if status is not None:
        live = ex.is_active(status)
        st.fragment(detail, run_every=REFRESH_S if live else None)(picked, live)
