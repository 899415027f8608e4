"""Submitting plans: derivations stored, bad input refused with nothing written, idempotency, tenant modes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from core import (
    Conflict,
    InvalidInput,
    OverLevelBehaviour,
    SafetyRefused,
    TenantMode,
    cancel,
    get_execution,
    preview,
    principal,
    set_tenant_mode,
    submit,
)
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Approval, Execution, ExecutionEvent, ExecutionStep, QueueItem
from tests.factories import noop_plan, plan_text


def _row_counts() -> tuple[int, ...]:
    with session_scope() as session:
        return tuple(
            session.exec(select(func.count()).select_from(t)).one()
            for t in (Execution, ExecutionStep, ExecutionEvent, QueueItem, Approval)
        )


def test_submit_stores_what_the_server_derives(db: str) -> None:
    """The stored execution carries the derived class, level, SLA class, mode, run mode and one step per plan step."""
    result = submit(principal("alice", "demo"), plan_text(action_class="modify", steps=3))
    view = result.execution
    assert result.created
    assert (view.action_class, view.approval_level, view.sla_class) == ("modify", 1, "medium")
    assert (view.execution_mode, view.run_mode, view.requested_by, view.tenant) == (
        "background",
        "live",
        "alice",
        "demo",
    )
    assert [(s.index, s.name, s.target, s.status) for s in view.steps] == [
        (i, f"s{i}", "localhost", "pending") for i in range(3)
    ]
    assert len(view.plan_hash) == 64 and view.created_at.tzinfo is not None


def test_fast_level_zero_is_immediate_unless_background_asked(db: str) -> None:
    """A fast read plan is immediate; --background makes it background."""
    alice = principal("alice", "demo")
    assert submit(alice, noop_plan("a")).execution.execution_mode == "immediate"
    assert submit(alice, noop_plan("b"), background=True).execution.execution_mode == "background"


BAD_PLANS = {
    "malformed yaml": ("name: [", ""),
    "unknown action": ("name: x\nsteps: [{name: a, action: teleport, target: localhost}]", "steps[0].action"),
    "unknown asset": ("name: x\nsteps: [{name: a, action: noop, target: web-99}]", "steps[0].target"),
    "missing field": ("name: x\nsteps: [{name: a, action: shell, target: localhost}]", "steps[0].params.command"),
    "duplicate names": ("name: x\nsteps: [{name: a, action: noop, target: localhost}, {name: a, action: noop, target: localhost}]", "steps[1].name"),
    "secret literal": ("name: x\nsteps: [{name: a, action: shell, target: localhost, params: {command: ls, env: {DB_PASSWORD: hunter2}}}]", "steps[0].params.env.DB_PASSWORD"),
    "unknown secret": ("name: x\nsteps: [{name: a, action: shell, target: localhost, params: {command: ls, env: {T: '{{ secret:nope }}'}}}]", "secrets"),
    "too many steps": ("name: x\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop, target: localhost}}\n" for i in range(201)), "steps"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_PLANS))
def test_bad_plan_is_refused_with_its_path_and_writes_nothing(db: str, case: str) -> None:
    """Each kind of bad input gives InvalidInput naming the path; no row of any kind is written."""
    text, path = BAD_PLANS[case]
    before = _row_counts()
    with pytest.raises(InvalidInput) as info:
        submit(principal("alice", "demo"), text)
    assert info.value.path == path
    assert "hunter2" not in str(info.value)
    assert _row_counts() == before


def test_oversize_plan_is_refused(db: str) -> None:
    """A plan over the byte cap is refused before parsing."""
    huge = "name: x\ndescription: " + "a" * (get_settings().max_plan_bytes + 1) + "\nsteps: []\n"
    with pytest.raises(InvalidInput, match="limit"):
        submit(principal("alice", "demo"), huge)


def test_cross_tenant_asset_is_unknown(db: str) -> None:
    """Assets resolve in the submitter's tenant only: globex's plan naming a demo-only asset fails."""
    from core import Connection, add_asset

    add_asset(principal("admin", "demo"), "web-01", Connection.LOCAL)
    with pytest.raises(InvalidInput, match="unknown asset 'web-01' in tenant globex"):
        submit(principal("mallory", "globex"), "name: x\nsteps: [{name: a, action: noop, target: web-01}]")


def test_shell_needs_a_local_asset(db: str) -> None:
    """shell on an http asset is refused at submit, naming the step's target."""
    from core import Connection, add_asset

    add_asset(principal("admin", "demo"), "api", Connection.HTTP, base_url="http://127.0.0.1:9")
    with pytest.raises(InvalidInput) as info:
        submit(
            principal("alice", "demo"), "name: x\nsteps: [{name: a, action: shell, target: api, params: {command: ls}}]"
        )
    assert info.value.path == "steps[0].target"


def test_duplicate_submit_returns_the_existing_execution(db: str) -> None:
    """Same plan, same person, same tenant while pending → the same execution, created False."""
    alice = principal("alice", "demo")
    first = submit(alice, plan_text(action_class="modify"))
    again = submit(alice, plan_text(action_class="modify").replace("name: p", "name: p\ncontinue_on_error: false"))
    assert not again.created and again.execution.execution_id == first.execution.execution_id


def test_same_plan_by_someone_else_is_a_new_execution(db: str) -> None:
    """The derived key includes the actor: bob submitting alice's plan gets his own execution."""
    first = submit(principal("alice", "demo"), noop_plan())
    other = submit(principal("bob", "demo"), noop_plan())
    assert other.created and other.execution.execution_id != first.execution.execution_id


