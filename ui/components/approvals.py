"""Approving: the decision form for one execution under review."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

import core
from core import ExecutionView, InboxItem, Principal
from ui import state
from ui.components.plain import visible

INBOX_BADGE_MAX = 99
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What the approver decided, with their comment."""

    approve: bool
    comment: str | None
    password: str | None = None  # asked again for high-risk approvals (re-authentication)


def inbox_table(items: Sequence[InboxItem], *, empty: str) -> None:
    """The inbox: what, whose, how risky, who already approved, and how long is left."""
    if not items:
        st.caption(empty)
        return
    rows = [
        {
            "what": item.name if item.kind == "plan" else f"{item.name} · step {item.step_index} ({item.step_name})",
            "requested_by": item.requested_by,
            "risk": f"{item.action_class} · level {item.approval_level} · {item.sla_class}",
            "approved": f"{len(item.approved_by)}/{item.approvals_required}"
            + (f" ({', '.join(item.approved_by)})" if item.approved_by else ""),
            "time_left": _left(item.time_left_s),
            "plan_hash": item.plan_hash[:12],
            "execution_id": item.execution_id,
        }
        for item in items
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def inbox_badge(who: Principal) -> str:
    """ " (N)" for the navigation when N decisions wait for ``who``; "" when none (or the count fails)."""
    try:
        waiting = len(core.approval_inbox(who, limit=INBOX_BADGE_MAX, detail=False))
    except core.CoreError:
        return ""  # e.g. demoted since sign-in: the page itself will say so
    except Exception:  # the badge is a courtesy: it must never break the navigation
        log.exception("console: the approvals badge could not be counted")
        return ""
    if not waiting:
        return ""
    return f" ({waiting}{'+' if waiting == INBOX_BADGE_MAX else ''})"


def item_key(item: InboxItem) -> str:
    """The inbox item's id: the execution id for a plan, ``id:step`` for a step gate."""
    return item.execution_id if item.kind == "plan" else f"{item.execution_id}:{item.step_index}"


def item_label(item: InboxItem) -> str:
    """A unique, readable name for an inbox item (a plan, or one step gate of it)."""
    step = f" · step {item.step_index}" if item.kind == "gate" else ""
    return f"{item.name}{step} · {item.requested_by} · {item.execution_id[:8]}"


def review_facts(item: InboxItem, running_s: int | None = None) -> None:
    """What and who asks (plain text: user text), then risk (with the execution's running time, ``running_s``),
    approvals so far, time left and run mode on one line (markdown, of derived values only: classes, levels,
    counts, durations and modes). Waits for approval, a lock or a gate are not running time."""
    what = item.name if item.kind == "plan" else f"{item.name} · step {item.step_index} ({item.step_name})"
    st.text(f"{visible(what, one_line=True)}  ·  requested by {item.requested_by}  ·  {item.execution_id}")
    running = f", {running_s} s of running time" if running_s is not None else ""
    st.markdown(
        f"**Risk** {item.action_class} · level {item.approval_level} (SLA {item.sla_class}{running}) &nbsp;·&nbsp; "
        f"**Approvals** {len(item.approved_by)}/{item.approvals_required} &nbsp;·&nbsp; "
        f"**Time left** {time_left(item.time_left_s)} &nbsp;·&nbsp; **Run mode** {item.run_mode}"
    )


def time_left(seconds: float | None) -> str:
    """Minutes (or hours and minutes) until the wait ends; "expired" once past, "-" without a deadline."""
    return _left(seconds)


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "expired"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def decision_form(
    who: Principal, view: ExecutionView, *, ask_password: bool = False, gate: int | None = None
) -> Decision | None:
    """One row: a comment (and, for high-risk plans, the password) beside Approve and Reject; the decision once
    clicked. A form, so typing the password is not a rerun and Approve is the one click that decides.

    ``gate``: the step index when the decision is a level-3 step's go rather than the plan's approval.
    """
    if gate is None and any(a.approver == who.username and a.step_index is None for a in view.approvals):
        st.info("You have already decided on this execution; it waits for other approvers.")
        return None
    with st.form(key=f"{state.APPROVAL_FORM}.{view.execution_id}", border=False):
        widths = [4, 3, 1.4, 1.4] if ask_password else [7, 1.4, 1.4]
        cols = st.columns(widths, vertical_alignment="bottom")
        comment = cols[0].text_input(
            "Comment",
            key=f"{state.APPROVAL_COMMENT}.{view.execution_id}",
            placeholder="Comment (optional)",
            label_visibility="collapsed",
        )
        password = None
        if ask_password:
            password = cols[1].text_input(
                "Your password",
                type="password",
                key=f"{state.REAUTH_PASSWORD}.{view.execution_id}",
                placeholder=f"Your password (level {view.approval_level} asks again)",
                label_visibility="collapsed",
            )
        approve = cols[-2].form_submit_button(
            "Approve",
            key=f"{state.APPROVE_BUTTON}.{view.execution_id}",
            type="primary",
            icon=":material/check:",
            width="stretch",
        )
        # A step gate has no reject: withholding the go lets it time out; Cancel on Executions stops it at once.
        reject = gate is None and cols[-1].form_submit_button(
            "Reject", key=f"{state.REJECT_BUTTON}.{view.execution_id}", icon=":material/close:", width="stretch"
        )
    st.caption(f"Approving binds to the plan hash {view.plan_hash[:16]}…; any change to the plan needs a new approval.")
    if approve or reject:
        return Decision(approve=approve, comment=(comment or "").strip() or None, password=password)
    return None
