"""Rerun makes a new execution (issue 16 item 4), on both databases: within the idempotency window that used to
hand back the old one, with a fresh key, linked to the old one, and approved anew like any submit."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from core import (
    DlqView,
    ExecutionStatus,
    InvalidInput,
    NotFound,
    PermissionDenied,
    approve,
    get_execution,
    list_dlq,
    list_events,
    principal,
    requeue,
    requeue_with_changes,
    rerun,
    rerun_plan,
    submit,
)
from db.engine import session_scope
from db.tables import Approval, Execution
from tests.engine_support import drive
from tests.factories import noop_plan


def _count(table: type[Execution] | type[Approval]) -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_rerun_of_a_completed_execution_is_a_new_execution_linked_to_it(db: str) -> None:
    alice = principal("alice", "demo")
    old = submit(alice, noop_plan("again"), background=True).execution
    drive(old.execution_id)
    assert get_execution(alice, old.execution_id).status == ExecutionStatus.COMPLETED
    # Submitting the same plan again inside the window returns the old execution (idempotency) ...
    assert submit(alice, noop_plan("again"), background=True).created is False
    # ... a rerun does not: a new row, a new key, the old one linked and left as it was.
    result = rerun(alice, old.execution_id)
    new = result.execution
    assert result.created is True
    assert new.execution_id != old.execution_id
    assert new.idempotency_key != old.idempotency_key
    assert new.rerun_of == old.execution_id and old.rerun_of is None
    assert new.plan_hash == old.plan_hash
    assert _count(Execution) == 2
    assert get_execution(alice, new.execution_id).rerun_of == old.execution_id  # stored, not only returned
    assert get_execution(alice, old.execution_id).status == ExecutionStatus.COMPLETED
    submitted = next(e for e in list_events(alice, new.execution_id) if e.to_status is not None)
    assert old.execution_id in submitted.message
    drive(new.execution_id)
    assert get_execution(alice, new.execution_id).status == ExecutionStatus.COMPLETED
    # A rerun of the rerun is a third execution, linked to the one it reran.
    third = rerun(alice, new.execution_id).execution
    assert third.rerun_of == new.execution_id and _count(Execution) == 3


def test_a_rerun_of_an_approved_plan_waits_for_a_fresh_approval(db: str) -> None:
    alice, bob = principal("alice", "demo"), principal("bob", "demo")
    old = submit(alice, noop_plan("needs-eyes", level=1), background=True).execution
    assert old.status == ExecutionStatus.PENDING_APPROVAL
    approve(bob, old.execution_id)
    drive(old.execution_id)
    assert get_execution(alice, old.execution_id).status == ExecutionStatus.COMPLETED
    new = rerun(alice, old.execution_id).execution
    assert new.status == ExecutionStatus.PENDING_APPROVAL  # bob's approval bound to the old execution only
    assert new.approvals == [] and new.approval_level >= 1
    assert _count(Approval) == 1


# -- edit and rerun; requeue a DLQ entry with changes (issue 16 item 4) ---------------------------------


def _shell_plan(name: str, *commands: str) -> str:
    steps = "".join(
        f"  - {{name: s{i}, action: shell, target: localhost, action_class: modify, params: {{command: '{c}'}}}}\n"
        for i, c in enumerate(commands)
    )
    return f"name: {name}\nsteps:\n{steps}"


def _failed_at_step_1(name: str) -> str:
    """A level-1 plan approved by bob whose second step fails (a modify step: not retried, straight to the DLQ)."""
    alice, bob = principal("alice", "demo"), principal("bob", "demo")
    old = submit(alice, _shell_plan(name, "true", "false", "true"), background=True).execution
    approve(bob, old.execution_id)
    drive(old.execution_id)
    assert get_execution(alice, old.execution_id).status == ExecutionStatus.FAILED
    return old.execution_id


def _entry(execution_id: str) -> DlqView:
    return next(
        d for d in list_dlq(principal("admin", "demo"), include_resolved=True) if d.execution_id == execution_id
    )


def test_a_dlq_entry_requeued_with_changes_is_a_new_execution_of_the_edited_steps(db: str) -> None:
    alice, bob = principal("alice", "demo"), principal("bob", "demo")
    old_id = _failed_at_step_1("fix-me")
    edited = rerun_plan(alice, old_id, from_step=_entry(old_id).step_index or 0)
    assert [(s["name"], s["target"]) for s in edited["steps"]] == [("s1", "localhost"), ("s2", "localhost")]
    edited["steps"][0]["params"]["command"] = ["true"]  # the fix
    result = requeue_with_changes(alice, old_id, edited, comment="the flag was wrong")
    new = result.execution
    assert result.created and new.rerun_of == old_id
    # Its hash is new, so bob's approval of the old plan does not carry over.
    assert new.plan_hash != get_execution(alice, old_id).plan_hash
    assert new.status == ExecutionStatus.PENDING_APPROVAL and new.approvals == []
    entry = _entry(old_id)
    assert entry.resolution == "superseded" and entry.resolved_at is not None
    assert entry.comment == f"requeued with changes as {new.execution_id}: the flag was wrong"
    superseded = [e for e in list_events(alice, old_id) if e.kind == "dlq_superseded"]
    assert len(superseded) == 1 and new.execution_id in superseded[0].message
    approve(bob, new.execution_id)
    drive(new.execution_id)
    done = get_execution(alice, new.execution_id)
    assert done.status == ExecutionStatus.COMPLETED and [s.name for s in done.steps] == ["s1", "s2"]
    old = get_execution(alice, old_id)  # left as it was: failed at step 1, step 0 done once
    assert old.status == ExecutionStatus.FAILED
    assert [s.status for s in old.steps] == ["completed", "failed", "pending"]
    with pytest.raises(NotFound):  # the entry is closed: no second decision
        requeue(alice, old_id)


def test_requeue_with_a_plan_that_does_not_validate_writes_nothing_and_keeps_the_entry_open(db: str) -> None:
    alice = principal("alice", "demo")
    old_id = _failed_at_step_1("still-broken")
    before = _count(Execution)
    edited = rerun_plan(alice, old_id, from_step=1)
    edited["steps"][0]["target"] = "no-such-host"
    with pytest.raises(InvalidInput) as refused:
        requeue_with_changes(alice, old_id, edited)
    assert "steps[0].target" in str(refused.value)
    assert _count(Execution) == before and _entry(old_id).resolved_at is None
    assert not [e for e in list_events(alice, old_id) if e.kind == "dlq_superseded"]


def test_only_the_requester_or_an_admin_of_the_tenant_requeues_with_changes(db: str) -> None:
    old_id = _failed_at_step_1("theirs")
    edited = rerun_plan(principal("alice", "demo"), old_id, from_step=1)
    with pytest.raises(PermissionDenied):
        requeue_with_changes(principal("dave", "demo"), old_id, edited)  # a viewer
    with pytest.raises(NotFound):
        requeue_with_changes(principal("mallory", "globex"), old_id, edited)  # another tenant: not even seen
    with pytest.raises(NotFound):
        rerun_plan(principal("mallory", "globex"), old_id)
    assert _entry(old_id).resolved_at is None
    assert requeue_with_changes(principal("admin", "demo"), old_id, edited).execution.rerun_of == old_id


def test_edit_and_rerun_submits_the_edited_plan_linked_to_the_old_one(db: str) -> None:
    alice = principal("alice", "demo")
    old = submit(alice, noop_plan("edit-me"), background=True).execution
    drive(old.execution_id)
    edited = rerun_plan(alice, old.execution_id)
    edited["name"] = "edited"
    new = rerun(alice, old.execution_id, plan=edited).execution
    assert (new.name, new.rerun_of) == ("edited", old.execution_id)
    with pytest.raises(InvalidInput):
        rerun_plan(alice, old.execution_id, from_step=5)
