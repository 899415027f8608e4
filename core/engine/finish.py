"""How work ends or tries again: ``finish_execution``, ``dead_letter``, and the one retry rule (§3.5).

Shared by the worker (core/engine/steps.py) and the sweeper (core/engine/recovery.py), so a step that
failed in a worker and a step whose worker died are judged by the same rule.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, exists, update
from sqlmodel import Session, col, select

from core.actions import registry
from core.engine import locks, outbox, rollback
from core.fsm import transition
from core.notify import outbox as notify_outbox
from db.enums import ActionClass, NotifyEvent, StepPhase, StepStatus
from db.enums import ExecutionStatus as S
from db.settings import get_settings
from db.tables import DlqEntry, Execution, ExecutionStep, User


@dataclass(frozen=True)
class DlqNote:
    """Why failed or timed-out work waits in the dead-letter queue, and where it stopped."""

    reason: str
    step_index: int | None
    attempts: int
    last_error: str | None


def is_retryable(action_class: str, action: str) -> bool:
    """DESIGN §3.5: ``read`` steps are at-least-once; ``modify``/``deploy`` only if the action is idempotent."""
    runner = registry.get_action(action)
    return ActionClass(action_class) is ActionClass.READ or bool(runner and runner.idempotent)


def may_retry(*, retryable: bool, attempts: int, max_attempts: int) -> bool:
    """A retryable step is tried again while it has attempts left under its policy."""
    return retryable and attempts < max_attempts


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: base·2^(attempt-1), capped, plus up to 50 % random extra."""
    delay = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    return float(delay * (1 + random.random() / 2))  # noqa: S311  jitter, not cryptography


def retry_delay_s(attempt: int) -> float:
    """The backoff before retrying after ``attempt``, with the configured base and cap."""
    settings = get_settings()
    return backoff_s(attempt, settings.retry_backoff_s, settings.retry_backoff_max_s)


def cancelled_by(session: Session, execution: Execution) -> str:
    """ "cancelled by NAME" and the reason given, for the failure banner (issue 16 item 5)."""
    who = session.exec(select(User.username).where(User.id == execution.cancel_requested_by)).first()
    reason = f": {execution.cancel_reason}" if execution.cancel_reason else ""
    return f"cancelled by {who or 'the system'}{reason}"


def execution_timeout(execution: Execution) -> str:
    """ "timeout: the execution's limit of N s ran out": the limit it ran with (its deadline from its start)."""
    if execution.started_at is None or execution.deadline_at is None:
        return "timeout: the execution's time limit ran out"
    limit_s = (execution.deadline_at - execution.started_at).total_seconds()
    return f"timeout: the execution's limit of {limit_s:.0f} s ran out"


def finish_execution(
    session: Session,
    execution: Execution,
    status: S,
    *,
    actor: str,
    message: str,
    error: str | None = None,
    dlq: DlqNote | None = None,
    held_locks: Collection[str] | None = None,
) -> None:
    """End an execution: its queue row, its locks, its status, its unfinished steps, and a DLQ entry when given.

    The locks go first: asset rows before queue rows before the execution row, the one lock order of
    core/engine/locks.py (the hand-off to the next execution waiting for each asset is sent after commit).
    ``held_locks``: a running execution's lease holder passes the locks it checked (``locks.release``).

    An execution whose rollback was running ends with the outcome that rollback was started for, whatever
    ended it (core/engine/rollback.py).
    """
    ending = rollback.conclude(session, execution, actor=actor)
    if ending is not None:
        status, message, error = ending.status, ending.message, ending.error
        dlq = DlqNote(**ending.dlq) if ending.dlq is not None else None
    locks.release(session, execution.id, held_by_running=held_locks)
    values: dict[str, Any] = {"error": error} if error else {}
    transition(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        to=status,
        expected=S(execution.status),
        actor=actor,
        message=message,
        values=values,
    )
    if status in {S.CANCELLED, S.TIMEOUT}:
        session.execute(
            update(ExecutionStep)
            .where(
                col(ExecutionStep.execution_id) == execution.id, col(ExecutionStep.status) == StepStatus.PENDING.value
            )
            .values(status=StepStatus.CANCELLED.value)
            .execution_options(synchronize_session=False)
        )
    if dlq is not None:
        session.add(
            DlqEntry(
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                reason=dlq.reason,
                step_index=dlq.step_index,
                attempts=dlq.attempts,
                last_error=dlq.last_error,
            )
        )
        notify_outbox.note(
            session,
            tenant_id=execution.tenant_id,
            execution_ids=[execution.id],
            event=NotifyEvent.DLQ,
            status=status,
            actor=actor,
        )
    session.flush()


