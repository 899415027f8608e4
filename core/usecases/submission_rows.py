"""The rows a submission writes, for one plan or a batch: executions, their steps, first events, queue rows.

Written with SQLAlchemy Core, one multi-row INSERT per table (the rows are only written here, never read
back as ORM objects): the executions, then their steps; then the level-0 ones move to ``queued`` through
core/fsm.py (one compare-and-set UPDATE) and get their queue rows from core/engine/outbox.py, which
announces them to the job runner after commit. Their events (``submitted``, ``queued``) are written with the
transaction's commit, linked into the tenant's audit chain, in one INSERT (core/audit_links.py).

The idempotency index (``ux_executions_idempotency_active``) speaks at the executions' INSERT: the caller
(core/usecases/submission.py) turns its IntegrityError into a look at the key's holder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from core import approval_rules, idempotency
from core.approval_levels import APPROVALS_REQUIRED
from core.audit import record_event
from core.engine.outbox import enqueue_many
from core.fsm import initial_status
from core.notify import outbox as notify_outbox
from core.plan_hash import canonical_json
from core.priority import effective_priority
from core.schemas import Principal
from core.usecases.intake import Judged
from db.enums import ExecutionMode, ExecutionStatus, NotifyEvent, StepStatus
from db.tables import Execution, ExecutionStep, new_id

_INSERT_EXECUTIONS = insert(Execution.__table__)  # type: ignore[attr-defined]
_INSERT_STEPS = insert(ExecutionStep.__table__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NewExecution:
    """An execution about to be written: its row, its steps' rows, and what it was derived from."""

    judged: Judged
    row: dict[str, Any]
    steps: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def created_at(self) -> datetime:
        created: datetime = self.row["created_at"]
        return created

    @property
    def status(self) -> ExecutionStatus:
        """The status it has once written: level 0 is queued in the same transaction (DESIGN §4)."""
        first = ExecutionStatus(self.row["status"])
        return ExecutionStatus.QUEUED if first is ExecutionStatus.APPROVED else first

    @property
    def inline(self) -> bool:
        """Queued now and run by the caller (immediate mode), not announced to the job runner."""
        return self.status is ExecutionStatus.QUEUED and self.row["execution_mode"] == ExecutionMode.IMMEDIATE.value


def new_execution(
    principal: Principal,
    judged: Judged,
    *,
    caller_key: str | None,
    background: bool,
    now: datetime,
    rerun_of: str | None = None,
    notify_on_finish: bool = False,
) -> NewExecution:
    """The rows of one execution of ``judged`` requested by ``principal`` at ``now`` (nothing is written).

    ``rerun_of``: the execution this one reruns (``rerun``); every row carries the key, for one INSERT.
    """
    plan = judged.plan
    status = initial_status(plan.approval_level)
    execution_id = new_id()
    row: dict[str, Any] = {
        "id": execution_id,
        "tenant_id": principal.tenant_id,
        "requested_by": principal.user_id,
        "name": plan.spec.name,
        "description": plan.spec.description,
        "plan_json": judged.canonical_text,
        "plan_hash": judged.plan_hash,
        "seal": approval_rules.seal_of_execution(
            principal.tenant_id,
            execution_id,
            principal.user_id,
            judged.plan_hash,
            judged.run_mode.value,
            plan.approval_level,
        ),
        "action_class": plan.action_class.value,
        "approval_level": plan.approval_level,
        "sla_class": plan.sla_class.value,
        "execution_mode": plan.execution_mode(background=background).value,
        "run_mode": judged.run_mode.value,
        "continue_on_error": plan.spec.continue_on_error,
        "status": status.value,
        "idempotency_key": caller_key
        or idempotency.derive_key(principal.tenant_id, principal.user_id, judged.plan_hash),
        "idempotency_active": True,
        "attempt": 1,
        "approval_expires_at": now + timedelta(seconds=judged.policy.approval_s)
        if status is ExecutionStatus.PENDING_APPROVAL
        else None,
        "created_at": now,
        "updated_at": now,
        "rerun_of": rerun_of,
        "notify_on_finish": notify_on_finish,
        "priority": effective_priority(plan.sla_class.value, plan.spec.priority),
    }
    steps = [
        {
            "id": new_id(),
            "execution_id": execution_id,
            "tenant_id": principal.tenant_id,
            "step_index": step.index,
            "name": step.spec.name,
            "action": step.spec.action,
            "target_asset_id": judged.assets[step.spec.asset].id,
            "target_name": judged.assets[step.spec.asset].name,
            "action_class": step.action_class.value,
            "params_json": canonical_json(step.params),
            "timeout_s": step.spec.timeout_s,
            "phase": step.phase.value,
            "status": StepStatus.PENDING.value,
            "attempts": 0,
        }
        for step in plan.all_steps
    ]
    return NewExecution(judged=judged, row=row, steps=steps)


def write(session: Session, principal: Principal, executions: Sequence[NewExecution]) -> None:
    """Insert ``executions`` (one tenant's) and their steps, record their ``submitted`` events, queue the level-0
    ones (their ``queued`` events with them).

    Raises:
        IntegrityError: an idempotency key is held by an active execution (the executions' INSERT).
    """
    if not executions:
        return
    session.execute(_INSERT_EXECUTIONS, [e.row for e in executions])
    session.execute(_INSERT_STEPS, [step for e in executions for step in e.steps])
    for execution in executions:
        row = execution.row
        level = row["approval_level"]
        record_event(
            session,
            execution_id=execution.id,
            tenant_id=principal.tenant_id,
            kind="status",
            actor=principal.username,
            message=f"submitted; needs {APPROVALS_REQUIRED[level]} approval(s)"
            + (f"; a rerun of {row['rerun_of']}" if row["rerun_of"] else ""),
            to_status=row["status"],
            data={"plan_hash": row["plan_hash"], "run_mode": row["run_mode"], "approval_level": level}
            | ({"rerun_of": row["rerun_of"]} if row["rerun_of"] else {}),
        )
    notify_outbox.note(  # approvers hear there is work (core/notify/outbox.py): rows now, sent after commit
        session,
        tenant_id=principal.tenant_id,
        execution_ids=[e.id for e in executions if e.row["status"] == ExecutionStatus.PENDING_APPROVAL.value],
        event=NotifyEvent.APPROVAL_WAITING,
        status=ExecutionStatus.PENDING_APPROVAL.value,
        actor=principal.username,
    )
    level_0 = [e for e in executions if e.row["status"] == ExecutionStatus.APPROVED.value]
    enqueue_many(
        session,
        principal.tenant_id,
        {e.id: (e.row["sla_class"], e.row["priority"]) for e in level_0},
        actor=principal.username,
        send={e.id for e in level_0 if not e.inline},
    )
