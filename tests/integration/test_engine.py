"""The engine (DESIGN §3.2-3.5, §6, §7) driven directly, on SQLite and PostgreSQL, without a broker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from core import (
    ActionClass,
    PolicyValues,
    Role,
    SlaClass,
    approve,
    cancel,
    engine,
    get_execution,
    list_events,
    principal,
    set_member,
    submit,
    update_policy,
)
from core.engine import sweeper
from core.engine.claim import claim_step
from core.engine.steps import Outcome
from core.usecases.dlq import discard, list_dlq, requeue
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Execution, QueueItem
from tests.engine_support import drive, processes_matching, recording_dispatcher, tee_step, unique_seconds


@pytest.fixture
def fast(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small backoffs and a quick watcher, so retries and cancels are fast to test."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")  # one step per process() call, to observe each (chained: below)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _bg(plan: str, who: str = "alice") -> str:
    return submit(principal(who, "demo"), plan, background=True).execution.execution_id


def test_three_steps_complete_in_order_each_once(fast: str, tmp_path: Path) -> None:
    """Each step runs once, in order; the execution completes; events tell the story."""
    log = tmp_path / "log"
    execution_id = _bg("name: three\nsteps:\n" + "".join(tee_step(f"s{i}", log, f"step-{i}") for i in range(3)))
    with recording_dispatcher() as sent:
        outcomes = drive(execution_id)
    assert outcomes == [Outcome.ADVANCED, Outcome.ADVANCED, Outcome.FINISHED]
    assert [i for i, _ in sent.sent] == [execution_id, execution_id]  # each step dispatches the next
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "completed" and view.started_at and view.finished_at
    assert [(s.status, s.attempts, s.output) for s in view.steps] == [("completed", 1, f"step-{i}\n") for i in range(3)]
    assert log.read_text().splitlines() == ["step-0", "step-1", "step-2"]
    kinds = [e.kind for e in list_events(principal("alice", "demo"), execution_id)]
    assert kinds.count("step_started") == 3 and kinds.count("step_finished") == 3


def test_duplicate_delivery_runs_the_step_once(fast: str, tmp_path: Path) -> None:
    """The same message delivered three times at once: one worker claims it, the others are no-ops."""
    log = tmp_path / "log"
    execution_id = _bg("name: dup\nsteps:\n" + tee_step("only", log, "once"))
    barrier = threading.Barrier(3)
    outcomes: list[Outcome] = []

    def deliver(n: int) -> None:
        barrier.wait()
        outcomes.append(engine.process(execution_id, worker_id=f"w{n}"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([Outcome.FINISHED, Outcome.NOOP, Outcome.NOOP])
    assert engine.process(execution_id, worker_id="late") is Outcome.NOOP
    assert log.read_text() == "once\n"


def test_failing_read_step_is_retried_then_dead_lettered(fast: str) -> None:
    """A read step that fails is retried with backoff up to the policy's 3 attempts, then goes to the DLQ."""
    execution_id = _bg(
        "name: flaky\nsteps:\n  - {name: f, action: shell, target: localhost, params: {command: 'false'}}\n"
    )
    with recording_dispatcher() as sent:
        outcomes = drive(execution_id)
    assert [o for o in outcomes if o is not Outcome.NOOP] == [Outcome.RETRY, Outcome.RETRY, Outcome.FINISHED]
    assert all(delay > 0 for _, delay in sent.sent)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "failed" and view.steps[0].attempts == 3 and view.steps[0].error == "exit code 1"
    [entry] = list_dlq(principal("alice", "demo"))
    assert (entry.reason, entry.attempts, entry.step_index, entry.last_error) == (
        "retries_exhausted",
        3,
        0,
        "exit code 1",
    )


def test_failing_modify_step_is_not_retried(fast: str) -> None:
    """A modify step runs at most once: one failure fails the execution (DLQ reason step_failed)."""
    execution_id = submit(
        principal("alice", "demo"),
        "name: m\nsteps:\n  - {name: f, action: shell, target: localhost, action_class: modify, params: {command: 'false'}}\n",
    ).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].attempts) == ("failed", 1)
    assert list_dlq(principal("bob", "demo"))[0].reason == "step_failed"


