"""Dashboard: how the tenant's work is going: success, run times against the policy, SLA breaches, queue
wait, DLQ depth, approvals waiting, executions over time, and dry-run beside live (the dark launch); what
runs now and what failed today, each a link; the tiles link to the lists behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

import core
from ui import state
from ui.components.executions import EXECUTION_PARAM
from ui.components.feedback import attempt
from ui.components.identity import signed_in
from ui.components.status import colour

EXECUTIONS, DLQ, APPROVALS = "ui/pages/executions.py", "ui/pages/dlq.py", "ui/pages/approvals.py"
STATUS_PARAM = "status"  # /executions?status=failed: the Executions list, filtered (ui/pages/executions.py)
LISTED = 8  # rows of "Running now" and "Failed today"

# At most 7 days: the Dashboard's cost grows with the window (docs/benchmarks.md: 7 days ≈ 0.1 s at 1 M rows).
WINDOWS = {"1 hour": timedelta(hours=1), "24 hours": timedelta(hours=24), "7 days": timedelta(days=7)}


def seconds(value: float | None) -> str:
    """A duration for a metric tile ("-" when there is none)."""
    return "-" if value is None else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def execution_links(rows: list[core.ExecutionSummary], empty: str) -> None:
    """Each execution as a link to its detail; ``empty`` when there are none."""
    if not rows:
        st.caption(empty)
    for row in rows:
        st.page_link(
            EXECUTIONS,
            label=f"{row.name} · {row.status} · {row.requested_by} · {row.execution_id[:8]}",
            query_params={EXECUTION_PARAM: row.execution_id},
        )


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
    links = st.columns(6)
    links[0].page_link(EXECUTIONS, label="All executions", icon=":material/list:")
    links[2].page_link(
        EXECUTIONS, label="Timed out", icon=":material/timer_off:", query_params={STATUS_PARAM: "timeout"}
    )
    # Only to pages the role has (streamlit_app.py's PAGES): operators see the DLQ, approvers the inbox.
    if who.role.rank >= core.Role.OPERATOR.rank:
        links[4].page_link(DLQ, label="Open the DLQ", icon=":material/report:")
    if who.role.rank >= core.Role.APPROVER.rank:
        links[5].page_link(APPROVALS, label="Open the inbox", icon=":material/inbox:")
    if view.sampled:
        st.caption("Percentiles from a bounded sample (SQLite); PostgreSQL computes them exactly.")

    running_col, failed_col = st.columns(2)
    with running_col:
        st.subheader("Running now")
        running = attempt(core.list_executions, who, status=core.ExecutionStatus.RUNNING, limit=LISTED) or []
        execution_links(running, "Nothing is running.")
        if len(running) == LISTED:
            st.page_link(EXECUTIONS, label="All running", query_params={STATUS_PARAM: "running"})
    with failed_col:
        st.subheader("Failed today")
        day_ago = datetime.now(UTC) - timedelta(hours=24)
        bad = [core.ExecutionStatus.FAILED, core.ExecutionStatus.TIMEOUT]
        failed = attempt(core.list_executions, who, status=bad, created_after=day_ago, limit=LISTED) or []
        execution_links(failed, "Nothing failed in the last 24 hours.")
        if len(failed) == LISTED:
            st.page_link(EXECUTIONS, label="All failed", query_params={STATUS_PARAM: "failed"})

    st.subheader("Executions over time")
    if view.total:
        hours = {
            "hour": [h.hour for h in view.per_hour],
            "completed": [h.completed for h in view.per_hour],
            "failed": [h.failed for h in view.per_hour],
            "other": [h.total - h.completed - h.failed for h in view.per_hour],
        }
        parts = ["completed", "failed", "other"]
        st.bar_chart(hours, x="hour", y=parts, color=[colour(p) for p in parts], stack=True)
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
    statuses = list(view.by_status)
    if statuses:  # one series per status, so that each bar has its status's colour
        series = {s: [view.by_status[s] if s == t else 0 for t in statuses] for s in statuses}
        by_status = {"status": statuses, **series}
        st.bar_chart(by_status, x="status", y=statuses, color=[colour(s) for s in statuses], stack=True)
    else:
        st.caption("No executions in this window.")
