"""Rollback (DESIGN §14): a plan's ``on_failure`` and ``on_cancel`` steps, and the outcome they are run for.

When a main step fails for good (no retry left, no ``continue_on_error``), times out, or the execution's time
runs out, the execution does not end yet if its plan declares ``on_failure`` steps: ``begin`` records the end
it was about to have (status, message, error, DLQ note) in ``rollback_pending``, sets ``rollback_status``
``running``, gives it its rollback time, and points its queue row at the first ``on_failure`` step. A cancel
does the same with ``on_cancel``. The rollback steps are ordinary steps of the hashed plan (their indices
follow the main steps', core/plan_phases.py): claimed with a lease, under the locks the execution took at its
start for every target (rollback ones too), fenced, permission-checked, their secrets resolved and masked,
every change audited. A cancel request does not stop them (on_cancel steps run because of one).

Whatever ends a running rollback (its last step done, a step failed for good, a timeout, a lost worker, a
refusal) ends the execution through ``finish_execution``, which asks ``conclude``: the execution ends with the
outcome the rollback was started for, and ``rollback_status`` says ``completed`` (every rollback step
completed) or ``failed``. A failing rollback step never starts another rollback. Rollback steps that did not
run end ``skipped``.

Time: a rollback gets the running time its execution had left plus, once, the sum of its steps' limits
(each step's timeout capped by the policy, as the claim runs it); the locks' expiry moves with the deadline.

Must not import core/engine/finish.py (which imports this) nor core/engine/claim.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.audit import record_event
from core.engine import locks, outbox
from core.policies import cached_policy
from core.policy_limits import effective_step_s
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import RollbackStatus, StepPhase, StepStatus
from db.tables import Execution, ExecutionStep

if TYPE_CHECKING:
    from core.rows import StepRow

# Which rollback an ending runs: a failure or a timeout runs on_failure, a cancel on_cancel.
PHASE_FOR = {S.FAILED: StepPhase.ON_FAILURE, S.TIMEOUT: StepPhase.ON_FAILURE, S.CANCELLED: StepPhase.ON_CANCEL}
# DLQ reasons that start no rollback: the stored rows disagree with the approved plan (core/engine/claim.py's
# PLAN_MISMATCH), a tampered execution that should run nothing more.
NO_ROLLBACK_REASONS = frozenset({"plan_mismatch"})


@dataclass(frozen=True)
class Ending:
    """The end a rollback was started for, which its execution ends with (``dlq``: DlqNote's fields)."""

    status: S
    message: str
    error: str | None
    dlq: dict[str, Any] | None


def is_rollback(step: StepRow) -> bool:
    """True for an ``on_failure`` or ``on_cancel`` step."""
    return step.phase != StepPhase.MAIN


def has_rollback(execution: Execution) -> bool:
    """Whether the plan may declare rollback steps: a cheap test on its text (a false positive costs one read)."""
    return '"on_failure":' in execution.plan_json or '"on_cancel":' in execution.plan_json


def begin(session: Session, execution: Execution, ending: Ending, *, actor: str) -> bool:
    """Start the rollback ``ending`` calls for instead of ending the execution; False when there is none to run.

    None to run: the execution is not running, a rollback already ran or runs (a failing rollback step does
    not start another), its rows disagree with its plan, or the plan declares no steps for this ending.
    """
    phase = PHASE_FOR.get(ending.status)
    if phase is None or execution.status != S.RUNNING or execution.rollback_status is not None:
        return False
    if ending.dlq is not None and ending.dlq.get("reason") in NO_ROLLBACK_REASONS:
        return False
    if not has_rollback(execution):
        return False
    steps = _phase_rows(session, execution.id, phase)
    if not steps:
        return False
    now = utcnow()
    grace_s = sum(
        effective_step_s(s.timeout_s, cached_policy(session, execution.sla_class, s.action_class).step_s) for s in steps
    )
    deadline_at = max(execution.deadline_at or now, now) + timedelta(seconds=grace_s)
    execution.rollback_status = RollbackStatus.RUNNING.value
    execution.rollback_pending = json.dumps(
        {"status": ending.status.value, "message": ending.message, "error": ending.error, "dlq": ending.dlq}
    )
    execution.deadline_at = deadline_at
    session.add(execution)
    run_policy = cached_policy(session, execution.sla_class, execution.action_class)
    locks.extend(session, execution.id, locks.lock_expiry(deadline_at, run_policy.lease_s))
    record_event(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        kind="rollback_started",
        actor=actor,
        step_index=steps[0].step_index,
        message=f"{ending.message}: running {len(steps)} {phase.value} step(s) before it ends {ending.status.value}",
        data={
            "phase": phase.value,
            "for": ending.status.value,
            "steps": len(steps),
            "grace_s": grace_s,
            "deadline_at": deadline_at.isoformat(),
        },
    )
    outbox.move_to_step(session, execution.id, step_index=steps[0].step_index)
    session.flush()
    return True


def conclude(session: Session, execution: Execution, *, actor: str) -> Ending | None:
    """Called as an execution ends: the end its running rollback was for (None: no rollback was running).

    Records how the rollback went (``rollback_status``, a ``rollback_finished`` event) and marks the rollback
    steps that did not run ``skipped``, whatever ended the execution.
    """
    if not has_rollback(execution):
        return None
    ending = None
    if execution.rollback_status == RollbackStatus.RUNNING and execution.rollback_pending:
        pending = json.loads(execution.rollback_pending)
        ending = Ending(S(pending["status"]), pending["message"], pending.get("error"), pending.get("dlq"))
        phase = PHASE_FOR[ending.status]
        steps = _phase_rows(session, execution.id, phase)
        went = (
            RollbackStatus.COMPLETED
            if all(s.status == StepStatus.COMPLETED.value for s in steps)
            else RollbackStatus.FAILED
        )
        execution.rollback_status = went.value
        execution.rollback_pending = None
        session.add(execution)
        done = sum(s.status == StepStatus.COMPLETED.value for s in steps)
        record_event(
            session,
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            kind="rollback_finished",
            actor=actor,
            message=f"{phase.value} rollback {went.value}: {done} of {len(steps)} step(s) completed",
            data={"phase": phase.value, "status": went.value, "completed": done, "steps": len(steps)},
        )
        ending = Ending(ending.status, f"{ending.message}; rollback {went.value}", ending.error, ending.dlq)
    session.execute(
        update(ExecutionStep)
        .where(
            col(ExecutionStep.execution_id) == execution.id,
            col(ExecutionStep.phase) != StepPhase.MAIN.value,
            col(ExecutionStep.status) == StepStatus.PENDING.value,
        )
        .values(status=StepStatus.SKIPPED.value)
        .execution_options(synchronize_session=False)
    )
    return ending


@dataclass(frozen=True)
class _Row:
    step_index: int
    status: str
    action_class: str
    timeout_s: int | None


def _phase_rows(session: Session, execution_id: str, phase: StepPhase) -> list[_Row]:
    """The phase's step rows as stored now (columns, not ORM rows: the worker writes steps with Core updates)."""
    found = session.exec(
        select(ExecutionStep.step_index, ExecutionStep.status, ExecutionStep.action_class, ExecutionStep.timeout_s)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.phase == phase.value)
        .order_by(col(ExecutionStep.step_index))
    ).all()
    return [_Row(*row) for row in found]