def test_continue_on_error_ends_partial(fast: str, tmp_path: Path) -> None:
    """With continue_on_error a failed step does not stop the plan; the end is partial, not DLQ'd."""
    log = tmp_path / "log"
    plan = (
        "name: p\ncontinue_on_error: true\nsteps:\n"
        "  - {name: bad, action: shell, target: localhost, params: {command: [ls, /nonexistent-dir-x]}}\n"
        + tee_step("good", log, "ran")
    )
    execution_id = _bg(plan)
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "partial" and [s.status for s in view.steps] == ["failed", "completed"]
    assert "No such file" in (view.steps[0].output or "") and log.read_text() == "ran\n"
    assert list_dlq(principal("alice", "demo")) == []


def test_cancel_kills_the_running_command_within_a_second(fast: str) -> None:
    """Cancel of a running execution: its process group is killed (long before its 31 s sleep would end on its
    own, however loaded the machine), remaining steps cancelled."""
    marker = unique_seconds(31)
    execution_id = _bg(
        f"name: long\nsteps:\n  - {{name: s, action: shell, target: localhost, params: {{command: [sleep, '{marker}'], }}, timeout_s: 60}}\n"
        "  - {name: after, action: noop, target: localhost}\n"
    )
    update_policy(principal("admin", "demo"), SlaClass.LONG, ActionClass.READ, PolicyValues(60, 300, 360, 1800, 3))
    worker = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    worker.start()
    deadline = time.monotonic() + 10
    while not processes_matching(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_matching(f"sleep {marker}"), "the command never started"
    asked = time.monotonic()
    cancel(principal("alice", "demo"), execution_id, reason="stop it")
    while processes_matching(f"sleep {marker}") and time.monotonic() - asked < 20:
        time.sleep(0.01)
    worker.join(timeout=10)
    assert processes_matching(f"sleep {marker}") == [], "the command outlived the cancel by 20 s"
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "cancelled" and [s.status for s in view.steps] == ["cancelled", "cancelled"]
    with session_scope() as session:
        assert session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).first() is None


def test_step_timeout_kills_the_command_and_leaves_no_child(fast: str) -> None:
    """A `sleep 60` with timeout_s 1 ends `timeout` (long before the sleep would), with its process group gone."""
    marker = unique_seconds(60)
    update_policy(principal("admin", "demo"), SlaClass.FAST, ActionClass.READ, PolicyValues(5, 10, 15, 300, 1))
    execution_id = _bg(
        f"name: t\nsteps:\n  - {{name: s, action: shell, target: localhost, params: {{command: [sleep, '{marker}']}}, timeout_s: 1}}\n"
    )
    started = time.monotonic()
    assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed  # half the sleep: only the timeout can have ended it
    assert processes_matching(f"sleep {marker}") == []
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].status, view.steps[0].error) == (
        "failed",
        "timeout",
        "timeout: the step's limit of 1 s was reached",
    )


def test_execution_deadline_stops_a_running_step(fast: str) -> None:
    """Past the execution deadline the watcher stops the step: execution `timeout`, DLQ execution_timeout."""
    execution_id = _bg("name: d\nsteps:\n  - {name: s, action: sleep, target: localhost, params: {seconds: 4}}\n")
    claim_thread = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    claim_thread.start()
    time.sleep(0.3)
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == execution_id).values(deadline_at=utcnow()))
    claim_thread.join(timeout=10)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].status) == ("timeout", "timeout")
    assert list_dlq(principal("alice", "demo"))[0].reason == "execution_timeout"


