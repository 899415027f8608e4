"""The approval inbox (the console's Approvals page): what waits for one approver's decision.

Pending plans the approver may decide, and level-3 step gates parked for a go, soonest deadline first;
never the approver's own requests.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core.approval_levels import APPROVALS_REQUIRED
from core.engine.gates import GATE_WAITING, GATED_LEVEL
from core.errors import InvalidInput
from core.identity import rbac
from core.identity.permissions import Permission
from core.reads.plan_review import Review
from core.reads.plan_view import review
from core.schemas import InboxItem, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import Decision, ExecutionStatus, StepStatus
from db.tables import Approval, Execution, ExecutionEvent, ExecutionStep, QueueItem, User

INBOX_MAX = 500


def approval_inbox(principal: Principal, *, limit: int = 100, detail: bool = True) -> list[InboxItem]:
    """What waits for the principal's decision: pending plans and parked level-3 step gates, soonest deadline first.

    Never the principal's own executions (nobody approves their own request), nor what they already decided;
    plans whose approval window has passed are left out (the sweeper expires them). Each item carries what the
    inbox shows: plan name, risk (action class, approval level, SLA class), plan hash, requester, who already
    approved, and the deadline. Indexed: (tenant, status, created) on executions; gates start from the tenant's
    queue rows, which exist only for active executions.

    With ``detail``, each item also carries what will run (core/reads/plan_view.py): the hashed plan's steps
    rendered, secret references as references, with their dry runs; whether the stored plan is intact; and
    the diff against the last approved run of the same plan name. One query for the steps of all items and
    one per item for its earlier run.

    Args:
        limit: at most this many items, 1-500.
        detail: False for a count (the navigation's badge): the items without steps or diff.

    Raises:
        InvalidInput: a bad limit. PermissionDenied: not an approver (or admin) in the tenant.
    """
    if not 1 <= limit <= INBOX_MAX:
        raise InvalidInput(f"must be between 1 and {INBOX_MAX}", path="limit")
    with session_scope() as session:
        rbac.require(session, principal, Permission.APPROVE)
        plans = _pending_plans(session, principal, limit)
        gates = _waiting_gates(session, principal, limit)
        executions = [e for e, _u in plans] + [e for e, _u, _s, _d in gates]
        approvers = _approvers(session, executions)
        reviews = review(session, executions, _step_rows(session, executions)) if detail else {}
        items = [_item(e, requester, approvers.get(e.id, []), reviews.get(e.id)) for e, requester in plans] + [
            _item(e, requester, approvers.get(e.id, []), reviews.get(e.id), step=step, deadline=deadline)
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
    """Level-3 executions parked before a step for want of a go (core/engine/gates.py), not the principal's own."""
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


def _step_rows(session: Session, executions: list[Execution]) -> dict[str, list[ExecutionStep]]:
    """The step rows of every execution, by execution id (one query)."""
    found: dict[str, list[ExecutionStep]] = {}
    if not executions:
        return found
    ids = list({e.id for e in executions})
    for row in session.exec(select(ExecutionStep).where(col(ExecutionStep.execution_id).in_(ids))).all():
        found.setdefault(row.execution_id, []).append(row)
    return found


def _item(
    execution: Execution,
    requester: str,
    approved_by: list[str],
    seen: Review | None,
    *,
    step: ExecutionStep | None = None,
    deadline: datetime | None = None,
) -> InboxItem:
    planned = {p.index: p for p in (seen.steps or [])} if seen is not None else {}
    # The gate's step as the plan says it (the row's copies agree when intact; else the row, flagged by plan_intact).
    gated = planned.get(step.step_index) if step is not None and seen is not None and seen.intact else None
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
        step_name=None if step is None else (gated.name if gated else step.name),
        step_target=None if step is None else (gated.target if gated else step.target_name),
        step_action_class=None if step is None else (gated.action_class if gated else step.action_class),
        steps=(seen.steps or []) if seen is not None else [],
        plan_intact=seen.intact if seen is not None else True,
        changes_since_approved=seen.changes_since_approved if seen is not None else None,
        compared_with=seen.compared_with if seen is not None else None,
    )
