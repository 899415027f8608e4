"""Time limits that mean what they say (issue 14 item 7), on SQLite and PostgreSQL.

A declared step timeout is held by the SLA class the server derives from the current policy rows, or the
submit is refused naming the limit; the preview and ``show`` carry each step's effective limits; waiting at
a level-3 gate is not running time; an immediate plan retries in the caller with the policy's backoff.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from core import (
    ActionClass,
    InvalidInput,
    PolicyValues,
    SlaClass,
    add_read_only_command,
    approve,
    approve_gate,
    engine,
    get_execution,
    list_events,
    preview,
    principal,
    submit,
    update_policy,
)
from core.engine import sweeper
from core.engine.steps import Outcome
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Execution, ExecutionEvent
from tests.engine_support import recording_dispatcher
from ui.cli.output import render_execution

ALICE = ("alice", "demo")


def _sleep_plan(timeout_s: int, *, action_class: str = "read") -> str:
    return (
        "name: t\nsteps:\n"
        f"  - {{name: a, action: sleep, target: localhost, action_class: {action_class}, "
        f"params: {{seconds: 0.01}}, timeout_s: {timeout_s}}}\n"
    )


def test_a_declared_timeout_picks_a_class_that_holds_it(db: str) -> None:
    """The measured lie: a declared 9 s read landed in fast and ran with 5 s. Now it lands in medium, runs
    with 9 s, and the preview and the stored execution say so."""
    alice = principal(*ALICE)
    shown = preview(alice, _sleep_plan(9))
    assert (shown.sla_class, shown.steps[0]["timeout_s"], shown.steps[0]["step_limit_s"]) == ("medium", 9, 9)
    assert shown.execution_limit_s == 30
    view = submit(alice, _sleep_plan(9), background=True).execution
    assert view.sla_class == "medium"
    assert (view.steps[0].timeout_s, view.steps[0].step_limit_s, view.execution_limit_s) == (9, 9, 30)


def test_a_timeout_no_class_can_hold_is_refused_naming_the_limit(db: str) -> None:
    with pytest.raises(InvalidInput) as info:
        submit(principal(*ALICE), _sleep_plan(400, action_class="modify"))
    assert str(info.value) == "steps[0].timeout_s: 400 exceeds the longest step limit for modify (120 s)"
    with pytest.raises(InvalidInput, match=r"steps\[0\]\.timeout_s: 400 exceeds"):
        preview(principal(*ALICE), _sleep_plan(400, action_class="modify"))


def test_the_current_policy_rows_decide(db: str) -> None:
    """An admin's edit of the policy table moves both the class and the refusal: the seeded numbers do not."""
    admin = principal("admin", "demo")
    update_policy(admin, SlaClass.FAST, ActionClass.READ, PolicyValues(9, 20, 30, 300, 3))
    update_policy(admin, SlaClass.LONG, ActionClass.MODIFY, PolicyValues(400, 900, 960, 3600, 3))
    alice = principal(*ALICE)
    assert preview(alice, _sleep_plan(9)).sla_class == "fast"
    long_one = preview(alice, _sleep_plan(400, action_class="modify"))
    assert (long_one.sla_class, long_one.steps[0]["step_limit_s"], long_one.execution_limit_s) == ("long", 400, 900)


def test_show_gives_the_limit_the_step_runs_with(db: str) -> None:
    """A step without a timeout runs with the policy's; ``show`` (the execution view) says which, and when the
    execution's time runs out once it started."""
    alice = principal(*ALICE)
    done = submit(alice, "name: n\nsteps:\n  - {name: a, action: noop, target: localhost}\n").execution
    assert done.status == "completed"  # immediate
    assert (done.sla_class, done.steps[0].timeout_s, done.steps[0].step_limit_s) == ("fast", None, 5)
    assert done.execution_limit_s == 10 and done.deadline_at is not None
    as_json = json.loads(get_execution(alice, done.execution_id).model_dump_json())
    assert as_json["execution_limit_s"] == 10 and as_json["steps"][0]["step_limit_s"] == 5
    text = render_execution(done)  # `opsconductor show` without --json
    assert "limits     10s of running time" in text
    header, row = text.split("\n\n")[1].splitlines()[:2]
    assert header.split()[-1] == "LIMIT" and row.split()[-1] == "5s"


def _shift_back(execution_id: str, by: timedelta) -> None:
    """Pretend ``by`` passed since the execution started and its step 1 was parked at its gate."""
    with session_scope() as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None and execution.started_at and execution.deadline_at
        session.execute(
            update(Execution)
            .where(col(Execution.id) == execution_id)
            .values(started_at=execution.started_at - by, deadline_at=execution.deadline_at - by)
        )
        parked = session.exec(
            select(ExecutionEvent).where(
                ExecutionEvent.execution_id == execution_id,
                ExecutionEvent.kind == "gate_waiting",
                ExecutionEvent.step_index == 1,
            )
        ).one()
        data = json.loads(parked.data_json)  # the deadline it had when parked, moved back as well
        data["deadline_at"] = (datetime.fromisoformat(data["deadline_at"]) - by).isoformat()
        session.execute(
            update(ExecutionEvent)
            .where(col(ExecutionEvent.id) == parked.id)
            .values(created_at=parked.created_at - by, data_json=json.dumps(data))
        )


