"""Approvals: the tenant's executions waiting for approval that others requested; review, then decide."""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import executions as ex
from ui.components.approvals import decision_form
from ui.components.feedback import attempt, show_notices, succeed
from ui.components.identity import signed_in

LIMIT = 200


def confirmed(password: str | None) -> bool:
    """Re-authentication before a high-risk approval: the signed-in user's password, checked by core."""
    if not password:
        st.error("Enter your password to approve at this level.")
        return False
    return attempt(core.reauthenticate, who, password) is not None


who = signed_in()
st.title("Approvals")
show_notices()
rows = attempt(core.list_executions, who, status=core.ExecutionStatus.PENDING_APPROVAL, limit=LIMIT) or []
pending = [r for r in rows if r.requested_by != who.username]  # nobody approves their own request
ex.execution_table(pending, empty="Nothing is waiting for your approval.")
if len(rows) == LIMIT:
    st.caption(f"Showing the newest {LIMIT}.")

picked = ex.execution_picker(pending, key=state.APPROVAL_PICK, label="Review")
if picked is not None and (view := attempt(core.get_execution, who, picked)) is not None:
    ex.execution_summary(view)
    ex.steps_table(view.steps)
    ex.approvals_table(view)
    ask_password = core.needs_reauthentication(view.approval_level)
    if (decision := decision_form(who, view, ask_password=ask_password)) is not None:
        if decision.approve and ask_password and not confirmed(decision.password):
            done = None
        elif decision.approve:
            done = attempt(
                core.approve, who, view.execution_id, comment=decision.comment, plan_hash_seen=view.plan_hash
            )
        else:
            done = attempt(core.reject, who, view.execution_id, comment=decision.comment)
        if done is not None:
            verb = "Approved" if decision.approve else "Rejected"
            succeed(f"{verb} {done.name} ({done.execution_id[:8]}); it is now {done.status}.", after_rerun=True)
            st.rerun()
