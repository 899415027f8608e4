"""The tamper-evident audit chain (core/audit.py, core/ops/audit_chain.py) on SQLite and PostgreSQL: a real
execution's trail verifies; an edited, deleted or inserted event is found and named; legacy events without
a hash are reported as unchained; concurrent appends to one execution never fork the chain."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import delete, insert, update
from sqlmodel import col, select

from core import NotFound, PermissionDenied, principal, submit, verify_chain
from core.audit import event_hash, record_event
from db.clock import utcnow
from db.engine import session_scope
from db.enums import ExecutionStatus
from db.tables import Execution, ExecutionEvent
from tests.factories import noop_plan, raw_execution

_EVENTS = ExecutionEvent.__table__  # type: ignore[attr-defined]
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]


def _admin() -> Any:
    return principal("admin", "demo")


def _completed_execution(name: str = "n") -> str:
    """A level-0 noop plan: it runs in the caller and ends completed, with a handful of events."""
    result = submit(principal("alice", "demo"), noop_plan(name))
    assert result.execution.status == "completed"
    return result.execution.execution_id


def _events(execution_id: str) -> list[ExecutionEvent]:
    with session_scope() as session:
        return list(
            session.exec(
                select(ExecutionEvent)
                .where(ExecutionEvent.execution_id == execution_id)
                .order_by(col(ExecutionEvent.id))
            ).all()
        )


def _notes(execution_id: str, tenant_id: str, n: int) -> None:
    """``n`` events without a status change, each in its own transaction."""
    for i in range(n):
        with session_scope() as session:
            record_event(
                session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t", message=f"{i}"
            )


def test_a_real_execution_chain_verifies(db: str) -> None:
    """Every event links to the one before it, and verify (one execution, or the tenant) finds it intact."""
    execution_id = _completed_execution()
    events = _events(execution_id)
    assert len(events) >= 4
    assert events[0].prev_hash is None
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    one = verify_chain(_admin(), execution_id)
    assert one.intact and one.first_break is None
    assert (one.executions, one.events, one.unchained_events) == (1, len(events), 0)
    everything = verify_chain(_admin())
    assert everything.intact and everything.execution_id is None and everything.executions == 1


def test_a_modified_message_is_named(db: str) -> None:
    """Editing a stored event's message breaks its hash: reported as modified, at that event."""
    execution_id = _completed_execution()
    target = _events(execution_id)[2]
    with session_scope() as session:
        session.execute(update(_EVENTS).where(_EVENTS.c.id == target.id).values(message="nothing to see here"))
    report = verify_chain(_admin(), execution_id)
    assert not report.intact and report.first_break is not None
    assert (report.first_break.execution_id, report.first_break.event_id) == (execution_id, target.id)
    assert report.first_break.problem == "modified"


def test_a_deleted_middle_event_is_named(db: str) -> None:
    """Deleting an event leaves the next one linking to nothing: reported as deleted, at the next event."""
    execution_id = _completed_execution()
    events = _events(execution_id)
    with session_scope() as session:
        session.execute(delete(_EVENTS).where(_EVENTS.c.id == events[2].id))
    report = verify_chain(_admin())
    assert report.first_break is not None
    assert (report.first_break.event_id, report.first_break.problem) == (events[3].id, "deleted")


def test_deleting_the_last_events_is_found(db: str) -> None:
    """Cutting the end of the trail (the completed transition) contradicts the execution's status."""
    execution_id = _completed_execution()
    events = _events(execution_id)
    with session_scope() as session:
        session.execute(delete(_EVENTS).where(_EVENTS.c.id == events[-1].id))
    report = verify_chain(_admin(), execution_id)
    assert report.first_break is not None
    assert (report.first_break.event_id, report.first_break.problem) == (events[-2].id, "deleted")
    assert "completed" in report.first_break.detail


