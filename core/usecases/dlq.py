"""The dead-letter queue: failed and timed-out work waiting for an operator's decision.

Requeue resumes at the step that failed (completed steps never run again, DESIGN §3.4), as a new
attempt of the execution, after re-verifying the plan hash and the approvals. Requeue with changes submits
an edited plan (usually the steps that had not completed, ``rerun_plan(…, from_step=…)``) as a new execution
linked to the old one: its hash is new, so it is approved afresh. Discard closes the entry.
Requeue (with or without changes) needs ``admin``, or ``operator`` for their own execution; discard needs
``admin``.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.approval_rules import approvals_satisfied
from core.audit import clean_comment, record_event
from core.engine import outbox
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, SafetyRefused
from core.fsm import transition
from core.identity import rbac
from core.identity.permissions import Permission
from core.plan_hash import plan_hash
from core.reads.executions import build_view
from core.schemas import DlqView, ExecutionView, Principal, SubmitResult
from core.transactions import session_scope
from core.usecases.submission import PlanSource, rerun
from db.clock import utcnow
from db.enums import DlqResolution, ExecutionStatus, Role, StepPhase, StepStatus
from db.tables import DlqEntry, Execution, ExecutionStep, User


def list_dlq(
    principal: Principal, *, include_resolved: bool = False, limit: int = 100, offset: int = 0
) -> list[DlqView]:
    """The tenant's DLQ entries, newest first (open ones only unless asked)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        query = (
            select(DlqEntry, Execution, User.username)
            .join(Execution, Execution.id == DlqEntry.execution_id)  # type: ignore[arg-type]
            .join(User, User.id == Execution.requested_by)  # type: ignore[arg-type]
            .where(DlqEntry.tenant_id == principal.tenant_id)
        )
        if not include_resolved:
            query = query.where(col(DlqEntry.resolved_at).is_(None))
        rows = session.exec(query.order_by(col(DlqEntry.created_at).desc()).offset(offset).limit(min(limit, 500))).all()
        return [
            DlqView(
                id=d.id,
                execution_id=e.id,
                execution_name=e.name,
                requested_by=username,
                status=e.status,
                reason=d.reason,
                step_index=d.step_index,
                attempts=d.attempts,
                last_error=d.last_error,
                created_at=d.created_at,
                resolved_at=d.resolved_at,
                resolution=d.resolution,
                comment=d.comment,
            )
            for d, e, username in rows
        ]


def requeue(principal: Principal, execution_id: str, *, comment: str | None = None) -> ExecutionView:
    """Send a DLQ'd execution back to the queue, resuming at its first unfinished step.

    Raises:
        NotFound: no open DLQ entry for it in this tenant. PermissionDenied: not admin nor its operator.
        SafetyRefused: the plan hash or the approvals no longer hold (a new submission is needed).
    """
    with session_scope() as session:
        entry, execution = _open_entry(session, principal, execution_id)
        _may_requeue(session, principal, execution)
        if plan_hash(execution.plan_json) != execution.plan_hash:
            raise SafetyRefused("plan_hash_mismatch", "the stored plan does not match its approved hash")
        if not approvals_satisfied(session, execution):
            raise SafetyRefused(
                "approval_invalid", "its approvals no longer hold: submit the plan again for a new approval"
            )
        resume_at = _first_unfinished(session, execution_id)
        transition(
            session,
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            to=ExecutionStatus.QUEUED,
            expected=ExecutionStatus(execution.status),
            actor=principal.username,
            message=f"requeued from the DLQ at step {resume_at}" + (f": {comment}" if comment else ""),
            values={
                "attempt": execution.attempt + 1,
                "error": None,
                "finished_at": None,
                "deadline_at": None,
                "started_at": None,
                "cancel_requested_at": None,
                "rollback_status": None,  # its rollback may run again on this attempt (DESIGN §14)
                "rollback_pending": None,
            },
        )
        session.execute(
            update(ExecutionStep)
            .where(col(ExecutionStep.execution_id) == execution_id, col(ExecutionStep.step_index) >= resume_at)
            .values(status=StepStatus.PENDING.value, attempts=0, started_at=None, finished_at=None)
            .execution_options(synchronize_session=False)
        )
        outbox.requeue(session, execution, step_index=resume_at)
        _resolve(entry, DlqResolution.REQUEUED, principal, comment)
        session.add(entry)
        session.flush()
        view = build_view(session, execution)
    return view


