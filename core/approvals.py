"""Approvals (DESIGN §3.6, §9): who may decide, how many it takes, expiry, and the plan-hash binding.

Levels: 0 none; 1 one approver; 2 two distinct approvers; 3 two approvers and a gate before every step.
The requester never approves their own request; one person counts once; an approval counts only for
the plan hash it was given for, and only while the approver still holds ``approver`` or ``admin``.
``approval_inbox`` lists what waits for one approver's decision (the console's Approvals page).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import rbac
from core.audit import record_event
from core.errors import Conflict, DeadlineExceeded, InvalidInput, PermissionDenied, SafetyRefused
from core.executions import build_view, load_execution
from core.fsm import transition
from core.gates import GATE_WAITING, GATED_LEVEL
from core.plans import APPROVALS_REQUIRED, plan_hash
from core.ports import dispatch_committed
from core.queueing import enqueue
from core.rbac import Permission
from core.schemas import ExecutionView, InboxItem, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import Decision, ExecutionStatus, Role, StepStatus
from db.tables import Approval, Execution, ExecutionEvent, ExecutionStep, Membership, QueueItem, User

MAX_COMMENT = 2000


def approve(
    principal: Principal, execution_id: str, *, comment: str | None = None, plan_hash_seen: str | None = None
) -> ExecutionView:
    """Record the principal's approval; once enough distinct approvers agree, the execution is queued.

    Args:
        plan_hash_seen: the hash the approver reviewed (the console passes it); a mismatch is refused.

    Raises:
        PermissionDenied: own request, or not an approver in this tenant.
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
    comment = (comment or "").strip()[:MAX_COMMENT] or None
    if _expire_if_due(principal, execution_id):
        raise DeadlineExceeded(f"execution {execution_id}: the approval window has passed; it is now expired")
    queued: list[str] = []
    with session_scope() as session:
        execution = load_execution(session, principal.tenant_id, execution_id)
        rbac.require(session, principal, Permission.APPROVE)
        if execution.requested_by == principal.user_id:
            raise PermissionDenied("nobody may approve or reject their own request")
        if execution.status != ExecutionStatus.PENDING_APPROVAL:
            raise Conflict(f"execution {execution_id} is {execution.status}, not pending approval")
        _verify_plan_hash(execution)
        if seen is not None and seen != execution.plan_hash:
            raise Conflict("the plan changed since you reviewed it; review the current plan and approve again")
        if _has_decided(session, execution, principal.user_id):
            raise Conflict(f"{principal.username} has already decided on execution {execution_id}")
        session.add(
            Approval(
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                approver_id=principal.user_id,
                decision=decision.value,
                plan_hash=execution.plan_hash,
                comment=comment,
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
            count = len(valid_approvers(session, execution))
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
                queued.append(execution.id)
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
    dispatch_committed(queued)
    return view


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


def _verify_plan_hash(execution: Execution) -> None:
    if plan_hash(execution.plan_json) != execution.plan_hash:
        raise SafetyRefused("plan_hash_mismatch", f"execution {execution.id}: stored plan does not match its hash")


def _has_decided(session: Session, execution: Execution, user_id: str) -> bool:
    return (
        session.exec(
            select(Approval.id).where(
                Approval.execution_id == execution.id,
                Approval.approver_id == user_id,
                col(Approval.step_index).is_(None),
            )
        ).first()
        is not None
    )


def valid_approvers(session: Session, execution: Execution) -> set[str]:
    """User ids whose approval counts now: for this plan hash, not the requester, still approver or admin."""
    rows = session.exec(
        select(Approval.approver_id, Membership.role)
        .join(
            Membership,
            (Membership.user_id == Approval.approver_id) & (Membership.tenant_id == Approval.tenant_id),  # type: ignore[arg-type]
        )
        .where(
            Approval.execution_id == execution.id,
            Approval.decision == Decision.APPROVED.value,
            Approval.plan_hash == execution.plan_hash,
            col(Approval.step_index).is_(None),
            Approval.approver_id != execution.requested_by,
        )
    ).all()
    return {uid for uid, role in rows if Role(role).rank >= Role.APPROVER.rank}


def approvals_satisfied(session: Session, execution: Execution) -> bool:
    """True if the execution's approvals still hold (the worker re-checks this before every step)."""
    if plan_hash(execution.plan_json) != execution.plan_hash:
        return False
    required = APPROVALS_REQUIRED[execution.approval_level]
    return required == 0 or len(valid_approvers(session, execution)) >= required


INBOX_MAX = 500


def approval_inbox(principal: Principal, *, limit: int = 100) -> list[InboxItem]:
    """What waits for the principal's decision: pending plans and parked level-3 step gates, soonest deadline first.

    Never the principal's own executions (nobody approves their own request), nor what they already decided;
    plans whose approval window has passed are left out (the sweeper expires them). Each item carries what the
    inbox shows: plan name, risk (action class, approval level, SLA class), plan hash, requester, who already
    approved, and the deadline. Indexed: (tenant, status, created) on executions; gates start from the tenant's
    queue rows, which exist only for active executions.

    Args:
        limit: at most this many items, 1-500.

    Raises:
        InvalidInput: a bad limit. PermissionDenied: not an approver (or admin) in the tenant.
    """
    if not 1 <= limit <= INBOX_MAX:
        raise InvalidInput(f"must be between 1 and {INBOX_MAX}", path="limit")
    with session_scope() as session:
        rbac.require(session, principal, Permission.APPROVE)
        plans = _pending_plans(session, principal, limit)
        gates = _waiting_gates(session, principal, limit)
        approvers = _approvers(session, [e for e, _u in plans] + [e for e, _u, _s, _d in gates])
        items = [_item(e, requester, approvers.get(e.id, [])) for e, requester in plans] + [
            _item(e, requester, approvers.get(e.id, []), step=step, deadline=deadline)
            for e, requester, step, deadline in gates
        ]
    far = datetime.max.replace(tzinfo=UTC)
    items.sort(key=lambda i: (i.approval_expires_at or far, i.created_at))
    return items[:limit]


def _pending_plans(session: Session, principal: Principal, limit: int) -> list[tuple[Execution, str]]:
    decided = select(Approval.id).where(
        Approval.execution_id == Execution.id,
        Approval.approver_id == principal.user_id,
        col(Approval.step_index).is_(None),
    )
    rows = session.exec(
        select(Execution, User.username)
        .join(User, User.id == Execution.requested_by)  # type: ignore[arg-type]
        .where(
            Execution.tenant_id == principal.tenant_id,
            Execution.status == ExecutionStatus.PENDING_APPROVAL.value,
            Execution.requested_by != principal.user_id,
            or_(col(Execution.approval_expires_at).is_(None), col(Execution.approval_expires_at) > utcnow()),
            ~decided.exists(),
        )
        .order_by(col(Execution.approval_expires_at).nulls_last(), col(Execution.created_at))
        .limit(limit)
    ).all()
    return [(e, username) for e, username in rows]


def _waiting_gates(
    session: Session, principal: Principal, limit: int
) -> list[tuple[Execution, str, ExecutionStep, datetime]]:
    """Level-3 executions parked before a step for want of a go (core/gates.py), not the principal's own."""
    parked = select(ExecutionEvent.id).where(
        ExecutionEvent.execution_id == QueueItem.execution_id,
        ExecutionEvent.kind == GATE_WAITING,
        ExecutionEvent.step_index == QueueItem.step_index,
    )
    opened = select(Approval.id).where(
        Approval.execution_id == QueueItem.execution_id,
        Approval.step_index == QueueItem.step_index,
        Approval.decision == Decision.APPROVED.value,
        Approval.plan_hash == Execution.plan_hash,
    )
    rows = session.exec(
        select(Execution, User.username, ExecutionStep, QueueItem.available_at)
        .join(Execution, Execution.id == QueueItem.execution_id)  # type: ignore[arg-type]
        .join(User, User.id == Execution.requested_by)  # type: ignore[arg-type]
        .join(
            ExecutionStep,
            (ExecutionStep.execution_id == QueueItem.execution_id) & (ExecutionStep.step_index == QueueItem.step_index),  # type: ignore[arg-type]
        )
        .where(
            QueueItem.tenant_id == principal.tenant_id,
            col(QueueItem.lease_token).is_(None),
            col(Execution.approval_level) >= GATED_LEVEL,
            col(Execution.status).in_([ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value]),
            Execution.requested_by != principal.user_id,
            ExecutionStep.status == StepStatus.PENDING.value,
            parked.exists(),
            ~opened.exists(),
        )
        .order_by(col(QueueItem.available_at))
        .limit(limit)
    ).all()
    return [(e, username, step, deadline) for e, username, step, deadline in rows]


def _approvers(session: Session, executions: list[Execution]) -> dict[str, list[str]]:
    """Usernames whose plan approval (for the current hash) each execution already has, in order."""
    if not executions:
        return {}
    hashes = {e.id: e.plan_hash for e in executions}
    rows = session.exec(
        select(Approval.execution_id, Approval.plan_hash, User.username)
        .join(User, User.id == Approval.approver_id)  # type: ignore[arg-type]
        .where(
            col(Approval.execution_id).in_(list(hashes)),
            col(Approval.step_index).is_(None),
            Approval.decision == Decision.APPROVED.value,
        )
        .order_by(col(Approval.created_at))
    ).all()
    found: dict[str, list[str]] = {}
    for execution_id, approved_hash, username in rows:
        if approved_hash == hashes[execution_id]:
            found.setdefault(execution_id, []).append(username)
    return found


def _item(
    execution: Execution,
    requester: str,
    approved_by: list[str],
    *,
    step: ExecutionStep | None = None,
    deadline: datetime | None = None,
) -> InboxItem:
    return InboxItem(
        kind="plan" if step is None else "gate",
        execution_id=execution.id,
        name=execution.name,
        requested_by=requester,
        action_class=execution.action_class,
        approval_level=execution.approval_level,
        sla_class=execution.sla_class,
        run_mode=execution.run_mode,
        plan_hash=execution.plan_hash,
        approvals_required=APPROVALS_REQUIRED[execution.approval_level],
        approved_by=approved_by,
        created_at=execution.created_at,
        approval_expires_at=execution.approval_expires_at if step is None else deadline,
        step_index=None if step is None else step.step_index,
        step_name=None if step is None else step.name,
        step_target=None if step is None else step.target_name,
        step_action_class=None if step is None else step.action_class,
    )
