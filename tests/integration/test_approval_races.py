"""Concurrent approvals (issue 13 item 2): N votes at once give exactly one transition to ``approved``.

Counting the votes and the transition happen under the execution's row lock (core/usecases/approvals.py),
so the last voter always sees every earlier vote. The loop races two approvers on a level-2 plan; the
deterministic test forces the interleaving that used to strand an execution at 2/2 approvals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from core import approval_rules, approve, get_execution, list_events, principal, submit
from db.engine import session_scope
from db.tables import QueueItem
from tests.factories import plan_text

RACES = 20
JOIN_S = 60.0


def _level_two(name: str) -> str:
    view = submit(principal("alice", "demo"), plan_text(name, action_class="deploy")).execution
    assert (view.status, view.approvals_required) == ("pending_approval", 2)
    return view.execution_id


def _run_concurrently(*calls: Callable[[], Any]) -> list[BaseException]:
    """Start one thread per call behind a barrier; return the errors they raised (joined, bounded)."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=JOIN_S)
            call()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,), name=f"voter-{i}") for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_S)
        assert not thread.is_alive(), "an approver thread hung"
    return errors


def _assert_approved_once(execution_id: str) -> None:
    alice = principal("alice", "demo")
    view = get_execution(alice, execution_id)
    assert view.status == "queued", f"{execution_id} ended {view.status} with {len(view.approvals)} approvals"
    approved = [e for e in list_events(alice, execution_id) if e.kind == "status" and e.to_status == "approved"]
    assert len(approved) == 1
    with session_scope() as session:
        rows = session.exec(select(QueueItem.id).where(QueueItem.execution_id == execution_id)).all()
    assert len(rows) == 1


def test_twenty_races_of_two_approvers_each_approve_exactly_once(db: str) -> None:
    """bob and carol approve a level-2 plan at the same moment, 20 times: 20 approved, each exactly once."""
    bob, carol = principal("bob", "demo"), principal("carol", "demo")
    stranded = []
    for race in range(RACES):
        execution_id = _level_two(f"race-{race}")
        errors = _run_concurrently(partial(approve, bob, execution_id), partial(approve, carol, execution_id))
        assert errors == []
        if get_execution(bob, execution_id).status != "queued":
            stranded.append(execution_id)
            continue
        _assert_approved_once(execution_id)
    assert stranded == [], f"{len(stranded)} of {RACES} races left the execution pending"


def _lock_waiters() -> int:
    """How many backends of this database wait for a lock (PostgreSQL)."""
    with session_scope() as session:
        return int(
            session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@pytest.mark.integration
def test_second_vote_waits_for_the_first_to_commit(postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic race: the first voter pauses after counting; the second must wait for it, then approve.

    Without the lock the second voter counts only its own vote and commits while the first is paused, and
    both leave "1 of 2": the execution stays pending with 2/2 approvals.
    """
    execution_id = _level_two("paused-race")
    first_counted, release_first = threading.Event(), threading.Event()
    original = approval_rules.valid_approvers

    def counting(session: Any, execution: Any) -> set[str]:
        counted = original(session, execution)
        if threading.current_thread().name == "first":
            first_counted.set()
            assert release_first.wait(timeout=JOIN_S)
        return counted

    monkeypatch.setattr(approval_rules, "valid_approvers", counting)
    errors: list[BaseException] = []

    def vote(user: str) -> None:
        try:
            approve(principal(user, "demo"), execution_id)
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=vote, args=("bob",), name="first")
    second = threading.Thread(target=vote, args=("carol",), name="second")
    first.start()
    assert first_counted.wait(timeout=JOIN_S)
    second.start()
    # The second voter either blocks on the execution's row lock (fixed) or runs to the end (the old bug).
    waited = threading.Event()
    while second.is_alive() and not waited.is_set():
        if _lock_waiters() > 0:
            waited.set()
        else:
            second.join(timeout=0.05)
    release_first.set()
    first.join(timeout=JOIN_S)
    second.join(timeout=JOIN_S)
    assert not first.is_alive() and not second.is_alive()
    assert errors == []
    assert waited.is_set(), "the second vote did not wait for the first one's row lock"
    _assert_approved_once(execution_id)
