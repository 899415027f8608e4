"""Rerun makes a new execution (issue 16 item 4), on both databases: within the idempotency window that used to
hand back the old one, with a fresh key, linked to the old one, and approved anew like any submit."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select

from core import ExecutionStatus, approve, get_execution, list_events, principal, rerun, submit
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
