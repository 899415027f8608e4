"""Rollback steps (issue 17 item 3, DESIGN §14), on SQLite and PostgreSQL, with real ``shell`` steps.

A plan's ``on_failure`` steps run when a main step fails for good or times out, its ``on_cancel`` steps when it
is cancelled; the execution still ends with its own outcome, the rollback's recorded apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from core import approve, cancel, engine, get_execution, list_events, principal, submit
from core.engine import sweeper
from core.engine.claim import claim_step
from core.engine.steps import Outcome
from core.errors import InvalidInput
from core.usecases.dlq import list_dlq, requeue
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Execution, ExecutionStep
from tests.engine_support import drive, processes_matching, tee_step, unique_seconds


@pytest.fixture
def fast(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Small backoffs, a quick watcher, short leases; one step per ``process`` call."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    monkeypatch.setenv("OPSC_HEARTBEAT_S", "0.2")
    monkeypatch.setenv("OPSC_LEASE_TTL_S", "1")
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


ALICE = ("alice", "demo")


def _bg(plan: str) -> str:
    return submit(principal(*ALICE), plan, background=True).execution.execution_id


def _failing(name: str = "break") -> str:
    return f"  - {{name: {name}, action: shell, target: localhost, params: {{command: 'false'}}}}\n"


def _sleeping(marker: str) -> str:
    return f"  - {{name: wait, action: shell, target: localhost, timeout_s: 60, params: {{command: [sleep, '{marker}']}}}}\n"


def _kinds(execution_id: str) -> list[str]:
    return [e.kind for e in list_events(principal(*ALICE), execution_id)]


def test_a_failing_step_runs_on_failure_and_the_execution_still_ends_failed(fast: str, tmp_path: Path) -> None:
    """The on_failure steps run in order after the failure; the execution is failed (DLQ as ever), the rollback
    completed; on_cancel steps and the main steps after the failure never ran."""
    log = tmp_path / "log"
    plan = (
        "name: rb\nsteps:\n"
        + tee_step("first", log, "main-0")
        + _failing()
        + tee_step("never", log, "main-2")
        + "on_failure:\n"
        + tee_step("undo-1", log, "undo-1")
        + tee_step("undo-2", log, "undo-2")
        + "on_cancel:\n"
        + tee_step("on-cancel", log, "cancel")
    )
    execution_id = _bg(plan)
    outcomes = drive(execution_id)
    assert outcomes[-1] is Outcome.FINISHED
    assert log.read_text().splitlines() == ["main-0", "undo-1", "undo-2"]
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("failed", "completed")
    assert [(s.name, s.status) for s in view.steps] == [
        ("first", "completed"),
        ("break", "failed"),
        ("never", "pending"),
    ]
    assert [(s.index, s.phase, s.name, s.status) for s in view.rollback_steps] == [
        (3, "on_failure", "undo-1", "completed"),
        (4, "on_failure", "undo-2", "completed"),
        (5, "on_cancel", "on-cancel", "skipped"),
    ]
    assert view.error == "step 1 (break): exit code 1"
    [entry] = list_dlq(principal(*ALICE))
    assert (entry.reason, entry.step_index, entry.last_error) == ("retries_exhausted", 1, "exit code 1")
    kinds = _kinds(execution_id)
    assert kinds.count("rollback_started") == 1 and kinds.count("rollback_finished") == 1
    assert kinds.index("rollback_started") < kinds.index("rollback_finished")


def test_a_plan_that_succeeds_runs_no_rollback_and_is_completed_not_partial(fast: str, tmp_path: Path) -> None:
    """Rollback steps that never ran are skipped; they make no execution partial."""
    log = tmp_path / "log"
    execution_id = _bg("name: ok\nsteps:\n" + tee_step("a", log, "a") + "on_failure:\n" + tee_step("undo", log, "undo"))
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("completed", None)
    assert [s.status for s in view.rollback_steps] == ["skipped"]
    assert log.read_text() == "a\n" and "rollback_started" not in _kinds(execution_id)


def test_a_cancel_runs_on_cancel_and_the_execution_ends_cancelled(fast: str, tmp_path: Path) -> None:
    """A cancel stops the running step, then the on_cancel steps run (the cancel does not stop them)."""
    log = tmp_path / "log"
    marker = unique_seconds(31)
    plan = (
        "name: cx\nsteps:\n"
        + _sleeping(marker)
        + "on_failure:\n"
        + tee_step("undo", log, "undo")
        + "on_cancel:\n"
        + tee_step("tidy-1", log, "tidy-1")
        + tee_step("tidy-2", log, "tidy-2")
    )
    execution_id = _bg(plan)
    worker = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    worker.start()
    deadline = time.monotonic() + 10
    while not processes_matching(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_matching(f"sleep {marker}"), "the command never started"
    cancel(principal(*ALICE), execution_id, reason="stop it")
    worker.join(timeout=20)
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("cancelled", "completed")
    assert view.error is not None and view.error.startswith("cancelled by alice")
    assert [s.status for s in view.steps] == ["cancelled"]
    assert [(s.name, s.status) for s in view.rollback_steps] == [
        ("undo", "skipped"),
        ("tidy-1", "completed"),
        ("tidy-2", "completed"),
    ]
    assert log.read_text().splitlines() == ["tidy-1", "tidy-2"]
    assert list_dlq(principal(*ALICE)) == []  # a cancel is no DLQ matter, rollback or not


def test_a_failing_rollback_step_fails_the_rollback_and_starts_no_other(fast: str, tmp_path: Path) -> None:
    """The first on_failure step fails for good: the rollback is failed, its later steps skipped, no on_cancel
    runs, and the execution ends failed for the main step's failure."""
    log = tmp_path / "log"
    plan = (
        "name: rf\nsteps:\n"
        + _failing()
        + "on_failure:\n"
        + _failing("undo-fails")
        + tee_step("undo-after", log, "after")
        + "on_cancel:\n"
        + tee_step("tidy", log, "tidy")
    )
    execution_id = _bg(plan)
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("failed", "failed")
    assert view.error == "step 0 (break): exit code 1"
    assert [(s.name, s.status, s.attempts) for s in view.rollback_steps] == [
        ("undo-fails", "failed", 3),  # a read rollback step is retried like any read step
        ("undo-after", "skipped", 0),
        ("tidy", "skipped", 0),
    ]
    assert not log.exists()
    assert _kinds(execution_id).count("rollback_started") == 1
    [entry] = list_dlq(principal(*ALICE))
    assert (entry.reason, entry.step_index) == ("retries_exhausted", 0)


