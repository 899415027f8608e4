"""The sweeper and a lost step's processes (core/engine/orphans.py via core/engine/recovery.py), on SQLite and
PostgreSQL: a worker "dies" after claiming a step whose process group (a real one, started here) it recorded;
the sweeper kills that group before the step is retried or its lock released, on this host only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from core import get_execution, list_events, principal, submit
from core.engine import orphans, recovery, sweeper
from core.engine.claim import StepPlan, claim_step
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import ExecutionLock, ExecutionStep, QueueItem
from tests.engine_support import tee_step

GONE_WITHIN_S = 30


@pytest.fixture
def fast(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


@pytest.fixture
def group() -> Iterator[subprocess.Popen[bytes]]:
    """A process group standing in for a step's: sh and two sleeps (killed at the end whatever happened)."""
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 3600 & sleep 3600 & wait"], start_new_session=True)
    deadline = time.monotonic() + GONE_WITHIN_S
    while len(orphans.group_members(proc.pid, orphans.start_ticks(proc.pid) or 0)) < 3:
        assert time.monotonic() < deadline, "the group did not start"
        time.sleep(0.01)
    yield proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _members(proc: subprocess.Popen[bytes]) -> list[int]:
    return orphans.group_members(proc.pid, orphans.start_ticks(proc.pid) or 0)


def _claimed_and_recorded(tmp_path: Path, proc: subprocess.Popen[bytes]) -> StepPlan:
    """A read step claimed by a worker that started ``proc`` for it, recorded it, and was then lost."""
    execution_id = submit(
        principal("alice", "demo"), "name: r\nsteps:\n" + tee_step("s", tmp_path / "log", "ran"), background=True
    ).execution.execution_id
    plan = claim_step(execution_id, "lost-worker")
    assert plan is not None
    orphans.recorder(execution_id, plan.step_index, plan.attempts)(proc.pid)
    return plan


def _step(execution_id: str) -> ExecutionStep:
    with session_scope() as session:
        return session.exec(select(ExecutionStep).where(ExecutionStep.execution_id == execution_id)).one()


def _expire_lease(execution_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(QueueItem).where(QueueItem.execution_id == execution_id).values(lease_expires_at=utcnow())
        )


def _kinds(execution_id: str) -> list[str]:
    return [e.kind for e in list_events(principal("alice", "demo"), execution_id)]


def test_the_step_row_records_where_its_process_runs(fast: str, tmp_path: Path, group: subprocess.Popen[bytes]) -> None:
    plan = _claimed_and_recorded(tmp_path, group)
    step = _step(plan.execution_id)
    here = orphans.here()
    assert (step.process_host, step.process_boot_id, step.process_pgid) == (here.host, here.boot_id, group.pid)
    assert step.process_start == orphans.start_ticks(group.pid) and here.boot_id
    orphans.recorder(plan.execution_id, plan.step_index, plan.attempts + 1)(4242)  # another attempt: not its row
    assert _step(plan.execution_id).process_pgid == group.pid


def test_the_sweeper_kills_a_lost_steps_group_on_this_host_before_retrying_it(
    fast: str, tmp_path: Path, group: subprocess.Popen[bytes]
) -> None:
    plan = _claimed_and_recorded(tmp_path, group)
    _expire_lease(plan.execution_id)
    assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 1
    assert _members(group) == []  # none left alive (zombies waiting for their reaper do not count)
    kinds = _kinds(plan.execution_id)
    assert kinds.index("orphan_killed") < kinds.index("lease_expired")  # killed first, then given back
    assert _step(plan.execution_id).status == "pending"  # to be retried, now that nothing of it runs


def test_a_step_recorded_on_another_host_is_not_killed_here_and_an_event_says_so(
    fast: str, tmp_path: Path, group: subprocess.Popen[bytes]
) -> None:
    plan = _claimed_and_recorded(tmp_path, group)
    with session_scope() as session:
        session.execute(
            update(ExecutionStep)
            .where(ExecutionStep.execution_id == plan.execution_id)
            .values(process_host="elsewhere.example")
        )
    _expire_lease(plan.execution_id)
    assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 1
    assert len(_members(group)) == 3  # not ours to kill
    events = [e for e in list_events(principal("alice", "demo"), plan.execution_id) if e.kind == "orphan_elsewhere"]
    assert len(events) == 1 and "elsewhere.example" in events[0].message


def test_a_pid_now_used_by_another_process_is_not_killed(
    fast: str, tmp_path: Path, group: subprocess.Popen[bytes]
) -> None:
    plan = _claimed_and_recorded(tmp_path, group)
    with session_scope() as session:  # as if the recorded leader had died and its pid were given to this group
        session.execute(
            update(ExecutionStep)
            .where(ExecutionStep.execution_id == plan.execution_id)
            .values(process_start=ExecutionStep.process_start - 1)  # type: ignore[operator]
        )
    _expire_lease(plan.execution_id)
    assert sweeper.sweep(redispatch_after_s=3600).reclaimed == 1
    assert len(_members(group)) == 3
    assert "orphan_killed" not in _kinds(plan.execution_id)


def test_reaping_an_expired_lock_kills_the_running_steps_group_first(
    fast: str, tmp_path: Path, group: subprocess.Popen[bytes]
) -> None:
    """A lock that outlived its holder (the lease not yet seen expired): its step's processes go with it."""
    plan = _claimed_and_recorded(tmp_path, group)
    with session_scope() as session:
        session.execute(
            update(ExecutionLock).where(ExecutionLock.execution_id == plan.execution_id).values(expires_at=utcnow())
        )
    assert recovery.reap_locks() == 1
    assert _members(group) == []
    assert "orphan_killed" in _kinds(plan.execution_id)
    assert get_execution(principal("alice", "demo"), plan.execution_id).steps[0].status == "running"
