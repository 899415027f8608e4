"""The Admin page's Change windows tab: whether the tenant is open now, its rules as YAML to edit (mode and the
wait's bound as fields), and the override of a held execution (asked by one admin, confirmed by another)."""

from __future__ import annotations

import streamlit as st

import core
from core import Principal
from ui import state
from ui.components.feedback import attempt, succeed
from ui.components.tables import views_table, when

MODES = ["wait", "refuse"]
EXAMPLE = """windows:
  - {days: [mon..fri], start: "22:00", end: "04:00", tz: Europe/Paris}
blackouts:
  - {from: "2026-12-24T00:00:00+01:00", to: "2026-12-27T00:00:00+01:00"}
"""


def change_windows(who: Principal) -> None:
    """The rules and their editor, then the overrides of executions that have not ended and the override form."""
    key = state.ADMIN_WINDOWS_FIELD
    current = attempt(core.get_change_windows, who)
    if current is None:
        return
    if not current.windows and not current.blackouts:
        st.info("No change windows: modify and deploy plans start whenever they are approved.")
    elif current.open_now:
        st.success("Open now: modify and deploy plans on untagged assets may start.")
    else:
        st.warning(f"Closed now for untagged assets; next opening {when(current.next_opening)}.")
    rules = {"windows": current.windows, "blackouts": current.blackouts}
    with st.form("windows_form"):  # kept on an error, so a typo is fixed, not retyped
        mode_col, wait_col = st.columns(2)
        mode = mode_col.radio(
            "Outside the windows",
            MODES,
            index=MODES.index(current.mode),
            horizontal=True,
            key=f"{key}.mode",
            help="wait: queue the plan until a window opens (bounded); refuse: refuse the submit, naming the opening.",
        )
        max_wait = wait_col.number_input(
            "Longest wait (s)", min_value=1, max_value=30 * 86400, value=current.max_wait_s, key=f"{key}.max_wait"
        )
        text = st.text_area(
            "Windows and blackouts (YAML)",
            value=core.plan_yaml(rules) if current.windows or current.blackouts else EXAMPLE,
            height=200,
            key=f"{key}.rules",
            help='README: Change windows. Quote times ("22:00"); `tags: [web]` limits a rule to those assets.',
        )
        save = st.form_submit_button("Save change windows", type="primary")
    if save:
        document = f"{text}\nmode: {mode}\nmax_wait_s: {int(max_wait)}\n"
        if attempt(core.set_change_windows, who, document) is not None:
            succeed("Change windows saved.", after_rerun=True)
            st.rerun()
    st.markdown("**Overrides** (two admins, neither the requester)")
    views_table(
        attempt(core.list_window_overrides, who) or [],
        ["execution_id", "requested_by", "reason", "confirmed_by", "confirmed_at", "active"],
        empty="No overrides.",
    )
    with st.form("window_override_form"):
        ref = st.text_input("Execution id (or a unique prefix)", key=f"{key}.execution")
        reason = st.text_input("Reason", key=f"{key}.reason")
        override = st.form_submit_button("Ask for or confirm the override")
    if override and (full := attempt(core.resolve_execution_id, who, ref.strip())) is not None:
        done = attempt(core.override_change_window, who, full, reason)
        if done is not None:
            said = "overridden" if done.active else "override requested; a second admin must confirm"
            succeed(f"Execution {full[:8]}: {said}.", after_rerun=True)
            st.rerun()