def test_an_execution_timeout_runs_on_failure_within_its_own_grace(fast: str, tmp_path: Path) -> None:
    """The execution's limit runs out during a step: on_failure still runs (its deadline moved by the rollback
    steps' limits), and the execution ends timeout."""
    log = tmp_path / "log"
    marker = unique_seconds(33)
    execution_id = _bg("name: to\nsteps:\n" + _sleeping(marker) + "on_failure:\n" + tee_step("undo", log, "undo"))
    worker = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    worker.start()
    deadline = time.monotonic() + 10
    while not processes_matching(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == execution_id).values(deadline_at=utcnow()))
    worker.join(timeout=20)
    with session_scope() as session:
        moved = session.get(Execution, execution_id)
        assert moved is not None and moved.deadline_at is not None
        assert moved.deadline_at > utcnow()  # the rollback's grace: the step limit of `undo`
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("timeout", "completed")
    assert log.read_text() == "undo\n"
    assert list_dlq(principal(*ALICE))[0].reason == "execution_timeout"


def test_a_lost_workers_unknown_step_runs_on_failure(fast: str, tmp_path: Path) -> None:
    """A modify step whose worker died has an unknown outcome: the execution goes to the DLQ as ever, after its
    on_failure steps ran."""
    log = tmp_path / "log"
    plan = (
        "name: lost\nsteps:\n  - {name: change, action: shell, target: localhost, action_class: modify, "
        "params: {command: [echo, hi]}}\non_failure:\n" + tee_step("undo", log, "undo")
    )
    execution_id = submit(principal(*ALICE), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    lost = claim_step(execution_id, "doomed-worker")
    assert lost is not None
    lost.masker.close()
    deadline = time.monotonic() + 30
    while sweeper.sweep(redispatch_after_s=3600).reclaimed == 0:
        assert time.monotonic() < deadline, "the lease of a dead worker was never reclaimed"
        time.sleep(0.05)
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("failed", "completed")
    assert view.steps[0].status == "unknown" and log.read_text() == "undo\n"
    assert list_dlq(principal(*ALICE))[0].reason == "unknown_outcome"


def test_a_requeue_from_the_dlq_may_roll_back_again(fast: str, tmp_path: Path) -> None:
    """Requeued, the failed step runs again; failing again, its on_failure runs again on the new attempt."""
    log = tmp_path / "log"
    execution_id = _bg("name: rq\nsteps:\n" + _failing() + "on_failure:\n" + tee_step("undo", log, "undo"))
    drive(execution_id)
    view = requeue(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("queued", None)
    assert [s.status for s in view.rollback_steps] == ["pending"]
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status, view.attempt) == ("failed", "completed", 2)
    assert log.read_text() == "undo\nundo\n"


def test_the_hash_and_the_approval_cover_on_failure(fast: str) -> None:
    """A changed on_failure step is another plan (another hash, approved afresh); the class and level count the
    rollback steps; a stored rollback step edited after approval is refused by the worker."""
    base = "name: h\nsteps:\n  - {name: look, action: shell, target: localhost, params: {command: [echo, a]}}\n"
    undo = "on_failure:\n  - {{name: undo, action: shell, target: localhost, params: {{command: [echo, {0}]}}}}\n"
    alice = principal(*ALICE)
    plain = submit(alice, base).execution
    first = submit(alice, base + undo.format("one"), background=True).execution
    second = submit(alice, base + undo.format("two"), background=True).execution
    assert len({plain.plan_hash, first.plan_hash, second.plan_hash}) == 3
    # `echo` is read-only in this tenant, so only a rollback step that modifies raises the level.
    modify = base + (
        "on_failure:\n  - {name: undo, action: shell, target: localhost, action_class: modify, "
        "params: {command: [echo, b]}}\n"
    )
    raised = submit(alice, modify, background=True).execution
    assert (raised.action_class, raised.approval_level, raised.status) == ("modify", 1, "pending_approval")
    approve(principal("bob", "demo"), raised.execution_id)
    again = submit(alice, modify.replace("[echo, b]", "[echo, c]"), background=True).execution
    assert again.status == "pending_approval" and again.plan_hash != raised.plan_hash
    # The approved plan's rollback step edited in the stored text: its hash no longer holds, nothing runs.
    with session_scope() as session:
        stored = session.get(Execution, raised.execution_id)
        assert stored is not None and '"command":["echo","b"]' in stored.plan_json
        stored.plan_json = stored.plan_json.replace('["echo","b"]', '["echo","x"]')
        session.add(stored)
    drive(raised.execution_id)
    view = get_execution(alice, raised.execution_id)
    assert (view.status, view.plan_intact, view.rollback_status) == ("failed", False, None)
    assert "plan_refused" in _kinds(raised.execution_id)


def test_rollback_validation_names_the_rollback_path(fast: str) -> None:
    """Errors in rollback steps are reported at their own path: unknown asset, duplicate name, missing field."""
    alice = principal(*ALICE)
    with pytest.raises(InvalidInput) as caught:
        submit(
            alice,
            "name: v\nsteps:\n  - {name: a, action: noop, target: localhost}\n"
            "on_failure:\n  - {name: b, action: noop, target: nowhere}\n",
        )
    assert caught.value.issues == [("on_failure[0].target", "unknown asset 'nowhere' in tenant demo")]
    with pytest.raises(InvalidInput) as caught:
        submit(
            alice,
            "name: v\nsteps:\n  - {name: a, action: noop, target: localhost}\n"
            "on_cancel:\n  - {name: c, action: noop, target: localhost}\n  - {name: a, action: noop, target: localhost}\n",
        )
    assert caught.value.issues == [("on_cancel[1].name", "duplicate of steps[0].name ('a')")]
    with session_scope() as session:
        assert session.exec(select(Execution)).first() is None


def test_a_step_whose_row_disagrees_with_the_plan_starts_no_rollback(fast: str, tmp_path: Path) -> None:
    """A running execution whose next step's row was edited outside the application is refused (plan_mismatch)
    and ends failed without running anything more, its rollback included."""
    log = tmp_path / "log"
    plan = "name: tm\nsteps:\n" + tee_step("a", log, "a") + tee_step("b", log, "b") + "on_failure:\n"
    execution_id = _bg(plan + tee_step("undo", log, "undo"))
    assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED
    with session_scope() as session:
        session.execute(
            update(ExecutionStep)
            .where(ExecutionStep.execution_id == execution_id, ExecutionStep.step_index == 1)
            .values(params_json='{"command":["rm","-rf","/tmp/nothing-here"]}')
        )
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("failed", None)
    assert [s.status for s in view.rollback_steps] == ["skipped"]
    assert log.read_text() == "a\n" and list_dlq(principal(*ALICE))[0].reason == "plan_mismatch"


def test_chained_rollback_steps_run_back_to_back(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With chaining on (the default) the rollback's steps chain into each other and stop at the end of their
    own list: the on_cancel step after them never runs."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    log = tmp_path / "log"
    plan = (
        "name: ch\nsteps:\n"
        + _failing()
        + "on_failure:\n"
        + "".join(tee_step(f"undo-{i}", log, f"undo-{i}") for i in range(3))
        + "on_cancel:\n"
        + tee_step("tidy", log, "tidy")
    )
    try:
        execution_id = _bg(plan)
        outcomes = [o for o in drive(execution_id) if o is not Outcome.NOOP]
    finally:
        get_settings.cache_clear()
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.ADVANCED, Outcome.FINISHED]  # one process: 3 steps
    assert log.read_text().splitlines() == ["undo-0", "undo-1", "undo-2"]
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("failed", "completed")
    assert [s.status for s in view.rollback_steps] == ["completed", "completed", "completed", "skipped"]


def test_a_level_three_rollback_step_waits_for_its_go_even_after_a_cancel(fast: str, tmp_path: Path) -> None:
    """Level 3: an on_cancel step waits for an approver's go like any step (the cancel does not skip its gate)."""
    from core import approve_gate

    log = tmp_path / "log"
    plan = (
        "name: l3\napproval_level: 3\nsteps:\n"
        + tee_step("a", log, "a")
        + tee_step("b", log, "b")
        + "on_cancel:\n"
        + tee_step("tidy", log, "tidy")
    )
    execution_id = submit(principal(*ALICE), plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    approve(principal("carol", "demo"), execution_id)
    assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # parked at step 0's gate
    approve_gate(principal("bob", "demo"), execution_id, 0)
    assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED
    cancel(principal(*ALICE), execution_id)  # step 1 waits at its gate: the cancel releases it
    assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED  # cancelled; on_cancel starts
    assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # the on_cancel step waits for its go
    assert log.read_text() == "a\n"
    approve_gate(principal("carol", "demo"), execution_id, 2)
    assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("cancelled", "completed")
    assert [s.status for s in view.steps] == ["completed", "cancelled"] and log.read_text() == "a\ntidy\n"


def test_the_execution_holds_its_rollback_targets_locks_from_its_start(fast: str, tmp_path: Path) -> None:
    """A rollback step's target is locked with the main ones when the execution starts (all or nothing), so
    no other execution can take it between the failure and the rollback."""
    from core import Connection, add_asset
    from db.tables import Asset, ExecutionLock

    add_asset(principal("admin", "demo"), "side", Connection.LOCAL)
    log = tmp_path / "log"
    undo = f"  - {{name: undo, action: shell, target: side, params: {{command: [tee, -a, '{log}'], stdin: \"undo\\n\"}}}}\n"
    execution_id = _bg("name: lk\nsteps:\n" + tee_step("a", log, "a") + _failing() + "on_failure:\n" + undo)
    assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED  # step 0 done: the locks are held
    with session_scope() as session:
        held = session.exec(
            select(Asset.name)
            .join(ExecutionLock, ExecutionLock.asset_id == Asset.id)  # type: ignore[arg-type]
            .where(ExecutionLock.execution_id == execution_id)
        ).all()
    assert sorted(held) == ["localhost", "side"]
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, view.rollback_status) == ("failed", "completed") and log.read_text() == "a\nundo\n"
    with session_scope() as session:
        assert session.exec(select(ExecutionLock).where(ExecutionLock.execution_id == execution_id)).first() is None
