"""The execution state machine (DESIGN §4) and the one function allowed to change a status.

``transition`` is a compare-and-set (``UPDATE … WHERE id = :id AND status = :from``) that writes its
audit event in the same transaction; an edge not in ``EDGES`` raises InvalidTransition. ``transition_many``
is the same for a batch of executions leaving one status (one UPDATE). A move to an end also writes the
``finished`` notifications of those who asked for them (core/notify/outbox.py), in the same transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Update, bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select

from core.audit import record_event
from core.errors import InvalidTransition, NotFound
from core.notify import outbox as notify_outbox
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import NotifyEvent
from db.prepared import Prepared
from db.tables import Execution

EDGES: dict[S, frozenset[S]] = {
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED, S.CANCELLED}),
    S.APPROVED: frozenset({S.QUEUED, S.RUNNING, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.TIMEOUT, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.PARTIAL, S.CANCELLED, S.TIMEOUT}),
    # The operator edge: requeue from the DLQ, recorded as a new attempt.
    S.FAILED: frozenset({S.QUEUED}),
    S.TIMEOUT: frozenset({S.QUEUED}),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.COMPLETED: frozenset(),
    S.PARTIAL: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[S] = frozenset({S.REJECTED, S.EXPIRED, S.COMPLETED, S.FAILED, S.PARTIAL, S.CANCELLED, S.TIMEOUT})
ACTIVE: frozenset[S] = frozenset(set(S) - TERMINAL)

# Ends after which the same plan may be submitted again (core/idempotency.py).
RESUBMITTABLE: frozenset[S] = frozenset({S.FAILED, S.CANCELLED, S.REJECTED, S.EXPIRED, S.TIMEOUT})


def initial_status(approval_level: int) -> S:
    """The status a new execution is created in: the create edge of §4."""
    return S.APPROVED if approval_level == 0 else S.PENDING_APPROVAL


def is_legal(from_status: S, to_status: S) -> bool:
    """True if §4 has the edge ``from_status → to_status``."""
    return to_status in EDGES[from_status]


def transition(
    session: Session,
    *,
    execution_id: str,
    tenant_id: str,
    to: S,
    actor: str | None,
    message: str = "",
    expected: S | None = None,
    values: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> S:
    """Move an execution to ``to`` with compare-and-set, and audit it in the same transaction.

    Args:
        expected: the status the caller believes it is in; read from the row when omitted.
        values: other columns to set in the same UPDATE (e.g. ``error``, ``started_at``).

    Returns:
        The status the execution left.

    Raises:
        NotFound: no such execution in this tenant.
        InvalidTransition: the edge does not exist, or another writer changed the status first.
    """
    current = expected or _status(session, execution_id, tenant_id)
    if not is_legal(current, to):
        raise InvalidTransition(execution_id, current, to)
    changes = _changes(to, values)
    ending = to in TERMINAL
    move = _move(tuple(sorted(changes)), ending=ending)
    params = {"m_id": execution_id, "m_tenant_id": tenant_id, "m_from": current.value} | {
        f"m_new_{name}": value for name, value in changes.items()
    }
    if ending:
        row = move.first(session, params)
        moved, has_channels = row is not None, bool(row and row[0])
    else:
        moved, has_channels = move.rowcount(session, params) == 1, False
    if not moved:
        raise InvalidTransition(execution_id, _status(session, execution_id, tenant_id), to)
    _refresh_held(session, execution_id, changes)
    _status_event(session, execution_id, tenant_id, current, to, actor=actor, message=message, data=data)
    if has_channels:  # the requester who opted in hears of the end (core/notify/outbox.py): a row, no network
        notify_outbox.note(
            session,
            tenant_id=tenant_id,
            execution_ids=[execution_id],
            event=NotifyEvent.FINISHED,
            status=to,
            actor=actor,
        )
    return current


def transition_many(
    session: Session,
    *,
    tenant_id: str,
    execution_ids: Sequence[str],
    to: S,
    expected: S,
    actor: str | None,
    message: str = "",
) -> None:
    """``transition`` for several executions of one tenant that leave the same status (a batch submit queueing
    its level-0 plans): one compare-and-set UPDATE; their events, in the order given, go with the transaction's.

    All or none: the caller's transaction is to roll back on the error. ORM objects of these rows held by the
    session are not refreshed (the statement goes to the table).

    Raises:
        NotFound: an id is no execution of this tenant.
        InvalidTransition: the edge does not exist, or an execution (the first named) was not in ``expected``.
    """
    ids = list(dict.fromkeys(execution_ids))
    if not ids:
        return
    if not is_legal(expected, to):
        raise InvalidTransition(ids[0], expected, to)
    # The columns to set ride as parameters of the one prebuilt statement (its WHERE has the only bind names).
    result = session.execute(
        _MOVE_MANY, {"b_ids": ids, "b_tenant_id": tenant_id, "b_from": expected.value, **_changes(to, None)}
    )
    if result.rowcount != len(ids):  # type: ignore[attr-defined]
        statuses = dict(session.execute(_STATUSES, {"b_ids": ids, "b_tenant_id": tenant_id}).all())
        for execution_id in ids:
            if execution_id not in statuses:
                raise NotFound("execution", execution_id)
            if statuses[execution_id] != to.value:
                raise InvalidTransition(execution_id, statuses[execution_id], to)
        raise InvalidTransition(ids[0], to.value, to)  # all hold ``to`` now: some had been moved there already
    for execution_id in ids:  # appended: written with the transaction's other events at commit (core/audit.py)
        _status_event(session, execution_id, tenant_id, expected, to, actor=actor, message=message)


_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_MOVE_MANY = update(_EXECUTIONS).where(
    _EXECUTIONS.c.id.in_(bindparam("b_ids", expanding=True)),
    _EXECUTIONS.c.tenant_id == bindparam("b_tenant_id"),
    _EXECUTIONS.c.status == bindparam("b_from"),
)
_STATUSES = select(_EXECUTIONS.c.id, _EXECUTIONS.c.status).where(
    _EXECUTIONS.c.id.in_(bindparam("b_ids", expanding=True)), _EXECUTIONS.c.tenant_id == bindparam("b_tenant_id")
)


@functools.cache
def _move(columns: tuple[str, ...], *, ending: bool) -> Prepared:
    """The compare-and-set UPDATE for a set of columns, built once (a step's start and end each send one).

    Ending, whether the tenant has any notification channel rides on it (RETURNING): a tenant without one
    (most) pays no extra round trip for the ``finished`` notifications.
    """
    statement: Update = (
        update(_EXECUTIONS)
        .where(
            _EXECUTIONS.c.id == bindparam("m_id"),
            _EXECUTIONS.c.tenant_id == bindparam("m_tenant_id"),
            _EXECUTIONS.c.status == bindparam("m_from"),
        )
        .values({name: bindparam(f"m_new_{name}") for name in columns})
    )
    if ending:
        statement = statement.returning(notify_outbox.tenant_has_channels(_EXECUTIONS.c.tenant_id))
    return Prepared(statement)


def _refresh_held(session: Session, execution_id: str, changes: dict[str, Any]) -> None:
    """The statement went to the table: an ``Execution`` the session holds takes the new values, as the ORM's
    own UPDATE would have given it (a caller may read ``execution.status`` after the move)."""
    held = session.identity_map.get(identity_key(Execution, execution_id))
    if held is not None:
        for name, value in changes.items():
            set_committed_value(held, name, value)


def _status_event(
    session: Session,
    execution_id: str,
    tenant_id: str,
    left: S,
    to: S,
    *,
    actor: str | None,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    """The audit event of one move ``left → to`` (the trail's record of every status change)."""
    record_event(
        session,
        execution_id=execution_id,
        tenant_id=tenant_id,
        kind="status",
        actor=actor,
        message=message,
        from_status=left.value,
        to_status=to.value,
        data=data,
    )


def _changes(to: S, values: dict[str, Any] | None) -> dict[str, Any]:
    """The columns a move to ``to`` sets besides ``values``: the status, timestamps, the idempotency flag."""
    now = utcnow()
    changes: dict[str, Any] = {"status": to.value, "updated_at": now, **(values or {})}
    if to in TERMINAL:
        changes.setdefault("finished_at", now)
    if to in RESUBMITTABLE:
        changes["idempotency_active"] = False
    if to is S.RUNNING:
        changes.setdefault("started_at", now)
    return changes


def _status(session: Session, execution_id: str, tenant_id: str) -> S:
    status = session.exec(
        select(Execution.status).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)
    ).first()
    if status is None:
        raise NotFound("execution", execution_id)
    return S(status)
