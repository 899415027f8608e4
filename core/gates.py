"""Level-3 step gates (DESIGN §3.6, issue "foundation": approvals): before every step of a level-3
execution, an approver other than the requester must give the go for that step.

A step without its go does not run: the engine parks the execution's queue row until the gate's
deadline (the policy's approval timeout) and records ``gate_waiting``. ``approve_gate`` records the go
(bound to the plan hash, like any approval), moves the execution's deadline by the time spent waiting
(approval waits have their own limit), and wakes the execution. A gate that is not opened in time ends
the execution ``timeout`` with a DLQ entry (``gate_timeout``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import rbac
from core.audit import record_event
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.executions import build_view, load_execution
from core.ports import dispatch_committed, get_dispatcher
from core.rbac import Permission
from core.safety import mutex
from core.schemas import ExecutionView, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import Decision, ExecutionStatus, Role, StepStatus
from db.tables import Approval, Execution, ExecutionEvent, ExecutionStep, Membership, QueueItem

GATED_LEVEL = 3
GATE_WAITING = "gate_waiting"
LOCK_GRACE_S = 3600  # locks outlive the moved deadline by this much; released at the end anyway


def needs_gate(execution: Execution) -> bool:
    """True if every step of this execution waits for an approver's go."""
    return execution.approval_level >= GATED_LEVEL


def gate_open(session: Session, execution: Execution, step_index: int) -> bool:
    """True if an eligible approver (not the requester, still approver/admin) gave the go for this step."""
    rows = session.exec(
        select(Membership.role)
        .join(Approval, (Approval.approver_id == Membership.user_id) & (Approval.tenant_id == Membership.tenant_id))  # type: ignore[arg-type]
        .where(
            Approval.execution_id == execution.id,
            Approval.step_index == step_index,
            Approval.decision == Decision.APPROVED.value,
            Approval.plan_hash == execution.plan_hash,
            Approval.approver_id != execution.requested_by,
        )
    ).all()
    return any(Role(role).rank >= Role.APPROVER.rank for role in rows)


def waiting_since(session: Session, execution_id: str, step_index: int) -> ExecutionEvent | None:
    """The ``gate_waiting`` event of this step, if the step has been parked for its gate."""
    return session.exec(
        select(ExecutionEvent)
        .where(
            ExecutionEvent.execution_id == execution_id,
            ExecutionEvent.kind == GATE_WAITING,
            ExecutionEvent.step_index == step_index,
        )
        .order_by(col(ExecutionEvent.id).desc())
    ).first()


def approve_gate(
    principal: Principal, execution_id: str, step_index: int, *, comment: str | None = None
) -> ExecutionView:
    """Give the go for one step of a level-3 execution.

    Raises:
        PermissionDenied: the requester, or not an approver. InvalidInput: not a level-3 execution, or no
        such step. Conflict: the execution is not running or queued, the step already ran, or this person
        already gave its go. NotFound: not in this tenant.
    """
    wake: list[str] = []
    with session_scope() as session:
        execution = load_execution(session, principal.tenant_id, execution_id)
        rbac.require(session, principal, Permission.APPROVE)
        if execution.requested_by == principal.user_id:
            raise PermissionDenied("nobody may open a gate of their own request")
        if not needs_gate(execution):
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
            Approval(
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                approver_id=principal.user_id,
                decision=Decision.APPROVED.value,
                plan_hash=execution.plan_hash,
                step_index=step_index,
                comment=(comment or "").strip()[:2000] or None,
            )
        )
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{principal.username} already opened the gate of step {step_index}") from exc
        record_event(
            session,
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            kind="gate_approved",
            actor=principal.username,
            step_index=step_index,
            message=comment or f"go for step {step_index}",
        )
        item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).first()
        parked = waiting_since(session, execution_id, step_index)
        if item is not None and item.step_index == step_index and item.lease_token is None:
            now = utcnow()
            if parked is not None and execution.deadline_at is not None:
                # The wait was an approval wait, bounded by its own limit: give the execution its time back.
                execution.deadline_at = execution.deadline_at + (now - parked.created_at)
                session.add(execution)
                mutex.extend(session, execution.id, mutex.lock_expiry(execution.deadline_at, LOCK_GRACE_S))
            item.available_at = now
            item.dispatched_at = now if get_dispatcher() is not None else None
            session.add(item)
            wake.append(execution_id)
        session.flush()
        view = build_view(session, execution)
    dispatch_committed(wake)
    return view


def park_for_gate(session: Session, item: QueueItem, step_index: int, wait_s: int, *, actor: str) -> None:
    """Hold the queue row until the gate's deadline and say so in the trail (engine side)."""
    item.available_at = utcnow() + timedelta(seconds=wait_s)
    session.add(item)
    record_event(
        session,
        execution_id=item.execution_id,
        tenant_id=item.tenant_id,
        kind=GATE_WAITING,
        actor=actor,
        step_index=step_index,
        message=f"step {step_index} waits for an approver's go (up to {wait_s}s)",
    )
