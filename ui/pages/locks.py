"""Locks and workers: who holds which asset since when and who waits; the workers and their heartbeats."""

from __future__ import annotations

import streamlit as st

import core
from ui.components.feedback import attempt
from ui.components.identity import signed_in
from ui.components.tables import views_table

who = signed_in()
st.title("Locks and workers")
st.subheader("Asset locks")
views_table(attempt(core.list_locks, who) or [], empty="No asset is locked.")
st.subheader("Workers")
views_table(
    attempt(core.list_workers, who) or [],
    ["host", "pid", "kind", "threads", "last_seen_at", "current_execution_id", "current_step_index"],
    empty="No worker has a heartbeat.",
)
