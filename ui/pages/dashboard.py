"""Dashboard: how the tenant's work is going: success, run times against the policy, SLA breaches, queue
wait, DLQ depth, approvals waiting, executions over time, and dry-run beside live (the dark launch)."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

import core
from ui import state
from ui.components.feedback import attempt
from ui.components.identity import signed_in

# At most 7 days: the Dashboard's cost grows with the window (docs/benchmarks.md: 7 days ≈ 0.1 s at 1 M rows).
WINDOWS = {"1 hour": timedelta(hours=1), "24 hours": timedelta(hours=24), "7 days": timedelta(days=7)}


def seconds(value: float | None) -> str:
    """A duration for a metric tile ("-" when there is none)."""
    return "-" if value is None else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def share(value: float | None) -> str:
    """A rate for a metric tile ("-" when nothing ended)."""
    return "-" if value is None else f"{value:.0%}"


who = signed_in()
st.title("Dashboard")
label = st.segmented_control("Window", list(WINDOWS), default="24 hours", key=state.DASHBOARD_WINDOW) or "24 hours"
view = attempt(core.dashboard, who, since=WINDOWS[label])
if view is not None:
    tiles = st.columns(6)
    tiles[0].metric("Executions", view.total)
    tiles[1].metric("Success rate", share(view.success_rate))
    tiles[2].metric("SLA breaches", view.sla_breaches)
    tiles[3].metric("Queue wait p95", seconds(view.queue_wait_p95_s), help=f"p50 {seconds(view.queue_wait_p50_s)}")
    tiles[4].metric("DLQ open", view.dlq_open)
    tiles[5].metric(
        "Approvals waiting",
        view.approvals_waiting,
        help=f"oldest waits {seconds(view.oldest_approval_age_s)}" if view.approvals_waiting else None,
    )
    if view.sampled:
        st.caption("Percentiles from a bounded sample (SQLite); PostgreSQL computes them exactly.")

    st.subheader("Executions over time")
    if view.total:
        hours = {
            "hour": [h.hour for h in view.per_hour],
            "completed": [h.completed for h in view.per_hour],
            "failed": [h.failed for h in view.per_hour],
            "other": [h.total - h.completed - h.failed for h in view.per_hour],
        }
        st.bar_chart(hours, x="hour", y=["completed", "failed", "other"], stack=True)
    else:
        st.caption("No executions in this window.")

    st.subheader("Run time by SLA class against the policy")
    rows = [
        {
            "sla_class": d.sla_class,
            "action_class": d.action_class,
            "runs": d.runs,
            "p50": seconds(d.p50_s),
            "p95": seconds(d.p95_s),
            "policy limit": seconds(float(d.limit_s)) if d.limit_s else "-",
            "breaches": d.breaches,
        }
        for d in view.durations
    ]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No run has ended in this window.")

    st.subheader("Dry run beside live")
    modes = st.columns(len(view.run_modes) or 1)
    for column, mode in zip(modes, view.run_modes, strict=False):
        column.metric(f"{mode.run_mode}: executions", mode.total)
        column.metric(f"{mode.run_mode}: success rate", share(mode.success_rate), help=f"{mode.ended} ended")

    st.subheader("By status")
    st.bar_chart({"status": list(view.by_status), "executions": list(view.by_status.values())}, x="status")
