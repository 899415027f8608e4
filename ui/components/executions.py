"""Executions: filters, the list, the pick, and the detail (summary, approvals, steps, events, cancel)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from core import MIN_ID_PREFIX, EventView, ExecutionStatus, ExecutionSummary, ExecutionView, Principal, Role
from ui import state
from ui.components.plain import md_text
from ui.components.tables import views_table, when

# DESIGN §4's terminal statuses. core keeps its FSM table private (core.fsm.TERMINAL); the UI uses this
# only to decide whether to poll and whether to offer Cancel. core.cancel makes the real decision.
FINISHED = frozenset(
    {
        ExecutionStatus.REJECTED,
        ExecutionStatus.EXPIRED,
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.PARTIAL,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMEOUT,
    }
)
LIST_COLUMNS = [
    "execution_id",
    "name",
    "status",
    "requested_by",
    "action_class",
    "approval_level",
    "run_mode",
    "created_at",
]


def is_active(status: str) -> bool:
    """True while the execution can still change by itself (worth polling)."""
    return ExecutionStatus(status) not in FINISHED


@dataclass(frozen=True)
class ExecutionFilters:
    """What the user asked the list to show (dates as a half-open UTC range)."""

    statuses: list[ExecutionStatus]
    requester: str | None
    search: str | None
    asset: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def execution_filters(on_change: Callable[[], None]) -> ExecutionFilters:
    """Status, requester, asset, text and date filters; ``on_change`` runs when any of them changes."""
    status_col, requester_col, asset_col, search_col, dates_col = st.columns([3, 1, 1, 1, 2])
    statuses = status_col.multiselect(
        "Status", list(ExecutionStatus), key=state.FILTER_STATUS, on_change=on_change, format_func=str
    )
    requester = requester_col.text_input("Requested by", key=state.FILTER_REQUESTER, on_change=on_change)
    asset = asset_col.text_input("Asset", key=state.FILTER_ASSET, on_change=on_change)
    search = search_col.text_input("Search name or id", key=state.FILTER_SEARCH, on_change=on_change)
    dates = dates_col.date_input("Created (UTC days)", value=(), key=state.FILTER_DATES, on_change=on_change)
    picked = [d for d in (dates if isinstance(dates, tuple) else (dates,)) if isinstance(d, date)]
    after = datetime.combine(min(picked), time.min, tzinfo=UTC) if picked else None
    before = datetime.combine(max(picked), time.min, tzinfo=UTC) + timedelta(days=1) if picked else None
    return ExecutionFilters(
        list(statuses), requester.strip() or None, search.strip() or None, asset.strip() or None, after, before
    )


def execution_table(rows: Sequence[ExecutionSummary], *, empty: str = "No executions match.") -> None:
    """The list of executions."""
    views_table(rows, LIST_COLUMNS, empty=empty)


def execution_picker(
    rows: Sequence[ExecutionSummary],
    *,
    key: str,
    label: str = "Open execution",
    on_change: Callable[[], None] | None = None,
) -> str | None:
    """A choice among ``rows``; returns the picked execution id."""
    labels = {r.execution_id: f"{r.name} · {r.status} · {r.requested_by} · {r.execution_id[:8]}" for r in rows}
    picked: str | None = st.selectbox(
        label,
        list(labels),
        index=None,
        key=key,
        format_func=labels.__getitem__,
        placeholder="Pick one",
        on_change=on_change,
    )
    return picked


EXECUTION_PARAM = "execution"  # /executions?execution=<id>: the address of one execution
EXECUTIONS_PATH = "/executions"


def address_the_pick() -> None:
    """Put the execution just picked into the address (so reload, bookmark and share open it)."""
    picked = st.session_state.get(state.EXECUTION_PICK)
    st.session_state[state.LINKED_EXECUTION] = picked
    if isinstance(picked, str):
        st.query_params[EXECUTION_PARAM] = picked
    else:
        st.query_params.pop(EXECUTION_PARAM, None)


def linked_ref(seen_key: str) -> str | None:
    """The execution id (or prefix) the address names, the first run it names it; None after (or without).

    A page opens what a new address names once, then leaves the operator's picks alone: ``seen_key`` keeps the
    last one looked at.
    """
    ref = st.query_params.get(EXECUTION_PARAM)
    if not ref or st.session_state.get(seen_key) == ref:
        return None
    st.session_state[seen_key] = ref
    return ref.strip().lower()


def address(execution_id: str | None, seen_key: str) -> None:
    """Put ``execution_id`` (None: none) into this page's address, so reload and bookmarks keep it."""
    st.session_state[seen_key] = execution_id
    if execution_id is None:
        st.query_params.pop(EXECUTION_PARAM, None)
    else:
        st.query_params[EXECUTION_PARAM] = execution_id


def matches(ref: str, execution_id: str) -> bool:
    """True if ``ref`` is ``execution_id`` or a prefix of it long enough to name one (6+, as everywhere)."""
    return len(ref) >= MIN_ID_PREFIX and execution_id.startswith(ref)


def execution_address(execution_id: str) -> str:
    """The path that opens ``execution_id`` (relative to the console's root)."""
    return f"{EXECUTIONS_PATH}?{EXECUTION_PARAM}={execution_id}"