def test_sweeper_times_out_an_idle_execution_and_expires_approvals(fast: str) -> None:
    """Between steps (no lease) past its deadline → timeout; a pending approval past its window → expired."""
    running = _bg(
        "name: two\nsteps:\n  - {name: a, action: noop, target: localhost}\n  - {name: b, action: noop, target: localhost}\n"
    )
    assert engine.process(running, worker_id="w") is Outcome.ADVANCED
    pending = submit(
        principal("alice", "demo"),
        "name: m\nsteps:\n  - {name: a, action: noop, target: localhost, action_class: modify}\n",
    ).execution.execution_id
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == running).values(deadline_at=utcnow()))
        session.execute(update(Execution).where(Execution.id == pending).values(approval_expires_at=utcnow()))
    report = sweeper.sweep()
    assert (report.timed_out, report.expired_approvals) == (1, 1)
    alice = principal("alice", "demo")
    assert get_execution(alice, running).status == "timeout"
    assert [s.status for s in get_execution(alice, running).steps] == ["completed", "cancelled"]
    assert get_execution(alice, pending).status == "expired"


def _crash_mid_step(execution_id: str) -> None:
    """Simulate a worker that claimed the step, started it, and died: the lease is left to expire."""
    claim = claim_step(execution_id, "doomed-worker")
    assert claim is not None
    with session_scope() as session:
        session.execute(
            update(QueueItem).where(QueueItem.execution_id == execution_id).values(lease_expires_at=utcnow())
        )


def test_expired_lease_of_a_read_step_is_retried(fast: str, tmp_path: Path) -> None:
    """A read step whose worker died is retried (attempt counted) and the execution completes."""
    log = tmp_path / "log"
    execution_id = _bg("name: r\nsteps:\n" + tee_step("s", log, "ran"))
    _crash_mid_step(execution_id)
    with recording_dispatcher():
        assert sweeper.sweep(redispatch_after_s=0).reclaimed == 1
        drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].attempts) == ("completed", 2)
    assert "lease_expired" in [e.kind for e in list_events(principal("alice", "demo"), execution_id)]


