"""Reading executions: one, a filtered page of many, their events, and waiting for an end.

Every query is scoped by the principal's tenant; an id from another tenant is NotFound.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core import rbac
from core.errors import DeadlineExceeded, InvalidInput, NotFound
from core.fsm import TERMINAL
from core.plans import APPROVALS_REQUIRED
from core.rbac import Permission
from core.schemas import ApprovalView, EventView, ExecutionSummary, ExecutionView, Principal, StepView
from core.transactions import session_scope
from db.enums import ExecutionStatus
from db.tables import Approval, Execution, ExecutionEvent, ExecutionStep, Tenant, User

MAX_PAGE = 500


def load_execution(session: Session, tenant_id: str, execution_id: str) -> Execution:
    """The execution row, scoped by tenant. Raises NotFound."""
    row = session.exec(select(Execution).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)).first()
    if row is None:
        raise NotFound("execution", execution_id)
    return row


def build_view(session: Session, execution: Execution) -> ExecutionView:
    """The full DTO of an execution: steps, approvals, names resolved."""
    steps = session.exec(
        select(ExecutionStep).where(ExecutionStep.execution_id == execution.id).order_by(col(ExecutionStep.step_index))
    ).all()
    approvals = session.exec(
        select(Approval, User.username)
        .join(User, User.id == Approval.approver_id)  # type: ignore[arg-type]
        .where(Approval.execution_id == execution.id)
        .order_by(col(Approval.created_at))
    ).all()
    summary = _summaries(session, [execution])[0]
    return ExecutionView(
        **summary.model_dump(),
        description=execution.description,
        plan_hash=execution.plan_hash,
        idempotency_key=execution.idempotency_key,
        continue_on_error=execution.continue_on_error,
        attempt=execution.attempt,
        error=execution.error,
        approvals_required=APPROVALS_REQUIRED[execution.approval_level],
        approval_expires_at=execution.approval_expires_at,
        cancel_requested_at=execution.cancel_requested_at,
        approvals=[
            ApprovalView(
                approver=username,
                decision=a.decision,
                comment=a.comment,
                plan_hash=a.plan_hash,
                step_index=a.step_index,
                created_at=a.created_at,
            )
            for a, username in approvals
        ],
        steps=[
            StepView(
                index=s.step_index,
                name=s.name,
                action=s.action,
                target=s.target_name,
                action_class=s.action_class,
                status=s.status,
                attempts=s.attempts,
                timeout_s=s.timeout_s,
                started_at=s.started_at,
                finished_at=s.finished_at,
                output=s.output,
                error=s.error,
            )
            for s in steps
        ],
    )


def _summaries(session: Session, rows: list[Execution]) -> list[ExecutionSummary]:
    user_ids = {r.requested_by for r in rows}
    tenant_ids = {r.tenant_id for r in rows}
    users = dict(session.exec(select(User.id, User.username).where(col(User.id).in_(user_ids))).all()) if rows else {}
    tenants = (
        dict(session.exec(select(Tenant.id, Tenant.name).where(col(Tenant.id).in_(tenant_ids))).all()) if rows else {}
    )
    return [
        ExecutionSummary(
            execution_id=r.id,
            name=r.name,
            status=r.status,
            tenant_id=r.tenant_id,
            tenant=tenants[r.tenant_id],
            requested_by=users[r.requested_by],
            action_class=r.action_class,
            approval_level=r.approval_level,
            sla_class=r.sla_class,
            execution_mode=r.execution_mode,
            run_mode=r.run_mode,
            created_at=r.created_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
        )
        for r in rows
    ]


def get_execution(principal: Principal, execution_id: str) -> ExecutionView:
    """One execution of the principal's tenant, in full.

    Raises:
        NotFound: no such execution in this tenant. PermissionDenied: no role in the tenant any more.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return build_view(session, load_execution(session, principal.tenant_id, execution_id))


def list_executions(
    principal: Principal,
    *,
    status: Collection[ExecutionStatus] | ExecutionStatus | None = None,
    requested_by: str | None = None,
    search: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ExecutionSummary]:
    """A page of the tenant's executions, newest first, filtered.

    Args:
        status: one status or several. requested_by: a username. search: text in the name.
        limit: page size, 1-500. offset: rows to skip.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", path="limit")
    if offset < 0:
        raise InvalidInput("must not be negative", path="offset")
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        query = select(Execution).where(Execution.tenant_id == principal.tenant_id)
        if status is not None:
            wanted = [status] if isinstance(status, ExecutionStatus) else list(status)
            query = query.where(col(Execution.status).in_([s.value for s in wanted]))
        if requested_by is not None:
            user_id = session.exec(select(User.id).where(User.username == requested_by)).first()
            if user_id is None:
                return []
            query = query.where(Execution.requested_by == user_id)
        if search:
            pattern = f"%{search.strip()}%"
            query = query.where(or_(col(Execution.name).ilike(pattern), col(Execution.id).startswith(search.strip())))
        if created_after is not None:
            query = query.where(Execution.created_at >= created_after)
        if created_before is not None:
            query = query.where(Execution.created_at < created_before)
        rows = session.exec(
            query.order_by(col(Execution.created_at).desc(), col(Execution.id).desc()).offset(offset).limit(limit)
        ).all()
        return _summaries(session, list(rows))


def list_events(principal: Principal, execution_id: str, *, after_id: int = 0, limit: int = 500) -> list[EventView]:
    """The execution's audit trail in order (``after_id`` for incremental reads)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        load_execution(session, principal.tenant_id, execution_id)
        rows = session.exec(
            select(ExecutionEvent)
            .where(ExecutionEvent.execution_id == execution_id, col(ExecutionEvent.id) > after_id)
            .order_by(col(ExecutionEvent.id))
            .limit(min(limit, MAX_PAGE * 10))
        ).all()
        return [
            EventView(
                id=e.id or 0,
                kind=e.kind,
                from_status=e.from_status,
                to_status=e.to_status,
                step_index=e.step_index,
                actor=e.actor,
                message=e.message,
                data=json.loads(e.data_json),
                created_at=e.created_at,
            )
            for e in rows
        ]


def wait_for(
    principal: Principal,
    execution_id: str,
    *,
    timeout_s: float = 60.0,
    until: Collection[ExecutionStatus] = TERMINAL,
    poll_s: float = 0.2,
) -> ExecutionView:
    """Poll until the execution reaches one of ``until`` (default: any terminal status).

    Raises:
        DeadlineExceeded: still not there after ``timeout_s``. NotFound: not in this tenant.
    """
    deadline = time.monotonic() + timeout_s
    wanted = {s.value for s in until}
    while True:
        view = get_execution(principal, execution_id)
        if view.status in wanted:
            return view
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"execution {execution_id} is still {view.status} after {timeout_s:g}s")
        time.sleep(poll_s)
