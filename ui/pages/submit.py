"""Submit: paste or upload a plan, preview what the server derives from it, then submit it."""

from __future__ import annotations

import streamlit as st

import core
from ui.components.feedback import attempt, succeed
from ui.components.identity import signed_in
from ui.components.plans import plan_editor, plan_preview, submit_outcome

who = signed_in()
st.title("Submit a plan")
draft = plan_editor()
preview_col, submit_col = st.columns(2)
wants_preview = preview_col.button("Preview", icon=":material/visibility:", width="stretch")
wants_submit = submit_col.button("Submit", type="primary", icon=":material/send:", width="stretch")

if wants_preview and (preview := attempt(core.preview, who, draft.source, background=draft.background)):
    plan_preview(preview)
if wants_submit and (result := attempt(core.submit, who, draft.source, background=draft.background)):
    if result.created:
        succeed(submit_outcome(result))
    else:
        st.warning(submit_outcome(result))
