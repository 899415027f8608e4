"""The approval use cases (DESIGN §3.6, §9): approve, reject, and the go for a level-3 step (``approve_gate``).

The rules they apply (who counts, how many it takes, the plan-hash binding) are core/approval_rules.py;
what waits for a decision is core/reads/inbox.py.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core import approval_rules
from core.approval_levels import APPROVALS_REQUIRED
from core.audit import clean_comment, record_event
from core.engine import gates
from core.engine.outbox import enqueue
from core.errors import Conflict, DeadlineExceeded, InvalidInput, NotFound
from core.fsm import transition
from core.identity import rbac
from core.identity.permissions import Permission
from core.reads.executions import build_view, load_execution
from core.schemas import ExecutionView, Principal
from core.transactions import session_scope
from core.usecases.accounts import require_fresh_for_level
from db.clock import utcnow
from db.enums import Decision, ExecutionStatus, StepStatus
from db.tables import Approval, Execution, ExecutionStep


def approve(
    principal: Principal, execution_id: str, *, comment: str | None = None, plan_hash_seen: str | None = None
) -> ExecutionView:
    """Record the principal's approval; once enough distinct approvers agree, the execution is queued.

    Args:
        plan_hash_seen: the hash the approver reviewed (the console passes it); a mismatch is refused.

    Raises:
        PermissionDenied: own request, not an approver in this tenant, or a level that asks for the password
            again and the principal's credential is older than 5 minutes (``reauthenticate`` first).
        Conflict: not pending approval, already approved by this person, or the plan changed.
        DeadlineExceeded: the approval window has passed (the execution is now ``expired``).
        NotFound: no such execution in this tenant.
    """
    return _decide(principal, execution_id, Decision.APPROVED, comment, plan_hash_seen)


def reject(principal: Principal, execution_id: str, *, comment: str | None = None) -> ExecutionView:
    """Reject a pending execution (one eligible approver's rejection ends it). Raises as ``approve``."""
    return _decide(principal, execution_id, Decision.REJECTED, comment, None)


def _decide(
    principal: Principal, execution_id: str, decision: Decision, comment: str | None, seen: str | None
) -> ExecutionView:
    comment = clean_comment(comment)
    if _expire_if_due(principal, execution_id):
        raise DeadlineExceeded(f"execution {execution_id}: the approval window has passed; it is now expired")
    with session_scope() as session:
        execution = lock_for_decision(session, principal.tenant_id, execution_id)
        rbac.require(session, principal, Permission.APPROVE)
        approval_rules.refuse_own_request(execution, principal.user_id, "approve or reject")
        if decision is Decision.APPROVED:
            require_fresh_for_level(principal, execution.approval_level)
        if execution.status != ExecutionStatus.PENDING_APPROVAL:
            raise Conflict(f"execution {execution_id} is {execution.status}, not pending approval")
        approval_rules.verify_plan_hash(execution)
        if seen is not None and seen != execution.plan_hash:
            raise Conflict("the plan changed since you reviewed it; review the current plan and approve again")
        if approval_rules.has_decided(session, execution, principal.user_id):
            raise Conflict(f"{principal.username} has already decided on execution {execution_id}")
        session.add(
            approval_rules.sealed(
                Approval(
                    execution_id=execution.id,
                    tenant_id=execution.tenant_id,
                    approver_id=principal.user_id,
                    decision=decision.value,
                    plan_hash=execution.plan_hash,
                    comment=comment,
                )
            )
        )
        try:
            session.flush()
        except IntegrityError as exc:  # a concurrent click by the same approver
            raise Conflict(f"{principal.username} has already decided on execution {execution_id}") from exc
        if decision is Decision.REJECTED:
            transition(
                session,
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                to=ExecutionStatus.REJECTED,
                expected=ExecutionStatus.PENDING_APPROVAL,
                actor=principal.username,
                message=comment or "rejected",
            )
        else:
            count = len(approval_rules.valid_approvers(session, execution))
            needed = APPROVALS_REQUIRED[execution.approval_level]
            if count >= needed:
                transition(
                    session,
                    execution_id=execution.id,
                    tenant_id=execution.tenant_id,
                    to=ExecutionStatus.APPROVED,
                    expected=ExecutionStatus.PENDING_APPROVAL,
                    actor=principal.username,
                    message=f"approved by {count} of {needed}",
                )
                enqueue(session, execution, actor=principal.username)
            else:
                record_event(
                    session,
                    execution_id=execution.id,
                    tenant_id=execution.tenant_id,
                    kind="approval",
                    actor=principal.username,
                    message=f"approval {count} of {needed}",
                )
        view = build_view(session, load_execution(session, principal.tenant_id, execution_id))
    return view


def lock_for_decision(session: Session, tenant_id: str, execution_id: str) -> Execution:
    """The execution row, locked until commit so that deciders take turns (issue 13: stranded at 2/2).

    Without it two approvers of a level-2 plan each counted only their own, uncommitted vote and both
    left "1 of 2". The lock is the transaction's first statement, so the status and the votes read after
    it include everything the previous holder committed (READ COMMITTED reads per statement; the ORM is
    told to overwrite anything it had cached). PostgreSQL: ``FOR NO KEY UPDATE``, the lock the status
    ``UPDATE`` and the audit chain's append take anyway (core/audit.py), so no new lock mode or order: the
    execution row first, then the queue row (no asset row is touched here, DESIGN §15), while the vote's
    foreign key (``FOR KEY SHARE``) does not conflict with it. SQLite renders no ``FOR UPDATE``: every
    transaction there begins IMMEDIATE (db/engine.py), which already serialises writers.

    Raises:
        NotFound: no such execution in this tenant.
    """
    row = session.exec(
        select(Execution)
        .where(Execution.id == execution_id, Execution.tenant_id == tenant_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise NotFound("execution", execution_id)
    return row


def _expire_if_due(principal: Principal, execution_id: str) -> bool:
    """Expire a pending execution whose approval window has passed (committed on its own)."""
    with session_scope() as session:
        execution = load_execution(session, principal.tenant_id, execution_id)
        if execution.status != ExecutionStatus.PENDING_APPROVAL or execution.approval_expires_at is None:
            return False
        if execution.approval_expires_at > utcnow():
            return False
        transition(
            session,
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            to=ExecutionStatus.EXPIRED,
            expected=ExecutionStatus.PENDING_APPROVAL,
            actor="system",
            message="approval window passed",
        )
        return True


def approve_gate(
    principal: Principal, execution_id: str, step_index: int, *, comment: str | None = None
) -> ExecutionView:
    """Give the go for one step of a level-3 execution.

    Raises:
        PermissionDenied: the requester, or not an approver. InvalidInput: not a level-3 execution, or no
        such step. Conflict: the execution is not running or queued, the step already ran, or this person
        already gave its go. NotFound: not in this tenant.
    """
    with session_scope() as session:
        execution = load_execution(session, principal.tenant_id, execution_id)
        rbac.require(session, principal, Permission.APPROVE)
        approval_rules.refuse_own_request(execution, principal.user_id, "open a gate of")
        require_fresh_for_level(principal, execution.approval_level)
        if not gates.needs_gate(execution):
            raise InvalidInput(f"execution {execution_id} is level {execution.approval_level}: it has no step gates")
        if execution.status not in {ExecutionStatus.QUEUED, ExecutionStatus.RUNNING}:
            raise Conflict(f"execution {execution_id} is {execution.status}; gates open only while it runs")
        step = session.exec(
            select(ExecutionStep).where(
                ExecutionStep.execution_id == execution_id, ExecutionStep.step_index == step_index
            )
        ).first()
        if step is None:
            raise InvalidInput(f"execution {execution_id} has no step {step_index}", path="step")
        if step.status != StepStatus.PENDING.value:
            raise Conflict(f"step {step_index} is {step.status}; its gate can no longer be opened")
        session.add(
            approval_rules.sealed(
                Approval(
                    execution_id=execution.id,
                    tenant_id=execution.tenant_id,
                    approver_id=principal.user_id,
                    decision=Decision.APPROVED.value,
                    plan_hash=execution.plan_hash,
                    step_index=step_index,
                    comment=clean_comment(comment),
                )
            )
        )
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{principal.username} already opened the gate of step {step_index}") from exc
        moved = gates.open_gate(session, execution, step_index)  # the wait given back, audited with the go
        record_event(
            session,
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            kind="gate_approved",
            actor=principal.username,
            step_index=step_index,
            message=comment or f"go for step {step_index}",
            data=moved,
        )
        session.flush()
        view = build_view(session, execution)
    return view
