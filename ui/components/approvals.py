"""Approving: the decision form for one execution under review."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import ExecutionView, Principal
from ui import state


@dataclass(frozen=True)
class Decision:
    """What the approver decided, with their comment."""

    approve: bool
    comment: str | None


def decision_form(who: Principal, view: ExecutionView) -> Decision | None:
    """A comment and Approve/Reject buttons; returns the decision when one is clicked."""
    if any(a.approver == who.username and a.step_index is None for a in view.approvals):
        st.info("You have already decided on this execution; it waits for other approvers.")
        return None
    st.caption(f"You are approving the plan with hash {view.plan_hash[:16]}…; any change to it needs a new approval.")
    comment = st.text_area("Comment", key=f"{state.APPROVAL_COMMENT}.{view.execution_id}", height=80)
    approve_col, reject_col = st.columns(2)
    approve = approve_col.button(
        "Approve",
        key=f"{state.APPROVE_BUTTON}.{view.execution_id}",
        type="primary",
        icon=":material/check:",
        width="stretch",
    )
    reject = reject_col.button(
        "Reject", key=f"{state.REJECT_BUTTON}.{view.execution_id}", icon=":material/close:", width="stretch"
    )
    if approve or reject:
        return Decision(approve=approve, comment=comment.strip() or None)
    return None
