"""Submit: start from a runbook, paste or upload a plan, see it validated and what the server derives as
you type, dry-run it, submit it, or save it to the tenant's runbook library."""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components.feedback import attempt, quietly, show_notices, succeed
from ui.components.identity import signed_in
from ui.components.notify_me import notify_me, subscribed
from ui.components.plain import md_text
from ui.components.plan_inputs import inputs_form
from ui.components.plans import (
    dry_run_report,
    plan_editor,
    plan_preview,
    runbook_facts,
    runbook_picker,
    submit_outcome,
)

EXECUTIONS = "ui/pages/executions.py"

who = signed_in()
st.title("Submit a plan")
show_notices()
picked = runbook_picker(attempt(core.list_runbooks, who) or [])
if picked is not None:
    runbook_facts(picked, attempt(core.list_runbook_versions, who, picked.name) or [])
if (rerun_of := state.rerun_of()) is not None:
    note, clear = st.columns([5, 1])
    note.info(f"Editing a rerun of execution {rerun_of[:8]}: Submit makes a new execution linked to it.")
    if clear.button("Not a rerun", icon=":material/link_off:"):
        state.stop_rerun()
        st.rerun()
draft = plan_editor()
has_text = bool(draft.source.strip() if isinstance(draft.source, str) else draft.source)
# A plan (or runbook) that declares inputs gets a form; a declaration that does not validate gets none here:
# the preview below shows its errors, once, with their paths.
declared = quietly(core.declared_inputs, draft.source) if has_text else None
inputs = None
if declared:
    wants_assets = any(i.type == "asset" for i in declared)
    inputs = inputs_form(declared, [a.name for a in attempt(core.list_assets, who) or []] if wants_assets else [])
notify = notify_me(who)
dry_col, submit_col = st.columns(2)
wants_dry_run = dry_col.button("Dry run", icon=":material/science:", width="stretch", disabled=not has_text)
wants_submit = submit_col.button("Submit", type="primary", icon=":material/send:", width="stretch")

# One call per run, so a refusal is shown once (a failed submit is not previewed again below it).
if wants_submit:
    result = None
    if not subscribed(who, notify):
        pass  # said why; nothing submitted
    elif rerun_of is not None:  # Edit and rerun: the edited plan, linked to the execution it came from
        result = attempt(
            core.rerun, who, rerun_of, plan=draft.source, background=draft.background, notify_on_finish=notify.wanted
        )
    else:
        result = attempt(
            core.submit,
            who,
            draft.source,
            background=draft.background,
            inputs=inputs,
            notify_on_finish=notify.wanted,
        )
    if result is not None and rerun_of is not None:
        state.stop_rerun()
    if result is not None:
        if result.created:
            succeed(submit_outcome(result))
        else:
            st.warning(md_text(submit_outcome(result)))
        state.focus_execution(result.execution.execution_id)
        st.page_link(EXECUTIONS, label="Open the execution", icon=":material/open_in_new:")
elif wants_dry_run:
    if (steps := attempt(core.dry_run_plan, who, draft.source, inputs=inputs)) is not None:
        dry_run_report(steps)
elif has_text and (preview := attempt(core.preview, who, draft.source, background=draft.background, inputs=inputs)):
    # Validation as you type: every edit reruns the page, and the server's verdict is shown at once.
    plan_preview(preview)

if isinstance(draft.source, str) and has_text:
    with st.expander("Save to the runbook library"):
        name = st.text_input("Runbook name", key=state.RUNBOOK_NAME)
        description = st.text_input("Description", key=state.RUNBOOK_DESCRIPTION)
        st.caption("A new runbook is yours: only you and the tenant's admins can change or delete it.")
        if st.button("Save runbook", icon=":material/bookmark_add:"):
            saved = attempt(core.save_runbook, who, name, draft.source, description=description)
            if saved is not None:
                succeed(f"Runbook {saved.name} saved as version {saved.version}.")
