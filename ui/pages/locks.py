"""Locks and workers: who holds which asset since when and who waits; the workers and their heartbeats;
the queue per SLA class."""

from __future__ import annotations

import streamlit as st

import core
from ui.components.feedback import attempt
from ui.components.identity import signed_in
from ui.components.tables import views_table, when

who = signed_in()
st.title("Locks and workers")
st.subheader("Queue by SLA class")
views_table(attempt(core.queue_depths, who) or [], ["sla_class", "waiting", "running", "parked"])
st.caption("waiting: ready or backing off · running: leased by a worker · parked: waiting for an asset lock")
st.subheader("Asset locks")
views_table(attempt(core.list_locks, who) or [], empty="No asset is locked.")
st.subheader("Workers")
workers = attempt(core.list_workers, who) or []
if workers:
    st.dataframe(
        [
            {
                "host": w.host,
                "pid": w.pid,
                "kind": w.kind,
                "threads": w.threads,
                "heartbeat_age": f"{w.heartbeat_age_s:.0f} s",
                "last_seen_at": when(w.last_seen_at),
                "current_execution_id": w.current_execution_id or "",
                "current_step_index": w.current_step_index,
            }
            for w in workers
        ],
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("No worker has a heartbeat.")
