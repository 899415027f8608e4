"""Executions: the tenant's executions, filtered and paged, and the live detail of the one picked.

The execution open is in the address (``/executions?execution=<id>``, a unique prefix of 6+ also works), so
a reload, a bookmark or a link from a chat message opens it, whether or not it is on the list's page.
"""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import executions as ex
from ui.components import session
from ui.components import step_output as so
from ui.components.fanout_grid import fanout_grids
from ui.components.feedback import attempt, show_notices, succeed
from ui.components.identity import signed_in
from ui.components.plan_review import what_runs
from ui.components.tables import pager, views_table

PAGE_SIZE = 50
REFRESH_S = 2
DLQ_PAGE = "ui/pages/dlq.py"
SUBMIT_PAGE = "ui/pages/submit.py"

who = signed_in()
st.title("Executions")
show_notices()
# /executions?status=failed (the Dashboard's links): that filter, once; the address then shows the list.
if (asked := st.query_params.get("status")) in set(core.ExecutionStatus):
    st.session_state[state.FILTER_STATUS] = [core.ExecutionStatus(asked)]
    state.reset_executions_page()
    del st.query_params["status"]
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
    if live and session.current_principal(activity=False) is None:
        st.rerun()  # signed out in another tab, or idle: the whole page, which shows the sign-in form
    view = attempt(core.get_execution, who, execution_id)
    if view is None:
        return
    if live and not ex.is_active(view.status):
        st.rerun()  # it ended: refresh the list and stop polling
    outputs = attempt(core.list_attempt_outputs, who, execution_id) or []
    events = attempt(core.list_events, who, execution_id) or []
    ex.execution_summary(view)
    ex.window_wait(view, events)
    so.failure_banner(view, outputs)
    ex.execution_link(view.execution_id)
    reason = ex.cancel_request(view) if ex.may_cancel(who, view) else None
    if reason is not None and (done := attempt(core.cancel, who, view.execution_id, reason=reason or None)):
        asked = done.status == core.ExecutionStatus.RUNNING
        succeed(f"{done.name}: {'cancel requested' if asked else done.status}", after_rerun=True)
        st.rerun()
    if not ex.is_active(view.status):
        ended_actions(view)
    ex.approvals_table(view)
    what_runs(view, title="What runs")
    fanout_grids(view)
    so.step_timeline(who, view, outputs)
    st.markdown("**Locks held**")
    held = [lock for lock in attempt(core.list_locks, who) or [] if lock.execution_id == execution_id]
    views_table(held, ["asset", "fencing_token", "acquired_at", "expires_at", "waiters"], empty="No asset locks held.")
    ex.event_log(events)


def ended_actions(view: core.ExecutionView) -> None:
    """Rerun (a new execution of the same plan, with its own approvals), Edit and rerun (the plan in Submit,
    to change first), and, for failures, the DLQ."""
    rerun_col, edit_col, dlq_col = st.columns(3)
    if who.role.rank >= core.Role.OPERATOR.rank and edit_col.button(
        "Edit and rerun", key=f"{state.EDIT_RERUN_BUTTON}.{view.execution_id}", icon=":material/edit:"
    ):
        plan = attempt(core.rerun_plan, who, view.execution_id)
        if plan is not None:
            state.edit_rerun(view.execution_id, core.plan_yaml(plan))
            st.switch_page(SUBMIT_PAGE)
    if who.role.rank >= core.Role.OPERATOR.rank and rerun_col.button(
        "Rerun", key=f"{state.RERUN_BUTTON}.{view.execution_id}", icon=":material/replay:"
    ):
        result = attempt(core.rerun, who, view.execution_id)
        if result is not None:
            new = result.execution
            state.focus_execution(new.execution_id)
            state.reset_executions_page()
            succeed(
                f"Rerun of {view.execution_id[:8]} submitted as a new execution, {new.execution_id[:8]}: {new.status}.",
                after_rerun=True,
            )
            st.rerun()
    if view.status in {core.ExecutionStatus.FAILED, core.ExecutionStatus.TIMEOUT}:
        dlq_col.page_link(
            DLQ_PAGE,
            label="Open the dead-letter queue",
            icon=":material/report:",
            query_params={ex.EXECUTION_PARAM: view.execution_id},  # its entry, picked
        )


def linked_execution() -> core.ExecutionSummary | None:
    """The execution the address (or another page: Submit, Rerun) asks to open, its id completed from a prefix."""
    focus = state.focused_execution()
    if focus is not None:
        st.session_state.pop(state.FOCUS_EXECUTION, None)
        st.query_params[ex.EXECUTION_PARAM] = focus
    ref = st.query_params.get(ex.EXECUTION_PARAM)
    if not ref:
        return None
    full = attempt(core.resolve_execution_id, who, ref)
    view = attempt(core.get_execution, who, full) if full is not None else None
    if view is None:
        st.query_params.pop(ex.EXECUTION_PARAM, None)  # names nothing of this tenant: off the address
    return view


linked = linked_execution()
options = list(rows)
if linked is not None:
    if linked.execution_id not in {r.execution_id for r in rows}:
        options.insert(0, linked)  # not on this page of the list: still offered, first
    if st.session_state.get(state.LINKED_EXECUTION) != linked.execution_id:
        st.session_state[state.EXECUTION_PICK] = linked.execution_id  # a new address: open what it names
        st.session_state[state.LINKED_EXECUTION] = linked.execution_id
picked = ex.execution_picker(options, key=state.EXECUTION_PICK, on_change=ex.address_the_pick)
if picked is not None:
    status = next((r.status for r in options if r.execution_id == picked), None)
    if status is not None:
        live = ex.is_active(status)
        st.fragment(detail, run_every=REFRESH_S if live else None)(picked, live)