def test_expired_lease_of_a_modify_step_is_unknown_then_requeue_resumes_there(fast: str, tmp_path: Path) -> None:
    """A modify step whose worker died is `unknown`: not re-run, DLQ; requeue resumes at that step only."""
    log = tmp_path / "log"
    plan = (
        "name: m\nsteps:\n"
        + tee_step("first", log, "first", action_class="modify")
        + tee_step("second", log, "second", action_class="modify")
    )
    execution_id = submit(principal("alice", "demo"), plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED
    _crash_mid_step(execution_id)
    assert sweeper.sweep().reclaimed == 1
    alice = principal("alice", "demo")
    view = get_execution(alice, execution_id)
    assert (view.status, [s.status for s in view.steps]) == ("failed", ["completed", "unknown"])
    [entry] = list_dlq(alice)
    assert (entry.reason, entry.step_index) == ("unknown_outcome", 1)
    with pytest.raises(Exception, match="only their own"):
        requeue(principal("carol", "demo"), execution_id)
    requeued = requeue(alice, execution_id, comment="checked by hand: it did not run")
    assert (requeued.status, requeued.attempt) == ("queued", 2)
    drive(execution_id)
    assert get_execution(alice, execution_id).status == "completed"
    assert log.read_text().splitlines() == ["first", "second"]  # first never ran twice
    assert list_dlq(alice) == [] and list_dlq(alice, include_resolved=True)[0].resolution == "requeued"


def test_permission_revoked_after_approval_stops_the_run(fast: str, tmp_path: Path) -> None:
    """The worker re-checks the requester's right before each step: revoked → failed, no side effect."""
    log = tmp_path / "log"
    execution_id = submit(
        principal("alice", "demo"), "name: m\nsteps:\n" + tee_step("s", log, "x", action_class="modify")
    ).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    set_member(principal("admin", "demo"), "alice", Role.VIEWER)
    drive(execution_id)
    view = get_execution(principal("admin", "demo"), execution_id)
    assert view.status == "failed" and "permission denied" in (view.steps[0].error or "")
    assert not log.exists()
    assert list_dlq(principal("admin", "demo"))[0].reason == "permission_denied"


def test_discard_needs_admin_and_a_comment(fast: str) -> None:
    """Discarding a DLQ entry is an admin decision with a reason."""
    execution_id = _bg("name: f\nsteps:\n  - {name: f, action: shell, target: localhost, params: {command: 'false'}}\n")
    drive(execution_id)
    from core import InvalidInput, PermissionDenied

    with pytest.raises(PermissionDenied):
        discard(principal("alice", "demo"), execution_id, comment="meh")
    with pytest.raises(InvalidInput):
        discard(principal("admin", "demo"), execution_id, comment=" ")
    discard(principal("admin", "demo"), execution_id, comment="known flaky host")
    assert list_dlq(principal("admin", "demo")) == []


def test_immediate_mode_runs_in_the_caller(fast: str) -> None:
    """A fast level-0 plan submitted without --background completes inside submit, no broker involved."""
    view = submit(
        principal("alice", "demo"), "name: i\nsteps:\n  - {name: a, action: noop, target: localhost, params: {x: 1}}\n"
    ).execution
    assert (view.execution_mode, view.status, view.steps[0].output) == ("immediate", "completed", '{"x": 1}')


def test_secrets_are_resolved_at_run_time_and_masked_in_output(fast: str) -> None:
    """A secret reference reaches the command, but its value is masked in the stored output."""
    execution_id = _bg(
        "name: s\nsteps:\n  - {name: e, action: shell, target: localhost, params: {command: [printenv, TOKEN], env: {TOKEN: '{{ secret:demo_token }}'}}}\n"
    )
    approve(principal("bob", "demo"), execution_id)  # a step with a secret is at least modify (DESIGN §13)
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "completed" and view.steps[0].output == "***\n"
    with session_scope() as session:
        stored = session.exec(select(Execution.plan_json).where(Execution.id == execution_id)).one()
    assert "demo-demo-s3cr3t-value" not in stored


def test_shutdown_hands_a_running_read_step_back_uncounted(fast: str) -> None:
    """A worker asked to stop interrupts its read step and releases it: pending again, attempt not counted."""
    execution_id = _bg("name: s\nsteps:\n  - {name: s, action: sleep, target: localhost, params: {seconds: 4}}\n")
    outcomes: list[Outcome] = []
    with recording_dispatcher() as sent:
        worker = threading.Thread(target=lambda: outcomes.append(engine.process(execution_id, worker_id="w")))
        worker.start()
        time.sleep(0.3)
        engine.request_shutdown()
        try:
            worker.join(timeout=5)
        finally:
            engine.reset_shutdown()
    assert outcomes == [Outcome.RELEASED] and sent.sent == [(execution_id, 0.0)]  # handed to another worker
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].status, view.steps[0].attempts) == ("running", "pending", 0)
    assert drive(execution_id)[-1] is Outcome.FINISHED
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"


