"""Approval rules (DESIGN §3.6, §9): who counts as an approver, when approvals are satisfied, the hash binding.

Levels: 0 none; 1 one approver; 2 two distinct approvers; 3 two approvers and a gate before every step.
The requester never approves their own request; one person counts once; an approval counts only for
the plan hash it was given for, and only while the approver still holds ``approver`` or ``admin``.
The approve use case (core/usecases/approvals.py), the worker (before every step) and the DLQ's
requeue all judge by these functions.

What the approver sees is what runs (DESIGN §13): the hashed plan (``plan_json``) is the one source of a
step's action, target, class, params and timeout. The execution's and step rows' copies of them serve reads
and indexes only; core/plan_integrity.py names every copy that disagrees with the plan, and the worker
refuses to run a step while any does.

The binding is keyed: at submit the execution gets a ``seal`` (HMAC, with a per-tenant key derived from the
secret key material, never stored) over its id, tenant, requester, plan hash, run mode and approval level;
each approval gets one over its execution, approver, decision, plan hash and gate. A plan rewritten in the
database with its hash recomputed, a dry run flipped to live, a lowered level, another requester or a forged
approval row therefore fails the seal: the worker refuses the execution and an unsealed approval counts for
nothing. Executions and approvals written before migration 0010 have no seal and are refused the same way.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from sqlmodel import Session, col, select

from core.approval_levels import APPROVALS_REQUIRED
from core.errors import PermissionDenied, SafetyRefused
from core.plan_hash import plan_hash
from core.safety.audit_keys import link_mac, seal_key
from db.enums import Decision, Role
from db.tables import Approval, Execution, Membership


def _seal(tenant_id: str, fields: list[Any]) -> str:
    return link_mac(seal_key(tenant_id), json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode())


def execution_seal(execution: Execution) -> str:
    """The HMAC that binds an execution's approvals to its plan hash, run mode, requester and level."""
    return seal_of_execution(
        execution.tenant_id,
        execution.id,
        execution.requested_by,
        execution.plan_hash,
        execution.run_mode,
        execution.approval_level,
    )


def seal_of_execution(
    tenant_id: str, execution_id: str, requested_by: str, plan_hash: str, run_mode: str, approval_level: int
) -> str:
    """``execution_seal`` of a row not built as an object (a batch submit writes its rows as plain values)."""
    return _seal(
        tenant_id, ["execution/v1", execution_id, tenant_id, requested_by, plan_hash, run_mode, approval_level]
    )


def approval_seal(approval: Approval) -> str:
    """The HMAC of one decision: which execution, who, what, for which plan hash and gate."""
    return _seal(
        approval.tenant_id,
        [
            "approval/v1",
            approval.execution_id,
            approval.tenant_id,
            approval.approver_id,
            approval.decision,
            approval.plan_hash,
            approval.step_index,
        ],
    )


def sealed(approval: Approval) -> Approval:
    """``approval`` with its seal set (call with every field final)."""
    approval.seal = approval_seal(approval)
    return approval


def execution_sealed(execution: Execution) -> bool:
    """Whether the execution's seal matches what it binds (False without one)."""
    return execution.seal is not None and hmac.compare_digest(execution.seal, execution_seal(execution))


def approval_sealed(approval: Approval) -> bool:
    """Whether the approval's seal matches its row (False without one): an unsealed approval counts for nothing."""
    return approval.seal is not None and hmac.compare_digest(approval.seal, approval_seal(approval))


def refuse_own_request(execution: Execution, user_id: str, what: str) -> None:
    """Nobody decides on their own request (DESIGN §3.6): approving, rejecting, opening a gate, overriding a
    change window.

    Raises:
        PermissionDenied: ``user_id`` requested ``execution``; the message says ``what`` they may not do.
    """
    if execution.requested_by == user_id:
        raise PermissionDenied(f"nobody may {what} their own request")


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
        select(Approval, Membership.role)
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
    return {a.approver_id for a, role in rows if Role(role).rank >= Role.APPROVER.rank and approval_sealed(a)}


def approvals_satisfied(session: Session, execution: Execution) -> bool:
    """True if the execution's approvals still hold (the worker re-checks this before every step)."""
    if plan_hash(execution.plan_json) != execution.plan_hash or not execution_sealed(execution):
        return False
    required = APPROVALS_REQUIRED[execution.approval_level]
    return required == 0 or len(valid_approvers(session, execution)) >= required
