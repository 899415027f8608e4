"""Retention (core/ops/retention.py) on SQLite and PostgreSQL: old ended executions lose their events and step
output but keep their rows; recent, active and unresolved-DLQ work and other tenants are untouched; a dry
run changes nothing; the audit chain of a pruned execution still verifies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from core import (
    InvalidInput,
    PermissionDenied,
    PruneReport,
    get_execution,
    list_events,
    list_output_chunks,
    principal,
    prune,
    submit,
    verify_chain,
)
from core.audit import record_event
from db.clock import utcnow
from db.engine import session_scope
from db.enums import ExecutionStatus
from db.tables import DlqEntry, Execution, ExecutionEvent, ExecutionStep, StepOutputChunk
from tests.factories import plan_text, raw_execution

MONTH = timedelta(days=30)


def _ended(tenant: str = "demo", user: str = "alice", *, age: timedelta = timedelta(days=40), name: str = "p") -> str:
    """A completed shell execution (output "hi") that finished ``age`` ago."""
    execution_id = submit(principal(user, tenant), plan_text(name, command="echo hi")).execution.execution_id
    with session_scope() as session:
        session.execute(update(Execution).where(col(Execution.id) == execution_id).values(finished_at=utcnow() - age))
    return execution_id


def _failed_in_dlq(*, resolved: bool) -> str:
    """A failed execution that ended 40 days ago, with a DLQ entry (open or resolved) and two events."""
    with session_scope() as session:
        row = raw_execution(session, ExecutionStatus.FAILED)
        row.finished_at = utcnow() - timedelta(days=40)
        session.add(row)
        session.add(
            DlqEntry(
                execution_id=row.id,
                tenant_id=row.tenant_id,
                reason="step_failed",
                resolved_at=utcnow() if resolved else None,
                resolution="discarded" if resolved else None,
            )
        )
        for kind in ("step_failed", "dead_letter"):
            record_event(session, execution_id=row.id, tenant_id=row.tenant_id, kind=kind, actor="w")
        return row.id


def _event_kinds(execution_id: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.exec(
                select(ExecutionEvent.kind)
                .where(ExecutionEvent.execution_id == execution_id)
                .order_by(col(ExecutionEvent.id))
            ).all()
        )


def _outputs(execution_id: str) -> list[str | None]:
    with session_scope() as session:
        return list(session.exec(select(ExecutionStep.output).where(ExecutionStep.execution_id == execution_id)).all())


def test_old_ended_executions_lose_events_and_output_and_nothing_else(db: str) -> None:
    """Only ended-before-the-cutoff work of this tenant without an open DLQ entry is pruned; rows stay."""
    old = _ended(name="old")
    recent = _ended(name="recent", age=timedelta(days=1))
    discarded = _failed_in_dlq(resolved=True)
    waiting = _failed_in_dlq(resolved=False)
    other_tenant = _ended("globex", "mallory", name="theirs")
    with session_scope() as session:
        running = raw_execution(session, ExecutionStatus.RUNNING)
        record_event(session, execution_id=running.id, tenant_id=running.tenant_id, kind="note", actor="w")
        running_id = running.id
    before = {e: _event_kinds(e) for e in (old, recent, waiting, other_tenant, running_id)}
    old_view = get_execution(principal("alice", "demo"), old)

    report = prune(principal("admin", "demo"), MONTH)

    assert (report.executions, report.dry_run, report.tenant) == (2, False, "demo")
    assert report.events_deleted == len(before[old]) + 2 and report.outputs_cleared == 1
    assert _event_kinds(old) == ["pruned"] and _event_kinds(discarded) == ["pruned"]
    assert _outputs(old) == [None]
    after = get_execution(principal("alice", "demo"), old)  # the row and its steps tell the same story
    assert (after.status, after.started_at, after.finished_at) == (
        old_view.status,
        old_view.started_at,
        old_view.finished_at,
    )
    assert [(s.name, s.status, s.attempts) for s in after.steps] == [
        (s.name, s.status, s.attempts) for s in old_view.steps
    ]
    for kept in (recent, waiting, other_tenant, running_id):
        assert _event_kinds(kept) == before[kept]
    assert _outputs(recent) == ["hi\n"] and _outputs(other_tenant) == ["hi\n"]
    marker = list_events(principal("admin", "demo"), old)[0]
    assert marker.kind == "pruned" and marker.data["events_deleted"] == len(before[old])

    chain = verify_chain(principal("admin", "demo"))
    assert chain.intact and chain.pruned_executions == 2
    assert prune(principal("admin", "demo"), MONTH).executions == 0  # nothing left to prune
    assert verify_chain(principal("admin", "globex")).pruned_executions == 0


def test_dry_run_counts_what_a_prune_removes_and_changes_nothing(db: str) -> None:
    """The dry run's counts are exactly what the real prune then removes."""
    ids = [_ended(name=f"p{i}") for i in range(2)]
    kinds = {e: _event_kinds(e) for e in ids}
    estimate = prune(principal("admin", "demo"), MONTH, dry_run=True)
    assert estimate.dry_run and estimate.batches == 0
    assert {e: _event_kinds(e) for e in ids} == kinds
    assert all(_outputs(e) == ["hi\n"] for e in ids)
    done = prune(principal("admin", "demo"), MONTH)
    assert (estimate.executions, estimate.events_deleted, estimate.outputs_cleared) == (
        done.executions,
        done.events_deleted,
        done.outputs_cleared,
    )
    assert done.executions == 2 and done.events_deleted == sum(len(k) for k in kinds.values())


def test_batches_commit_as_they_go_and_report_progress(db: str) -> None:
    """With a batch of one row, each execution is its own transaction, and progress is reported after each."""
    for i in range(3):
        _ended(name=f"b{i}")
    seen: list[PruneReport] = []
    report = prune(principal("admin", "demo"), MONTH, batch_rows=1, progress=seen.append)
    assert report.batches == 3 and [r.executions for r in seen] == [1, 2, 3]
    with session_scope() as session:
        left = session.exec(
            select(func.count()).select_from(ExecutionEvent).where(ExecutionEvent.kind != "pruned")
        ).one()
    assert left == 0


def test_prune_is_admin_only_and_needs_a_positive_age(db: str) -> None:
    """An operator may not prune; a zero or negative age is invalid input."""
    _ended()
    with pytest.raises(PermissionDenied):
        prune(principal("alice", "demo"), MONTH)
    with pytest.raises(InvalidInput):
        prune(principal("admin", "demo"), timedelta(0))
    assert prune(principal("admin", "demo"), MONTH, dry_run=True).executions == 1


def test_streamed_output_goes_with_the_step_output(db: str) -> None:
    """An old execution's output chunks (live output, each attempt's) are pruned with it; a recent one's stay."""
    old, recent = _ended(name="old"), _ended(name="recent", age=timedelta(days=1))
    with session_scope() as session:
        for execution_id in (old, recent):
            execution = session.get(Execution, execution_id)
            assert execution is not None
            for attempt in (1, 2):
                session.add(
                    StepOutputChunk(
                        execution_id=execution_id,
                        tenant_id=execution.tenant_id,
                        step_index=0,
                        run=1,
                        attempt=attempt,
                        seq=0,
                        text=f"attempt {attempt}\n",
                    )
                )
    report = prune(principal("admin", "demo"), MONTH)
    assert report.executions == 1 and report.outputs_cleared == 1 + 2  # the step's output and its two chunks
    assert list_output_chunks(principal("alice", "demo"), old) == []
    assert [c.text for c in list_output_chunks(principal("alice", "demo"), recent)] == ["attempt 1\n", "attempt 2\n"]