def test_level_three_steps_wait_for_a_go_each(fast: str, tmp_path: Path) -> None:
    """Level 3: after two approvals, each step waits for an approver's go; the requester cannot give it."""
    from core import PermissionDenied, approve_gate

    log = tmp_path / "log"
    plan = "name: l3\napproval_level: 3\nsteps:\n" + tee_step("a", log, "a") + tee_step("b", log, "b")
    execution_id = submit(principal("alice", "demo"), plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    approve(principal("carol", "demo"), execution_id)
    with recording_dispatcher() as sent:
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # parked at step 0's gate
        assert not log.exists()
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # still parked: no second event
        with pytest.raises(PermissionDenied):
            approve_gate(principal("alice", "demo"), execution_id, 0)
        approve_gate(principal("bob", "demo"), execution_id, 0, comment="go")
        assert sent.sent == [(execution_id, 0.0)]
        assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # step 1 waits for its own go
        approve_gate(principal("carol", "demo"), execution_id, 1)
        assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED
    assert log.read_text() == "a\nb\n"
    kinds = [e.kind for e in list_events(principal("alice", "demo"), execution_id)]
    assert kinds.count("gate_waiting") == 2 and kinds.count("gate_approved") == 2


def test_a_gate_not_opened_in_time_ends_the_execution(fast: str) -> None:
    """A level-3 step whose go does not come within the approval window: timeout, DLQ gate_timeout."""
    execution_id = submit(
        principal("alice", "demo"),
        "name: g\napproval_level: 3\nsteps:\n  - {name: a, action: noop, target: localhost}\n",
    ).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    approve(principal("carol", "demo"), execution_id)
    assert engine.process(execution_id, worker_id="w") is Outcome.NOOP
    with session_scope() as session:
        session.execute(update(QueueItem).where(QueueItem.execution_id == execution_id).values(available_at=utcnow()))
    assert engine.process(execution_id, worker_id="w") is Outcome.NOOP
    assert get_execution(principal("alice", "demo"), execution_id).status == "timeout"
    assert list_dlq(principal("alice", "demo"))[0].reason == "gate_timeout"


def test_chained_steps_run_back_to_back_in_one_worker(db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With chaining (the default) one message runs the whole plan: each step once, in order, no dispatch;
    a duplicate message meanwhile finds the lease held and does nothing."""
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    assert get_settings().chain_steps
    log = tmp_path / "log"
    plan = (
        "name: chain\nsteps:\n"
        + tee_step("a", log, "a")
        + "  - {name: nap, action: sleep, target: localhost, params: {seconds: 1.5}}\n"
        + tee_step("c", log, "c")
    )
    execution_id = _bg(plan)
    outcomes: list[Outcome] = []
    with recording_dispatcher() as sent:
        worker = threading.Thread(target=lambda: outcomes.append(engine.process(execution_id, worker_id="w")))
        worker.start()
        deadline = time.monotonic() + 30
        while get_execution(principal("alice", "demo"), execution_id).steps[1].status != "running":
            assert time.monotonic() < deadline, "the chain never reached its sleep step"
            time.sleep(0.02)
        # inside the chain, during the sleep step
        assert engine.process(execution_id, worker_id="duplicate") is Outcome.NOOP
        worker.join(timeout=10)
    assert outcomes == [Outcome.FINISHED] and sent.sent == []
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "completed" and [s.attempts for s in view.steps] == [1, 1, 1]
    assert log.read_text() == "a\nc\n"
    with session_scope() as session:
        assert session.exec(select(QueueItem).where(QueueItem.execution_id == execution_id)).first() is None


def test_a_cancel_between_chained_steps_stops_the_chain(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel requested while a chained plan runs ends it cancelled; later steps never start."""
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    plan = "name: c\nsteps:\n" + "".join(
        f"  - {{name: s{i}, action: sleep, target: localhost, params: {{seconds: 0.3}}}}\n" for i in range(5)
    )
    execution_id = _bg(plan)
    worker = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    worker.start()
    deadline = time.monotonic() + 10
    while get_execution(principal("alice", "demo"), execution_id).steps[0].status != "completed":
        assert time.monotonic() < deadline, "step 0 never completed"
        time.sleep(0.02)
    cancel(principal("alice", "demo"), execution_id)
    worker.join(timeout=10)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "cancelled"
    assert view.steps[0].status == "completed" and view.steps[-1].status == "cancelled"
    assert all(s.attempts <= 1 for s in view.steps)


def test_role_revoked_mid_run_stops_at_the_next_step(db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The requester loses the role while step 0 runs: step 1 is refused before it runs, audited, DLQ'd."""
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    log = tmp_path / "log"
    plan = "name: r\nsteps:\n  - {name: nap, action: sleep, target: localhost, params: {seconds: 3}}\n" + tee_step(
        "after", log, "x"
    )
    execution_id = _bg(plan)
    worker = threading.Thread(target=lambda: engine.process(execution_id, worker_id="w"))
    worker.start()
    deadline = time.monotonic() + 30
    while get_execution(principal("admin", "demo"), execution_id).steps[0].status != "running":
        assert time.monotonic() < deadline, "step 0 never started"
        time.sleep(0.02)
    set_member(principal("admin", "demo"), "alice", Role.VIEWER)
    worker.join(timeout=10)
    view = get_execution(principal("admin", "demo"), execution_id)
    assert [s.status for s in view.steps] == ["completed", "failed"] and "permission denied" in (
        view.steps[1].error or ""
    )
    assert not log.exists() and list_dlq(principal("admin", "demo"))[0].reason == "permission_denied"
