"""Dead-letter queue: failed work waiting for a decision. Requeue (confirmed) or discard (with a comment),
one entry or several at once; each outcome is reported on its own line."""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import executions as ex
from ui.components.feedback import attempt, show_notices, succeed, succeeded
from ui.components.identity import signed_in
from ui.components.tables import pager, views_table

PAGE_SIZE = 100
COLUMNS = ["execution_id", "execution_name", "requested_by", "status", "reason", "step_index", "attempts",
           "last_error", "created_at", "resolution", "comment"]  # fmt: skip


def address_the_pick() -> None:
    picked = st.session_state.get(state.DLQ_PICK) or []
    ex.address(picked[0] if len(picked) == 1 else None, state.DLQ_LINKED)


who = signed_in()
st.title("Dead-letter queue")
show_notices()
show_resolved = st.toggle("Show resolved entries too", key=state.DLQ_SHOW_RESOLVED)
page = state.dlq_page()
# One row more than a page tells whether there is a next page.
rows = attempt(core.list_dlq, who, include_resolved=show_resolved, limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE) or []
entries = rows[:PAGE_SIZE]
views_table(entries, COLUMNS, empty="The dead-letter queue is empty.")
if page or len(rows) > PAGE_SIZE:
    pager(
        page,
        len(rows) > PAGE_SIZE,
        previous=lambda: state.set_dlq_page(page - 1),
        following=lambda: state.set_dlq_page(page + 1),
    )

open_entries = [e for e in entries if e.resolved_at is None]
if open_entries:
    st.subheader("Decide")
    labels = {e.execution_id: f"{e.execution_name} · {e.reason} · {e.execution_id[:8]}" for e in open_entries}
    # /dlq?execution=<id>: a link (a notification, a chat message) opens the entry picked.
    if (ref := ex.linked_ref(state.DLQ_LINKED)) is not None:
        found = next((i for i in labels if ex.matches(ref, i)), None)
        if found is not None:
            st.session_state[state.DLQ_PICK] = [found]
        else:
            st.info("The execution in this link has no open entry on this page of the dead-letter queue.")
    picked = st.multiselect(
        "Entries", list(labels), format_func=labels.__getitem__, key=state.DLQ_PICK, on_change=address_the_pick
    )
    comment = st.text_area("Comment", key=state.DLQ_COMMENT, height=80, help="Required to discard.")
    confirm = st.checkbox("Yes, run the selected executions again", key=state.DLQ_CONFIRM)
    requeue_col, discard_col = st.columns(2)
    wants_requeue = requeue_col.button("Requeue", type="primary", icon=":material/replay:", disabled=not picked)
    wants_discard = discard_col.button("Discard", icon=":material/delete:", disabled=not picked)
    if wants_requeue and not confirm:
        st.warning("Tick the confirmation first: requeued work runs again.")
    elif wants_requeue or wants_discard:
        done = 0
        for execution_id in picked:
            if wants_requeue:
                done += succeeded(core.requeue, who, execution_id, comment=comment.strip() or None)
            else:
                done += succeeded(core.discard, who, execution_id, comment=comment)
        verb = "Requeued" if wants_requeue else "Discarded"
        if done == len(picked):  # all went through: show the queue as it is now
            succeed(f"{verb} {done} of {len(picked)}.", after_rerun=True)
            st.rerun()
        elif done:  # keep the errors above on screen
            succeed(f"{verb} {done} of {len(picked)}; the others are listed with their reason above.")

    if len(picked) == 1:
        with st.expander("Requeue with changes"):
            chosen = picked[0]
            st.caption(
                "The steps that did not complete, as a plan to edit: it runs as a new execution linked to this "
                "one, and needs a new approval (its hash is new); the entry is closed as superseded."
            )
            key = f"{state.DLQ_EDIT_PLAN}.{chosen}"
            if key not in st.session_state:
                entry = next(e for e in open_entries if e.execution_id == chosen)
                plan = attempt(core.rerun_plan, who, chosen, from_step=entry.step_index or 0)
                st.session_state[key] = core.plan_yaml(plan) if plan is not None else ""
            edited = st.text_area("Plan (YAML or JSON)", key=key, height=260)
            if st.button("Submit as a new execution", key=f"{state.DLQ_EDIT_SUBMIT}.{chosen}", icon=":material/send:"):
                result = attempt(core.requeue_with_changes, who, chosen, edited, comment=comment.strip() or None)
                if result is not None:
                    new = result.execution
                    state.focus_execution(new.execution_id)
                    st.session_state.pop(key, None)
                    succeed(
                        f"Requeued with changes as a new execution, {new.execution_id[:8]}: {new.status}.",
                        after_rerun=True,
                    )
                    st.rerun()
