"""Per-asset locks (DESIGN §3.9): one execution at a time per asset, fencing tokens, FIFO hand-off."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from core import Connection, add_asset, engine, get_execution, list_events, list_locks, principal, submit
from core.engine import locks, sweeper
from core.engine.steps import Outcome
from core.usecases.dlq import list_dlq
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Asset, ExecutionLock, QueueItem
from tests.engine_support import drive, recording_dispatcher


@pytest.fixture
def fast(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")  # one step per process() call, to observe each (chained: below)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _sleep_plan(name: str, seconds: float, target: str = "localhost") -> str:
    return f"name: {name}\nsteps:\n  - {{name: s, action: sleep, target: {target}, params: {{seconds: {seconds}}}}}\n"


def _bg(plan: str) -> str:
    return submit(principal("alice", "demo"), plan, background=True).execution.execution_id


def _wait_holding(execution_id: str) -> None:
    """Until ``execution_id`` holds its locks (its claim committed; its step runs), not a fixed sleep."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with session_scope() as session:
            if session.exec(select(ExecutionLock).where(ExecutionLock.execution_id == execution_id)).first():
                return
        time.sleep(0.02)
    raise AssertionError(f"{execution_id} never took its locks")


def test_second_execution_on_a_locked_asset_waits_then_is_handed_the_lock(fast: str) -> None:
    """While A runs on localhost, B parks (event names the holder); A's end dispatches B, which then runs."""
    # A sleeps long enough to still hold its lock after the checks below on a loaded machine.
    first, second = _bg(_sleep_plan("a", 2.5)), _bg(_sleep_plan("b", 0.1))
    with recording_dispatcher() as sent:
        runner = threading.Thread(target=lambda: engine.process(first, worker_id="w1"))
        runner.start()
        _wait_holding(first)
        assert engine.process(second, worker_id="w2") is Outcome.NOOP  # parked, no thread burnt
        alice = principal("alice", "demo")
        [waiting] = [e for e in list_events(alice, second) if e.kind == "lock_waiting"]
        assert waiting.message == f"waiting for localhost, held by execution {first}"
        [lock] = list_locks(alice)
        assert (lock.asset, lock.execution_id, lock.waiters) == ("localhost", first, 1)
        assert get_execution(alice, second).status == "queued"
        runner.join(timeout=10)
        assert (second, 0.0) in sent.sent  # the hand-off: released, then dispatched after commit
        assert engine.process(second, worker_id="w2") is Outcome.FINISHED
    assert get_execution(alice, first).status == get_execution(alice, second).status == "completed"
    assert list_locks(alice) == []


def test_fencing_tokens_only_grow(fast: str) -> None:
    """Each acquisition of an asset's lock gets a larger token than the one before."""
    tokens = []
    for i in range(3):
        execution_id = _bg(_sleep_plan(f"t{i}", 0))
        with session_scope() as session:
            asset_id = session.exec(
                select(Asset.id).where(
                    Asset.name == "localhost", Asset.tenant_id == principal("alice", "demo").tenant_id
                )
            ).one()
        drive(execution_id)
        with session_scope() as session:
            tokens.append(session.exec(select(Asset.lock_fence).where(Asset.id == asset_id)).one())
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_all_or_nothing_in_sorted_order(fast: str) -> None:
    """An execution on two assets takes both or none: with one busy, it holds nothing and waits."""
    admin = principal("admin", "demo")
    add_asset(admin, "db-01", Connection.LOCAL)
    holder = _bg(_sleep_plan("hold", 1.0, target="db-01"))
    both = _bg(
        "name: both\nsteps:\n  - {name: a, action: noop, target: localhost}\n  - {name: b, action: noop, target: db-01}\n"
    )
    runner = threading.Thread(target=lambda: engine.process(holder, worker_id="w1"))
    runner.start()
    _wait_holding(holder)
    assert engine.process(both, worker_id="w2") is Outcome.NOOP
    with session_scope() as session:
        held_by_both = session.exec(select(ExecutionLock).where(ExecutionLock.execution_id == both)).all()
    assert held_by_both == []  # localhost was not kept while db-01 was busy
    runner.join(timeout=10)
    assert drive(both)[-1] is Outcome.FINISHED


def test_a_stale_holder_result_is_refused(fast: str) -> None:
    """If the lock changes hands while a step runs (expired and taken), that step's result is refused."""
    execution_id = _bg(_sleep_plan("slow", 1.0))
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(engine.process(execution_id, worker_id="w1")))
    runner.start()
    _wait_holding(execution_id)
    with session_scope() as session:  # another holder took the asset over (e.g. after an expiry)
        session.execute(
            update(ExecutionLock).where(ExecutionLock.execution_id == execution_id).values(fencing_token=10_000)
        )
    runner.join(timeout=10)
    alice = principal("alice", "demo")
    view = get_execution(alice, execution_id)
    assert outcome == [Outcome.FINISHED] and view.status == "failed" and view.steps[0].status == "unknown"
    assert "fencing_refused" in [e.kind for e in list_events(alice, execution_id)]
    assert list_dlq(alice)[0].reason == "lock_lost"


