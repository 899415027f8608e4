"""Approvals (DESIGN §3.6, §9): who may approve, how many, expiry, and the plan-hash binding."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from core import (
    Conflict,
    DeadlineExceeded,
    PermissionDenied,
    SafetyRefused,
    approve,
    get_execution,
    list_events,
    principal,
    reject,
    set_member,
    submit,
)
from db.clock import utcnow
from db.engine import session_scope
from db.enums import Role
from db.tables import Execution, QueueItem
from tests.factories import plan_text


def _submit(level_class: str = "modify", level: int | None = None) -> str:
    text = plan_text("p", action_class=level_class)
    if level is not None:
        text = text.replace("steps:", f"approval_level: {level}\nsteps:")
    return submit(principal("alice", "demo"), text).execution.execution_id


def test_modify_plan_needs_one_approval_then_queues(db: str) -> None:
    """Level 1: bob's approval moves it pending_approval → approved → queued, with a queue row."""
    execution_id = _submit("modify")
    assert get_execution(principal("alice", "demo"), execution_id).status == "pending_approval"
    view = approve(principal("bob", "demo"), execution_id, comment="looks fine")
    assert view.status == "queued"
    assert [(a.approver, a.decision, a.comment) for a in view.approvals] == [("bob", "approved", "looks fine")]
    with session_scope() as session:
        assert len(session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).all()) == 1
    kinds = [
        (e.from_status, e.to_status)
        for e in list_events(principal("alice", "demo"), execution_id)
        if e.kind == "status"
    ]
    assert kinds == [(None, "pending_approval"), ("pending_approval", "approved"), ("approved", "queued")]


def test_requester_can_never_approve_even_as_admin(db: str) -> None:
    """Self-approval is refused, whatever the requester's role."""
    admin = principal("admin", "demo")
    execution_id = submit(admin, plan_text(action_class="modify")).execution.execution_id
    with pytest.raises(PermissionDenied, match="own request"):
        approve(admin, execution_id)
    assert get_execution(admin, execution_id).status == "pending_approval"


def test_operator_and_viewer_cannot_approve(db: str) -> None:
    """Only approver or admin may decide; alice (operator) and dave (viewer) are refused."""
    execution_id = _submit("modify")
    for name in ("alice", "dave"):
        with pytest.raises(PermissionDenied):
            approve(principal(name, "demo"), execution_id)


def test_level_two_needs_two_distinct_approvers(db: str) -> None:
    """Deploy → level 2: one approval is not enough, the same person twice is refused, a second person approves."""
    execution_id = _submit("deploy")
    bob, carol = principal("bob", "demo"), principal("carol", "demo")
    assert approve(bob, execution_id).status == "pending_approval"
    with pytest.raises(Conflict, match="already decided"):
        approve(bob, execution_id)
    view = approve(carol, execution_id)
    assert view.status == "queued"
    assert view.approvals_required == 2
    assert sorted(a.approver for a in view.approvals) == ["bob", "carol"]


def test_level_three_needs_two_approvers(db: str) -> None:
    """Requested level 3 on a read plan: two approvers, never lowered by the plan's read class."""
    execution_id = _submit("read", level=3)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.approval_level, view.approvals_required) == (3, 2)
    approve(principal("bob", "demo"), execution_id)
    assert approve(principal("admin", "demo"), execution_id).status == "queued"


def test_rejection_ends_it(db: str) -> None:
    """One eligible rejection ends the execution as rejected; later approvals are conflicts."""
    execution_id = _submit("deploy")
    approve(principal("bob", "demo"), execution_id)
    assert reject(principal("carol", "demo"), execution_id, comment="not today").status == "rejected"
    with pytest.raises(Conflict):
        approve(principal("admin", "demo"), execution_id)


def test_expired_approval_window(db: str) -> None:
    """After the policy's approval window the execution expires instead of being approved."""
    execution_id = _submit("modify")
    with session_scope() as session:
        session.execute(
            update(Execution)
            .where(Execution.id == execution_id)
            .values(approval_expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(DeadlineExceeded):
        approve(principal("bob", "demo"), execution_id)
    assert get_execution(principal("alice", "demo"), execution_id).status == "expired"


def test_approval_window_comes_from_the_policy(db: str) -> None:
    """pending executions expire after the approval_s of their (sla, action class) row: fast/modify = 600 s."""
    execution_id = _submit("modify")
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.sla_class == "fast" and view.approval_expires_at is not None
    delta = (view.approval_expires_at - view.created_at).total_seconds()
    assert delta == pytest.approx(600, abs=1)


def test_approval_of_a_different_plan_hash_is_refused(db: str) -> None:
    """An approver who reviewed another hash than the current one is refused and nothing is recorded."""
    execution_id = _submit("modify")
    with pytest.raises(Conflict, match="plan changed"):
        approve(principal("bob", "demo"), execution_id, plan_hash_seen="0" * 64)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "pending_approval" and view.approvals == []


def test_tampered_plan_is_refused(db: str) -> None:
    """If the stored plan no longer matches its hash, approval is refused as a safety violation."""
    execution_id = _submit("modify")
    with session_scope() as session:
        session.execute(
            update(Execution).where(Execution.id == execution_id).values(plan_json='{"name":"evil","steps":[]}')
        )
    with pytest.raises(SafetyRefused) as info:
        approve(principal("bob", "demo"), execution_id)
    assert info.value.reason == "plan_hash_mismatch"


def test_earlier_approval_stops_counting_when_the_approver_loses_the_role(db: str) -> None:
    """An approval counts only while its approver still holds approver/admin (checked when counting)."""
    execution_id = _submit("deploy")
    approve(principal("bob", "demo"), execution_id)
    set_member(principal("admin", "demo"), "bob", Role.VIEWER)
    view = approve(principal("carol", "demo"), execution_id)
    assert view.status == "pending_approval"  # bob's approval no longer counts: 1 of 2


def test_level_zero_is_approved_without_anyone(db: str) -> None:
    """A read plan with no requested level skips approval: queued at once in background mode."""
    view = submit(principal("alice", "demo"), plan_text(action_class="read"), background=True).execution
    assert (view.approval_level, view.status, view.approvals_required) == (0, "queued", 0)
