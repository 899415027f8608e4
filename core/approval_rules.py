"""Approval rules (DESIGN §3.6, §9): who counts as an approver, when approvals are satisfied, the hash binding.

Levels: 0 none; 1 one approver; 2 two distinct approvers; 3 two approvers and a gate before every step.
The requester never approves their own request; one person counts once; an approval counts only for
the plan hash it was given for, and only while the approver still holds ``approver`` or ``admin``.
The approve use case (core/usecases/approvals.py), the worker (before every step) and the DLQ's
requeue all judge by these functions.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.errors import SafetyRefused
from core.plans import APPROVALS_REQUIRED, plan_hash
from db.enums import Decision, Role
from db.tables import Approval, Execution, Membership


def verify_plan_hash(execution: Execution) -> None:
    """Refuse to act on an execution whose stored plan no longer matches the hash it was approved for."""
    if plan_hash(execution.plan_json) != execution.plan_hash:
        raise SafetyRefused("plan_hash_mismatch", f"execution {execution.id}: stored plan does not match its hash")


def has_decided(session: Session, execution: Execution, user_id: str) -> bool:
    """True if ``user_id`` already approved or rejected the execution's plan (one vote per person)."""
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
