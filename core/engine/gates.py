"""Level-3 step gates, the engine's side (DESIGN §3.6): before every step of a level-3 execution, an
approver other than the requester must give the go for that step.

A step without its go does not run: the engine parks the execution's queue row until the gate's
deadline (the policy's approval timeout) and records ``gate_waiting``. The go itself is a use case
(``core.usecases.approvals.approve_gate``); ``open_gate`` then wakes the execution.

Waiting at a gate is an approval wait, with its own limit, so it does not count against the execution
limit (``execution_s`` is running time): while parked, the deadline is held past the gate's own deadline
(the sweeper must not end a parked execution ``timeout``), and the go sets it to the deadline it had when
parked plus the time spent waiting; the go's event records both. A gate that is not opened in time ends
the execution ``timeout`` with a DLQ entry (``gate_timeout``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core.approval_rules import approval_sealed
from core.audit import record_event
from core.engine import locks, outbox
from db.clock import utcnow
from db.enums import Decision, Role
from db.tables import Approval, Execution, ExecutionEvent, Membership, QueueItem

GATED_LEVEL = 3
GATE_WAITING = "gate_waiting"
LOCK_GRACE_S = 3600  # locks outlive the moved deadline by this much; released at the end anyway


def needs_gate(execution: Execution) -> bool:
    """True if every step of this execution waits for an approver's go."""
    return execution.approval_level >= GATED_LEVEL


def gate_open(session: Session, execution: Execution, step_index: int) -> bool:
    """True if an eligible approver (not the requester, still approver/admin) gave the go for this step."""
    rows = session.exec(
        select(Approval, Membership.role)
        .join(Membership, (Approval.approver_id == Membership.user_id) & (Approval.tenant_id == Membership.tenant_id))  # type: ignore[arg-type]
        .where(
            Approval.execution_id == execution.id,
            Approval.step_index == step_index,
            Approval.decision == Decision.APPROVED.value,
            Approval.plan_hash == execution.plan_hash,
            Approval.approver_id != execution.requested_by,
        )
    ).all()
    return any(Role(role).rank >= Role.APPROVER.rank and approval_sealed(a) for a, role in rows)


def waiting_since(session: Session, execution_id: str, step_index: int) -> ExecutionEvent | None:
    """The ``gate_waiting`` event of this step, if the step has been parked for its gate."""
    return session.exec(
        select(ExecutionEvent)
        .where(
            ExecutionEvent.execution_id == execution_id,
            ExecutionEvent.kind == GATE_WAITING,
            ExecutionEvent.step_index == step_index,
        )
        .order_by(col(ExecutionEvent.id).desc())
    ).first()


def open_gate(session: Session, execution: Execution, step_index: int) -> dict[str, Any] | None:
    """The step got its go: give back the time spent waiting and wake the parked queue row (engine side).

    Returns what the go's event should record (``waited_s``, the new ``deadline_at``), or None when the step
    was not parked at this gate (yet): the claim then finds the gate open, and nothing was waited.
    """
    item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution.id)).first()
    if item is None or item.step_index != step_index or item.lease_token is not None:
        return None
    parked = waiting_since(session, execution.id, step_index)
    moved: dict[str, Any] | None = None
    if parked is not None and execution.deadline_at is not None:
        waited = utcnow() - parked.created_at
        held_from = _deadline_when_parked(parked)
        # Running time left when parked is given back whole: the wait was an approval wait.
        execution.deadline_at = (held_from or execution.deadline_at) + waited
        session.add(execution)
        locks.extend(session, execution.id, locks.lock_expiry(execution.deadline_at, LOCK_GRACE_S))
        moved = {"waited_s": round(waited.total_seconds(), 3), "deadline_at": execution.deadline_at.isoformat()}
    outbox.release_now(session, execution.id)
    return moved


def release_for_cancel(session: Session, execution: Execution) -> None:
    """A cancel was requested: a step parked at its gate is released now, so a worker ends the execution
    ``cancelled`` at once instead of when the gate's deadline comes (its claim honours the cancel)."""
    if not needs_gate(execution) or execution.rollback_status is not None:
        return  # a rollback's step waits for its go whatever cancel was asked (core/engine/rollback.py)
    item = session.exec(select(QueueItem).where(QueueItem.execution_id == execution.id)).first()
    if item is None or item.lease_token is not None:
        return  # a worker holds it: its watcher sees the request
    if waiting_since(session, execution.id, item.step_index) is not None:
        outbox.release_now(session, execution.id)


def park_for_gate(
    session: Session, item: QueueItem, execution: Execution, step_index: int, wait_s: int, *, actor: str
) -> None:
    """Hold the queue row until the gate's deadline and say so in the trail (engine side).

    A started execution's deadline is held past the gate's deadline for as long as it had left, so the
    wait never ends it ``timeout``; its locks are kept as long. The go puts the deadline back (``open_gate``).
    """
    now = utcnow()
    data: dict[str, Any] | None = None
    if execution.deadline_at is not None:
        left = max(execution.deadline_at - now, timedelta(0))
        data = {"deadline_at": execution.deadline_at.isoformat(), "left_s": round(left.total_seconds(), 3)}
        execution.deadline_at = now + timedelta(seconds=wait_s) + left
        session.add(execution)
        locks.extend(session, execution.id, locks.lock_expiry(execution.deadline_at, LOCK_GRACE_S))
    outbox.hold_until(session, item.id, now + timedelta(seconds=wait_s))
    record_event(
        session,
        execution_id=item.execution_id,
        tenant_id=item.tenant_id,
        kind=GATE_WAITING,
        actor=actor,
        step_index=step_index,
        message=f"step {step_index} waits for an approver's go (up to {wait_s}s; the wait is not running time)",
        data=data,
    )


def _deadline_when_parked(parked: ExecutionEvent) -> datetime | None:
    """The execution's deadline when it was parked at this gate (None: parked before it started, or by an
    older version that did not hold the deadline)."""
    try:
        value = json.loads(parked.data_json or "{}").get("deadline_at")
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except (ValueError, AttributeError):
        return None