def end_or_roll_back(
    session: Session,
    execution: Execution,
    status: S,
    *,
    actor: str,
    message: str,
    error: str | None = None,
    dlq: DlqNote | None = None,
    held_locks: Collection[str] | None = None,
) -> bool:
    """``finish_execution``, unless the plan's rollback for this end (``on_failure``, ``on_cancel``) runs first.

    Returns True if the execution ended, False if its rollback started (it ends when the rollback does, with
    this outcome: core/engine/rollback.py; its locks stay held meanwhile).
    """
    ending = rollback.Ending(status, message, error, asdict(dlq) if dlq is not None else None)
    if rollback.begin(session, execution, ending, actor=actor):
        return False
    finish_execution(
        session, execution, status, actor=actor, message=message, error=error, dlq=dlq, held_locks=held_locks
    )
    return True


def time_out(
    session: Session,
    execution: Execution,
    *,
    during: str,
    step_index: int,
    attempts: int,
    actor: str,
    held_locks: Collection[str] | None,
) -> bool:
    """The execution's time ran out while a step (or a fan-out) ran: ``end_or_roll_back`` as ``timeout`` with a DLQ
    entry ``execution_timeout`` naming where (``during``). True if it ended (False: its rollback started)."""
    why = f"{execution_timeout(execution)} during {during}"
    note = DlqNote("execution_timeout", step_index, attempts, why)
    return end_or_roll_back(
        session,
        execution,
        S.TIMEOUT,
        actor=actor,
        message="execution timeout",
        error=why,
        dlq=note,
        held_locks=held_locks,
    )


@dataclass(frozen=True)
class Ending:
    """What ending an execution after its last step reads: the row, and whether a main step did not complete."""

    execution: Execution
    unfinished: bool


def next_or_end(
    session: Session,
    execution_id: str,
    *,
    next_index: int,
    step_count: int,
    actor: str,
    held_locks: Collection[str] | None,
    moved: bool = False,
    ending: Ending | None = None,
) -> bool:
    """After a step (or a fan-out) went well: point the queue row at ``next_index`` and announce it, or, past the
    last step, end the execution ``completed`` (``partial`` if a main step did not complete). True if it ended.

    ``moved``: the queue row already points at the next step (a chain keeps its lease). ``ending``: read
    already (core/engine/settle.py).
    """
    if next_index < step_count:
        if not moved:
            outbox.move_to_step(session, execution_id, step_index=next_index)
        return False
    if ending is None:
        found = session.execute(_ENDING, {"end_execution_id": execution_id}).one()
        ending = Ending(found[0], bool(found[1]))
    final = S.PARTIAL if ending.unfinished else S.COMPLETED
    finish_execution(session, ending.execution, final, actor=actor, message=final.value, held_locks=held_locks)
    return True


# The last step's one read: the execution, and whether any of its steps did not complete (built once).
_ENDING = select(
    Execution,
    exists().where(
        col(ExecutionStep.execution_id) == bindparam("end_execution_id"),
        col(ExecutionStep.status) != StepStatus.COMPLETED.value,
        col(ExecutionStep.phase) == StepPhase.MAIN.value,  # rollback steps that did not run are no failure
    ),
).where(col(Execution.id) == bindparam("end_execution_id"))


def dead_letter(
    session: Session,
    execution: Execution,
    status: S,
    *,
    actor: str,
    reason: str,
    message: str,
    step_index: int | None = None,
    attempts: int = 0,
) -> None:
    """End an execution ``failed`` or ``timeout`` with ``message`` as its error and a DLQ entry for ``reason``."""
    finish_execution(
        session,
        execution,
        status,
        actor=actor,
        message=message,
        error=message,
        dlq=DlqNote(reason, step_index, attempts, message),
    )
