"""The outbox (DESIGN §3.3): an approved execution becomes ``queued`` with a queue row, in one transaction.

The broker message is sent only after that transaction commits (``ports.dispatch_committed``).
"""

from __future__ import annotations

from sqlmodel import Session, select

from core.fsm import transition
from core.ports import get_dispatcher
from db.clock import utcnow
from db.enums import ExecutionStatus
from db.tables import Execution, QueueItem


def enqueue(session: Session, execution: Execution, *, actor: str | None) -> None:
    """Move an ``approved`` execution to ``queued`` and write its queue row."""
    transition(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        to=ExecutionStatus.QUEUED,
        expected=ExecutionStatus.APPROVED,
        actor=actor,
        message="queued for a worker",
    )
    # With a dispatcher the message follows the commit; without one, the sweeper's first pass sends it.
    sent_at = utcnow() if get_dispatcher() is not None else None
    session.add(
        QueueItem(
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            sla_class=execution.sla_class,
            dispatched_at=sent_at,
        )
    )
    session.flush()


def dequeue(session: Session, execution_id: str) -> None:
    """Remove the execution's queue row, if any (cancelled before a worker took it)."""
    row = session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).first()
    if row is not None:
        session.delete(row)
        session.flush()
