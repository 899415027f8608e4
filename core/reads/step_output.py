"""Reading steps' output: the chunks written while they run, and each attempt's output in full (issue 16).

``list_output_chunks`` is what live views poll: the chunks of one execution after the last id they have, one
indexed query. ``list_attempt_outputs`` gives each attempt of each step its own output: the chunks of an
attempt joined, or the step row's output for an attempt that ended before its first batch. Both are scoped by
the principal's tenant; an execution of another tenant is NotFound. Everything here was masked before it was
written (core/engine/live_output.py).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.identity import rbac
from core.identity.permissions import Permission
from core.reads.attempt_outputs import join_attempt_outputs
from core.reads.executions import load_execution
from core.schemas import AttemptOutputView, OutputChunkView, Principal
from core.transactions import session_scope
from db.tables import Execution, ExecutionStep, StepOutputChunk

MAX_CHUNKS = 2000


def list_output_chunks(
    principal: Principal, execution_id: str, *, after_id: int = 0, limit: int = MAX_CHUNKS
) -> list[OutputChunkView]:
    """The execution's output chunks written after ``after_id``, oldest first (at most ``limit``).

    Raises:
        NotFound: no such execution in this tenant. PermissionDenied: no role in the tenant any more.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        rows = _chunks(session, principal.tenant_id, execution_id, after_id=after_id, limit=min(limit, MAX_CHUNKS))
        if not rows and after_id == 0:
            load_execution(session, principal.tenant_id, execution_id)  # none yet, or not this tenant's
        return [_chunk_view(row) for row in rows]


def list_attempt_outputs(principal: Principal, execution_id: str) -> list[AttemptOutputView]:
    """Every attempt of every step that has output, by step, run and attempt (each attempt's own output).

    Raises:
        NotFound: no such execution in this tenant. PermissionDenied: no role in the tenant any more.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        execution = load_execution(session, principal.tenant_id, execution_id)
        return attempt_outputs(session, execution)


def attempt_outputs(session: Session, execution: Execution) -> list[AttemptOutputView]:
    """Each attempt's output: its chunks joined; the step row's for its current attempt when it has none."""
    steps = session.exec(
        select(ExecutionStep.step_index, ExecutionStep.attempts, ExecutionStep.output).where(
            ExecutionStep.execution_id == execution.id, ExecutionStep.tenant_id == execution.tenant_id
        )
    ).all()
    rows = _chunks(session, execution.tenant_id, execution.id, after_id=0, limit=None)
    chunks = [(r.step_index, r.run, r.attempt, r.seq, r.text) for r in rows]
    return join_attempt_outputs(steps, chunks, execution.attempt)


def _chunks(
    session: Session, tenant_id: str, execution_id: str, *, after_id: int, limit: int | None
) -> list[StepOutputChunk]:
    query = (
        select(StepOutputChunk)
        .where(
            StepOutputChunk.tenant_id == tenant_id,
            StepOutputChunk.execution_id == execution_id,
            col(StepOutputChunk.id) > after_id,
        )
        .order_by(col(StepOutputChunk.id))
    )
    return list(session.exec(query.limit(limit) if limit is not None else query).all())


def _chunk_view(row: StepOutputChunk) -> OutputChunkView:
    return OutputChunkView(
        id=row.id or 0,
        step_index=row.step_index,
        run=row.run,
        attempt=row.attempt,
        text=row.text,
        created_at=row.created_at,
    )
