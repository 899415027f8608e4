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
    password: str | None = None  # asked again for high-risk approvals (re-authentication)


def decision_form(who: Principal, view: ExecutionView, *, ask_password: bool = False) -> Decision | None:
    """A comment (and, for high-risk plans, the password) and Approve/Reject; the decision once clicked."""
    if any(a.approver == who.username and a.step_index is None for a in view.approvals):
        st.info("You have already decided on this execution; it waits for other approvers.")
        return None
    st.caption(f"You are approving the plan with hash {view.plan_hash[:16]}…; any change to it needs a new approval.")
    comment = st.text_area("Comment", key=f"{state.APPROVAL_COMMENT}.{view.execution_id}", height=80)
    password = None
    if ask_password:
        password = st.text_input(
            f"Your password (approving level {view.approval_level} asks for it again)",
            type="password",
            key=f"{state.REAUTH_PASSWORD}.{view.execution_id}",
        )
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
        return Decision(approve=approve, comment=comment.strip() or None, password=password)
    return None
