"""Retention: prune the bulky history of executions that ended long ago, keeping the record truthful.

What goes: the events and the step output of *ended* executions (core.fsm.TERMINAL) of one tenant whose
``finished_at`` is older than the cutoff. What stays: the executions and step rows themselves (status,
times, errors), approvals, DLQ entries, and everything of work that is still active or sits in the DLQ
unresolved (an operator may still need its trail to decide).

Each pruned execution keeps a ``pruned`` event: a link of the tenant's audit chain that lists the links it
removes (their numbers and the hash ending each run), so ``audit verify`` accepts exactly those gaps and
reports the execution as pruned rather than broken (core/ops/audit_chain.py). Work is committed in batches of about
``batch_rows`` deleted rows; an execution is always pruned whole, in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.audit import record_event
from core.errors import InvalidInput
from core.fsm import TERMINAL
from core.identity import rbac
from core.identity.permissions import Permission
from core.ops.audit_chain import PRUNED_EVENT, pruned_runs
from core.schemas import Principal, PruneReport
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import NotificationStatus
from db.tables import DlqEntry, Execution, ExecutionEvent, ExecutionStep, Notification, StepOutputChunk

BATCH_ROWS = 5000
CANDIDATES_PER_QUERY = 100

log = logging.getLogger("opsconductor.retention")

_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_EVENTS = ExecutionEvent.__table__  # type: ignore[attr-defined]
_STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]
_CHUNKS = StepOutputChunk.__table__  # type: ignore[attr-defined]
_DLQ = DlqEntry.__table__  # type: ignore[attr-defined]
_NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]


def prune(
    principal: Principal,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[PruneReport], None] | None = None,
) -> PruneReport:
    """Delete the events and clear the step output of the tenant's executions that ended before
    ``now - older_than`` (admin). With ``dry_run``, count what would go and change nothing.

    Args:
        progress: called with the running totals after each committed batch (long runs).

    Raises:
        InvalidInput: ``older_than`` is not positive. PermissionDenied: not an admin of the tenant.
    """
    if older_than <= timedelta(0):
        raise InvalidInput("must be a positive duration", path="older_than")
    if batch_rows < 1:
        raise InvalidInput("must be at least 1", path="batch_rows")
    cutoff = utcnow() - older_than
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        if dry_run:
            return _estimate(session, principal, cutoff)
    totals = {"executions": 0, "events_deleted": 0, "outputs_cleared": 0, "batches": 0}
    while True:
        with session_scope() as session:
            # Re-checked in every batch: a role revoked during a long run stops it.
            rbac.require(session, principal, Permission.ADMIN)
            done = _prune_batch(session, principal, cutoff, older_than, batch_rows, totals)
        if done == 0:
            break
        totals["batches"] += 1
        if progress is not None:
            progress(_report(principal, cutoff, False, totals))
    report = _report(principal, cutoff, False, totals)
    log.info(
        "prune by %s in tenant %s (ended before %s): %d executions, %d events deleted, %d step outputs cleared",
        principal.username,
        principal.tenant,
        cutoff.isoformat(),
        report.executions,
        report.events_deleted,
        report.outputs_cleared,
    )
    return report


def _candidates(tenant_id: str, cutoff: datetime) -> ColumnElement[bool]:
    """Ended before the cutoff, not waiting in the DLQ, and with something left to prune."""
    open_dlq = exists().where(_DLQ.c.execution_id == _EXECUTIONS.c.id, _DLQ.c.resolved_at.is_(None))
    events_left = exists().where(_EVENTS.c.execution_id == _EXECUTIONS.c.id, _EVENTS.c.kind != PRUNED_EVENT)
    output_left = exists().where(_STEPS.c.execution_id == _EXECUTIONS.c.id, _STEPS.c.output.is_not(None))
    chunks_left = exists().where(_CHUNKS.c.execution_id == _EXECUTIONS.c.id)
    return and_(
        _EXECUTIONS.c.tenant_id == tenant_id,
        _EXECUTIONS.c.status.in_([s.value for s in TERMINAL]),
        _EXECUTIONS.c.finished_at < cutoff,
        ~open_dlq,
        or_(events_left, output_left, chunks_left),
    )


def _prune_batch(
    session: Session,
    principal: Principal,
    cutoff: datetime,
    older_than: timedelta,
    batch_rows: int,
    totals: dict[str, int],
) -> int:
    """Prune whole executions until about ``batch_rows`` rows went; returns how many executions."""
    # SKIP LOCKED (PostgreSQL): a second prune running at once takes other executions, never the same.
    ids = (
        session.execute(
            select(_EXECUTIONS.c.id)
            .where(_candidates(principal.tenant_id, cutoff))
            .order_by(_EXECUTIONS.c.finished_at, _EXECUTIONS.c.id)
            .limit(CANDIDATES_PER_QUERY)
            .with_for_update(key_share=True, skip_locked=True)
        )
        .scalars()
        .all()
    )
    rows = pruned = 0
    for execution_id in ids:
        events, outputs = _prune_one(session, principal, execution_id, cutoff, older_than)
        totals["executions"] += 1
        totals["events_deleted"] += events
        totals["outputs_cleared"] += outputs
        pruned += 1
        rows += events + outputs
        if rows >= batch_rows:
            break
    return pruned


def _prune_one(
    session: Session, principal: Principal, execution_id: str, cutoff: datetime, older_than: timedelta
) -> tuple[int, int]:
    """Chain a ``pruned`` event that lists the links it removes, then delete them and clear the step output.

    The tenant's chain runs through these links (core/audit_links.py), so removing them leaves gaps in its
    numbers. The ``pruned`` event, itself a keyed link, records each gap as ``[first, last, hash of last]``
    (``removed_links``): verify accepts exactly those gaps, and checks that the link after each one links to
    the recorded hash. Earlier ``pruned`` events stay: they vouch for earlier gaps.
    """
    rows = session.execute(
        select(_EVENTS.c.chain_seq, _EVENTS.c.hash)
        .where(_EVENTS.c.execution_id == execution_id, _EVENTS.c.kind != PRUNED_EVENT)
        .order_by(_EVENTS.c.chain_seq)
    ).all()
    linked = [row for row in rows if row.chain_seq is not None]
    tenant_id = principal.tenant_id
    record_event(
        session,
        execution_id=execution_id,
        tenant_id=tenant_id,
        kind=PRUNED_EVENT,
        actor=principal.username,
        message=f"retention: {len(rows)} events and the step output of this execution were pruned",
        data={
            "events_deleted": len(rows),
            "older_than_s": int(older_than.total_seconds()),
            "cutoff": cutoff.isoformat(),
            "removed_links": pruned_runs([int(r.chain_seq) for r in linked], [str(r.hash) for r in linked]),
        },
    )
    events: Any = session.execute(
        delete(_EVENTS).where(_EVENTS.c.execution_id == execution_id, _EVENTS.c.kind != PRUNED_EVENT)
    )
    outputs: Any = session.execute(
        update(_STEPS).where(_STEPS.c.execution_id == execution_id, _STEPS.c.output.is_not(None)).values(output=None)
    )
    # Each attempt's streamed output goes with the step output (counted with it: both are "the output").
    chunks: Any = session.execute(delete(_CHUNKS).where(_CHUNKS.c.execution_id == execution_id))
    # Its settled notifications go too (their attempts were events, pruned above); a pending one is still sent.
    session.execute(
        delete(_NOTIFICATIONS).where(
            _NOTIFICATIONS.c.execution_id == execution_id, _NOTIFICATIONS.c.status != NotificationStatus.PENDING.value
        )
    )
    return int(events.rowcount), int(outputs.rowcount) + int(chunks.rowcount)


def _estimate(session: Session, principal: Principal, cutoff: datetime) -> PruneReport:
    """What a prune would remove now, counted in three queries."""
    ids = select(_EXECUTIONS.c.id).where(_candidates(principal.tenant_id, cutoff))
    executions = session.execute(select(func.count()).select_from(ids.subquery())).scalar_one()
    events = session.execute(
        select(func.count()).select_from(_EVENTS).where(_EVENTS.c.execution_id.in_(ids), _EVENTS.c.kind != PRUNED_EVENT)
    ).scalar_one()
    outputs = session.execute(
        select(func.count()).select_from(_STEPS).where(_STEPS.c.execution_id.in_(ids), _STEPS.c.output.is_not(None))
    ).scalar_one()
    totals = {"executions": executions, "events_deleted": events, "outputs_cleared": outputs, "batches": 0}
    return _report(principal, cutoff, True, totals)


def _report(principal: Principal, cutoff: datetime, dry_run: bool, totals: dict[str, int]) -> PruneReport:
    return PruneReport(tenant=principal.tenant, cutoff=cutoff, dry_run=dry_run, **totals)
