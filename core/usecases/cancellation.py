"""Cancellation (DESIGN §7): immediate before a worker has it, a request the worker honours after.

Operators cancel their own executions; admins any. Cancelling twice is a no-op.
"""

from __future__ import annotations

from core.audit import clean_comment, record_event
from core.engine import gates, locks
from core.errors import InvalidTransition, PermissionDenied
from core.fsm import transition
from core.identity import rbac
from core.identity.permissions import Permission
from core.reads.executions import build_view, load_execution
from core.schemas import ExecutionView, Principal
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import Role

CANCEL_AT_ONCE = frozenset({S.PENDING_APPROVAL, S.APPROVED, S.QUEUED})


def cancel(principal: Principal, execution_id: str, *, reason: str | None = None) -> ExecutionView:
    """Cancel an execution, or ask its worker to stop it if it is running.

    Raises:
        PermissionDenied: not the requester (and not an admin), or no operator role.
        InvalidTransition: it already ended otherwise (completed, failed, ...).
        NotFound: no such execution in this tenant.
    """
    reason = clean_comment(reason)
    view = _cancel(principal, execution_id, reason, settle=True)
    if view is None:  # a worker started it while we waited for its rows: decide again, as it is now
        view = _cancel(principal, execution_id, reason, settle=False)
    assert view is not None
    return view


def _cancel(principal: Principal, execution_id: str, reason: str | None, *, settle: bool) -> ExecutionView | None:
    """One try in one transaction; None (with ``settle``) when the execution moved on under us."""
    with session_scope() as session:
        execution = load_execution(session, principal.tenant_id, execution_id)
        role = rbac.require(session, principal, Permission.CANCEL_OWN)
        if execution.requested_by != principal.user_id and role is not Role.ADMIN:
            raise PermissionDenied(f"{principal.username} may cancel only their own executions")
        status = S(execution.status)
        if status is S.CANCELLED or (status is S.RUNNING and execution.cancel_requested_at is not None):
            return build_view(session, execution)  # cancelling twice is a no-op
        if status in CANCEL_AT_ONCE:
            # The engine's one lock order (core/engine/locks.py): its asset rows, then its queue row, then
            # the execution row; then look again, since a claim we waited for may have started it.
            locks.lock_unstarted(session, execution.id)
            session.refresh(execution)
            if settle and S(execution.status) is not status:
                return None
            locks.release(session, execution.id)  # its place in a line goes, and the next one is woken
            transition(
                session,
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                to=S.CANCELLED,
                expected=status,
                actor=principal.username,
                message=reason or "cancelled",
                values={
                    "cancel_requested_at": utcnow(),
                    "cancel_requested_by": principal.user_id,
                    "cancel_reason": reason,
                    # What the failure banner and ``show`` say (issue 16 item 5), as the worker does for a run.
                    "error": f"cancelled by {principal.username}" + (f": {reason}" if reason else ""),
                },
            )
        elif status is S.RUNNING:
            execution.cancel_requested_at = utcnow()
            execution.cancel_requested_by = principal.user_id
            execution.cancel_reason = reason
            session.add(execution)
            record_event(
                session,
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                kind="cancel_requested",
                actor=principal.username,
                message=reason or "cancel requested",
            )
            gates.release_for_cancel(session, execution)  # parked at a level-3 gate: end it now
        else:
            raise InvalidTransition(execution.id, status, S.CANCELLED)
        session.flush()
        session.refresh(execution)
        return build_view(session, execution)
