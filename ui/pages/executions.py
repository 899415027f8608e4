"""Executions: the tenant's executions, filtered and paged, and the live detail of the one picked."""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import executions as ex
from ui.components.feedback import attempt, show_notices, succeed
from ui.components.identity import signed_in

PAGE_SIZE = 50
REFRESH_S = 2

who = signed_in()
st.title("Executions")
show_notices()
filters = ex.execution_filters(on_change=state.reset_executions_page)
page = state.executions_page()
# One row more than a page tells whether there is a next page.
rows = (
    attempt(
        core.list_executions,
        who,
        status=filters.statuses or None,
        requested_by=filters.requester,
        search=filters.search,
        limit=PAGE_SIZE + 1,
        offset=page * PAGE_SIZE,
    )
    or []
)
ex.execution_table(rows[:PAGE_SIZE])
ex.pager(page, len(rows) > PAGE_SIZE, state.set_executions_page)


def detail(execution_id: str, live: bool) -> None:
    """Summary, approvals, steps, events and Cancel; reruns alone every REFRESH_S while live."""
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
    ex.approvals_table(view)
    ex.steps_table(view.steps)
    ex.event_log(attempt(core.list_events, who, execution_id) or [])


picked = ex.execution_picker(rows[:PAGE_SIZE], key=state.EXECUTION_PICK)
if picked is not None:
    status = next(r.status for r in rows if r.execution_id == picked)
    live = ex.is_active(status)
    st.fragment(detail, run_every=REFRESH_S if live else None)(picked, live)
