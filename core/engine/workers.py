"""The workers table: who runs work, since when, last heartbeat, current step (for console and checks)."""

from __future__ import annotations

import os
import socket

from sqlalchemy import case, func, update
from sqlmodel import Session, col, select

from core.identity import rbac
from core.identity.permissions import Permission
from core.schemas import Principal, QueueDepth, WorkerView
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import SlaClass
from db.tables import Execution, QueueItem, Worker

_WORKERS = Worker.__table__  # type: ignore[attr-defined]


def register_worker(worker_id: str, *, kind: str, threads: int) -> None:
    """Record a starting worker (this process)."""
    with session_scope() as session:
        session.merge(Worker(id=worker_id, host=socket.gethostname(), pid=os.getpid(), kind=kind, threads=threads))


def heartbeat(worker_id: str) -> None:
    """Mark the worker alive now."""
    with session_scope() as session:
        session.execute(
            update(Worker)
            .where(col(Worker.id) == worker_id)
            .values(last_seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def touch(session: Session, worker_id: str) -> None:
    """Mark the worker alive now, inside the caller's transaction (the watcher's heartbeat)."""
    session.execute(_WORKERS.update().where(_WORKERS.c.id == worker_id).values(last_seen_at=utcnow()))


def report_position(session: Session, worker_id: str, execution_id: str | None, step_index: int | None) -> None:
    """Tell the workers table which step this worker runs now (None, None: none)."""
    session.execute(
        _WORKERS.update()
        .where(_WORKERS.c.id == worker_id)
        .values(current_execution_id=execution_id, current_step_index=step_index, last_seen_at=utcnow())
    )


def mark_stopped(worker_id: str) -> None:
    """Record a clean stop."""
    with session_scope() as session:
        session.execute(
            update(Worker)
            .where(col(Worker.id) == worker_id)
            .values(stopped_at=utcnow(), current_execution_id=None, current_step_index=None)
            .execution_options(synchronize_session=False)
        )


def list_workers(principal: Principal, *, include_stopped: bool = False, limit: int = 200) -> list[WorkerView]:
    """Workers, most recently seen first (any role may look).

    Workers are shared by every tenant, their work is not: a worker's current execution (and step) is shown
    only when that execution belongs to the principal's tenant; otherwise only ``busy`` says it works.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        query = select(Worker)
        if not include_stopped:
            query = query.where(col(Worker.stopped_at).is_(None))
        rows = session.exec(query.order_by(col(Worker.last_seen_at).desc()).limit(limit)).all()
        current = {r.current_execution_id for r in rows if r.current_execution_id}
        ours = (
            set(
                session.exec(
                    select(Execution.id).where(
                        col(Execution.id).in_(current), Execution.tenant_id == principal.tenant_id
                    )
                ).all()
            )
            if current
            else set()
        )
        views = []
        for row in rows:
            view = WorkerView.model_validate(row, from_attributes=True)
            view = view.model_copy(update={"busy": view.current_execution_id is not None})
            if view.current_execution_id is not None and view.current_execution_id not in ours:
                view = view.model_copy(update={"current_execution_id": None, "current_step_index": None})
            views.append(view)
        return views


def queue_depths(principal: Principal) -> list[QueueDepth]:
    """The tenant's queue per SLA class (every class listed, zeros included); one grouped query."""
    now = utcnow()
    running = case((col(QueueItem.lease_expires_at) > now, 1), else_=0)
    parked = case((col(QueueItem.waiting_for_asset_id).is_not(None), 1), else_=0)
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        rows = session.exec(
            select(QueueItem.sla_class, func.count(), func.sum(running), func.sum(parked))
            .where(QueueItem.tenant_id == principal.tenant_id)
            .group_by(col(QueueItem.sla_class))
        ).all()
    found = {sla: (int(total), int(run or 0), int(park or 0)) for sla, total, run, park in rows}
    depths = []
    for sla in SlaClass:
        total, run, park = found.get(sla.value, (0, 0, 0))
        depths.append(QueueDepth(sla_class=sla.value, waiting=total - run - park, running=run, parked=park))
    return depths
