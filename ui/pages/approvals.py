"""Approvals: the inbox of decisions waiting for this user (plans, and level-3 step gates), never their own.

The most urgent item is open for review at once, on one screen: what, who, risk, time left, the decision,
then the commands that will run (with their dry runs and what changed since the last approved run), so an
approval is one click (high-risk levels ask for the password again, in the same form) and Approve stays on
the first screen however many steps the plan has."""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import executions as ex
from ui.components.approvals import decision_form, item_key, item_label, review_facts
from ui.components.feedback import attempt, show_notices, succeed
from ui.components.identity import signed_in
from ui.components.plain import md_text
from ui.components.plan_review import what_runs

LIMIT = 200
EXECUTIONS = "ui/pages/executions.py"


def confirmed(password: str | None) -> core.Principal | None:
    """Re-authentication before a high-risk approval: the signed-in user's password, checked by core.

    Returns the principal core re-issued as confirmed now (core refuses the approval without a fresh one).
    """
    if not password:
        st.error("Enter your password to approve at this level.")
        return None
    return attempt(core.reauthenticate, who, password)


def not_waiting(ref: str) -> None:
    """A link named an execution that is not in this user's inbox: say so, and link to the execution itself."""
    st.info("The execution in this link is not waiting for your decision (decided, expired, or your own request).")
    st.page_link(EXECUTIONS, label="Open it on the Executions page", query_params={ex.EXECUTION_PARAM: ref})


def address_the_pick() -> None:
    picked = st.session_state.get(state.APPROVAL_PICK)
    ex.address(items[picked].execution_id if picked in items else None, state.APPROVAL_LINKED)


who = signed_in()
st.title("Approvals")
show_notices()
inbox = attempt(core.approval_inbox, who, limit=LIMIT) or []
items = {item_key(item): item for item in inbox}
# /approvals?execution=<id>: a link from a notification or a chat message opens that decision.
if (ref := ex.linked_ref(state.APPROVAL_LINKED)) is not None:
    found = next((key for key, item in items.items() if ex.matches(ref, item.execution_id)), None)
    if found is not None:
        st.session_state[state.APPROVAL_PICK] = found
    else:
        not_waiting(ref)
if not inbox:
    st.caption("Nothing is waiting for your approval.")
    st.stop()

if st.session_state.get(state.APPROVAL_PICK) not in items:
    st.session_state.pop(state.APPROVAL_PICK, None)  # decided or gone: open the most urgent instead
picked = st.selectbox(
    f"Review ({len(inbox)}{'+' if len(inbox) == LIMIT else ''} waiting, most urgent first)",
    list(items),
    index=0,
    key=state.APPROVAL_PICK,
    format_func=lambda key: item_label(items[key]),
    on_change=address_the_pick,
)
item = items[picked]
if (view := attempt(core.get_execution, who, item.execution_id)) is not None:
    review_facts(item, view.execution_limit_s)
    if item.kind == "gate":
        st.info(md_text(f"Level 3: step {item.step_index} ({item.step_name} on {item.step_target}) waits for your go."))
    if view.description:
        st.text(view.description)  # the requester's words, as text: only the steps below are what runs
    # The decision above the steps, so Approve is on the first screen however long the plan (issue 16 item 7):
    # the approver reads the steps below it; a form, so nothing is decided until a button is pressed.
    ask_password = core.needs_reauthentication(view.approval_level)
    decision = decision_form(who, view, ask_password=ask_password, gate=item.step_index)
    what_runs(view, show_limit=False)  # the running time is in the facts line
    ex.approvals_table(view)
    if decision is not None:
        done: core.ExecutionView | None = None
        deciding: core.Principal | None = who
        if decision.approve and ask_password:
            deciding = confirmed(decision.password)
        if deciding is None:
            pass
        elif decision.approve and item.step_index is not None:
            done = attempt(core.approve_gate, deciding, view.execution_id, item.step_index, comment=decision.comment)
        elif decision.approve:
            done = attempt(
                core.approve, deciding, view.execution_id, comment=decision.comment, plan_hash_seen=view.plan_hash
            )
        else:
            done = attempt(core.reject, who, view.execution_id, comment=decision.comment)
        if done is not None:
            verb = "Approved" if decision.approve else "Rejected"
            succeed(f"{verb} {done.name} ({done.execution_id[:8]}); it is now {done.status}.", after_rerun=True)
            st.rerun()