def execution_link(execution_id: str) -> None:
    """The execution's address, to copy into a chat message or a ticket (it carries no session)."""
    root = (st.context.url or "").split("?", 1)[0].rstrip("/")
    for page in ("/executions", "/approvals", "/dlq", "/dashboard", "/sign-in"):  # the page the user is on
        root = root.removesuffix(page)
    st.caption("Link to this execution (sign-in required to open it)")
    st.code(root + execution_address(execution_id), language=None)


def execution_summary(view: ExecutionView) -> None:
    """Status, derived classes, times, plan hash and error of one execution."""
    st.subheader(f"{md_text(view.name)} · {view.status}")
    if view.description:
        st.text(view.description)
    cols = st.columns(4)
    cols[0].metric("Status", view.status.replace("_", " "))  # "pending approval": wraps at its space
    cols[1].metric("Approval level", view.approval_level, help=f"{view.approvals_required} approval(s) required")
    cols[2].metric("Action class", view.action_class)
    cols[3].metric("SLA class", view.sla_class, help="workers take higher priority first (README: priority)")
    facts = {
        "Execution id": view.execution_id,
        "Requested by": view.requested_by,
        "Mode": f"{view.execution_mode}, {view.run_mode}",
        "Priority": str(view.priority),  # the order workers take work in (core/priority.py)
        # The execution's run (a DLQ requeue starts the next); attempts are the steps' (one count: the same in
        # the timeline, the events, the DLQ entry and `opsconductor show`).
        "Run": str(view.attempt) + (" (requeued from the DLQ)" if view.attempt > 1 else ""),
        "Created": when(view.created_at),
        "Started": when(view.started_at),
        "Finished": when(view.finished_at),
    }
    if view.rerun_of:
        facts["Rerun of"] = view.rerun_of
    if view.approval_expires_at is not None and view.status == ExecutionStatus.PENDING_APPROVAL:
        facts["Approval expires"] = when(view.approval_expires_at)
    st.markdown("  \n".join(f"**{name}:** {md_text(value or '-')}" for name, value in facts.items()))
    st.caption("Plan hash (SHA-256)")
    st.code(view.plan_hash, language=None)
    if view.cancel_requested_at is not None and view.status == ExecutionStatus.RUNNING:
        st.info(f"Cancel requested at {when(view.cancel_requested_at)}; the worker is stopping it.")
    # The error is the failure banner's (ui/components/step_output.py), shown by the page with the output.


WINDOW_EVENTS = frozenset({"window_waiting", "window_overridden"})


def window_wait(view: ExecutionView, events: Sequence[EventView]) -> None:
    """A queued execution held by its change windows: until when (the latest ``window_waiting`` event), or that
    its override was given."""
    if view.status != ExecutionStatus.QUEUED:
        return
    latest = next((e for e in reversed(events) if e.kind in WINDOW_EVENTS), None)
    if latest is None:
        return
    if latest.kind == "window_waiting":
        st.info(f"{latest.message[:1].upper()}{latest.message[1:]}.", icon=":material/schedule:")
    else:
        st.info("The change window was overridden by two admins: it starts as soon as a worker takes it.")


def approvals_table(view: ExecutionView) -> None:
    """Who decided what on this execution."""
    st.markdown(f"**Approvals** ({view.approvals_required} required)")
    views_table(view.approvals, ["approver", "decision", "comment", "created_at"], empty="No decisions yet.")


def event_log(events: Sequence[EventView]) -> None:
    """The audit trail, oldest first."""
    st.markdown("**Events**")
    views_table(
        events, ["created_at", "kind", "from_status", "to_status", "step_index", "actor", "message"], empty="No events."
    )


def may_cancel(who: Principal, view: ExecutionView) -> bool:
    """Whether to offer Cancel: operators for their own, admins for any, while it can still end (core decides)."""
    if not is_active(view.status) or view.cancel_requested_at is not None:
        return False
    if who.role is Role.ADMIN:
        return True
    return who.role.rank >= Role.OPERATOR.rank and view.requested_by == who.username


def cancel_request(view: ExecutionView) -> str | None:
    """A reason field and a Cancel button that asks to confirm; returns the reason ("" for none) once confirmed.

    Two steps, on purpose: Cancel stops a running step (its process is killed), so one stray click must not.
    """
    execution_id = view.execution_id
    asking = f"{state.CANCEL_CONFIRM}.{execution_id}"
    reason_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    reason = reason_col.text_input("Reason for cancelling (optional)", key=f"{state.CANCEL_REASON}.{execution_id}")
    if not st.session_state.get(asking):
        button_col.button(
            "Cancel execution",
            key=f"{state.CANCEL_BUTTON}.{execution_id}",
            icon=":material/cancel:",
            on_click=st.session_state.__setitem__,
            args=(asking, True),
        )
        return None
    what = "stops its running step and skips the rest" if view.status == ExecutionStatus.RUNNING else "ends it now"
    st.warning(f"Cancel {md_text(view.name)} ({execution_id[:8]})? This {what}; it cannot be undone.")
    yes_col, no_col = st.columns(2)
    if yes_col.button("Yes, cancel it", key=f"{state.CANCEL_YES}.{execution_id}", type="primary"):
        st.session_state.pop(asking, None)
        return reason.strip()
    no_col.button(
        "Keep it", key=f"{state.CANCEL_NO}.{execution_id}", on_click=st.session_state.pop, args=(asking, None)
    )
    return None