def requeue_with_changes(
    principal: Principal, execution_id: str, plan: PlanSource, *, comment: str | None = None
) -> SubmitResult:
    """Run a DLQ'd execution's work again from an edited plan: a new execution, linked by ``rerun_of``, that
    is validated and approved afresh like any submission (the old approvals covered the old plan only); the
    entry is closed as superseded by it, and the old execution's trail says so.

    Raises:
        NotFound, PermissionDenied: as ``requeue``. InvalidInput: the plan does not validate (nothing is
        written; the entry stays open). Conflict: someone decided the entry meanwhile (the new execution,
        named in the message, stands).
    """
    with session_scope() as session:
        _entry, execution = _open_entry(session, principal, execution_id)
        _may_requeue(session, principal, execution)
    result = rerun(principal, execution_id, plan=plan)
    new_id = result.execution.execution_id
    note = clean_comment(f"requeued with changes as {new_id}" + (f": {comment}" if comment else ""))
    with session_scope() as session:
        closed = session.execute(
            update(DlqEntry)
            .where(
                col(DlqEntry.tenant_id) == principal.tenant_id,
                col(DlqEntry.execution_id) == execution_id,
                col(DlqEntry.resolved_at).is_(None),
            )
            .values(
                resolved_at=utcnow(),
                resolution=DlqResolution.SUPERSEDED.value,
                resolved_by=principal.user_id,
                comment=note,
            )
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"the DLQ entry of {execution_id} was decided meanwhile; the new execution {new_id} stands")
        record_event(
            session,
            execution_id=execution_id,
            tenant_id=principal.tenant_id,
            kind="dlq_superseded",
            actor=principal.username,
            message=note or "",
            data={"rerun": new_id},
        )
    return result


def _may_requeue(session: Session, principal: Principal, execution: Execution) -> None:
    role = rbac.require(session, principal, Permission.CANCEL_OWN)
    if role is not Role.ADMIN and execution.requested_by != principal.user_id:
        raise PermissionDenied(f"{principal.username} may requeue only their own executions")


def discard(principal: Principal, execution_id: str, *, comment: str) -> None:
    """Close the execution's DLQ entry without running it again (admin; a comment is required)."""
    if not comment.strip():
        raise InvalidInput("a comment is required to discard", path="comment")
    with session_scope() as session:
        entry, _execution = _open_entry(session, principal, execution_id)
        rbac.require(session, principal, Permission.ADMIN)
        _resolve(entry, DlqResolution.DISCARDED, principal, comment)
        session.add(entry)


def _open_entry(session: Session, principal: Principal, execution_id: str) -> tuple[DlqEntry, Execution]:
    row = session.exec(
        select(DlqEntry, Execution)
        .join(Execution, Execution.id == DlqEntry.execution_id)  # type: ignore[arg-type]
        .where(
            DlqEntry.tenant_id == principal.tenant_id,
            DlqEntry.execution_id == execution_id,
            col(DlqEntry.resolved_at).is_(None),
        )
    ).first()
    if row is None:
        raise NotFound("DLQ entry for execution", execution_id)
    if row[1].status not in {ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT}:
        raise Conflict(f"execution {execution_id} is {row[1].status}; only failed or timed-out work can leave the DLQ")
    return row[0], row[1]


def _first_unfinished(session: Session, execution_id: str) -> int:
    steps = session.exec(
        select(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.phase == StepPhase.MAIN.value)
        .order_by(col(ExecutionStep.step_index))
    ).all()
    for step in steps:
        if step.status != StepStatus.COMPLETED.value:
            return step.step_index
    return len(steps) - 1


def _resolve(entry: DlqEntry, resolution: DlqResolution, principal: Principal, comment: str | None) -> None:
    entry.resolved_at, entry.resolution = utcnow(), resolution.value
    entry.resolved_by, entry.comment = principal.user_id, clean_comment(comment)