def test_waiting_at_a_gate_is_not_running_time(db: str) -> None:
    """A 2-step level-3 plan (fast read: 10 s of running time) whose step-1 gate opens a minute after step 0:
    the sweeper does not end it while it waits, the go gives the wait back (audited), and it completes."""
    alice = principal(*ALICE)
    plan = (
        "name: l3\napproval_level: 3\nsteps:\n"
        "  - {name: a, action: noop, target: localhost}\n  - {name: b, action: noop, target: localhost}\n"
    )
    execution_id = submit(alice, plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    approve(principal("carol", "demo"), execution_id)
    with recording_dispatcher():
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # step 0's gate
        approve_gate(principal("bob", "demo"), execution_id, 0)
        assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # parked at step 1's gate
        view = get_execution(alice, execution_id)
        assert view.execution_limit_s == 10 and view.status == "running"
        _shift_back(execution_id, timedelta(seconds=60))  # a minute at the gate: 6x the execution limit
        assert sweeper.sweep().timed_out == 0
        assert get_execution(alice, execution_id).status == "running"
        approve_gate(principal("carol", "demo"), execution_id, 1, comment="go")
        reopened = get_execution(alice, execution_id)  # its running time given back: about 10 s from now
        assert reopened.deadline_at is not None
        assert utcnow() + timedelta(seconds=8) < reopened.deadline_at <= utcnow() + timedelta(seconds=10)
        assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED
    assert get_execution(alice, execution_id).status == "completed"
    [go] = [e for e in list_events(alice, execution_id) if e.kind == "gate_approved" and e.step_index == 1]
    assert go.data["waited_s"] >= 60 and go.data["deadline_at"]


@pytest.fixture
def quick_backoff(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.05")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _flaky_plan(tmp_path: Path) -> str:
    """A read step (its script declared read-only by an admin) that fails the first time and then succeeds."""
    script = tmp_path / "flaky.sh"
    script.write_text(f'if [ -e "{tmp_path}/ran" ]; then echo second; exit 0; fi\ntouch "{tmp_path}/ran"; exit 1\n')
    add_read_only_command(principal("admin", "demo"), ["sh", str(script)])
    return f"name: flaky\nsteps:\n  - {{name: a, action: shell, target: localhost, params: {{command: [sh, '{script}']}}}}\n"


def test_an_immediate_plan_retries_in_the_caller(quick_backoff: str, tmp_path: Path) -> None:
    """A read step that fails once then succeeds, in immediate mode: the caller waits the backoff and runs
    the retry itself (no hand-off to the background's re-send), so submit returns it completed, attempts 2."""
    plan = _flaky_plan(tmp_path)
    with recording_dispatcher():
        view = submit(principal(*ALICE), plan).execution
    assert (view.execution_mode, view.action_class) == ("immediate", "read")
    assert (view.status, view.steps[0].attempts, view.steps[0].output) == ("completed", 2, "second\n")
    kinds = [e.kind for e in list_events(principal(*ALICE), view.execution_id)]
    assert kinds.count("step_retry") == 1


def test_a_backoff_past_the_deadline_is_left_to_the_background(
    db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A retry due only after the execution's 10 s: the caller does not wait for it; the background's message
    (sent with the retry) takes it, and submit returns the execution still running."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "30")
    get_settings.cache_clear()
    try:
        with recording_dispatcher() as sent:
            view = submit(principal(*ALICE), _flaky_plan(tmp_path)).execution
    finally:
        get_settings.cache_clear()
    assert (view.execution_mode, view.status, view.steps[0].status, view.steps[0].attempts) == (
        "immediate",
        "running",
        "pending",
        1,
    )
    assert [(i, d >= 30) for i, d in sent.sent] == [(view.execution_id, True)]


def test_a_cancel_ends_an_execution_parked_at_a_gate_at_once(db: str) -> None:
    """Parked at a gate, the execution's deadline is held for the gate's window: a cancel must not wait for it."""
    from core import cancel

    alice = principal(*ALICE)
    plan = (
        "name: l3c\napproval_level: 3\nsteps:\n"
        "  - {name: a, action: noop, target: localhost}\n  - {name: b, action: noop, target: localhost}\n"
    )
    execution_id = submit(alice, plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    approve(principal("carol", "demo"), execution_id)
    with recording_dispatcher():
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP
        approve_gate(principal("bob", "demo"), execution_id, 0)
        assert engine.process(execution_id, worker_id="w") is Outcome.ADVANCED
        assert engine.process(execution_id, worker_id="w") is Outcome.NOOP  # parked at step 1's gate
        cancel(alice, execution_id)
        assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED
    view = get_execution(alice, execution_id)
    assert (view.status, [s.status for s in view.steps]) == ("cancelled", ["completed", "cancelled"])