@pytest.mark.parametrize("forgery", ["recomputed", "made_up"])
def test_an_inserted_forged_event_is_named(db: str, forgery: str) -> None:
    """A forged event slipped between two real ones, whether its hash is recomputed (the forger knows the
    algorithm) or made up, is not in the chain: reported as inserted, naming the forged event."""
    with session_scope() as session:
        target = raw_execution(session, ExecutionStatus.RUNNING)
        other = raw_execution(session, ExecutionStatus.RUNNING)
        ids = (target.id, other.id, target.tenant_id)
    execution_id, other_id, tenant_id = ids
    for _ in range(3):  # interleaved, so the target's events have ids of the other one's between them
        _notes(execution_id, tenant_id, 1)
        _notes(other_id, tenant_id, 1)
    before, after = _events(execution_id)[1], _events(execution_id)[2]
    free_id = next(e.id for e in _events(other_id) if before.id < (e.id or 0) < (after.id or 0))
    forged: dict[str, Any] = {
        "execution_id": execution_id,
        "tenant_id": tenant_id,
        "kind": "approval",
        "from_status": None,
        "to_status": None,
        "step_index": None,
        "actor": "bob",
        "message": "approved",
        "data_json": "{}",
        "created_at": utcnow(),
    }
    digest = event_hash(before.hash, **forged) if forgery == "recomputed" else "0" * 64
    with session_scope() as session:
        session.execute(delete(_EVENTS).where(_EVENTS.c.id == free_id))
        session.execute(insert(_EVENTS).values(id=free_id, prev_hash=before.hash, hash=digest, **forged))
    report = verify_chain(_admin(), execution_id)
    assert report.first_break is not None
    assert (report.first_break.event_id, report.first_break.problem) == (free_id, "inserted")


def test_an_appended_event_without_a_hash_is_named(db: str) -> None:
    """A row added behind the application's back (no hash) after chained events is an insertion."""
    execution_id = _completed_execution()
    with session_scope() as session:
        tenant_id = _events(execution_id)[0].tenant_id
        new_id = session.execute(
            insert(_EVENTS)
            .values(
                execution_id=execution_id, tenant_id=tenant_id, kind="status", message="forged", created_at=utcnow()
            )
            .returning(_EVENTS.c.id)
        ).scalar_one()
    report = verify_chain(_admin(), execution_id)
    assert report.first_break is not None
    assert (report.first_break.event_id, report.first_break.problem) == (new_id, "inserted")


def test_events_from_before_the_chain_are_unchained_not_broken(db: str) -> None:
    """Legacy events (hash NULL) before the first chained one are counted as unchained; the chain that
    follows starts afresh and verifies."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        legacy_only = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, legacy_id, tenant_id = row.id, legacy_only.id, row.tenant_id
        for target in (execution_id, execution_id, legacy_id):
            session.execute(
                insert(_EVENTS).values(
                    execution_id=target, tenant_id=tenant_id, kind="note", message="old", created_at=utcnow()
                )
            )
    _notes(execution_id, tenant_id, 2)
    report = verify_chain(_admin())
    assert report.intact
    assert (report.unchained_events, report.unchained_executions) == (3, 1)
    assert _events(execution_id)[2].prev_hash is None  # the chain starts after the legacy events


def test_verify_is_admin_only_and_tenant_scoped(db: str) -> None:
    """An operator may not verify; another tenant's admin does not find the execution."""
    execution_id = _completed_execution()
    with pytest.raises(PermissionDenied):
        verify_chain(principal("alice", "demo"), execution_id)
    with pytest.raises(NotFound):
        verify_chain(principal("admin", "globex"), execution_id)
    assert verify_chain(principal("admin", "globex")).executions == 0


def test_concurrent_appends_do_not_fork(db: str) -> None:
    """Two threads appending to one execution at once, each event in its own transaction: one chain, no fork."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.RUNNING)
        execution_id, tenant_id = row.id, row.tenant_id
    per_thread = 25
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def append() -> None:
        try:
            barrier.wait()
            _notes(execution_id, tenant_id, per_thread)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    events = _events(execution_id)
    assert len(events) == 2 * per_thread
    assert len({e.prev_hash for e in events}) == len(events)  # no two events claim the same predecessor
    report = verify_chain(_admin(), execution_id)
    assert report.intact, report.first_break


def test_verifying_a_tenant_pages_through_every_execution(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executions are read a page at a time (short transactions); every one is checked exactly once."""
    monkeypatch.setattr("core.ops.audit_chain.PAGE", 2)
    ids = [_completed_execution(f"n{i}") for i in range(5)]
    with session_scope() as session:  # a tie on created_at must not skip or repeat one
        session.execute(update(_EXECUTIONS).where(_EXECUTIONS.c.id.in_(ids[:3])).values(created_at=utcnow()))
    report = verify_chain(_admin())
    assert report.intact and report.executions == 5
    assert report.events == sum(len(_events(e)) for e in ids)