def test_queue_wait_is_bounded_by_the_policy(fast: str) -> None:
    """A waiter still blocked when its wait bound (the policy's approval window) has passed ends timeout."""
    holder = _bg(_sleep_plan("hold", 1.0))
    waiter = _bg(_sleep_plan("wait", 0))
    runner = threading.Thread(target=lambda: engine.process(holder, worker_id="w1"))
    runner.start()
    _wait_holding(holder)
    assert engine.process(waiter, worker_id="w2") is Outcome.NOOP
    with session_scope() as session:
        session.execute(
            update(QueueItem)
            .where(QueueItem.execution_id == waiter)
            .values(created_at=utcnow() - timedelta(hours=1), available_at=utcnow())
        )
    assert engine.process(waiter, worker_id="w2") is Outcome.NOOP
    runner.join(timeout=10)
    alice = principal("alice", "demo")
    view = get_execution(alice, waiter)
    assert view.status == "timeout" and "held by execution" in (view.error or "")
    assert [d.reason for d in list_dlq(alice)] == ["queue_timeout"]


def test_expired_locks_are_reaped_and_handed_on(fast: str) -> None:
    """The sweeper deletes a lock past its expiry (its holder died) and wakes the asset's oldest waiter."""
    dead, waiter = _bg(_sleep_plan("dead", 0)), _bg(_sleep_plan("wait", 0))
    tenant_id, asset_id = principal("alice", "demo").tenant_id, _localhost_id()
    with session_scope() as session:  # a holder that died, its lock past expiry, and a parked waiter
        session.add(
            ExecutionLock(
                tenant_id=tenant_id,
                asset_id=asset_id,
                execution_id=dead,
                fencing_token=1,
                expires_at=utcnow() - timedelta(seconds=1),
            )
        )
        session.execute(
            update(QueueItem)
            .where(QueueItem.execution_id == waiter)
            .values(waiting_for_asset_id=asset_id, available_at=utcnow() + timedelta(hours=1))
        )
    with recording_dispatcher() as sent:
        assert sweeper.sweep(redispatch_after_s=3600).reaped_locks == 1
    assert (waiter, 0.0) in sent.sent
    with session_scope() as session:
        assert session.exec(select(ExecutionLock)).all() == []
        row = session.exec(select(QueueItem).where(QueueItem.execution_id == waiter)).one()
        assert row.available_at <= utcnow()  # woken; it stays in line until it has the lock
    assert drive(waiter)[-1] is Outcome.FINISHED


def _localhost_id() -> str:
    with session_scope() as session:
        tenant = principal("alice", "demo").tenant_id
        return session.exec(select(Asset.id).where(Asset.name == "localhost", Asset.tenant_id == tenant)).one()


def test_acquire_race_on_postgresql_gives_the_lock_to_one(postgres_db: str) -> None:
    """Eight concurrent acquirers of one asset for different executions: exactly one wins."""
    ids = [_bg(_sleep_plan(f"r{i}", 0)) for i in range(8)]
    asset_id, tenant_id = _localhost_id(), principal("alice", "demo").tenant_id
    barrier = threading.Barrier(8)
    results: list[object] = []

    def take(execution_id: str) -> None:
        barrier.wait()
        with session_scope() as session:
            results.append(
                locks.acquire(
                    session,
                    tenant_id=tenant_id,
                    execution_id=execution_id,
                    asset_ids=[asset_id],
                    expires_at=utcnow() + timedelta(minutes=1),
                )
            )

    threads = [threading.Thread(target=take, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1 and all(isinstance(r, locks.Busy) for r in results if r not in winners)


def test_a_newcomer_does_not_jump_the_queue(fast: str) -> None:
    """A waiter woken by a release keeps its place: an execution arriving just then queues behind it."""
    holder, waiter = _bg(_sleep_plan("hold", 0.6)), _bg(_sleep_plan("first-in-line", 0))
    runner = threading.Thread(target=lambda: engine.process(holder, worker_id="w1"))
    runner.start()
    _wait_holding(holder)
    assert engine.process(waiter, worker_id="w2") is Outcome.NOOP
    runner.join(timeout=10)  # released: the waiter is woken, but has not claimed yet
    newcomer = _bg(_sleep_plan("newcomer", 0))
    assert engine.process(newcomer, worker_id="w3") is Outcome.NOOP
    alice = principal("alice", "demo")
    [event] = [e for e in list_events(alice, newcomer) if e.kind == "lock_waiting"]
    assert event.message == f"waiting for localhost, behind execution {waiter} in its queue"
    assert engine.process(waiter, worker_id="w2") is Outcome.FINISHED
    assert drive(newcomer)[-1] is Outcome.FINISHED
    first, second = get_execution(alice, waiter), get_execution(alice, newcomer)
    assert first.finished_at <= second.started_at  # type: ignore[operator]
