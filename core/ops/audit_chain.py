"""Verifying the tamper-evident audit chain that core/audit.py writes.

Each execution's events, in id order, form one chain: every event's ``hash`` covers its stored content
and its ``prev_hash``, which must equal the hash of the execution's previous event. Verification
recomputes every hash and names the first broken link of each execution:

- ``modified``: an event's content no longer matches its hash;
- ``deleted``: an event links to an event that is not there, or the execution's status is not the one
  its last recorded change says (events at the end were removed);
- ``inserted``: an event the chain does not pass through (a forged event, or a fork).

Events written before the chain existed (``hash`` NULL) are counted as *unchained*, not judged, as long
as they all come before the first chained event. An execution whose first event is a ``pruned`` event
(core/ops/retention.py) is intact: that event links to the head of the history retention removed.
The chain is keyless: it reveals edits made behind the application's back, not a forger who recomputes
every hash after the one they changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import Session

from core.audit import event_hash
from core.errors import NotFound
from core.identity import rbac
from core.identity.rbac import Permission
from core.schemas import ChainBreak, ChainReport, Principal
from core.transactions import session_scope
from db.tables import Execution, ExecutionEvent

PRUNED_EVENT = "pruned"
PAGE = 200  # executions per transaction: bounds how long a verify holds SQLite's write lock

_EVENTS = ExecutionEvent.__table__  # type: ignore[attr-defined]
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]


@dataclass
class _Tally:
    executions: int = 0
    events: int = 0
    unchained_events: int = 0
    unchained_executions: int = 0
    pruned_executions: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)


def verify_chain(principal: Principal, execution_id: str | None = None) -> ChainReport:
    """Recompute the audit chain of one execution, or of every execution of the principal's tenant (admin).

    Raises:
        PermissionDenied: not an admin of the tenant. NotFound: no such execution in the tenant.
    """
    tally = _Tally()
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        if execution_id is not None:
            found = session.execute(
                select(_EXECUTIONS.c.id).where(
                    _EXECUTIONS.c.id == execution_id, _EXECUTIONS.c.tenant_id == principal.tenant_id
                )
            ).first()
            if found is None:
                raise NotFound("execution", execution_id)
            _verify_page(session, [execution_id], tally)
    if execution_id is None:
        after: tuple[Any, str] | None = None
        while True:
            with session_scope() as session:
                page = _execution_page(session, principal.tenant_id, after)
                if not page:
                    break
                _verify_page(session, [row.id for row in page], tally)
            after = (page[-1].created_at, page[-1].id)
    return ChainReport(
        tenant=principal.tenant,
        execution_id=execution_id,
        executions=tally.executions,
        events=tally.events,
        unchained_events=tally.unchained_events,
        unchained_executions=tally.unchained_executions,
        pruned_executions=tally.pruned_executions,
        intact=not tally.breaks,
        first_break=tally.breaks[0] if tally.breaks else None,
        breaks=tally.breaks,
    )


def _execution_page(session: Session, tenant_id: str, after: tuple[Any, str] | None) -> Sequence[Any]:
    """The next PAGE executions of the tenant, oldest first (keyset on created_at, id)."""
    query = select(_EXECUTIONS.c.id, _EXECUTIONS.c.created_at).where(_EXECUTIONS.c.tenant_id == tenant_id)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            or_(
                _EXECUTIONS.c.created_at > created_at,
                and_(_EXECUTIONS.c.created_at == created_at, _EXECUTIONS.c.id > last_id),
            )
        )
    return session.execute(query.order_by(_EXECUTIONS.c.created_at, _EXECUTIONS.c.id).limit(PAGE)).all()


def _verify_page(session: Session, execution_ids: list[str], tally: _Tally) -> None:
    # One statement for the events and their execution's status: a single snapshot, so a status change
    # committed while we read can never look like a missing event.
    rows = session.execute(
        select(_EVENTS, _EXECUTIONS.c.status.label("execution_status"))
        .join(_EXECUTIONS, _EXECUTIONS.c.id == _EVENTS.c.execution_id)
        .where(_EVENTS.c.execution_id.in_(execution_ids))
        .order_by(_EVENTS.c.execution_id, _EVENTS.c.id)
    ).all()
    by_execution: dict[str, list[Any]] = {execution_id: [] for execution_id in execution_ids}
    for row in rows:
        by_execution[row.execution_id].append(row)
    for execution_id in execution_ids:  # in the caller's order (oldest first), so breaks come out in it
        events = by_execution[execution_id]
        tally.executions += 1
        tally.events += len(events)
        unchained = sum(1 for e in events if e.hash is None)
        tally.unchained_events += unchained
        if events and unchained == len(events):
            tally.unchained_executions += 1
        first_chained = next((e for e in events if e.hash is not None), None)
        if first_chained is not None and first_chained.kind == PRUNED_EVENT:
            tally.pruned_executions += 1
        broken = check_events(execution_id, events[0].execution_status if events else None, events)
        if broken is not None:
            tally.breaks.append(broken)


def check_events(execution_id: str, status: str | None, events: Sequence[Any]) -> ChainBreak | None:
    """The first broken link of one execution's events (rows of execution_events, in id order), or None.

    ``status`` is the execution's current status, compared with its last recorded change of status.
    """

    def broken(event_id: int, problem: str, detail: str) -> ChainBreak:
        return ChainBreak(execution_id=execution_id, event_id=event_id, problem=problem, detail=detail)

    expected: str | None = None  # the hash of the last chained event
    started = False
    position: dict[str, int] = {}  # hash → index in events
    last_change: str | None = None
    for i, event in enumerate(events):
        if event.hash is None:
            if started:
                return broken(event.id, "inserted", f"event {event.id} has no hash but follows chained events")
            continue
        if _recompute(event) != event.hash:
            after = events[i + 1] if i + 1 < len(events) else None
            if started and after is not None and after.hash is not None and after.prev_hash == expected:
                # The next event links past this one: it was never part of the chain.
                return broken(event.id, "inserted", f"event {event.id} is not in the chain and its hash is forged")
            return broken(event.id, "modified", f"event {event.id} does not match its hash: it was modified")
        if not started:
            if event.prev_hash is not None and event.kind != PRUNED_EVENT:
                return broken(
                    event.id, "deleted", f"event {event.id} is the first but links to an earlier one: events deleted"
                )
        elif event.prev_hash != expected:
            if event.prev_hash in position:
                skipped = events[position[event.prev_hash] + 1]
                return broken(
                    skipped.id,
                    "inserted",
                    f"event {skipped.id} is not in the chain: event {event.id} links to the event before it",
                )
            if event.prev_hash is None:
                return broken(event.id, "inserted", f"event {event.id} starts a new chain in the middle of the trail")
            return broken(
                event.id,
                "deleted",
                f"event {event.id} links to an event that is not there: an event before it was deleted "
                "(or the one before it was rewritten)",
            )
        started = True
        expected = event.hash
        position[event.hash] = i
        if event.to_status is not None:
            last_change = event.to_status
    if last_change is not None and status is not None and last_change != status:
        last = events[-1].id
        return broken(
            last,
            "deleted",
            f"the execution is {status} but its last recorded change is to {last_change}: events after "
            f"event {last} were deleted (or the status was changed outside the FSM)",
        )
    return None


def _recompute(event: Any) -> str:
    return event_hash(
        event.prev_hash,
        execution_id=event.execution_id,
        tenant_id=event.tenant_id,
        kind=event.kind,
        from_status=event.from_status,
        to_status=event.to_status,
        step_index=event.step_index,
        actor=event.actor,
        message=event.message,
        data_json=event.data_json,
        created_at=event.created_at,
    )
