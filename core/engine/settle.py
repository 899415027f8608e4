"""The persist's first statement on PostgreSQL, with what can ride along with it (issue 15: a step in a handful
of statements).

Every persist starts by settling the lease (``outbox.settle_lease``): renew it if it is still this worker's
and read the execution's locks for the fencing check, in one round trip. Two common persists need more
right after it, and on PostgreSQL get it from the same statement (an ``UPDATE … FROM … RETURNING``, with a
data-modifying CTE for the second):

- ``into_next``: a step succeeded and the worker chains into the next one. The settle moves the queue row to
  that step and returns the rows its claim reads (``claim._load``: queue row, execution, step, asset, the
  requester's membership).
- ``into_end``: the last step of its phase succeeded. The settle writes the step completed and returns the
  execution with "did any main step not complete?" (``finish.next_or_end``'s read).

Each writes nothing unless the lease is still ours: the other writes join the settled queue row. None
back means nothing was written, for whatever reason (the lease was lost; the rows do not join, as after
tampering); the caller then settles the usual way, which tells those apart, and carries on as it would
without this module. SQLite cannot return another table's columns from an UPDATE, so it always takes the
usual way; the same tests run on both databases.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Table, bindparam, exists
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import Session, SQLModel, col

from core.engine import outbox, rollback
from core.engine.claim import ClaimRows, Grant, StepPlan
from core.engine.finish import Ending
from db.clock import utcnow
from db.enums import StepPhase, StepStatus
from db.prepared import Prepared, record
from db.tables import Asset, Execution, ExecutionStep, Membership, QueueItem


def into_next(session: Session, held: StepPlan) -> tuple[dict[str, int], ClaimRows] | None:
    """``settle_lease(advance_to=next step)`` and the next step's claim read in one statement: the execution's
    locks and the rows, or None (see the module docstring)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    found = _INTO_NEXT.first(session, _lease(held) | {"step": held.step_index + 1, "now": utcnow()})
    if found is None:
        return None
    # Records, not ORM rows: a chained claim only reads them (a gated plan, whose claim may write its
    # execution, never chains), and building four entities in the session cost more than the statement.
    item, execution, step, asset = (found[start:end] for start, end in _INTO_NEXT_SPANS)
    role, max_action_class, locks_held = found[_INTO_NEXT_SPANS[-1][1] :]
    grant = None if role is None else Grant(role, max_action_class)
    rows = ClaimRows(
        record(QueueItem, item), record(Execution, execution), record(ExecutionStep, step), record(Asset, asset), grant
    )
    return outbox.parse_held_locks(locks_held), rows


def into_end(session: Session, plan: StepPlan, done: dict[str, Any]) -> tuple[dict[str, int], Ending] | None:
    """``settle_lease`` with ``plan``'s step written completed (``done``: output, error, finished_at) and the
    execution's end read, in one statement: the execution's locks and the ending, or None (module docstring)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    params = _lease(plan) | {
        "done_index": plan.step_index,
        "done_status": StepStatus.COMPLETED.value,
        "done_output": done["output"],
        "done_error": done["error"],
        "done_finished_at": done["finished_at"],
    }
    found = _INTO_END.first(session, params)
    if found is None:
        return None
    execution = record(Execution, found[:_EXECUTION_COLUMNS])
    if rollback.has_rollback(execution):  # ending it may record how its rollback went: that needs the ORM row
        execution = session.get_one(Execution, execution.id)
    locks_held, unfinished = found[_EXECUTION_COLUMNS:]
    return outbox.parse_held_locks(locks_held), Ending(execution, bool(unfinished))


def _lease(plan: StepPlan) -> dict[str, Any]:
    expires = utcnow() + timedelta(seconds=plan.lease_s)
    return {"e_id": plan.execution_id, "token": plan.token, "expires": expires}


def _into_next_statement() -> Any:
    member = (col(Membership.tenant_id) == Execution.tenant_id) & (col(Membership.user_id) == Execution.requested_by)
    return (
        _table(QueueItem)
        .update()
        .where(col(QueueItem.execution_id) == bindparam("e_id"), col(QueueItem.lease_token) == bindparam("token"))
        .where(col(Execution.id) == QueueItem.execution_id)
        .where(col(ExecutionStep.execution_id) == QueueItem.execution_id)
        .where(col(ExecutionStep.step_index) == bindparam("step"))
        .where(col(Asset.id) == ExecutionStep.target_asset_id)
        .values(outbox.settle_values(advance=True))
        .returning(
            *(column for entity in _ENTITIES for column in _table(entity).columns),
            sa_select(col(Membership.role)).where(member).scalar_subquery(),
            sa_select(col(Membership.max_action_class)).where(member).scalar_subquery(),
            outbox.held_locks_column(),
        )
    )


def _into_end_statement() -> Any:
    settled = (
        sa_update(QueueItem)
        .where(col(QueueItem.execution_id) == bindparam("e_id"), col(QueueItem.lease_token) == bindparam("token"))
        .values(outbox.settle_values(advance=False))
        .returning(col(QueueItem.execution_id), outbox.held_locks_column().label("held"))
        .cte("settled")
    )
    # Read in the statement's snapshot, before its own write: the step being completed is left out.
    unfinished = exists().where(
        col(ExecutionStep.execution_id) == bindparam("e_id"),
        col(ExecutionStep.step_index) != bindparam("done_index"),
        col(ExecutionStep.status) != StepStatus.COMPLETED.value,
        col(ExecutionStep.phase) == StepPhase.MAIN.value,  # rollback steps that did not run are no failure
    )
    return (
        _table(ExecutionStep)
        .update()
        .where(col(ExecutionStep.execution_id) == settled.c.execution_id)
        .where(col(ExecutionStep.step_index) == bindparam("done_index"))
        .where(col(Execution.id) == settled.c.execution_id)
        .values(
            status=bindparam("done_status"),
            output=bindparam("done_output"),
            error=bindparam("done_error"),
            finished_at=bindparam("done_finished_at"),
        )
        .returning(*_table(Execution).columns, settled.c.held, unfinished)
    )


def _table(entity: type[SQLModel]) -> Table:
    return entity.__table__  # type: ignore[attr-defined,no-any-return]


def _spans(entities: tuple[type[SQLModel], ...]) -> list[tuple[int, int]]:
    """Where each entity's columns sit in a RETURNING of all of them, in order."""
    spans, start = [], 0
    for entity in entities:
        end = start + len(_table(entity).columns)
        spans.append((start, end))
        start = end
    return spans


_ENTITIES = (QueueItem, Execution, ExecutionStep, Asset)
_INTO_NEXT_SPANS = _spans(_ENTITIES)
# Built once: a step sends one of them (building one costs more CPU than sending it).
_INTO_NEXT = Prepared(_into_next_statement())
_INTO_END = Prepared(_into_end_statement())
_EXECUTION_COLUMNS = len(_table(Execution).columns)