def test_resubmit_after_cancel_creates_a_new_execution(db: str) -> None:
    """After cancelled (or failed, rejected, expired, timeout) the same plan may be submitted again."""
    alice = principal("alice", "demo")
    first = submit(alice, plan_text(action_class="modify"))
    cancel(alice, first.execution.execution_id)
    second = submit(alice, plan_text(action_class="modify"))
    assert second.created and second.execution.execution_id != first.execution.execution_id


def test_completed_duplicate_within_window_is_returned_and_after_window_is_new(db: str) -> None:
    """A completed execution blocks resubmission for the window (24 h), then frees its key."""
    alice = principal("alice", "demo")
    first = submit(alice, noop_plan()).execution.execution_id
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == first).values(status="completed", finished_at=utcnow()))
    assert submit(alice, noop_plan()).execution.execution_id == first
    with session_scope() as session:
        session.execute(
            update(Execution).where(Execution.id == first).values(finished_at=utcnow() - timedelta(hours=25))
        )
    again = submit(alice, noop_plan())
    assert again.created and again.execution.execution_id != first


def test_caller_key_reused_for_another_plan_is_a_conflict(db: str) -> None:
    """A caller-given key identifies one plan: reusing it for a different plan is refused."""
    alice = principal("alice", "demo")
    first = submit(alice, noop_plan("one"), idempotency_key="deploy-42")
    assert first.execution.idempotency_key == "deploy-42"
    assert (
        submit(alice, noop_plan("one"), idempotency_key="deploy-42").execution.execution_id
        == first.execution.execution_id
    )
    with pytest.raises(Conflict, match="different plan"):
        submit(alice, noop_plan("two"), idempotency_key="deploy-42")


@pytest.mark.integration
def test_concurrent_submits_of_the_same_plan_yield_one_execution(postgres_db: str) -> None:
    """Eight threads submitting the same plan at once on PostgreSQL: one execution, one created=True."""
    alice = principal("alice", "demo")
    barrier = threading.Barrier(8)
    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(submit(alice, plan_text("race", action_class="modify")))
        except Exception as exc:
            results.append(exc)

    for _round in range(5):
        results.clear()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(not isinstance(r, Exception) for r in results), results
        ids = {r.execution.execution_id for r in results}  # type: ignore[attr-defined]
        assert len(ids) == 1
        assert sum(r.created for r in results) <= 1  # type: ignore[attr-defined]
        cancel(alice, ids.pop())  # frees the key for the next round
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Execution)).one() == 5


def test_tenant_off_refuses_and_dry_run_records_the_mode(db: str) -> None:
    """off refuses submissions; dry_run marks new executions dry_run; live above the level follows over_level."""
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    set_tenant_mode(admin, TenantMode.OFF)
    with pytest.raises(SafetyRefused) as info:
        submit(alice, noop_plan())
    assert info.value.reason == "tenant_off"
    set_tenant_mode(admin, TenantMode.DRY_RUN)
    assert submit(alice, noop_plan("d")).execution.run_mode == "dry_run"
    set_tenant_mode(admin, TenantMode.LIVE, max_live_level=0)
    assert submit(alice, noop_plan("l")).execution.run_mode == "live"
    assert submit(alice, plan_text("m", action_class="modify")).execution.run_mode == "dry_run"
    set_tenant_mode(admin, TenantMode.LIVE, max_live_level=0, over_level=OverLevelBehaviour.REFUSE)
    with pytest.raises(SafetyRefused):
        submit(alice, plan_text("n", action_class="modify"))


def test_preview_writes_nothing_and_matches_submit(db: str) -> None:
    """preview derives the same hash and level as the submit that follows, and writes no row."""
    alice = principal("alice", "demo")
    before = _row_counts()
    shown = preview(alice, plan_text(action_class="deploy"))
    assert _row_counts() == before
    assert (shown.approval_level, shown.approvals_required, shown.policy.approval_s) == (2, 2, 900)
    view = submit(alice, plan_text(action_class="deploy")).execution
    assert view.plan_hash == shown.plan_hash


def test_cancel_semantics(db: str) -> None:
    """Pending and queued cancel at once (queue row removed); twice is a no-op; a completed one is a conflict."""
    alice = principal("alice", "demo")
    queued = submit(alice, noop_plan("q"), background=True).execution.execution_id
    assert cancel(alice, queued, reason="not needed").status == "cancelled"
    assert cancel(alice, queued).status == "cancelled"
    with session_scope() as session:
        assert session.exec(select(QueueItem).where(QueueItem.execution_id == queued)).first() is None
    done = submit(alice, noop_plan("c")).execution.execution_id  # immediate: runs to completion inline
    assert get_execution(alice, done).status == "completed"
    with pytest.raises(Conflict):
        cancel(alice, done)


def test_cancel_of_running_is_a_request(db: str) -> None:
    """A running execution gets cancel_requested_at and an event; it stays running for its worker to stop."""
    alice = principal("alice", "demo")
    execution_id = submit(alice, noop_plan(), background=True).execution.execution_id
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == execution_id).values(status="running"))
    view = cancel(alice, execution_id, reason="stop")
    assert view.status == "running" and view.cancel_requested_at is not None
    assert cancel(alice, execution_id).cancel_requested_at == view.cancel_requested_at
    assert get_execution(alice, execution_id).status == "running"
